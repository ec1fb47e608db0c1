"""Walk an ONNX graph and build the layers of a :class:`~rf_widgets.core.graph.Stack`.

Every node that reads an activation (a tensor that depends on the image) is looked up in the rule chain
(``lookup_chain(rules, frontend="onnx")``) by its op type and its rule gets an :class:`OnnxCall`. Nodes
that read constants and shapes only are folded here (no rule, no layer). A node without a rule becomes
an ``unknown`` layer; a rule raising :class:`~rf_widgets.rules.Unsupported` too, with its reason. Any
other exception is a bug and is raised as :class:`~rf_widgets.errors.ModelImportError` naming the node.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rf_widgets.core.arithmetic import Diagnostic
from rf_widgets.core.layers import INPUT, Layer, Resample
from rf_widgets.errors import ModelImportError
from rf_widgets.frontends.base import BaseBuilder, BaseCall
from rf_widgets.frontends.layout import Partition, Windows, describe
from rf_widgets.frontends.records import Act, ShapeOf
from rf_widgets.onnx_import.layout import Layout, mixing, plain, spatial_order
from rf_widgets.onnx_import.reader import Const, constant_of
from rf_widgets.rules import RuleTable, Unsupported

__all__ = ["FOLD_LIMIT", "Act", "GraphBuilder", "OnnxCall", "ShapeOf"]

FOLD_LIMIT = 1 << 20
"""Constants computed from constants (ConstantOfShape, broadcast arithmetic, Gather, Concat) are folded
only up to this many elements; a larger one is left as computed at run time, with a diagnostic."""


class TooLarge(Exception):
    """A folded constant would exceed :data:`FOLD_LIMIT` elements (raised before allocating it)."""


class OnnxCall(BaseCall):
    """One ONNX node being imported; the argument of every ONNX rule.

    Attributes
    ----------
    node
        The ``onnx.NodeProto``.
    op_type
        Its operator type (``"Conv"``); ``op`` of the emitted layer.
    key
        What the rule table is searched for: the op type, ``"domain.OpType"`` outside the ONNX domain.
    inputs
        The evaluated inputs: :class:`Act` for activations, :class:`~rf_widgets.onnx_import.reader.Const`
        for constants, :class:`ShapeOf` for shapes of activations, None for an omitted optional input.
    acts
        The activations among the inputs; ``x`` is the first.
    """

    builder: GraphBuilder

    def __init__(self, builder: GraphBuilder, node: Any, inputs: list[Any], name: str) -> None:
        self.builder = builder
        self.node = node
        self.name = name
        self.emitted = 0
        self.op_type = str(node.op_type)
        self.key = _key(node)
        self.inputs = inputs
        self.acts = [v for v in inputs if isinstance(v, Act)]
        self._attrs: dict[str, Any] | None = None

    @property
    def what(self) -> str:
        return f"ONNX {self.key}"

    def entry(self, source: str) -> str:
        return f"'{source}' ({self.key})"

    @property
    def opset(self) -> int:
        """The model's version of the default ONNX operator set."""
        return self.builder.opset

    # -- reading the node ------------------------------------------------------------------------------

    def attr(self, name: str, default: Any = None) -> Any:
        """An attribute's value (ints, floats, lists; strings decoded), or ``default``."""
        if self._attrs is None:
            from onnx import helper

            self._attrs = {}
            for a in self.node.attribute:
                value = helper.get_attribute_value(a)
                if isinstance(value, bytes):
                    value = value.decode()
                elif isinstance(value, list) and value and isinstance(value[0], bytes):
                    value = [v.decode() for v in value]
                self._attrs[a.name] = value
        return self._attrs.get(name, default)

    def input(self, i: int) -> Any:
        return self.inputs[i] if i < len(self.inputs) else None

    def constant(self, i: int, what: str = "") -> Any:
        """The numpy value of input ``i`` (None when omitted); :class:`Unsupported` when computed."""
        value = self.input(i)
        if value is None:
            return None
        if isinstance(value, Const) and value.value is not None:
            return value.value
        label = what or f"input {i}"
        raise Unsupported(f"its {label} is computed at run time")

    def shape(self, value_name: str) -> tuple[int, ...] | None:
        """The static shape of a value at the reference input size (ONNX shape inference)."""
        return self.builder.shapes.get(value_name)

    def remember_shape(self, shape: tuple[int, ...] | None, output: int = 0) -> None:
        """Record the reference-size shape of an output that shape inference could not work out."""
        if shape is not None and output < len(self.node.output):
            self.builder.shapes.setdefault(self.node.output[output], tuple(shape))

    def input_dims(self, i: int) -> tuple[int, ...] | None:
        """The declared dimensions of a constant input (a weight), even when its data is not read."""
        value = self.input(i)
        if isinstance(value, Const):
            if value.dims is not None:
                return value.dims
            if value.value is not None:
                return tuple(int(n) for n in value.value.shape)
        return None

    # -- emitting --------------------------------------------------------------------------------------

    def emit(
        self,
        op: str | None = None,
        inputs: Iterable[Act] | None = None,
        layout: Layout | None = None,
        **fields: Any,
    ) -> Act:
        """Append one layer with the given :class:`~rf_widgets.core.layers.Layer` fields."""
        acts = list(self.acts if inputs is None else inputs)
        layout = max((a.layout for a in acts), key=len) if layout is None else layout
        if not self.emitted:
            fields.setdefault("params", self.builder.take_params(self.node))
        self.emitted += 1
        return self.builder.append(self, op or self.op_type, acts, layout, fields)

    def global_(self, layout: Layout | None = None, **extra: Any) -> Act:
        """A layer whose every output depends on every input position."""
        return self.emit(layout=layout, kind="global", **extra)

    def unknown_layout(self) -> Layout | None:
        """What the output of an unknown operation holds: its input's roles when the rank stays, the
        conventional ``(N, C, spatial...)`` for that rank, else positions mixed beyond recognition."""
        if not self.acts:
            return None
        shape = self.shape(self.node.output[0]) if self.node.output else None
        rank = len(shape) if shape is not None else len(self.x.layout)
        if rank == len(self.x.layout):
            return self.x.layout
        if rank == self.ndim + 2:
            return ("N", "C", *range(self.ndim))
        return ("X",) * rank

    def mix(self, roles: Sequence[Any], layout: Layout | None = None, **extra: Any) -> Act:
        """A layer mixing values along dimensions with ``roles``: global along space, else pointwise."""
        how = mixing(list(roles))
        if how == "global" and any(isinstance(r, Partition) for r in roles):
            # grid attention: every window is reached and the map keeps its size (a window larger
            # than any map resolves to global at every input size), as in the torch import
            spec = Resample("windows", window=(1 << 30,) * self.ndim, shift=(0,) * self.ndim)
            return self.emit(layout=layout, kind="resample", resample=spec, **extra)
        if how == "global":
            return self.global_(layout, **extra)
        if isinstance(how, Windows):
            shift = how.shift or (0,) * self.ndim
            spec = Resample("windows", window=(how.size,) * self.ndim, shift=shift)
            return self.emit(layout=layout, kind="resample", resample=spec, **extra)
        if how == "unknown":
            raise Unsupported("it mixes values along a dimension that holds part of the spatial positions")
        return self.pointwise(layout, **extra)

    def relayout(self, layout: Layout, act: Act | None = None) -> Act:
        """The same activation with its dimensions reinterpreted (Transpose, Reshape, Squeeze...)."""
        return Act((act or self.x).source, tuple(layout))

    def spatial_axes(self, act: Act | None = None) -> tuple[int, ...]:
        """Which spatial axis each trailing dimension of an ``(N, C, spatial...)`` operand holds."""
        act = act or self.x
        order = spatial_order(act.layout, self.ndim)
        if order is None:
            raise Unsupported(
                f"{self.op_type} reads its input as (batch, channels, spatial...), but here it holds "
                f"{describe(act.layout)} (a layout no Transpose brought back)"
            )
        return order

    def window(
        self,
        kernel: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        dilation: int | Sequence[int] = 1,
        padding: int | Sequence[int] | Sequence[tuple[int, int]] = 0,
        *,
        ceil_mode: bool = False,
        **extra: Any,
    ) -> Act:
        """A sliding window over the trailing spatial dims of an ``(N, C, spatial...)`` input.

        Per-axis values are in tensor order (an int applies to every axis); ``padding`` takes one int
        or one ``(lo, hi)`` pair per axis; ``padding_mode="same_upper"``/``"same_lower"`` may be given
        as an extra field.
        """
        order = self.spatial_axes()
        n = self.ndim

        def per_axis(value: Any) -> tuple[int, ...]:
            return (int(value),) * n if isinstance(value, int) else tuple(int(v) for v in value)

        pads: Any = (padding,) * n if isinstance(padding, int) else tuple(padding)
        fields = {
            "kernel": per_axis(kernel),
            "stride": per_axis(stride),
            "dilation": per_axis(dilation),
            "padding": tuple(
                (int(p), int(p)) if isinstance(p, int) else (int(p[0]), int(p[1])) for p in pads
            ),
        }
        return self.emit(ceil_mode=bool(ceil_mode), **_in_axis_order(fields, order), **extra)

    def resample(self, spec: Resample, **fields: Any) -> Act:
        """A resample layer (interpolation, transposed convolution, depth-to-space)."""
        order = self.spatial_axes()
        if order != tuple(range(self.ndim)):
            raise Unsupported("resampling a tensor whose spatial axes are permuted")
        return self.emit(kind="resample", resample=spec, **fields)


