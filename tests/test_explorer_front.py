"""The Explorer's design search: search, preview a candidate live, undo, build; refusals change nothing.

Driven from Python through the controls, as a user would in the Strategies tab.
"""

from __future__ import annotations

import html
import json

import pytest

import rf_widgets as rfw
from rf_widgets.widgets import Explorer

torch = pytest.importorskip("torch")
nn = torch.nn

from small_nets import small_cnn  # noqa: E402


def declared() -> rfw.Stack:
    return rfw.Stack(
        [
            rfw.conv("c1", 3, stride=2, padding=1),
            rfw.conv("c2", 3, padding=1),
            rfw.pool("p2", 2),
            rfw.conv("c3", 3, padding=1),
            rfw.conv("c4", 3, padding=1),
            rfw.global_pool("gap"),
        ],
        name="declared",
    )


def _message(ex: Explorer) -> str:
    return html.unescape(ex.message.value)


def _refused(ex: Explorer) -> bool:
    return "rfw-error" in ex.message._dom_classes


def _seen(ex: Explorer) -> dict[str, object]:
    """The state and every control's visible traits (the picture by its bytes)."""
    seen: dict[str, object] = dict(ex.state.snapshot())
    for key, control in ex.controls.items():
        if key in ("upload", "tabs"):
            continue
        for trait in ("value", "options", "disabled", "max"):
            if control.has_trait(trait):
                value = getattr(control, trait)
                seen[f"{key}.{trait}"] = tuple(value) if isinstance(value, (list, tuple)) else value
    seen["summary"], seen["table"], seen["picture"] = ex.summary.value, ex.table.value, ex.picture.value
    return seen


def _index(ex: Explorer, candidate) -> int:
    return next(i for i, c in enumerate(ex.front_view.front) if c is candidate)


@pytest.fixture
def torch_explorer() -> Explorer:
    ex = Explorer(small_cnn(), input_size=16)
    ex.controls["front_budget"].value = 4.0
    ex.controls["front_search"].click()
    assert not _refused(ex), _message(ex)
    return ex


def test_search_fills_the_choice_with_the_picks_and_draws_the_front(torch_explorer):
    ex = torch_explorer
    front = ex.front_view.front
    assert front is not None
    assert front.budget == 4.0
    assert f"{len(front)} candidates" in _message(ex)
    labels = [label for label, _ in ex.controls["front_choice"].options]
    for name in ("efficiency", "performance", "hybrid"):
        assert any(label.startswith(f"{name}: {front[name].label}") for label in labels)
    listed = {value for _, value in ex.controls["front_choice"].options}
    assert {_index(ex, c) for c in front.pareto} <= listed
    assert ex.controls["front_choice"].value == -1  # the searched stack is shown
    assert ex.controls["front_plot"].value[:8] == b"\x89PNG\r\n\x1a\n"
    assert ex.controls["front_plot"].layout.display is None  # shown once there is a front
    details = html.unescape(ex.controls["front_details"].value)
    assert f"efficiency: {front['efficiency'].label}" in details


def test_choosing_a_candidate_previews_its_verdicts_and_undo_goes_back(torch_explorer):
    ex = torch_explorer
    front, base, before = ex.front_view.front, ex.stack, ex.controls["front_plot"].value
    pick = front["hybrid"]
    ex.controls["front_choice"].value = _index(ex, pick)
    assert not _refused(ex), _message(ex)
    assert ex.stack is pick.stack
    assert ex.state.resolution == pick.input_size
    # the Explorer's own analysis of the shown stack agrees with the prediction of the search
    assert {layer.name: layer.status for layer in ex.result.layers} == pick.status
    assert ex.result.border_layer == pick.border_layer
    assert ex.front_view.shown() is pick
    assert ex.controls["front_plot"].value != before  # the ring moved
    assert "shown: " + pick.label in html.unescape(ex.controls["front_details"].value)
    # a second preview replaces the first: one Undo back to the searched stack
    other = front["efficiency"]
    ex.controls["front_choice"].value = _index(ex, other)
    assert ex.stack is other.stack
    assert len(ex.state.history) == 2
    ex.controls["undo"].click()
    assert ex.stack is base
    assert ex.controls["front_choice"].value == -1
    ex.controls["redo"].click()
    assert ex.stack is other.stack
    assert ex.controls["front_choice"].value == _index(ex, other)
    ex.controls["front_choice"].value = -1
    assert ex.stack is base
    assert ex.state.resolution == (16, 16)


