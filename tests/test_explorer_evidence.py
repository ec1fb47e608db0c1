"""The Explorer's evidence views: the effective-field toggle and measured curves on the growth plot."""

from __future__ import annotations

import html

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import rf_widgets as rfw  # noqa: E402
from rf_widgets.evidence import EvidenceResult, measure, shape_pairs  # noqa: E402
from rf_widgets.widgets import Explorer  # noqa: E402
from rf_widgets.widgets import effective as effective_module  # noqa: E402


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 5, padding=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )


def _message(ex: Explorer) -> str:
    return html.unescape(ex.message.value)


def _state(ex: Explorer) -> tuple:
    s = ex.state
    return (s.stack, s.resolution, s.layer, s.unit, s.can_undo, s.can_redo)


@pytest.fixture
def ex() -> Explorer:
    return Explorer(_net(), image="checkerboard", input_size=32)


def test_erf_toggle_draws_the_heat_map_over_the_input(ex):
    ex.controls["layer"].value = "4"
    ex.controls["unit_0"].value = 3
    ex.controls["unit_1"].value = 4
    assert not ex.renderer.erf.get_visible()
    ex.controls["erf"].value = True
    heat = ex.renderer.erf
    assert heat.get_visible()
    assert heat.get_array().shape[:2] == (32, 32)
    assert heat.get_extent() == [-0.5, 31.5, 31.5, -0.5]  # input pixels, like the image
    field = ex.effective_fields.cached("4", (3, 4), (32, 32))
    assert field is not None
    assert field.map.shape == (32, 32)
    text = html.unescape(ex.caption.value)
    r_max = "x".join(str(r) for r in ex.result.layer("4").r_max)
    assert f"2-sigma size {field.size:.1f} px" in text
    assert f"r_max {r_max} px" in text
    # said once, above the picture: not again in the message line (issue 20)
    assert text.count("2-sigma") == 1
    assert "2-sigma" not in _message(ex)
    assert "computing" not in _message(ex)
    ex.controls["erf"].value = False
    assert not heat.get_visible()
    assert "2-sigma" not in html.unescape(ex.caption.value)
    assert "2-sigma" not in _message(ex)  # nothing about the field stays once the box is unticked


def test_erf_is_cached_per_layer_unit_and_size(ex, monkeypatch):
    ex.controls["erf"].value = True
    ex.controls["unit_0"].value = 0
    ex.controls["unit_0"].value = 1
    calls = []
    real = effective_module.EffectiveFields.get

    def counting(self, *key):
        calls.append(key)
        return real(self, *key)

    monkeypatch.setattr(effective_module.EffectiveFields, "get", counting)
    ex.controls["erf"].value = False
    ex.controls["erf"].value = True  # toggling back: from the cache
    ex.controls["unit_0"].value = 0
    ex.controls["unit_0"].value = 1  # returning to a unit: from the cache
    assert calls == []
    ex.controls["resolution"].value = 24  # a new size: computed once
    assert len(calls) == 1
    assert calls[0][2] == (24, 24)
    assert ex.renderer.erf.get_array().shape[:2] == (24, 24)


def test_erf_off_never_computes(ex, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("erf_map called with the toggle off")

    monkeypatch.setattr("rf_widgets.evidence.erf_map", fail)
    ex.controls["resolution"].value = 40
    ex.controls["layer"].value = "2"
    ex.controls["unit_0"].value = 2
    assert not ex.renderer.erf.get_visible()


def test_erf_failure_unticks_and_keeps_the_state(ex, monkeypatch):
    ex.controls["resolution"].value = 20
    ex.controls["layer"].value = "2"
    before = _state(ex)

    def fail(*args, **kwargs):
        raise RuntimeError("Given input size: (8x1x1). Calculated output size: (8x0x0)\nmore detail")

    monkeypatch.setattr("rf_widgets.evidence.erf_map", fail)
    ex.controls["erf"].value = True
    assert ex.controls["erf"].value is False
    assert _state(ex) == before
    assert not ex.renderer.erf.get_visible()
    text = _message(ex)
    assert "no effective field for 2: Given input size" in text
    assert "\n" not in text
    assert "rfw-error" in ex.message._dom_classes
    ex.controls["export_json"].click()  # the next action's message is its own
    assert "Export tab" in _message(ex)
    assert "rfw-error" not in ex.message._dom_classes


def test_erf_of_a_model_that_cannot_run_at_the_size(monkeypatch):
    # Real failure, no monkeypatch: a 7x7 pool of the input needs at least 7 px.
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(7), nn.Conv2d(4, 4, 1))
    ex = Explorer(model, input_size=8)
    ex.controls["layer"].value = "2"
    before = _state(ex)
    ex.controls["erf"].value = True
    assert ex.controls["erf"].value is False
    assert _state(ex) == before
    assert "Not applied: no effective field for 2: unit (0, 0) is outside the 0x0 feature map" in _message(ex)


