"""What a rule sees: one fx node with its arguments, and the helpers that turn it into layers.

Arguments arrive as the importer evaluated them: an activation is an :class:`Act` (the layer that
produced it and what each of its dimensions means, see :mod:`rf_widgets.torch_import.layout`), a value
computed from shapes or parameters alone is :data:`CONST`, literals are themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch.fx as fx
import torch.nn as nn

from rf_widgets.core.arithmetic import Diagnostic
from rf_widgets.core.layers import Layer
from rf_widgets.frontends.records import CONST, Act, ShapeOf
from rf_widgets.torch_import.layout import Layout, mixing, partition
from rf_widgets.torch_import.rules import Unsupported

if TYPE_CHECKING:
    from rf_widgets.torch_import.builder import GraphBuilder

__all__ = ["CONST", "Act", "Call", "ShapeOf"]


class Call:
    """One call (module, function or method) being imported; the argument of every rule.

    Attributes
    ----------
    node
        The torch.fx node.
    module
        The called module for a module call, else None.
    args, kwargs
        The evaluated arguments (activations as :class:`Act`).
    acts
        Every activation among the arguments, in order; ``x`` is the first.
    op
        The name the emitted layer gets as its ``op`` (the module class, function or method name).
    """

    def __init__(
        self,
        builder: GraphBuilder,
        node: fx.Node,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        module: nn.Module | None,
        op: str,
    ) -> None:
        self.builder = builder
        self.node = node
        self.args = args
        self.kwargs = kwargs
        self.module = module
        self.op = op
        self.acts = _acts(args) + _acts(kwargs)
        self._params_taken = False

    @property
    def x(self) -> Act:
        return self.acts[0]

    @property
    def ndim(self) -> int:
        return self.builder.ndim

    # -- arguments ------------------------------------------------------------------------------------

    def arg(self, position: int, name: str, default: Any = None) -> Any:
        """The argument at ``position`` (counting the input tensor) or keyword ``name``."""
        if len(self.args) > position:
            return self.args[position]
        return self.kwargs.get(name, default)

    def literal(self, position: int, name: str, default: Any = None) -> Any:
        """Like :meth:`arg`, but a value computed at run time raises :class:`Unsupported`."""
        value = self.arg(position, name, default)
        if _computed(value):
            raise Unsupported(f"its argument '{name}' is computed at run time")
        return value

    def shape_of(self, node: Any) -> tuple[int, ...] | None:
        """The tensor shape of ``node`` at the reference input size (a fake-tensor pass)."""
        return self.builder.shape_of(node) if isinstance(node, fx.Node) else None

    # -- emitting -------------------------------------------------------------------------------------

    def emit(
        self,
        op: str | None = None,
        inputs: Iterable[Act] | None = None,
        layout: Layout | None = None,
        suffix: str = "",
        **fields: Any,
    ) -> Act:
        """Append one layer with the given :class:`~rf_widgets.core.layers.Layer` fields.

        ``suffix`` names a layer that stands for a part of the called module (``"attn"``: the layer is
        called ``"<module>.attn"``), for rules that emit several layers for one call.
        """
        inputs = list(self.acts if inputs is None else inputs)
        layout = inputs[0].layout if layout is None else layout
        if self.module is not None and not self._params_taken:
            self._params_taken = True
            fields.setdefault("params", self.builder.take_params(self.module.parameters()))
        elif self.module is None and not self._params_taken:
            self._params_taken = True
            fields.setdefault("params", self.builder.take_params(self.builder.parameters_of(self.node)))
        return self.builder.append(self.node, op or self.op, inputs, layout, fields, suffix)

    def pointwise(self, op: str | None = None, layout: Layout | None = None, **extra: Any) -> Act:
        """A layer that treats every position alone (activations, norms, merges along channels)."""
        return self.emit(op, layout=layout, **extra)

    def global_(self, op: str | None = None, layout: Layout | None = None, **extra: Any) -> Act:
        """A layer whose every output depends on every input position."""
        return self.emit(op, layout=layout, kind="global", **extra)

    def unknown(self, why: str, op: str | None = None, layout: Layout | None = None) -> Act:
        """A layer without a rule: status unknown, a diagnostic and a warning (never identity)."""
        act = self.emit(op, layout=layout, kind="unknown", note=why)
        shown = op or self.op
        self.builder.unknown.append(act.source)
        self.builder.diagnostics.append(
            Diagnostic(
                act.source,
                "unknown-op",
                f"'{act.source}' ({shown}) has no receptive-field rule: {why}; values after it assume it "
                "adds no context and are lower bounds",
            )
        )
        return act

    def mix(
        self, roles: Sequence[Any], layout: Layout | None = None, op: str | None = None, **extra: Any
    ) -> Act:
        """A layer that mixes values along dimensions with ``roles``: global along space, else pointwise."""
        how = mixing(list(roles))
        if how == "global" and any(partition(r) for r in roles):
            # grid attention: every window is reached, and the map keeps its size (a window larger
            # than any map resolves to global at every input size)
            from rf_widgets.core.layers import Resample

            spec = Resample("windows", window=(1 << 30,) * self.ndim, shift=(0,) * self.ndim)
            return self.emit(op, layout=layout, kind="resample", resample=spec, **extra)
        if how == "global":
            return self.global_(op, layout, **extra)
        if how.startswith("window:"):
            from rf_widgets.core.layers import Resample

            size = int(how.partition(":")[2])
            spec = Resample("windows", window=(size,) * self.ndim, shift=(0,) * self.ndim)
            return self.emit(op, layout=layout, kind="resample", resample=spec, **extra)
        if how == "unknown":
            return self.unknown(
                "it mixes positions along a dimension that holds part of the spatial positions "
                "(a window or grid partition)",
                op,
                layout,
            )
        return self.pointwise(op, layout, **extra)

    def relayout(self, layout: Layout, act: Act | None = None) -> Act:
        """The same activation with its dimensions reinterpreted (a reshape, permute, squeeze...)."""
        return Act((act or self.x).source, tuple(layout))

    def window(
        self,
        kernel: Any = 1,
        stride: Any = 1,
        dilation: Any = 1,
        padding: Any = 0,
        *,
        ceil_mode: bool = False,
        op: str | None = None,
        **extra: Any,
    ) -> Act:
        """A sliding window over the spatial axes (ints apply to every axis; ``padding="same"`` works)."""
        from rf_widgets.torch_import.ops_layers import conv_fields

        kernel, stride, dilation, padding = self._spatial_entries(kernel, stride, dilation, padding)
        fields = conv_fields(kernel, stride, dilation, padding, self._window_axes())
        fields["ceil_mode"] = bool(ceil_mode)
        return self.layer(fields, op=op, **extra)

    def layer(self, fields: dict[str, Any], op: str | None = None, **extra: Any) -> Act:
        """Emit a layer from rule fields, mapping per-axis parameters onto the spatial dims of ``x``.

        The fields list the spatial axes in the order the tensor holds them; a channels-last tensor
        (Swin's ``(N, H, W, C)``) works like a channels-first one.
        """
        fields = dict(fields)
        kind = fields.get("kind", "window")
        if kind == "pad":
            from rf_widgets.torch_import.ops_layers import pad_layer

            return pad_layer(self, fields["pad"], op=op)
        order = _spatial_order(self.x.layout, self.ndim)
        if kind not in ("global", "unknown", "adaptive") and order is None:
            if mixing(list(self.x.layout)) == "elementwise":
                return self.pointwise(op, **extra)
            raise Unsupported(f"a spatial window applied to a tensor with dimensions {_show(self.x.layout)}")
        if order is not None and order != tuple(range(self.ndim)):
            fields = _reorder(fields, order)
        return self.emit(op, **fields, **extra)

    def _spatial_entries(self, kernel: Any, stride: Any, dilation: Any, padding: Any) -> tuple[Any, ...]:
        """Per-dimension values of a window over more trailing dimensions than there are spatial axes
        (timm's lambda layer: a ``(r, r, 1)`` Conv3d over ``(H, W, channels)``), kept for the spatial ones.

        A dimension that is not spatial must have kernel, stride and dilation 1 and no padding.
        """
        if not isinstance(kernel, (tuple, list)):
            return kernel, stride, dilation, padding
        layout = self.x.layout
        spatial = sum(isinstance(r, int) for r in layout)
        if spatial == 0 or len(kernel) <= spatial or len(kernel) > len(layout):
            return kernel, stride, dilation, padding
        roles = layout[len(layout) - len(kernel) :]
        values = [kernel, stride, dilation, padding]
        neutral = [1, 1, 1, 0]
        per_dim = [v if isinstance(v, (tuple, list)) else (v,) * len(kernel) for v in values]
        if isinstance(padding, str) or any(len(v) != len(kernel) for v in per_dim):
            return kernel, stride, dilation, padding
        for i, role in enumerate(roles):
            if not isinstance(role, int) and any(v[i] != n for v, n in zip(per_dim, neutral, strict=True)):
                raise Unsupported(f"a window along a dimension that holds no spatial axis ({_show(layout)})")
        keep = [i for i, role in enumerate(roles) if isinstance(role, int)]
        return tuple(tuple(v[i] for i in keep) for v in per_dim)

    def _window_axes(self) -> int:
        order = _spatial_order(self.x.layout, self.ndim)
        return self.ndim if order is None else len(order)


# -- helpers ------------------------------------------------------------------------------------------


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


def _computed(value: Any) -> bool:
    if value is CONST or isinstance(value, (Act, ShapeOf)):
        return True
    if isinstance(value, (tuple, list)):
        return any(_computed(v) for v in value)
    return False


def _spatial_order(layout: Layout, ndim: int) -> tuple[int, ...] | None:
    """The spatial axes in the order the tensor holds them, when each appears once as its own dim."""
    axes = tuple(r for r in layout if isinstance(r, int))
    if sorted(axes) != list(range(ndim)) or any(r in ("T", "Tc", "X") for r in layout if isinstance(r, str)):
        return None
    return axes


_PER_AXIS = ("kernel", "stride", "dilation", "padding", "output_padding", "output_size")


def _reorder(fields: dict[str, Any], order: tuple[int, ...]) -> dict[str, Any]:
    """Per-axis fields given in tensor order, rearranged into axis order."""
    out = dict(fields)
    for key in _PER_AXIS:
        values = fields.get(key)
        if isinstance(values, tuple) and len(values) == len(order):
            placed: list[Any] = [None] * len(order)
            for position, axis in enumerate(order):
                placed[axis] = values[position]
            out[key] = tuple(placed)
    return out


def _show(layout: Layout) -> str:
    names = {"N": "batch", "C": "channels", "T": "tokens", "X": "partitioned positions", "F": "features"}
    return (
        "("
        + ", ".join(names.get(r, f"axis {r}") if isinstance(r, str) else f"spatial axis {r}" for r in layout)
        + ")"
    )


def make_layer(
    name: str, op: str, sources: tuple[str, ...], module: str | None, node: str, fields: dict
) -> Layer:
    return Layer(name, op, inputs=sources, module=module, extra={"fx_node": node}, **fields)
