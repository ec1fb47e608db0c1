"""``%load_ext rf_widgets`` then ``%rfa torchvision:resnet18 --resolution 32`` shows the Explorer."""

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
    return parser


def rfa(line: str, namespace: dict[str, Any] | None = None) -> Any:
    """Build the Explorer for a magic line; a name from the user's namespace is taken as the model."""
    from rf_widgets.errors import RFError
    from rf_widgets.widgets.explorer import Explorer

    try:
        args = _parser().parse_args(shlex.split(line))
    except SystemExit:
        raise RFError(f"usage: %rfa MODEL [--resolution N] [--image NAME], got {line!r}") from None
    model = namespace[args.model] if namespace and args.model in namespace else args.model
    return Explorer(model, image=args.image, input_size=args.resolution)


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
