"""The one unknown-operation warning all three frontends give (rf_widgets.frontends.reporting)."""

from __future__ import annotations

import warnings

import pytest

from rf_widgets.errors import UnknownOperationWarning
from rf_widgets.frontends.reporting import warn_unknown


def test_the_first_eight_are_named_and_the_rest_counted():
    names = [f"'op{i}'" for i in range(10)]
    with pytest.warns(UnknownOperationWarning) as caught:
        warn_unknown("net", names, stacklevel=1)
    (warning,) = caught
    assert str(warning.message) == (
        "net: no receptive-field rule for 'op0', 'op1', 'op2', 'op3', 'op4', 'op5', 'op6', 'op7' "
        "and 2 more; they are reported as unknown"
    )
    assert warning.filename == __file__  # stacklevel counts from the caller, as for warnings.warn


def test_nothing_unknown_warns_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_unknown("net", [])