def test_build_makes_the_predicted_module_and_leaves_the_model(torch_explorer):
    ex = torch_explorer
    model = ex.state.model
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    pick = ex.front_view.front["efficiency"]
    assert ex.controls["front_build"].disabled  # nothing to build while the original is shown
    ex.controls["front_choice"].value = _index(ex, pick)
    assert not ex.controls["front_build"].disabled
    ex.controls["front_build"].click()
    assert not _refused(ex), _message(ex)
    built = ex.front_view.built
    assert isinstance(built, nn.Module)
    assert built is not model
    assert sum(p.numel() for p in built.parameters()) == pick.params
    assert built(torch.zeros(2, 3, *pick.input_size)).shape == (2, 10)
    assert "built" in _message(ex)
    assert "unchanged" in _message(ex)
    assert "Export tab" in _message(ex)  # where a Voila user finds what was built (issue 20)
    assert json.loads(ex.export_text.value)["name"] == ex.stack.name
    after = model.state_dict()
    assert after.keys() == weights.keys()
    assert all(torch.equal(after[k], weights[k]) for k in weights)
    assert rfw.analyze(built, pick.input_size).unproductive_layers == ()


def test_input_size_candidate_previews_at_its_size(torch_explorer):
    ex = torch_explorer
    front = ex.front_view.front
    sized = next(c for c in front.pareto if c.input_size != (16, 16))
    ex.controls["front_choice"].value = _index(ex, sized)
    assert ex.state.resolution == sized.input_size
    assert ex.controls["resolution"].value == sized.input_size[0]


def test_bad_budget_is_refused_and_changes_nothing(torch_explorer):
    ex = torch_explorer
    before, front = _seen(ex), ex.front_view.front
    ex.controls["front_budget"].value = 0.0
    ex.controls["front_search"].click()
    assert _refused(ex)
    assert "budget must be a positive" in _message(ex)
    after = _seen(ex)
    after.pop("front_budget.value"), before.pop("front_budget.value")
    assert after == before
    assert ex.front_view.front is front


def test_a_stale_search_refuses_previews_and_builds(torch_explorer):
    ex = torch_explorer
    front = ex.front_view.front
    ex.controls["layer"].value = "0"
    ex.controls["stride"].value = "1"
    ex.controls["apply"].click()  # an edit after the search
    assert not _refused(ex), _message(ex)
    edited = ex.stack
    before = _seen(ex)
    ex.controls["front_choice"].value = _index(ex, front["performance"])
    assert _refused(ex)
    assert "press Search again" in _message(ex)
    assert _seen(ex) == before
    assert ex.stack is edited
    assert ex.controls["front_choice"].value is None  # put back: the edited stack is no candidate
    # a new search on the edited stack previews, but cannot build a torch module from it
    ex.controls["front_search"].click()
    assert not _refused(ex), _message(ex)
    new = ex.front_view.front["efficiency"]
    ex.controls["front_choice"].value = _index(ex, new)
    assert ex.stack is new.stack
    ex.controls["front_build"].click()
    assert _refused(ex)
    assert "edited stack" in _message(ex)
    assert ex.front_view.built is None


def test_a_declared_stack_previews_but_has_nothing_to_build():
    ex = Explorer(declared(), input_size=16)
    ex.controls["front_budget"].value = 4.0
    ex.controls["front_search"].click()
    assert not _refused(ex), _message(ex)
    front = ex.front_view.front
    pick = front["efficiency"]  # a declared stack has no channels, so no compute: a larger input wins
    ex.controls["front_choice"].value = _index(ex, pick)
    assert ex.stack is pick.stack
    assert ex.state.resolution == pick.input_size != (16, 16)
    labels = [label for label, _ in ex.controls["front_choice"].options]
    assert len(set(labels)) == len(labels)
    assert len({v for _, v in ex.controls["front_choice"].options}) == len(labels)
    before = _seen(ex)
    ex.controls["front_build"].click()
    assert _refused(ex)
    assert "needs a torch model" in _message(ex)
    assert _seen(ex) == before


