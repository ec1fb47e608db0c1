"""Segmentation, detection backbones, video classifiers and Swin: no unknown layer, named outputs, and
feature maps and unit boxes checked against the real modules.

The oracle is the gradient support of a float64 copy of the model with positive weights scaled by
their fan-in (nothing cancels, nothing overflows) and max pools replaced by average pools of the same
window (a max pool passes its gradient to one pixel of the window; its field is the whole window).
No interpolation weight here falls on a rounded sample position (scales are powers of two), so any
positive gradient counts. A box edge that lies inside the image must be exactly the extreme pixel
with a non-zero gradient; the whole support must lie inside the box clipped to the image.
"""

from __future__ import annotations

import copy
import math
import warnings

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import torch.nn as nn  # noqa: E402
from torchvision.models import detection, segmentation, video  # noqa: E402

import rf_widgets as rfw  # noqa: E402
from rf_widgets.errors import ModelImportError, UnknownOperationWarning  # noqa: E402

SEGMENTATION = {
    "fcn_resnet50": ("out", "aux"),
    "deeplabv3_resnet50": ("out", "aux"),
    "deeplabv3_mobilenet_v3_large": ("out", "aux"),
    "lraspp_mobilenet_v3_large": ("out",),
}
DETECTION = {
    "fasterrcnn_resnet50_fpn": ("0", "1", "2", "3", "pool"),
    "retinanet_resnet50_fpn": ("0", "1", "2", "p6", "p7"),
    "fcos_resnet50_fpn": ("0", "1", "2", "p6", "p7"),
    "ssdlite320_mobilenet_v3_large": ("0", "1", "2", "3", "4", "5"),
}
VIDEO = ("r3d_18", "mc3_18", "r2plus1d_18", "s3d")


def _quiet_analyze(model, size, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownOperationWarning)
        return rfw.analyze(model, size, **kwargs)


def _oracle_copy(model: nn.Module) -> nn.Module:
    twin = copy.deepcopy(model).double().eval()
    for module in list(twin.modules()):
        for child_name, child in list(module.named_children()):
            pools = {nn.MaxPool2d: nn.AvgPool2d, nn.MaxPool3d: nn.AvgPool3d}
            if type(child) in pools:
                average = pools[type(child)]
                setattr(
                    module,
                    child_name,
                    average(child.kernel_size, child.stride, child.padding, child.ceil_mode),
                )
    torch.manual_seed(0)
    with torch.no_grad():
        for p in twin.parameters():
            fan_in = math.prod(p.shape[1:]) if p.dim() > 1 else 1
            p.uniform_(0.5, 1.5).div_(fan_in)
    return twin


def _support(
    output: torch.Tensor,
    x: torch.Tensor,
    unit: tuple[int, ...],
    channels_last: bool = False,
    floor: float = 0.0,
):
    index = (0, *unit, slice(None)) if channels_last else (0, slice(None), *unit)
    (grad,) = torch.autograd.grad(output[index].sum(), x, retain_graph=True)
    grad = grad.abs().sum(dim=(0, 1))
    keep = grad > floor * float(grad.max())  # one corner path among millions is still positive
    spans = []
    for axis in range(grad.dim()):
        others = tuple(a for a in range(grad.dim()) if a != axis)
        idx = torch.nonzero(keep.any(dim=others) if others else keep).flatten()
        spans.append((int(idx.min()), int(idx.max())))
    return spans


def _compare(result, layer: str, unit, support, size) -> int:
    box = result.unit_box(layer, unit, path="hull")
    exact = 0
    for (lo, hi), a, b, n in zip(support, box.start, box.stop, size, strict=True):
        assert max(a, 0) <= lo, (layer, unit, support, box)
        assert hi <= min(b, n - 1), (layer, unit, support, box)
        if a >= 0:
            assert lo == a, (layer, unit, support, box)
            exact += 1
        if b <= n - 1:
            assert hi == b, (layer, unit, support, box)
            exact += 1
    return exact


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SEGMENTATION))
def test_segmentation_models(name):
    model = segmentation.__dict__[name](
        weights=None, weights_backbone=None, **({"aux_loss": True} if "aux" in SEGMENTATION[name] else {})
    )
    result = _quiet_analyze(model, 96, name=name)
    assert tuple(result.outputs) == SEGMENTATION[name]
    twin = _oracle_copy(model)
    x = torch.rand(1, 3, 96, 96, dtype=torch.float64, requires_grad=True)
    outputs = twin(x)
    for label in SEGMENTATION[name]:
        out = result.outputs[label]
        assert out.feature_map == tuple(outputs[label].shape[2:]) == (96, 96)
        assert out.jump == (1, 1)
    if name == "fcn_resnet50":  # no global branch: every unit's box is a local hull
        exact = 0
        for unit in [(0, 0), (95, 95), (40, 40), (41, 43)]:
            exact += _compare(
                result, result.outputs["out"].name, unit, _support(outputs["out"], x, unit), (96, 96)
            )
        assert exact == 0  # r_max 451 exceeds 96: every edge lies outside, the support fills the image
    else:  # ASPP / LRASPP pool the whole map: the output is global, with a local part
        assert result.outputs["out"].r_max == (math.inf, math.inf)
        assert result.outputs["out"].r_max_local is not None
        for unit in [(0, 0), (95, 95), (41, 43)]:  # the box is the whole image, corners included
            assert _reaches_every_pixel(outputs["out"], x, unit), unit


