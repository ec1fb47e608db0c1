"""The Explorer as a state machine: every action validated first, refusals change nothing.

Random action sequences (hypothesis) drive the Explorer through its controls, invalid actions
included, and after every step check that the controls, the analysis and the history agree, that a
refused action left every control as it was, and that undo/redo give back earlier stacks exactly.
"""

from __future__ import annotations

import html
import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rf_widgets as rfw
from rf_widgets.widgets import Explorer
from rf_widgets.widgets.panels import summary_html
from rf_widgets.widgets.state import ExplorerState, default_layer


def _stack() -> rfw.Stack:
    return rfw.Stack(
        [
            rfw.conv("c1", 3, padding=1),
            rfw.elementwise("r1"),
            rfw.pool("p1", 2),
            rfw.conv("c2", 3, padding=1),
            rfw.pool("p2", 2),
            rfw.conv("c3", 3, stride=2, padding=1),
            rfw.elementwise("r3"),
            rfw.global_pool("gap"),
        ],
        name="small",
    )


def _message(ex: Explorer) -> str:
    return html.unescape(ex.message.value)


def _refused(ex: Explorer) -> bool:
    return "rfw-error" in ex.message._dom_classes


def _controls(ex: Explorer) -> dict[str, object]:
    """Everything a user can see of the controls."""
    seen: dict[str, object] = {}
    for key, control in ex.controls.items():
        if key in ("upload", "tabs"):
            continue
        for trait in ("value", "options", "disabled", "min", "max", "description"):
            if control.has_trait(trait):
                value = getattr(control, trait)
                seen[f"{key}.{trait}"] = tuple(value) if isinstance(value, (list, tuple)) else value
    seen["summary"] = ex.summary.value
    seen["table"] = ex.table.value
    seen["picture"] = ex.picture.value
    seen["caption"] = ex.caption.value
    return seen


def _check_consistent(ex: Explorer) -> None:
    state, c, result = ex.state, ex.controls, ex.result
    assert result.stack is state.stack
    assert result.input_size == state.resolution
    assert state.history[state.position] is state.stack
    assert c["resolution"].value == state.resolution[0] == c["resolution_text"].value
    assert c["layer"].value == state.layer == c["stack"].value
    assert tuple(c["layer"].options) == state.stack.names == tuple(c["stack"].options)
    size = result.layer(state.layer).feature_map
    for a, n in enumerate(size):
        assert c[f"unit_{a}"].value == state.unit[a]
        assert c[f"unit_{a}"].max == max(n - 1, 0)
    assert c["undo"].disabled == (state.position == 0)
    assert c["redo"].disabled == (state.position == len(state.history) - 1)
    assert c["image"].value == state.image_name
    assert c["strategy"].value == state.shown_strategy()
    assert ex.summary.value == summary_html(result)
    assert ex.table.value == result._repr_html_()
    assert ex.renderer.overlay.ax is not None
    fresh = rfw.analyze(state.stack, state.resolution)
    assert fresh.to_dict() == result.to_dict()


def _editor_shows_the_layer(ex: Explorer) -> None:
    from rf_widgets.widgets.explorer import _field_text

    layer = ex.stack[ex.state.layer]
    for key in ("kernel", "stride", "dilation", "padding"):
        assert ex.controls[key].value == _field_text(layer, key), key


