"""``analyze()``: one verb that accepts every kind of model a user has at hand."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from rf_widgets.core.analysis import analyze_stack
from rf_widgets.core.graph import Stack
from rf_widgets.core.layers import Layer
from rf_widgets.core.results import Analysis
from rf_widgets.errors import ModelImportError

__all__ = ["analyze", "load_stack", "to_stack"]


def analyze(
    model: Any, input_size: int | Sequence[int] = 224, *, name: str | None = None, rules: Any = None
) -> Analysis:
    """Receptive-field analysis of ``model`` at ``input_size``.

    Parameters
    ----------
    model
        A ``torch.nn.Module`` (imported with torch.fx; the module is left as it was), a :class:`Stack`,
        a list of layers, or a spec string: ``"torchvision:resnet18"``, ``"timm:resnet50d"``,
        ``"package.module:factory"`` or the path of a JSON/YAML stack file.
    input_size
        The input resolution: one int for a square input, or one int per spatial axis.
    name
        What to call the model in reports (default: derived from the model).
    rules
        A :class:`~rf_widgets.torch_import.rules.RuleTable` of extra import rules for this call
        (consulted before the built-in ones; see docs/rules.md).

    Returns
    -------
    Analysis
        Frozen; ``repr()`` is the report, ``.at(other_size)`` re-analyses without re-tracing.

    Examples
    --------
    >>> import rf_widgets as rfw
    >>> result = rfw.analyze([rfw.conv("c1", 3, dilation=2), rfw.conv("c2", 3)], 16)
    >>> result.layer("c2").r_max
    (7, 7)
    """
    stack = to_stack(model, rules=rules)
    return analyze_stack(stack, input_size, name or stack.name)


def to_stack(model: Any, *, rules: Any = None) -> Stack:
    """The layer graph of ``model`` (see :func:`analyze` for what ``model`` may be)."""
    if isinstance(model, Stack):
        return model
    if isinstance(model, str):
        from rf_widgets.specs import load_model_spec

        loaded = load_model_spec(model)
        return loaded if isinstance(loaded, Stack) else _import_torch(loaded, model, rules)
    if _is_torch_module(model):
        return _import_torch(model, None, rules)
    if isinstance(model, Sequence) and model and all(isinstance(layer, Layer) for layer in model):
        return Stack(model)
    raise ModelImportError(
        "analyze() takes a torch.nn.Module, a Stack, a list of layers or a model spec string "
        f"such as 'torchvision:resnet18', got {type(model).__name__}"
    )


def load_stack(path: str) -> Stack:
    """Read a layer stack from a JSON or YAML file (see :mod:`rf_widgets.stackfile`)."""
    from rf_widgets.stackfile import read_stack

    return read_stack(path)


def _import_torch(model: Any, name: str | None, rules: Any = None) -> Stack:
    from rf_widgets.torch_import import import_model

    return import_model(model, name=name, rules=rules)


def _is_torch_module(model: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)