def _reaches_every_pixel(output: torch.Tensor, x: torch.Tensor, unit: tuple[int, ...]) -> bool:
    (grad,) = torch.autograd.grad(output[(0, slice(None), *unit)].sum(), x, retain_graph=True)
    return bool((grad.abs().sum(dim=(0, 1)) > 0).all())


class _Detached(nn.Module):
    """A global pool whose output passes no gradient: only the local paths reach the input."""

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x).detach()


def _local_paths_only(twin: nn.Module) -> nn.Module:
    for module in list(twin.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d):  # ASPP pooling, LRASPP scale, SE blocks
                setattr(module, child_name, _Detached(child))
    return twin


# An output's box is exact where its edges fall inside the image; the fields of these outputs span
# hundreds of pixels (FCN 451, LRASPP 691, DeepLabV3's ASPP 1859 on its local paths), so the input is a
# strip wider than the field: every edge along the width lies inside for the units away from the ends.
GLOBAL_BRANCHES = {  # name: (input size, {output: units}, box edges inside the image)
    # out: both width edges inside (2 + 2); aux (r 59): one width edge at each unit near an end
    "deeplabv3_mobilenet_v3_large": (
        (16, 1920),
        {"out": [(0, 960), (15, 968)], "aux": [(0, 0), (3, 5), (15, 1919)]},
        7,
    ),
    "lraspp_mobilenet_v3_large": ((32, 736), {"out": [(0, 368), (5, 371), (31, 376)]}, 6),
}


@pytest.mark.slow
def test_fcn_boxes_are_exact_on_a_wide_input():
    model = segmentation.fcn_resnet50(weights=None, weights_backbone=None, aux_loss=True)
    size = (32, 480)
    result = _quiet_analyze(model, size)
    twin = _oracle_copy(model)
    x = torch.rand(1, 3, *size, dtype=torch.float64, requires_grad=True)
    outputs = twin(x)
    exact = 0
    # corners, the middle, and neighbours in other phases of the 8x bilinear upsampling
    for label, units in {
        "out": [(0, 0), (16, 240), (19, 243), (31, 479)],
        "aux": [(3, 5), (16, 240)],
    }.items():
        for unit in units:
            support = _support(outputs[label], x, unit)
            exact += _compare(result, result.outputs[label].name, unit, support, size)
    # height 32 lies inside every box; along the width: one edge at the ends, two in the middle
    assert exact == 1 + 2 + 2 + 1 + 1 + 2


@pytest.mark.slow
@pytest.mark.parametrize("name", list(GLOBAL_BRANCHES))
def test_local_paths_of_global_branches_are_exact(name):
    size, units, inside = GLOBAL_BRANCHES[name]
    model = segmentation.__dict__[name](
        weights=None, weights_backbone=None, **({"aux_loss": True} if "aux" in units else {})
    )
    result = _quiet_analyze(model, size)
    twin = _local_paths_only(_oracle_copy(model))
    x = torch.rand(1, 3, *size, dtype=torch.float64, requires_grad=True)
    outputs = twin(x)
    exact = 0
    for label, chosen in units.items():
        out = result.outputs[label]
        assert out.r_max[0] == math.inf  # the analysis knows the unit sees everything ...
        for unit in chosen:  # ... and its local box is exactly what the local paths reach
            exact += _compare(result, out.name, unit, _support(outputs[label], x, unit), size)
    assert exact == inside


def test_segmentation_spec_string_and_cli(capsys):
    from rf_widgets.__main__ import main

    result = rfw.analyze("torchvision:lraspp_mobilenet_v3_large", 64)
    assert result.outputs["out"].feature_map == (64, 64)
    assert main(["torchvision:lraspp_mobilenet_v3_large", "--resolution", "64", "--summary"]) in (0, None)
    assert "lraspp_mobilenet_v3_large at 64x64" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("name", list(DETECTION))
def test_detection_backbones(name):
    size = 320 if name.startswith("ssd") else 256
    model = detection.__dict__[name](weights=None, weights_backbone=None)
    with pytest.raises(ModelImportError, match=r"model\.backbone"):
        rfw.analyze(model, size)
    result = _quiet_analyze(model.backbone, size, name=name)
    assert tuple(result.outputs) == DETECTION[name]
    twin = _oracle_copy(model.backbone)
    x = torch.rand(1, 3, size, size, dtype=torch.float64, requires_grad=True)
    outputs = twin(x)
    for label in DETECTION[name]:
        assert result.outputs[label].feature_map == tuple(outputs[label].shape[2:]), label
    if name == "fasterrcnn_resnet50_fpn":
        level = result.outputs["0"]  # stride 4, with the top-down path upsampled from stride 32
        assert level.jump == (4, 4)
        exact = 0
        for unit in [(0, 0), (1, 1), (2, 3)]:  # near the corner the far edges lie inside the image
            exact += _compare(result, level.name, unit, _support(outputs["0"], x, unit), (size, size))
        assert exact > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", VIDEO)
