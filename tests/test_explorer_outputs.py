"""The Explorer's output picker: a dense model's outputs, a unit on each, its exact box on the image.

Box sizes of the U-Net come from the hand derivation in docs/semantics.md (unit 1 of ``dec1`` spans
three bottleneck units, unit 3 two); the centres of a transposed convolution from its definition (output
units ``2v`` and ``2v + 1`` read input unit ``v``). The DeepLab boxes themselves are checked against the
gradient in tests/test_dense_models.py; here the Explorer must draw exactly those boxes.
"""

from __future__ import annotations

import html

import numpy as np
import pytest

import rf_widgets as rfw
from rf_widgets.widgets import Explorer
from rf_widgets.widgets.outputs import output_choices
from rf_widgets.widgets.state import default_layer


def _unet() -> rfw.Stack:
    return rfw.Stack(
        [
            rfw.conv("enc1a", 3, padding=1),
            rfw.conv("enc1b", 3, padding=1),
            rfw.pool("down1", 2),
            rfw.conv("enc2a", 3, padding=1),
            rfw.conv("enc2b", 3, padding=1),
            rfw.pool("down2", 2),
            rfw.conv("mid_a", 3, padding=1),
            rfw.conv("mid_b", 3, padding=1),
            rfw.conv_transpose("up2", 2, stride=2),
            rfw.concat("skip2", ["up2", "enc2b"]),
            rfw.conv("dec2", 3, padding=1),
            rfw.conv_transpose("up1", 2, stride=2),
            rfw.concat("skip1", ["up1", "enc1b"]),
            rfw.conv("dec1", 3, padding=1),
        ],
        name="unet",
    )


def _drawn_box(ex: Explorer, key: str = "r_max") -> tuple[float, float, float, float]:
    """``(x0, y0, width, height)`` of the rectangle the overlay draws."""
    patch = ex.renderer.overlay.artists[key]
    return (patch.get_x(), patch.get_y(), patch.get_width(), patch.get_height())


def _expected(box: rfw.Box) -> tuple[float, float, float, float]:
    (y0, x0), (y1, x1) = box.start, box.stop
    return (x0 - 0.5, y0 - 0.5, x1 - x0 + 1, y1 - y0 + 1)


def _pick_unit(ex: Explorer, unit: tuple[int, int]) -> None:
    ex.controls["unit_0"].value, ex.controls["unit_1"].value = unit


def test_unet_output_unit_boxes_follow_the_phase():
    ex = Explorer(_unet(), input_size=64)
    c = ex.controls
    assert c["output"].options == (("dec1", "dec1"),)
    assert c["output"].layout.display is None
    c["layer"].value = "mid_b"
    assert c["output"].value is None
    assert c["output_info"].value == ""
    c["output"].value = "dec1"
    assert ex.state.layer == "dec1"
    assert ex.state.unit == (31, 31)
    assert html.unescape(c["output_info"].value) == "output 'dec1': map 64x64, jump 1, r_max 40"
    _pick_unit(ex, (1, 3))
    assert ex.state.unit == (1, 3)
    # unit 1 spans three bottleneck units (40 px), unit 3 two (36 px), along each axis
    assert _drawn_box(ex)[2:] == (36, 40)
    _pick_unit(ex, (3, 1))
    assert _drawn_box(ex)[2:] == (40, 36)
    assert _drawn_box(ex) == _expected(ex.result.unit_box("dec1", (3, 1)))
    assert _drawn_box(ex, "r_min") == _expected(ex.result.unit_box("dec1", (3, 1), "min"))
    assert "unit (3, 1)" in ex.caption.value


def test_output_centres_and_clicks_follow_the_phase():
    # c: unit v sees [2v, 2v + 2], centre 2v + 1; t (kernel 2, stride 2): units 2v and 2v + 1 read v
    ex = Explorer([rfw.conv("c", 3, stride=2), rfw.conv_transpose("t", 2, stride=2)], input_size=9)
    ex.controls["output"].value = "t"
    centres = ex.renderer.overlay.artists["centres"].get_offsets()
    assert sorted(set(np.asarray(centres)[:, 0].tolist())) == [1.0, 3.0, 5.0, 7.0]
    assert np.asarray(centres)[:4, 0].tolist() == [1.0, 1.0, 3.0, 3.0]
    # a click at x = 5.2, y = 3.1 lands on the units centred at 5 and 3: the first of each pair
    assert ex.renderer.unit_at(ex.result, "t", 5.2, 3.1) == (2, 4)