def _png(shape=(20, 30, 3)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full(shape, 90, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(shape=(40, 50, 3)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(buffer, format="JPEG")
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


TEXTS = ["1", "2", "3", "5", "3,5", "0", "-1", "x", "", "1" + "0" * 400, "(1,0),(0,1)", "1,2,3"]
ACTIONS = st.one_of(
    st.tuples(st.just("resolution"), st.integers(1, 80)),
    st.tuples(st.just("layer"), st.integers(0, 20)),
    st.tuples(st.just("unit"), st.integers(0, 1), st.integers(0, 40)),
    st.tuples(
        st.just("apply"), st.sampled_from(["kernel", "stride", "dilation", "padding"]), st.sampled_from(TEXTS)
    ),
    st.tuples(
        st.just("add"),
        st.sampled_from(["conv", "pool", "elementwise", "global_pool"]),
        st.sampled_from(["", "c1", "new"]),
        st.sampled_from(TEXTS),
    ),
    st.tuples(st.sampled_from(["bypass", "remove", "up", "down", "undo", "redo", "reset", "suggest"])),
    st.tuples(st.just("image"), st.sampled_from(["none", "checkerboard", "rings"])),
    st.tuples(st.just("upload"), st.sampled_from(["good", "text", "truncated"])),
    st.tuples(st.just("strategy"), st.integers(0, 3)),
)


def _do(ex: Explorer, action: tuple) -> dict[str, object]:
    """Perform one user action through the controls; return what the controls showed just before."""
    c = ex.controls
    kind = action[0]
    if kind in ("apply", "add"):  # typing is not an action: the snapshot includes the typed text
        if kind == "apply":
            c[action[1]].value = action[2]
        else:
            c["new_type"].value, c["new_name"].value, c["kernel"].value = action[1:]
    before = _controls(ex)
    if kind == "resolution":
        c["resolution"].value = action[1]
    elif kind == "layer":
        c["layer"].value = ex.stack.names[action[1] % len(ex.stack.names)]
    elif kind == "unit":
        c[f"unit_{action[1]}"].value = min(action[2], c[f"unit_{action[1]}"].max)
    elif kind == "image":
        c["image"].value = action[1]
    elif kind == "upload":
        content = {"good": _png(), "text": b"not an image", "truncated": _jpeg()[:300]}[action[1]]
        _upload(ex, f"{action[1]}.jpg", content)
    elif kind == "strategy":
        options = [value for _, value in c["strategy"].options]
        c["strategy"].value = options[action[1] % len(options)]
    else:
        c[kind].click()
    return before


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ACTIONS, min_size=1, max_size=10))
def test_random_actions_keep_controls_result_and_history_in_agreement(actions):
    ex = Explorer(_stack(), image="checkerboard", input_size=32)
    _check_consistent(ex)
    for action in actions:
        state_before = ex.state.snapshot()
        ex.message.value = ""
        ex.message.remove_class("rfw-error")
        controls_before = _do(ex, action)
        if _refused(ex):
            assert ex.state.snapshot() == state_before, action
            assert _controls(ex) == controls_before, action
            assert "\n" not in _message(ex), action
            assert "Not applied: " in _message(ex), action
        _check_consistent(ex)
        now = ex.state.snapshot()
        if now["stack"] is not state_before["stack"] or now["layer"] != state_before["layer"]:
            _editor_shows_the_layer(ex)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(["bypass", "c2", "c3", "undo", "redo", "reset", "up", "down"]), max_size=12))
def test_undo_and_redo_give_back_earlier_stacks_exactly(steps):
    state = ExplorerState(_stack(), 24)
    model = [state.stack]  # the expected history
    position = 0
    results = {id(state.stack): state.result.to_dict()}
    for step in steps:
        try:
            if step == "undo":
                state.undo()
                position -= 1
            elif step == "redo":
                state.redo()
                position += 1
            elif step in ("c2", "c3"):
                state.select_layer(step)
                continue
            else:
                getattr(state, {"up": "move", "down": "move"}.get(step, step))(
                    *(
                        (state.layer, -1 if step == "up" else 1)
                        if step in ("up", "down")
                        else (() if step == "reset" else (state.layer,))
                    )
                )
                model = [*model[: position + 1], state.stack]
                position += 1
        except rfw.RFError:
            pass
        assert state.history == tuple(model)
        assert state.position == position
        assert state.stack is model[position]
        expected = results.setdefault(id(state.stack), state.result.to_dict())
        assert state.result.to_dict() == expected


def test_the_editor_shows_the_layer_and_apply_changes_only_what_was_typed():
    torchvision = pytest.importorskip("torchvision")
    import torch

    ex = rfw.explore(torchvision.models.resnet18(), input_size=32)
    before = ex.result.counts["unproductive"]
    ex.controls["stack"].value = "conv1"
    assert [ex.controls[k].value for k in ("kernel", "stride", "dilation", "padding")] == ["7", "2", "1", "3"]
    ex.controls["kernel"].value = "5"
    ex.controls["apply"].click()
    conv1 = ex.stack["conv1"]
    assert (conv1.kernel, conv1.stride, conv1.padding) == ((5, 5), (2, 2), ((3, 3), (3, 3)))
    assert "kernel 7 -> 5" in _message(ex)
    assert "stride" not in _message(ex)
    # The same edit made on the torch model itself (only the kernel) gives the same verdicts.
    model = torchvision.models.resnet18()
    model.conv1 = torch.nn.Conv2d(3, 64, 5, stride=2, padding=3, bias=False)
    expected = rfw.analyze(model, 32)
    assert ex.result.unproductive_layers == expected.unproductive_layers
    assert ex.result.counts["unproductive"] != before or before == expected.counts["unproductive"]
    ex.controls["apply"].click()
    assert "nothing to change" in _message(ex)


def test_a_refused_edit_is_not_kept():
    ex = Explorer(_stack(), input_size=32)
    ex.controls["export_json"].click()
    exported = ex.export_text.value
    ex.controls["stack"].value = "c2"
    history = ex.state.history
    ex.controls["kernel"].value = "1" + "0" * 400
    ex.controls["apply"].click()
    assert _refused(ex)
    assert "at most 1,000,000" in _message(ex)
    assert ex.state.history == history
    ex.controls["export_json"].click()
    assert ex.export_text.value == exported
    ex.controls["resolution"].value = 20  # later changes work as before
    assert ex.result.input_size == (20, 20)


