"""``%load_ext rf_widgets`` then ``%rfa torchvision:resnet18 --resolution 32`` shows the Explorer.

A ``%rfa`` line may come from a notebook someone else wrote, so it accepts ``torchvision:NAME``,
``timm:NAME``, stack files and names of the notebook's variables, but imports no code
(``package.module:factory``) unless the line says ``--allow-code``.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

__all__ = ["register", "rfa"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="%rfa", add_help=False)
    parser.add_argument("model")
    parser.add_argument("--resolution", "-r", type=int, default=224)
    parser.add_argument("--image", default=None)
    parser.add_argument("--allow-code", action="store_true")
    return parser


def rfa(line: str, namespace: dict[str, Any] | None = None) -> Any:
    """Build the Explorer for a magic line; a name from the user's namespace is taken as the model."""
    from rf_widgets.errors import RFError
    from rf_widgets.widgets.explorer import Explorer

    try:
        args = _parser().parse_args(shlex.split(line))
    except (SystemExit, ValueError):
        raise RFError(
            f"usage: %rfa MODEL [--resolution N] [--image NAME] [--allow-code], got {line!r}"
        ) from None
    if namespace and args.model in namespace:
        return Explorer(namespace[args.model], image=args.image, input_size=args.resolution)
    from rf_widgets.core.graph import Stack
    from rf_widgets.specs import load_model_spec

    model = load_model_spec(args.model, allow_code=args.allow_code)
    name = None if isinstance(model, Stack) else args.model
    return Explorer(model, image=args.image, input_size=args.resolution, name=name)


def register(ipython: Any) -> None:
    def magic(line: str) -> Any:
        from IPython.display import display

        from rf_widgets.errors import RFError

        try:
            explorer = rfa(line, ipython.user_ns)
        except RFError as err:
            print(f"rf_widgets: {err}")
            return None
        display(explorer)
        return None

    ipython.register_magic_function(magic, magic_kind="line", magic_name="rfa")
