"""What a Keras rule sees: one node of the Keras graph, its arguments, and helpers that emit layers.

Activations arrive as :class:`Act` (the layer that produced them and what each of their dimensions
means); a tensor that does not depend on the image input (a second, non-spatial model input) is
:data:`CONST`. Dimension roles, one per dimension after the batch dimension: an int is a spatial axis
of the network input (0 = height for images), ``"C"`` holds channels or features, ``"B"`` is a
dimension of size 1 left where a spatial axis was reduced (``keepdims=True``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from rf_widgets.core.layers import INPUT, Layer
from rf_widgets.frontends.base import BaseBuilder, BaseCall, collect_acts
from rf_widgets.frontends.records import CONST, Act
from rf_widgets.rules import Unsupported

__all__ = ["CONST", "Act", "KerasCall", "Layout"]

Layout = tuple[Any, ...]


def channel_layout(ndim: int, data_format: str) -> Layout:
    """The roles of an image tensor in ``data_format`` (after the batch dimension)."""
    spatial = tuple(range(ndim))
    return ("C", *spatial) if data_format == "channels_first" else (*spatial, "C")


class KerasCall(BaseCall):
    """One call of a Keras layer (or operation) being imported; the argument of every Keras rule.

    Attributes
    ----------
    layer
        The Keras layer or operation that is called (read its configuration, never call it).
    node
        The Keras graph node of this call.
    args, kwargs
        The call's arguments, Keras tensors replaced by :class:`Act` (or :data:`CONST`).
    acts
        Every activation among the arguments, in order; ``x`` is the first.
    op
        The ``op`` the emitted layer gets (the layer's class name).
    """

    def __init__(
        self,
        builder: BaseBuilder,
        node: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str,
        data_format: str,
    ) -> None:
        self.builder = builder
        self.data_format = data_format  # the model's, for layers that do not say theirs
        self.node = node
        self.layer = node.operation
        self.args = args
        self.kwargs = kwargs
        self.name = name
        self.op = type(self.layer).__name__
        self.acts = collect_acts(args) + collect_acts(kwargs)

    @property
    def what(self) -> str:
        return self.op

    def entry(self, source: str) -> str:
        return f"'{source} ({self.op})'"

    @property
    def input_shapes(self) -> list[tuple[int | None, ...]]:
        """Static shapes of the call's Keras input tensors (``None`` for unknown sizes)."""
        return [tuple(t.shape) for t in self.node.input_tensors]

    @property
    def output_shapes(self) -> list[tuple[int | None, ...]]:
        return [tuple(t.shape) for t in self.node.outputs]

    def attr(self, name: str, default: Any = None) -> Any:
        """A configuration attribute of the layer (``kernel_size``, ``strides``, ``padding``...)."""
        return getattr(self.layer, name, default)

    # -- emitting -------------------------------------------------------------------------------------

    def emit(
        self,
        op: str | None = None,
        inputs: Iterable[Act] | None = None,
        layout: Layout | None = None,
        **fields: Any,
    ) -> Act:
        """Append one layer with the given :class:`~rf_widgets.core.layers.Layer` fields."""
        sources = list(self.acts if inputs is None else inputs)
        if layout is None:
            layout = _widest(sources)
        fields.setdefault("params", self._take_params())
        inputs_of = tuple(dict.fromkeys(a.source for a in sources)) or (INPUT,)
        module = self.name.partition(":")[0]
        self.builder.layers.append(Layer(self.name, op or self.op, inputs=inputs_of, module=module, **fields))
        return Act(self.name, tuple(layout))

    def _take_params(self) -> int:
        """The layer's parameter count the first time it is called (shared layers count once)."""
        layer = self.layer
        if not hasattr(layer, "count_params"):
            return 0
        return self.builder.params.once(id(layer), lambda: _count_params(layer))

    def global_(self, layout: Layout | None = None, **extra: Any) -> Act:
        """A layer whose every output depends on every input position."""
        return self.emit(layout=layout or ("C",), kind="global", **extra)

    def relayout(self, layout: Layout, act: Act | None = None) -> Act:
        """The same activation with its dimensions reinterpreted; emits a pointwise layer for it."""
        return self.emit(inputs=[act or self.x], layout=tuple(layout))

    def emit_fields(self, fields: dict[str, Any]) -> Act:
        """A rule's dict of Layer fields as one layer; a window's per-axis values in the layer's dim order."""
        fields = dict(fields)
        kind = fields.get("kind", "window")
        if kind == "window" and any(key in fields for key in ("kernel", "stride", "dilation", "padding")):
            return self.window(
                fields.pop("kernel", 1),
                fields.pop("stride", 1),
                fields.pop("dilation", 1),
                fields.pop("padding", "valid"),
                **{k: v for k, v in fields.items() if k != "kind"},
            )
        return self.emit(**fields)

    def spatial_dims(self, data_format: str | None, count: int | None = None) -> list[int]:
        """Positions (after the batch dimension) of the ``count`` spatial dimensions of ``data_format``."""
        rank = len(self.x.layout)
        count = rank - 1 if count is None else count
        if data_format == "channels_first":
            return list(range(1, 1 + count))
        return list(range(count))

    def window(
        self,
        kernel: Any = 1,
        stride: Any = 1,
        dilation: Any = 1,
        padding: Any = "valid",
        *,
        data_format: str | None = None,
        op: str | None = None,
        **extra: Any,
    ) -> Act:
        """A sliding window over the spatial dimensions of ``x`` as Keras lays them out.

        ``kernel``, ``stride`` and ``dilation`` are an int or one value per spatial dimension of the
        layer; ``padding`` is ``"valid"``, ``"same"`` (TensorFlow's rule: the total padding
        ``max((ceil(n/s) - 1) s + k_eff - n, 0)`` depends on the size, the odd pixel goes at the end),
        ``"causal"`` (1-D: all padding in front), an int, one int or one ``(lo, hi)`` pair per
        dimension. ``data_format`` defaults to the layer's own.
        """
        data_format = data_format or self.attr("data_format") or self.data_format
        k = _tuple(kernel, None)
        count = len(k) if len(k) > 1 else self.ndim
        k = _tuple(kernel, count)
        s, d = _tuple(stride, count), _tuple(dilation, count)
        fields: dict[str, Any] = {"kind": "window"}
        if padding == "same":
            fields["padding_mode"] = "same_upper"
            pads: list[tuple[int, int]] = [(0, 0)] * count
        elif padding == "valid":
            pads = [(0, 0)] * count
        elif padding == "causal":
            pads = [(di * (ki - 1), 0) for ki, di in zip(k, d, strict=True)]
        else:
            pads = _pairs(padding, count)
        per_dim = {"kernel": k, "stride": s, "dilation": d, "padding": tuple(pads)}
        return self.emit(op, **fields, **self.place(per_dim, data_format), **extra)

    def place(self, per_dim: dict[str, tuple[Any, ...]], data_format: str | None) -> dict[str, Any]:
        """Per-dimension values (in the order the layer's spatial dims come) rearranged per network axis.

        Axes the layer does not touch get the neutral value (kernel 1, no padding); a layer whose
        spatial dimensions do not hold the network's spatial axes raises :class:`Unsupported`.
        """
        count = len(next(iter(per_dim.values())))
        dims = self.spatial_dims(data_format or self.data_format, count)
        layout = self.x.layout
        if max(dims) >= len(layout):
            raise Unsupported(f"a {count}-D window on a tensor with {len(layout)} dimensions")
        roles = [layout[p] for p in dims]
        if all(not isinstance(r, int) for r in roles):
            # every spatial axis was reduced before (a global pool kept as 1x1): nothing to place
            roles = list(range(count)) if count == self.ndim else roles
        if not all(isinstance(r, int) for r in roles) or len(set(roles)) != len(roles):
            raise Unsupported(f"a window over dimensions that are not the spatial axes ({_show(layout)})")
        others = [r for i, r in enumerate(layout) if isinstance(r, int) and i not in dims]
        if others:
            raise Unsupported(f"a window whose channel dimension holds a spatial axis ({_show(layout)})")
        neutral = {"kernel": 1, "stride": 1, "dilation": 1, "padding": (0, 0), "output_padding": 0}
        out = {}
        for key, values in per_dim.items():
            placed = [neutral[key]] * self.ndim
            for role, value in zip(roles, values, strict=True):
                placed[role] = value
            out[key] = tuple(placed)
        return out


# -- helpers ------------------------------------------------------------------------------------------


def _widest(acts: Sequence[Act]) -> Layout:
    """The layout of a broadcast result: that of the operand with the most spatial dimensions."""
    if not acts:
        return ("C",)
    return max(acts, key=lambda a: sum(isinstance(r, int) for r in a.layout)).layout


def _tuple(value: Any, count: int | None) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * (count or 1)
    values = tuple(int(v) for v in value)
    return values * count if count and len(values) == 1 else values


def _pairs(padding: Any, count: int) -> list[tuple[int, int]]:
    if isinstance(padding, int):
        return [(padding, padding)] * count
    items = list(padding)
    if len(items) == 1 and count > 1:
        items *= count
    out = []
    for item in items:
        if isinstance(item, int):
            out.append((item, item))
        else:
            lo, hi = item
            out.append((int(lo), int(hi)))
    if len(out) != count:
        raise Unsupported(f"padding {padding!r} for {count} spatial dimensions")
    return out


def _show(layout: Layout) -> str:
    names = {"C": "channels", "B": "reduced"}
    return ", ".join(names.get(r, str(r)) if isinstance(r, str) else f"spatial axis {r}" for r in layout)


def _count_params(layer: Any) -> int:
    try:
        return int(layer.count_params())
    except ValueError:  # a layer that was never built
        return 0


def kernel_macs(*shapes: Any) -> int:
    """Multiply-adds per output position of layers whose weights are the given kernels."""
    return sum(math.prod(int(n) for n in shape) for shape in shapes)
