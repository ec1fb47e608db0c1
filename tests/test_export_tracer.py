"""The second tracer: models torch.fx cannot trace are read through torch.export."""

from __future__ import annotations

import math
import warnings

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import torch.nn as nn  # noqa: E402

import rf_widgets as rfw  # noqa: E402
from rf_widgets.errors import ModelImportError  # noqa: E402
from rf_widgets.torch_import import tracing  # noqa: E402


class SizeBranch(nn.Module):
    """Python control flow on the input size and ``torch.finfo`` on its dtype: torch.fx stops at both."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.down = nn.Conv2d(8, 8, 3, stride=2)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = self.stem(x) * torch.finfo(x.dtype).eps
        if x.shape[-1] > 16:
            x = self.down(x)
        x = torch.relu(x) + x
        return self.head(self.pool(x).mean((2, 3)))


def test_a_model_fx_cannot_trace_is_exported():
    model = SizeBranch()
    with pytest.raises(Exception, match=r"finfo|symbolically traced"):
        torch.fx.symbolic_trace(model)
    result = rfw.analyze(model, 32)
    assert result.stack.metadata["tracer"] == "torch.export"
    # hand-computed: 3x3 (r 3), 3x3 stride 2 (r 5, J 2), 2x2 pool stride 2 (r 7, J 4)
    assert result.layer("stem").r_max == (3, 3)
    assert (result.layer("down").r_max, result.layer("down").jump) == ((5, 5), (2, 2))
    assert (result.layer("pool").r_max, result.layer("pool").jump) == ((7, 7), (4, 4))
    assert result.layer("mean").r_max == (math.inf, math.inf)
    # functions are named by op, as after a torch.fx trace; the torch.finfo product is a pointwise mul
    assert [layer.name for layer in result.stack.layers] == [
        "stem", "mul", "down", "relu", "add", "pool", "mean", "head",
    ]  # fmt: skip
    assert result.layer("add").inputs == ("relu", "down")


def test_the_result_says_which_tracer_was_used():
    result = rfw.analyze(SizeBranch(), 32)
    notes = [d for d in result.to_dict()["diagnostics"] if d["kind"] == "traced-with-export"]
    assert len(notes) == 1
    assert notes[0]["layer"] is None
    assert "torch.export at 224x224" in notes[0]["message"]
    assert "torch.fx could not trace SizeBranch" in notes[0]["message"]
    assert "traced with torch.export" in result.summary()
    assert "traced with" not in rfw.analyze(nn.Conv2d(3, 3, 3), 32).summary()


def test_the_exported_graph_holds_at_the_reference_size_only():
    """Control flow on the size is fixed where export ran (224, the default): the branch is taken."""
    result = rfw.analyze(SizeBranch(), 16)
    assert "down" in result.stack.names
    assert "fixed at that size" in result.diagnostics[0].message


class DataBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        if x.sum() > 0:  # on the values: neither tracer can follow it
            return self.bn(self.conv(x))
        return x


def test_when_both_tracers_fail_the_error_names_both_and_the_model_is_untouched():
    model = DataBranch().train()
    handle = model.conv.register_forward_hook(lambda *args: None)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ModelImportError) as caught:
        rfw.analyze(model, 32)
    message = str(caught.value)
    assert "torch.fx could not trace DataBranch" in message
    assert "torch.export failed too" in message
    assert model.training
    assert model.bn.training
    assert list(model.conv._forward_hooks) == [handle.id]
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_an_exported_model_is_left_as_found():
    model = nn.Sequential(nn.BatchNorm2d(3), SizeBranch()).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    result = rfw.analyze(model, 32)
    assert result.stack.metadata["tracer"] == "torch.export"
    assert all(m.training for m in model.modules())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


# -- both tracers on torchvision's classifiers ------------------------------------------------------------

SAMPLE = (
    "alexnet", "vgg11", "resnet18", "mobilenet_v2", "mobilenet_v3_small", "mnasnet0_5", "googlenet",
    "squeezenet1_0", "shufflenet_v2_x0_5", "efficientnet_b0",
)  # fmt: skip


def _exported(model: nn.Module, size: int, monkeypatch: pytest.MonkeyPatch) -> rfw.Analysis:
    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("torch.fx switched off for this test")

    with monkeypatch.context() as patch:
        patch.setattr(tracing, "_fx_trace", refuse)
        return rfw.analyze(model, size)


def _without(document: dict, gone: set[str]) -> dict:
    """The analysis with the layers in ``gone`` bypassed (their consumers read their inputs)."""
    layers = {layer["name"]: layer for layer in document["layers"]}

    def through(name: str) -> list[str]:
        return [n for i in layers[name]["inputs"] for n in through(i)] if name in gone else [name]

    kept = []
    for layer in document["layers"]:
        if layer["name"] not in gone:
            inputs = [n for i in layer["inputs"] for n in through(i)]
            kept.append({**layer, "inputs": list(dict.fromkeys(inputs))})
    out = {**document, "layers": kept}
    out["unproductive_layers"] = [n for n in document["unproductive_layers"] if n not in gone]
    out["diagnostics"] = [d for d in document["diagnostics"] if d["kind"] != "traced-with-export"]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", SAMPLE)
def test_both_tracers_give_the_same_analysis(name, monkeypatch):
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # googlenet's note on its initialisation
        model = torchvision.models.get_model(name).eval()
    traced = rfw.analyze(model, 64)
    exported = _exported(model, 64, monkeypatch)
    assert traced.stack.metadata["tracer"] == "torch.fx"
    assert exported.stack.metadata["tracer"] == "torch.export"
    # torchvision's stochastic depth returns its input in eval mode: a call that computes nothing
    # leaves no operator in the exported graph, so it has no layer there (and nothing else changes)
    gone = {layer.name for layer in traced.stack.layers if layer.op == "stochastic_depth"}
    assert set(traced.stack.names) - set(exported.stack.names) == gone
    assert _without(exported.to_dict(), set()) == _without(traced.to_dict(), gone)
