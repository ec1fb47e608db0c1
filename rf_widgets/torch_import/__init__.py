"""Import a ``torch.nn.Module`` as a :class:`~rf_widgets.core.graph.Stack` with torch.fx.

The model is traced symbolically (no forward pass over data); modules, functions and tensor methods are
mapped to layers by the rule tables of :mod:`rf_widgets.torch_import.rules` (the built-in one, plus any
:class:`RuleTable` passed as ``rules=`` or made active with ``with table:``). Reshapes are followed
with tensor shapes from a fake-tensor pass (no real data, no weights read) only when the graph has them.
Operations without a rule become layers of kind ``"unknown"`` with a diagnostic and an
:class:`~rf_widgets.errors.UnknownOperationWarning`; nothing is silently treated as identity.

The model, its training flags, hooks, parameters and device are left as they were, also on failure.
"""

from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn as nn

from rf_widgets.core.arithmetic import Diagnostic
from rf_widgets.core.graph import Stack
from rf_widgets.errors import ModelImportError
from rf_widgets.frontends.reporting import warn_unknown
from rf_widgets.torch_import.builder import REFERENCE_SIZE, GraphBuilder
from rf_widgets.torch_import.call import Call
from rf_widgets.torch_import.rules import RuleTable, Unsupported, iter_module_types, lookup_chain
from rf_widgets.torch_import.tracing import preserved, trace

__all__ = ["Call", "RuleTable", "Unsupported", "import_model", "import_traced", "leaf_types"]


def leaf_types(rules: RuleTable | None = None) -> tuple[type, ...]:
    """Module types that have a rule (they are leaves of the trace)."""
    return tuple(dict.fromkeys(iter_module_types(lookup_chain(rules))))


def import_model(
    model: nn.Module, *, name: str | None = None, ndim: int | None = None, rules: RuleTable | None = None
) -> Stack:
    """The layer graph of ``model``.

    Parameters
    ----------
    model
        Any ``torch.nn.Module``; it is not modified.
    name
        What to call it in reports (default: the class name).
    ndim
        Number of spatial axes; by default taken from the first convolution (2 when there is none).
    rules
        A :class:`RuleTable` consulted before the active and built-in rules, for this call only.

    Examples
    --------
    >>> import torch.nn as nn
    >>> stack = import_model(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()))
    >>> stack.names
    ('0', '1')
    """
    return import_traced(model, name=name, ndim=ndim, rules=rules)[0]


def import_traced(
    model: nn.Module, *, name: str | None = None, ndim: int | None = None, rules: RuleTable | None = None
) -> tuple[Stack, fx.GraphModule]:
    """The layer graph of ``model`` and the torch.fx graph it was read from.

    The graph module shares its submodules with ``model``. Every layer records the name of the fx node
    it came from in ``layer.extra["fx_node"]``, which is how :mod:`rf_widgets.strategies` finds the
    nodes to edit.
    """
    if not isinstance(model, nn.Module):
        raise ModelImportError(f"import_model needs a torch.nn.Module, got {type(model).__name__}")
    label = name or type(model).__name__
    ndim, in_channels = _input_geometry(model) if ndim is None else (ndim, _input_geometry(model)[1])
    chain = lookup_chain(rules)
    reference = _native_size(model, ndim) or (REFERENCE_SIZE.get(ndim, 32),) * ndim
    with preserved(model), torch.no_grad():
        try:
            example = _example_input(model, in_channels, reference)
            gm, how, opaque = trace(model, leaf_types(rules), example=example, chain=chain)
        except ModelImportError as err:
            backbone = getattr(model, "backbone", None)
            if isinstance(backbone, nn.Module):
                raise ModelImportError(
                    f"{err}. {label} cannot be traced as a whole (detection models take a list of images "
                    f"and return boxes): analyse its feature extractor instead, "
                    f"rf_widgets.analyze(model.backbone, size)"
                ) from err
            raise
        builder = GraphBuilder(gm, ndim, in_channels, reference, chain)
        layers = builder.build()
    tracer = "torch.export" if how.startswith("torch.export") else "torch.fx"
    if tracer == "torch.export":
        builder.diagnostics.insert(0, Diagnostic(None, "traced-with-export", _export_note(how)))
    if not layers:
        raise ModelImportError(f"{label} has no operation on its input that rf_widgets can see")
    warn_unknown(label, [f"'{n}'" for n in builder.unknown], stacklevel=2)
    stack = Stack(
        layers,
        ndim,
        label,
        metadata={
            "frontend": "torch",
            "import_method": how,
            "tracer": tracer,
            "opaque_modules": opaque,
            "diagnostics": tuple(builder.diagnostics),
            "outputs": tuple((label, act.source) for label, act in builder.outputs if act.source != "input"),
            "map_requirements": tuple(builder.requirements),
        },
    )
    return stack, gm


def _example_input(model: nn.Module, channels: int, size: tuple[int, ...]) -> torch.Tensor:
    """What torch.export runs the model on: one image of the reference size, where the weights are."""
    weight = next((p for p in model.parameters() if p.is_floating_point()), None)
    device = weight.device if weight is not None else torch.device("cpu")
    dtype = weight.dtype if weight is not None else torch.float32
    return torch.zeros(1, channels, *size, device=device, dtype=dtype)


def _export_note(how: str) -> str:
    return f"the graph is {how}; Python control flow that depends on the input size was fixed at that size"


def _native_size(model: nn.Module, ndim: int) -> tuple[int, ...] | None:
    """The input size a model was built for, when it says so (timm's ``pretrained_cfg``)."""
    config = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    size = config.get("input_size") if isinstance(config, dict) else None
    if isinstance(size, (tuple, list)) and len(size) == ndim + 1:
        return tuple(int(n) for n in size[1:])
    return None


def _input_geometry(model: nn.Module) -> tuple[int, int]:
    """Spatial axes and input channels, read off the first convolution."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return len(m.kernel_size), m.in_channels
    return 2, 3
