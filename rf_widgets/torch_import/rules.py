"""The rule table: which torch modules and functions do what to the receptive field.

Each rule turns one fx node into a layer description (a dict of :class:`~rf_widgets.core.layers.Layer`
fields) or into a pure change of layout. Users can add rules for their own modules and functions with
:func:`register_module_rule` and :func:`register_function_rule`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "BINARY_OPS",
    "ELEMENTWISE_FUNCTIONS",
    "ELEMENTWISE_METHODS",
    "ELEMENTWISE_MODULES",
    "LAYOUT_METHODS",
    "REDUCTIONS",
    "UNKNOWN_FUNCTIONS",
    "UNKNOWN_MODULES",
    "conv_rule",
    "function_rules",
    "module_rules",
    "pool_rule",
    "register_function_rule",
    "register_module_rule",
]

LayerFields = dict[str, Any]
ModuleRule = Callable[[nn.Module], LayerFields]
FunctionRule = Callable[..., LayerFields]

_MODULE_RULES: dict[type, ModuleRule] = {}
_FUNCTION_RULES: dict[Any, FunctionRule] = {}


def register_module_rule(module_type: type, rule: ModuleRule) -> None:
    """Teach the importer a module type: ``rule(module)`` returns Layer fields.

    The fields are those of :class:`~rf_widgets.core.layers.Layer` (``kind``, ``kernel``, ``stride``,
    ``dilation``, ``padding``, ``ceil_mode``, ``output_size``), per spatial axis. Modules of this type
    become leaves of the trace.

    Examples
    --------
    >>> import torch.nn as nn
    >>> class Blur(nn.Module):
    ...     def forward(self, x):
    ...         return x
    >>> blur = {"kind": "window", "kernel": (3, 3), "padding": ((1, 1), (1, 1))}
    >>> register_module_rule(Blur, lambda m: blur)
    """
    if not isinstance(module_type, type) or not issubclass(module_type, nn.Module):
        raise TypeError(f"register_module_rule needs an nn.Module subclass, got {module_type!r}")
    _MODULE_RULES[module_type] = rule


def register_function_rule(function: Any, rule: FunctionRule) -> None:
    """Teach the importer a function: ``rule(*args, **kwargs)`` returns Layer fields.

    Activation arguments reach the rule as None; everything else as traced (literals).
    """
    _FUNCTION_RULES[function] = rule


def module_rules() -> dict[type, ModuleRule]:
    return _MODULE_RULES


def function_rules() -> dict[Any, FunctionRule]:
    return _FUNCTION_RULES


def _tuple(value: Any, ndim: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * ndim
    return tuple(int(v) for v in value)


def conv_rule(kernel: Any, stride: Any, dilation: Any, padding: Any, ndim: int) -> LayerFields:
    """Layer fields of a convolution, PyTorch's ``padding="same"``/``"valid"`` included."""
    k = _tuple(kernel, ndim)
    d = _tuple(dilation, ndim)
    if padding == "valid":
        pads = ((0, 0),) * ndim
    elif padding == "same":
        totals = [di * (ki - 1) for ki, di in zip(k, d, strict=True)]
        pads = tuple((t // 2, t - t // 2) for t in totals)
    else:
        pads = tuple((p, p) for p in _tuple(padding, ndim))
    return {
        "kind": "window",
        "kernel": k,
        "stride": _tuple(stride, ndim),
        "dilation": d,
        "padding": pads,
    }


def pool_rule(
    kernel: Any, stride: Any, padding: Any, dilation: Any, ceil_mode: bool, ndim: int
) -> LayerFields:
    """Layer fields of a max/avg pool (stride None or empty means the kernel size)."""
    fields = conv_rule(kernel, kernel if stride in (None, (), []) else stride, dilation, padding, ndim)
    fields["ceil_mode"] = bool(ceil_mode)
    return fields


def _conv_module(m: Any) -> LayerFields:
    ndim = len(m.kernel_size)
    fields = conv_rule(m.kernel_size, m.stride, m.dilation, m.padding, ndim)
    fields["macs_per_position"] = m.out_channels * (m.in_channels // m.groups) * math.prod(m.kernel_size)
    return fields


def _maxpool_module(m: Any, ndim: int) -> LayerFields:
    return pool_rule(m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, ndim)


def _avgpool_module(m: Any, ndim: int) -> LayerFields:
    return pool_rule(m.kernel_size, m.stride, m.padding, 1, m.ceil_mode, ndim)


def _lppool_module(m: Any, ndim: int) -> LayerFields:
    return pool_rule(m.kernel_size, m.stride, 0, 1, m.ceil_mode, ndim)


def _adaptive_module(m: Any, ndim: int) -> LayerFields:
    size = m.output_size
    sizes = (size,) * ndim if size is None or isinstance(size, int) else tuple(size)
    return {"kind": "adaptive", "output_size": sizes}


def _pad_module(m: Any) -> LayerFields:
    return {"kind": "pad", "pad": tuple(m.padding)}


_cls: type[nn.Module]
for _cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
    _MODULE_RULES[_cls] = _conv_module
for _cls, _n in ((nn.MaxPool1d, 1), (nn.MaxPool2d, 2), (nn.MaxPool3d, 3)):
    _MODULE_RULES[_cls] = partial(_maxpool_module, ndim=_n)
for _cls, _n in ((nn.AvgPool1d, 1), (nn.AvgPool2d, 2), (nn.AvgPool3d, 3)):
    _MODULE_RULES[_cls] = partial(_avgpool_module, ndim=_n)
for _cls, _n in ((nn.LPPool1d, 1), (nn.LPPool2d, 2)):
    _MODULE_RULES[_cls] = partial(_lppool_module, ndim=_n)
for _cls, _n in (
    (nn.AdaptiveAvgPool1d, 1),
    (nn.AdaptiveAvgPool2d, 2),
    (nn.AdaptiveAvgPool3d, 3),
    (nn.AdaptiveMaxPool1d, 1),
    (nn.AdaptiveMaxPool2d, 2),
    (nn.AdaptiveMaxPool3d, 3),
):
    _MODULE_RULES[_cls] = partial(_adaptive_module, ndim=_n)
for _cls in (
    nn.ZeroPad1d,
    nn.ZeroPad2d,
    nn.ZeroPad3d,
    nn.ConstantPad1d,
    nn.ConstantPad2d,
    nn.ConstantPad3d,
    nn.ReflectionPad1d,
    nn.ReflectionPad2d,
    nn.ReflectionPad3d,
    nn.ReplicationPad1d,
    nn.ReplicationPad2d,
    nn.ReplicationPad3d,
    nn.CircularPad1d,
    nn.CircularPad2d,
    nn.CircularPad3d,
):
    _MODULE_RULES[_cls] = _pad_module

ELEMENTWISE_MODULES: tuple[type, ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    nn.RMSNorm,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Softplus,
    nn.Softsign,
    nn.Tanhshrink,
    nn.Threshold,
    nn.GLU,
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
    nn.ChannelShuffle,
)

UNKNOWN_MODULES: dict[type, str] = {
    nn.ConvTranspose1d: "transposed convolution (upsampling) has no receptive-field rule yet",
    nn.ConvTranspose2d: "transposed convolution (upsampling) has no receptive-field rule yet",
    nn.ConvTranspose3d: "transposed convolution (upsampling) has no receptive-field rule yet",
    nn.Upsample: "upsampling has no receptive-field rule yet",
    nn.UpsamplingNearest2d: "upsampling has no receptive-field rule yet",
    nn.UpsamplingBilinear2d: "upsampling has no receptive-field rule yet",
    nn.PixelShuffle: "pixel shuffle moves positions between channels and space",
    nn.PixelUnshuffle: "pixel unshuffle moves positions between space and channels",
    nn.Fold: "fold/unfold rearranges positions",
    nn.Unfold: "fold/unfold rearranges positions",
}

ELEMENTWISE_FUNCTIONS: set[Any] = {
    F.relu,
    F.relu_,
    torch.relu,
    torch.relu_,
    F.relu6,
    F.leaky_relu,
    F.elu,
    F.selu,
    F.celu,
    F.gelu,
    F.silu,
    F.mish,
    F.hardswish,
    F.hardsigmoid,
    F.hardtanh,
    F.softplus,
    F.sigmoid,
    torch.sigmoid,
    F.tanh,
    torch.tanh,
    torch.clamp,
    torch.clip,
    torch.exp,
    torch.abs,
    torch.sqrt,
    torch.rsqrt,
    torch.neg,
    F.dropout,
    F.dropout1d,
    F.dropout2d,
    F.dropout3d,
    F.alpha_dropout,
    F.batch_norm,
    F.layer_norm,
    F.group_norm,
    F.instance_norm,
    F.local_response_norm,
    F.rms_norm,
    operator.neg,
    operator.abs,
    operator.pow,
    torch.pow,
    F.channel_shuffle,
    torch.channel_shuffle,
    torch.native_channel_shuffle,
}

ELEMENTWISE_METHODS: set[str] = {
    "relu",
    "relu_",
    "sigmoid",
    "sigmoid_",
    "tanh",
    "tanh_",
    "clamp",
    "clamp_",
    "clamp_min",
    "clamp_min_",
    "clamp_max",
    "clip",
    "exp",
    "abs",
    "sqrt",
    "rsqrt",
    "neg",
    "pow",
    "square",
    "sign",
}

LAYOUT_METHODS: set[str] = {
    "contiguous",
    "clone",
    "detach",
    "to",
    "float",
    "double",
    "half",
    "bfloat16",
    "type",
    "type_as",
    "requires_grad_",
    "cpu",
    "cuda",
}

BINARY_OPS: dict[Any, str] = {
    operator.add: "add",
    operator.iadd: "add",
    torch.add: "add",
    "add": "add",
    "add_": "add",
    operator.sub: "sub",
    operator.isub: "sub",
    torch.sub: "sub",
    "sub": "sub",
    "sub_": "sub",
    operator.mul: "mul",
    operator.imul: "mul",
    torch.mul: "mul",
    "mul": "mul",
    "mul_": "mul",
    operator.truediv: "div",
    operator.itruediv: "div",
    torch.div: "div",
    "div": "div",
    "div_": "div",
    operator.floordiv: "div",
    torch.maximum: "max",
    torch.minimum: "min",
    torch.where: "where",
}

REDUCTIONS: dict[Any, str] = {
    torch.mean: "mean",
    "mean": "mean",
    torch.sum: "sum",
    "sum": "sum",
    torch.amax: "amax",
    "amax": "amax",
    torch.amin: "amin",
    "amin": "amin",
    torch.std: "std",
    "std": "std",
    torch.var: "var",
    "var": "var",
    torch.logsumexp: "logsumexp",
    "logsumexp": "logsumexp",
    torch.norm: "norm",
    "norm": "norm",
}

UNKNOWN_FUNCTIONS: dict[Any, str] = {
    F.interpolate: "interpolation (upsampling) has no receptive-field rule yet",
    F.upsample: "upsampling has no receptive-field rule yet",
    F.upsample_nearest: "upsampling has no receptive-field rule yet",
    F.upsample_bilinear: "upsampling has no receptive-field rule yet",
    F.conv_transpose1d: "transposed convolution (upsampling) has no receptive-field rule yet",
    F.conv_transpose2d: "transposed convolution (upsampling) has no receptive-field rule yet",
    F.conv_transpose3d: "transposed convolution (upsampling) has no receptive-field rule yet",
    F.pixel_shuffle: "pixel shuffle moves positions between channels and space",
    F.pixel_unshuffle: "pixel unshuffle moves positions between space and channels",
    F.grid_sample: "grid sampling reads data-dependent positions",
    F.unfold: "fold/unfold rearranges positions",
    F.fold: "fold/unfold rearranges positions",
}
