"""Upsampling, transposed convolution and pixel shuffle against the gradient support of the real modules.

Every weight is positive (uniform in [0.5, 1.5]), the network runs in float64, and a gradient of 1 is put
on one output unit (all channels); the input pixels with a non-zero gradient are what the unit can see.
Interpolation weights that are exactly 0 (a sample position falling on a unit) give no gradient, and
the rules leave those taps out too: below 1e-12 of the largest value counts as zero (float rounding of
the sample position). Units whose box lies inside the image must match ``unit_box(path="hull")``
exactly; units at the border must lie inside the clipped box (clamping and padding only remove pixels).
Every unit of every layer is checked in 1-D (all phases, both borders), sampled units in 2-D and 3-D.
"""

from __future__ import annotations

import itertools

import pytest

torch = pytest.importorskip("torch")

import torch.nn as nn  # noqa: E402

import rf_widgets as rfw  # noqa: E402


def _positive(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    model = model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(0.5, 1.5)
    return model


def _support(prefix: nn.Module, x: torch.Tensor, unit: tuple[int, ...]) -> list[tuple[int, int]] | None:
    x = x.clone().requires_grad_(True)
    out = prefix(x)
    out[(0, slice(None), *unit)].sum().backward()
    grad = x.grad.abs().sum(dim=(0, 1))
    keep = grad > 1e-12 * float(grad.max()) if float(grad.max()) > 0 else grad > 0
    if not bool(keep.any()):
        return None
    spans = []
    for axis in range(grad.dim()):
        others = tuple(a for a in range(grad.dim()) if a != axis)
        hit = keep.any(dim=others) if others else keep
        idx = torch.nonzero(hit).flatten()
        spans.append((int(idx.min()), int(idx.max())))
    return spans


def _check(model: nn.Sequential, size: tuple[int, ...], units_per_layer: int | None = None) -> int:
    model = _positive(model)
    result = rfw.analyze(model, size)
    x = torch.rand(1, model[0].in_channels, *size, dtype=torch.float64)
    checked = 0
    assert len(result.layers) == len(model)
    for i in range(len(model)):
        name = result.layers[i].name
        layer = result.layer(name)
        with torch.no_grad():
            shape = tuple(model[: i + 1](x).shape[2:])
        assert layer.feature_map == shape, (name, layer.feature_map, shape)
        units = list(itertools.product(*(range(n) for n in shape)))
        if units_per_layer is not None and len(units) > units_per_layer:
            step = len(units) // units_per_layer
            units = units[::step] + [units[-1]]
        widest = 0
        for unit in units:
            box = result.unit_box(name, unit, path="hull")
            support = _support(model[: i + 1], x, unit)
            assert support is not None, (name, unit)
            inside = all(a >= 0 and b <= n - 1 for a, b, n in zip(box.start, box.stop, size, strict=True))
            for (lo, hi), a, b, n in zip(support, box.start, box.stop, size, strict=True):
                if inside:
                    assert (lo, hi) == (a, b), (name, unit, support, box)
                else:
                    assert max(a, 0) <= lo, (name, unit, support, box)
                    assert hi <= min(b, n - 1), (name, unit, support, box)
            if inside:
                widest = max(widest, max(hi - lo + 1 for lo, hi in support))
            checked += 1
        if widest:
            assert widest <= max(layer.r_max), (name, widest, layer.r_max)
    return checked


class Interpolate(nn.Module):
    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.kwargs = kwargs

    def forward(self, x):
        return nn.functional.interpolate(x, **self.kwargs)


UPSAMPLERS_1D = [
    pytest.param(nn.Upsample(scale_factor=2, mode="nearest"), id="nearest-x2"),
    pytest.param(nn.Upsample(scale_factor=3, mode="nearest"), id="nearest-x3"),
    pytest.param(nn.Upsample(scale_factor=2, mode="nearest-exact"), id="nearest-exact-x2"),
    pytest.param(nn.Upsample(scale_factor=2, mode="linear"), id="linear-x2"),
    pytest.param(nn.Upsample(scale_factor=3, mode="linear"), id="linear-x3"),
    pytest.param(nn.Upsample(scale_factor=4, mode="linear", align_corners=True), id="linear-x4-corners"),
    pytest.param(nn.Upsample(size=23, mode="linear"), id="linear-size23"),
    pytest.param(nn.Upsample(size=17, mode="nearest"), id="nearest-size17"),
    pytest.param(Interpolate(scale_factor=0.5, mode="linear"), id="linear-half"),
    pytest.param(nn.ConvTranspose1d(2, 2, 2, stride=2), id="transpose-k2s2"),
    pytest.param(nn.ConvTranspose1d(2, 2, 4, stride=2, padding=1), id="transpose-k4s2p1"),
    pytest.param(
        nn.ConvTranspose1d(2, 2, 3, stride=2, padding=1, output_padding=1), id="transpose-k3s2-out1"
    ),
    pytest.param(nn.ConvTranspose1d(2, 2, 3, stride=3, dilation=2, padding=2), id="transpose-k3s3d2"),
    pytest.param(nn.ConvTranspose1d(2, 4, 5, stride=2, groups=2), id="transpose-groups"),
]


@pytest.mark.parametrize("op", UPSAMPLERS_1D)
def test_one_dimensional_every_unit(op):
    channels_out = getattr(op, "out_channels", 2)
    model = nn.Sequential(
        nn.Conv1d(2, 2, 3, stride=2, padding=1), op, nn.Conv1d(channels_out, 2, 3, padding=1)
    )
    assert _check(model, (24,)) > 20
    result = rfw.analyze(model, 24)
    assert all(layer.status != "unknown" for layer in result.layers)


def test_bicubic_and_bilinear_two_dimensional():
    for mode in ("bilinear", "bicubic"):
        for corners in (False, True):
            model = nn.Sequential(
                nn.Conv2d(1, 2, 3, stride=2, padding=1),
                nn.Upsample(scale_factor=2, mode=mode, align_corners=corners),
                nn.Conv2d(2, 1, 3, stride=2),
            )
            assert _check(model, (13, 15), units_per_layer=25) > 40


def test_pixel_shuffle_and_unshuffle():
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.PixelShuffle(2), nn.Conv2d(2, 4, 3), nn.PixelUnshuffle(2)
    )
    _check(model, (16, 12), units_per_layer=30)


