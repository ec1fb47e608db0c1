"""Built-in rules of the Keras frontend: one rule per Keras layer family, keyed by class.

Base classes are named by their ``"module.qualname"`` (the rule table matches them through each
layer's MRO), so that every subclass (``Conv2D``, ``Conv3D``, a user's ``Conv2D`` subclass...) finds
them. Only layer configurations are read; nothing runs.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from rf_widgets.core.layers import Resample
from rf_widgets.keras_import.call import Act, KerasCall, kernel_macs
from rf_widgets.rules import RuleTable, Unsupported

__all__ = ["register"]

_SRC = "keras.src.layers."


# -- windows ------------------------------------------------------------------------------------------


def _conv(call: KerasCall) -> Act:
    """Convolutions and depthwise convolutions (the same attributes; the kernel shape gives the MACs)."""
    layer: Any = call.layer
    return call.window(
        layer.kernel_size,
        layer.strides,
        layer.dilation_rate,
        layer.padding,
        macs_per_position=kernel_macs(layer.kernel.shape),
    )


def _separable(call: KerasCall) -> Act:
    # depthwise k x k then pointwise 1x1: the pointwise step adds no context, so one window is exact
    layer: Any = call.layer
    return call.window(
        layer.kernel_size,
        layer.strides,
        layer.dilation_rate,
        layer.padding,
        macs_per_position=kernel_macs(layer.depthwise_kernel.shape, layer.pointwise_kernel.shape),
    )


def _pool(call: KerasCall) -> Act:
    layer: Any = call.layer
    strides = layer.strides if layer.strides is not None else layer.pool_size
    return call.window(layer.pool_size, strides, 1, layer.padding)


def _conv_transpose(call: KerasCall) -> Act:
    """TensorFlow's transposed convolution: the gradient of a convolution with the same arguments.

    Output unit ``o`` reads input ``i`` when ``o = i s - p_lo + j d``; with ``padding="same"`` the
    forward convolution's front padding ``p_lo`` follows TensorFlow's rule at the output length,
    which for these lengths does not depend on the input size. Expressed as PyTorch's parameters
    (front crop ``p_lo``, back crop ``p_hi``, ``output_padding``) that give Keras' output length.
    """
    layer: Any = call.layer
    rank = len(layer.kernel_size)
    extra = layer.output_padding
    pads, grow = [], []
    for a in range(rank):
        k, s, d = layer.kernel_size[a], layer.strides[a], layer.dilation_rate[a]
        k_eff = d * (k - 1) + 1
        if extra is None:
            # Keras' lengths: valid n s + max(k_eff - s, 0); same n s
            length_gain = max(k_eff - s, 0) if layer.padding == "valid" else 0
        else:
            pad = 0 if layer.padding == "valid" else k_eff // 2
            length_gain = k_eff - 2 * pad + extra[a] - s
        # output length (n - 1) s + s + length_gain; TensorFlow's front padding at that length
        c = s + length_gain
        lo = 0 if layer.padding == "valid" else max((-(-c // s) - 1) * s + k_eff - c, 0) // 2
        # (n - 1) s - lo - hi + k_eff + out_pad must equal (n - 1) s + c
        hi = k_eff - c - lo
        pads.append((lo, max(hi, 0)))
        grow.append(max(-hi, 0))
    from rf_widgets.core.arithmetic import transpose_taps
    from rf_widgets.errors import LayerSpecError

    for a in range(rank):
        try:
            transpose_taps(layer.kernel_size[a], layer.strides[a], layer.dilation_rate[a], pads[a][0])
        except LayerSpecError as err:
            raise Unsupported(str(err)) from None
    placed = call.place(
        {
            "kernel": tuple(layer.kernel_size),
            "stride": tuple(layer.strides),
            "dilation": tuple(layer.dilation_rate),
            "padding": tuple(pads),
            "output_padding": tuple(grow),
        },
        layer.data_format,
    )
    spec = Resample("transpose", output_padding=placed.pop("output_padding"))
    macs = kernel_macs(layer.kernel.shape) // math.prod(layer.strides)
    return call.emit(kind="resample", resample=spec, macs_per_position=macs, **placed)


def _zero_padding(call: KerasCall) -> Act:
    layer: Any = call.layer
    padding = layer.padding
    pairs = (padding,) if isinstance(padding[0], int) else padding  # ZeroPadding1D holds one pair
    data_format = getattr(layer, "data_format", "channels_last")
    placed = call.place({"kernel": (1,) * len(pairs), "padding": tuple(tuple(p) for p in pairs)}, data_format)
    return call.emit(**placed)


def _cropping(call: KerasCall) -> Act:
    # Output unit u is input unit u + front: a transposed 1x1 "convolution" whose padding crops is
    # exactly that (phase 0 reads input u + front; the length shrinks by front + back).
    layer: Any = call.layer
    crops = layer.cropping
    pairs = (crops,) if isinstance(crops[0], int) else crops
    data_format = getattr(layer, "data_format", "channels_last")
    count = len(pairs)
    placed = call.place(
        {"kernel": (1,) * count, "padding": tuple(tuple(p) for p in pairs), "output_padding": (0,) * count},
        data_format,
    )
    spec = Resample("transpose", output_padding=placed.pop("output_padding"))
    return call.emit(kind="resample", resample=spec, **placed)


def _upsampling(call: KerasCall) -> Act:
    layer: Any = call.layer
    size = layer.size
    sizes = (size,) if isinstance(size, int) else tuple(size)
    mode = getattr(layer, "interpolation", "nearest")
    modes = {"nearest": "nearest", "bilinear": "linear", "bicubic": "cubic"}
    if mode not in modes:
        raise Unsupported(f"upsampling with interpolation '{mode}'")
    # Keras resizes with half-pixel centres (TensorFlow's default, align_corners=False); the nearest
    # mode repeats each value: both are PyTorch's formulas with align_corners=False.
    data_format = getattr(layer, "data_format", "channels_last")
    placed = call.place({"kernel": sizes}, data_format)["kernel"]
    spec = Resample(modes[mode], scale=tuple(Fraction(v) for v in placed))
    return call.emit(kind="resample", resample=spec)


def _adaptive_pool(call: KerasCall) -> Act:
    layer: Any = call.layer
    sizes = layer.output_size
    sizes = (sizes,) if isinstance(sizes, int) else tuple(sizes)
    placed = call.place({"kernel": sizes}, layer.data_format)["kernel"]
    return call.emit(kind="adaptive", output_size=placed)


def _global_pool(call: KerasCall) -> Act:
    layer: Any = call.layer
    layout = call.x.layout
    if layer.keepdims:
        layout = tuple("B" if isinstance(r, int) else r for r in layout)
    else:
        layout = tuple(r for r in layout if not isinstance(r, int)) or ("C",)
    return call.global_(layout)


# -- pointwise and merges -----------------------------------------------------------------------------


def _pointwise(call: KerasCall) -> Act:
    return call.pointwise()


def _dense(call: KerasCall) -> Act:
    layer: Any = call.layer
    macs = kernel_macs(layer.kernel.shape)
    if isinstance(call.x.layout[-1], int):
        # a Dense layer mixes its last dimension: here a spatial axis, so every position along it
        return call.global_(call.x.layout, macs_per_position=macs)
    return call.pointwise(macs_per_position=macs)


def _along(call: KerasCall, axes: Any) -> list[Any]:
    """The roles of the dimensions ``axes`` (Keras counts the batch dimension as axis 0)."""
    layout = call.x.layout
    items = [axes] if isinstance(axes, int) else list(axes)
    roles = []
    for axis in items:
        position = axis - 1 if axis >= 0 else len(layout) + axis
        if not 0 <= position < len(layout):
            raise Unsupported(f"axis {axis} of a tensor with {len(layout) + 1} dimensions")
        roles.append(layout[position])
    return roles


def _softmax(call: KerasCall) -> Act:
    if any(isinstance(r, int) for r in _along(call, call.layer.axis)):
        return call.global_(call.x.layout)
    return call.pointwise()


def _activation(call: KerasCall) -> Act:
    name = getattr(call.layer.activation, "__name__", "")
    if name in ("softmax", "log_softmax") and isinstance(call.x.layout[-1], int):
        return call.global_(call.x.layout)  # a softmax over the last dimension, here a spatial axis
    return call.pointwise()


def _dot(call: KerasCall) -> Act:
    raise Unsupported("a Dot layer contracts whole dimensions of its inputs (attention-like)")


def _concatenate(call: KerasCall) -> Act:
    if any(isinstance(r, int) for r in _along(call, call.layer.axis)):
        raise Unsupported("a concatenation along a spatial axis")
    return call.pointwise()


def _flatten(call: KerasCall) -> Act:
    if not any(isinstance(r, int) for r in call.x.layout):
        return call.pointwise(("C",))
    return call.emit(kind="flatten", layout=("C",))


def _permute(call: KerasCall) -> Act:
    layout = call.x.layout
    dims = call.layer.dims
    return call.relayout(tuple(layout[d - 1] for d in dims))


def _reshape(call: KerasCall) -> Act:
    layout = call.x.layout
    before = call.input_shapes[0][1:]
    after = call.output_shapes[0][1:]
    spatial = [i for i, r in enumerate(layout) if isinstance(r, int)]
    if not spatial:
        # nothing spatial is left (after a global pool): the new dims hold features
        return call.relayout(tuple("B" if n == 1 else "C" for n in after))
    # exact only when the spatial dims lead and keep their sizes; the rest is regrouped channels
    lead = len(spatial)
    if (
        spatial != list(range(lead))
        or len(after) < lead
        or any(before[i] is None or before[i] != after[i] for i in range(lead))
    ):
        raise Unsupported(f"a reshape from {tuple(before)} to {tuple(after)} regroups spatial positions")
    return call.relayout((*layout[:lead], *("C",) * (len(after) - lead)))


def _reduce(call: KerasCall) -> Act:
    """``keras.ops.mean``/``sum``/``max``/``min`` with ``axis``: global when a spatial axis is reduced."""
    axes = call.layer.axis
    layout = call.x.layout
    if axes is None:
        return call.global_(("B",) * len(layout) if call.layer.keepdims else ("C",))
    positions = {a - 1 if a >= 0 else len(layout) + a for a in ([axes] if isinstance(axes, int) else axes)}
    if not any(isinstance(layout[p], int) for p in positions if 0 <= p < len(layout)):
        return call.pointwise()
    if call.layer.keepdims:
        kept = tuple("B" if p in positions else r for p, r in enumerate(layout))
    else:
        kept = tuple(r for p, r in enumerate(layout) if p not in positions) or ("C",)
    if any(isinstance(r, int) for r in kept):
        raise Unsupported("a reduction over some of the spatial axes only")
    return call.global_(kept)


def _stochastic_depth(call: KerasCall) -> Act:
    # ConvNeXt's StochasticDepth(x) drops a whole residual branch per sample at training time
    return call.pointwise()


_ELEMENTWISE_NUMPY = (
    "Abs",
    "Absolute",
    "Add",
    "Subtract",
    "Multiply",
    "Divide",
    "TrueDivide",
    "DivideNoNan",
    "Maximum",
    "Minimum",
    "Fmax",
    "Fmin",
    "Power",
    "Negative",
    "Square",
    "Sqrt",
    "Exp",
    "Expm1",
    "Log",
    "Log1p",
    "Tanh",
    "Sin",
    "Cos",
    "Clip",
    "Reciprocal",
    "Sign",
    "Where",
    "Floor",
    "Ceil",
    "Round",
)
_ELEMENTWISE_NN = (
    "Relu",
    "Relu6",
    "Sigmoid",
    "Softplus",
    "Softsign",
    "Silu",
    "LogSigmoid",
    "LeakyRelu",
    "HardSigmoid",
    "HardSilu",
    "Elu",
    "Selu",
    "Gelu",
    "Celu",
    "HardTanh",
    "Squareplus",
)


def _on(table: RuleTable, key: str, rule: Any) -> None:
    # the table's Rule type names the torch call; Keras rules take a KerasCall
    table.operator("keras", key, rule)


def register(table: RuleTable) -> None:
    """Add the built-in Keras rules to ``table``."""
    conv = _SRC + "convolutional."
    _on(table, conv + "base_conv.BaseConv", _conv)
    _on(table, conv + "base_depthwise_conv.BaseDepthwiseConv", _conv)  # same attributes
    _on(table, conv + "base_separable_conv.BaseSeparableConv", _separable)
    _on(table, conv + "base_conv_transpose.BaseConvTranspose", _conv_transpose)
    pooling = _SRC + "pooling."
    _on(table, pooling + "base_pooling.BasePooling", _pool)
    _on(table, pooling + "base_global_pooling.BaseGlobalPooling", _global_pool)
    _on(table, pooling + "base_adaptive_pooling.BaseAdaptivePooling", _adaptive_pool)
    reshaping = _SRC + "reshaping."
    for n in (1, 2, 3):
        _on(table, f"{reshaping}zero_padding{n}d.ZeroPadding{n}D", _zero_padding)
        _on(table, f"{reshaping}cropping{n}d.Cropping{n}D", _cropping)
        _on(table, f"{reshaping}up_sampling{n}d.UpSampling{n}D", _upsampling)
    _on(table, reshaping + "flatten.Flatten", _flatten)
    _on(table, reshaping + "permute.Permute", _permute)
    _on(table, reshaping + "reshape.Reshape", _reshape)
    _on(table, _SRC + "core.dense.Dense", _dense)
    _on(table, _SRC + "merging.concatenate.Concatenate", _concatenate)
    _on(table, _SRC + "merging.dot.Dot", _dot)  # a Merge subclass, but not elementwise
    _on(table, _SRC + "activations.activation.Activation", _activation)
    _on(table, _SRC + "activations.softmax.Softmax", _softmax)
    pointwise = [
        "merging.base_merge.Merge",  # Add, Subtract, Multiply, Average, Maximum, Minimum
        "normalization.batch_normalization.BatchNormalization",
        "normalization.layer_normalization.LayerNormalization",
        "normalization.group_normalization.GroupNormalization",
        "normalization.unit_normalization.UnitNormalization",
        "normalization.rms_normalization.RMSNormalization",
        "activations.relu.ReLU",
        "activations.leaky_relu.LeakyReLU",
        "activations.prelu.PReLU",
        "activations.elu.ELU",
        "regularization.dropout.Dropout",
        "regularization.spatial_dropout.BaseSpatialDropout",
        "regularization.gaussian_dropout.GaussianDropout",
        "regularization.gaussian_noise.GaussianNoise",
        "regularization.alpha_dropout.AlphaDropout",
        "regularization.activity_regularization.ActivityRegularization",
        "preprocessing.rescaling.Rescaling",
        "preprocessing.normalization.Normalization",
        "core.identity.Identity",
        "core.masking.Masking",
    ]
    for name in pointwise:
        _on(table, _SRC + name, _pointwise)
    # operations applied to Keras tensors directly (``x + y``, ``keras.ops.relu(x)``)
    for name in _ELEMENTWISE_NUMPY:
        _on(table, "keras.src.ops.numpy." + name, _pointwise)
    for name in _ELEMENTWISE_NN:
        _on(table, "keras.src.ops.nn." + name, _pointwise)
    for name in ("Mean", "Sum", "Max", "Min", "Amax", "Amin"):
        _on(table, "keras.src.ops.numpy." + name, _reduce)
    _on(table, "keras.src.ops.nn.Softmax", _softmax)
    _on(table, "keras.src.ops.nn.LogSoftmax", _softmax)
    _on(table, "keras.src.applications.convnext.LayerScale", _pointwise)
    _on(table, "keras.src.applications.convnext.StochasticDepth", _stochastic_depth)
