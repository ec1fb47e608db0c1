"""Walk a torch.fx graph and build the layers of a :class:`~rf_widgets.core.graph.Stack`.

The walk is the only place that dispatches: every call node (module, function or method) is looked up
in the rule chain (:mod:`rf_widgets.torch_import.rules`) and its rule gets a
:class:`~rf_widgets.torch_import.call.Call`. What the rules themselves do lives by concern in
``ops_layers`` (layers with a window or none), ``ops_layout`` (reshapes, permutes, indexing), ``ops_merge``
(binary operations, concatenation, reductions) and ``ops_windows`` (attention, window partitions,
resampling of positions).

A node without a rule becomes an ``unknown`` layer; a rule that raises
:class:`~rf_widgets.torch_import.rules.Unsupported` too, with its reason. Any other exception (but the
:class:`~rf_widgets.errors.RFError` family, which is about the user's input and propagates) is a bug of
the rule: the node becomes ``unknown`` with the error as its reason, the layers the rule emitted before
it raised are dropped, the rest of the model is analysed, and a
:class:`~rf_widgets.errors.RuleFailureWarning` names the rule and the nodes. One rule's bug does not cost
the whole analysis; the warning keeps it from passing unnoticed.
"""

from __future__ import annotations

import io
import operator
import re
import warnings
from collections.abc import Iterable
from contextlib import redirect_stderr
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn

from rf_widgets.core.arithmetic import Diagnostic
from rf_widgets.core.layers import INPUT, Layer
from rf_widgets.errors import ModelImportError, RFError, RuleFailureWarning
from rf_widgets.torch_import.call import CONST, Act, Call, ShapeOf
from rf_widgets.torch_import.layout import Layout, standard
from rf_widgets.torch_import.rules import RuleTable, Unsupported
from rf_widgets.torch_import.tracing import fetch_attr

__all__ = ["CONST", "Act", "GraphBuilder"]

REFERENCE_SIZE = {1: 224, 2: 224, 3: 32}


