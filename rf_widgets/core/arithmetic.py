"""Receptive-field and feature-map arithmetic over a :class:`~rf_widgets.core.graph.Stack`.

Two passes, both linear in the number of edges:

* :func:`feature_maps` computes every layer's output size at one input size with the real
  arithmetic (SPEC section 5) and resolves the operations whose rule depends on the size (adaptive
  pooling, flatten, resampling, windows with "same" padding).
* :func:`fields` propagates the receptive field along all paths at once (SPEC sections 2-4). Per layer
  and axis it keeps one *path class* per distinct jump ``J``; a class holds the smallest and largest
  ``r`` of its paths with their offsets, and the extremes of the union of their boxes. Because
  ``r' = r + (k_eff - 1) * J`` is monotone in ``r`` for a fixed ``J``, keeping only the extremes per
  jump is exact; paths are never enumerated.

The field depends on the input size only through the resolved adaptive/flatten layers, so
:func:`fields` results are cached per resolution of those layers by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, Union

from rf_widgets.core.graph import NETWORK_INPUT, Stack
from rf_widgets.core.layers import Layer, Resample, same_padding
from rf_widgets.errors import LayerSpecError

__all__ = ["INF", "Diagnostic", "Field", "Resolved", "feature_maps", "fields"]

INF = math.inf
Number = Union[int, float, Fraction]  # float only for inf

# One resolved operation per layer: ("window", k_eff, stride, pad_lo) per axis, a marker, or
# ("phased", widest taps, stride, Taps) per axis for layers whose taps depend on the unit's phase.
WINDOW, GLOBAL, IDENTITY, UNKNOWN, PHASED = "window", "global", "identity", "unknown", "phased"
Resolved = tuple[str, tuple[Number, ...], tuple[Number, ...], tuple[Any, ...]]


@dataclass(frozen=True)
class Taps:
    """Which input units each output unit reads along one axis, exactly, per phase.

    Output unit ``v`` reads input units ``first[v % period] + (v // period) * advance`` to
    ``last[v % period] + (v // period) * advance`` in steps of ``step`` (virtual units outside the map
    are padding). The stride is ``advance / period`` input units per output unit, a fraction for
    upsampling. ``step`` > 1 leaves holes (a dilated window, a dilated transposed convolution): after
    an upsampling the units in a hole can see other pixels than the taps, so they must not be counted.
    """

    period: int
    advance: int
    first: tuple[int, ...]
    last: tuple[int, ...]
    step: int = 1

    @property
    def widest(self) -> int:
        return max(b - a + 1 for a, b in zip(self.first, self.last, strict=True))

    @property
    def stride(self) -> Number:
        return _number_of(Fraction(self.advance, self.period))


def _number_of(value: Fraction) -> Number:
    return value.numerator if value.denominator == 1 else value


@dataclass(frozen=True)
class Diagnostic:
    """Something the analysis noticed: ``kind`` is a short code, ``message`` names the culprit."""

    layer: str | None
    kind: str
    message: str

    def to_dict(self) -> dict[str, str | None]:
        return {"layer": self.layer, "kind": self.kind, "message": self.message}


def window_size(n: int, k: int, s: int, lo: int, hi: int, ceil_mode: bool) -> int:
    """Output units of a window (effective size ``k``, stride ``s``) over ``n`` units padded ``lo, hi``."""
    span = n + lo + hi - k
    if n <= 0:
        return 0
    if not ceil_mode:
        return span // s + 1 if span >= 0 else 0
    # ceil((n + lo + hi - k) / s) + 1 can be 1 with a kernel wider than the padded input (PyTorch keeps
    # that window: MaxPool2d(2, ceil_mode=True) maps 1x1 to 1x1)
    out = -(-span // s) + 1
    if out > 0 and (out - 1) * s >= n + lo:  # PyTorch: the last window starts inside the input or left pad
        out -= 1
    return max(out, 0)


def _adaptive_axis(n: int, m: int | None) -> tuple[int, Number, Number] | None:
    """Output size, window and stride of adaptive pooling along one axis (None: no context added)."""
    if m is None or n <= 0 or m >= n:
        return None
    if n % m == 0:
        return m, n // m, n // m
    widest = max(-(-(i + 1) * n // m) - (i * n // m) for i in range(m))
    return m, widest, Fraction(n, m)


@dataclass(frozen=True)
class SizePlan:
    """A stack compiled for the size pass: one step per layer, cheap ones recognised up front.

    ``steps[i]`` is ``(code, source, params)``: code 0 is a single-input window without ceil mode
    (``params`` holds ``(lo + hi - k_eff, stride)`` per axis), code 1 a single-input operation that
    keeps the size, code 3 a merge that keeps the size, code 2 anything else (computed by
    :func:`_layer_size`, which also handles merges of unequal sizes).
    """

    steps: tuple[tuple[int, int, tuple[tuple[int, int], ...]], ...]

    def with_layers(self, stack: Stack, changed: Iterable[int]) -> SizePlan:
        """The plan of ``stack``, a graph with this plan's wiring whose layers ``changed`` differ.

        A step reads only its own layer and that layer's inputs, so only the changed steps are
        compiled again.
        """
        steps = list(self.steps)
        for i in changed:
            steps[i] = _size_step(stack, i)
        return SizePlan(tuple(steps))


def size_plan(stack: Stack) -> SizePlan:
    """The compiled size pass of ``stack`` (kept by the stack's ``Engine``)."""
    return SizePlan(tuple(_size_step(stack, i) for i in range(len(stack.layers))))


def _size_step(stack: Stack, i: int) -> tuple[int, int, tuple[tuple[int, int], ...]]:
    """The size step of layer ``i`` (see :class:`SizePlan`)."""
    layer = stack.layers[i]
    sources = stack.input_indices[i]
    if len(sources) == 1 and layer.kind == WINDOW and not layer.ceil_mode and not layer.padding_mode:
        params = tuple(
            (lo + hi - (d * (k - 1) + 1), s)
            for k, d, s, (lo, hi) in zip(
                layer.kernel, layer.dilation, layer.stride, layer.padding, strict=True
            )
        )
        code = 1 if all(p == (-1, 1) for p in params) else 0  # k_eff 1, stride 1, no padding
        return code, sources[0], params
    if (
        len(sources) > 1
        and NETWORK_INPUT not in sources
        and layer.kind == WINDOW
        and layer.kernel_effective == (1,) * stack.ndim
        and layer.stride == (1,) * stack.ndim
        and not any(lo or hi for lo, hi in layer.padding)
    ):
        return 3, -1, ()  # a merge (add, concat): equal input sizes pass straight through
    return 2, -1, ()


def feature_maps(
    stack: Stack, input_size: tuple[int, ...], plan: SizePlan | None = None
) -> tuple[list[tuple[int, ...]], dict[int, Resolved], list[Diagnostic]]:
    """Output size of every layer, the size-dependent layers resolved, and size diagnostics.

    ``plan`` is ``size_plan(stack)``, compiled once by the caller that evaluates many sizes.

    Returns ``(sizes, resolved, diagnostics)`` where ``resolved`` maps the index of every adaptive or
    flatten layer to what it is at this input size.
    """
    sizes: list[tuple[int, ...]] = []
    resolved: dict[int, Resolved] = {}
    diagnostics: list[Diagnostic] = []
    append = sizes.append
    input_indices = stack.input_indices
    for i, (code, source, params) in enumerate((plan or size_plan(stack)).steps):
        if code == 3:
            sources = input_indices[i]
            first = sizes[sources[0]]
            if all(sizes[j] == first for j in sources):
                append(first)
                continue
            code = 2
        if code == 2:
            out = _layer_size(stack, i, input_size, sizes, resolved, diagnostics)
        else:
            n_in = input_size if source == NETWORK_INPUT else sizes[source]
            if code == 1:
                out = n_in
            else:
                out = tuple(
                    [
                        (n + t) // s + 1 if n > 0 and n + t >= 0 else 0
                        for n, (t, s) in zip(n_in, params, strict=True)
                    ]
                )
                if 0 in out and 0 not in n_in:
                    diagnostics.append(_empty(stack, i, n_in, input_size))
        append(out)
    return sizes, resolved, diagnostics


def _empty(stack: Stack, i: int, n_in: tuple[int, ...], input_size: tuple[int, ...]) -> Diagnostic:
    name = stack.layers[i].name
    return Diagnostic(
        name,
        "empty-output",
        f"'{name}' gets an input of {'x'.join(map(str, n_in))} and its output is "
        f"empty at input size {'x'.join(map(str, input_size))}",
    )


def _layer_size(
    stack: Stack,
    i: int,
    input_size: tuple[int, ...],
    sizes: list[tuple[int, ...]],
    resolved: dict[int, Resolved],
    diagnostics: list[Diagnostic],
) -> tuple[int, ...]:
    """The output size of layer ``i`` in the general case (merges, ceil mode, size-dependent kinds)."""
    layer = stack.layers[i]
    ndim = stack.ndim
    ins = [input_size if j == NETWORK_INPUT else sizes[j] for j in stack.input_indices[i]]
    if len(ins) == 1:
        n_in = ins[0]
    else:
        n_in = tuple(max(s[a] for s in ins) for a in range(ndim))
        if any(s[a] not in (1, n_in[a]) for s in ins for a in range(ndim)):
            shown = ", ".join("x".join(map(str, s)) for s in ins)
            diagnostics.append(
                Diagnostic(layer.name, "size-mismatch", f"'{layer.name}' merges maps of sizes {shown}")
            )
    kind = layer.kind
    if kind == WINDOW and layer.padding_mode:
        k_eff = layer.kernel_effective
        pads = [same_padding(n_in[a], k_eff[a], layer.stride[a], layer.padding_mode) for a in range(ndim)]
        out = tuple(-(-n_in[a] // layer.stride[a]) if n_in[a] > 0 else 0 for a in range(ndim))
        resolved[i] = (WINDOW, k_eff, layer.stride, tuple(lo for lo, _ in pads))
    elif kind == WINDOW:
        out = tuple(
            window_size(
                n_in[a],
                layer.dilation[a] * (layer.kernel[a] - 1) + 1,
                layer.stride[a],
                layer.padding[a][0],
                layer.padding[a][1],
                layer.ceil_mode,
            )
            for a in range(ndim)
        )
    elif kind == GLOBAL:
        out = tuple(1 if n > 0 else 0 for n in n_in)
    elif kind == "adaptive":
        target = layer.output_size or (None,)
        if len(target) == 1:
            target = target * ndim
        if all(m == 1 for m in target):
            resolved[i] = (GLOBAL, (), (), ())
            out = tuple(1 if n > 0 else 0 for n in n_in)
        else:
            axes = [_adaptive_axis(n_in[a], target[a]) for a in range(ndim)]
            out = tuple(0 if n_in[a] <= 0 else int(target[a] or n_in[a]) for a in range(ndim))
            if all(ax is None for ax in axes):
                resolved[i] = (IDENTITY, (), (), ())
            else:
                resolved[i] = (
                    WINDOW,
                    tuple(1 if ax is None else ax[1] for ax in axes),
                    tuple(1 if ax is None else ax[2] for ax in axes),
                    (0,) * ndim,
                )
    elif kind == "flatten":
        spread = any(n > 1 for n in n_in)
        resolved[i] = (GLOBAL if spread else IDENTITY, (), (), ())
        out = (1 if all(n > 0 for n in n_in) else 0,) * ndim
    elif kind == "resample":
        out = _resample_size(stack, layer, n_in, input_size, sizes)
        if 0 not in out and 0 not in n_in:
            resolved[i] = _resolve_resample(layer, n_in, out)
    else:  # unknown: assume the size is kept
        out = n_in
    if 0 in out and all(0 not in s for s in ins):
        diagnostics.append(_empty(stack, i, n_in, input_size))
    return out


def _resample_size(
    stack: Stack,
    layer: Layer,
    n_in: tuple[int, ...],
    input_size: tuple[int, ...],
    sizes: list[tuple[int, ...]],
) -> tuple[int, ...]:
    spec = layer.resample
    assert spec is not None
    ndim = len(n_in)
    if spec.mode == "windows":
        return n_in
    if spec.mode == "transpose":
        return tuple(
            max((n - 1) * s - lo - hi + d * (k - 1) + extra + 1, 0) if n > 0 else 0
            for n, s, (lo, hi), d, k, extra in zip(
                n_in,
                layer.stride,
                layer.padding,
                layer.dilation,
                layer.kernel,
                spec.output_padding,
                strict=True,
            )
        )
    if spec.size is not None:
        return tuple(m if n > 0 else 0 for n, m in zip(n_in, spec.size, strict=True))
    if spec.size_of is not None:
        ref = input_size if spec.size_of == "input" else sizes[stack.index[spec.size_of]]
        axes = spec.size_axes or tuple(range(ndim))
        return tuple(ref[a] if n > 0 else 0 for n, a in zip(n_in, axes, strict=True))
    assert spec.scale is not None
    return tuple(math.floor(n * f) for n, f in zip(n_in, spec.scale, strict=True))


def _resolve_resample(layer: Layer, n_in: tuple[int, ...], n_out: tuple[int, ...]) -> Resolved:
    spec = layer.resample
    assert spec is not None
    if spec.mode == "windows" and all(n <= w for n, w in zip(n_in, spec.window, strict=True)):
        return (GLOBAL, (), (), ())  # one window covers the whole map: attention mixes everything
    taps = tuple(_taps(spec, layer, a, n_in[a], n_out[a]) for a in range(len(n_in)))
    return (PHASED, tuple(t.widest for t in taps), tuple(t.stride for t in taps), taps)


def _taps(spec: Resample, layer: Layer, a: int, n: int, m: int) -> Taps:
    mode = spec.mode
    if mode == "transpose":
        return transpose_taps(layer.kernel[a], layer.stride[a], layer.dilation[a], layer.padding[a][0])
    if mode == "windows":
        w = spec.window[a]
        shift = 0 if n <= w else spec.shift[a] % w
        return _window_taps(w, shift)
    if spec.align_corners and mode in ("linear", "cubic"):
        ratio = Fraction(n - 1, m - 1) if m > 1 else Fraction(0)
        _check_period(ratio, layer, n, m)
        return _interpolation_taps(mode, ratio, Fraction(0), n)
    if spec.scale is not None and spec.size is None and spec.size_of is None:
        ratio = 1 / Fraction(spec.scale[a])  # PyTorch reads positions with the given factor
    else:
        ratio = Fraction(n, m)
    half = Fraction(1, 2) if mode in ("linear", "cubic", "nearest-exact") else Fraction(0)
    _check_period(ratio, layer, n, m)
    return _interpolation_taps(mode, ratio, half, n)


def _check_period(ratio: Fraction, layer: Layer, n: int, m: int) -> None:
    """Refuse, before following them, more phases than MAX_RESAMPLE_PERIOD (the work grows with them)."""
    from rf_widgets.core.layers import MAX_RESAMPLE_PERIOD

    if ratio.denominator > MAX_RESAMPLE_PERIOD:
        raise LayerSpecError(
            f"layer '{layer.name}' resamples {n} positions to {m}, a pattern that repeats only every "
            f"{ratio.denominator} outputs; rf_widgets follows at most {MAX_RESAMPLE_PERIOD} "
            "(MAX_RESAMPLE_PERIOD): use a whole or simpler scale, or another input size"
        )


@lru_cache(maxsize=4096)
def _interpolation_taps(mode: str, ratio: Fraction, half: Fraction, n: int) -> Taps:
    """Output unit ``v`` samples input position ``(v + half) * ratio - half`` (PyTorch's formulas)."""
    if ratio == 0:
        return Taps(1, 0, (0,), (0,))
    period, advance = ratio.denominator, ratio.numerator
    first, last = [], []
    for v in range(period):
        if mode in ("nearest", "nearest-exact"):
            src = math.floor((v + half) * ratio)
            first.append(src)
            last.append(src)
            continue
        position = (v + half) * ratio - half
        low = math.floor(position)
        whole = position == low  # a tap with weight exactly 0 is not read
        if mode == "linear":
            first.append(low)
            last.append(low if whole else low + 1)
        else:  # cubic: four taps, one when the position falls on a unit
            first.append(low if whole else low - 1)
            last.append(low if whole else low + 2)
    return Taps(period, advance, tuple(first), tuple(last))


@lru_cache(maxsize=1024)
def transpose_taps(k: int, s: int, d: int, p: int) -> Taps:
    """Output ``o`` of a transposed convolution reads ``i`` when ``o = i s - p + j d``, ``0 <= j < k``."""
    first, last = [], []
    for o in range(s):
        hits = [(o + p - j * d) // s for j in range(k) if (o + p - j * d) % s == 0]
        if not hits:
            raise LayerSpecError(
                f"output units of phase {o} of a transposed convolution (kernel {k}, stride {s}, "
                f"dilation {d}) read no input"
            )
        first.append(min(hits))
        last.append(max(hits))
    # the valid j of one phase are s / gcd(s, d) apart, so the inputs read are d / gcd(s, d) apart
    return Taps(s, 1, tuple(first), tuple(last), d // math.gcd(s, d))


@lru_cache(maxsize=1024)
def _window_taps(w: int, shift: int) -> Taps:
    """Attention within windows of ``w`` units whose borders lie at ``shift + j w`` (Swin's shift)."""
    first = []
    for v in range(w):
        first.append(shift + w * ((v - shift) // w))
    return Taps(w, w, tuple(first), tuple(f + w - 1 for f in first))


# A path class: (r_min, offset of the r_min path, r_max, offset of the r_max path,
#                largest offset over its paths, largest r - 1 - offset over its paths)
PathClass = tuple[Number, Number, Number, Number, Number, Number]
_START: dict[Number, PathClass] = {1: (1, 0, 1, 0, 0, 0)}


@dataclass(frozen=True, eq=False)
class Field:
    """Receptive fields of every layer, per axis (see the module docstring).

    ``classes[i][a]`` maps each jump to the path class of layer ``i`` on axis ``a``; ``has_global[i]``
    says whether some path to layer ``i`` passes a global operation.
    """

    classes: tuple[tuple[dict[Number, PathClass], ...], ...]
    has_global: tuple[bool, ...]
    r_min: tuple[tuple[Number, ...], ...]
    r_max: tuple[tuple[Number, ...], ...]
    r_max_local: tuple[tuple[Number, ...] | None, ...]
    jump: tuple[tuple[Number, ...] | None, ...]
    offset: tuple[tuple[Number, ...] | None, ...]
    diagnostics: tuple[Diagnostic, ...]


def _through_window(
    classes: dict[Any, PathClass],
    k: Number,
    s: Number,
    lo: int,
    into: dict[Any, PathClass],
    dilation: int = 1,
) -> None:
    grow = k - 1
    for jump, cls in classes.items():
        if type(jump) is PhasedKey:  # a phased class: follow each phase exactly
            _through_taps({jump: cls}, _window_as_taps(k, s, lo, dilation), into)
            continue
        rmin, pmin, rmax, pmax, offmax, endmax = cls
        new_jump = jump * s
        item = (
            rmin + grow * jump,
            pmin + lo * jump,
            rmax + grow * jump,
            pmax + lo * jump,
            offmax + lo * jump,
            endmax + (grow - lo) * jump,
        )
        _merge_class(into, new_jump, item)


def _window_as_taps(k: Number, s: Number, lo: int, dilation: int = 1) -> Taps:
    """``k`` is the effective kernel; a dilated window reads every ``dilation``-th unit of it."""
    if isinstance(s, int):
        return Taps(1, s, (-lo,), (int(k) - 1 - lo,), dilation)
    # adaptive pooling with a fractional stride n / m: window i spans floor(i n / m) to
    # ceil((i + 1) n / m) - 1
    ratio = Fraction(s)
    first = tuple(math.floor(i * ratio) for i in range(ratio.denominator))
    last = tuple(math.ceil((i + 1) * ratio) - 1 for i in range(ratio.denominator))
    return Taps(ratio.denominator, ratio.numerator, first, last)


def _through_taps(classes: dict[Any, PathClass], taps: Taps, into: dict[Any, PathClass]) -> None:
    for key, (rmin, pmin, rmax, pmax, offmax, endmax) in classes.items():
        new_key, shift_p, shift_e = _phased_step(key, taps)
        shift_r = shift_p + shift_e
        item = (
            rmin + shift_r,
            pmin + shift_p,
            rmax + shift_r,
            pmax + shift_p,
            offmax + shift_p,
            endmax + shift_e,
        )
        _merge_class(into, new_key, item)


def _unpack(key: Any) -> tuple[Number, int, tuple[Number, ...], tuple[Number, ...]]:
    """(jump, period, start offsets, end offsets) of a class key; a plain jump has period 1."""
    if type(key) is PhasedKey:
        return key
    return key, 1, (0,), (0,)


@lru_cache(maxsize=65536)
def _phased_step(key: Any, taps: Taps) -> tuple[Any, int, int]:
    """The class key after ``taps``, and how the offset ``P`` and the end of unit 0 shift.

    A class with jump ``J``, period ``q`` and offsets ``ss``/``es`` says: unit ``u`` of each of its
    paths sees ``[u J + ss[u % q] - P, u J + es[u % q] + E]`` for the path's own ``P`` and ``E``.
    """
    jump, q, ss, es = _unpack(key)
    period, advance, step = taps.period, taps.advance, taps.step
    new_period = period * q // math.gcd(q, advance)
    new_jump = Fraction(jump) * advance / period
    # Whole numbers in units of 1 / scale: the loops below run period * q times, and Fractions there
    # made GhostNet-V2 at 224 take minutes.
    scale = math.lcm(new_jump.denominator, *(Fraction(v).denominator for v in (jump, *ss, *es)))
    j = int(Fraction(jump) * scale)
    nj = int(new_jump * scale)
    s_int = [int(Fraction(v) * scale) for v in ss]
    e_int = [int(Fraction(v) * scale) for v in es]
    starts, ends = [], []
    for phase in range(new_period):
        blocks, rest = divmod(phase, period)
        first = taps.first[rest] + blocks * advance
        last = taps.last[rest] + blocks * advance
        # Offsets need not grow with the unit (a dilated transposed convolution reads unit 1 before
        # unit 0), so take the extremes over the taps; one period of them is enough, since a unit's
        # box moves by q * J > 0 from one period to the next.
        # (with holes: the q taps at each end, since taps q * step apart have the same offsets)
        start = min(t * j + s_int[t % q] for t in range(first, min(last, first + (q - 1) * step) + 1, step))
        tail = last - min(q - 1, (last - first) // step) * step
        end = max(t * j + e_int[t % q] for t in range(tail, last + 1, step))
        starts.append(start - phase * nj)
        ends.append(end - phase * nj)
    s0, e0 = starts[0], ends[0]
    new_key = _canonical(
        _number_of(new_jump),
        new_period,
        tuple(_number_of(Fraction(v - s0, scale)) for v in starts),
        tuple(_number_of(Fraction(v - e0, scale)) for v in ends),
    )
    return new_key, int(Fraction(-s0, scale)), int(Fraction(e0, scale))


class PhasedKey(tuple):  # type: ignore[type-arg]
    """The key of a phased path class, ``(jump, period, starts, ends)``, that hashes once.

    A dict lookup hashes its key every time, and a tuple does not keep its hash: with periods of 49
    phases (GhostNet-V2's gates at 224) rehashing the offsets (Fractions) took half of the time.
    """

    def __hash__(self) -> int:
        cached = self.__dict__.get("hash")
        if cached is None:
            cached = self.__dict__["hash"] = tuple.__hash__(self)
        return cached


def _canonical(jump: Number, q: int, ss: tuple[Number, ...], es: tuple[Number, ...]) -> Any:
    for d in range(1, q + 1):
        if q % d == 0 and all(ss[i] == ss[i % d] and es[i] == es[i % d] for i in range(q)):
            break
    if d == 1:
        return jump
    key = PhasedKey((jump, d, ss[:d], es[:d]))
    if len(_INTERNED) > MAX_INTERNED:
        _INTERNED.clear()
    # one object per key: lookups (dicts, the caches) then find it by identity, not by comparing offsets
    return _INTERNED.setdefault(key, key)


MAX_INTERNED = 65536
_INTERNED: dict[PhasedKey, PhasedKey] = {}


@lru_cache(maxsize=65536)
def key_width(key: Any) -> Number:
    """How much wider than unit 0's field the widest phase of a class is (0 for a plain jump)."""
    if type(key) is not PhasedKey:
        return 0
    _, _, ss, es = key
    widest: Number = max(e - s for s, e in zip(ss, es, strict=True))
    return widest


def key_jump(key: Any) -> Number:
    """The jump of a class key."""
    return key[0] if type(key) is PhasedKey else key  # type: ignore[no-any-return]


def unit_interval(axis: dict[Any, PathClass], u: int, path: str) -> tuple[Number, Number]:
    """The inclusive input interval unit ``u`` sees on one axis: ``"max"``, ``"min"`` path or ``"hull"``."""
    if path == "hull":
        starts, stops = [], []
        for key, c in axis.items():
            jump, q, ss, es = _unpack(key)
            starts.append(u * jump + ss[u % q] - c[4])
            stops.append(u * jump + es[u % q] + c[5])
        return min(starts), max(stops)
    best = None
    for key, c in axis.items():
        jump, q, ss, es = _unpack(key)
        if path == "max":
            r, p = c[2] + es[u % q] - ss[u % q], c[3]
        else:
            r, p = c[0] + es[u % q] - ss[u % q], c[1]
        start = u * jump + ss[u % q] - p
        rank = (r, jump) if path == "max" else (-r, -jump)
        if best is None or rank > best[0]:
            best = (rank, start, start + r - 1)
    assert best is not None
    return best[1], best[2]


def _merge_class(into: dict[Number, PathClass], jump: Number, item: PathClass) -> None:
    old = into.get(jump)
    if old is None:
        into[jump] = item
        return
    low = old if old[0] <= item[0] else item
    high = old if old[2] >= item[2] else item
    into[jump] = (
        low[0],
        low[1],
        high[2],
        high[3],
        max(old[4], item[4]),
        max(old[5], item[5]),
    )


def fields(
    stack: Stack,
    resolved: dict[int, Resolved],
    known: tuple[dict[int, Resolved], Field] | None = None,
) -> Field:
    """Propagate receptive fields through ``stack`` with the size-dependent layers as ``resolved``.

    ``known`` is a field of the same stack with its layers resolved as given: every layer that has no
    differently resolved layer among its ancestors (nor is one) keeps its entries from there. The
    search for the smallest feasible resolution evaluates many sizes that differ only in a
    segmentation head's upsampling; the backbone in front of it is then propagated once.
    """
    ndim = stack.ndim
    start = tuple(dict(_START) for _ in range(ndim))
    classes: list[tuple[dict[Number, PathClass], ...]] = []
    has_global: list[bool] = []
    diagnostics: list[Diagnostic] = []
    stale = _stale_layers(stack, resolved, known[0]) if known is not None else None
    for i, layer in enumerate(stack.layers):
        if stale is not None and known is not None and i not in stale:
            # The entries of the known field are never mutated after they were made: sharing is safe.
            classes.append(known[1].classes[i])
            has_global.append(known[1].has_global[i])
            continue
        sources = stack.input_indices[i]
        ins = [start if j == NETWORK_INPUT else classes[j] for j in sources]
        glob = any(False if j == NETWORK_INPUT else has_global[j] for j in sources)
        if i in resolved:
            how, kernel, stride, lo = resolved[i]
        elif layer.kind == WINDOW:
            how, kernel, stride, lo = (
                WINDOW,
                layer.kernel_effective,
                layer.stride,
                tuple(p[0] for p in layer.padding),
            )
        elif layer.kind == GLOBAL or layer.kind == "resample":
            how, kernel, stride, lo = GLOBAL, (), (), ()
        else:
            how, kernel, stride, lo = IDENTITY, (), (), ()
        if how == GLOBAL:
            out: tuple[dict[Number, PathClass], ...] = tuple({} for _ in range(ndim))
            glob = True
        elif how == PHASED:
            out = tuple({} for _ in range(ndim))
            for cls in ins:
                for a in range(ndim):
                    _through_taps(cls[a], lo[a], out[a])
        elif how == WINDOW:
            out = tuple({} for _ in range(ndim))
            dilation = layer.dilation * ndim if len(layer.dilation) == 1 else layer.dilation
            if layer.kind != WINDOW:  # a resolved adaptive pool: contiguous windows
                dilation = (1,) * ndim
            for cls in ins:
                for a in range(ndim):
                    _through_window(cls[a], kernel[a], stride[a], lo[a], out[a], dilation[a])
        elif len(ins) == 1:
            out = ins[0]
        else:
            out = tuple({} for _ in range(ndim))
            for cls in ins:
                for a in range(ndim):
                    for jump, item in cls[a].items():
                        _merge_class(out[a], jump, item)
        if len(ins) > 1:
            diagnostics.extend(_misalignment(stack, i, ins))
        classes.append(out)
        has_global.append(glob)
    if stale is not None and known is not None:
        old = known[1]
        kept = [d for d in old.diagnostics if d.layer is None or stack.index.get(d.layer) not in stale]
        diagnostics = sorted(kept + diagnostics, key=lambda d: stack.index.get(d.layer or "", -1))
    r_min: list[tuple[Number, ...]] = []
    r_max: list[tuple[Number, ...]] = []
    r_max_local: list[tuple[Number, ...] | None] = []
    jumps: list[tuple[Number, ...] | None] = []
    offsets: list[tuple[Number, ...] | None] = []
    for i, (cls, glob) in enumerate(zip(classes, has_global, strict=True)):
        if stale is not None and known is not None and i not in stale:
            old = known[1]
            r_min.append(old.r_min[i])
            r_max.append(old.r_max[i])
            r_max_local.append(old.r_max_local[i])
            jumps.append(old.jump[i])
            offsets.append(old.offset[i])
        elif cls[0]:
            summaries = [_summary(axis) for axis in cls]
            widths = tuple(x[1] for x in summaries)
            r_min.append(tuple(x[0] for x in summaries))
            r_max_local.append(widths)
            r_max.append((INF,) * ndim if glob else widths)
            jumps.append(tuple(x[2] for x in summaries))
            offsets.append(tuple(x[3] for x in summaries))
        else:
            r_min.append((INF,) * ndim)
            r_max.append((INF,) * ndim)
            r_max_local.append(None)
            jumps.append(None)
            offsets.append(None)
    return Field(
        tuple(classes),
        tuple(has_global),
        tuple(r_min),
        tuple(r_max),
        tuple(r_max_local),
        tuple(jumps),
        tuple(offsets),
        tuple(diagnostics),
    )


Step = tuple[str, tuple[Any, ...], tuple[Any, ...]]


class RMinPass:
    """``r_min`` alone, propagated as :func:`fields` propagates the fields (the verdicts need no more).

    Per path class (jump ``J``) only the smallest field is kept: a window adds ``(k_eff - 1) * J`` and
    multiplies the jump by its stride; merges keep the smaller field per jump. When every layer treats
    the axes alike (square kernels and strides), one axis is propagated and copied. The result equals
    ``fields(...).r_min`` (a test checks it on generated graphs); graphs with phased layers (resampling)
    are left to :func:`fields` (:meth:`run` returns None).

    One pass serves a graph and its *variants*: the same wiring with some layers replaced (the
    ``changes`` of :meth:`run`). The layers before the first change are shared, so each prefix is
    remembered by the changes it contains.
    """

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.base = [self._step(layer) for layer in stack.layers]
        self.base_plain = all(_plain_step(step) for step in self.base)
        self.base_square = all(_square_step(step) for step in self.base)
        self.memo: dict[tuple[Any, ...], list[tuple[list[dict[Any, Any]], list[float]]]] = {}

    @staticmethod
    def _step(layer: Layer, resolved: Resolved | None = None) -> Step:
        if resolved is not None:
            return resolved[0], tuple(resolved[1]), tuple(resolved[2])
        if layer.kind == WINDOW:
            return WINDOW, layer.kernel_effective, layer.stride
        if layer.kind in (GLOBAL, "resample"):
            return GLOBAL, (), ()
        return IDENTITY, (), ()

    def run(self, changes: dict[int, Layer], resolved: dict[int, Resolved]) -> Any:
        """``r_min`` per layer and axis (a numpy array; inf: every path is global), or None.

        ``changes`` are the layers that differ from the pass's stack, ``resolved`` the size-dependent
        layers as :func:`feature_maps` resolved them.
        """
        import numpy as np

        stack = self.stack
        ndim = stack.ndim
        overrides = {i: self._step(layer) for i, layer in changes.items()}
        overrides.update({i: self._step(stack.layers[i], r) for i, r in resolved.items()})
        steps = list(self.base)
        for i, step in overrides.items():
            steps[i] = step
        changed = list(overrides.values())
        if not self.base_plain or not all(_plain_step(step) for step in changed):
            return None
        square = self.base_square and all(_square_step(step) for step in changed)
        axes = 1 if square else ndim
        marks = sorted(overrides)
        keys = [(axes, m, tuple((j, overrides[j]) for j in marks if j < m)) for m in marks]
        begin = 0
        layers: list[tuple[list[dict[Any, Any]], list[float]]] = []
        for m, key in reversed(list(zip(marks, keys, strict=True))):
            found = self.memo.get(key)
            if found is not None:
                begin, layers = m, list(found)
                break
        starts = dict(zip(marks, keys, strict=True))
        start: dict[Any, Any] = {1: 1}
        inputs = stack.input_indices
        for i in range(begin, len(steps)):
            if i in starts and starts[i] not in self.memo:
                self.memo[starts[i]] = list(layers)
            how, kernel, stride = steps[i]
            ins = [[start] * axes if j < 0 else layers[j][0] for j in inputs[i]]
            if how == GLOBAL:
                out: list[dict[Any, Any]] = [{} for _ in range(axes)]
            elif how == WINDOW:
                out = [{} for _ in range(axes)]
                for dicts in ins:
                    for a in range(axes):
                        grow, factor, into = kernel[a] - 1, stride[a], out[a]
                        for jump, r in dicts[a].items():
                            key, value = jump * factor, r + grow * jump
                            old = into.get(key)
                            if old is None or value < old:
                                into[key] = value
            elif len(ins) == 1:
                out = ins[0]
            else:
                out = [{} for _ in range(axes)]
                for dicts in ins:
                    for a in range(axes):
                        into = out[a]
                        for jump, r in dicts[a].items():
                            old = into.get(jump)
                            if old is None or r < old:
                                into[jump] = r
            layers.append((out, [float(min(d.values())) if d else INF for d in out]))
        rows = np.array([row for _, row in layers], dtype=float)
        return np.repeat(rows, ndim, axis=1) if square and ndim > 1 else rows


def _plain_step(step: Step) -> bool:
    """Whether :class:`RMinPass` covers the step (no phases, integer strides)."""
    how, _, stride = step
    return how != PHASED and (how != WINDOW or all(isinstance(v, int) for v in stride))


def _square_step(step: Step) -> bool:
    return len(set(step[1])) <= 1 and len(set(step[2])) <= 1


def _stale_layers(stack: Stack, resolved: dict[int, Resolved], before: dict[int, Resolved]) -> set[int]:
    """The layers resolved differently in ``resolved`` and ``before``, and everything downstream."""
    todo = [i for i in resolved.keys() | before.keys() if resolved.get(i) != before.get(i)]
    stale = set(todo)
    while todo:
        for j in stack.successors[todo.pop()]:
            if j not in stale:
                stale.add(j)
                todo.append(j)
    return stale


def _summary(axis: dict[Any, PathClass]) -> tuple[Number, Number, Number, Number]:
    """``r_min``, ``r_max``, the largest jump and the offset of the widest class of one axis."""
    if len(axis) == 1:
        ((key, c),) = axis.items()
        if type(key) is not PhasedKey:
            return c[0], c[2], key, c[3]
    elif not any(type(key) is PhasedKey for key in axis):
        best = max(axis.items(), key=lambda item: (item[1][2], item[0]))
        return min(c[0] for c in axis.values()), best[1][2], max(axis), best[1][3]
    key, c = widest_class(axis)
    low = min(c[0] + key_width(k) for k, c in axis.items())
    return low, c[2] + key_width(key), max(key_jump(k) for k in axis), c[3]


def widest_class(axis: dict[Any, PathClass]) -> tuple[Any, PathClass]:
    """The path class with the largest field; ties go to the larger jump (as ``unit_box`` does)."""
    return max(axis.items(), key=lambda item: (item[1][2] + key_width(item[0]), key_jump(item[0])))


def _misalignment(stack: Stack, i: int, ins: list[tuple[dict[Number, PathClass], ...]]) -> list[Diagnostic]:
    """A diagnostic when the inputs of a merge disagree on jump or on the centre of unit 0."""
    seen: list[tuple[tuple[Number, ...], tuple[Number, ...]]] = []
    for cls in ins:
        if not cls[0]:
            continue
        reps = [widest_class(axis) for axis in cls]
        jumps = tuple(key_jump(key) for key, _ in reps)
        centres: tuple[Number, ...] = tuple(
            Fraction(c[2] - 1) / 2 - c[3] + _mean_centre(key) for key, c in reps
        )
        seen.append((jumps, centres))
    out = []
    name = stack.layers[i].name
    for jumps, centres in seen[1:]:
        first_jumps, first_centres = seen[0]
        if jumps != first_jumps:
            out.append(
                Diagnostic(
                    name,
                    "misaligned-merge",
                    f"'{name}' merges paths with jumps {_fmt(first_jumps)} and {_fmt(jumps)}",
                )
            )
            break
        if centres != first_centres:
            out.append(
                Diagnostic(
                    name,
                    "misaligned-merge",
                    f"'{name}' merges paths whose unit 0 is centred at {_fmt(first_centres)} and "
                    f"{_fmt(centres)}",
                )
            )
            break
    return out


def _mean_centre(key: Any) -> Fraction:
    """How far the centres of a phased class lie, on average over its phases, from unit 0's."""
    if type(key) is not PhasedKey:
        return Fraction(0)
    _, q, ss, es = key
    return Fraction(sum(ss) + sum(es), 2 * q)


def _fmt(values: tuple[Number, ...]) -> str:
    return "(" + ", ".join(_number(v) for v in values) + ")"


def _number(value: Number) -> str:
    if isinstance(value, Fraction) and value.denominator != 1:
        return f"{float(value):g}"
    return str(int(value))
