"""Built-in rules for operations that mix positions: attention, softmax, matmul, einsum.

Also the operations whose field depends on a unit's phase: interpolation, transposed convolution,
pixel shuffle, and the windowed attention of Swin and MaxViT.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from rf_widgets.frontends.layout import Partition
from rf_widgets.torch_import.call import Act, Call
from rf_widgets.torch_import.rules import RuleTable, Unsupported

__all__ = ["register"]


def _softmax(call: Call) -> Act:
    dim = call.literal(1, "dim", -1)
    dim = -1 if dim is None else int(dim)
    return call.mix([call.x.layout[dim]], op="softmax")


def _matmul(call: Call) -> Act:
    left, right = call.args[0], call.args[1]
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
    return call.mix(roles, layout, op="matmul")


def _einsum(call: Call) -> Act:
    equation = call.args[0]
    args = call.args
    operands = args[1:] if len(args) > 2 or not isinstance(args[1], (list, tuple)) else args[1]
    lhs, _, rhs = equation.replace(" ", "").partition("->")
    if "..." in equation or not rhs:
        raise Unsupported(f"the einsum '{equation}'")
    role_of: dict[str, Any] = {}
    for spec, operand in zip(lhs.split(","), operands, strict=False):
        if isinstance(operand, Act):
            for letter, role in zip(spec, operand.layout, strict=False):
                role_of.setdefault(letter, role)
    contracted = [role_of[c] for c in role_of if c not in rhs]
    layout = tuple(role_of.get(c, "C") for c in rhs)
    return call.mix(contracted, layout, op="einsum")


def _attention(call: Call) -> Act:
    key = call.arg(1, "key", None)
    roles = [key.layout[-2]] if isinstance(key, Act) else []
    return call.mix(roles, call.x.layout, op="attention")


def _no_exact_rule(why: str) -> Any:
    def rule(call: Call) -> Any:
        raise Unsupported(why)

    return rule


# -- resampling: interpolation, transposed convolution, pixel shuffle ------------------------------------

_MODES = {
    "nearest": "nearest",
    "nearest-exact": "nearest-exact",
    "linear": "linear",
    "bilinear": "linear",
    "trilinear": "linear",
    "bicubic": "cubic",
}


def _channels_first(call: Call) -> None:
    if tuple(call.x.layout[-call.ndim :]) != tuple(range(call.ndim)):
        raise Unsupported("resampling a tensor whose trailing dimensions are not the spatial axes")


def _per_axis(value: Any, ndim: int) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * ndim


def interpolate(
    call: Call,
    size: Any,
    scale: Any,
    mode: str,
    align_corners: Any,
    recompute: Any = None,
    antialias: Any = False,
) -> Act:
    """``F.interpolate``'s arguments as a resample layer (or adaptive pooling for ``mode="area"``)."""
    from rf_widgets.core.layers import Resample

    _channels_first(call)
    ndim = call.ndim
    if antialias:
        raise Unsupported("antialiased interpolation")
    if mode == "area" and size is not None and not _computed(size):
        return call.layer({"kind": "adaptive", "output_size": _per_axis(size, ndim)})
    if mode not in _MODES:
        raise Unsupported(f"interpolation mode '{mode}'")
    if recompute and scale is not None:
        raise Unsupported("interpolation with recompute_scale_factor=True")
    fields: dict[str, Any] = {"mode": _MODES[mode], "align_corners": bool(align_corners)}
    if size is not None:
        from rf_widgets.torch_import.call import ShapeOf

        items = size if isinstance(size, (tuple, list)) else (size,)
        if isinstance(size, ShapeOf) or all(isinstance(v, ShapeOf) for v in items):
            shapes = [size] if isinstance(size, ShapeOf) else list(items)
            sources = {s.source for s in shapes}
            roles = [r for s in shapes for r in s.roles]
            if len(sources) != 1 or len(roles) != ndim or not all(isinstance(r, int) for r in roles):
                raise Unsupported(f"an interpolation to a size read off shapes as {roles}")
            fields["size_of"] = sources.pop()
            fields["size_axes"] = tuple(roles)
        elif _computed(size):
            raise Unsupported("an interpolation to a size computed at run time")
        else:
            fields["size"] = tuple(int(v) for v in _per_axis(size, ndim))
    elif scale is not None and not _computed(scale):
        fields["scale"] = tuple(Fraction(float(v)) for v in _per_axis(scale, ndim))
    else:
        raise Unsupported("an interpolation whose size and scale are computed at run time")
    return call.emit(kind="resample", resample=Resample(**fields))


