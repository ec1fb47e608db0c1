"""Bad input to the core raises the right rf_widgets error, and the message names the culprit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import rf_widgets as rfw
from rf_widgets import INPUT, conv, pool


@contextmanager
def raises(error: type[rfw.RFError], *culprits: str) -> Iterator[pytest.ExceptionInfo[rfw.RFError]]:
    """``pytest.raises(error)`` that also checks that every culprit appears in the message."""
    with pytest.raises(error) as info:
        yield info
    message = str(info.value)
    for culprit in culprits:
        assert culprit in message, f"{culprit!r} not in {message!r}"


# -- layer parameters ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "parameter", "value"),
    [
        (lambda: conv("conv1", 0), "kernel", "0"),
        (lambda: conv("conv1", (0, 3)), "kernel", "(0, 3)"),
        (lambda: conv("conv1", -3), "kernel", "-3"),
        (lambda: conv("conv1", 3, stride=-1), "stride", "-1"),
        (lambda: conv("conv1", 3, stride=0), "stride", "0"),
        (lambda: conv("conv1", 3, stride=(1, -2)), "stride", "-2"),
        (lambda: pool("conv1", 3, stride=-2), "stride", "-2"),
        (lambda: conv("conv1", 3, dilation=0), "dilation", "0"),
        (lambda: pool("conv1", 2, dilation=(1, 0)), "dilation", "0"),
        (lambda: conv("conv1", 3, padding=-1), "padding", "-1"),
        (lambda: conv("conv1", 3, padding=((1, -1), (0, 0))), "padding", "-1"),
        (lambda: pool("conv1", 3, padding=(2, -3)), "padding", "-3"),
        (lambda: conv("conv1", 2.5), "kernel", "2.5"),
        (lambda: conv("conv1", "3"), "kernel", "'3'"),
        (lambda: conv("conv1", True), "kernel", "True"),
        (lambda: conv("conv1", 3, padding=((1, 2, 3),)), "padding", "(1, 2, 3)"),
        (lambda: rfw.adaptive_pool("conv1", 0), "output_size", "0"),
    ],
)
def test_invalid_layer_parameters(make, parameter, value):
    with raises(rfw.LayerSpecError, "'conv1'", parameter, value):
        make()


def test_axes_that_disagree_within_a_layer():
    with raises(rfw.LayerSpecError, "'c'", "axes"):
        conv("c", (3, 3), stride=(1, 1, 1))


def test_axes_that_disagree_with_the_stack():
    with raises(rfw.LayerSpecError, "'c2'", "kernel", "3"):
        rfw.Stack([conv("c1", 3), conv("c2", (3, 3, 3))], ndim=2)


def test_input_is_a_reserved_name():
    with raises(rfw.LayerSpecError, f"'{INPUT}'"):
        conv(INPUT, 3)


def test_empty_layer_name():
    with raises(rfw.LayerSpecError, "name"):
        conv("", 3)


def test_merge_without_inputs():
    with raises(rfw.LayerSpecError, "'sum'"):
        rfw.add("sum", [])


# -- the graph ----------------------------------------------------------------------------------------


def test_unknown_input_name():
    with raises(rfw.GraphError, "'c2'", "'nowhere'"):
        rfw.Stack([conv("c1", 3), conv("c2", 3, inputs="nowhere")])


def test_unknown_input_name_in_a_merge():
    with raises(rfw.GraphError, "'sum'", "'c9'"):
        rfw.Stack([conv("c1", 3), rfw.add("sum", ["c1", "c9"])])


def test_duplicate_name():
    with raises(rfw.GraphError, "'c1'"):
        rfw.Stack([conv("c1", 3), conv("c2", 3), conv("c1", 1)])


def test_cycle_of_two_layers():
    with raises(rfw.GraphError, "'a'", "'b'", "cycle"):
        rfw.Stack([conv("a", 3, inputs="b"), conv("b", 3, inputs="a")])


def test_cycle_behind_a_valid_prefix():
    with raises(rfw.GraphError, "'b'", "'c'", "cycle") as info:
        rfw.Stack([conv("a", 3), rfw.add("b", ["a", "c"]), conv("c", 3, inputs="b"), conv("d", 1)])
    assert "'a'" not in str(info.value)
    assert "'d'" not in str(info.value)  # it only follows the cycle


def test_layer_that_is_its_own_input():
    with raises(rfw.GraphError, "'a'", "cycle"):
        rfw.Stack([conv("a", 3, inputs="a")])


@pytest.mark.parametrize(
    ("intruder", "type_name"), [("c2", "str"), (42, "int"), ({"kernel": 3}, "dict"), (None, "NoneType")]
)
def test_stack_of_something_other_than_layers(intruder, type_name):
    with raises(rfw.GraphError, type_name, "Layer"):
        rfw.Stack([conv("c1", 3), intruder])


def test_empty_stack():
    with raises(rfw.GraphError, "'nothing'"):
        rfw.Stack([], name="nothing")


# -- analyze() ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "type_name"),
    [
        (42, "int"),
        ({"layers": []}, "dict"),
        ([], "list"),
        ([1, 2], "list"),
        (None, "NoneType"),
        (3.5, "float"),
    ],
)
def test_analyze_of_an_unsupported_object(model, type_name):
    with raises(rfw.ModelImportError, type_name):
        rfw.analyze(model, 32)


STACK = rfw.Stack([conv("c1", 3, padding=1), pool("p1", 2)])


@pytest.mark.parametrize(
    "size",
    [
        3.5,
        "32",
        True,
        False,
        0,
        -4,
        None,
        (32,),
        (32, 32, 32),
        (32, 0),
        (32, 2.5),
        (True, 32),
        [],
        "3x3",
        2**0.5,
    ],
)
def test_bad_resolution(size):
    with raises(rfw.ResolutionError, repr(size)):
        rfw.analyze(STACK, size)


def test_bad_resolution_of_a_1d_stack():
    stack = rfw.Stack([conv("c1", 3)], ndim=1)
    with raises(rfw.ResolutionError, "(32, 32)"):
        rfw.analyze(stack, (32, 32))
    assert rfw.analyze(stack, (32,)).input_size == rfw.analyze(stack, 32).input_size == (32,)


def test_bad_resolution_in_at():
    result = rfw.analyze(STACK, 32)
    with raises(rfw.ResolutionError, "-1"):
        result.at(-1)


# -- asking the result about something that is not there -----------------------------------------------


@pytest.mark.parametrize("unit", [16, (0, 16), (-1, 0), (40, 40), (1, 2, 3), (1,)])
def test_unit_box_outside_the_feature_map(unit):
    result = rfw.analyze(STACK, 32)  # p1 has a 16x16 map
    with raises(rfw.ResolutionError, "'p1'", repr(unit), "16x16"):
        result.unit_box("p1", unit)


def test_unit_box_of_an_unknown_layer():
    with raises(rfw.GraphError, "'p9'"):
        rfw.analyze(STACK, 32).unit_box("p9", 0)


def test_unit_box_of_a_global_layer():
    result = rfw.analyze(rfw.Stack([conv("c1", 3), rfw.global_pool("gap")]), 8)
    with raises(rfw.GraphError, "'gap'", "global"):
        result.unit_box("gap", 0)


def test_unit_box_with_an_unknown_path():
    with raises(rfw.RFError, "'widest'"):
        rfw.analyze(STACK, 32).unit_box("p1", 0, path="widest")


def test_unknown_layer_name():
    with raises(rfw.GraphError, "'conv9'"):
        rfw.analyze(STACK, 32).layer("conv9")


def test_every_error_is_a_value_error():
    for error in (rfw.LayerSpecError, rfw.GraphError, rfw.ResolutionError, rfw.ModelImportError):
        assert issubclass(error, rfw.RFError)
        assert issubclass(error, ValueError)