# -- the walk ----------------------------------------------------------------------------------------


class GraphBuilder(BaseBuilder):
    """Turns the nodes of one ONNX graph into layers, in graph order."""

    frontend = "onnx"

    def __init__(
        self,
        graph: Any,
        image: Any,
        shapes: dict[str, tuple[int, ...]],
        chain: tuple[RuleTable, ...],
        base: Path | None,
        opset: int = 21,
    ) -> None:
        super().__init__(int(image.ndim), chain)
        self.graph = graph
        self.opset = opset
        self.image = image
        self.shapes = shapes
        self.base = base
        self.values: dict[str, Any] = {}
        self._used: set[str] = set()
        self._weights: dict[str, tuple[int, ...]] = {}

    def build(self) -> list[Layer]:
        layout: Layout = (
            ("N", *range(self.ndim), "C") if self.image.channels_last else ("N", "C", *range(self.ndim))
        )
        self.values[self.image.name] = Act(INPUT, layout)
        for tensor in self.graph.initializer:
            const = constant_of(tensor, self.base)
            self.values[tensor.name] = const
            self._weights[tensor.name] = const.dims or ()
        for value in self.graph.input:
            self.values.setdefault(value.name, Const())
        for index, node in enumerate(self.graph.node):
            self._visit(node, self._unique(node.name or f"{node.op_type}_{index}"))
        return self.layers

    def outputs(self) -> tuple[tuple[str, str], ...]:
        found = []
        for value in self.graph.output:
            act = self.values.get(value.name)
            if isinstance(act, Act) and act.source != INPUT:
                found.append((value.name, act.source))
        return tuple(found)

    def _unique(self, base: str) -> str:
        name, count = base, 1
        while name in self._used or name == INPUT:
            count += 1
            name = f"{base}:{count}"
        self._used.add(name)
        return name

    def _visit(self, node: Any, name: str) -> None:
        inputs = [self.values.get(name, Const()) if name else None for name in node.input]
        if node.op_type == "Constant":
            self._assign(node, self._constant_node(node))
            return
        if node.op_type == "If" and not any(isinstance(v, Act) for v in inputs[:1]):
            self._if(node, name, inputs)
            return
        captured = [v for v in self._captured(node) if isinstance(v, Act)]
        if not any(isinstance(v, Act) for v in inputs) and not captured:
            try:
                self._assign(node, fold(node, inputs))
            except TooLarge as why:
                self.diagnostics.append(Diagnostic(None, "constant-too-large", f"node '{name}': {why}"))
                self._assign(node, Const())
            return
        if node.op_type not in ("Transpose", "Reshape"):
            # a whole axis read as one block is the axis itself to anything but a further partition
            inputs = [Act(v.source, plain(v.layout)) if isinstance(v, Act) else v for v in inputs]
        call = OnnxCall(self, node, inputs, name)
        rule = self.rule_for(_key(node))
        if captured:
            # a subgraph (a Loop or Scan body, an If branch) reads the image: what it computes is
            # beyond the rules, and dropping it would drop every layer after it
            call.acts.extend(a for a in dict.fromkeys(captured) if a not in call.acts)
            rule = None
        if rule is None:
            key = _key(node)
            value: Any = call.unknown(
                f"the ONNX operator {key} has no rule (add one with "
                f"rf_widgets.RuleTable().operator('onnx', '{key}', rule): see docs/onnx.md)"
            )
        else:
            value = self.run_rule(rule, call, f"ONNX {call.key}", f"node '{call.name}'")
        self._assign(node, value)

    def _if(self, node: Any, name: str, inputs: list[Any]) -> None:
        """An ``If``: with a constant condition its branch is imported in its place; otherwise, when a
        branch reads the image, an unknown layer (which branch runs is decided at run time)."""
        import numpy as np

        cond = inputs[0] if inputs else None
        value = cond.value if isinstance(cond, Const) else None
        branches = {a.name: a.g for a in node.attribute if a.name in ("then_branch", "else_branch")}
        if value is not None and np.asarray(value).size == 1 and len(branches) == 2:
            branch = branches["then_branch" if bool(np.asarray(value).reshape(-1)[0]) else "else_branch"]
            for tensor in branch.initializer:
                self.values[tensor.name] = constant_of(tensor, self.base)
            for index, sub in enumerate(branch.node):
                self._visit(sub, self._unique(sub.name or f"{name}/{sub.op_type}_{index}"))
            for output, inner in zip(node.output, branch.output, strict=False):
                if output:
                    self.values[output] = self.values.get(inner.name, Const())
            return
        captured = [v for v in self._captured(node) if isinstance(v, Act)]
        if not captured:
            self._assign(node, Const())
            return
        call = OnnxCall(self, node, [*inputs, *dict.fromkeys(captured)], name)
        self._assign(
            node,
            call.unknown("its condition is computed at run time, so which branch runs is not known here"),
        )

    def _captured(self, node: Any) -> list[Any]:
        """The values of the enclosing graphs that a node's subgraphs read (If, Loop, Scan bodies)."""
        found: list[Any] = []
        for a in node.attribute:
            for graph in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                inner = {t.name for t in graph.initializer} | {v.name for v in graph.input}
                for sub in graph.node:
                    found.extend(
                        self.values[i] for i in sub.input if i and i not in inner and i in self.values
                    )
                    found.extend(self._captured(sub))
                    inner.update(sub.output)
        return found

    def _assign(self, node: Any, value: Any) -> None:
        outputs = list(node.output)
        if isinstance(value, (tuple, list)):
            for name, item in zip(outputs, value, strict=False):
                if name:
                    self.values[name] = item
            return
        for name in outputs:
            if name:
                self.values[name] = value

    def _constant_node(self, node: Any) -> Const:
        """A Constant node's value (tensors and numbers; sparse and string constants stay unread)."""
        import numpy as np
        from onnx import helper

        for a in node.attribute:
            if a.name == "value":
                return constant_of(a.t, self.base, f"Constant node '{node.name or node.output[0]}'")
            if a.name in ("value_float", "value_int", "value_floats", "value_ints"):
                return Const(np.asarray(helper.get_attribute_value(a)))
        return Const()

    def append(
        self, call: OnnxCall, op: str, inputs: Iterable[Act], layout: Layout, fields: dict[str, Any]
    ) -> Act:
        sources = tuple(dict.fromkeys(a.source for a in inputs))
        # a rule that emits several layers for one node: the later ones get a suffix
        name = call.name if call.emitted == 1 else self._unique(call.name)
        extra: dict[str, object] = {"onnx_node": call.name, "scope": _scope(call.node)}
        self.layers.append(Layer(name, op, inputs=sources, module=None, extra=extra, **fields))
        return Act(name, tuple(layout))

    def take_params(self, node: Any) -> int:
        """Elements of the initializers a node reads that no earlier layer counted (shared once)."""
        total = 0
        for name in node.input:
            if name in self._weights:
                total += self.params.once(name, math.prod(self._weights[name]))
        return total


