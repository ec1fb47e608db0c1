"""Exports round-trip for every layer kind (issue 24): the Python code of ``editing.to_python`` and the
JSON/YAML stack files are written, read back and analysed again, and give the same receptive fields.

``to_python`` raised KeyError 'windows' / 'upsample' on Swin, MaxViT and FCN stacks before.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import rf_widgets as rfw
from rf_widgets.editing import to_python
from rf_widgets.stackfile import write_stack

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

FIELDS = ("name", "op", "inputs", "kernel", "stride", "dilation", "padding", "r_min", "r_max", "jump")
MORE = ("effective_padding", "feature_map", "status", "r_max_local")


class UNet(nn.Module):
    """Two levels down and up: a transposed convolution, an interpolation to a skip's size, concats."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = nn.Conv2d(3, 8, 3, padding=1)
        self.enc2 = nn.Conv2d(8, 16, 3, padding=1)
        self.mid = nn.Conv2d(16, 16, 3, padding=1)
        self.up2 = nn.ConvTranspose2d(16, 16, 2, stride=2)
        self.dec2 = nn.Conv2d(32, 8, 3, padding=1)
        self.dec1 = nn.Conv2d(16, 4, 3, padding=1)

    def forward(self, x: Any) -> Any:
        e1 = F.relu(self.enc1(x))
        e2 = F.relu(self.enc2(F.max_pool2d(e1, 2)))
        m = F.relu(self.mid(F.max_pool2d(e2, 2)))
        d2 = F.relu(self.dec2(torch.cat([self.up2(m), e2], 1)))
        up1 = F.interpolate(d2, size=e1.shape[-2:], mode="bilinear", align_corners=False)
        return self.dec1(torch.cat([up1, e1], 1))


def _swin() -> Any:
    timm = pytest.importorskip("timm")
    return timm.create_model("swin_tiny_patch4_window7_224", pretrained=False), 224


def _maxvit() -> Any:
    pytest.importorskip("timm")
    from timm.models.maxxvit import MaxxVit, MaxxVitCfg, MaxxVitConvCfg, MaxxVitTransformerCfg

    cfg = MaxxVitCfg(
        embed_dim=(8, 16),
        depths=(1, 1),
        block_type=("M", "M"),
        stem_width=8,
        conv_cfg=MaxxVitConvCfg(attn_layer=None),
        transformer_cfg=MaxxVitTransformerCfg(dim_head=8, partition_ratio=16),
    )
    return MaxxVit(cfg, img_size=64, num_classes=3), 64


def _fcn() -> Any:
    segmentation = pytest.importorskip("torchvision.models.segmentation")
    return segmentation.fcn_resnet50(weights=None, weights_backbone=None, num_classes=3), 96


def _deeplab() -> Any:
    segmentation = pytest.importorskip("torchvision.models.segmentation")
    return segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3), 96


def _unet() -> Any:
    return UNet(), 64


MODELS: dict[str, Callable[[], Any]] = {
    "swin": _swin,
    "maxvit": _maxvit,
    "fcn": _fcn,
    "deeplabv3": _deeplab,
    "unet": _unet,
}


def _fields(result: Any) -> list[dict[str, Any]]:
    return [{k: layer.to_dict()[k] for k in FIELDS + MORE} for layer in result.layers]


def _from_python(code: str) -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(code, "<to_python>", "exec"), namespace)  # the code this test just generated
    return namespace["stack"]


@pytest.mark.parametrize("family", list(MODELS))
def test_exports_round_trip(family: str, tmp_path: Path) -> None:
    model, size = MODELS[family]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        original = rfw.analyze(model, size)
    kinds = {layer.kind for layer in original.stack.layers}
    assert "resample" in kinds  # each family has windows, interpolation or a transposed convolution
    expected = _fields(original)
    json_path, yaml_path = tmp_path / "stack.json", tmp_path / "stack.yaml"
    write_stack(original.stack, json_path)
    write_stack(original.stack, yaml_path)
    for label, stack in (
        ("python", _from_python(to_python(original.stack))),
        ("json", rfw.load_stack(json_path)),
        ("yaml", rfw.load_stack(yaml_path)),
    ):
        again = rfw.analyze(stack, size)
        assert _fields(again) == expected, label
        resampled = [layer.resample for layer in stack.layers if layer.kind == "resample"]
        assert resampled == [layer.resample for layer in original.stack.layers if layer.kind == "resample"]