def test_editing_a_declared_stack_updates_the_outputs():
    ex = Explorer(_unet(), input_size=64)
    ex.state.add(len(ex.stack.names), rfw.conv("head", 1))
    assert ex.controls["output"].options == (("head", "head"),)
    assert ex.controls["output"].value == "head"  # the added layer is selected
    ex.state.undo()
    assert ex.controls["output"].options == (("dec1", "dec1"),)


def test_a_classifier_gets_no_picker():
    stack = rfw.Stack([rfw.conv("c1", 3), rfw.pool("p1", 2), rfw.conv("c2", 3), rfw.global_pool("gap")])
    ex = Explorer(stack, input_size=32)
    assert output_choices(ex.result) == []
    assert ex.controls["output"].options == ()
    assert ex.controls["output"].layout.display == "none"
    assert ex.controls["output_info"].layout.display == "none"
    assert ex.state.layer == default_layer(ex.result) == "c2"


def test_torchvision_classifier_unchanged():
    torchvision = pytest.importorskip("torchvision")
    ex = Explorer(torchvision.models.resnet18(), input_size=64)
    assert ex.controls["output"].options == ()
    assert ex.controls["output"].layout.display == "none"
    assert ex.state.layer == default_layer(ex.result)


def test_deeplab_outputs_and_a_unit_on_each():
    segmentation = pytest.importorskip("torchvision.models.segmentation")
    model = segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, aux_loss=True)
    ex = Explorer(model, input_size=224, image="grace_hopper")
    c = ex.controls
    assert c["output"].options == (
        ("out (interpolate)", "interpolate"),
        ("aux (interpolate:2)", "interpolate:2"),
    )
    assert c["output"].value is None  # the Explorer opens on the same layer as before
    c["output"].value = "interpolate:2"
    assert ex.state.layer == "interpolate:2"
    assert ex.state.unit == (111, 111)
    info = html.unescape(c["output_info"].value)
    assert info.startswith("output 'aux' = layer 'interpolate:2': map 224x224, jump 1, r_max global")
    assert "whole input" in info
    assert "r_max_local 59" in info
    # units (0, 0) and (5, 7) sit in different phases of the 16x bilinear upsampling: different boxes
    boxes = {}
    for unit in [(0, 0), (5, 7), (223, 223)]:
        _pick_unit(ex, unit)
        boxes[unit] = _drawn_box(ex)
        assert boxes[unit] == _expected(ex.result.unit_box("interpolate:2", unit))
    assert boxes[(0, 0)] != boxes[(5, 7)]
    c["output"].value = "interpolate"
    assert ex.state.layer == "interpolate"
    assert ex.state.unit == (111, 111)
    assert "r_max_local 1859" in html.unescape(c["output_info"].value)
    c["resolution"].value = 96  # a new input size keeps the output; a unit outside moves to the centre
    assert c["output"].value == "interpolate"
    assert ex.result.layer("interpolate").feature_map == (96, 96)
    assert ex.state.unit == (47, 47)


def test_an_edited_stack_drops_the_outputs_of_removed_layers():
    torch = pytest.importorskip("torch")
    from rf_widgets import editing

    class TwoHeads(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Conv2d(3, 4, 3)
            self.head = torch.nn.Conv2d(4, 4, 3)

        def forward(self, x):
            features = self.body(x)
            return {"features": features, "head": self.head(features)}

    result = rfw.analyze(TwoHeads(), 16)
    assert {k: v.name for k, v in result.outputs.items()} == {"features": "body", "head": "head"}
    edited = rfw.analyze(editing.remove_layer(result.stack, "head"), 16)
    assert {k: v.name for k, v in edited.outputs.items()} == {"features": "body"}
    assert edited.to_dict()["outputs"] == [{"name": "features", "layer": "body"}]
    assert output_choices(edited) == [("features", "body")]