def _key(node: Any) -> str:
    domain = node.domain or ""
    return node.op_type if domain in ("", "ai.onnx") else f"{domain}.{node.op_type}"


def _scope(node: Any) -> str | None:
    """The torch module path the exporter recorded (``pkg.torch.onnx.name_scopes``), when present."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            import ast

            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            if isinstance(scopes, list) and len(scopes) >= 2:
                return str(scopes[-2]) or None
    return None


def _in_axis_order(fields: dict[str, Any], order: tuple[int, ...]) -> dict[str, Any]:
    if order == tuple(range(len(order))):
        return fields
    out = dict(fields)
    for key, values in fields.items():
        placed: list[Any] = [None] * len(order)
        for position, axis in enumerate(order):
            placed[axis] = values[position]
        out[key] = tuple(placed)
    return out


# -- folding constants and shapes ----------------------------------------------------------------------


NOT_FOLDABLE = object()
"""What :func:`_fold_numpy` returns for an operator it does not compute."""

FOLD_ERRORS = (ValueError, IndexError, ArithmeticError)
"""What numpy raises when a constant's numbers do not fit its operator (shapes that do not broadcast or
reshape, indices out of range, a division by zero): the value is then left as computed at run time."""


def fold(node: Any, inputs: list[Any]) -> Any:
    """The value of a node that reads no activation: a Const (its numpy value when cheap to get),
    or a ShapeOf when it slices, gathers or concatenates the shape of an activation. Arithmetic on
    shapes gives a Const whose ``at_reference`` holds the numbers at the reference size."""
    import numpy as np

    op = node.op_type
    if any(isinstance(v, ShapeOf) for v in inputs):
        found = _fold_shape(node, inputs)
        if isinstance(found, ShapeOf) or found.at_reference is not None:
            return found
    numbers = [None if v is None else _numbers(v) for v in inputs]
    if any(n is None for n, given in zip(numbers, inputs, strict=True) if given is not None):
        return Const()
    _check_fold_size(node, op, numbers)
    try:
        value = _fold_numpy(node, op, numbers)
    except FOLD_ERRORS:  # numbers that do not fit the operator: left as a value computed at run time
        return Const()
    except Exception as err:  # anything else is a bug of the folder, not a property of the model
        raise ModelImportError(
            f"folding the constant node '{node.name or op}' ({op}) failed: {type(err).__name__}: {err}"
        ) from err
    if value is NOT_FOLDABLE:  # an operator the folder does not compute: its value is known at run time
        return Const()
    exact = all(isinstance(v, Const) and v.value is not None for v in inputs if v is not None)
    if exact:
        return Const(value)
    if op == "Concat" and getattr(value, "ndim", 0) == 1:
        entries = [
            flag
            for v, n in zip(inputs, numbers, strict=True)
            if v is not None
            for flag in [isinstance(v, Const) and v.value is not None] * int(np.asarray(n).size)
        ]
        if len(entries) == value.size:
            return Const(at_reference=value, constant_entries=tuple(entries))
    return Const(at_reference=value)


def _numbers(value: Any) -> Any:
    """A folded input as numbers: a constant's value, else its numbers at the reference size."""
    import numpy as np

    if isinstance(value, ShapeOf):
        return None if value.values is None else np.asarray(value.values, dtype=np.int64)
    if isinstance(value, Const):
        return value.value if value.value is not None else value.at_reference
    return None


