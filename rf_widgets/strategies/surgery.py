"""Carrying a strategy over to a torch model: torch.fx graph surgery on a copy.

The planners in :mod:`rf_widgets.strategies.planning` work on the layer graph; every layer imported
from torch remembers its fx node (``layer.extra["fx_node"]``). Here the model is deep-copied, the copy
traced the same way as for the analysis (same node names), and the plan applied to the copy's graph or
modules. The user's model is never touched.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import torch
import torch.fx as fx
import torch.nn as nn

from rf_widgets.core.graph import Stack
from rf_widgets.core.layers import Layer, adaptive_pool
from rf_widgets.errors import RFError
from rf_widgets.strategies.blocks import Stage, find_stages, move_blocks
from rf_widgets.strategies.planning import NotApplicable, ResolutionPlan, StridePlan, TrimPlan
from rf_widgets.strategies.source import Source
from rf_widgets.torch_import import import_traced, leaf_types
from rf_widgets.torch_import.tracing import fetch_attr, preserved, trace

if TYPE_CHECKING:
    from rf_widgets.strategies.edits import Edit

__all__ = ["HEAD_NAME", "TorchSource", "apply_plan"]

HEAD_NAME = "rfw_head"
"""The submodule the trim attaches: adaptive average pooling to 1, flatten, linear."""

STRIDED_MODULES = (
    nn.modules.conv._ConvNd,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._LPPoolNd,
)
PURE_ADDS = (operator.add, torch.add)
STRIDE_ARGUMENT = {
    **{f"max_pool{n}d": 2 for n in (1, 2, 3)},
    **{f"avg_pool{n}d": 2 for n in (1, 2, 3)},
    **{f"conv{n}d": 3 for n in (1, 2, 3)},
}


POOL_MODULES = (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd, nn.modules.pooling._LPPoolNd)
CONV_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
REFERENCE_SIDE = 224  # where the channel counts of the head are read when the model fails at the target


class TorchSource(Source):
    """A torch model, its layer graph and the fx graph that graph was read from.

    Forward-pass shapes (for a new head's channel counts) are read once per size; the model is never
    modified (its surgery works on a copy).
    """

    def __init__(self, model: nn.Module, name: str | None = None) -> None:
        stack, gm = import_traced(model, name=name)
        super().__init__(stack, name)
        self.model = model
        self.gm = gm
        self._shapes: dict[tuple[int, ...], dict[str, tuple[int, ...] | None]] = {}
        self._heads: dict[str, tuple[Layer, ...]] = {}
        self._trimmed_params: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        self._stages: dict[tuple[int, ...], tuple[Stage, ...]] = {}
        self._calls: dict[str, int] = {}
        for layer in stack.layers:
            if layer.module is not None:
                self._calls[layer.module] = self._calls.get(layer.module, 0) + 1

    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def head(self, cut: str, resolution: tuple[int, ...]) -> tuple[Layer, ...]:
        """Average pooling to 1, flatten and a linear layer from the cut's channels to the classes."""
        shapes = self.shapes(resolution)
        out = shapes.get("output")
        if out is None or len(out) != 2:
            got = f"shape {out}" if out else "no single tensor"
            raise NotApplicable(
                "trimming attaches a classification head, but the model's output is not one "
                f"(batch, classes) tensor at this size (got {got})"
            )
        node = self.node_of(cut)
        shape = shapes.get(node)
        ndim = self.stack.ndim
        if shape is None or len(shape) != ndim + 2:
            raise NotApplicable(
                f"the output of '{cut}' is not a (batch, channels, {ndim} spatial axes) tensor "
                f"(shape {shape}), so the new head cannot read its channels"
            )
        channels, classes = shape[1], out[1]
        linear = Layer(
            f"{HEAD_NAME}.2",
            "Linear",
            inputs=(f"{HEAD_NAME}.1",),
            module=f"{HEAD_NAME}.2",
            params=channels * classes + classes,
            macs_per_position=channels * classes,
            extra={"in_features": channels, "out_features": classes},
        )
        pool = adaptive_pool(f"{HEAD_NAME}.0", 1, inputs=(cut,), op=f"AdaptiveAvgPool{ndim}d")
        return (
            replace(pool, module=f"{HEAD_NAME}.0"),
            Layer(f"{HEAD_NAME}.1", "Flatten", "flatten", (f"{HEAD_NAME}.0",), module=f"{HEAD_NAME}.1"),
            linear,
        )

    def head_at_any_size(self, cut: str, resolution: tuple[int, ...]) -> tuple[Layer, ...]:
        """The trim's head; channel counts do not depend on the input size, so any size that runs will do."""
        if cut not in self._heads:
            try:
                self._heads[cut] = self.head(cut, resolution)
            except NotApplicable:
                self._heads[cut] = self.head(cut, self._reference(resolution))
        return self._heads[cut]

    def _reference(self, resolution: tuple[int, ...]) -> tuple[int, ...]:
        return (max(REFERENCE_SIDE, *resolution),) * self.stack.ndim

    def params_after_trim(self, plan: TrimPlan) -> int:
        """Parameters the kept part of the fx graph uses (each counted once), plus the new head."""
        key = (plan.cut, plan.bypassed)
        if key not in self._trimmed_params:
            through = {self.node_of(merge): self.node_of(skip) for merge, skip in plan.bypassed}
            kept = _ancestors(self.gm.graph, self.node_of(plan.cut), through)
            seen: dict[int, int] = {}
            for node in kept:
                if node.op == "call_module":
                    for p in self.gm.get_submodule(str(node.target)).parameters():
                        seen[id(p)] = p.numel()
                elif node.op == "get_attr":
                    value = fetch_attr(self.gm, str(node.target))
                    tensors = value.parameters() if isinstance(value, nn.Module) else [value]
                    for p in tensors:
                        if isinstance(p, nn.Parameter):
                            seen[id(p)] = p.numel()
            self._trimmed_params[key] = sum(seen.values()) + sum(layer.params for layer in plan.head)
        return self._trimmed_params[key]

    def stride_blocker(self, layer: str) -> str | None:
        return _stride_blocker(self.gm, self.stack, layer)

    def check_runs(self, size: tuple[int, ...]) -> None:
        """One forward pass at ``size``: the analysis cannot see every constraint (window partitions)."""
        self.shapes(size)

    def merge_blocker(self, layer: str) -> str | None:
        node = self._nodes.get(self.node_of(layer))
        if node is None or node.op != "call_function" or node.target not in PURE_ADDS or node.kwargs:
            return "only a plain `a + b` can be read through"
        return None

    @cached_property
    def _nodes(self) -> dict[str, fx.Node]:
        return {node.name: node for node in self.gm.graph.nodes}

    def node_of(self, layer: str) -> str:
        return _fx_node(self.stack, layer)

    def shapes(self, resolution: tuple[int, ...]) -> dict[str, tuple[int, ...] | None]:
        """Output shape of every fx node at ``resolution``."""
        if resolution not in self._shapes:
            self._shapes[resolution] = _node_shapes(self.model, self.gm, resolution)
        return self._shapes[resolution]

    def _module(self, layer: Layer) -> nn.Module | None:
        if layer.module is None or self._calls.get(layer.module, 0) != 1:
            return None
        return self.model.get_submodule(layer.module)

    def can_remove(self, layer: Layer) -> bool:
        return isinstance(self._module(layer), POOL_MODULES)

    def stages(self, resolution: tuple[int, ...]) -> tuple[Stage, ...]:
        if resolution not in self._stages:
            if self.params() != sum(layer.params for layer in self.stack.layers):
                found: tuple[Stage, ...] = ()  # a parameter outside the layers: no exact count after a move
            else:
                try:
                    shapes = self.shapes(resolution)
                except NotApplicable:
                    shapes = self.shapes(self._reference(resolution))
                found = find_stages(self.model, self.stack, shapes, _conv_params)
            self._stages[resolution] = found
        return self._stages[resolution]

    def can_rekernel(self, layer: Layer) -> bool:
        module = self._module(layer)
        return (
            type(module) in CONV_MODULES
            and getattr(module, "padding_mode", None) == "zeros"
            and layer.params == _conv_params(module)  # type: ignore[arg-type]
        )

    def apply(self, edits: Sequence[Edit], label: str, predicted: Stack, model: Any) -> Any:
        return apply_edits(self.model if model is None else model, edits, self.stack)

    def apply_plan(self, plan: TrimPlan | StridePlan | ResolutionPlan, kind: str, predicted: Stack) -> Any:
        return apply_plan(self.model, plan, self.stack)


def _conv_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def apply_edits(model: nn.Module, edits: Sequence[Edit], stack: Stack) -> nn.Module:
    """A copy of ``model`` with a candidate's edits; ``stack`` is the graph the edits name layers of."""
    clone = copy.deepcopy(model)
    strides: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    trim: TrimPlan | None = None
    rename: Any = str
    move = next((edit.move for edit in edits if edit.move is not None), None)
    if move is not None:  # first, on the plain copy: its containers are still the model's own
        move_blocks(clone, move)
        stack = import_traced(clone)[0]
        rename = move.rename
    for edit in edits:
        if edit.kind == "stem-kernel":
            name = rename(edit.layers[0])
            _set_module(
                clone,
                str(stack[name].module),
                _rekerneled(clone.get_submodule(str(stack[name].module)), edit.value),
            )
        elif edit.kind == "remove-pool":
            for name in map(rename, edit.layers):
                old = clone.get_submodule(str(stack[name].module))
                identity = nn.Identity()
                identity.train(old.training)
                _set_module(clone, str(stack[name].module), identity)
        elif edit.kind == "stride":
            strides += [(name, stack[name].stride, edit.value) for name in map(rename, edit.layers)]
        elif edit.kind == "trim":
            trim = edit.plan
    result: nn.Module = clone
    if strides:
        result = _restride(result, StridePlan(tuple(strides)), stack)
    if trim is not None:
        result = _trim(result, trim, stack)
    return result


def _rekerneled(old: nn.Module, kernel: tuple[int, ...]) -> nn.Module:
    """A fresh convolution like ``old`` with another kernel and "same" padding (odd kernels)."""
    conv: Any = old
    dilation = tuple(conv.dilation)
    padding = tuple((k - 1) * d // 2 for k, d in zip(kernel, dilation, strict=True))
    new = type(conv)(
        conv.in_channels,
        conv.out_channels,
        kernel,
        stride=conv.stride,
        padding=padding,
        dilation=dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    new.train(conv.training)
    return new


def _set_module(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def apply_plan(model: nn.Module, plan: TrimPlan | StridePlan | ResolutionPlan, stack: Stack) -> nn.Module:
    """A modified copy of ``model``; ``stack`` is the layer graph the plan was made on."""
    clone = copy.deepcopy(model)
    if isinstance(plan, ResolutionPlan):
        return clone
    if isinstance(plan, TrimPlan):
        return _trim(clone, plan, stack)
    return _restride(clone, plan, stack)


def _trim(model: nn.Module, plan: TrimPlan, stack: Stack) -> nn.Module:
    gm = _traced(model)
    if hasattr(gm, HEAD_NAME):
        raise RFError(f"cannot attach the new head: the model already has an attribute '{HEAD_NAME}'")
    nodes = {node.name: node for node in gm.graph.nodes}
    cut = nodes[_fx_node(stack, plan.cut)]
    linear = plan.head[-1]
    reference = next(model.parameters(), None)
    head = nn.Sequential(
        _adaptive_avg_pool(stack.ndim)(1),
        nn.Flatten(1),
        nn.Linear(int(linear.extra["in_features"]), int(linear.extra["out_features"])),  # type: ignore[call-overload]
    )
    if reference is not None:
        head = head.to(device=reference.device, dtype=reference.dtype)
    head.train(model.training)
    gm.add_submodule(HEAD_NAME, head)
    new_out = cut
    for i in range(len(head)):  # one node per head module: the graph keeps calling leaf modules only
        with gm.graph.inserting_after(new_out):
            new_out = gm.graph.call_module(f"{HEAD_NAME}.{i}", (new_out,))
    output = next(node for node in gm.graph.nodes if node.op == "output")
    output.args = (new_out,)
    for merge, skip in plan.bypassed:  # the add reads its skip input only: readers take the skip
        nodes[_fx_node(stack, merge)].replace_all_uses_with(nodes[_fx_node(stack, skip)])
    gm.graph.eliminate_dead_code()
    live = _ancestors(gm.graph, output.name)
    left = [node.name for node in gm.graph.nodes if node not in live and node.op != "placeholder"]
    if left:
        raise RFError(
            f"cannot trim {type(model).__name__} safely: {', '.join(left[:5])} would stay in the graph "
            "after the cut (operations with side effects)"
        )
    gm.delete_all_unused_submodules()
    _restore_containers(gm, model)
    gm.graph.lint()
    gm.recompile()
    return gm


CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _restore_containers(gm: fx.GraphModule, model: nn.Module) -> None:
    """Give the copied hierarchy back its ``Sequential``/``ModuleList``/``ModuleDict`` containers.

    A GraphModule recreates the path to each module it calls with plain ``nn.Module`` objects, so
    ``trimmed.features[0]`` would fail on a trimmed VGG. Each such container becomes an instance of
    the standard container class of the original (its own class may need arguments to build), with
    the remaining children under their original names, so the generated code still finds them.
    A ``Sequential`` whose children are themselves only holders (a ResNet stage, whose blocks the
    graph flattened) stays a plain holder: its ``forward`` could not run them, and TorchScript would
    refuse to compile it.
    """
    originals = dict(model.named_modules())
    for path, module in sorted(gm.named_modules(), key=lambda item: -item[0].count(".")):
        original = originals.get(path)
        if not path or type(module) is not nn.Module or not isinstance(original, CONTAINERS):
            continue
        base = next(cls for cls in CONTAINERS if isinstance(original, cls))
        if base is nn.Sequential and any(type(child) is nn.Module for child in module.children()):
            continue
        container = base()
        container._modules.update(module._modules)  # type: ignore[arg-type]
        container.train(module.training)
        parent, _, name = path.rpartition(".")
        setattr(gm.get_submodule(parent) if parent else gm, name, container)


def _restride(model: nn.Module, plan: StridePlan, stack: Stack) -> nn.Module:
    # Strides of modules change on the copy itself; only strides passed to functions need its graph.
    functional = any(stack[name].module is None for name, _, _ in plan.changes)
    gm = _traced(model) if functional else None
    for name, _, new in plan.changes:
        why = _stride_blocker(gm or model, stack, name)
        if why:
            raise RFError(f"cannot change the stride of '{name}': {why}")
        layer = stack[name]
        if layer.module is not None:
            module = model.get_submodule(layer.module)
            module.stride = _stride_like(module.stride, new)
            continue
        assert gm is not None
        node = next(n for n in gm.graph.nodes if n.name == _fx_node(stack, name))
        position = STRIDE_ARGUMENT[node.target.__name__]  # type: ignore[union-attr]
        if len(node.args) > position:
            node.args = (*node.args[:position], new, *node.args[position + 1 :])
        else:
            node.kwargs = {**node.kwargs, "stride": new}
    if gm is None:
        return model  # only module attributes changed: the copy keeps its own class and code
    gm.graph.lint()
    gm.recompile()
    return gm


def _stride_blocker(root: nn.Module, stack: Stack, name: str) -> str | None:
    """Why the stride of layer ``name`` cannot be rewritten in the torch model (None: it can).

    ``root`` is the model, or its GraphModule when a layer may be a function call.
    """
    layer = stack[name]
    if layer.module is not None:
        calls = sum(1 for other in stack.layers if other.module == layer.module)
        if calls > 1:
            return f"its module '{layer.module}' runs {calls} times and a change would apply to every call"
        module = root.get_submodule(layer.module)
        if not isinstance(module, STRIDED_MODULES):
            return f"{type(module).__name__} is not a convolution or pooling module rf_widgets can rewrite"
        return None
    nodes = root.graph.nodes if isinstance(root, fx.GraphModule) else ()
    node = next((n for n in nodes if n.name == layer.extra.get("fx_node")), None)
    function = getattr(getattr(node, "target", None), "__name__", None)
    if node is None or node.op != "call_function" or function not in STRIDE_ARGUMENT:
        return f"its stride is set in the model's code by {function or layer.op!r}, which cannot be rewritten"
    return None


# -- helpers ----------------------------------------------------------------------------------------------


def _traced(model: nn.Module) -> fx.GraphModule:
    """The fx graph of ``model``, traced exactly as :func:`import_traced` does (same node names)."""
    with preserved(model):
        gm = trace(model, leaf_types())[0]
    gm.training = model.training
    return gm


def _fx_node(stack: Stack, layer: str) -> str:
    node = stack[layer].extra.get("fx_node")
    if not isinstance(node, str):
        raise RFError(f"layer '{layer}' was not imported from a torch model; it has no fx node to edit")
    return node


def _ancestors(graph: fx.Graph, name: str, through: dict[str, str] | None = None) -> set[fx.Node]:
    """``name`` and the nodes it depends on; a node named in ``through`` is replaced by the one it maps to."""
    nodes = {node.name: node for node in graph.nodes}
    through = through or {}
    start = nodes[through.get(name, name)]
    seen = {start}
    todo = [start]
    while todo:
        for parent in todo.pop().all_input_nodes:
            parent = nodes[through.get(parent.name, parent.name)]
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def _stride_like(current: Any, new: tuple[int, ...]) -> Any:
    return new if isinstance(current, tuple) or len(set(new)) > 1 else new[0]


def _adaptive_avg_pool(ndim: int) -> type[nn.Module]:
    return {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[ndim]


class _ShapeRecorder(fx.Interpreter):
    """Runs the graph on real tensors and keeps every node's output shape.

    Modules are called through ``forward`` so the user's hooks do not fire.
    """

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.shapes: dict[str, tuple[int, ...] | None] = {}

    def run_node(self, n: fx.Node) -> Any:
        value = super().run_node(n)
        self.shapes[n.name] = tuple(value.shape) if isinstance(value, torch.Tensor) else None
        if n.op == "output":
            out = n.args[0]
            self.shapes["output"] = self.shapes.get(out.name) if isinstance(out, fx.Node) else None
        return value

    def call_module(self, target: Any, args: Any, kwargs: Any) -> Any:
        return self.fetch_attr(target).forward(*args, **kwargs)


def _node_shapes(
    model: nn.Module, gm: fx.GraphModule, resolution: tuple[int, ...]
) -> dict[str, tuple[int, ...] | None]:
    """Output shape of every node for one input of zeros at ``resolution``, in eval mode, without grad.

    A real forward pass of batch one: at the small sizes where strategies matter it takes milliseconds
    (fake tensors took seconds on DenseNet-121). Training flags are restored afterwards; nothing else
    in the model changes in eval mode.
    """
    channels = next((m.in_channels for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), 3)
    reference = next(model.parameters(), None)
    dtype = reference.dtype if reference is not None else torch.float32
    device = reference.device if reference is not None else torch.device("cpu")
    recorder = _ShapeRecorder(gm)
    with preserved(model), torch.no_grad():
        model.eval()
        try:
            recorder.run(torch.zeros(1, channels, *resolution, dtype=dtype, device=device))
        except Exception as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise NotApplicable(
                f"the model does not run at {'x'.join(map(str, resolution))} ({type(err).__name__}: {first})"
            ) from err
    return recorder.shapes
