"""timm's TResNet stem: SpaceToDepth and BlurPool2d rules against the gradient support of the real modules.

SpaceToDepth(4) moves each 4x4 block into the channels (a 4x4 window with stride 4, by hand: unit u sees
pixels 4u .. 4u + 3); BlurPool2d reflect-pads and applies a fixed binomial filter with a stride. Units of
small stacks are checked (interior units exactly, border units inside the clipped box: reflected
pixels lie inside it; every unit of the smallest maps, an even sample of about 40 with both corners
elsewhere), then sampled units of TResNet-M's own stem up to its first squeeze-excitation
(whose global mean would make every later unit see the whole image).
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

import torch.nn as nn  # noqa: E402
from test_dense_models import _compare, _oracle_copy, _support  # noqa: E402
from test_resample_oracle import _check  # noqa: E402
from timm.layers import BlurPool2d, SpaceToDepth  # noqa: E402

import rf_widgets as rfw  # noqa: E402
from rf_widgets.errors import UnknownOperationWarning  # noqa: E402


@pytest.mark.parametrize(("filt_size", "stride"), [(3, 2), (5, 2), (3, 1)])
def test_blur_pool_every_unit(filt_size, stride):
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), BlurPool2d(3, filt_size, stride), nn.Conv2d(3, 2, 3))
    assert _check(model, (13, 11), units_per_layer=40) > 0


def test_blur_pool_whose_reflection_reaches_past_its_window_is_unknown():
    # filter 4, stride 2: padding 2, and the reflection of position -2 is pixel 2, past the window of
    # unit 0 (positions -2 .. 1): the gradient of unit 0 reaches pixel 2, which no padding box explains
    model = nn.Sequential(nn.Conv2d(2, 3, 3), BlurPool2d(3, 4, 2))
    with pytest.warns(UnknownOperationWarning, match="no receptive-field rule for '1'"):
        result = rfw.analyze(model, 16)
    assert result.layers[1].status == "unknown"
    assert "reflect padding 2 reaches past its window" in result.diagnostics[0].message


def test_space_to_depth_every_unit():
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), SpaceToDepth(4), nn.Conv2d(48, 2, 3, padding=1))
    result = rfw.analyze(model, 24)
    assert (result.layers[1].r_max, result.layers[1].jump) == ((6, 6), (4, 4))  # 3 + (4 - 1) x 1
    assert result.unit_box(result.layers[1].name, (2, 5)) == rfw.Box((7, 19), (12, 24), (9.5, 21.5))
    assert _check(model, (24, 24), units_per_layer=40) > 0


@pytest.mark.parametrize("train", [False, True])
def test_tresnet_has_no_unknown_layer(train):
    model = timm.create_model("tresnet_m", pretrained=False).train(train)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownOperationWarning)
        result = rfw.analyze(model, 224)
    assert not [layer.name for layer in result.layers if layer.status == "unknown"]
    s2d, conv1 = result.layer("body.s2d"), result.layer("body.conv1.conv")
    assert (s2d.r_max, s2d.jump, s2d.feature_map) == ((4, 4), (4, 4), (56, 56))
    assert (conv1.r_max, conv1.jump) == ((12, 12), (4, 4))  # 4 + (3 - 1) x 4
    aa = result.layer("body.layer2.0.conv1.aa")
    assert (aa.kernel, aa.stride, aa.padding) == ((3, 3), (2, 2), ((1, 1), (1, 1)))


@pytest.mark.slow
def test_tresnet_stem_against_the_gradient():
    model = timm.create_model("tresnet_m", pretrained=False).eval()
    result = rfw.analyze(model, 96)
    twin = _oracle_copy(model)
    body = twin.body
    prefix = nn.Sequential(body.s2d, body.conv1, body.layer1[0].conv1, body.layer1[0].conv2)
    x = torch.rand(1, 3, 96, 96, dtype=torch.float64, requires_grad=True)
    out = prefix(x)
    layer = "body.layer1.0.conv2.bn"
    assert result.layer(layer).feature_map == tuple(out.shape[2:]) == (24, 24)
    exact = 0
    for unit in [(0, 0), (1, 2), (5, 9), (12, 13), (23, 23), (22, 0)]:
        exact += _compare(result, layer, unit, _support(out, x, unit), (96, 96))
    assert exact >= 12  # r 28 at jump 4: most edges lie inside the 96-px image
