"""The Explorer driven from Python, as the front end drives it: values, clicks, uploads."""

from __future__ import annotations

import html
import io
import json

import numpy as np
import pytest

import rf_widgets as rfw
from rf_widgets.widgets import Explorer


@pytest.fixture
def declared() -> Explorer:
    stack = rfw.Stack(
        [
            rfw.conv("c1", 3, padding=1),
            rfw.pool("p1", 2),
            rfw.conv("c2", 3, padding=1),
            rfw.pool("p2", 2),
            rfw.conv("c3", 3, padding=1),
            rfw.global_pool("gap"),
        ],
        name="small",
    )
    return Explorer(stack, image="checkerboard", input_size=32)


def _summary(ex: Explorer) -> str:
    return ex.summary.value


def _message(ex: Explorer) -> str:
    return html.unescape(ex.message.value)


def test_initial_state(declared):
    assert "rfw-summary" in declared.summary._dom_classes
    assert "rfw-resolution" in declared.controls["resolution"]._dom_classes
    assert declared.controls["resolution"].value == 32
    assert declared.picture.value[:2] == b"\xff\xd8"  # a JPEG
    assert "small" in _summary(declared)
    assert declared.result.input_size == (32, 32)
    assert declared.controls["front_plot"].layout.display == "none"  # no broken image before a search


def test_resolution_changes_verdicts_and_summary(declared):
    # At 8 px: c2 sees r 8 (not more than the image: productive), p2 r 10 with an input of r 8 >= 8
    # (rule A), c3 r 18 with an input of r 10 (rule A). The unproductive tail starts at p2: the border
    # layer (SPEC section 6 version 2).
    assert declared.result.border_layer is None
    declared.controls["resolution"].value = 8
    assert declared.result.input_size == (8, 8)
    assert declared.result.border_layer == "p2"
    assert declared.result.unproductive_layers == ("p2", "c3")
    assert "<td>p2</td>" in _summary(declared)
    low, high = declared.result.resolution_range
    assert declared.controls["feasible"].value == (low, high)
    assert 'data-status="unproductive"' in declared.table.value


def test_layer_and_unit_move_the_boxes(declared):
    declared.controls["layer"].value = "c2"
    assert declared.controls["unit_0"].max == 15
    declared.controls["unit_0"].value = 3
    declared.controls["unit_1"].value = 5
    box = declared.result.unit_box("c2", (3, 5))
    overlay = declared.renderer.overlay
    rect = overlay.artists["r_max"]
    assert rect.get_x() == pytest.approx(box.start[1] - 0.5)
    assert rect.get_y() == pytest.approx(box.start[0] - 0.5)
    assert rect.get_width() == pytest.approx(box.stop[1] - box.start[1] + 1)


def test_invalid_edit_keeps_the_stack_and_says_why(declared):
    before = declared.stack
    declared.controls["stack"].value = "c2"
    declared.controls["kernel"].value = "0"
    declared.controls["apply"].click()
    assert declared.stack is before
    assert "kernel_size must be >= 1" in _message(declared)
    assert "rfw-error" in declared.message._dom_classes
    declared.controls["kernel"].value = "three"
    declared.controls["apply"].click()
    assert declared.stack is before
    assert "kernel must be whole numbers" in _message(declared)


def test_edit_undo_reset(declared):
    declared.controls["stack"].value = "p1"
    declared.controls["bypass"].click()
    assert declared.stack["p1"].stride == (1, 1)
    assert declared.result.layer("c3").jump == (2, 2)
    declared.controls["stack"].value = "c1"
    declared.controls["new_type"].value = "conv"
    declared.controls["new_name"].value = "extra"
    declared.controls["kernel"].value = "5"
    declared.controls["stride"].value = "2"
    declared.controls["dilation"].value = "1"
    declared.controls["padding"].value = "2"
    declared.controls["add"].click()
    assert declared.stack.names[:2] == ("c1", "extra")
    assert "extra" in declared.controls["layer"].options
    declared.controls["stack"].value = "extra"
    declared.controls["down"].click()
    assert declared.stack.names[:3] == ("c1", "p1", "extra")
    declared.controls["remove"].click()
    assert "extra" not in declared.stack.names
    declared.controls["undo"].click()
    assert "extra" in declared.stack.names
    declared.controls["reset"].click()
    assert declared.stack is declared.state.original
    assert declared.result.layer("c3").jump == (4, 4)


