"""``analyze()``: one verb that accepts every kind of model a user has at hand."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from rf_widgets.core.analysis import MAX_INPUT_SIZE
from rf_widgets.core.graph import Stack
from rf_widgets.core.results import Analysis, analyze_stack
from rf_widgets.errors import ResolutionError, shown
from rf_widgets.frontends.registry import resolve

__all__ = ["MAX_INPUT_SIZE", "analyze", "check_input_size", "load_stack", "to_stack"]


def analyze(
    model: Any, input_size: int | Sequence[int] = 224, *, name: str | None = None, rules: Any = None
) -> Analysis:
    """Receptive-field analysis of ``model`` at ``input_size``.

    Parameters
    ----------
    model
        A ``torch.nn.Module`` (imported with torch.fx; the module is left as it was), a Keras 3
        model (Functional or Sequential, any backend; see docs/keras.md), a :class:`Stack`,
        a list of layers, or a spec string: ``"torchvision:resnet18"``, ``"timm:resnet50d"``,
        ``"package.module:factory"`` or the path of a JSON/YAML stack file. An ``onnx.ModelProto`` or
        the path of a ``.onnx`` file is read with the ``onnx`` package (see docs/onnx.md).
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
    check_input_size(input_size)  # before tracing: a bad size should not wait for a big model
    stack = to_stack(model, rules=rules)
    return analyze_stack(stack, input_size, name or stack.name)


def check_input_size(input_size: object) -> None:
    """Refuse anything but positive ints (one, or one per axis) up to :data:`MAX_INPUT_SIZE`.

    Strings, booleans and floats are refused rather than converted: ``"32"`` is not 32.
    """
    from rf_widgets.core.analysis import normalize_resolution

    text = shown(input_size)
    count = len(input_size) if isinstance(input_size, Sequence) and not isinstance(input_size, str) else 1
    if count == 0:
        raise ResolutionError(f"input size is empty, got {text}: give one positive int or one per axis")
    normalize_resolution(input_size, count)  # also refuses sizes above MAX_INPUT_SIZE


def to_stack(model: Any, *, allow_code: bool = True, rules: Any = None, name: str | None = None) -> Stack:
    """The layer graph of ``model`` (see :func:`analyze` for what ``model`` may be).

    ``allow_code=False`` refuses ``package.module:factory`` specs (see :mod:`rf_widgets.specs`);
    ``rules`` is a :class:`~rf_widgets.RuleTable` used for this import only; ``name`` names an
    imported model in reports (a spec string names itself). Which frontend imports it is
    :func:`rf_widgets.frontends.registry.resolve`'s answer.
    """
    return resolve(model, allow_code=allow_code).stack(name=name, rules=rules)


def load_stack(path: str | os.PathLike[str]) -> Stack:
    """Read a layer stack from a JSON or YAML file (see :mod:`rf_widgets.stackfile`)."""
    from rf_widgets.stackfile import read_stack

    return read_stack(path)
