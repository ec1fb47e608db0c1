"""Model specs as strings: ``torchvision:NAME``, ``timm:NAME``, ``package.module:factory``, a file."""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import Any

from rf_widgets.errors import ModelImportError

__all__ = ["load_model_spec"]

STACK_SUFFIXES = (".json", ".yaml", ".yml")


def load_model_spec(spec: str) -> Any:
    """The model (an ``nn.Module``) or :class:`~rf_widgets.core.graph.Stack` a spec string names.

    Models are built without pretrained weights (nothing is downloaded).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ModelImportError(f"a model spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if spec.lower().endswith(STACK_SUFFIXES) or Path(spec).is_file():
        from rf_widgets.stackfile import read_stack

        return read_stack(spec)
    prefix, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ModelImportError(
            f"cannot understand the model spec '{spec}': use torchvision:NAME, timm:NAME, "
            "package.module:factory or the path of a .json/.yaml stack file"
        )
    if prefix == "torchvision":
        return _torchvision(rest)
    if prefix == "timm":
        return _timm(rest)
    return _factory(prefix, rest)


def _torchvision(name: str) -> Any:
    try:
        import torchvision
    except ImportError:
        raise ModelImportError(
            "torchvision:… specs need torchvision: pip install 'rf-widgets[torch]'"
        ) from None
    known = torchvision.models.list_models()
    if name not in known:
        raise ModelImportError(f"torchvision has no model '{name}'{_suggest(name, known)}")
    import inspect

    builder = torchvision.models.get_model_builder(name)
    options: dict[str, Any] = {"weights": None}
    if "weights_backbone" in inspect.signature(builder).parameters:
        options["weights_backbone"] = None  # segmentation and detection models: no backbone download
    return builder(**options)


def _timm(name: str) -> Any:
    try:
        import timm
    except ImportError:
        raise ModelImportError("timm:… specs need timm: pip install timm") from None
    known = timm.list_models()
    if name not in known:
        raise ModelImportError(f"timm has no model '{name}'{_suggest(name, known)}")
    return timm.create_model(name, pretrained=False)


def _factory(module_name: str, attribute: str) -> Any:
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ModelImportError(
            f"cannot import '{module_name}' for the spec '{module_name}:{attribute}': {err}"
        ) from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ModelImportError(f"'{module_name}' has no attribute '{attribute}'")
        target = getattr(target, part)
    if callable(target) and not _is_model(target):
        try:
            target = target()
        except Exception as err:
            raise ModelImportError(
                f"calling '{module_name}:{attribute}()' failed: {type(err).__name__}: {err}"
            ) from None
    return target


def _is_model(obj: Any) -> bool:
    from rf_widgets.core.graph import Stack

    if isinstance(obj, Stack):
        return True
    try:
        import torch
    except ImportError:
        return False
    return isinstance(obj, torch.nn.Module)


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""