def test_export(declared):
    declared.controls["export_json"].click()
    document = json.loads(declared.export_text.value)
    assert [layer["name"] for layer in document["layers"]] == list(declared.stack.names)
    declared.controls["export_python"].click()
    namespace: dict[str, object] = {}
    exec(declared.export_text.value, namespace)
    assert namespace["stack"].names == declared.stack.names


def _png_bytes(shape=(20, 30, 3)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full(shape, 120, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _upload(ex: Explorer, name: str, content: bytes) -> None:
    ex.controls["upload"].set_state(
        {
            "value": [
                {
                    "name": name,
                    "type": "image/png",
                    "size": len(content),
                    "content": content,
                    "last_modified": 0,
                }
            ]
        }
    )


def test_upload_image_and_reject_bad_files(declared):
    _upload(declared, "good.png", _png_bytes())
    assert "showing 'good.png' (30x20)" in _message(declared)
    shown = declared.state.image
    _upload(declared, "notes.txt", b"hello, not an image")
    assert "notes.txt" in _message(declared)
    assert "rfw-error" in declared.message._dom_classes
    assert declared.state.image is shown
    _upload(declared, "broken.png", _png_bytes()[:40])
    assert "broken.png" in _message(declared)
    assert declared.state.image is shown


def test_sample_image_choice(declared):
    declared.controls["image"].value = "grace_hopper"
    assert declared.state.image.shape[2] == 3
    declared.controls["image"].value = "none"
    assert declared.state.image is None


def test_torch_model_override_without_retracing(monkeypatch):
    torchvision = pytest.importorskip("torchvision")
    ex = Explorer(torchvision.models.resnet18(), input_size=224)
    import rf_widgets.torch_import.tracing as tracing

    monkeypatch.setattr(tracing, "trace", lambda *a, **k: pytest.fail("re-traced"))
    assert ex.controls["add"].disabled
    ex.controls["resolution"].value = 32
    assert "layer3.0.conv2" in ex.summary.value  # SPEC section 7: ResNet18's border layer at 32
    assert "Parameters in unproductive layers" in ex.summary.value
    ex.controls["stack"].value = "maxpool"
    ex.controls["bypass"].click()
    assert ex.result.layer("layer4.1.conv2").jump == (16, 16)
    assert ex.result.border_layer != "layer3.0.conv2"


def test_explore_entry_point_and_magic():
    ex = rfw.explore([rfw.conv("c1", 3, stride=2), rfw.conv("c2", 3)], input_size=16)
    ex.controls["resolution"].value = 5
    assert ex.result.border_layer == "c2"  # c2's 3x3 kernel covers c1's 2x2 map (rule B)
    from rf_widgets.widgets.magic import rfa

    shown = rfa("model --resolution 9", {"model": ex.stack})
    assert shown.result.input_size == (9, 9)
    with pytest.raises(rfw.RFError, match="usage"):
        rfa("--resolution", {})


def test_blitted_picture_equals_a_full_redraw(declared):
    """Updates redraw only what changes; the picture must still be exactly what a full draw gives."""
    from PIL import Image

    declared.controls["resolution"].value = 12
    declared.controls["layer"].value = "c2"
    declared.controls["unit_1"].value = 2
    declared.controls["resolution"].value = 20
    declared.controls["unit_0"].value = 4
    blitted = np.asarray(Image.open(io.BytesIO(declared.picture.value)))
    declared.renderer.background = None
    declared.renderer.render()
    full = np.asarray(Image.open(io.BytesIO(declared.picture.value)))
    assert blitted.shape == full.shape
    assert np.array_equal(blitted, full)


def test_blitted_picture_equals_a_full_redraw_on_resnet18():
    torchvision = pytest.importorskip("torchvision")
    from PIL import Image

    ex = Explorer(torchvision.models.resnet18(), image="grace_hopper", input_size=224)
    for size in (64, 32, 100):
        ex.controls["resolution"].value = size
    ex.controls["layer"].value = "layer3.0.conv2"
    ex.controls["unit_0"].value = 1
    ex.controls["layer"].value = "layer1.0.conv2"  # a small box: the view zooms in
    ex.controls["unit_1"].value = 3
    ex.controls["resolution"].value = 48
    blitted = np.asarray(Image.open(io.BytesIO(ex.picture.value)))
    ex.renderer.background = None
    ex.renderer.render()
    assert np.array_equal(blitted, np.asarray(Image.open(io.BytesIO(ex.picture.value))))


def test_oversize_upload_is_refused(declared):
    shown = declared.state.image
    _upload(declared, "huge.png", b"\x89PNG" + bytes(21 * 1024 * 1024))
    assert "huge.png" in _message(declared)
    assert "MiB" in _message(declared)
    assert declared.state.image is shown


def test_ipython_extension_registers_the_magic(capsys):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "rf_widgets")
        shell.user_ns["tiny"] = rfw.Stack([rfw.conv("c1", 3, stride=2), rfw.conv("c2", 3)])
        shell.run_line_magic("rfa", "tiny --resolution 5")
        assert "Explorer" in capsys.readouterr().out  # displayed (as text outside a kernel)
        shell.run_line_magic("rfa", "missing_file.json")
        assert "cannot read stack file 'missing_file.json'" in capsys.readouterr().out
    finally:
        InteractiveShell.clear_instance()


def _click(ex: Explorer, ax, x: float, y: float) -> None:
    from matplotlib.backend_bases import MouseEvent

    px, py = ax.transData.transform((x, y))
    event = MouseEvent("button_press_event", ex.figure.canvas, px, py, button=1)
    ex.figure.canvas.callbacks.process("button_press_event", event)


def test_clicks_pick_a_unit_and_a_layer(declared):
    declared.controls["layer"].value = "c2"  # r 8, jump 2, offset 3 at 32 px: unit u is centred at 2u + 0.5
    _click(declared, declared.renderer.overlay.ax, x=2 * 5 + 0.5, y=2 * 9 + 0.5)
    assert (declared.controls["unit_0"].value, declared.controls["unit_1"].value) == (9, 5)
    cell = declared.renderer.strip.cells["c3"]
    _click(
        declared,
        declared.renderer.strip.ax,
        cell.get_x() + cell.get_width() / 2,
        cell.get_y() + cell.get_height() / 2,
    )
    assert declared.controls["layer"].value == "c3"


def _browser_event(ex: Explorer, ax, x: float, y: float, kind: str = "mousedown", buttons: int = 1) -> None:
    """What ipyevents sends when the mouse is at data point (x, y) of ``ax`` on the picture shown at
    half its pixel size (the browser scales the JPEG to the page)."""
    width, height = ex.figure.canvas.get_width_height()
    px, py = ax.transData.transform((x, y))
    shown = (width / 2, height / 2)
    event = {
        "event": kind,
        "type": kind,
        "buttons": buttons,
        "relativeX": px / width * shown[0],
        "relativeY": (1 - py / height) * shown[1],
        "boundingRectWidth": shown[0],
        "boundingRectHeight": shown[1],
    }
    press, drag = ex.picture_events
    (press if kind == "mousedown" else drag)._handle_custom_msg(event, [])


def test_browser_press_and_drag_on_the_picture_pick_units_like_the_sliders(declared):
    pytest.importorskip("ipyevents")
    picked = []
    declared.state.observe(lambda change: picked.append(change["new"]), names="unit")
    declared.controls["layer"].value = "c2"  # r 8, jump 2, offset 3 at 32 px: unit u is centred at 2u + 0.5
    picked.clear()
    overlay = declared.renderer.overlay.ax
    before = declared.picture.value
    _browser_event(declared, overlay, x=2 * 5 + 0.5, y=2 * 9 + 0.5)
    assert (declared.controls["unit_0"].value, declared.controls["unit_1"].value) == (9, 5)
    assert declared.picture.value != before  # the picture was drawn again for the new unit
    # a move with the button held drags the unit; without it, nothing is picked
    _browser_event(declared, overlay, x=2 * 7 + 0.6, y=2 * 3 + 0.4, kind="mousemove")
    assert declared.state.unit == (3, 7)
    _browser_event(declared, overlay, x=2 * 1 + 0.5, y=2 * 1 + 0.5, kind="mousemove", buttons=0)
    assert declared.state.unit == (3, 7)
    assert picked == [(9, 5), (3, 7)]
    # a press on a strip cell picks its layer; outside every view, nothing changes
    cell = declared.renderer.strip.cells["c3"]
    _browser_event(
        declared,
        declared.renderer.strip.ax,
        cell.get_x() + cell.get_width() / 2,
        cell.get_y() + cell.get_height() / 2,
    )
    assert declared.controls["layer"].value == "c3"
    assert declared.renderer.view_at(0.001, 0.001) is None


def test_interactive_canvas_when_ipympl_is_present():
    pytest.importorskip("ipympl")
    ex = Explorer([rfw.conv("c1", 3), rfw.pool("p1", 2)], input_size=16, interactive=True)
    assert ex.picture is ex.figure.canvas
    assert ex.picture in ex.children
    ex.controls["resolution"].value = 3
    assert ex.result.border_layer == "p1"  # at 3 px p1 (r 4) reads c1 (r 3 >= 3): rule A


def test_strategies_panel_previews_each_suggestion(declared):
    declared.controls["resolution"].value = 8  # c2 is the border layer, p2 and c3 unproductive
    declared.controls["suggest"].click()
    plan = declared.suggestions
    assert plan is not None
    kinds = [value for _, value in declared.controls["strategy"].options]
    assert kinds == ["", *(s.kind for s in plan.applicable())]
    assert "trim" in kinds
    assert "Trim the unproductive layers" in html.unescape(declared.controls["strategy_details"].value)

    declared.controls["strategy"].value = "trim"
    assert declared.stack.names == plan["trim"].stack.names
    assert declared.result.unproductive_layers == plan["trim"].still_unproductive
    assert "(trimmed)" in _summary(declared)
    assert "previewing: trim" in _message(declared)
    declared.controls["strategy_export"].click()
    exported = json.loads(declared.export_text.value)
    assert [layer["name"] for layer in exported["layers"]] == list(plan["trim"].stack.names)

    declared.controls["strategy"].value = "resolution"
    assert declared.stack.names == plan["trim"].before.stack.names  # the trim preview is gone
    assert declared.result.input_size == plan["resolution"].new_input_size
    assert declared.result.unproductive_layers == ()

    declared.controls["strategy"].value = ""
    assert declared.result.input_size == (8, 8)
    assert declared.result.unproductive_layers == ("p2", "c3")


def test_strategies_go_stale_after_an_edit(declared):
    declared.controls["resolution"].value = 8
    declared.controls["suggest"].click()
    declared.controls["stack"].value = "c1"
    declared.controls["bypass"].click()
    edited = declared.stack
    declared.controls["strategy"].value = "trim"
    assert declared.stack is edited
    assert "press Suggest again" in _message(declared)
    assert "rfw-error" in declared.message._dom_classes


def test_strategies_panel_on_a_torch_model_predicts_the_new_head():
    torchvision = pytest.importorskip("torchvision")
    ex = Explorer(torchvision.models.resnet18(), input_size=32)
    ex.controls["suggest"].click()
    trim = ex.suggestions["trim"]
    assert trim.stack.names[-1] == "rfw_head.2"
    ex.controls["strategy"].value = "trim"
    assert ex.stack.names == trim.stack.names
    head = trim.apply().get_submodule("rfw_head.2")  # the module the trim really builds
    assert ex.result.layer("rfw_head.2").params == sum(p.numel() for p in head.parameters())
    ex.controls["reset"].click()
    assert ex.stack.names[-1] == "fc"


def test_size_slider_spans_one_size_per_pixel_or_less_and_the_box_reaches_beyond(declared):
    from rf_widgets.widgets.panels import SLIDER_WIDTH

    slider, box = declared.controls["resolution"], declared.controls["resolution_text"]
    # 512 sizes on a 720 px slider (its track about 590 px): a drag lands on the size under the mouse
    assert (slider.min, slider.max) == (1, 512)
    assert SLIDER_WIDTH == slider.layout.width == "720px"
    box.value = 900  # beyond the slider's end: typed
    assert declared.result.input_size == (900, 900)
    assert slider.max >= 900
    assert slider.value == 900
    slider.value = 40
    assert box.value == 40


def test_initial_unit_is_centred_named_model_and_linked_size_box(declared):
    layer = declared.result.layer(declared.controls["layer"].value)
    assert declared.controls["unit_0"].value == (layer.feature_map[0] - 1) // 2
    declared.controls["resolution_text"].value = 16  # the number box drives the slider from code too
    assert declared.result.input_size == (16, 16)
    named = Explorer(declared.stack, input_size=16, name="my net")
    assert "my net" in _summary(named)


def test_a_shrinking_map_recentres_the_unit(declared):
    declared.controls["layer"].value = "c3"
    assert declared.controls["unit_0"].value == 3  # 8x8 map at 32 px: centre unit 3
    declared.controls["resolution"].value = 12  # c3's map is 3x3 now: the unit moves to its centre
    assert declared.result.layer("c3").feature_map == (3, 3)
    assert (declared.controls["unit_0"].value, declared.controls["unit_1"].value) == (1, 1)