def _ints(value: Any) -> list[int]:
    import numpy as np

    return [int(v) for v in np.asarray(value).reshape(-1)]


def _check_fold_size(node: Any, op: str, values: list[Any]) -> None:
    """Raise :class:`TooLarge` when the folded value would have more than FOLD_LIMIT elements."""
    import numpy as np

    arrays = [np.asarray(v) for v in values if v is not None]
    if not arrays:
        return
    try:
        if op == "ConstantOfShape":
            sizes = _ints(arrays[0])
            if any(n < 0 for n in sizes):
                return  # invalid: the fold fails and the value is left as computed at run time
            count = 1
            for n in sizes:
                count *= n
        elif op in ("Add", "Sub", "Mul", "Div", "Mod"):
            count = 1
            for n in np.broadcast_shapes(*(a.shape for a in arrays)):
                count *= int(n)
        elif op == "Gather":
            axis = next((int(a.i) for a in node.attribute if a.name == "axis"), 0)
            count = arrays[0].size // max(1, arrays[0].shape[axis]) * arrays[1].size
        else:
            count = sum(int(a.size) for a in arrays)
    except (ValueError, IndexError, TypeError):
        return  # shapes that do not fit: the fold fails and the value is left as computed at run time
    if count > FOLD_LIMIT:
        raise TooLarge(
            f"{op} would make a constant of {count:,} elements, more than the {FOLD_LIMIT:,} rf_widgets "
            "folds (FOLD_LIMIT); it is treated as computed at run time"
        )


