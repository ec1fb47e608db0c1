"""What the strategies build is an ordinary module: it pickles, keeps its containers, runs and exports."""

from __future__ import annotations

import io
import warnings

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
nn = torch.nn
F = nn.functional

import rf_widgets as rfw  # noqa: E402


def _round_trip(module: nn.Module) -> nn.Module:
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def _same_outputs(a: nn.Module, b: nn.Module, size: int) -> bool:
    a.eval()
    b.eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        return bool(torch.equal(a(x), b(x)))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "vgg11"])
def test_a_trimmed_model_saves_loads_and_exports(name):
    model = torchvision.models.get_model(name)
    trimmed = rfw.suggest(model, 32)["trim"].apply()
    loaded = _round_trip(trimmed)
    assert _same_outputs(trimmed, loaded, 32)
    x = torch.randn(1, 3, 32, 32)
    exported = torch.export.export(trimmed.eval(), (x,))
    with torch.no_grad():
        assert torch.allclose(exported.module()(x), trimmed(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated, but the original scripts
        torch.jit.script(model)
        scripted = torch.jit.script(trimmed)
    with torch.no_grad():
        assert torch.allclose(scripted(x), trimmed(x))


def test_a_trimmed_vgg_keeps_its_sequential_containers():
    model = torchvision.models.vgg11()
    trimmed = rfw.suggest(model, 32)["trim"].apply()
    assert isinstance(trimmed.features, nn.Sequential)
    assert isinstance(trimmed.features[0], nn.Conv2d)
    assert trimmed.features[0].weight.shape == model.features[0].weight.shape
    kept = [name for name, _ in trimmed.features.named_children()]
    assert kept == [name for name, _ in model.features.named_children()][: len(kept)]
    x = torch.randn(1, 3, 32, 32)
    trimmed.eval()
    model.eval()
    with torch.no_grad():  # the kept part computes what the original's first layers compute
        assert torch.equal(trimmed.features(x), model.features[: len(kept)](x))


class FunctionalPool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.c = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = F.max_pool2d(self.a(x), 2)
        x = F.max_pool2d(self.b(x), 2)
        x = F.max_pool2d(self.c(x), 2)
        return self.fc(x.mean((2, 3)))


def test_a_restrided_graph_module_saves_and_loads():
    plan = rfw.suggest(FunctionalPool(), 8)["slow-downsampling"]
    assert plan.applicable, plan.reason
    changed = plan.apply()
    assert isinstance(changed, torch.fx.GraphModule)  # the stride lived in the code
    assert _same_outputs(changed, _round_trip(changed), 8)
