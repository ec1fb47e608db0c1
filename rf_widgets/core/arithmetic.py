"""Receptive-field and feature-map arithmetic over a :class:`~rf_widgets.core.graph.Stack`.

Two passes, both linear in the number of edges:

* :func:`feature_maps` computes every layer's output size at one input size with the real
  arithmetic (SPEC section 5) and resolves the operations whose rule depends on the size (adaptive
  pooling, flatten).
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
import weakref
from dataclasses import dataclass
from fractions import Fraction
from typing import Union

from rf_widgets.core.graph import NETWORK_INPUT, Stack

__all__ = ["INF", "Diagnostic", "Field", "Resolved", "feature_maps", "fields"]

INF = math.inf
Number = Union[int, float, Fraction]  # float only for inf

# One resolved operation per layer: ("window", k_eff, stride, pad_lo) per axis, or a marker.
WINDOW, GLOBAL, IDENTITY, UNKNOWN = "window", "global", "identity", "unknown"
Resolved = tuple[str, tuple[Number, ...], tuple[Number, ...], tuple[int, ...]]


@dataclass(frozen=True)
class Diagnostic:
    """Something the analysis noticed: ``kind`` is a short code, ``message`` names the culprit."""

    layer: str | None
    kind: str
    message: str

    def to_dict(self) -> dict[str, str | None]:
        return {"layer": self.layer, "kind": self.kind, "message": self.message}


def _window_size(n: int, k: int, s: int, lo: int, hi: int, ceil_mode: bool) -> int:
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


_PLANS: weakref.WeakKeyDictionary[Stack, SizePlan] = weakref.WeakKeyDictionary()


def size_plan(stack: Stack) -> SizePlan:
    """The compiled size pass of ``stack`` (memoised per stack)."""
    plan = _PLANS.get(stack)
    if plan is not None:
        return plan
    steps = []
    for i, layer in enumerate(stack.layers):
        sources = stack.input_indices[i]
        if len(sources) == 1 and layer.kind == WINDOW and not layer.ceil_mode:
            params = tuple(
                (lo + hi - (d * (k - 1) + 1), s)
                for k, d, s, (lo, hi) in zip(
                    layer.kernel, layer.dilation, layer.stride, layer.padding, strict=True
                )
            )
            code = 1 if all(p == (-1, 1) for p in params) else 0  # k_eff 1, stride 1, no padding
            steps.append((code, sources[0], params))
        elif (
            len(sources) > 1
            and NETWORK_INPUT not in sources
            and layer.kind == WINDOW
            and layer.kernel_effective == (1,) * stack.ndim
            and layer.stride == (1,) * stack.ndim
            and not any(lo or hi for lo, hi in layer.padding)
        ):
            steps.append((3, -1, ()))  # a merge (add, concat): equal input sizes pass straight through
        else:
            steps.append((2, -1, ()))
    plan = _PLANS[stack] = SizePlan(tuple(steps))
    return plan


def feature_maps(
    stack: Stack, input_size: tuple[int, ...]
) -> tuple[list[tuple[int, ...]], dict[int, Resolved], list[Diagnostic]]:
    """Output size of every layer, the size-dependent layers resolved, and size diagnostics.

    Returns ``(sizes, resolved, diagnostics)`` where ``resolved`` maps the index of every adaptive or
    flatten layer to what it is at this input size.
    """
    sizes: list[tuple[int, ...]] = []
    resolved: dict[int, Resolved] = {}
    diagnostics: list[Diagnostic] = []
    append = sizes.append
    input_indices = stack.input_indices
    for i, (code, source, params) in enumerate(size_plan(stack).steps):
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
    if kind == WINDOW:
        out = tuple(
            _window_size(
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
    else:  # unknown: assume the size is kept
        out = n_in
    if 0 in out and all(0 not in s for s in ins):
        diagnostics.append(_empty(stack, i, n_in, input_size))
    return out


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
    classes: dict[Number, PathClass], k: Number, s: Number, lo: int, into: dict[Number, PathClass]
) -> None:
    grow = k - 1
    for jump, (rmin, pmin, rmax, pmax, offmax, endmax) in classes.items():
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


def fields(stack: Stack, resolved: dict[int, Resolved]) -> Field:
    """Propagate receptive fields through ``stack`` with the size-dependent layers as ``resolved``."""
    ndim = stack.ndim
    start = tuple(dict(_START) for _ in range(ndim))
    classes: list[tuple[dict[Number, PathClass], ...]] = []
    has_global: list[bool] = []
    diagnostics: list[Diagnostic] = []
    for i, layer in enumerate(stack.layers):
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
        elif layer.kind == GLOBAL:
            how, kernel, stride, lo = GLOBAL, (), (), ()
        else:
            how, kernel, stride, lo = IDENTITY, (), (), ()
        if how == GLOBAL:
            out: tuple[dict[Number, PathClass], ...] = tuple({} for _ in range(ndim))
            glob = True
        elif how == WINDOW:
            out = tuple({} for _ in range(ndim))
            for cls in ins:
                for a in range(ndim):
                    _through_window(cls[a], kernel[a], stride[a], lo[a], out[a])
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
    r_min: list[tuple[Number, ...]] = []
    r_max: list[tuple[Number, ...]] = []
    r_max_local: list[tuple[Number, ...] | None] = []
    jumps: list[tuple[Number, ...] | None] = []
    offsets: list[tuple[Number, ...] | None] = []
    for cls, glob in zip(classes, has_global, strict=True):
        if cls[0]:
            lows = tuple(min(c[0] for c in axis.values()) for axis in cls)
            highs = tuple(widest_class(axis)[1] for axis in cls)
            r_min.append(lows)
            r_max_local.append(tuple(h[2] for h in highs))
            r_max.append((INF,) * ndim if glob else tuple(h[2] for h in highs))
            jumps.append(tuple(max(axis) for axis in cls))
            offsets.append(tuple(h[3] for h in highs))
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


def widest_class(axis: dict[Number, PathClass]) -> tuple[Number, PathClass]:
    """The path class with the largest field; ties go to the larger jump (as ``unit_box`` does)."""
    return max(axis.items(), key=lambda item: (item[1][2], item[0]))


def _misalignment(stack: Stack, i: int, ins: list[tuple[dict[Number, PathClass], ...]]) -> list[Diagnostic]:
    """A diagnostic when the inputs of a merge disagree on jump or on the centre of unit 0."""
    seen: list[tuple[tuple[Number, ...], tuple[Number, ...]]] = []
    for cls in ins:
        if not cls[0]:
            continue
        reps = [widest_class(axis) for axis in cls]
        jumps = tuple(jump for jump, _ in reps)
        centres: tuple[Number, ...] = tuple(Fraction(c[2] - 1) / 2 - c[3] for _, c in reps)
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


def _fmt(values: tuple[Number, ...]) -> str:
    return "(" + ", ".join(_number(v) for v in values) + ")"


def _number(value: Number) -> str:
    if isinstance(value, Fraction) and value.denominator != 1:
        return f"{float(value):g}"
    return str(int(value))
