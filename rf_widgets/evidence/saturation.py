"""Layer saturation: how many eigen-directions of a layer's output carry its variance.

Every spatial position of every image is one observation of a layer's C-channel output (the convention
of delve, Shenk et al., which the paper uses). The covariance of those observations is accumulated in
float64 batch by batch (Chan's pairwise update of mean and scatter matrix; only the product of one
batch's centred activations with itself is taken in the activations' own precision), so no activations
are kept:
memory is one C x C matrix per layer. Its eigenvalues, largest first, explain a growing share of the
total variance; the saturation is ``k / C`` for the smallest ``k`` reaching ``delta`` (0.99 by default).

Fewer observations than channels: the covariance of ``n`` observations has rank at most ``n - 1``, so
the saturation cannot exceed ``(n - 1) / C`` whatever the layer does. We still divide by ``C`` (so that
values stay comparable between layers) and flag the layer as ``rank_limited``; :func:`plot_evidence`
draws such points hollow. Feed more images (each image adds ``H * W`` observations) to lift the limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from rf_widgets.errors import RFError
from rf_widgets.evidence._running import (
    BATCH,
    as_images,
    check_images,
    forward_batches,
    left_as_found,
    resolve_layers,
)

__all__ = ["LayerSaturation", "saturation", "saturation_of_covariance"]


@dataclass(frozen=True)
class LayerSaturation:
    """The saturation of one layer and what it was computed from."""

    layer: str
    saturation: float
    channels: int
    observations: int
    rank_limited: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "saturation": self.saturation,
            "channels": self.channels,
            "observations": self.observations,
            "rank_limited": self.rank_limited,
        }


def saturation_of_covariance(covariance: np.ndarray, delta: float = 0.99) -> float:
    """``k / C``: the share of eigen-directions needed to explain ``delta`` of the variance.

    A covariance with no variance at all (a dead layer) has saturation 0.
    """
    eigen = np.clip(np.linalg.eigvalsh(covariance)[::-1], 0.0, None)
    total = eigen.sum()
    if total <= 0:
        return 0.0
    share = np.cumsum(eigen) / total
    # A relative tolerance so that a share of exactly delta is not missed by rounding.
    k = int(np.searchsorted(share, delta * (1 - 1e-12))) + 1
    return min(k, len(eigen)) / len(eigen)


class _Scatter:
    """Running mean and scatter matrix of row observations, in float64 (pairwise update)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def add(self, rows: torch.Tensor) -> None:
        nb = rows.shape[0]
        mean_b = rows.to(torch.float64).mean(dim=0)
        # The batch's own scatter in the activations' precision (float64 matrix products are an order of
        # magnitude slower on a CPU); centring first keeps it accurate. Everything across batches, where
        # the cancellation happens, is float64.
        centred = rows - mean_b.to(rows.dtype)
        m2_b = (centred.T @ centred).to(torch.float64)
        if self.mean is None or self.m2 is None:
            self.n, self.mean, self.m2 = nb, mean_b, m2_b
            return
        n = self.n + nb
        d = mean_b - self.mean
        self.m2 = self.m2 + m2_b + torch.outer(d, d) * (self.n * nb / n)
        self.mean = self.mean + d * (nb / n)
        self.n = n

    def covariance(self) -> np.ndarray:
        assert self.m2 is not None
        return (self.m2 / max(self.n - 1, 1)).numpy()


def saturation(
    model: nn.Module,
    data: Any,
    layers: Sequence[str] | str | None = None,
    delta: float = 0.99,
    *,
    batch_size: int = BATCH,
) -> dict[str, LayerSaturation]:
    """Saturation of each layer's output on ``data`` (see the module docstring for the definition).

    Parameters
    ----------
    model
        A ``torch.nn.Module``; it is run in eval mode and left exactly as found.
    data
        Images (N, C, H, W) as an array or tensor, an ``ImageSet``, or an ``(images, labels)`` pair.
    layers
        Module names (``"layer3.0.conv2"``); by default every convolution with a kernel larger than 1.
    delta
        Share of the variance to explain, in (0, 1].

    Returns
    -------
    dict
        One :class:`LayerSaturation` per layer, in the order asked.

    Examples
    --------
    >>> import torch, torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))
    >>> out = saturation(net, torch.randn(16, 3, 12, 12))
    >>> sorted(out), out["2"].channels
    (['0', '2'], 4)
    """
    if not 0 < delta <= 1:
        raise RFError(f"delta must be in (0, 1], got {delta!r}")
    images = as_images(data)
    modules = resolve_layers(model, layers)
    check_images(model, images, None, "data")
    scatters = {name: _Scatter() for name in modules}
    channels: dict[str, int] = {}

    def consume(name: str, output: torch.Tensor) -> None:
        c = output.shape[1]
        channels[name] = c
        # (B, C, *spatial) -> (B * positions, C): every position of every image is one observation.
        scatters[name].add(output.movedim(1, -1).reshape(-1, c))

    with left_as_found(model):
        forward_batches(model, images, modules, consume, batch_size=batch_size)
    out = {}
    for name, scatter in scatters.items():
        c = channels[name]
        out[name] = LayerSaturation(
            layer=name,
            saturation=saturation_of_covariance(scatter.covariance(), delta),
            channels=c,
            observations=scatter.n,
            rank_limited=scatter.n <= c,
        )
    return out
