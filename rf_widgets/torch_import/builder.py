"""Walk a torch.fx graph and build a :class:`~rf_widgets.core.graph.Stack` from the rule table.

Every node's value is one of: an activation (:class:`Act`: the layer that produced it and its layout),
a tuple of values (``chunk``, attention outputs), or a constant (anything computed from parameters,
shapes or literals alone, which adds no receptive field).
"""

from __future__ import annotations

import io
import operator
import re
from collections.abc import Iterable
from contextlib import redirect_stderr
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from rf_widgets.core.arithmetic import Diagnostic
from rf_widgets.core.layers import INPUT, Layer
from rf_widgets.torch_import import rules as R
from rf_widgets.torch_import.layout import Layout, is_spatial, mixing, regroup, standard
from rf_widgets.torch_import.tracing import fetch_attr

__all__ = ["Act", "GraphBuilder"]

REFERENCE_SIZE = {1: 224, 2: 224, 3: 32}


@dataclass(frozen=True)
class Act:
    """An activation tensor: produced by layer ``source`` (or the network input), dims as ``layout``."""

    source: str
    layout: Layout


CONST = object()
_METADATA_ATTRIBUTES = {"shape", "dtype", "device", "ndim", "is_cuda", "requires_grad", "layout", "is_sparse"}
_CHECKS = {torch._assert, len, isinstance, torch.is_tensor}


