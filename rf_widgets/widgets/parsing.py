"""Reading the editor's text fields: ``"3"``, ``"3,5"``, ``"3x5"``, ``"(1,0),(2,2)"``."""

from __future__ import annotations

import re

from rf_widgets.errors import LayerSpecError

__all__ = ["format_padding", "format_per_axis", "parse_padding", "parse_per_axis"]


def parse_per_axis(text: str, field: str) -> int | tuple[int, ...]:
    """An int, or one int per axis separated by commas, spaces or ``x``."""
    parts = [p for p in re.split(r"[,\sx×]+", text.strip().strip("()[]")) if p]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise LayerSpecError(f"{field} must be whole numbers like 3 or 3,5, got {text!r}") from None
    if not values:
        raise LayerSpecError(f"{field} is empty")
    return values[0] if len(values) == 1 else values


def parse_padding(text: str) -> int | tuple[int, ...] | tuple[tuple[int, int], ...]:
    """Padding as an int, one int per axis, or one ``(lo, hi)`` pair per axis."""
    pairs = re.findall(r"\(\s*(-?\d+)\s*,\s*(-?\d+)\s*\)", text)
    if pairs:
        return tuple((int(lo), int(hi)) for lo, hi in pairs)
    return parse_per_axis(text, "padding")


def format_per_axis(values: tuple[int, ...] | None) -> str:
    if not values:
        return ""
    return str(values[0]) if len(set(values)) == 1 else ",".join(str(v) for v in values)


def format_padding(padding: tuple[tuple[int, int], ...] | None) -> str:
    if not padding:
        return ""
    if all(lo == hi for lo, hi in padding):
        return format_per_axis(tuple(lo for lo, _ in padding))
    return ",".join(f"({lo},{hi})" for lo, hi in padding)
