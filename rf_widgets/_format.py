"""How numbers and verdicts read on screen: the one home of every report text.

The text report, the HTML table, the plots, the Explorer and the strategies all format through these
functions, so they cannot disagree. Pure stdlib: importing this module loads nothing heavy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

__all__ = [
    "count",
    "feasible_range",
    "per_axis",
    "percent",
    "size",
]


def _number(value: Any) -> str:
    if value == math.inf:
        return "global"
    if isinstance(value, Fraction):
        return str(value.numerator) if value.denominator == 1 else f"{float(value):g}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def per_axis(values: Sequence[Any] | None, sep: str = "x") -> str:
    """``35`` when every axis agrees, ``35x67`` otherwise; ``global`` for infinite values, ``-`` for none."""
    if values is None:
        return "-"
    shown = [_number(v) for v in values]
    if not shown:
        return "-"
    return shown[0] if len(set(shown)) == 1 else sep.join(shown)


def size(values: Sequence[int]) -> str:
    """A map or input size with every axis spelled out: ``32x32``."""
    return "x".join(str(v) for v in values)


def percent(value: float | None) -> str:
    """``12.5%``; ``-`` when there is nothing to divide by."""
    return "-" if value is None else f"{value:.1%}"


def count(value: int) -> str:
    """Parameters and multiply-adds: ``11.69M``, ``66.6k``, ``2.79G``; below 10,000 as they are."""
    if value >= 10**9:
        return f"{value / 1e9:.2f}G"
    if value >= 10**6:
        return f"{value / 1e6:.2f}M"
    if value >= 10**4:
        return f"{value / 1e3:.1f}k"
    return str(value)


def feasible_range(low: int | None, high: int | None) -> str:
    """The feasible input resolutions in words, including the empty and open cases."""
    if low is not None and high is not None and low > high:
        return (
            f"none: the smallest size without unproductive layers ({low}) exceeds the largest field ({high})"
        )
    shown_low = "?" if low is None else str(low)
    shown_high = "unbounded" if high is None else str(high)
    return f"{shown_low} to {shown_high}"