def _computed(value: Any) -> bool:
    from rf_widgets.torch_import.call import _computed as computed

    return computed(value)


def _upsample_module(call: Call) -> Act:
    m: Any = call.module
    return interpolate(call, m.size, m.scale_factor, m.mode, m.align_corners, m.recompute_scale_factor)


def _interpolate_fn(call: Call) -> Act:
    name = call.op
    if name in ("upsample_nearest", "upsample_bilinear"):
        mode = "nearest" if name == "upsample_nearest" else "bilinear"
        return interpolate(call, call.arg(1, "size"), call.arg(2, "scale_factor"), mode, mode == "bilinear")
    return interpolate(
        call,
        call.arg(1, "size"),
        call.arg(2, "scale_factor"),
        call.literal(3, "mode", "nearest"),
        call.literal(4, "align_corners", None),
        call.literal(5, "recompute_scale_factor", None),
        call.literal(6, "antialias", False),
    )


def transpose_layer(
    call: Call, kernel: Any, stride: Any, padding: Any, output_padding: Any, dilation: Any, macs: int = 0
) -> Act:
    """A transposed convolution as a resample layer; refused when some output phase reads no input."""
    from rf_widgets.core.arithmetic import transpose_taps
    from rf_widgets.core.layers import Resample
    from rf_widgets.errors import LayerSpecError

    _channels_first(call)
    ndim = call.ndim
    k, s, p, extra, d = (
        tuple(int(v) for v in _per_axis(a, ndim)) for a in (kernel, stride, padding, output_padding, dilation)
    )
    for axis in range(ndim):
        try:
            transpose_taps(k[axis], s[axis], d[axis], p[axis])
        except LayerSpecError as err:
            raise Unsupported(str(err)) from None
    return call.emit(
        kind="resample",
        kernel=k,
        stride=s,
        dilation=d,
        padding=tuple((v, v) for v in p),
        resample=Resample("transpose", output_padding=extra),
        macs_per_position=macs,
    )