class GraphBuilder:
    """Turns the nodes of one traced graph into layers, in graph order."""

    def __init__(
        self,
        gm: fx.GraphModule,
        ndim: int,
        in_channels: int,
        reference: tuple[int, ...] | None = None,
        chain: tuple[RuleTable, ...] = (),
    ) -> None:
        self.gm = gm
        self.ndim = ndim
        self.in_channels = in_channels
        self.reference = reference or (REFERENCE_SIZE.get(ndim, 32),) * ndim
        self.chain = chain
        self.layers: list[Layer] = []
        self.values: dict[fx.Node, Any] = {}
        self.diagnostics: list[Diagnostic] = []
        self.unknown: list[str] = []
        self.requirements: list[Any] = []  # MapRequirement of layers whose module fixes its map size
        self.outputs: list[tuple[str, Act]] = []
        self.failures: list[RuleFailure] = []
        # spatial sizes (at the reference input) of the maps flattened into tokens ("T"), for reshapes
        # of tokens back into a grid
        self.token_grids: set[tuple[int, ...]] = set()
        self._used: dict[str, int] = {}
        self._counted_params: set[int] = set()
        self._param_log: list[int] = []  # the order parameters were counted in, for _rollback
        self._bases: list[str] = []  # the name each layer was counted under in _used, for _rollback
        self._last_base = ""
        self._shapes: dict[str, tuple[int, ...]] | None = None
        self._seen_input = False

    # -- driver ---------------------------------------------------------------------------------------

    def build(self) -> list[Layer]:
        for node in self.gm.graph.nodes:
            self.values[node] = self._visit(node)
        self._warn_failures()
        return self.layers

    def _visit(self, node: fx.Node) -> Any:
        if node.op == "placeholder":
            if self._seen_input:
                return CONST
            self._seen_input = True
            return Act(INPUT, standard(self.ndim))
        if node.op == "get_attr":
            return CONST
        if node.op == "output":
            self.outputs = _named_outputs([fx.node.map_arg(node.args[0], lambda n: self.values[n])])
            return CONST
        args = fx.node.map_arg(node.args, lambda n: self.values[n])
        kwargs = fx.node.map_arg(node.kwargs, lambda n: self.values[n])
        module = self.gm.get_submodule(str(node.target)) if node.op == "call_module" else None
        call = Call(self, node, tuple(args), dict(kwargs), module, _op_name(node, module))
        if not call.acts:
            # Sizes read off a shape stay symbolic through indexing (``x.shape[-2:]``), so that an
            # interpolation to another tensor's size can be resolved at any input size.
            if node.target is operator.getitem and isinstance(args[0], ShapeOf):
                return _shape_item(args[0], args[1])
            return CONST
        rule = self._rule(node, module)
        if rule is None:
            return call.unknown(_no_rule(node, module, call.op))
        mark = self._mark()
        try:
            value = rule(call)
            if isinstance(value, dict):
                value = call.layer(value)
        except Unsupported as why:
            self._rollback(mark)
            return self._fresh(call).unknown(str(why) or "the rule does not cover these arguments")
        except RFError:
            raise  # the user's input (a rule's invalid layer fields, a model that breaks a requirement)
        except Exception as err:
            # a bug of the rule: this node becomes unknown with the error as its reason, the rest of the
            # model is still analysed, and a RuleFailureWarning names the rule (see build)
            self._rollback(mark)
            failure = self._failure(node, call, rule, err)
            self.failures.append(failure)
            return self._fresh(call).unknown(f"its rule failed ({failure.error})")
        return value

    def _rule(self, node: fx.Node, module: nn.Module | None) -> Any:
        for table in self.chain:
            if module is not None:
                rule = table.for_module(type(module))
            elif node.op == "call_method":
                rule = table.for_method(str(node.target))
            else:
                rule = table.for_function(node.target)
            if rule is not None:
                return rule
        if isinstance(node.target, type) and issubclass(node.target, tuple):
            return _tuple_of_args  # a namedtuple built from activations
        return None

    def _failure(self, node: fx.Node, call: Call, rule: Any, err: Exception) -> RuleFailure:
        module = getattr(rule, "__module__", None)
        name = getattr(rule, "__qualname__", None) or type(rule).__name__
        lines = str(err).strip().splitlines()
        error = f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__
        return RuleFailure(f"{module}.{name}" if module else name, call.op, node.name, _scope(node), error)

    def _warn_failures(self) -> None:
        """One :class:`RuleFailureWarning` per rule that raised, naming it and the nodes it failed at."""
        by_rule: dict[tuple[str, str], list[RuleFailure]] = {}
        for failure in self.failures:
            by_rule.setdefault((failure.rule, failure.op), []).append(failure)
        for (rule, op), failures in by_rule.items():
            first = failures[0]
            at = ", ".join(f"'{f.node}' (in {f.scope or 'the top level'})" for f in failures[:3])
            more = f" and {len(failures) - 3} more" if len(failures) > 3 else ""
            warnings.warn(
                f"the rule {rule} for {op} failed at fx node {at}{more}: {first.error}; "
                f"{'this node is' if len(failures) == 1 else 'these nodes are'} reported as unknown "
                "(a bug of the rule)",
                RuleFailureWarning,
                stacklevel=4,
            )

    # -- undoing a rule that failed halfway -----------------------------------------------------------

    def _mark(self) -> tuple[int, ...]:
        return (
            len(self.layers),
            len(self.diagnostics),
            len(self.unknown),
            len(self.requirements),
            len(self._param_log),
        )

    def _rollback(self, mark: tuple[int, ...]) -> None:
        """Drop what a rule emitted before it raised: its node is then one unknown layer."""
        layers, diagnostics, unknown, requirements, params = mark
        for base in self._bases[layers:]:
            self._used[base] -= 1
        del self._bases[layers:]
        del self.layers[layers:], self.diagnostics[diagnostics:], self.unknown[unknown:]
        del self.requirements[requirements:]
        for key in self._param_log[params:]:
            self._counted_params.discard(key)
        del self._param_log[params:]

    @staticmethod
    def _fresh(call: Call) -> Call:
        return Call(call.builder, call.node, call.args, call.kwargs, call.module, call.op)

    # -- state the rules use --------------------------------------------------------------------------

    def append(
        self, node: fx.Node, op: str, inputs: Iterable[Act], layout: Layout, fields: dict, suffix: str = ""
    ) -> Act:
        sources = tuple(dict.fromkeys(a.source for a in inputs))
        module = str(node.target) if node.op == "call_module" else None
        name = self._name(node, op, suffix)
        layer = Layer(name, op, inputs=sources, module=module, extra={"fx_node": node.name}, **fields)
        self.layers.append(layer)
        self._bases.append(self._last_base)
        return Act(name, layout)

    def take_params(self, parameters: Iterable[torch.Tensor]) -> int:
        """Parameter count not yet attributed to another layer (shared weights count once)."""
        total = 0
        for p in parameters:
            if id(p) not in self._counted_params:
                self._counted_params.add(id(p))
                self._param_log.append(id(p))
                total += p.numel()
        return total

    def parameters_of(self, node: fx.Node) -> list[torch.Tensor]:
        """Parameters a function call reads directly (``F.conv2d(x, self.weight)``, Swin's qkv weights)."""
        found: list[torch.Tensor] = []
        for arg in node.all_input_nodes:
            if arg.op == "get_attr":
                value = fetch_attr(self.gm, str(arg.target))
                if isinstance(value, nn.Parameter):
                    found.append(value)
        return found

    def _name(self, node: fx.Node, op: str, suffix: str = "") -> str:
        if node.op == "call_module":
            base = str(node.target)
        else:
            scope = _scope(node)
            base = f"{scope}.{op}" if scope else op
        base += f".{suffix}" if suffix else ""
        self._last_base = base
        count = self._used.get(base, 0) + 1
        self._used[base] = count
        return base if count == 1 else f"{base}:{count}"

    def shape_of(self, node: fx.Node) -> tuple[int, ...] | None:
        if node.op == "get_attr":  # a parameter or buffer: its shape is known without the shape pass
            value = fetch_attr(self.gm, str(node.target))
            if isinstance(value, torch.Tensor):
                return tuple(value.shape)
        if self._shapes is None:
            recorded = self.gm.meta.get("shapes")  # the export tracer's, at the reference size
            if recorded is not None:
                self._shapes = dict(recorded)
            else:
                self._shapes = _propagate_shapes(self.gm, self.reference, self.in_channels)
        return self._shapes.get(node.name)


