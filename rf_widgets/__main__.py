"""Command line: ``python -m rf_widgets MODEL [--resolution N | --input-size H W] [--json]``.

MODEL is ``torchvision:NAME``, ``timm:NAME``, ``package.module:factory`` or a JSON/YAML stack file.
Prints the per-layer table and a summary (or the SPEC section 9 JSON document with ``--json``). Bad
input ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from rf_widgets._api import analyze
from rf_widgets.errors import RFError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    parser.add_argument("--json", action="store_true", help="print the JSON document (schema_version 1)")
    parser.add_argument("--summary", action="store_true", help="print the summary only, without the table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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
            print(f"rf_widgets: error: {err}", file=sys.stderr)
            return 2
    for warning in caught:
        if warning.category.__module__.startswith("rf_widgets"):
            print(f"rf_widgets: warning: {warning.message}", file=sys.stderr)
    if args.json:
        print(result.to_json())
    elif args.summary:
        print(result.summary())
    else:
        print(repr(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