class GraphBuilder:
    """Turns the nodes of one traced graph into layers, in graph order."""

    def __init__(
        self, gm: fx.GraphModule, ndim: int, in_channels: int, reference: tuple[int, ...] | None = None
    ) -> None:
        self.gm = gm
        self.ndim = ndim
        self.in_channels = in_channels
        self.reference = reference or (REFERENCE_SIZE[ndim],) * ndim
        self.layers: list[Layer] = []
        self.values: dict[fx.Node, Any] = {}
        self.diagnostics: list[Diagnostic] = []
        self.unknown: list[str] = []
        self._used: dict[str, int] = {}
        self._counted_params: set[int] = set()
        self._shapes: dict[str, tuple[int, ...]] | None = None
        self._seen_input = False

    # -- driver ---------------------------------------------------------------------------------------

    def build(self) -> list[Layer]:
        for node in self.gm.graph.nodes:
            self.values[node] = self._visit(node)
        return self.layers

    def _visit(self, node: fx.Node) -> Any:
        if node.op == "placeholder":
            if self._seen_input:
                return CONST
            self._seen_input = True
            return Act(INPUT, standard(self.ndim))
        if node.op == "get_attr" or node.op == "output":
            return CONST
        args = fx.node.map_arg(node.args, lambda n: self.values[n])
        kwargs = fx.node.map_arg(node.kwargs, lambda n: self.values[n])
        if not _acts(args) and not _acts(kwargs):
            return CONST
        try:
            if node.op == "call_module":
                return self._module(node, self.gm.get_submodule(str(node.target)), args, kwargs)
            if node.op == "call_method":
                return self._method(node, str(node.target), args, kwargs)
            return self._function(node, node.target, args, kwargs)
        except (TypeError, ValueError, IndexError, KeyError, AttributeError) as err:
            # A rule met arguments it cannot read (computed kernel sizes, unusual signatures).
            acts = _acts(args) + _acts(kwargs)
            op = (
                node.target
                if isinstance(node.target, str)
                else getattr(node.target, "__name__", str(node.target))
            )
            if node.op == "call_module":
                op = type(self.gm.get_submodule(str(node.target))).__name__
            return self._unknown(
                node, str(op), acts, acts[0].layout, f"its arguments could not be read ({err})"
            )

    # -- emitting layers ------------------------------------------------------------------------------

    def _emit(self, node: fx.Node, op: str, inputs: Iterable[Act], layout: Layout, **fields: Any) -> Act:
        sources = tuple(dict.fromkeys(a.source for a in inputs))
        module = str(node.target) if node.op == "call_module" else None
        name = self._name(node, op)
        layer = Layer(name, op, inputs=sources, module=module, extra={"fx_node": node.name}, **fields)
        self.layers.append(layer)
        return Act(name, layout)

    def _elementwise(
        self, node: fx.Node, op: str, inputs: Iterable[Act], layout: Layout, **extra: Any
    ) -> Act:
        return self._emit(node, op, inputs, layout, **extra)

    def _global(self, node: fx.Node, op: str, inputs: Iterable[Act], layout: Layout, **extra: Any) -> Act:
        return self._emit(node, op, inputs, layout, kind="global", **extra)

    def _unknown(self, node: fx.Node, op: str, inputs: Iterable[Act], layout: Layout, why: str) -> Act:
        act = self._emit(node, op, inputs, layout, kind="unknown", note=why)
        self.unknown.append(act.source)
        self.diagnostics.append(
            Diagnostic(
                act.source,
                "unknown-op",
                f"'{act.source}' ({op}) has no receptive-field rule: {why}; values after it assume it "
                "adds no context and are lower bounds",
            )
        )
        return act

    def _mix(
        self, node: fx.Node, op: str, inputs: list[Act], roles: list[Any], layout: Layout, **extra: Any
    ) -> Act:
        how = mixing(roles)
        if how == "global":
            return self._global(node, op, inputs, layout, **extra)
        if how == "unknown":
            return self._unknown(
                node,
                op,
                inputs,
                layout,
                "it mixes positions along a dimension that holds part of the spatial positions "
                "(a window or grid partition)",
            )
        return self._elementwise(node, op, inputs, layout, **extra)

    def _name(self, node: fx.Node, op: str) -> str:
        if node.op == "call_module":
            base = str(node.target)
        else:
            scope = _scope(node)
            base = f"{scope}.{op}" if scope else op
        count = self._used.get(base, 0) + 1
        self._used[base] = count
        return base if count == 1 else f"{base}:{count}"

    def _params(self, module: nn.Module) -> dict[str, int]:
        total = 0
        for p in module.parameters():
            if id(p) not in self._counted_params:
                self._counted_params.add(id(p))
                total += p.numel()
        return {"params": total}

    # -- modules --------------------------------------------------------------------------------------

    def _module(self, node: fx.Node, module: nn.Module, args: tuple, kwargs: dict) -> Any:
        acts = _acts(args) + _acts(kwargs)
        x = acts[0]
        op = type(module).__name__
        rule = _lookup(R.module_rules(), type(module))
        if rule is not None:
            fields = dict(rule(module))
            fields.setdefault("macs_per_position", 0)
            return self._fields(node, op, acts, x, fields, **self._params(module))
        params = self._params(module)
        if isinstance(module, R.ELEMENTWISE_MODULES):
            return self._elementwise(node, op, acts, x.layout, **params)
        if isinstance(module, (nn.Linear, nn.LazyLinear)):
            macs = module.in_features * module.out_features
            return self._mix(node, op, acts, [x.layout[-1]], x.layout, macs_per_position=macs, **params)
        if isinstance(module, nn.Bilinear):
            return self._mix(node, op, acts, [a.layout[-1] for a in acts], x.layout, **params)
        if isinstance(module, (nn.Softmax, nn.LogSoftmax, nn.Softmin)):
            dim = module.dim if module.dim is not None else -1
            return self._mix(node, op, acts, [x.layout[dim]], x.layout, **params)
        if isinstance(module, nn.Flatten):
            return self._flatten(node, op, x, module.start_dim, module.end_dim, **params)
        if isinstance(module, nn.MultiheadAttention):
            seq = 1 if module.batch_first else 0
            out = self._mix(node, op, acts, [a.layout[seq] for a in acts], x.layout, **params)
            return (out, CONST)
        if isinstance(
            module,
            (
                nn.TransformerEncoderLayer,
                nn.TransformerDecoderLayer,
                nn.TransformerEncoder,
                nn.TransformerDecoder,
                nn.Transformer,
            ),
        ):
            seq = 1 if getattr(module, "batch_first", False) else 0
            return self._mix(node, op, acts, [a.layout[seq] for a in acts], x.layout, **params)
        for cls, why in R.UNKNOWN_MODULES.items():
            if isinstance(module, cls):
                return self._unknown(node, op, acts, x.layout, why)
        return self._unknown(
            node,
            op,
            acts,
            x.layout,
            f"the module type {type(module).__module__}.{op} has no rule "
            "(register one with rf_widgets.torch_import.register_module_rule)",
        )

    def _fields(self, node: fx.Node, op: str, acts: list[Act], x: Act, fields: dict, **extra: Any) -> Any:
        """Emit a layer from rule fields, mapping spatial parameters onto the layout's spatial dims."""
        if fields.get("kind") == "pad":
            return self._pad(node, op, acts, x, fields["pad"], **extra)
        if fields.get("kind", "window") == "window" and not _is_channels_first(x.layout, self.ndim):
            if mixing(list(x.layout)) == "elementwise":
                return self._elementwise(node, op, acts, x.layout, **extra)
            return self._unknown(
                node,
                op,
                acts,
                x.layout,
                f"a spatial window applied to a tensor with dimensions {_show_layout(x.layout)}",
            )
        return self._emit(node, op, acts, x.layout, **fields, **extra)

    # -- functions and methods ------------------------------------------------------------------------

    def _function(self, node: fx.Node, target: Any, args: tuple, kwargs: dict) -> Any:
        acts = _acts(args) + _acts(kwargs)
        x = acts[0]
        op = getattr(target, "__name__", str(target)).strip("_") or "op"
        custom = R.function_rules().get(target)
        if custom is not None:
            plain_args = [None if isinstance(a, Act) else a for a in args]
            plain_kwargs = {k: None if isinstance(v, Act) else v for k, v in kwargs.items()}
            return self._fields(node, op, acts, x, dict(custom(*plain_args, **plain_kwargs)))
        if target is operator.getitem:
            return self._getitem(node, args[0], args[1])
        if target is getattr:
            if args[1] in _METADATA_ATTRIBUTES:
                return CONST
            if args[1] in ("T", "mT") and isinstance(args[0], Act):
                return Act(x.source, x.layout[:-2] + (x.layout[-1], x.layout[-2]))
        if target in _CHECKS:
            return CONST
        if target in R.BINARY_OPS:
            return self._binary(node, R.BINARY_OPS[target], acts)
        if target in R.ELEMENTWISE_FUNCTIONS:
            return self._elementwise(node, op, acts, x.layout)
        if target in R.REDUCTIONS:
            return self._reduce(
                node,
                R.REDUCTIONS[target],
                x,
                _arg(args, kwargs, 1, "dim", None),
                _arg(args, kwargs, 2, "keepdim", False),
            )
        if target in R.UNKNOWN_FUNCTIONS:
            return self._unknown(node, op, acts, x.layout, R.UNKNOWN_FUNCTIONS[target])
        handler = _FUNCTIONS.get(target)
        if handler is not None:
            return handler(self, node, args, kwargs, acts)
        if _is_tuple_type(target):
            return tuple(args)
        name = getattr(target, "__qualname__", op)
        if name == "stochastic_depth":
            return self._elementwise(node, op, acts, x.layout)
        if name == "shifted_window_attention":
            return self._unknown(
                node,
                "shifted_window_attention",
                acts,
                x.layout,
                "Swin's shifted window attention has no exact receptive-field rule yet",
            )
        if name == "_patch_merging_pad":
            # Pads H and W at the high end up to an even size: no change to r, jump or offset.
            return self._elementwise(node, "pad_to_even", acts, x.layout)
        module_name = getattr(target, "__module__", None) or "builtins"
        return self._unknown(
            node,
            op,
            acts,
            x.layout,
            f"the function {module_name}.{name} has no rule "
            "(register one with rf_widgets.torch_import.register_function_rule)",
        )

    def _method(self, node: fx.Node, name: str, args: tuple, kwargs: dict) -> Any:
        this = args[0]
        if not isinstance(this, Act):
            acts = _acts(args) + _acts(kwargs)
            if name in R.BINARY_OPS:
                return self._binary(node, R.BINARY_OPS[name], acts)
            return self._unknown(
                node,
                name,
                acts,
                acts[0].layout,
                f"the method '{name}' on a constant with activation arguments has no rule",
            )
        acts = _acts(args) + _acts(kwargs)
        if name in R.LAYOUT_METHODS:
            return this
        if name in ("size", "dim", "numel", "ndimension", "nelement", "get_device"):
            return CONST
        if name in R.ELEMENTWISE_METHODS:
            return self._elementwise(node, name, acts, this.layout)
        if name in R.BINARY_OPS:
            return self._binary(node, R.BINARY_OPS[name], acts)
        if name in R.REDUCTIONS:
            return self._reduce(
                node,
                R.REDUCTIONS[name],
                this,
                _arg(args, kwargs, 1, "dim", None),
                _arg(args, kwargs, 2, "keepdim", False),
            )
        handler = _METHODS.get(name)
        if handler is not None:
            return handler(self, node, args, kwargs, acts)
        return self._unknown(node, name, acts, this.layout, f"the tensor method '{name}' has no rule")

    # -- rules that need more than a table ------------------------------------------------------------

    def _binary(self, node: fx.Node, op: str, acts: list[Act]) -> Act:
        layout = max((a.layout for a in acts), key=len)
        return self._elementwise(node, op, acts, layout)

    def _reduce(self, node: fx.Node, op: str, x: Act, dim: Any, keepdim: Any) -> Act:
        dims = _dims(dim, len(x.layout))
        layout = x.layout if keepdim else tuple(r for d, r in enumerate(x.layout) if d not in dims)
        return self._mix(node, op, [x], [x.layout[d] for d in dims], layout)

    def _flatten(self, node: fx.Node, op: str, x: Act, start: int, end: int, **extra: Any) -> Act:
        rank = len(x.layout)
        start, end = start % rank, end % rank
        merged = list(x.layout[start : end + 1])
        if len(merged) <= 1:
            return x
        spatial = [r for r in merged if is_spatial(r)]
        if not spatial:
            role: Any = "C"
        elif merged == list(range(self.ndim)):
            role = "T"
        elif all(isinstance(r, int) for r in spatial) and len(spatial) == self.ndim:
            layout = x.layout[:start] + ("F",) + x.layout[end + 1 :]
            return self._emit(node, op, [x], layout, kind="flatten", **extra)
        else:
            role = "X"
        return Act(x.source, x.layout[:start] + (role,) + x.layout[end + 1 :])

    def _pad(self, node: fx.Node, op: str, acts: list[Act], x: Act, pad: Any, **extra: Any) -> Act:
        pad = tuple(int(p) for p in pad)
        per_dim: dict[int, tuple[int, int]] = {}
        for k in range(len(pad) // 2):
            per_dim[len(x.layout) - 1 - k] = (pad[2 * k], pad[2 * k + 1])
        padding = [(0, 0)] * self.ndim
        for d, pair in per_dim.items():
            role = x.layout[d]
            if isinstance(role, int):
                padding[role] = pair
            elif role in ("T", "X") and pair != (0, 0):
                return self._unknown(node, op, acts, x.layout, "padding along flattened spatial positions")
        if all(p == (0, 0) for p in padding):
            return self._elementwise(node, op, acts, x.layout, **extra)
        return self._emit(node, op, acts, x.layout, kernel=(1,) * self.ndim, padding=tuple(padding), **extra)

    def _getitem(self, node: fx.Node, value: Any, index: Any) -> Any:
        if isinstance(value, (tuple, list)):
            return value[index] if isinstance(index, int) else CONST
        if not isinstance(value, Act):
            return CONST
        index = index if isinstance(index, tuple) else (index,)
        layout = list(value.layout)
        if any(isinstance(i, Act) for i in index):
            return self._unknown(
                node, "getitem", [value], value.layout, "indexing with a tensor of positions"
            )
        if Ellipsis in index:
            at = index.index(Ellipsis)
            fill = len(layout) - (len([i for i in index if i is not None]) - 1)
            index = index[:at] + (slice(None),) * fill + index[at + 1 :]
        out: list[Any] = []
        kernel, stride, padding = [1] * self.ndim, [1] * self.ndim, [(0, 0)] * self.ndim
        d = 0
        for item in index:
            if item is None:
                out.append("N")
                continue
            if d >= len(layout):
                break
            role = layout[d]
            if isinstance(item, slice):
                if item == slice(None):
                    out.append(role)
                elif isinstance(role, int):
                    start, stop, step = item.start or 0, item.stop, item.step or 1
                    if start < 0 or (stop is not None and stop > 0) or step < 1:
                        return self._unknown(
                            node,
                            "getitem",
                            [value],
                            value.layout,
                            f"the slice {item} of a spatial axis depends on its size",
                        )
                    stride[role] = step
                    padding[role] = (-start, 0 if stop is None else stop)
                    out.append(role)
                elif role in ("T", "X"):
                    out.append("X")
                else:
                    out.append(role)
            elif isinstance(item, int):
                if isinstance(role, int):
                    return self._unknown(
                        node, "getitem", [value], value.layout, "selecting one position of a spatial axis"
                    )
                if role in ("T", "Tc", "X"):
                    rest = tuple(out) + tuple(layout[d + 1 :])
                    if role == "Tc" and item == 0:
                        # A token concatenated as a constant (ViT's class token): it has no local path
                        # and sees the image only through the attention that mixed all tokens.
                        return self._global(node, "select", [value], rest)
                    # One token of the map: its field is that of any unit of the map.
                    return self._emit(node, "select", [value], rest)
            else:
                return self._unknown(
                    node, "getitem", [value], value.layout, f"indexing with {type(item).__name__}"
                )
            d += 1
        out.extend(layout[d:])
        if stride != [1] * self.ndim or padding != [(0, 0)] * self.ndim:
            return self._emit(
                node,
                "slice",
                [value],
                tuple(out),
                kernel=tuple(kernel),
                stride=tuple(stride),
                padding=tuple(padding),
            )
        return Act(value.source, tuple(out))

    # -- shapes, for reshapes -------------------------------------------------------------------------

    def shape_of(self, node: fx.Node) -> tuple[int, ...] | None:
        if self._shapes is None:
            self._shapes = _propagate_shapes(self.gm, self.reference, self.in_channels)
        return self._shapes.get(node.name)


# -- handlers keyed by function or method -------------------------------------------------------------


def _reshape(b: GraphBuilder, node: fx.Node, args: tuple, kwargs: dict, acts: list[Act]) -> Any:
    x = acts[0]
    before = b.shape_of(node.args[0]) if isinstance(node.args[0], fx.Node) else None
    after = b.shape_of(node)
    if before is None or after is None:
        return b._unknown(
            node,
            node.target if isinstance(node.target, str) else "reshape",
            acts,
            x.layout,
            "the shapes around this reshape could not be worked out",
        )
    layout = regroup(x.layout, before, after, b.ndim)
    if layout is None:
        return b._unknown(node, "reshape", acts, x.layout, f"a reshape from {before} to {after}")
    return Act(x.source, layout)


def _permute(b: GraphBuilder, node: fx.Node, args: tuple, kwargs: dict, acts: list[Act]) -> Any:
    x = acts[0]
    given = args[1:] if len(args) > 1 else (kwargs.get("dims") or ())
    dims = given[0] if len(given) == 1 and isinstance(given[0], (tuple, list)) else given
    return Act(x.source, tuple(x.layout[int(d) % len(x.layout)] for d in dims))


def _transpose(b: GraphBuilder, node: fx.Node, args: tuple, kwargs: dict, acts: list[Act]) -> Any:
    x = acts[0]
    rank = len(x.layout)
    d0 = int(_arg(args, kwargs, 1, "dim0", 0)) % rank
    d1 = int(_arg(args, kwargs, 2, "dim1", 1)) % rank
    layout = list(x.layout)
    layout[d0], layout[d1] = layout[d1], layout[d0]
    return Act(x.source, tuple(layout))


def _movedim(b: GraphBuilder, node: fx.Node, args: tuple, kwargs: dict, acts: list[Act]) -> Any:
    x = acts[0]
    rank = len(x.layout)
    src = _dims(_arg(args, kwargs, 1, "source", 0), rank)
    dst = _dims(_arg(args, kwargs, 2, "destination", 0), rank)
    order = [d for d in range(rank) if d not in src]
    for s, t in sorted(zip(dst, src, strict=True)):
        order.insert(s, t)
    return Act(x.source, tuple(x.layout[d] for d in order))


def _flatten_fn(b: GraphBuilder, node: fx.Node, args: tuple, kwargs: dict, acts: list[Act]) -> Any:
    start = int(_arg(args, kwargs, 1, "start_dim", 0))
    end = int(_arg(args, kwargs, 2, "end_dim", -1))
    return b._flatten(node, "flatten", acts[0], start, end)


def _unsqueeze(b: GraphBuilder, node: fx.Node, args: tuple, kwargs: dict, acts: list[Act]) -> Any:
    x = acts[0]
    d = int(_arg(args, kwargs, 1, "dim", 0))
    d = d % (len(x.layout) + 1)
    return Act(x.source, x.layout[:d] + ("N",) + x.layout[d:])


def _squeeze(b: GraphBuilder, node: fx.Node, args: tuple, kwargs: dict, acts: list[Act]) -> Any:
    x = acts[0]
    dim = _arg(args, kwargs, 1, "dim", None)
    if dim is None:
        shape = b.shape_of(node.args[0]) if isinstance(node.args[0], fx.Node) else None
        if shape is None:
            return b._unknown(
                node, "squeeze", acts, x.layout, "squeeze without a dimension on a tensor of unknown shape"
            )
        dims = {d for d, n in enumerate(shape) if n == 1}
    else:
        dims = set(_dims(dim, len(x.layout)))
    return Act(x.source, tuple(r for d, r in enumerate(x.layout) if d not in dims))


def _same(b: GraphBuilder, node: fx.Node, args: tuple, kwargs: dict, acts: list[Act]) -> Any:
    return acts[0]


def _split(b: GraphBuilder, node: fx.Node, args: tuple, kwargs: dict, acts: list[Act]) -> Any:
    x = acts[0]
    name = _target_name(node)
    dim = int(_arg(args, kwargs, 2, "dim", 0)) % len(x.layout)
    if is_spatial(x.layout[dim]):
        return b._unknown(node, name, acts, x.layout, "splitting along a spatial axis")
    count = args[1] if name == "chunk" and isinstance(args[1], int) else None
    if count is None:
        shape = b.shape_of(node)
        count = len(shape) if isinstance(shape, tuple) else 64
    return tuple(x for _ in range(max(int(count), 1)))


def _unbind(b: GraphBuilder, node: fx.Node, args: tuple, kwargs: dict, acts: list[Act]) -> Any:
    x = acts[0]
    dim = int(_arg(args, kwargs, 1, "dim", 0)) % len(x.layout)
    if is_spatial(x.layout[dim]):
        return b._unknown(node, "unbind", acts, x.layout, "unbinding a spatial axis")
    layout = x.layout[:dim] + x.layout[dim + 1 :]
    return tuple(Act(x.source, layout) for _ in range(64))


def _cat(b: GraphBuilder, node: fx.Node, args: tuple, kwargs: dict, acts: list[Act]) -> Any:
    x = acts[0]
    name = _target_name(node)
    dim = int(_arg(args, kwargs, 1, "dim", 0)) % len(x.layout)
    if name == "stack":
        return b._elementwise(node, "stack", acts, x.layout[:dim] + ("C",) + x.layout[dim:])
    role = x.layout[dim]
    if not is_spatial(role):
        return b._elementwise(node, "concat" if len(acts) > 1 else "cat", acts, x.layout)
    if len(acts) == 1:
        # One activation and constants (a class token): positions are added, none are mixed.
        tensors = args[0] if isinstance(args[0], (list, tuple)) else args
        layout = x.layout
        if role in ("T", "Tc") and not isinstance(tensors[0], Act):
            layout = x.layout[:dim] + ("Tc",) + x.layout[dim + 1 :]
        return b._elementwise(node, "cat", acts, layout)
    return b._unknown(node, "cat", acts, x.layout, "concatenating activations along a spatial axis")


def _softmax(b: GraphBuilder, node: fx.Node, args: tuple, kwargs: dict, acts: list[Act]) -> Any:
    x = acts[0]
    dim = _arg(args, kwargs, 1, "dim", -1)
    dim = -1 if dim is None else int(dim)
    return b._mix(node, "softmax", acts, [x.layout[dim]], x.layout)


def _matmul(b: GraphBuilder, node: fx.Node, args: tuple, kwargs: dict, acts: list[Act]) -> Any:
    left, right = args[0], args[1]
    roles: list[Any] = []
    if isinstance(left, Act):
        roles.append(left.layout[-1])
    if isinstance(right, Act):
        roles.append(right.layout[-2] if len(right.layout) > 1 else right.layout[-1])
    if isinstance(left, Act) and isinstance(right, Act):
        layout = left.layout[:-1] + (right.layout[-1],)
    elif isinstance(left, Act):
        layout = left.layout
    else:
        layout = right.layout[:-2] + ("C", right.layout[-1])
    return b._mix(node, "matmul", acts, roles, layout)


def _einsum(b: GraphBuilder, node: fx.Node, args: tuple, kwargs: dict, acts: list[Act]) -> Any:
    equation = args[0]
    operands = args[1:] if len(args) > 2 or not isinstance(args[1], (list, tuple)) else args[1]
    lhs, _, rhs = equation.replace(" ", "").partition("->")
    if "..." in equation or not rhs:
        return b._unknown(node, "einsum", acts, acts[0].layout, f"the einsum '{equation}'")
    role_of: dict[str, Any] = {}
    for spec, operand in zip(lhs.split(","), operands, strict=False):
        if isinstance(operand, Act):
            for letter, role in zip(spec, operand.layout, strict=False):
                role_of.setdefault(letter, role)
    contracted = [role_of[c] for c in role_of if c not in rhs]
    layout = tuple(role_of.get(c, "C") for c in rhs)
    return b._mix(node, "einsum", acts, contracted, layout)


def _attention(b: GraphBuilder, node: fx.Node, args: tuple, kwargs: dict, acts: list[Act]) -> Any:
    key = args[1] if len(args) > 1 else kwargs.get("key")
    roles = [key.layout[-2]] if isinstance(key, Act) else []
    return b._mix(node, "attention", acts, roles, acts[0].layout)


def _linear(b: GraphBuilder, node: fx.Node, args: tuple, kwargs: dict, acts: list[Act]) -> Any:
    x = acts[0]
    return b._mix(node, "linear", acts, [x.layout[-1]], x.layout)


def _conv_fn(b: GraphBuilder, node: fx.Node, args: tuple, kwargs: dict, acts: list[Act]) -> Any:
    x = acts[0]
    weight_node = node.args[1] if len(node.args) > 1 else node.kwargs.get("weight")
    weight = _static_tensor(b.gm, weight_node)
    if weight is None:
        return b._unknown(
            node, "conv", acts, x.layout, "a functional convolution whose weight is not a parameter"
        )
    ndim = weight.dim() - 2
    fields = R.conv_rule(
        tuple(weight.shape[2:]),
        _arg(args, kwargs, 3, "stride", 1),
        _arg(args, kwargs, 5, "dilation", 1),
        _arg(args, kwargs, 4, "padding", 0),
        ndim,
    )
    return b._fields(node, "conv", acts, x, fields)


def _pool_fn(b: GraphBuilder, node: fx.Node, args: tuple, kwargs: dict, acts: list[Act]) -> Any:
    x = acts[0]
    name = _target_name(node)
    ndim = int(name[-2])
    kernel = _arg(args, kwargs, 1, "kernel_size", 1)
    stride = _arg(args, kwargs, 2, "stride", None)
    padding = _arg(args, kwargs, 3, "padding", 0)
    if name.startswith("max"):
        dilation = _arg(args, kwargs, 4, "dilation", 1)
        ceil_mode = _arg(args, kwargs, 5, "ceil_mode", False)
    else:
        dilation = 1
        ceil_mode = _arg(args, kwargs, 4, "ceil_mode", False)
    fields = R.pool_rule(kernel, stride, padding, dilation, bool(ceil_mode), ndim)
    return b._fields(node, name.removesuffix("_with_indices"), acts, x, fields)


def _adaptive_fn(b: GraphBuilder, node: fx.Node, args: tuple, kwargs: dict, acts: list[Act]) -> Any:
    x = acts[0]
    name = _target_name(node)
    ndim = int(name[-2])
    size = _arg(args, kwargs, 1, "output_size", 1)
    sizes = (size,) * ndim if size is None or isinstance(size, int) else tuple(size)
    return b._fields(
        node, name.removesuffix("_with_indices"), acts, x, {"kind": "adaptive", "output_size": sizes}
    )


def _pad_fn(b: GraphBuilder, node: fx.Node, args: tuple, kwargs: dict, acts: list[Act]) -> Any:
    x = acts[0]
    pad = _arg(args, kwargs, 1, "pad", ())
    return b._pad(node, "pad", acts, x, pad)


def _max_fn(b: GraphBuilder, node: fx.Node, args: tuple, kwargs: dict, acts: list[Act]) -> Any:
    other = _arg(args, kwargs, 1, "dim", None)
    if isinstance(other, Act):
        return b._binary(node, "max", acts)
    if other is None:
        return b._reduce(node, "max", acts[0], None, False)
    out = b._reduce(node, "max", acts[0], other, _arg(args, kwargs, 2, "keepdim", False))
    return (out, out)


_FUNCTIONS: dict[Any, Any] = {
    torch.reshape: _reshape,
    torch.permute: _permute,
    torch.transpose: _transpose,
    torch.swapaxes: _transpose,
    torch.swapdims: _transpose,
    torch.movedim: _movedim,
    torch.flatten: _flatten_fn,
    torch.unsqueeze: _unsqueeze,
    torch.squeeze: _squeeze,
    torch.chunk: _split,
    torch.split: _split,
    torch.tensor_split: _split,
    torch.unbind: _unbind,
    torch.cat: _cat,
    torch.concat: _cat,
    torch.concatenate: _cat,
    torch.stack: _cat,
    torch.softmax: _softmax,
    F.softmax: _softmax,
    F.log_softmax: _softmax,
    torch.matmul: _matmul,
    torch.bmm: _matmul,
    operator.matmul: _matmul,
    torch.einsum: _einsum,
    F.scaled_dot_product_attention: _attention,
    F.linear: _linear,
    F.conv1d: _conv_fn,
    F.conv2d: _conv_fn,
    F.conv3d: _conv_fn,
    F.max_pool1d: _pool_fn,
    F.max_pool2d: _pool_fn,
    F.max_pool3d: _pool_fn,
    F.max_pool1d_with_indices: _pool_fn,
    F.max_pool2d_with_indices: _pool_fn,
    F.max_pool3d_with_indices: _pool_fn,
    F.avg_pool1d: _pool_fn,
    F.avg_pool2d: _pool_fn,
    F.avg_pool3d: _pool_fn,
    F.adaptive_avg_pool1d: _adaptive_fn,
    F.adaptive_avg_pool2d: _adaptive_fn,
    F.adaptive_avg_pool3d: _adaptive_fn,
    F.adaptive_max_pool1d: _adaptive_fn,
    F.adaptive_max_pool2d: _adaptive_fn,
    F.adaptive_max_pool3d: _adaptive_fn,
    F.adaptive_max_pool1d_with_indices: _adaptive_fn,
    F.adaptive_max_pool2d_with_indices: _adaptive_fn,
    F.pad: _pad_fn,
    torch.max: _max_fn,
    torch.min: _max_fn,
}

_METHODS: dict[str, Any] = {
    "view": _reshape,
    "reshape": _reshape,
    "view_as": _reshape,
    "reshape_as": _reshape,
    "permute": _permute,
    "transpose": _transpose,
    "swapaxes": _transpose,
    "swapdims": _transpose,
    "movedim": _movedim,
    "flatten": _flatten_fn,
    "unsqueeze": _unsqueeze,
    "squeeze": _squeeze,
    "expand": _same,
    "expand_as": _same,
    "chunk": _split,
    "split": _split,
    "tensor_split": _split,
    "unbind": _unbind,
    "softmax": _softmax,
    "log_softmax": _softmax,
    "matmul": _matmul,
    "bmm": _matmul,
    "max": _max_fn,
    "min": _max_fn,
}


# -- small helpers ------------------------------------------------------------------------------------


def _acts(value: Any) -> list[Act]:
    out: list[Act] = []
    if isinstance(value, Act):
        out.append(value)
    elif isinstance(value, (tuple, list)):
        for item in value:
            out.extend(_acts(item))
    elif isinstance(value, dict):
        for item in value.values():
            out.extend(_acts(item))
    elif isinstance(value, slice):
        out.extend(_acts((value.start, value.stop, value.step)))
    return out


def _arg(args: tuple, kwargs: dict, position: int, name: str, default: Any) -> Any:
    if len(args) > position:
        return args[position]
    return kwargs.get(name, default)


def _target_name(node: fx.Node) -> str:
    target = node.target
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def _dims(dim: Any, rank: int) -> list[int]:
    if dim is None or dim is CONST:
        return list(range(rank))
    if isinstance(dim, int):
        return [dim % rank]
    return [int(d) % rank for d in dim]


def _lookup(table: dict[type, Any], cls: type) -> Any:
    for klass in cls.__mro__:
        if klass in table:
            return table[klass]
    return None


def _is_tuple_type(target: Any) -> bool:
    return isinstance(target, type) and issubclass(target, tuple)


def _is_channels_first(layout: Layout, ndim: int) -> bool:
    return tuple(layout[-ndim:]) == tuple(range(ndim))


def _show_layout(layout: Layout) -> str:
    names = {"N": "batch", "C": "channels", "T": "tokens", "X": "partitioned positions", "F": "features"}
    return (
        "("
        + ", ".join(names.get(r, f"axis {r}") if isinstance(r, str) else f"spatial axis {r}" for r in layout)
        + ")"
    )


def _scope(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return ""
    last = list(stack.values())[-1]
    path = last[0] if isinstance(last, tuple) else str(last)
    return re.sub(r"@\d+$", "", path)


def _static_tensor(gm: fx.GraphModule, node: Any) -> torch.Tensor | None:
    if isinstance(node, fx.Node) and node.op == "get_attr":
        value = fetch_attr(gm, str(node.target))
        return value if isinstance(value, torch.Tensor) else None
    return None


def _propagate_shapes(
    gm: fx.GraphModule, reference: tuple[int, ...], in_channels: int
) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of every node at a reference size, computed on fake tensors (no real data)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.passes.shape_prop import ShapeProp

    shapes: dict[str, tuple[int, ...]] = {}
    flags = [(m, m.training) for m in gm.modules()]
    try:
        for m, _ in flags:
            m.training = False  # no running statistics are touched, even on fake data
        for channels in dict.fromkeys((in_channels, 3, 1)):
            try:
                with FakeTensorMode(allow_non_fake_inputs=True) as mode, redirect_stderr(io.StringIO()):
                    x = mode.from_tensor(torch.empty(1, channels, *reference))
                    ShapeProp(gm).propagate(x)
                break
            except Exception:  # best effort: reshapes whose shapes stay unknown become unknown layers
                continue
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