# -- helpers ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleFailure:
    """A rule that raised at one node: which rule (``module.qualname``), where, and the error's first line."""

    rule: str
    op: str
    node: str
    scope: str
    error: str


def _tuple_of_args(call: Call) -> tuple[Any, ...]:
    return tuple(call.args)


def _shape_item(shape: ShapeOf, index: Any) -> Any:
    if isinstance(index, int) and -len(shape.roles) <= index < len(shape.roles):
        return ShapeOf(shape.source, (shape.roles[index],))
    if isinstance(index, slice):
        return ShapeOf(shape.source, shape.roles[index])
    return CONST


def _named_outputs(values: Iterable[Any]) -> list[tuple[str, Act]]:
    """The activations a model returns, named by their dict key or tuple position."""
    out: list[tuple[str, Act]] = []

    def walk(value: Any, label: str) -> None:
        if isinstance(value, Act):
            out.append((label, value))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{label}.{key}" if label else str(key))
        elif isinstance(value, (tuple, list)):
            for i, item in enumerate(value):
                walk(item, f"{label}.{i}" if label else str(i))

    for value in values:
        walk(value, "")
    return out


def _op_name(node: fx.Node, module: nn.Module | None) -> str:
    if module is not None:
        return type(module).__name__
    target = node.target
    if isinstance(target, str):
        return target
    return getattr(target, "__name__", str(target)).strip("_") or "op"


def _no_rule(node: fx.Node, module: nn.Module | None, op: str) -> str:
    hint = "(add one with rf_widgets.RuleTable: see docs/rules.md)"
    if module is not None:
        return f"the module type {type(module).__module__}.{op} has no rule {hint}"
    if node.op == "call_method":
        return f"the tensor method '{op}' has no rule {hint}"
    target = node.target
    where = getattr(target, "__module__", None) or "builtins"
    name = getattr(target, "__qualname__", op)
    return f"the function {where}.{name} has no rule {hint}"


def _scope(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return ""
    last = list(stack.values())[-1]
    path = last[0] if isinstance(last, tuple) else str(last)
    return re.sub(r"@\d+$", "", path)


def _propagate_shapes(
    gm: fx.GraphModule, reference: tuple[int, ...], in_channels: int
) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of every node at a reference size, computed on fake tensors (no real data)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.passes.shape_prop import ShapeProp

    shapes: dict[str, tuple[int, ...]] = {}
    # the placeholder lives where the weights do (a model built on the meta device has no CPU weights)
    device = next((p.device for p in gm.parameters()), torch.device("cpu"))
    flags = [(m, m.training) for m in gm.modules()]
    try:
        for m, _ in flags:
            m.training = False  # no running statistics are touched, even on fake data
        for channels in dict.fromkeys((in_channels, 3, 1)):
            try:
                with FakeTensorMode(allow_non_fake_inputs=True) as mode, redirect_stderr(io.StringIO()):
                    x = mode.from_tensor(torch.empty(1, channels, *reference, device=device))
                    ShapeProp(gm).propagate(x)
                break
            except RuntimeError:
                # ShapeProp reports a node that fails (the model's own code, at a channel count it
                # does not take) as a RuntimeError naming it: best effort, reshapes whose shapes stay
                # unknown become unknown layers
                continue
            except Exception as err:  # not a node of the model: a bug of this pass
                raise ModelImportError(
                    "the shape pass of the torch import failed before any node ran: "
                    f"{type(err).__name__}: {err}"
                ) from err
    finally:
        for m, flag in flags:
            m.training = flag
    for node in gm.graph.nodes:
        meta = node.meta.get("tensor_meta")
        if meta is not None and hasattr(meta, "shape"):
            shapes[node.name] = tuple(int(n) for n in meta.shape)
        elif isinstance(meta, (tuple, list)):
            shapes[node.name] = tuple(range(len(meta)))  # type: ignore[assignment]
    return shapes
