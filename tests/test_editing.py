"""Stack edits: each returns a new valid stack or raises a clear error; code export rebuilds the stack."""

from __future__ import annotations

import pytest

import rf_widgets as rfw
from rf_widgets import editing
from rf_widgets.errors import GraphError, LayerSpecError


@pytest.fixture
def stack() -> rfw.Stack:
    return rfw.Stack(
        [
            rfw.conv("a", 3),
            rfw.pool("p", 2),
            rfw.conv("b", 3, padding=1),
            rfw.add("s", ["p", "b"]),
            rfw.global_pool("g"),
        ],
        name="edits",
    )


def _inputs(stack: rfw.Stack) -> dict[str, tuple[str, ...]]:
    return {layer.name: layer.inputs for layer in stack}


def test_insert_rewires_the_chain(stack):
    edited = editing.insert_layer(stack, 1, rfw.conv("x", 5))
    assert edited.names == ("a", "x", "p", "b", "s", "g")
    assert _inputs(edited)["x"] == ("a",)
    assert _inputs(edited)["p"] == ("x",)
    assert rfw.analyze(edited, 32).layer("p").r_max == (3 + 4 + 1, 3 + 4 + 1)
    assert stack.names == ("a", "p", "b", "s", "g")  # the original is untouched


def test_remove_hands_inputs_to_successors(stack):
    edited = editing.remove_layer(stack, "p")
    assert _inputs(edited)["b"] == ("a",)
    assert _inputs(edited)["s"] == ("a", "b")


def test_remove_refuses_a_used_merge(stack):
    with pytest.raises(GraphError, match="cannot remove the merge 's'"):
        editing.remove_layer(stack, "s")


def test_move_swaps_chained_layers(stack):
    edited = editing.move_layer(stack, "a", 1)
    assert edited.names[:2] == ("p", "a")
    assert _inputs(edited) == {
        "p": ("input",),
        "a": ("p",),
        "b": ("a",),
        "s": ("a", "b"),
        "g": ("s",),
    }
    with pytest.raises(GraphError, match="already the first layer"):
        editing.move_layer(stack, "a", -1)
    with pytest.raises(GraphError, match="not a simple chain"):
        editing.move_layer(stack, "b", -1)  # p also feeds the merge


def test_change_and_bypass(stack):
    changed = editing.change_layer(stack, "a", kernel=(3, 5), dilation=2)
    assert changed["a"].kernel == (3, 5)
    assert rfw.analyze(changed, 32).layer("a").r_max == (5, 9)
    bypassed = editing.bypass_layer(stack, "p")
    assert bypassed["p"].stride == (1, 1)
    assert rfw.analyze(bypassed, 32).layer("b").jump == (1, 1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kernel": 0}, "kernel_size must be >= 1 on every axis, got (0,) for layer 'a'"),
        ({"stride": -2}, "stride must be >= 1"),
        ({"padding": -1}, "padding must be >= 0"),
        ({"colour": "red"}, "cannot change colour"),
    ],
)
def test_invalid_changes_raise_and_name_the_layer(stack, changes, message):
    with pytest.raises(LayerSpecError) as caught:
        editing.change_layer(stack, "a", **changes)
    assert message in str(caught.value)


def test_global_layer_has_no_kernel_to_change(stack):
    with pytest.raises(LayerSpecError, match="layer 'g' is global"):
        editing.change_layer(stack, "g", kernel=3)


def test_python_export_rebuilds_the_same_analysis(stack):
    edited = editing.insert_layer(stack, 2, rfw.pool("q", 3, stride=1, padding=1, ceil_mode=True))
    namespace: dict[str, object] = {}
    exec(editing.to_python(edited), namespace)
    rebuilt = namespace["stack"]
    assert isinstance(rebuilt, rfw.Stack)
    assert rfw.analyze(rebuilt, 33).to_dict() == rfw.analyze(edited, 33).to_dict()
