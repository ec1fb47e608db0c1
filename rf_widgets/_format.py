"""How numbers and verdicts read on screen: the one home of every report text.

The text report, the HTML table, the plots, the Explorer and the strategies all format through these
functions, so they cannot disagree. Pure stdlib: importing this module loads nothing heavy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rf_widgets.core.results import Analysis

__all__ = [
    "count",
    "feasible_range",
    "per_axis",
    "percent",
    "size",
    "spatial_line",
    "summary_lines",
    "summary_rows",
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


def spatial_line(result: Analysis) -> str:
    """``7 of 18 convolutions and pools (17 of 69 layers)``: how much of the network is unproductive."""
    spatial = sum(result.verdicts.spatial)
    bad_spatial = sum(1 for i in result.verdicts.unproductive if result.verdicts.spatial[i])
    return (
        f"{bad_spatial} of {spatial} convolutions and pools "
        f"({len(result.verdicts.unproductive)} of {len(result.stack.layers)} layers)"
    )


def _unknown(result: Analysis) -> list[str]:
    return [layer.name for layer in result.layers if layer.status == "unknown"]


def summary_rows(result: Analysis) -> list[tuple[str, str]]:
    """The verdict summary as (label, value) rows, as the Explorer shows it."""
    share = result.unproductive_share()
    here = size(result.input_size)
    rows = [
        ("Input", here),
        ("Border layer", result.border_layer or "none"),
        ("Unproductive", spatial_line(result)),
    ]
    if share["params"] is not None:
        rows.append(("Parameters in unproductive layers", percent(share["params"])))
    if share["macs"] is not None:
        rows.append((f"Multiply-adds in unproductive layers at {here}", percent(share["macs"])))
    rows.append(("Feasible input resolutions", feasible_range(*result.resolution_range)))
    if len(result.border_layers) > 1:
        rows.append(("All border layers", ", ".join(result.border_layers)))
    unknown = _unknown(result)
    if unknown:
        rows.append(("Unknown operations (values after them are lower bounds)", ", ".join(unknown)))
    return rows


def summary_lines(result: Analysis) -> list[str]:
    """The same summary as text lines (``repr`` of an analysis, the CLI, ``%rfa``)."""
    share = result.unproductive_share()
    cost = [
        f"{percent(value)} of the {label}"
        for value, label in ((share["params"], "parameters"), (share["macs"], "multiply-adds at this size"))
        if value is not None
    ]
    lines = [
        f"{result.model} at {size(result.input_size)}: border layer {result.border_layer or 'none'}",
        f"unproductive: {spatial_line(result)}" + "".join(f", {c}" for c in cost),
        f"feasible input resolutions: {feasible_range(*result.resolution_range)}",
    ]
    if len(result.border_layers) > 1:
        lines.append(f"all border layers: {', '.join(result.border_layers)}")
    unknown = _unknown(result)
    if unknown:
        lines.append(f"unknown operations (values after them are lower bounds): {', '.join(unknown)}")
    return lines