def test_transposed_convolution_three_dimensional():
    model = nn.Sequential(
        nn.Conv3d(1, 2, 3, stride=(1, 2, 2), padding=1),
        nn.ConvTranspose3d(2, 2, (1, 4, 3), stride=(1, 2, 3), padding=(0, 1, 1)),
    )
    _check(model, (4, 8, 6), units_per_layer=30)


def test_fractional_jump_is_exact():
    model = nn.Sequential(nn.Conv1d(1, 1, 3, stride=3), nn.Upsample(scale_factor=2, mode="nearest"))
    result = rfw.analyze(model, 30)
    assert result.layer("1").jump == (1.5,)
    # units 0 and 1 both read unit 0 of the strided conv; unit 2 reads unit 1: boxes differ per phase
    assert [result.unit_box("1", (u,)).start for u in range(4)] == [(0,), (0,), (3,), (3,)]


def test_transposed_convolution_whose_phases_read_nothing_is_unknown():
    model = nn.Sequential(nn.Conv1d(1, 1, 3), nn.ConvTranspose1d(1, 1, 1, stride=2))
    with pytest.warns(rfw.errors.UnknownOperationWarning, match="'1'"):
        result = rfw.analyze(model, 16)
    assert result.layer("1").status == "unknown"
    assert any("phase 1" in d.message and "read no input" in d.message for d in result.diagnostics)
