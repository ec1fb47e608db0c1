"""Importing torch models: functional calls, layouts, unknown operations, fallbacks, model untouched."""

from __future__ import annotations

import math
import warnings

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import rf_widgets as rfw  # noqa: E402
from rf_widgets.errors import ModelImportError, UnknownOperationWarning  # noqa: E402


class Functional(nn.Module):
    """Stride and pooling written as functions: invisible to hook-based tools."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.left = nn.Conv2d(4, 4, 3, padding=2, dilation=2)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = F.max_pool2d(self.conv(x), 2)  # r 3 -> 4, jump 2
        a, b = x.chunk(2, dim=1)
        a = self.left(a)  # dilated 3x3 at jump 2: r 4 + 4 * 2 = 12
        x = torch.cat([a, b], dim=1)
        return self.fc(x.mean([2, 3]))


def test_functional_calls_are_layers():
    result = rfw.analyze(Functional(), 32)
    pool = result.layer("max_pool2d")
    assert (pool.kernel, pool.stride, pool.r_max, pool.jump) == ((2, 2), (2, 2), (4, 4), (2, 2))
    assert result.layer("left").r_max == (12, 12)
    cat = result.layer("concat")
    assert cat.inputs == ("left", "max_pool2d")
    assert (cat.r_min, cat.r_max) == ((4, 4), (12, 12))
    assert result.layer("mean").status == "global"
    assert result.layer("fc").r_max == (math.inf, math.inf)


class Squeeze(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 5)
        self.fc1 = nn.Conv2d(8, 2, 1)
        self.fc2 = nn.Conv2d(2, 8, 1)

    def forward(self, x):
        x = self.conv(x)
        scale = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return x * scale


def test_squeeze_excitation_has_local_and_global_paths():
    result = rfw.analyze(Squeeze(), 32)
    gate = result.layer("mul")
    assert gate.r_max == (math.inf, math.inf)
    assert gate.r_max_local == (5, 5)
    assert gate.r_min == (5, 5)
    assert result.layer("adaptive_avg_pool2d").status == "global"


def test_torchvision_squeeze_excitation_is_not_elementwise():
    result = rfw.analyze(torchvision.models.efficientnet_b0(), 224)
    gates = [layer for layer in result.layers if layer.op == "mul" and layer.r_max[0] == math.inf]
    assert gates, "every MBConv block multiplies by a globally pooled gate"
    assert all(layer.r_max_local is not None and layer.r_max_local[0] < math.inf for layer in gates)


def test_vision_transformer_is_patch_embedding_then_global():
    result = rfw.analyze(torchvision.models.vit_b_16(), 224)
    patch = result.layer("conv_proj")
    assert (patch.r_max, patch.jump) == ((16, 16), (16, 16))
    after = result.layers[result.stack.index["conv_proj"] + 1 :]
    assert any(layer.op == "MultiheadAttention" for layer in after)
    attention = next(layer for layer in after if layer.op == "MultiheadAttention")
    assert attention.status == "global"
    # Patch tokens keep a local path through the residual connections ...
    last_block = result.layer("encoder.ln")
    assert (last_block.r_max, last_block.r_max_local, last_block.r_min) == (
        (math.inf,) * 2,
        (16, 16),
        (16, 16),
    )
    # ... the class token, concatenated as a constant, sees the image only through attention.
    assert result.layer("select").status == "global"
    assert result.layer("heads.head").status == "global"
    assert all(layer.status != "unknown" for layer in result.layers)


def test_convnext_channels_last_linear_is_pointwise():
    result = rfw.analyze(torchvision.models.convnext_tiny(), 224)
    mlp = result.layer("features.1.0.block.3")  # Linear on (N, H, W, C)
    assert mlp.status != "global"
    assert mlp.r_max == result.layer("features.1.0.block.0").r_max


@pytest.mark.parametrize(
    "layer",
    [nn.ConvTranspose2d(4, 4, 2, stride=2), nn.Upsample(scale_factor=2), nn.PixelShuffle(1)],
)
def test_upsampling_has_an_exact_rule(layer):
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), layer, nn.Conv2d(4, 4, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownOperationWarning)
        result = rfw.analyze(model, 32)
    assert result.layer("1").status == "productive"
    expected = (2, 2) if isinstance(layer, nn.PixelShuffle) else (1, 1)  # a shuffle by 1 keeps the jump
    assert result.layer("2").jump == expected


def test_interpolate_to_the_input_size_follows_the_input():
    class Up(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, stride=4)

        def forward(self, x):
            return F.interpolate(self.conv(x), size=x.shape[-2:], mode="bilinear", align_corners=False)

    result = rfw.analyze(Up(), 32)
    assert result.layers[-1].feature_map == (32, 32)
    assert result.at(48).layers[-1].feature_map == (48, 48)
    assert result.layers[-1].jump == (1, 1)


class ShapeBranch(nn.Module):
    """Python control flow on the values: neither symbolic tracing nor torch.export can follow it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        if x.amax() > 8:
            return self.conv(x)
        return x


