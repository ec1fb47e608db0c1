"""The ONNX import of torchvision classifiers gives the torch import's fields, sizes and verdicts.

Each model is exported in the test with torch's exporter (``dynamo=True``, dynamic height and width so
that one file serves every size); tests/onnx_parity.py says how layers are matched. The full sweep over
every torchvision classifier is benchmarks/onnx_sweep.py (its results are listed in docs/onnx.md).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from onnx_parity import compare, windowed  # noqa: E402

import rf_widgets as rfw  # noqa: E402

REPRESENTATIVE = (
    "resnet18", "vgg11", "mobilenet_v2", "efficientnet_b0", "densenet121", "inception_v3",
    "convnext_tiny", "regnet_y_400mf", "squeezenet1_0", "shufflenet_v2_x0_5",
)  # fmt: skip


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx_exports")


def export(name: str, folder: Path) -> tuple[object, Path]:
    model = torchvision.models.get_model(name, weights=None).eval()
    path = folder / f"{name}.onnx"
    if not path.exists():
        size = 299 if name == "inception_v3" else 224
        dim = torch.export.Dim.AUTO
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (torch.randn(1, 3, size, size),), str(path), dynamo=True,
                dynamic_shapes=({2: dim, 3: dim},), verbose=False,
            )  # fmt: skip
    return model, path


@pytest.mark.slow
@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_onnx_import_matches_torch_import(name: str, export_dir: Path) -> None:
    model, path = export(name, export_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no operator of these models may be unknown
        problems = compare(model, str(path), (32, 64, 224))
    assert problems == []


@pytest.mark.slow
def test_parity_check_notices_a_difference(export_dir: Path) -> None:
    """The comparison is not blind: a stack with one kernel changed is reported."""
    from onnx_parity import compare_stacks

    import rf_widgets as rfw

    model, path = export("resnet18", export_dir)
    torch_stack = rfw.analyze(model, 32).stack
    onnx_stack = rfw.analyze(str(path), 32).stack
    target = windowed(onnx_stack)[5]
    changed = onnx_stack.replace(
        [layer if layer.name != target else rfw.Layer(**{**_fields(layer), "dilation": (2, 2)})
         for layer in onnx_stack.layers]
    )  # fmt: skip
    assert compare_stacks(torch_stack, onnx_stack, (32,)) == []
    assert compare_stacks(torch_stack, changed, (32,))


class Resampling(torch.nn.Module):
    """Interpolations, a transposed convolution, reflect padding, pixel (un)shuffle, a channels-last
    LayerNorm, a spatial slice and a ceil-mode pool: the exporter writes some as Resize, DepthToSpace,
    Pad and Slice, the pixel unshuffle as Reshape/Transpose/Reshape with its sizes computed by Div."""

    def __init__(self) -> None:
        super().__init__()
        nn = torch.nn
        self.c1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=2, dilation=2)
        self.up = nn.ConvTranspose2d(8, 8, 3, stride=2, padding=1, output_padding=1)
        self.c3 = nn.Conv2d(8, 32, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.unshuffle = nn.PixelUnshuffle(2)
        self.norm = nn.LayerNorm(32)
        self.c4 = nn.Conv2d(32, 8, 1)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        F = torch.nn.functional
        a = F.relu(self.c1(x))
        b = self.c2(a)
        s = (
            F.interpolate(b, scale_factor=2, mode="nearest")
            + F.interpolate(b, scale_factor=2, mode="bilinear", align_corners=False)
            + F.interpolate(b, scale_factor=2, mode="bicubic", align_corners=True)
            + self.up(b)
        )
        s = self.c3(F.pad(s, (1, 2, 0, 1), mode="reflect"))
        s = self.unshuffle(self.shuffle(s))
        s = self.norm(s.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.pool(self.c4(s)[:, :, 1:])


@pytest.mark.slow
def test_resampling_layers_match_the_torch_import(tmp_path: Path) -> None:
    model = Resampling().eval()
    path = tmp_path / "resampling.onnx"
    dim = torch.export.Dim.AUTO
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.randn(1, 3, 64, 64),), str(path), dynamo=True, dynamic_shapes=({2: dim, 3: dim},),
            verbose=False,
        )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stack = rfw.analyze(str(path), 64).stack
        assert [stack[n].op for n in windowed(stack)] == [
            "Conv", "Conv", "Resize", "Resize", "Resize", "ConvTranspose", "Pad", "Conv", "DepthToSpace",
            "Reshape", "Slice", "MaxPool",
        ]  # fmt: skip
        assert compare(model, str(path), (32, 57, 64)) == []


def _fields(layer: object) -> dict:
    from dataclasses import fields

    return {f.name: getattr(layer, f.name) for f in fields(layer)}  # type: ignore[arg-type]


def _tiny(family: str) -> tuple[object, int, bool]:
    """A small configuration of a torchvision transformer class: (model, export size, dynamic size)."""
    from torchvision.models import maxvit, swin_transformer, vision_transformer

    if family == "swin":  # one stage: patch embedding and two blocks, the second with shifted windows
        return swin_transformer.SwinTransformer([4, 4], 16, [2], [1], [7, 7]), 64, True
    if family == "swin_v2":
        model = swin_transformer.SwinTransformer(
            [4, 4], 16, [2], [1], [8, 8], block=swin_transformer.SwinTransformerBlockV2,
            downsample_layer=swin_transformer.PatchMergingV2,
        )  # fmt: skip
        return model, 64, True
    if family == "maxvit":  # its grid partition is fixed by input_size: the file holds 224's
        model = maxvit.MaxVit(
            input_size=(224, 224), stem_channels=8, partition_size=4, block_channels=[8, 16],
            block_layers=[1, 1], head_dim=4, stochastic_depth_prob=0.0, num_classes=10,
        )  # fmt: skip
        return model, 224, True
    # VisionTransformer checks the input size: exported at its one size
    return vision_transformer.VisionTransformer(32, 8, 1, 2, 16, 16), 32, False


TINY_SIZES = {"swin": (32, 57, 64, 224), "swin_v2": (32, 57, 64, 224), "maxvit": (64, 224), "vit": (32,)}


@pytest.mark.slow
@pytest.mark.parametrize("family", ["vit", "maxvit", "swin", "swin_v2"])
def test_windowed_attention_matches_the_torch_import(family: str, tmp_path: Path) -> None:
    """Swin's shifted windows (pad, roll, partition, mask), MaxViT's block and grid partitions and ViT's
    head split, as torch's exporter writes them, give the torch import's fields and verdicts."""
    torch.manual_seed(0)
    model, size, dynamic = _tiny(family)
    model.eval()
    path = tmp_path / f"{family}.onnx"
    dim = torch.export.Dim.AUTO
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.randn(1, 3, size, size),), str(path), dynamo=True,
            dynamic_shapes=({2: dim, 3: dim},) if dynamic else None, verbose=False,
        )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no operator of the ONNX file may be unknown
        stack = rfw.analyze(str(path), size).stack
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the torch import of the tiny ViT at 32 has unknown layers
        problems = compare(model, str(path), TINY_SIZES[family])
    assert problems == []
    windows = [layer.resample for layer in stack.layers if layer.kind == "resample"]
    if family.startswith("swin"):
        w = 7 if family == "swin" else 8
        assert {(r.window, r.shift) for r in windows if r is not None} == {
            ((w, w), (0, 0)),
            ((w, w), (w // 2,) * 2),
        }
    if family == "maxvit":
        assert {r.window for r in windows if r is not None} == {(4, 4), (1 << 30, 1 << 30)}