def test_the_search_says_it_runs_while_it_runs_and_the_button_comes_back():
    ex = Explorer(declared(), input_size=32)
    button = ex.controls["front_search"]
    during: list[tuple[bool, str, str]] = []

    def record(change: dict) -> None:
        during.append((change["new"], button.description, _message(ex)))

    button.observe(record, "disabled")
    button.click()
    assert during[0][:2] == (True, "Searching...")
    assert "Searching the front of declared at 32x32 px under 1x..." in during[0][2]
    assert [d[:2] for d in during[1:]] == [(False, "Search front")]
    assert "candidates" in _message(ex)
    assert not _refused(ex)


def test_a_network_no_edit_applies_to_is_refused_and_changes_nothing():
    ex = Explorer(rfw.Stack([rfw.conv("c1", 1), rfw.global_pool("gap")], name="flat"), input_size=8)
    ex.controls["front_build"].click()
    assert _refused(ex)
    assert "Search front first" in _message(ex)
    before = _seen(ex)
    ex.controls["front_search"].click()
    assert _refused(ex)
    assert "no edit of the architecture applies to flat" in _message(ex)
    assert _seen(ex) == before
    assert ex.front_view.front is None
    assert ex.controls["front_build"].disabled


def test_missing_picks_are_explained(torch_explorer):
    ex = torch_explorer
    ex.controls["front_budget"].value = 0.01  # below every candidate's compute
    ex.controls["front_search"].click()
    front = ex.front_view.front
    details = html.unescape(ex.controls["front_details"].value)
    for name in ("efficiency", "performance", "hybrid"):
        if front.picks[name] is None:
            assert f"{name}: none: {front.reasons[name]}" in details
    assert any(front.picks[name] is None for name in front.picks)


def test_undo_past_the_search_makes_it_stale():
    ex = Explorer(declared(), input_size=16)
    ex.controls["layer"].value = "c1"
    ex.controls["stride"].value = "1"
    ex.controls["apply"].click()  # position 1: the search runs on this edited stack
    edited = ex.stack
    ex.controls["front_search"].click()
    assert not _refused(ex), _message(ex)
    ex.controls["undo"].click()  # back to position 0, before the searched stack
    assert ex.stack is not edited
    before = _seen(ex)
    ex.controls["front_choice"].value = -1
    assert _refused(ex)
    assert "press Search again" in _message(ex)
    assert _seen(ex) == before
    ex.controls["redo"].click()  # the searched stack again: previews work again
    pick = ex.front_view.front["efficiency"]
    ex.controls["front_choice"].value = _index(ex, pick)
    assert not _refused(ex), _message(ex)
    assert ex.stack is pick.stack


def test_a_click_on_the_interactive_front_previews_the_candidate_under_it():
    pytest.importorskip("ipympl")
    from matplotlib.backend_bases import MouseEvent

    ex = Explorer(small_cnn(), input_size=16, interactive=True)
    ex.controls["front_budget"].value = 4.0
    ex.controls["front_search"].click()
    assert not _refused(ex), _message(ex)
    view, canvas = ex.front_view.plot, ex.controls["front_canvas"]
    assert canvas in ex.controls["front_box"].children
    assert ex.controls["front_plot"] not in ex.controls["front_box"].children
    assert canvas.figure is view.figure
    canvas.draw()
    pick = ex.front_view.front["hybrid"]
    x, y = view.ax.transData.transform((view.x(pick), view.y(pick)))
    canvas.callbacks.process("button_press_event", MouseEvent("button_press_event", canvas, x + 2, y - 2, 1))
    assert not _refused(ex), _message(ex)
    assert ex.front_view.shown() is not None
    shown = ex.front_view.shown()
    assert (shown.macs_ratio, shown.unproductive_macs_share) == (
        pick.macs_ratio,
        pick.unproductive_macs_share,
    )
    assert ex.stack is shown.stack
    # a click far from every mark does nothing
    before = ex.stack
    canvas.callbacks.process("button_press_event", MouseEvent("button_press_event", canvas, 1, 1, 1))
    assert ex.stack is before
