"""The second tracer: a torch.fx graph of module calls and torch functions, read from ``torch.export``.

``torch.fx.symbolic_trace`` runs ``forward`` on proxies, so Python that inspects a traced value (control
flow on it, ``torch.finfo(x.dtype)``) stops it. ``torch.export`` runs ``forward`` on fake tensors of one
example input and records ATen operators, each with the module calls it ran inside
(``node.meta["nn_module_stack"]``). That graph is brought back to the form the rules read
(see docs/tracers.md for why this and not the ONNX route):

- the operators recorded inside one call of a module that is a leaf for the rules (a module type with a
  rule, or a ``torch.nn`` module, as for torch.fx) become one ``call_module`` node with that module's
  path, so layers are named by module as after a torch.fx trace;
- every other operator becomes the torch function or tensor method with the same schema (``aten.add``:
  ``torch.add``, ``aten.view``: ``Tensor.view``, ``aten.slice``: indexing, ``aten.conv2d``:
  ``F.conv2d``), chosen among those a rule is registered for; an operator with none keeps its
  ATen name and is reported as unknown by the importer.

Shapes are those export recorded (at the example size, which is the size the importer's own shape
pass would use), so nothing is run again. The graph is the one Python took at that size: control flow
on the input size is fixed there (the importer says so in a diagnostic).
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
import torch.utils._pytree as pytree

from rf_widgets.rules import RuleTable

__all__ = ["export_graph"]

Leaf = Callable[[nn.Module, str], bool]
Target = tuple[str, Any, tuple[Any, ...], dict[str, Any]]  # (fx op, target, args, kwargs)

_DROPPED = ("_assert", "sym_constrain_range", "_guards_fn")

_UPSAMPLE = {
    "upsample_nearest1d": "nearest", "upsample_nearest2d": "nearest", "upsample_nearest3d": "nearest",
    "_upsample_nearest_exact1d": "nearest-exact", "_upsample_nearest_exact2d": "nearest-exact",
    "_upsample_nearest_exact3d": "nearest-exact", "upsample_linear1d": "linear",
    "upsample_bilinear2d": "bilinear", "upsample_trilinear3d": "trilinear", "upsample_bicubic2d": "bicubic",
    "_upsample_bilinear2d_aa": "bilinear", "_upsample_bicubic2d_aa": "bicubic",
}  # fmt: skip

_SAME_LAYOUT = ("alias", "lift_fresh_copy", "_to_copy", "to", "clone", "contiguous", "detach")


def export_graph(
    model: nn.Module, example: torch.Tensor, leaf: Leaf, chain: tuple[RuleTable, ...]
) -> fx.GraphModule:
    """``model`` exported on ``example`` and regrouped into module calls and torch functions.

    The graph module holds the model's own submodules and parameters (nothing is copied); the shapes
    export recorded are in ``gm.meta["shapes"]`` (node name to shape).
    """
    program = torch.export.export(model, (example,), strict=False)
    flat = program.module()
    return _Regrouper(model, flat, leaf, chain).build(program.call_spec.out_spec)


class _Regrouper:
    def __init__(self, model: nn.Module, flat: fx.GraphModule, leaf: Leaf, chain: tuple[RuleTable, ...]):
        self.model = model
        self.flat = flat
        self.leaf = leaf
        self.chain = chain
        self.graph = fx.Graph()
        self.env: dict[fx.Node, Any] = {}
        self.attrs: dict[str, Any] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._leaf_of: dict[str, str | None] = {}

    def build(self, out_spec: Any) -> fx.GraphModule:
        nodes = list(self.flat.graph.nodes)
        groups = self._groups(nodes)
        for node in nodes:
            if node.op == "placeholder":
                self.env[node] = self._record(self.graph.placeholder(node.name), node)
            elif node.op == "get_attr":
                self.env[node] = self._get_attr(str(node.target))
            elif node.op == "output":  # the model's own output structure (a tensor, a tuple, a dict)
                flat = [fx.node.map_arg(value, self._value) for value in node.args[0]]
                self.graph.output(pytree.tree_unflatten(flat, out_spec) if out_spec is not None else flat)
            elif node.op == "call_function" and not _dropped(node):
                group = groups.get(node)
                if group is None:
                    self.env[node] = self._record(self._function(node), node)
                elif node is group.first and group.output is not None:
                    args = tuple(self._value(n) for n in group.inputs)
                    self.attrs[group.path] = self.model.get_submodule(group.path)
                    call = self.graph.call_module(group.path, args)
                    call.meta["nn_module_stack"] = group.stack
                    self.env[group.output] = self._record(call, group.output)
        gm = fx.GraphModule(self.attrs, self.graph, type(self.model).__name__)
        gm.meta["shapes"] = self.shapes
        return gm

    # -- grouping the operators of one leaf module call -----------------------------------------------

    def _groups(self, nodes: list[fx.Node]) -> dict[fx.Node, _Group]:
        members: dict[str, list[fx.Node]] = {}
        found: dict[str, tuple[str, dict[str, Any]]] = {}
        for node in nodes:
            if node.op != "call_function" or _dropped(node):
                continue
            key = self._leaf_call(node, found)
            if key is not None:
                members.setdefault(key, []).append(node)
        order = {node: i for i, node in enumerate(n for n in nodes if n.op == "call_function")}
        groups: dict[fx.Node, _Group] = {}
        for key, inside in members.items():
            group = _Group.of(found[key][0], found[key][1], inside, order)
            if group is not None:
                groups.update(dict.fromkeys(inside, group))
        return groups

    def _leaf_call(self, node: fx.Node, found: dict[str, tuple[str, dict[str, Any]]]) -> str | None:
        """The key of the outermost leaf-module call ``node`` ran inside, if any."""
        stack = node.meta.get("nn_module_stack") or {}
        outer: dict[str, Any] = {}
        for key, entry in stack.items():
            outer[key] = entry
            path = entry[0] if isinstance(entry, tuple) else str(entry)
            if path and self._is_leaf(path):
                found.setdefault(key, (path, dict(outer)))
                return key
        return None

    def _is_leaf(self, path: str) -> bool:
        if path not in self._leaf_of:
            try:
                module = self.model.get_submodule(path)
            except AttributeError:
                self._leaf_of[path] = None
            else:
                self._leaf_of[path] = path if self.leaf(module, path) else None
        return self._leaf_of[path] is not None

    # -- nodes ---------------------------------------------------------------------------------------

    def _value(self, node: fx.Node) -> Any:
        return self.env[node]

    def _record(self, new: fx.Node, old: fx.Node) -> fx.Node:
        stack = old.meta.get("nn_module_stack")
        if stack and "nn_module_stack" not in new.meta:
            new.meta["nn_module_stack"] = dict(stack)
        shape = _shape(old.meta.get("val"))
        if shape is not None:
            self.shapes[new.name] = shape
        return new

    def _get_attr(self, target: str) -> fx.Node:
        """A parameter, buffer or constant: the model's own object when it has one under that name."""
        if target not in self.attrs:
            try:
                value = _fetch(self.model, target)
            except AttributeError:
                value = _fetch(self.flat, target)  # a constant export lifted out of the code
            self.attrs[target] = value
        node = self.graph.get_attr(target)
        if isinstance(self.attrs[target], torch.Tensor):
            self.shapes[node.name] = tuple(self.attrs[target].shape)
        return node

    def _function(self, node: fx.Node) -> fx.Node:
        args = fx.node.map_arg(node.args, self._value)
        kwargs = fx.node.map_arg(node.kwargs, self._value)
        target = node.target
        if isinstance(target, torch._ops.OpOverload):
            kind, fn, args, kwargs = self._torch_call(target, tuple(args), dict(kwargs))
        else:  # operator.getitem on a tuple an operator returned, and the like
            kind, fn = "call_function", target
        return self.graph.create_node(kind, fn, tuple(args), dict(kwargs))

    def _torch_call(self, op: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Target:
        """The torch function or tensor method that does what ``op`` does, called the same way."""
        name = op.overloadpacket.__name__
        special = _special(name, args, kwargs, self._rank)
        if special is not None:
            return special
        schema = [a.name for a in op._schema.arguments]
        defaults = {a.name: a.default_value for a in op._schema.arguments if a.has_default_value()}
        names = [name] + ([name[:-1]] if name.endswith("_") and not name.startswith("_") else [])
        fallback: Target | None = None
        for base in names:
            for kind, fn in _candidates(base):
                call = _adapt(kind, fn, args, kwargs, schema, defaults)
                if call is None:
                    continue
                if self._has_rule(kind, fn):
                    return call
                fallback = fallback or call
        return fallback or ("call_function", op, args, kwargs)

    def _rank(self, value: Any) -> int | None:
        shape = self.shapes.get(value.name) if isinstance(value, fx.Node) else None
        return None if shape is None else len(shape)

    def _has_rule(self, kind: str, fn: Any) -> bool:
        if kind == "call_method":
            return any(table.for_method(fn) is not None for table in self.chain)
        return any(table.for_function(fn) is not None for table in self.chain)


class _Group:
    """The operators of one call of a leaf module: one ``call_module`` node in the new graph."""

    def __init__(self, path: str, stack: dict[str, Any], first: fx.Node, inputs: list[fx.Node], output: Any):
        self.path = path
        self.stack = stack
        self.first = first
        self.inputs = inputs
        self.output = output

    @classmethod
    def of(
        cls, path: str, stack: dict[str, Any], inside: list[fx.Node], order: dict[fx.Node, int]
    ) -> _Group | None:
        """The group, or None when the operators cannot stand for one call (they are then kept apart).

        That is when they are not consecutive, when they read no activation (a module computing
        constants, such as position tables), or when more than one of their results is used outside
        (which result is which output of the module is not recorded).
        """
        positions = sorted(order[n] for n in inside)
        if positions[-1] - positions[0] + 1 != len(inside):
            return None
        members = set(inside)
        inputs: list[fx.Node] = []
        for node in inside:
            for arg in node.all_input_nodes:
                if arg not in members and arg.op != "get_attr" and arg not in inputs:
                    inputs.append(arg)
        outputs = [n for n in inside if any(user not in members for user in n.users)]
        if not inputs or len(outputs) > 1:
            return None
        return cls(path, stack, inside[0], inputs, outputs[0] if outputs else None)


# -- from ATen to torch ---------------------------------------------------------------------------------


def _candidates(name: str) -> list[tuple[str, Any]]:
    """Torch functions and tensor methods called ``name``: F first (the rules know F.conv2d, F.pad)."""
    found: list[tuple[str, Any]] = []
    for namespace in (F, torch):
        fn = getattr(namespace, name, None)
        if callable(fn) and not isinstance(fn, type):
            found.append(("call_function", fn))
    if callable(getattr(torch.Tensor, name, None)):
        found.append(("call_method", name))
    return found


def _adapt(
    kind: str,
    fn: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    schema: list[str],
    defaults: dict[str, Any],
) -> Target | None:
    """The call of ``fn`` equivalent to the ATen call, or None when the signatures do not line up.

    Builtins and tensor methods are generated from the ATen schema: the arguments carry over as they
    are. A Python wrapper (``F.max_pool2d``) gets them by the schema's names; an argument it has no
    parameter for is dropped only when it holds the schema's default.
    """
    if kind == "call_method" or inspect.isbuiltin(fn):
        return kind, fn, args, kwargs
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return None
    named = dict(zip(schema[1:], args[1:], strict=False)) | kwargs
    if not params or len(args) == 0:
        return None
    keep: dict[str, Any] = {}
    for key, value in named.items():
        if key in params[1:]:
            keep[key] = value
        elif key not in defaults or defaults[key] != value:
            return None
    positional = [args[0]]
    for param in params[1:]:  # positionally while the names line up, as a rule reads them
        if param not in keep:
            break
        positional.append(keep.pop(param))
    return "call_function", fn, tuple(positional), keep


def _special(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any], rank: Callable[[Any], int | None]
) -> Target | None:
    """Operators whose torch counterpart takes other arguments."""
    x = args[0] if args else None
    if name == "slice":
        dim, start, end, step = (list(args[1:]) + [0, None, None, 1][len(args) - 1 :])[:4]
        end = None if isinstance(end, int) and end >= 2**62 else end
        axis = _dim(dim, rank(x))
        if axis is None:
            return None
        index = (slice(None),) * axis + (slice(start, end, None if step == 1 else step),)
        return "call_function", operator.getitem, (x, index), {}
    if name == "select":
        axis = _dim(args[1], rank(x))
        if axis is None:
            return None
        return "call_function", operator.getitem, (x, (slice(None),) * axis + (args[2],)), {}
    if name in ("dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout"):
        dropouts = {"dropout": F.dropout, "feature_dropout": F.dropout2d, "alpha_dropout": F.alpha_dropout}
        return "call_function", dropouts.get(name, F.feature_alpha_dropout), args[:3], {}
    if name in ("max_pool1d", "max_pool2d", "max_pool3d"):  # F's are dispatchers taking *args
        return "call_function", getattr(F, name), args, {}
    if name == "einsum":
        return "call_function", torch.einsum, (args[0], *args[1]), {}
    if name == "batch_norm":  # (x, weight, bias, mean, var, ...) -> F's (x, mean, var, weight, bias, ...)
        return "call_function", F.batch_norm, (x, args[3], args[4], args[1], args[2], *args[5:8]), {}
    if name in ("layer_norm", "group_norm"):
        return "call_function", getattr(F, name), args[:5], {}
    if name in ("softmax", "_softmax", "log_softmax", "_log_softmax"):
        fn = torch.log_softmax if "log" in name else torch.softmax
        return "call_function", fn, (x, args[1]), {}
    if name == "mm":
        return "call_function", torch.matmul, args, {}
    if name == "constant_pad_nd":
        return "call_function", F.pad, (x, args[1], "constant", args[2] if len(args) > 2 else 0), {}
    if name in ("adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d"):
        return "call_function", getattr(F, name + "_with_indices"), args, {}
    if name == "expand":
        return "call_method", "expand", args[:2], {}
    if name in _SAME_LAYOUT:
        return "call_method", "contiguous", (x,), {}
    if name in _UPSAMPLE:
        size, scale = args[1], args[-1] if len(args) > 2 and args[1] is None else None
        options: dict[str, Any] = {"mode": _UPSAMPLE[name]}
        if len(args) == 4:
            options["align_corners"] = args[2]
        if name.endswith("_aa"):
            options["antialias"] = True
        return "call_function", F.interpolate, (x,), {"size": size, "scale_factor": scale, **options}
    return None


def _dim(dim: Any, rank: int | None) -> int | None:
    """``dim`` counted from the front (None when it cannot be: the operator then stays unknown)."""
    if not isinstance(dim, int):
        return None
    if dim >= 0:
        return dim
    return None if rank is None else dim % rank


def _dropped(node: fx.Node) -> bool:
    name = getattr(node.target, "__name__", str(node.target))
    return name.startswith(_DROPPED)


def _shape(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, torch.Tensor):
        try:
            return tuple(int(n) for n in value.shape)
        except (TypeError, ValueError):
            return None
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, torch.Tensor) for v in value):
        return tuple(range(len(value)))  # as the shape pass records a tuple: its length
    return None


def _fetch(root: nn.Module, target: str) -> Any:
    obj: Any = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj
