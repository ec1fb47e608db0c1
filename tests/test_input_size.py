"""Input sizes are read strictly by analyze(): no string, boolean or float is converted, no absurd size."""

from __future__ import annotations

import pytest

import rf_widgets as rfw

STACK = [rfw.conv("c1", 3, stride=2), rfw.conv("c2", 3)]


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ("32", "must be a positive integer"),
        (True, "must be a positive integer"),
        (32.0, "must be a positive integer"),
        ((16, "32"), "positive integer on every axis"),
        ((), "input size is empty"),
        (0, "must be a positive integer"),
        (10**400, "must be at most 2147483648 per axis, got an integer of 401 digits"),
        ((16, 32, 8), "one value per spatial axis (2)"),
    ],
)
def test_bad_sizes_are_refused_in_one_line(size, message):
    with pytest.raises(rfw.ResolutionError) as caught:
        rfw.analyze(STACK, size)
    assert message in str(caught.value)
    assert len(str(caught.value)) < 200


def test_a_size_per_axis_is_used_as_given():
    result = rfw.analyze(STACK, (16, 32))
    assert result.input_size == (16, 32)
    assert result.layer("c1").feature_map == (7, 15)  # floor((n - 3) / 2) + 1


def test_a_bad_size_is_refused_before_a_model_is_imported(monkeypatch):
    import rf_widgets._api as api

    monkeypatch.setattr(api, "to_stack", lambda model: pytest.fail("imported before the size was checked"))
    with pytest.raises(rfw.ResolutionError):
        rfw.analyze("torchvision:resnet18", "224")


def test_at_refuses_a_size_beyond_any_image_with_a_short_message() -> None:
    """``Analysis.at()`` goes through the same check as ``analyze()`` (it used to overflow a float)."""
    result = rfw.analyze([rfw.conv("c", 3)], 8)
    with pytest.raises(
        rfw.ResolutionError, match="at most 2147483648 per axis, got an integer of 401 digits"
    ):
        result.at(10**400)
    with pytest.raises(rfw.ResolutionError, match="at most 2147483648 per axis, got 2147483649"):
        result.at((8, 2**31 + 1))
    assert result.at(2**31).layer("c").feature_map == (2**31 - 2, 2**31 - 2)