def test_video_classifiers(name):
    size = (8, 64, 64) if name != "s3d" else (16, 96, 96)
    model = video.__dict__[name]()
    result = _quiet_analyze(model, size, name=name)
    assert result.input_size == size
    assert result.layers[-1].status == "global"
    twin = _oracle_copy(model)
    x = torch.rand(1, 3, *size, dtype=torch.float64, requires_grad=True)
    if name == "s3d":
        prefix, layer = twin.features[:3], "features.2.2"  # separable stem conv, pool, 1x1x1 conv
    else:
        prefix, layer = nn.Sequential(twin.stem, twin.layer1), "layer1.1.relu"
    out = prefix(x)
    assert result.layer(layer).feature_map == tuple(out.shape[2:])
    exact = 0
    n = out.shape[2:]
    for unit in [(0, 0, 0), (n[0] // 2, n[1] // 2, n[2] // 2), (n[0] - 1, n[1] - 1, n[2] - 1)]:
        exact += _compare(result, layer, unit, _support(out, x, unit), size)
    assert exact >= 6  # the time axis too


SWIN_T_STAGES = {  # layer: (r_max, jump, feature map) at 224
    "features.1.1.attn.shifted_window_attention": (56, 4, 56),
    "features.3.1.attn.shifted_window_attention": (168, 8, 28),
    "features.5.5.attn.shifted_window_attention": (840, 16, 14),
}


def test_swin_t_stages_grow_then_turn_global():
    result = _quiet_analyze(torchvision.models.swin_t(), 224)
    for layer, (r, jump, size) in SWIN_T_STAGES.items():
        got = result.layer(layer)
        assert (got.r_max, got.jump, got.feature_map) == ((r, r), (jump, jump), (size, size))
    last = result.layer("features.7.1.attn.shifted_window_attention")
    assert last.status == "global"  # one 7x7 window covers the 7x7 map
    assert result.at(448).layer("features.7.1.attn.shifted_window_attention").r_max[0] < math.inf


@pytest.mark.slow
def test_swin_t_unit_boxes_against_the_gradient():
    model = torchvision.models.swin_t()
    result = _quiet_analyze(model, 224)
    twin = _oracle_copy(model)
    x = torch.rand(1, 3, 224, 224, dtype=torch.float64, requires_grad=True)
    exact = 0
    for stop, layer in ((2, "features.1.1.add:2"), (4, "features.3.1.add:2")):
        out = twin.features[:stop](x)  # (N, H, W, C)
        n = out.shape[1]
        for unit in [(0, 0), (3, 4), (n // 2, n // 2 + 1), (n - 1, n - 2), (n - 4, 2)]:
            # Swin masks attention across the shifted windows' seams by adding -100 to the logits, so
            # masked tokens keep a weight of e^-100 (4e-44): far below 1e-30 of the largest gradient.
            support = _support(out, x, unit, channels_last=True, floor=1e-30)
            exact += _compare(result, layer, unit, support, (224, 224))
    assert exact >= 12


@pytest.mark.slow
@pytest.mark.parametrize("name", ["swin_s", "swin_b", "swin_v2_t", "swin_v2_s", "swin_v2_b"])
def test_other_swin_models_have_no_unknown_layer(name):
    import meta_models  # built on the meta device: the analysis reads shapes only

    size = 256 if "v2" in name else 224
    with torch.device("meta"):
        result = _quiet_analyze(meta_models.torchvision_model(name), size)
    attention = [layer for layer in result.layers if layer.op == "shifted_window_attention"]
    assert attention
    assert attention[0].r_max[0] < math.inf
    assert attention[-1].status == "global"


@pytest.mark.slow
def test_maxvit_block_attention_is_local_and_grid_attention_global():
    result = _quiet_analyze(torchvision.models.maxvit_t(), 224)
    window = "blocks.{}.layers.0.layers.window_attention.attn_layer.1.softmax"
    grid = "blocks.{}.layers.0.layers.grid_attention.attn_layer.1.softmax"
    # 7x7 windows on maps of 56, 28 and 14 (jumps 4, 8, 16): local, r_min grows by 6 jumps ...
    for stage, (r_min, jump, size) in enumerate([(35, 4, 56), (67, 8, 28), (131, 16, 14)]):
        layer = result.layer(window.format(stage))
        assert (layer.r_min, layer.jump, layer.feature_map) == ((r_min, r_min), (jump, jump), (size, size))
        assert result.layer(grid.format(stage)).status == "global"  # every window at once
        assert result.layer(grid.format(stage)).feature_map == (size, size)
    # ... and global where one window covers the 7x7 map
    assert result.layer(window.format(3)).status == "global"