def test_a_parameter_that_overflows_the_analysis_is_refused_by_the_state():
    state = ExplorerState(_stack(), 32)
    before = state.snapshot()
    with pytest.raises(rfw.RFError, match=r"kernel_size must be at most .*MAX_LAYER_VALUE"):
        state.edit("c2", kernel=10**400)
    assert state.snapshot() == before


def test_default_layer_is_the_border_layer_or_the_last_spatial_one():
    stack = _stack()
    at_8 = rfw.analyze(stack, 8)
    assert default_layer(at_8) == at_8.border_layer
    at_64 = rfw.analyze(stack, 64)
    assert at_64.border_layer is None
    assert default_layer(at_64) == "c3"  # not the ReLU r3, not the global pool
    assert Explorer(stack, input_size=64).controls["layer"].value == "c3"


def test_default_layer_of_resnet18_without_a_border_layer():
    torchvision = pytest.importorskip("torchvision")
    ex = rfw.explore(torchvision.models.resnet18(), input_size=224)
    assert ex.result.border_layer is None
    assert ex.state.layer == "layer4.1.conv2"


def test_input_size_is_read_strictly():
    ex = Explorer(_stack(), input_size=(16, 32))
    assert ex.result.input_size == (16, 32)
    assert ex.controls["resolution"].value == 16
    ex.controls["resolution"].value = 8  # the slider keeps the aspect of the first size
    assert ex.result.input_size == (8, 16)
    for bad in ("32", 0, 2.5, (16, 32, 8), True):
        with pytest.raises(rfw.RFError, match="input size"):
            Explorer(_stack(), input_size=bad)


def test_a_huge_input_size_without_an_image_stays_small():
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ex = Explorer(_stack(), input_size=10000)
    assert ex.result.input_size == (10000, 10000)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 200


def test_uploads_show_in_the_sample_dropdown_and_bad_files_are_refused():
    ex = Explorer(_stack(), image="checkerboard", input_size=32)
    _upload(ex, "photo.png", _png())
    assert ex.state.image_name == "upload"
    assert ex.controls["image"].value == "upload"
    assert ("(photo.png)", "upload") in list(ex.controls["image"].options)
    shown = ex.state.image
    _upload(ex, "cut.jpg", _jpeg()[:300])
    assert _refused(ex)
    assert "'cut.jpg'" in _message(ex)
    assert "previous image is kept" in _message(ex)
    assert ex.state.image is shown
    ex.controls["image"].value = "rings"
    assert ex.state.image_name == "rings"
    assert list(ex.controls["image"].options) == ["none", "grace_hopper", "checkerboard", "rings"]


def test_undo_redo_and_reset_through_the_buttons():
    ex = Explorer(_stack(), input_size=32)
    assert ex.controls["undo"].disabled
    assert ex.controls["redo"].disabled
    ex.controls["stack"].value = "p1"
    ex.controls["bypass"].click()
    bypassed = ex.stack
    ex.controls["reset"].click()
    assert ex.stack is ex.state.original
    ex.controls["undo"].click()
    assert ex.stack is bypassed
    ex.controls["undo"].click()
    assert ex.stack is ex.state.original
    ex.controls["redo"].click()
    assert ex.stack is bypassed
    assert not ex.controls["redo"].disabled
    ex.controls["undo"].click()
    ex.controls["stack"].value = "c3"
    ex.controls["remove"].click()  # a new edit drops the redo steps
    assert ex.controls["redo"].disabled
    ex.controls["reset"].click()
    ex.controls["reset"].click()
    assert "original stack is shown already" in _message(ex)


def test_state_is_observable():
    state = ExplorerState(_stack(), 32)
    seen: list[tuple[str, object]] = []
    state.observe(
        lambda change: seen.append((change["name"], change["new"])), names=["resolution", "revision"]
    )
    state.set_resolution(12)
    assert ("resolution", (12, 12)) in seen
    assert seen[-1][0] == "revision"
    seen.clear()
    with pytest.raises(rfw.RFError):
        state.set_resolution(0)
    assert seen == []


def test_strategy_dropdown_follows_undo():
    ex = Explorer(_stack(), input_size=8)
    ex.controls["suggest"].click()
    ex.controls["strategy"].value = "trim"
    assert ex.stack is ex.suggestions["trim"].stack
    ex.controls["undo"].click()
    assert ex.controls["strategy"].value == ""
    ex.controls["resolution"].value = 9
    assert ex.controls["strategy"].value is None  # neither the suggested stack and size nor a preview
    exported = json.loads(json.dumps(ex.state.stack.names))
    assert exported == list(ex.stack.names)