def _fold_numpy(node: Any, op: str, values: list[Any]) -> Any:
    import numpy as np
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if op in ("Identity", "Cast", "CastLike"):
        return values[0]
    if op == "Concat":
        parts = [np.asarray(v) for v in values if v is not None]
        if all(p.size == 1 or p.ndim <= 1 for p in parts) and sum(p.size for p in parts) <= 16:
            # a shape vector: shape entries are kept as 1-element vectors, which Unsqueeze may have
            # turned into (1, 1) where ONNX had (1,)
            return np.concatenate([p.reshape(-1) for p in parts])
        return np.concatenate(parts, axis=attrs.get("axis", 0))
    if op == "Unsqueeze":
        axes = attrs.get("axes") or _ints(values[1])
        out = np.asarray(values[0])
        for a in sorted(int(a) % (out.ndim + len(axes)) for a in axes):
            out = np.expand_dims(out, a)
        return out
    if op == "Squeeze":
        axes = attrs.get("axes") or (_ints(values[1]) if len(values) > 1 and values[1] is not None else None)
        return np.squeeze(np.asarray(values[0]), axis=tuple(axes) if axes else None)
    if op == "Gather":
        return np.take(np.asarray(values[0]), np.asarray(values[1]), axis=attrs.get("axis", 0))
    if op == "Reshape":
        return np.reshape(np.asarray(values[0]), _ints(values[1]))
    if op == "Shape":
        return np.asarray(np.asarray(values[0]).shape, dtype=np.int64)
    if op in ("Add", "Sub", "Mul", "Div"):
        left, right = np.asarray(values[0]), np.asarray(values[1])
        if op == "Div" and left.dtype.kind in "iu" and right.dtype.kind in "iu":
            return (np.trunc(left / right)).astype(np.int64)  # ONNX divides integers truncating
        fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
        return fn(left, right)
    if op == "Slice":  # on shape vectors: PyTorch's pad order reversed with step -1
        data = np.asarray(values[0])
        starts, ends = _ints(values[1]), _ints(values[2])
        axes = _ints(values[3]) if len(values) > 3 and values[3] is not None else list(range(len(starts)))
        steps = _ints(values[4]) if len(values) > 4 and values[4] is not None else [1] * len(starts)
        cuts = [slice(None)] * data.ndim
        for a, b, e, st in zip(axes, starts, ends, steps, strict=True):
            n = data.shape[a]
            b = max(b, -n - 1) if b < 0 else min(b, n)
            e = max(e, -n - 1) if e < 0 else min(e, n)
            cuts[a] = slice(b, None if e < -n else e, st)
        return data[tuple(cuts)]
    if op == "Transpose":
        return np.transpose(np.asarray(values[0]), attrs.get("perm"))
    if op == "ConstantOfShape":
        fill = attrs.get("value")
        from onnx import numpy_helper

        value = numpy_helper.to_array(fill).reshape(-1)[0] if fill is not None else np.float32(0)
        return np.full(_ints(values[0]), value)
    if op == "Mod":
        left, right = np.asarray(values[0]), np.asarray(values[1])
        return np.fmod(left, right) if attrs.get("fmod", 0) else np.mod(left, right)
    return NOT_FOLDABLE


