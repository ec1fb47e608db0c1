"""Layer declarations: what one node of a network does to the receptive field.

A :class:`Layer` is a frozen record of one operation. Its ``kind`` says which rule applies:

``"window"``
    A sliding window per axis: kernel ``k``, stride ``s``, dilation ``d``, padding ``p_lo``/``p_hi``.
    With ``padding_mode="same_upper"`` (TensorFlow/Keras ``padding="same"``, ONNX ``SAME_UPPER``) or
    ``"same_lower"`` (ONNX ``SAME_LOWER``) the padding depends on the layer's input size ``n``: the
    output has ``ceil(n / s)`` units and the total padding ``max((ceil(n / s) - 1) * s + k_eff - n, 0)``
    is split with the odd pixel at the end (upper) or at the start (lower); see :func:`same_padding`.
    Convolutions and pools are windows; elementwise operations and merges (add, multiply, concatenate
    along channels) are windows with ``k = s = d = 1`` and no padding.
``"global"``
    The output at one position depends on every input position (global pooling, a mean over the
    spatial axes, attention). Its receptive field is infinite.
``"adaptive"``
    Adaptive pooling to ``output_size``; resolved with PyTorch's window formula at the analysed input
    size (global when the output is 1 on every axis).
``"flatten"``
    Flattening the spatial axes into features: global when the map is larger than 1 on some axis,
    elementwise on a 1x1 map.
``"resample"``
    Each output unit reads a range of input units that depends on its *phase* (its index modulo a
    period): upsampling by interpolation (nearest, linear, cubic), transposed convolution, pixel
    shuffle, and attention within (shifted) windows. The parameters are in :attr:`Layer.resample`;
    jumps become fractions (exact rationals) and unit boxes are computed per phase.
``"unknown"``
    An operation without a rule. It is reported with status ``"unknown"`` and a diagnostic; the values
    downstream of it assume it adds no context and are therefore lower bounds.

The public constructors (:func:`conv`, :func:`pool`, ...) validate their arguments and accept an int
(every axis), one value per axis, or for padding one ``(lo, hi)`` pair per axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

from rf_widgets.errors import LayerSpecError, shown

__all__ = [
    "INPUT",
    "Kind",
    "Layer",
    "Resample",
    "adaptive_pool",
    "add",
    "concat",
    "conv",
    "conv_transpose",
    "elementwise",
    "flatten",
    "global_pool",
    "mul",
    "pool",
    "same_padding",
    "unknown",
    "upsample",
]

INPUT = "input"
"""The reserved name of the network input in ``inputs=`` lists."""

Kind = Literal["window", "global", "adaptive", "flatten", "resample", "unknown"]
KINDS: tuple[str, ...] = ("window", "global", "adaptive", "flatten", "resample", "unknown")
RESAMPLE_MODES = ("nearest", "nearest-exact", "linear", "cubic", "transpose", "windows")
MAX_LAYER_VALUE = 1 << 32
"""The largest kernel, stride, dilation or padding a layer may have (far beyond any input size)."""
MAX_RESAMPLE_PERIOD = 4096
"""The largest period of an interpolation, in output units (the numerator of a scale ``p/q``): the
arithmetic follows every phase of the period, so its cost grows with it."""


@dataclass(frozen=True)
class Resample:
    """How a ``"resample"`` layer maps output units to input units, per axis.

    ``mode`` is one of ``"nearest"``, ``"nearest-exact"``, ``"linear"``, ``"cubic"`` (PyTorch's
    interpolation; linear covers bilinear and trilinear), ``"transpose"`` (a transposed convolution
    with the layer's ``kernel``, ``stride``, ``dilation``, ``padding`` and ``output_padding`` here) or
    ``"windows"`` (attention within non-overlapping windows of ``window`` units shifted by ``shift``,
    as Swin's; global when one window covers the whole map).

    The output size of an interpolation is ``size`` when given, else the feature map of the layer
    ``size_of`` (``"input"``: the network input; ``size_axes`` says which of its axes gives each axis),
    else ``floor(n * scale)``. ``align_corners`` follows PyTorch.
    """

    mode: str
    scale: tuple[Fraction, ...] | None = None
    size: tuple[int, ...] | None = None
    size_of: str | None = None
    size_axes: tuple[int, ...] | None = None
    align_corners: bool = False
    output_padding: tuple[int, ...] = (0,)
    window: tuple[int, ...] = (1,)
    shift: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if self.mode not in RESAMPLE_MODES:
            raise LayerSpecError(
                f"resample mode must be one of {', '.join(RESAMPLE_MODES)}, got {shown(self.mode)}"
            )
        if self.scale is not None and any(
            not isinstance(v, (int, Fraction)) or isinstance(v, bool) or v <= 0 for v in self.scale
        ):
            raise LayerSpecError(f"scale must be positive on every axis, got {shown(self.scale)}")
        if self.scale is not None and any(
            Fraction(v).numerator > MAX_RESAMPLE_PERIOD or Fraction(v).denominator > MAX_LAYER_VALUE
            for v in self.scale
        ):
            raise LayerSpecError(
                f"scale must be a fraction p/q with p at most {MAX_RESAMPLE_PERIOD} (MAX_RESAMPLE_PERIOD) "
                f"and q at most {MAX_LAYER_VALUE}, got {shown(self.scale)}"
            )
        if self.size is not None and any(not _is_int(v) or not 1 <= v <= MAX_LAYER_VALUE for v in self.size):
            raise LayerSpecError(
                f"size must be between 1 and {MAX_LAYER_VALUE} on every axis, got {shown(self.size)}"
            )
        if any(not _is_int(v) or v < 1 for v in self.window):
            raise LayerSpecError(f"window must be >= 1 on every axis, got {shown(self.window)}")

    def broadcast(self, ndim: int) -> Resample:
        from dataclasses import replace

        changes: dict[str, object] = {}
        for label in ("scale", "size", "output_padding", "window", "shift", "size_axes"):
            values = getattr(self, label)
            if values is not None and len(values) == 1 and ndim > 1:
                changes[label] = tuple(values) * ndim
        return replace(self, **changes) if changes else self  # type: ignore[arg-type]


IntPerAxis = int | Sequence[int]
PaddingMode = Literal["same_upper", "same_lower"] | None
PaddingPerAxis = int | Sequence[int] | Sequence[tuple[int, int]]


@dataclass(frozen=True)
class Layer:
    """One operation of a network, as the receptive-field arithmetic sees it.

    ``kernel``, ``stride`` and ``dilation`` hold one value per axis and ``padding`` one ``(lo, hi)``
    pair per axis. A 1-tuple applies to every axis of the stack it is placed in. ``inputs=None`` means
    "the previous layer" (the network input for the first one).

    Examples
    --------
    >>> Layer("conv1", "Conv2d", kernel=(3, 3), stride=(2, 2)).kernel
    (3, 3)
    """

    name: str
    op: str
    kind: Kind = "window"
    inputs: tuple[str, ...] | None = None
    kernel: tuple[int, ...] = (1,)
    stride: tuple[int, ...] = (1,)
    dilation: tuple[int, ...] = (1,)
    padding: tuple[tuple[int, int], ...] = ((0, 0),)
    ceil_mode: bool = False
    output_size: tuple[int | None, ...] | None = None
    module: str | None = None
    params: int = 0
    macs_per_position: int = 0
    mixing_macs: tuple[int, int] = (0, 0)
    note: str | None = None
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False, repr=False)
    resample: Resample | None = None
    padding_mode: Literal["same_upper", "same_lower"] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise LayerSpecError(f"a layer name must be a non-empty string, got {shown(self.name)}")
        if not isinstance(self.op, str):
            raise LayerSpecError(f"op must be a string, got {shown(self.op)} for layer {shown(self.name)}")
        if not isinstance(self.ceil_mode, bool):
            raise LayerSpecError(
                f"ceil_mode must be True or False, got {shown(self.ceil_mode)} for layer {shown(self.name)}"
            )
        if self.name == INPUT:
            raise LayerSpecError(f"'{INPUT}' is reserved for the network input and cannot name a layer")
        if self.kind not in KINDS:
            raise LayerSpecError(
                f"kind must be one of {', '.join(KINDS)}, got {shown(self.kind)} for layer '{self.name}'"
            )
        for label in ("kernel", "stride", "dilation"):
            values = getattr(self, label)
            if not values or any(not _is_int(v) or v < 1 for v in values):
                raise LayerSpecError(
                    f"{_parameter_label(label)} must be >= 1 on every axis, got {_show(values)} "
                    f"for layer '{self.name}'"
                )
            if any(v > MAX_LAYER_VALUE for v in values):
                raise LayerSpecError(
                    f"{_parameter_label(label)} must be at most {MAX_LAYER_VALUE} (MAX_LAYER_VALUE) on every "
                    f"axis, got {_show(values)} for layer {shown(self.name)}"
                )
        if not self.padding or any(
            len(pair) != 2 or not all(_is_int(v) and abs(v) <= MAX_LAYER_VALUE for v in pair)
            for pair in self.padding
        ):
            raise LayerSpecError(
                f"padding must be one (lo, hi) pair of ints per axis, got {shown(self.padding)} "
                f"for layer '{self.name}' (each at most {MAX_LAYER_VALUE}, MAX_LAYER_VALUE)"
            )
        if self.padding_mode is not None:
            if self.padding_mode not in PADDING_MODES:
                raise LayerSpecError(
                    f"padding_mode must be one of {', '.join(PADDING_MODES)} or None, "
                    f"got {shown(self.padding_mode)} for layer '{self.name}'"
                )
            if self.kind != "window" or any(lo or hi for lo, hi in self.padding) or self.ceil_mode:
                raise LayerSpecError(
                    f"padding_mode applies to window layers without explicit padding or ceil_mode, "
                    f"got kind {shown(self.kind)}, padding {shown(self.padding)} for layer '{self.name}'"
                )
        if self.kind == "adaptive" and (
            not self.output_size or any(v is not None and (not _is_int(v) or v < 1) for v in self.output_size)
        ):
            raise LayerSpecError(
                f"output_size must be >= 1 (or None) on every axis, got {shown(self.output_size)} "
                f"for layer '{self.name}'"
            )
        if self.kind == "resample" and not isinstance(self.resample, Resample):
            raise LayerSpecError(
                f"a resample layer needs a Resample record, got {shown(self.resample)} "
                f"for layer '{self.name}'"
            )
        if self.inputs is not None and (
            not isinstance(self.inputs, tuple) or any(not isinstance(i, str) for i in self.inputs)
        ):
            raise LayerSpecError(
                f"inputs must be a tuple of layer names, got {shown(self.inputs)} for layer '{self.name}'"
            )
        lengths = {len(self.kernel), len(self.stride), len(self.dilation), len(self.padding)} - {1}
        if len(lengths) > 1:
            raise LayerSpecError(
                f"kernel, stride, dilation and padding disagree on the number of axes "
                f"({len(self.kernel)}, {len(self.stride)}, {len(self.dilation)}, {len(self.padding)}) "
                f"for layer '{self.name}'"
            )

    @property
    def ndim(self) -> int:
        """The number of axes this layer declares (1 when every parameter is a broadcast scalar)."""
        return max(len(self.kernel), len(self.stride), len(self.dilation), len(self.padding))

    def broadcast(self, ndim: int) -> Layer:
        """This layer with every per-axis parameter spelled out for ``ndim`` axes."""
        if all(len(v) == ndim for v in (self.kernel, self.stride, self.dilation, self.padding)) and (
            self.resample is None or self.resample.broadcast(ndim) is self.resample
        ):
            return self
        out = {}
        for label in ("kernel", "stride", "dilation", "padding"):
            values = getattr(self, label)
            if len(values) == 1:
                values = values * ndim
            elif len(values) != ndim:
                raise LayerSpecError(
                    f"{label} has {len(values)} axes but the stack has {ndim}, "
                    f"got {_show(values)} for layer '{self.name}'"
                )
            out[label] = values
        if self.output_size is not None and len(self.output_size) not in (1, ndim):
            raise LayerSpecError(
                f"output_size has {len(self.output_size)} axes but the stack has {ndim} "
                f"for layer '{self.name}'"
            )
        if self.resample is not None:
            out["resample"] = self.resample.broadcast(ndim)
        return _replace(self, **out)

    @property
    def kernel_effective(self) -> tuple[int, ...]:
        """``d * (k - 1) + 1`` per axis."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation, strict=True))

    def macs(self, size: Sequence[int], input_size: Sequence[int]) -> int:
        """Multiply-adds of one sample with feature map ``size`` read from an input of ``input_size``.

        ``macs_per_position`` is paid at every position of the layer's own map. Attention pays by
        the tokens it mixes instead, ``mixing_macs = (per_token, per_pair)``: ``per_token`` (the
        projections to queries, keys, values and back) at every token of its input and ``per_pair``
        (a query-key product and a value product) for every pair of tokens that attend to each
        other. A global attention's tokens are its input's positions and every pair attends; a
        ``"windows"`` layer pads the map to whole windows (as Swin does) and pairs tokens within
        a window; any other layer counts its own positions as tokens and no pairs.
        """
        total = self.macs_per_position * math.prod(size)
        per_token, per_pair = self.mixing_macs
        if per_token or per_pair:
            if self.resample is not None and self.resample.mode == "windows":
                window = self.resample.broadcast(len(input_size)).window
                tokens = math.prod(-(-n // w) * w for n, w in zip(input_size, window, strict=True))
                partners = math.prod(window)
            elif self.kind == "global":
                tokens = partners = math.prod(input_size)
            else:  # attention along a non-spatial dimension: its pairs are not positions we know
                tokens, partners = math.prod(size), 0
            total += per_token * tokens + per_pair * tokens * partners
        return total


def _replace(layer: Layer, **changes: object) -> Layer:
    from dataclasses import replace

    return replace(layer, **changes)  # type: ignore[arg-type]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(values: tuple[object, ...]) -> str:
    return "(" + ", ".join(shown(v) for v in values[:8]) + ("," if len(values) == 1 else "") + ")"


def _parameter_label(label: str) -> str:
    return "kernel_size" if label == "kernel" else label


def ints_per_axis(value: IntPerAxis, label: str, name: str) -> tuple[int, ...]:
    """``value`` (an int or a sequence of ints) as a tuple; a LayerSpecError naming ``label`` and layer."""
    if _is_int(value):
        return (value,)  # type: ignore[return-value]
    if isinstance(value, Sequence) and not isinstance(value, str) and value:
        out = tuple(value)
        if all(_is_int(v) for v in out):
            return out
    raise LayerSpecError(
        f"{_parameter_label(label)} must be an int or a sequence of ints, got {shown(value)} "
        f"for layer '{name}'"
    )


PADDING_MODES = ("same_upper", "same_lower")
"""Size-dependent padding rules (see :func:`same_padding`)."""


def same_padding(n: int, k_eff: int, stride: int, mode: str = "same_upper") -> tuple[int, int]:
    """The ``(lo, hi)`` padding of a "same" window over ``n`` input units.

    TensorFlow, Keras (``padding="same"``) and ONNX (``auto_pad``) keep ``ceil(n / stride)`` output units
    and pad the rest; an odd total puts the extra pixel at the end (``"same_upper"``, TensorFlow's rule)
    or at the start (``"same_lower"``).

    Examples
    --------
    >>> same_padding(224, 7, 2)  # a 7x7 stride-2 Keras stem at 224: 112 outputs
    (2, 3)
    >>> same_padding(224, 7, 2, "same_lower")
    (3, 2)
    >>> same_padding(5, 3, 2)
    (1, 1)
    """
    out = -(-n // stride)
    total = max((out - 1) * stride + k_eff - n, 0)
    small = total // 2
    return (small, total - small) if mode == "same_upper" else (total - small, small)


def padding_per_axis(value: PaddingPerAxis, name: str) -> tuple[tuple[int, int], ...]:
    """Explicit padding (an int, one int or one ``(lo, hi)`` pair per axis) as ``(lo, hi)`` pairs."""
    if _is_int(value):
        pairs: tuple[tuple[int, int], ...] = ((value, value),)  # type: ignore[assignment]
    elif isinstance(value, Sequence) and not isinstance(value, str) and value:
        items = list(value)
        if all(_is_int(v) for v in items):
            pairs = tuple((v, v) for v in items)  # type: ignore[misc]
        elif all(isinstance(v, Sequence) and len(v) == 2 and all(_is_int(x) for x in v) for v in items):
            pairs = tuple((v[0], v[1]) for v in items)  # type: ignore[index]
        else:
            raise LayerSpecError(
                f"padding must be an int, one int per axis or one (lo, hi) pair per axis, "
                f"got {shown(value)} for layer '{name}'"
            )
    else:
        raise LayerSpecError(
            f"padding must be an int, one int per axis or one (lo, hi) pair per axis, "
            f"got {shown(value)} for layer '{name}'"
        )
    if any(v < 0 for pair in pairs for v in pair):
        raise LayerSpecError(f"padding must be >= 0 on every axis, got {shown(value)} for layer '{name}'")
    return pairs


def padding_or_mode(
    value: PaddingPerAxis | str, name: str
) -> tuple[tuple[tuple[int, int], ...], PaddingMode]:
    """Explicit padding, or one of the words ``"valid"`` (none), ``"same"`` (= ``"same_upper"``),
    ``"same_upper"``, ``"same_lower"``."""
    if isinstance(value, str):
        word = value.lower()
        if word == "valid":
            return ((0, 0),), None
        if word == "same":
            word = "same_upper"
        if word in PADDING_MODES:
            return ((0, 0),), word  # type: ignore[return-value]
        raise LayerSpecError(
            f"padding must be an int, per-axis values, 'valid', 'same', 'same_upper' or 'same_lower', "
            f"got {shown(value)} for layer '{name}'"
        )
    return padding_per_axis(value, name), None


def _inputs(inputs: str | Sequence[str] | None, name: str) -> tuple[str, ...] | None:
    if inputs is None:
        return None
    if isinstance(inputs, str):
        return (inputs,)
    if isinstance(inputs, Sequence) and all(isinstance(i, str) for i in inputs):
        return tuple(inputs)
    raise LayerSpecError(
        f"inputs must be a layer name or a list of layer names, got {shown(inputs)} for layer '{name}'"
    )


def conv(
    name: str,
    kernel: IntPerAxis,
    stride: IntPerAxis = 1,
    dilation: IntPerAxis = 1,
    padding: PaddingPerAxis | str = 0,
    *,
    inputs: str | Sequence[str] | None = None,
    op: str = "conv",
) -> Layer:
    """A convolution (any window operation with learned weights).

    ``padding`` is an int, one value or ``(lo, hi)`` pair per axis, or ``"same"`` / ``"same_lower"`` /
    ``"valid"`` (size-dependent padding as in TensorFlow and ONNX; see :func:`same_padding`).

    Examples
    --------
    >>> conv("c1", 3, dilation=2).kernel_effective
    (5,)
    >>> conv("stem", 7, stride=2, padding="same").padding_mode
    'same_upper'
    """
    pads, mode = padding_or_mode(padding, name)
    return Layer(
        name,
        op,
        "window",
        _inputs(inputs, name),
        kernel=ints_per_axis(kernel, "kernel", name),
        stride=ints_per_axis(stride, "stride", name),
        dilation=ints_per_axis(dilation, "dilation", name),
        padding=pads,
        padding_mode=mode,
    )


def pool(
    name: str,
    kernel: IntPerAxis,
    stride: IntPerAxis | None = None,
    dilation: IntPerAxis = 1,
    padding: PaddingPerAxis | str = 0,
    *,
    ceil_mode: bool = False,
    inputs: str | Sequence[str] | None = None,
    op: str = "maxpool",
) -> Layer:
    """A pooling window; ``stride`` defaults to the kernel size, as in PyTorch.

    Examples
    --------
    >>> pool("p1", 2).stride
    (2,)
    """
    pads, mode = padding_or_mode(padding, name)
    return Layer(
        name,
        op,
        "window",
        _inputs(inputs, name),
        kernel=ints_per_axis(kernel, "kernel", name),
        stride=ints_per_axis(kernel if stride is None else stride, "stride", name),
        dilation=ints_per_axis(dilation, "dilation", name),
        padding=pads,
        ceil_mode=ceil_mode,
        padding_mode=mode,
    )


def elementwise(name: str, op: str = "relu", *, inputs: str | Sequence[str] | None = None) -> Layer:
    """An operation on each position alone: activation, normalisation, 1x1 channel mixing."""
    return Layer(name, op, "window", _inputs(inputs, name))


def _merge(name: str, op: str, inputs: Sequence[str]) -> Layer:
    names = _inputs(inputs, name)
    if not names:
        raise LayerSpecError(f"a merge needs at least one input, got {shown(inputs)} for layer '{name}'")
    return Layer(name, op, "window", names)


def add(name: str, inputs: Sequence[str]) -> Layer:
    """The elementwise sum of several inputs (a residual connection)."""
    return _merge(name, "add", inputs)


def mul(name: str, inputs: Sequence[str]) -> Layer:
    """The elementwise product of several inputs (gating, squeeze-and-excitation)."""
    return _merge(name, "mul", inputs)


def concat(name: str, inputs: Sequence[str]) -> Layer:
    """Concatenation along the channel axis."""
    return _merge(name, "concat", inputs)


def global_pool(name: str, op: str = "global_avgpool", *, inputs: str | Sequence[str] | None = None) -> Layer:
    """An operation whose every output depends on every input position."""
    return Layer(name, op, "global", _inputs(inputs, name))


def adaptive_pool(
    name: str,
    output_size: int | Sequence[int | None] | None,
    *,
    inputs: str | Sequence[str] | None = None,
    op: str = "adaptive_avgpool",
) -> Layer:
    """Adaptive pooling to ``output_size`` (``None`` keeps an axis as it is)."""
    if output_size is None or _is_int(output_size):
        sizes: tuple[int | None, ...] = (output_size,)  # type: ignore[assignment]
    elif isinstance(output_size, Sequence):
        sizes = tuple(output_size)
    else:
        raise LayerSpecError(
            f"output_size must be an int, None or one per axis, got {shown(output_size)} for layer '{name}'"
        )
    return Layer(name, op, "adaptive", _inputs(inputs, name), output_size=sizes)


def flatten(name: str, *, inputs: str | Sequence[str] | None = None, op: str = "flatten") -> Layer:
    """Flattening the spatial axes into a feature vector (global unless the map is 1x1)."""
    return Layer(name, op, "flatten", _inputs(inputs, name))


def unknown(
    name: str, op: str, *, inputs: str | Sequence[str] | None = None, note: str | None = None
) -> Layer:
    """An operation with no receptive-field rule: reported as unknown, never as identity."""
    return Layer(name, op, "unknown", _inputs(inputs, name), note=note)


def upsample(
    name: str,
    scale: int | Fraction | Sequence[int | Fraction] | None = None,
    *,
    size: int | Sequence[int] | None = None,
    mode: str = "nearest",
    align_corners: bool = False,
    inputs: str | Sequence[str] | None = None,
    op: str = "upsample",
) -> Layer:
    """Interpolation to ``scale`` times the input size (or to ``size``), as ``F.interpolate`` does.

    Examples
    --------
    >>> upsample("up", 2, mode="linear").resample.scale
    (Fraction(2, 1),)
    """
    if (scale is None) == (size is None):
        raise LayerSpecError(f"give either scale or size for layer '{name}'")
    scales = None
    if scale is not None:
        values = scale if isinstance(scale, Sequence) else (scale,)
        scales = tuple(Fraction(v) for v in values)
    sizes = None if size is None else ints_per_axis(size, "size", name)
    mode = "linear" if mode in ("bilinear", "trilinear") else ("cubic" if mode == "bicubic" else mode)
    spec = Resample(mode, scale=scales, size=sizes, align_corners=bool(align_corners))
    return Layer(name, op, "resample", _inputs(inputs, name), resample=spec)


def conv_transpose(
    name: str,
    kernel: IntPerAxis,
    stride: IntPerAxis = 1,
    dilation: IntPerAxis = 1,
    padding: IntPerAxis = 0,
    output_padding: IntPerAxis = 0,
    *,
    inputs: str | Sequence[str] | None = None,
    op: str = "conv_transpose",
) -> Layer:
    """A transposed convolution (parameters as PyTorch's ``ConvTranspose``).

    Examples
    --------
    >>> conv_transpose("up", 2, stride=2).kernel
    (2,)
    """
    pads = ints_per_axis(padding, "padding", name)
    extra = ints_per_axis(output_padding, "output_padding", name)
    strides = ints_per_axis(stride, "stride", name)
    return Layer(
        name,
        op,
        "resample",
        _inputs(inputs, name),
        kernel=ints_per_axis(kernel, "kernel", name),
        stride=strides,
        dilation=ints_per_axis(dilation, "dilation", name),
        padding=tuple((p, p) for p in pads),
        resample=Resample("transpose", output_padding=extra),
    )