def _conv_transpose_module(call: Call) -> Act:
    m: Any = call.module
    if m.padding_mode != "zeros":
        raise Unsupported(f"transposed convolution with padding_mode '{m.padding_mode}'")
    macs = m.in_channels * (m.out_channels // m.groups) * math.prod(m.kernel_size) // math.prod(m.stride)
    return transpose_layer(call, m.kernel_size, m.stride, m.padding, m.output_padding, m.dilation, macs)


def _conv_transpose_fn(call: Call) -> Act:
    from rf_widgets.torch_import.ops_layers import _static_tensor

    weight_node = call.node.args[1] if len(call.node.args) > 1 else call.node.kwargs.get("weight")
    weight = _static_tensor(call, weight_node)
    if weight is None:
        raise Unsupported("a functional transposed convolution whose weight is not a parameter")
    return transpose_layer(
        call,
        tuple(weight.shape[2:]),
        call.literal(3, "stride", 1),
        call.literal(4, "padding", 0),
        call.literal(5, "output_padding", 0),
        call.literal(7, "dilation", 1),
    )


def _shuffle(call: Call, factor: int) -> Act:
    """Pixel shuffle by ``r``: output position ``v`` comes from input ``v // r`` (nearest upsampling)."""
    from rf_widgets.core.layers import Resample

    _channels_first(call)
    return call.emit(kind="resample", resample=Resample("nearest", scale=(Fraction(factor),) * call.ndim))


def _pixel_shuffle_module(call: Call) -> Act:
    m: Any = call.module
    return _shuffle(call, int(m.upscale_factor))


def _pixel_shuffle_fn(call: Call) -> Act:
    return _shuffle(call, int(call.literal(1, "upscale_factor")))


def _unshuffle(call: Call, factor: int) -> Act:
    """Pixel unshuffle (space-to-depth) by ``r``: an ``r x r`` window with stride ``r``."""
    _channels_first(call)
    return call.window(factor, factor)


def _pixel_unshuffle_module(call: Call) -> Act:
    m: Any = call.module
    return _unshuffle(call, int(m.downscale_factor))


def _pixel_unshuffle_fn(call: Call) -> Act:
    return _unshuffle(call, int(call.literal(1, "downscale_factor")))


# -- windowed attention ---------------------------------------------------------------------------------


def _swin_attention(call: Call) -> Act:
    """torchvision's ``shifted_window_attention`` on ``(N, H, W, C)``: attention within shifted windows.

    Tokens attend to the tokens of their window; with a shift the windows' borders lie at
    ``shift + j * window`` (the roll and the attention mask together), and one window as large as the
    map (after padding) makes the layer global. Resolved at each input size.
    """
    from rf_widgets.core.layers import Resample

    window = tuple(int(v) for v in call.literal(4, "window_size"))
    shift = tuple(int(v) for v in call.literal(6, "shift_size", [0] * len(window)))
    layout = call.x.layout
    order = tuple(r for r in layout if isinstance(r, int))
    if len(window) != call.ndim or sorted(order) != list(range(call.ndim)) or layout[-1] != "C":
        raise Unsupported(f"shifted window attention on a tensor laid out as {layout}")
    by_axis_w = [0] * call.ndim
    by_axis_s = [0] * call.ndim
    for position, axis in enumerate(order):
        by_axis_w[axis] = window[position]
        by_axis_s[axis] = shift[position]
    spec = Resample("windows", window=tuple(by_axis_w), shift=tuple(by_axis_s))
    # per token: the qkv and output projections; per pair of tokens in a window: q.k and the
    # weighted value, C each (the relative position bias and its MLP are left out)
    weights = call.node.args[1:3]  # qkv_weight, proj_weight
    qkv, proj = (call.shape_of(w) for w in weights) if len(weights) == 2 else (None, None)
    if qkv is None or proj is None:
        raise Unsupported("shifted window attention whose weights have no known shape")
    per_token = math.prod(qkv) + math.prod(proj)
    return call.emit(
        "shifted_window_attention", kind="resample", resample=spec, mixing_macs=(per_token, 2 * proj[0])
    )


def _window_partition(call: Call) -> Act:
    """MaxViT's ``WindowPartition(x, p)``: ``(N, C, H, W)`` to ``(N, windows, p * p, C)``."""
    p = int(call.literal(1, "p"))
    if tuple(call.x.layout) != ("N", "C", *range(call.ndim)) or call.ndim != 2:
        raise Unsupported(f"a window partition of a tensor laid out as {call.x.layout}")
    return call.relayout(("N", Partition("Pg", p), Partition("Pw", p), "C"))


def _window_departition(call: Call) -> Act:
    """MaxViT's ``WindowDepartition``: the partition undone, back to ``(N, C, H, W)``."""
    p = int(call.literal(1, "p"))
    if tuple(call.x.layout) != ("N", Partition("Pg", p), Partition("Pw", p), "C"):
        raise Unsupported(f"a window departition of a tensor laid out as {call.x.layout}")
    return call.relayout(("N", "C", *range(call.ndim)))


def _swap_axes(call: Call) -> Act:
    m: Any = call.module
    layout = list(call.x.layout)
    layout[m.a], layout[m.b] = layout[m.b], layout[m.a]
    return call.relayout(tuple(layout))


def register(table: RuleTable) -> None:
    """Add this module's rules to ``table``."""
    fn: Any
    for fn in (torch.softmax, F.softmax, F.log_softmax):
        table.function(fn, _softmax)
    for name in ("softmax", "log_softmax"):
        table.method(name, _softmax)
    for fn in (torch.matmul, torch.bmm, __import__("operator").matmul):
        table.function(fn, _matmul)
    for name in ("matmul", "bmm"):
        table.method(name, _matmul)
    table.function(torch.einsum, _einsum)
    table.function(F.scaled_dot_product_attention, _attention)
    for cls in (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d):
        table.module(cls, _conv_transpose_module)
    table.module(nn.Upsample, _upsample_module)  # UpsamplingNearest2d and UpsamplingBilinear2d too
    table.module(nn.PixelShuffle, _pixel_shuffle_module)
    table.module(nn.PixelUnshuffle, _pixel_unshuffle_module)
    for fn in (F.interpolate, F.upsample, F.upsample_nearest, F.upsample_bilinear):
        table.function(fn, _interpolate_fn)
    for fn in (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d):
        table.function(fn, _conv_transpose_fn)
    table.function(F.pixel_shuffle, _pixel_shuffle_fn)
    table.function(F.pixel_unshuffle, _pixel_unshuffle_fn)
    table.function("torchvision.models.swin_transformer.shifted_window_attention", _swin_attention)
    table.module("torchvision.models.maxvit.WindowPartition", _window_partition)
    table.module("torchvision.models.maxvit.WindowDepartition", _window_departition)
    table.module("torchvision.models.maxvit.SwapAxes", _swap_axes)