class Outer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3)
        self.branch = ShapeBranch()
        self.head = nn.Conv2d(4, 4, 3)

    def forward(self, x):
        return self.head(self.branch(self.stem(x)))


def test_untraceable_submodule_becomes_an_opaque_leaf():
    with pytest.warns(UnknownOperationWarning, match="branch"):
        result = rfw.analyze(Outer(), 32)
    assert "opaque" in result.stack.metadata["import_method"]
    assert "torch.export failed too" in result.stack.metadata["import_method"]
    assert result.stack.metadata["opaque_modules"] == ("branch",)
    assert result.layer("branch").status == "unknown"
    assert result.layer("head").status == "productive"


class RootBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3)

    def forward(self, x):
        if x.sum() > 0:
            return self.conv(x)
        return x


def test_untraceable_root_names_the_failing_call():
    with pytest.raises(ModelImportError, match=r"RootBranch.*forward"):
        rfw.analyze(RootBranch(), 32)


@pytest.mark.parametrize("thing", [42, "not a spec", {"conv": 3}, nn.Conv2d])
def test_non_models_are_rejected(thing):
    with pytest.raises(ModelImportError):
        rfw.analyze(thing, 32)


def _snapshot(model: nn.Module):
    return (
        {name: t.detach().clone() for name, t in model.state_dict().items()},
        [(name, m.training) for name, m in model.named_modules()],
        [(name, dict(m._forward_hooks), dict(m._forward_pre_hooks)) for name, m in model.named_modules()],
        [(name, p.requires_grad, p.device) for name, p in model.named_parameters()],
    )


def _assert_same(model: nn.Module, before) -> None:
    state, flags, hooks, params = _snapshot(model)
    assert state.keys() == before[0].keys()
    for name, tensor in state.items():
        assert torch.equal(tensor, before[0][name]), name
    assert flags == before[1]
    assert hooks == before[2]
    assert params == before[3]


@pytest.mark.parametrize("name", ["resnet18", "vit_b_16", "shufflenet_v2_x0_5", "googlenet"])
@pytest.mark.parametrize("train", [True, False])
def test_model_is_left_as_found(name, train):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # googlenet's note about its initialisation
        model = torchvision.models.get_model(name)
    model.train(train)
    model.layer_flag = "kept"  # an attribute of the user's own
    seen = []
    handle = model.register_forward_hook(lambda *args: seen.append(1))
    before = _snapshot(model)
    rfw.analyze(model, 64)
    _assert_same(model, before)
    assert model.layer_flag == "kept"
    handle.remove()


def test_model_is_left_as_found_after_a_failure():
    model = RootBranch()
    model.eval()
    model.conv.train()
    before = _snapshot(model)
    with pytest.raises(ModelImportError):
        rfw.analyze(model, 32)
    _assert_same(model, before)


def test_reanalysis_does_not_retrace(monkeypatch):
    result = rfw.analyze(torchvision.models.resnet18(), 224)
    import rf_widgets.torch_import.tracing as tracing

    def fail(*args, **kwargs):
        raise AssertionError("traced again")

    monkeypatch.setattr(tracing, "trace", fail)
    again = result.at(32)
    assert again.border_layer == "layer3.0.conv2"


def test_module_called_twice_gets_numbered_names():
    result = rfw.analyze(torchvision.models.resnet18(), 224)
    names = [layer.name for layer in result.layers]
    assert "layer1.0.relu" in names
    assert "layer1.0.relu:2" in names
    assert len(names) == len(set(names))


def test_a_model_on_the_meta_device_imports_like_its_cpu_twin():
    """Reshapes need shapes from the fake-tensor pass; its placeholder must live where the weights do."""
    with torch.device("meta"):
        meta = torchvision.models.vit_b_16()
    cpu = torchvision.models.vit_b_16()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unknown reshape would warn
        on_meta = rfw.analyze(meta, 224)
    assert on_meta.to_dict()["layers"] == rfw.analyze(cpu, 224).to_dict()["layers"]
    assert all(p.device.type == "meta" for p in meta.parameters())