def test_declared_stack_has_the_toggle_disabled_with_a_reason():
    ex = Explorer([rfw.conv("c1", 3), rfw.conv("c2", 3)], input_size=16)
    box = ex.controls["erf"]
    assert box.disabled
    assert "no weights" in box.tooltip
    assert ex.effective_fields is None


@pytest.fixture(scope="module")
def evidence() -> EvidenceResult:
    torch.manual_seed(0)
    data = shape_pairs(60, 16, seed=2)
    train, test = data.split(40)
    return measure(_net(), train, test, 16)


def test_evidence_curves_on_the_growth_plot(evidence):
    ex = rfw.explore(_net(), input_size=16, evidence=evidence)
    lines = ex.renderer.evidence
    assert lines is not None
    assert tuple(lines["axis"].get_ylim()) == (0, 1)
    growth_box = ex.renderer.growth.ax.get_position().bounds
    assert np.allclose(lines["axis"].get_position().bounds, growth_box)  # on the laid-out growth plot
    names = ex.renderer.growth.layer_names
    curves = evidence.curves()
    x, y = lines["saturation"].get_data()
    assert list(x) == [float(names.index(n)) for n in ("0", "2", "4")]
    assert np.allclose(y, [curves[n]["saturation"] for n in ("0", "2", "4")])
    x, y = lines["probe"].get_data()
    assert np.allclose(y, [curves[n]["probe"] for n in ("0", "2", "4")])
    assert all(0 <= v <= 1 for v in y)

    ex.controls["stack"].value = "0"
    ex.controls["remove"].click()  # disabled: a traced model's graph is fixed, nothing changes
    assert ex.renderer.growth.layer_names == names

    ex.show_evidence(None)
    assert not lines["saturation"].get_visible()
    assert not lines["probe"].get_visible()
    ex.show_evidence(evidence)
    assert lines["saturation"].get_visible()
    assert ex.picture.value[:2] == b"\xff\xd8"


def test_evidence_curves_follow_the_layer_names_of_an_edited_stack(evidence):
    # the same network declared as a stack, so that layers can be removed
    declared = rfw.Stack(
        [
            rfw.conv("0", 3, stride=2, padding=1),
            rfw.elementwise("1"),
            rfw.conv("2", 3, stride=2, padding=1),
            rfw.elementwise("3"),
            rfw.conv("4", 5, padding=2),
            rfw.elementwise("5"),
            rfw.global_pool("6"),
        ]
    )
    ex = rfw.explore(declared, input_size=16, evidence=evidence)
    lines = ex.renderer.evidence
    assert lines is not None
    assert list(lines["saturation"].get_data()[0]) == [0.0, 2.0, 4.0]
    ex.controls["stack"].value = "0"
    ex.controls["remove"].click()  # the stack changes: the curves follow the layer names
    names = ex.renderer.growth.layer_names
    x, _ = lines["saturation"].get_data()
    assert "0" not in names
    assert list(x) == [float(names.index(n)) for n in ("2", "4")]
    ex.controls["undo"].click()
    assert len(lines["saturation"].get_data()[0]) == 3


def test_erf_is_refused_for_an_edited_stack(ex):
    # the field runs the imported model: after an edit it would describe another network
    ex.controls["stack"].value = "2"
    ex.controls["kernel"].value = "5"
    ex.controls["apply"].click()
    assert ex.state.stack is not ex.state.original
    ex.controls["erf"].value = True
    assert ex.controls["erf"].value is False
    assert not ex.renderer.erf.get_visible()
    assert "no effective field for an edited stack" in _message(ex)
    ex.controls["undo"].click()
    ex.controls["erf"].value = True
    assert ex.renderer.erf.get_visible()


def test_erf_of_a_model_opened_by_its_spec_string():
    """``explore("torchvision:...")`` loads the module once: the field runs it (it used to get the string)."""
    ex = Explorer("torchvision:resnet18", image="checkerboard", input_size=64)
    assert ex.result.model == "torchvision:resnet18"
    ex.controls["layer"].value = "layer1.0.conv1"
    ex.controls["erf"].value = True
    assert ex.controls["erf"].value is True, _message(ex)
    assert ex.renderer.erf.get_visible()
    assert "effective field" in html.unescape(ex.caption.value)