def _fold_shape(node: Any, inputs: list[Any]) -> Any:
    """Shape entries through Gather, Slice, Concat, Cast, Identity, Unsqueeze and Squeeze."""
    op = node.op_type
    first = inputs[0]
    if op in ("Identity", "Cast", "Unsqueeze", "Squeeze") and isinstance(first, ShapeOf):
        return first
    if not isinstance(first, ShapeOf) and op != "Concat":
        return Const()
    if op == "Gather" and isinstance(inputs[1], Const) and inputs[1].value is not None:
        picked = _ints(inputs[1].value)
        n = len(first.roles)
        if any(not -n <= i < n for i in picked):
            raise ModelImportError(
                f"node '{node.name or node.op_type}' (Gather) picks entry {picked} of the shape of "
                f"'{first.source}', which has {n} entries"
            )
        values = None if first.values is None else tuple(first.values[i] for i in picked)
        return ShapeOf(first.source, tuple(first.roles[i] for i in picked), values)
    if op == "Slice":
        parts = [v.value if isinstance(v, Const) else None for v in inputs[1:]]
        if any(p is None for p in parts[:2]) or any(
            p is None for p, v in zip(parts[2:], inputs[3:], strict=False) if v is not None
        ):
            return Const()
        start, end = _ints(parts[0])[0], _ints(parts[1])[0]
        step = _ints(parts[3])[0] if len(parts) > 3 and parts[3] is not None else 1
        n = len(first.roles)
        cut = slice(max(start, -n) if start < 0 else start, end, step)
        values = None if first.values is None else first.values[cut]
        return ShapeOf(first.source, first.roles[cut], values)
    if op == "Concat":
        sources = {v.source for v in inputs if isinstance(v, ShapeOf)}
        if len(sources) != 1:
            return Const()
        roles: list[Any] = []
        numbers: list[int] | None = []
        for v in inputs:
            if isinstance(v, ShapeOf):
                roles.extend(v.roles)
                if v.values is None or numbers is None:
                    numbers = None
                else:
                    numbers.extend(v.values)
            elif isinstance(v, Const) and v.value is not None:
                roles.extend(("K", n) for n in _ints(v.value))
                if numbers is not None:
                    numbers.extend(_ints(v.value))
            else:
                return Const()
        return ShapeOf(sources.pop(), tuple(roles), None if numbers is None else tuple(numbers))
    return Const()
