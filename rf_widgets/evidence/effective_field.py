"""Effective receptive fields: the input area a unit really uses, from its input gradient (SPEC section 8).

Following Luo et al. (NeurIPS 2016), a gradient of 1 is put on the chosen unit of a layer's output (all
channels at one position) and 0 everywhere else, backpropagated to the input, and ``|gradient|`` is summed
over input channels and averaged over several inputs. The computation runs in float64 by default: in
deep or layer-scaled networks a float32 gradient underflows at the edge of the field, which would make
the support look smaller than it is. The size is the "2 sigma" measure: the square root of the number of
pixels whose value exceeds 0.0455 times the value at the centre of the unit's theoretical box.

The model itself is never changed: float64 and the ``weights="random"``/``"positive"`` variants run on a
copy, which is kept (with the analysis that gives the theoretical box) in a small cache keyed by the
model's identity and the version counters of its parameters, so asking for another unit of the same
model is cheap and training the model invalidates the cache. :func:`erf_map` is the cached entry point
meant for interactive views.
"""

from __future__ import annotations

import copy
import math
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn

from rf_widgets.core.results import Box
from rf_widgets.errors import DataError, ResolutionError, RFError
from rf_widgets.evidence._running import _first_line, as_images, check_images, left_as_found, resolve_layers

__all__ = ["TWO_SIGMA", "EffectiveField", "effective_field", "erf_map", "erf_size"]

TWO_SIGMA = 0.0455
"""Share of the centre value above which a pixel counts as inside the effective field."""

Weights = Literal["as given", "random", "positive"]
_CACHE_SIZE = 64


@dataclass(frozen=True)
class EffectiveField:
    """The effective receptive field of one unit, beside its theoretical box.

    ``map`` is float64 (H, W): mean ``|d unit / d input|`` summed over input channels. ``size`` is the
    2-sigma size in pixels, ``effective_box`` the bounding box of the pixels counted in it,
    ``support_box`` the bounding box of every non-zero pixel, ``theoretical_box`` the union of the unit's
    fields over all paths (``Analysis.unit_box(path="hull")``) and ``r_max`` the largest theoretical field.
    """

    layer: str
    unit: tuple[int, ...]
    input_size: tuple[int, ...]
    weights: str
    samples: int
    map: np.ndarray
    centre: tuple[int, ...]
    reference: str
    size: float
    effective_box: Box | None
    support_box: Box | None
    theoretical_box: Box
    r_max: tuple[Any, ...]

    def support_inside_theoretical(self) -> bool:
        """Whether every pixel with a non-zero gradient lies inside the theoretical box."""
        if self.support_box is None:
            return True
        t = self.theoretical_box
        return all(a >= b for a, b in zip(self.support_box.start, t.start, strict=True)) and all(
            a <= b for a, b in zip(self.support_box.stop, t.stop, strict=True)
        )

    def to_dict(self) -> dict[str, Any]:
        def box(b: Box | None) -> dict[str, list[Any]] | None:
            return None if b is None else {"start": list(b.start), "stop": list(b.stop)}

        return {
            "layer": self.layer,
            "unit": list(self.unit),
            "input_size": list(self.input_size),
            "weights": self.weights,
            "samples": self.samples,
            "size": self.size,
            "centre": list(self.centre),
            "reference": self.reference,
            "effective_box": box(self.effective_box),
            "support_box": box(self.support_box),
            "theoretical_box": box(self.theoretical_box),
            "r_max": [float(r) for r in self.r_max],
        }


def erf_size(values: np.ndarray, centre: Sequence[int] | None = None) -> tuple[float, str]:
    """The 2-sigma size of an ERF map and which value it was relative to.

    The reference is the value at ``centre`` (default: the middle pixel); when that is 0 (a dead centre)
    the peak is used instead and the second element says ``"peak"``.
    """
    if centre is None:
        centre = tuple((n - 1) // 2 for n in values.shape)
    ref = float(values[tuple(centre)])
    reference = "centre"
    if ref <= 0:
        ref, reference = float(values.max()), "peak"
    if ref <= 0:
        return 0.0, reference
    return math.sqrt(int((values > TWO_SIGMA * ref).sum())), reference


# -- the model copy and analysis cache -------------------------------------------------------------------


class _Entry:
    def __init__(self, model: nn.Module, work: nn.Module, analysis: Any, version: tuple[int, ...]) -> None:
        self.ref = weakref.ref(model)
        self.work = work
        self.analysis = analysis
        self.version = version


_cache: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
_maps: OrderedDict[tuple[Any, ...], EffectiveField] = OrderedDict()


def _version(model: nn.Module) -> tuple[int, ...]:
    """Changes whenever a parameter or buffer is modified in place (an optimiser step, a load)."""
    return tuple(t._version for t in (*model.parameters(), *model.buffers())) + (id(model),)


def _prepared(
    model: nn.Module, input_size: tuple[int, ...], weights: str, dtype: torch.dtype, seed: int
) -> _Entry:
    from rf_widgets._api import analyze

    version = _version(model)
    key = (id(model), input_size, weights, dtype, seed if weights != "as given" else None)
    entry = _cache.get(key)
    if entry is not None and entry.ref() is model and entry.version == version:
        _cache.move_to_end(key)
        return entry
    analysis = analyze(model, input_size)
    if weights == "as given" and _dtype_of(model) == dtype:
        work = model  # used inside left_as_found: nothing is written
    else:
        work = copy.deepcopy(model).to(dtype)
        if weights == "random":
            _reinitialise(work, seed)
        elif weights == "positive":
            _make_positive(work, seed)
    entry = _Entry(model, work, analysis, version)
    _cache[key] = entry
    while len(_cache) > 4:
        _cache.popitem(last=False)
    return entry


def _dtype_of(model: nn.Module) -> torch.dtype | None:
    p = next(model.parameters(), None)
    return p.dtype if p is not None else None


def _reinitialise(model: nn.Module, seed: int) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for m in model.modules():
            reset = getattr(m, "reset_parameters", None)
            if callable(reset):
                reset()


def _make_positive(model: nn.Module, seed: int) -> None:
    """Weights in [0.5, 1.5] / fan-in, zero biases, identity normalisation: nothing cancels or saturates."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._NormBase):
                if m.running_mean is not None and m.running_var is not None:
                    m.running_mean.zero_()
                    m.running_var.fill_(1.0)
                if m.affine:
                    m.weight.fill_(1.0)
                    m.bias.zero_()
                continue
            for name, p in m.named_parameters(recurse=False):
                if name == "bias":
                    p.zero_()
                    continue
                # Divided by the fan-in, so activations stay near the inputs' scale: a clamp such as
                # MobileNet's ReLU6 would otherwise saturate and block every gradient.
                fan_in = max(p[0].numel(), 1) if p.ndim > 1 else 1
                p.copy_((torch.rand(p.shape, generator=generator, dtype=p.dtype) + 0.5) / fan_in)


# -- the computation ------------------------------------------------------------------------------------


class _Stop(Exception):
    pass


def effective_field(
    model: nn.Module,
    layer: str,
    unit: int | Sequence[int] | None = None,
    input_size: int | Sequence[int] = 224,
    inputs: Any = None,
    weights: Weights = "as given",
    *,
    samples: int = 4,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> EffectiveField:
    """The effective receptive field of ``unit`` of ``layer`` (SPEC section 8).

    Parameters
    ----------
    model
        A ``torch.nn.Module``, left exactly as found (float64 and other weights use a copy).
    layer
        Module name, e.g. ``"layer3.0.conv2"``.
    unit
        Position in the layer's feature map (one int for every axis, or one per axis); by default the
        centre unit, as in :meth:`rf_widgets.Analysis.unit_box`.
    input_size
        Input resolution (ignored when ``inputs`` is given: their size is used).
    inputs
        Images (N, C, H, W) to average over; by default ``samples`` standard-normal images drawn from
        ``seed`` (uniform in [0.5, 1.5] for ``weights="positive"``, so every ReLU is active).
    weights
        ``"as given"`` (the model's own, trained or not), ``"random"`` (a fresh initialisation of a copy,
        from ``seed``) or ``"positive"`` (uniform in [0.5, 1.5] over the fan-in, zero biases, identity
        normalisation: the gradient then reaches every pixel the unit depends on, which is how the
        theoretical box is checked).
    dtype
        float64 by default; float32 is about ten times faster on a CPU and fine for a picture, not for
        checking the support of a deep network.

    Examples
    --------
    >>> import torch, torch.nn as nn
    >>> net = nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1, bias=False) for _ in range(5)])
    >>> with torch.no_grad():
    ...     for conv in net:
    ...         _ = conv.weight.fill_(1.0)
    >>> erf = effective_field(net, "4", input_size=31, samples=1)
    >>> round(erf.size, 2), erf.theoretical_box.size
    (8.31, (11, 11))
    """
    if weights not in ("as given", "random", "positive"):
        raise RFError(f"weights must be 'as given', 'random' or 'positive', got {weights!r}")
    module = resolve_layers(model, [layer])[layer]
    if inputs is not None:
        x = as_images(inputs, "inputs")
        check_images(model, x, None, "inputs")
        size = tuple(int(n) for n in x.shape[2:])
    else:
        size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        if any(not isinstance(n, int) or n < 1 for n in size):
            raise ResolutionError(f"input_size must be a positive int per axis, got {input_size!r}")
        if samples < 1:
            raise DataError(f"samples must be at least 1, got {samples}")
        first = next((m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
        channels = first.in_channels if first is not None else 3
        generator = torch.Generator().manual_seed(seed)
        shape = (samples, channels, *size)
        x = (
            torch.rand(shape, generator=generator, dtype=torch.float64) + 0.5
            if weights == "positive"
            else torch.randn(shape, generator=generator, dtype=torch.float64)
        )
    entry = _prepared(model, size, weights, dtype, seed)
    work_module = module if entry.work is model else dict(entry.work.named_modules())[layer]
    analysis_layer = entry.analysis.layer(layer)
    fmap = analysis_layer.feature_map
    if unit is None:
        units = tuple(max(n - 1, 0) // 2 for n in fmap)
    elif isinstance(unit, int):
        units = (unit,) * len(fmap)
    else:
        units = tuple(int(u) for u in unit)
    if len(units) != len(fmap) or any(u < 0 or u >= n for u, n in zip(units, fmap, strict=True)):
        raise ResolutionError(
            f"unit {unit!r} is outside the {'x'.join(map(str, fmap))} feature map of layer '{layer}'"
        )
    box = entry.analysis.unit_box(layer, units, path="hull")
    values = _gradient_map(entry.work, work_module, x.to(dtype), units, layer)
    centre = tuple(min(max(math.floor(c), 0), n - 1) for c, n in zip(box.centre, size, strict=True))
    two_sigma, reference = erf_size(values, centre)
    ref = values[centre] if reference == "centre" else values.max()
    return EffectiveField(
        layer=layer,
        unit=units,
        input_size=size,
        weights=weights,
        samples=len(x),
        map=values,
        centre=centre,
        reference=reference,
        size=two_sigma,
        effective_box=_bbox(values > TWO_SIGMA * ref) if ref > 0 else None,
        support_box=_bbox(values > 0),
        theoretical_box=box,
        r_max=tuple(analysis_layer.r_max),
    )


def _gradient_map(
    model: nn.Module, module: nn.Module, x: torch.Tensor, units: tuple[int, ...], layer: str
) -> np.ndarray:
    captured: list[torch.Tensor] = []

    def hook(m: nn.Module, args: Any, output: Any) -> None:
        if not captured:
            captured.append(output)
            raise _Stop  # nothing after the layer is needed

    x = x.clone().requires_grad_(True)
    handle = module.register_forward_hook(hook)
    try:
        with left_as_found(model), torch.enable_grad():
            try:
                model(x)
            except _Stop:
                pass
            except (RuntimeError, ValueError) as err:
                raise ResolutionError(
                    f"{type(model).__name__} cannot run at {'x'.join(map(str, x.shape[2:]))}: "
                    f"{_first_line(err)}"
                ) from err
            if not captured:
                raise RFError(f"module '{layer}' was not called in the forward pass")
            out = captured[0]
            index: tuple[Any, ...] = (slice(None), slice(None), *units)
            picked = out[index].sum()
            (grad,) = torch.autograd.grad(picked, x)
    finally:
        handle.remove()
    return grad.detach().abs().sum(dim=1).mean(dim=0).to(torch.float64).numpy()


def _bbox(mask: np.ndarray) -> Box | None:
    if not mask.any():
        return None
    start, stop = [], []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        start.append(int(hits[0]))
        stop.append(int(hits[-1]))
    return Box(tuple(start), tuple(stop), tuple((a + b) / 2 for a, b in zip(start, stop, strict=True)))


def erf_map(
    model: nn.Module,
    layer: str,
    unit: int | Sequence[int] | None = None,
    input_size: int | Sequence[int] = 224,
    weights: Weights = "as given",
    *,
    samples: int = 4,
    dtype: torch.dtype = torch.float32,
) -> EffectiveField:
    """:func:`effective_field` with random inputs, memoised: the call an interactive view makes.

    Repeated calls with the same arguments return the stored result while the model's parameters are
    unchanged (their in-place version counters are part of the key); float32 by default for speed.
    """
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    units = unit if unit is None or isinstance(unit, int) else tuple(unit)
    key = (id(model), _version(model), layer, units, size, weights, samples, dtype)
    hit = _maps.get(key)
    if hit is not None:
        _maps.move_to_end(key)
        return hit
    result = effective_field(model, layer, unit, size, None, weights, samples=samples, dtype=dtype)
    _maps[key] = result
    while len(_maps) > _CACHE_SIZE:
        _maps.popitem(last=False)
    return result
