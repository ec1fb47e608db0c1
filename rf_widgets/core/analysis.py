"""``analyze_stack``: validate the resolution, compute sizes, fields and verdicts, wrap the result.

Fields are cached per stack and per resolution of its size-dependent layers, so a new input size costs
one size pass and one verdict pass (plus a field pass only when an adaptive pool changes its window).
"""

from __future__ import annotations

import numbers
import weakref
from collections.abc import Sequence

from rf_widgets.core.arithmetic import INF, Diagnostic, Field, Resolved, feature_maps, fields
from rf_widgets.core.graph import Stack
from rf_widgets.core.verdicts import Verdicts, judge
from rf_widgets.errors import ResolutionError

__all__ = ["analyze_stack", "evaluate", "normalize_resolution", "resolution_range"]

_FIELDS: weakref.WeakKeyDictionary[Stack, dict[tuple[tuple[int, Resolved], ...], Field]] = (
    weakref.WeakKeyDictionary()
)
_SMALLEST: weakref.WeakKeyDictionary[Stack, int | None] = weakref.WeakKeyDictionary()

MAX_SEARCHED_RESOLUTION = 1 << 20


def normalize_resolution(value: object, ndim: int) -> tuple[int, ...]:
    """One positive int per axis from an int or a sequence; a clear error otherwise."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        values: tuple[object, ...] = (int(value),) * ndim
    elif isinstance(value, Sequence) and not isinstance(value, str):
        values = tuple(value)
        if len(values) != ndim:
            raise ResolutionError(f"input size must have one value per spatial axis ({ndim}), got {value!r}")
    else:
        raise ResolutionError(f"input size must be a positive integer (or one per axis), got {value!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or int(v) < 1:
            raise ResolutionError(f"input size must be a positive integer on every axis, got {value!r}")
    return tuple(int(v) for v in values)  # type: ignore[call-overload]


def field_for(stack: Stack, resolved: dict[int, Resolved]) -> Field:
    """The field of ``stack`` with its size-dependent layers resolved as given (memoised)."""
    cache = _FIELDS.setdefault(stack, {})
    key = tuple(sorted(resolved.items()))
    found = cache.get(key)
    if found is None:
        found = cache[key] = fields(stack, resolved)
    return found


def evaluate(
    stack: Stack, resolution: tuple[int, ...]
) -> tuple[list[tuple[int, ...]], dict[int, Resolved], Field, Verdicts, list]:
    """Sizes, resolved layers, field and verdicts of ``stack`` at ``resolution``."""
    sizes, resolved, diagnostics = feature_maps(stack, resolution)
    field = field_for(stack, resolved)
    return sizes, resolved, field, judge(stack, field, sizes, resolved, resolution), diagnostics


def resolution_range(
    stack: Stack, resolution: tuple[int, ...], field: Field
) -> tuple[int | None, int | None]:
    """The feasible square resolutions ``(min, max)`` of SPEC section 6.

    ``min`` is found by doubling then bisection (the unproductive set only shrinks as the resolution
    grows); ``max`` is the largest finite ``r_max_local`` of the field at the analysed ``resolution``.
    """
    local = [max(r) for r in field.r_max_local if r is not None]
    top = max(local) if local else None
    upper = None if top is None or top == INF else int(top)
    if stack not in _SMALLEST:
        _SMALLEST[stack] = _smallest_feasible(stack)
    return _SMALLEST[stack], upper


def _has_unproductive(stack: Stack, side: int) -> bool:
    return bool(evaluate(stack, (side,) * stack.ndim)[3].unproductive)


def _smallest_feasible(stack: Stack) -> int | None:
    high = 1
    while _has_unproductive(stack, high):
        high *= 2
        if high > MAX_SEARCHED_RESOLUTION:
            return None
    low = high // 2  # has unproductive layers (or is 0)
    while high - low > 1:
        mid = (low + high) // 2
        if _has_unproductive(stack, mid):
            low = mid
        else:
            high = mid
    return high


def analyze_stack(stack: Stack, input_size: object, model: str | None = None):  # type: ignore[no-untyped-def]
    """Analyse a :class:`Stack` at ``input_size`` and return an :class:`~rf_widgets.core.results.Analysis`."""
    from rf_widgets.core.results import Analysis

    resolution = normalize_resolution(input_size, stack.ndim)
    sizes, resolved, field, verdicts, diagnostics = evaluate(stack, resolution)
    low, high = resolution_range(stack, resolution, field)
    return Analysis(
        stack=stack,
        input_size=resolution,
        model=model or stack.name,
        sizes=tuple(sizes),
        resolved=resolved,
        field=field,
        verdicts=verdicts,
        diagnostics=_imported_diagnostics(stack) + field.diagnostics + tuple(diagnostics),
        resolution_range=(low, high),
    )


def _imported_diagnostics(stack: Stack) -> tuple[Diagnostic, ...]:
    """What the model import noticed (unknown operations), kept with the stack."""
    found = stack.metadata.get("diagnostics", ())
    return tuple(d for d in found if isinstance(d, Diagnostic)) if isinstance(found, tuple) else ()
