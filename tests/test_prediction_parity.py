"""The search's predictions against the networks it builds (issue 21: one engine for predictions).

For every candidate of :func:`search` within the budget, the predicted parameters and multiply-adds must
equal torch's FLOP counter on the built module and a fresh :func:`rfw.analyze` of it, and its predicted
verdicts the fresh analysis's. The models include SAME padding (timm ``Conv2dSame``, TensorFlow-ported
EfficientNet), whose output size depends on the stride: the search once predicted those sizes with a
compiled size step that ignored the padding rule.

The models are built on the meta device (no weights: only shapes matter); the FLOP counter runs on
uninitialised CPU tensors (``to_empty``), which is much faster than meta tensors through batch norm.
"""

from __future__ import annotations

import pytest

import rf_widgets as rfw
from rf_widgets.core.graph import Stack
from rf_widgets.core.results import analyze_stack
from rf_widgets.strategies import search

torch = pytest.importorskip("torch")
nn = torch.nn


def _declared_same() -> list[rfw.Layer]:
    return [
        rfw.conv("c1", 5, stride=2, padding="same"),
        rfw.conv("c2", 3, stride=2, padding="same"),
        rfw.pool("p1", 3, stride=2, padding="same"),
        rfw.conv("c3", 3, padding="same"),
        rfw.conv("c4", 3, stride=2, padding="same"),
        rfw.conv("c5", 3, padding="same"),
    ]


@pytest.mark.parametrize("size", [33, 40])
def test_declared_same_padding_evaluation_equals_the_analysis(size):
    front = search(_declared_same(), size, budget=8.0)
    allowed = [c for c in front if not c.refused]
    assert len(allowed) > 4
    for c in allowed:
        fresh = analyze_stack(Stack(list(c.stack.layers), c.stack.ndim, "fresh"), c.input_size)
        for found in (c.analysis, fresh):
            assert list(found.sizes) == list(c.evaluation.sizes), c.label
            assert found.verdicts == c.evaluation.verdicts, c.label
            assert sum(layer.macs for layer in found.layers) == c.macs, c.label
            assert sum(layer.params for layer in found.layers) == c.params, c.label
        spatial_bad = tuple(n for n in fresh.unproductive_layers if fresh.layer(n).spatial)
        assert spatial_bad == c.unproductive, c.label


def _conv2d_same_net():
    layers = pytest.importorskip("timm.layers")
    same = layers.Conv2dSame
    return nn.Sequential(
        same(3, 8, 5, stride=2),
        nn.ReLU(),
        same(8, 16, 3, stride=2),
        nn.ReLU(),
        same(16, 16, 3, stride=2),
        nn.ReLU(),
        same(16, 32, 3),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )


def _timm(name):
    timm = pytest.importorskip("timm")
    return timm.create_model(name)


def _torchvision(name):
    torchvision = pytest.importorskip("torchvision")
    return getattr(torchvision.models, name)()


MODELS = {  # the model, its input size, the budget, how many candidates at least fit it
    "conv2d_same": (_conv2d_same_net, 33, 8.0, 8),
    "tf_efficientnet_b0": (lambda: _timm("tf_efficientnet_b0"), 48, 1.0, 20),
    "resnet18": (lambda: _torchvision("resnet18"), 32, 1.0, 20),
    "mobilenet_v2": (lambda: _torchvision("mobilenet_v2"), 32, 1.0, 20),
}


def _built_macs(module, size) -> int:
    """Multiply-adds of one forward pass by torch's FLOP counter (FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    module = module.to_empty(device="cpu").eval()  # a built copy: its (meta) weights do not matter
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(torch.zeros(1, 3, *size))
    return int(counter.get_total_flops()) // 2


@pytest.mark.parametrize("name", list(MODELS))
def test_every_candidate_within_budget_builds_as_predicted(name):
    make, size, budget, least = MODELS[name]
    with torch.device("meta"):
        model = make().eval()
    front = search(model, size, budget)
    allowed = [c for c in front if not c.refused]
    assert len(allowed) >= least  # the search offers enough to test (SAME padding edits included)
    wrong = []
    for c in allowed:
        built = c.apply()
        params = sum(p.numel() for p in built.parameters())
        fresh = rfw.analyze(built, c.input_size)
        figures = {
            "params (module)": params,
            "params (analysis)": sum(layer.params for layer in fresh.layers),
            "macs (analysis)": sum(layer.macs for layer in fresh.layers),
            "macs (FLOP counter)": _built_macs(built, c.input_size),
        }
        for what, value in figures.items():
            predicted = c.params if what.startswith("params") else c.macs
            if value != predicted:
                wrong.append(f"{c.label}: predicted {what.split()[0]} {predicted}, {what} {value}")
        if {layer.name: layer.status for layer in fresh.layers} != c.status:
            wrong.append(f"{c.label}: predicted verdicts differ from the analysis of the built module")
        spatial_bad = tuple(n for n in fresh.unproductive_layers if fresh.layer(n).spatial)
        if spatial_bad != c.unproductive or fresh.border_layer != c.border_layer:
            wrong.append(f"{c.label}: predicted unproductive layers or border differ")
    assert not wrong, "\n".join(wrong)
