"""Command line: ``python -m rf_widgets MODEL [--resolution N | --input-size H W] [--json]``.

MODEL is ``torchvision:NAME``, ``timm:NAME``, ``package.module:factory`` or a JSON/YAML stack file.
Prints the per-layer table and a summary (or the SPEC section 9 JSON document with ``--json``). Every
user error (a bad argument, spec, file or size, or a reader that closed the pipe) ends with one line on
stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

from rf_widgets._api import analyze
from rf_widgets.errors import RFError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """Argument errors in one line, like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        _fail(f"{message} (see python -m rf_widgets --help)")


def _fail(message: str) -> NoReturn:
    print(f"rf_widgets: error: {message}", file=sys.stderr)
    sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m rf_widgets",
        description="Receptive field analysis: border layer, unproductive layers, feasible input sizes.",
    )
    parser.add_argument(
        "model",
        help="torchvision:NAME, timm:NAME, package.module:factory, or a .json/.yaml layer-stack file",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--resolution", "-r", type=int, default=224, help="square input size (default 224)")
    size.add_argument(
        "--input-size", nargs="+", type=int, metavar="N", help="one input size per spatial axis"
    )
    parser.add_argument("--json", action="store_true", help="print the JSON document (schema_version 2)")
    parser.add_argument("--summary", action="store_true", help="print the summary only, without the table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        # a layer name the terminal's encoding cannot show is escaped (PYTHONIOENCODING=ascii)
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (``--json | head -1``): stop quietly on stdout, say so once on stderr.
        _silence_stdout()
        print("rf_widgets: error: the output pipe was closed before everything was written", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk (> /dev/full), a closed descriptor (>&-)
        _silence_stdout()
        print(f"rf_widgets: error: cannot write the output: {err.strerror or err}", file=sys.stderr)
        return 2


def _silence_stdout() -> None:
    """Point standard output at the null device, so that the exit's final flush fails no more."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["zoo"]:  # `rf-widgets zoo ...`: the model-zoo table (rf_widgets.zoo)
        from rf_widgets.zoo import main as zoo_main

        return zoo_main(argv[1:])
    args = _parser().parse_args(argv)
    input_size = args.input_size if args.input_size else args.resolution
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = analyze(args.model, input_size)
        except RFError as err:
            print(f"rf_widgets: error: {' '.join(str(err).split())}", file=sys.stderr)
            return 2
    for warning in caught:
        if warning.category.__module__.startswith("rf_widgets"):
            print(f"rf_widgets: warning: {' '.join(str(warning.message).split())}", file=sys.stderr)
    if args.json:
        text = result.to_json()
    elif args.summary:
        text = result.summary()
    else:
        text = repr(result)
    if sys.stdout is None:  # started with standard output closed (>&-)
        raise OSError(errno.EBADF, "standard output is closed")
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
