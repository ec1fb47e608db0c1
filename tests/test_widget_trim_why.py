"""The Strategies tab says why the trim keeps the border layer and offers the deeper cut."""

from __future__ import annotations

import html

import pytest

import rf_widgets as rfw
from rf_widgets.widgets import Explorer


def test_resnet18_at_32_trim_keeps_the_border_layer_and_says_which_layer_keeps_its_block():
    torchvision = pytest.importorskip("torchvision")
    ex = rfw.explore(torchvision.models.resnet18(), input_size=32)
    # SPEC section 6 v2: at 32 px the border layer is layer3.0.conv2; layer3.0.conv1 before it, in the
    # same residual branch, is productive.
    assert ex.result.border_layer == "layer3.0.conv2"
    assert ex.result.layer("layer3.0.conv1").status != "unproductive"
    ex.controls["suggest"].click()
    details = html.unescape(ex.controls["strategy_details"].value)
    assert "border layer layer3.0.conv2 -> layer3.0.conv2" in details  # the trim keeps it
    assert (
        "why: the border layer 'layer3.0.conv2' stays: its residual branch (into 'layer3.0.add') also "
        "holds the productive 'layer3.0.conv1'"
    ) in details
    kinds = [value for _, value in ex.controls["strategy"].options]
    assert kinds[-1] == "trim-deeper"
    assert "Cut before the border layer (deeper trim) (predicted):" in details

    ex.controls["strategy"].value = "trim-deeper"
    shown = ex.stack
    assert "layer3.0.conv2" not in shown.index
    assert "layer2.1.relu:2" in shown.index
    fresh = rfw.analyze(shown, 32)  # the preview's prediction, analysed again from its stack alone
    assert fresh.border_layer is None
    assert fresh.unproductive_layers == ()
    assert ex.result.border_layer is None
    assert "border layer none" in details.split("deeper trim) (predicted):")[1]
    ex.controls["undo"].click()
    assert ex.stack is ex.state.original


def _chain() -> rfw.Stack:
    return rfw.Stack(
        [rfw.conv("c1", 3, stride=2, padding=1), *(rfw.conv(f"c{i}", 3, padding=1) for i in (2, 3, 4))]
    )


def test_a_trim_that_removes_the_border_layer_gets_no_why_and_no_deeper_cut():
    # At 6 px c2 is unproductive and the border layer (asserted first); the trim cuts after c1.
    ex = Explorer(_chain(), input_size=6)
    assert ex.result.border_layer == "c2"
    assert ex.result.layer("c2").status == "unproductive"
    ex.controls["suggest"].click()
    assert ex.suggestions is not None
    assert ex.suggestions["trim"].removed == ("c2", "c3", "c4")
    details = html.unescape(ex.controls["strategy_details"].value)
    assert "why:" not in details
    assert "trim-deeper" not in [value for _, value in ex.controls["strategy"].options]


def test_a_critical_border_layer_stays_and_the_deeper_cut_removes_it():
    # At 8 px: c3 has r 11 >= 8 while its input c2 has r 7 < 8: critical, the border layer, productive.
    ex = Explorer(_chain(), input_size=8)
    assert ex.result.border_layer == "c3"
    assert ex.result.layer("c3").status == "critical"
    ex.controls["suggest"].click()
    assert ex.suggestions is not None
    assert ex.suggestions["trim"].removed == ("c4",)
    details = html.unescape(ex.controls["strategy_details"].value)
    assert "why: the border layer 'c3' stays: it is critical, not unproductive" in details
    ex.controls["strategy"].value = "trim-deeper"
    assert ex.stack.names == ("c1", "c2")
    assert rfw.analyze(ex.stack, 8).border_layer is None
