"""Reading the editor's text fields: ``"3"``, ``"3,5"``, ``"3x5"``, ``"(1,0),(2,2)"``."""

from __future__ import annotations

import re

from rf_widgets.errors import LayerSpecError

__all__ = ["format_padding", "format_per_axis", "parse_padding", "parse_per_axis"]


MAX_VALUE = 1_000_000
"""The largest kernel, stride, dilation or padding a field accepts (no network comes near it)."""
MAX_TEXT = 1000


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def parse_per_axis(text: str, field: str) -> int | tuple[int, ...]:
    """An int, or one int per axis separated by commas, spaces or ``x``."""
    if len(text) > MAX_TEXT:
        raise LayerSpecError(f"{field} is {len(text)} characters long; at most {MAX_TEXT} are read")
    parts = [p for p in re.split(r"[,\sx×]+", text.strip().strip("()[]")) if p]
    if not all(re.fullmatch(r"[+-]?\d+", p) for p in parts):
        raise LayerSpecError(f"{field} must be whole numbers like 3 or 3,5, got {_shown(text)}")
    values = tuple(int(p) for p in parts)
    if not values:
        raise LayerSpecError(f"{field} is empty")
    _check_range(values, field, text)
    return values[0] if len(values) == 1 else values


def _check_range(values: tuple[int, ...], field: str, text: str) -> None:
    if any(abs(v) > MAX_VALUE for v in values):
        raise LayerSpecError(f"{field} must be at most {MAX_VALUE:,} on every axis, got {_shown(text)}")


PADDING_WORDS = ("valid", "same", "same_upper", "same_lower")
_PAIR = r"\(\s*-?\d+\s*,\s*-?\d+\s*\)"
_PAIRS = re.compile(rf"\s*[\[(]?\s*{_PAIR}(\s*,?\s*{_PAIR})*\s*,?\s*[\])]?\s*")
"""The whole field: (lo, hi) pairs, optionally in one pair of outer brackets."""


def parse_padding(text: str) -> str | int | tuple[int, ...] | tuple[tuple[int, int], ...]:
    """Padding as an int, one int per axis, one ``(lo, hi)`` pair per axis, or a word
    (``valid``, ``same``, ``same_lower``: padding that depends on the input size)."""
    if len(text) > MAX_TEXT:
        raise LayerSpecError(f"padding is {len(text)} characters long; at most {MAX_TEXT} are read")
    word = text.strip().lower()
    if word in PADDING_WORDS:
        return word
    pairs = re.findall(r"\(\s*(-?\d+)\s*,\s*(-?\d+)\s*\)", text)
    if pairs and not _PAIRS.fullmatch(text):
        raise LayerSpecError(
            f"padding must be (lo, hi) pairs like (1,0),(2,2) and nothing else, got {_shown(text)}"
        )
    if pairs:
        values = tuple((int(lo), int(hi)) for lo, hi in pairs)
        _check_range(tuple(v for pair in values for v in pair), "padding", text)
        return values
    return parse_per_axis(text, "padding")


def format_per_axis(values: tuple[int, ...] | None) -> str:
    if not values:
        return ""
    return str(values[0]) if len(set(values)) == 1 else ",".join(str(v) for v in values)


def format_padding(padding: tuple[tuple[int, int], ...] | None, mode: str | None = None) -> str:
    if mode:
        return "same" if mode == "same_upper" else mode
    if not padding:
        return ""
    if all(lo == hi for lo, hi in padding):
        return format_per_axis(tuple(lo for lo, _ in padding))
    return ",".join(f"({lo},{hi})" for lo, hi in padding)
