"""Built-in rules that emit one layer per call: convolutions, pools, padding, pointwise operations.

Upsampling (interpolation, transposed convolution, pixel shuffle) lives in ``ops_windows`` with the
other operations whose field depends on a unit's phase.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from rf_widgets.torch_import.call import Act, Call
from rf_widgets.torch_import.rules import RuleTable, Unsupported

__all__ = ["conv_fields", "pad_layer", "register"]


def _tuple(value: Any, ndim: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * ndim
    values = tuple(int(v) for v in value)
    return values * ndim if len(values) == 1 else values


def conv_fields(kernel: Any, stride: Any, dilation: Any, padding: Any, ndim: int) -> dict[str, Any]:
    """Layer fields of a convolution, PyTorch's ``padding="same"``/``"valid"`` included."""
    k = _tuple(kernel, ndim)
    d = _tuple(dilation, ndim)
    if padding == "valid":
        pads: tuple[tuple[int, int], ...] = ((0, 0),) * len(k)
    elif padding == "same":
        totals = [di * (ki - 1) for ki, di in zip(k, d, strict=True)]
        pads = tuple((t // 2, t - t // 2) for t in totals)
    else:
        pads = tuple((p, p) for p in _tuple(padding, len(k)))
    return {"kind": "window", "kernel": k, "stride": _tuple(stride, len(k)), "dilation": d, "padding": pads}


def _pool_stride(kernel: Any, stride: Any) -> Any:
    return kernel if stride in (None, (), []) else stride


# -- modules ------------------------------------------------------------------------------------------


def _record(call: Call, act: Act, **facts: object) -> Act:
    """Keep what the design strategies need to predict an edited layer (channels, pool kind).

    ``Layer.extra`` takes no part in equality or in the stack files, so nothing else sees these facts.
    """
    layers = call.builder.layers
    if layers and layers[-1].name == act.source:
        layers[-1].extra.update(facts)
    return act


def conv_layer(call: Call, padding: Any = 0, padding_mode: str | None = None) -> Act:
    """The convolution module of ``call`` as a window, its channels recorded for the strategies.

    ``padding`` is the module's own unless ``padding_mode`` (``"same_upper"``) sizes it per input.
    """
    m: Any = call.module
    macs = m.out_channels * (m.in_channels // m.groups) * math.prod(m.kernel_size)
    how: dict[str, Any] = {"padding_mode": padding_mode} if padding_mode else {"padding": padding}
    act = call.window(m.kernel_size, m.stride, m.dilation, macs_per_position=macs, **how)
    return _record(
        call,
        act,
        in_channels=m.in_channels,
        out_channels=m.out_channels,
        groups=m.groups,
        bias=m.bias is not None,
        padding_mode="zeros" if padding_mode else m.padding_mode,
    )


def _conv_module(call: Call) -> Act:
    m: Any = call.module
    return conv_layer(call, m.padding)


def _maxpool_module(call: Call) -> Act:
    m: Any = call.module
    act = call.window(
        m.kernel_size, _pool_stride(m.kernel_size, m.stride), m.dilation, m.padding, ceil_mode=m.ceil_mode
    )
    return _record(call, act, pool="max")


def _avgpool_module(call: Call) -> Act:
    m: Any = call.module
    act = call.window(
        m.kernel_size, _pool_stride(m.kernel_size, m.stride), 1, m.padding, ceil_mode=m.ceil_mode
    )
    return _record(call, act, pool="avg")


def _lppool_module(call: Call) -> Act:
    m: Any = call.module
    act = call.window(m.kernel_size, _pool_stride(m.kernel_size, m.stride), 1, 0, ceil_mode=m.ceil_mode)
    return _record(call, act, pool="lp")


def _adaptive(call: Call, size: Any, ndim: int) -> Act:
    sizes = (size,) * ndim if size is None or isinstance(size, int) else tuple(size)
    return call.layer({"kind": "adaptive", "output_size": sizes}, op=call.op.removesuffix("_with_indices"))


def _adaptive_module(call: Call) -> Act:
    m: Any = call.module
    return _adaptive(call, m.output_size, _axes_of(type(m).__name__))


def _pad_module(call: Call) -> Act:
    m: Any = call.module
    return pad_layer(call, tuple(m.padding))


def pad_layer(call: Call, pad: Any, op: str | None = None) -> Act:
    """``F.pad``'s (last-dim-first) pairs as a 1x1 window with padding on the spatial axes."""
    x = call.x
    pad = tuple(int(p) for p in pad)
    padding = [(0, 0)] * call.ndim
    layout = list(x.layout)
    for k in range(len(pad) // 2):
        dim = len(x.layout) - 1 - k
        role = x.layout[dim]
        pair = (pad[2 * k], pad[2 * k + 1])
        if isinstance(role, int):
            padding[role] = pair
        elif role in ("T", "Tc") and pair[0] > 0 and pair[1] == 0:
            layout[dim] = "Tc"  # constant tokens in front of the map's (CoaT's slot for the class token)
        elif role in ("T", "Tc", "X") and pair != (0, 0):
            raise Unsupported("padding along flattened spatial positions")
    if all(p == (0, 0) for p in padding):
        return call.pointwise(op, layout=tuple(layout))
    return call.emit(op, kernel=(1,) * call.ndim, padding=tuple(padding))


def _pointwise(call: Call) -> Act:
    return call.pointwise()


def _linear_module(call: Call) -> Act:
    m: Any = call.module
    return call.mix([call.x.layout[-1]], macs_per_position=m.in_features * m.out_features)


def _bilinear_module(call: Call) -> Act:
    return call.mix([a.layout[-1] for a in call.acts])


def _softmax_module(call: Call) -> Act:
    m: Any = call.module
    dim = m.dim if m.dim is not None else -1
    return call.mix([call.x.layout[dim]])


def _multihead_attention(call: Call) -> Any:
    seq = 1 if call.module.batch_first else 0  # type: ignore[union-attr]
    from rf_widgets.torch_import.call import CONST

    m: Any = call.module
    # per token: the query/key/value and output projections; per pair: q.k and the weighted value
    projections = (m.in_proj_weight, m.q_proj_weight, m.k_proj_weight, m.v_proj_weight, m.out_proj.weight)
    per_token = sum(int(w.numel()) for w in projections if w is not None)
    per_pair = 2 * m.embed_dim  # keys and values are projected to embed_dim whatever kdim and vdim are
    mixed = call.mix([a.layout[seq] for a in call.acts], call.x.layout, mixing_macs=(per_token, per_pair))
    return (mixed, CONST)


def _transformer(call: Call) -> Act:
    seq = 1 if getattr(call.module, "batch_first", False) else 0
    return call.mix([a.layout[seq] for a in call.acts], call.x.layout)


def _flatten_module(call: Call) -> Act:
    from rf_widgets.torch_import.ops_layout import flatten

    m: Any = call.module
    return flatten(call, m.start_dim, m.end_dim)


def _no_exact_rule(why: str) -> Any:
    def rule(call: Call) -> Any:
        raise Unsupported(why)

    return rule


# -- functions ----------------------------------------------------------------------------------------


def _conv_fn(call: Call) -> Act:
    weight_node = call.node.args[1] if len(call.node.args) > 1 else call.node.kwargs.get("weight")
    weight = _static_tensor(call, weight_node)
    if weight is None:
        raise Unsupported("a functional convolution whose weight is not a parameter")
    return call.window(
        tuple(weight.shape[2:]),
        call.literal(3, "stride", 1),
        call.literal(5, "dilation", 1),
        call.literal(4, "padding", 0),
        op="conv",
    )


def _pool_fn(call: Call) -> Act:
    name = call.op
    kernel = call.literal(1, "kernel_size", 1)
    stride = call.literal(2, "stride", None)
    padding = call.literal(3, "padding", 0)
    if name.startswith("max"):
        dilation = call.literal(4, "dilation", 1)
        ceil_mode = call.literal(5, "ceil_mode", False)
    else:
        dilation = 1
        ceil_mode = call.literal(4, "ceil_mode", False)
    return call.window(
        kernel,
        _pool_stride(kernel, stride),
        dilation,
        padding,
        ceil_mode=bool(ceil_mode),
        op=name.removesuffix("_with_indices"),
    )


def _adaptive_fn(call: Call) -> Act:
    return _adaptive(call, call.literal(1, "output_size", 1), _axes_of(call.op))


def _pad_fn(call: Call) -> Act:
    return pad_layer(call, call.literal(1, "pad", ()), op="pad")


def _linear_fn(call: Call) -> Act:
    return call.mix([call.x.layout[-1]], op="linear")


def _patch_merging_pad(call: Call) -> Act:
    # torchvision's Swin pads H and W at the high end to even sizes and stacks the four pixels of every
    # 2x2 block along the channels: a 2x2 window with stride 2, ceil mode giving the padded size.
    return call.window(2, 2, ceil_mode=True, op="patch_merging")


def _axes_of(name: str) -> int:
    digits = [c for c in name if c.isdigit()]
    return int(digits[-1]) if digits else 2


def _static_tensor(call: Call, node: Any) -> torch.Tensor | None:
    from rf_widgets.torch_import.tracing import fetch_attr

    if getattr(node, "op", None) == "get_attr":
        value = fetch_attr(call.builder.gm, str(node.target))
        return value if isinstance(value, torch.Tensor) else None
    return None


# -- the table ----------------------------------------------------------------------------------------

POINTWISE_MODULES: tuple[type, ...] = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LayerNorm, nn.LocalResponseNorm,
    nn.RMSNorm, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
    nn.SiLU, nn.Mish, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Softplus,
    nn.Softsign, nn.Tanhshrink, nn.Threshold, nn.GLU, nn.Identity, nn.Dropout, nn.Dropout1d,
    nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout, nn.ChannelShuffle,
)  # fmt: skip

POINTWISE_FUNCTIONS: tuple[Any, ...] = (
    F.relu, F.relu_, torch.relu, torch.relu_, F.relu6, F.leaky_relu, F.elu, F.selu, F.celu, F.gelu,
    F.silu, F.mish, F.hardswish, F.hardsigmoid, F.hardtanh, F.softplus, F.sigmoid, torch.sigmoid,
    F.tanh, torch.tanh, torch.clamp, torch.clip, torch.exp, torch.abs, torch.sqrt, torch.rsqrt,
    torch.neg, F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.batch_norm,
    F.layer_norm, F.group_norm, F.instance_norm, F.local_response_norm, F.rms_norm, operator.neg,
    operator.abs, operator.pow, torch.pow, torch.square, F.channel_shuffle, torch.channel_shuffle,
    torch.native_channel_shuffle,
)  # fmt: skip

POINTWISE_METHODS: tuple[str, ...] = (
    "relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "clamp", "clamp_", "clamp_min",
    "clamp_min_", "clamp_max", "clip", "exp", "abs", "sqrt", "rsqrt", "neg", "pow", "square", "sign",
)  # fmt: skip

NO_EXACT_RULE: dict[Any, str] = {
    nn.Fold: "fold/unfold rearranges positions",
    nn.Unfold: "fold/unfold rearranges positions",
    F.grid_sample: "grid sampling reads data-dependent positions",
    F.unfold: "fold/unfold rearranges positions",
    F.fold: "fold/unfold rearranges positions",
}


def register(table: RuleTable) -> None:
    """Add this module's rules to ``table``."""
    cls: type
    for cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
        table.module(cls, _conv_module)
    for cls in (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d):
        table.module(cls, _maxpool_module)
    for cls in (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d):
        table.module(cls, _avgpool_module)
    for cls in (nn.LPPool1d, nn.LPPool2d):
        table.module(cls, _lppool_module)
    for cls in (
        nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
        nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
    ):  # fmt: skip
        table.module(cls, _adaptive_module)
    for cls in (
        nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d,
        nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReflectionPad3d, nn.ReplicationPad1d,
        nn.ReplicationPad2d, nn.ReplicationPad3d, nn.CircularPad1d, nn.CircularPad2d, nn.CircularPad3d,
    ):  # fmt: skip
        table.module(cls, _pad_module)
    for cls in POINTWISE_MODULES:
        table.module(cls, _pointwise)
    table.module(nn.Linear, _linear_module)
    table.module(nn.LazyLinear, _linear_module)
    table.module(nn.Bilinear, _bilinear_module)
    for cls in (nn.Softmax, nn.LogSoftmax, nn.Softmin):
        table.module(cls, _softmax_module)
    table.module(nn.Flatten, _flatten_module)
    table.module(nn.MultiheadAttention, _multihead_attention)
    for cls in (
        nn.TransformerEncoderLayer, nn.TransformerDecoderLayer, nn.TransformerEncoder,
        nn.TransformerDecoder, nn.Transformer,
    ):  # fmt: skip
        table.module(cls, _transformer)
    for fn in POINTWISE_FUNCTIONS:
        table.function(fn, _pointwise)
    for name in POINTWISE_METHODS:
        table.method(name, _pointwise)
    for fn in (F.conv1d, F.conv2d, F.conv3d):
        table.function(fn, _conv_fn)
    for fn in (
        F.max_pool1d, F.max_pool2d, F.max_pool3d, F.max_pool1d_with_indices, F.max_pool2d_with_indices,
        F.max_pool3d_with_indices, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
    ):  # fmt: skip
        table.function(fn, _pool_fn)
    for fn in (
        F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, F.adaptive_max_pool1d,
        F.adaptive_max_pool2d, F.adaptive_max_pool3d, F.adaptive_max_pool1d_with_indices,
        F.adaptive_max_pool2d_with_indices,
    ):  # fmt: skip
        table.function(fn, _adaptive_fn)
    table.function(F.pad, _pad_fn)
    table.function(F.linear, _linear_fn)
    # torchvision functions wrapped for torch.fx, by name (torchvision need not be imported)
    table.function("torchvision.ops.stochastic_depth.stochastic_depth", _pointwise)
    table.function("torchvision.models.swin_transformer._patch_merging_pad", _patch_merging_pad)
    for key, why in NO_EXACT_RULE.items():
        if isinstance(key, type):
            table.module(key, _no_exact_rule(why))
        else:
            table.function(key, _no_exact_rule(why))
