"""The engine: validate the resolution, compute sizes, fields and verdicts of a stack.

Everything that can be prepared once per stack lives in one :class:`Engine` (see :func:`engine`): the
verdict plan, the fields per resolution of the size-dependent layers, and the smallest feasible
resolution. A new input size then costs one size pass and one verdict pass (plus a field pass only when
an adaptive pool changes its window). :func:`rf_widgets.core.results.analyze_stack` wraps an
evaluation in an ``Analysis``.
"""

from __future__ import annotations

import numbers
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rf_widgets.core.arithmetic import (
    INF,
    Diagnostic,
    Field,
    Resolved,
    RMinPass,
    SizePlan,
    feature_maps,
    fields,
    size_plan,
)
from rf_widgets.core.graph import Stack
from rf_widgets.core.layers import Layer
from rf_widgets.core.verdicts import FieldArrays, VerdictPlan, Verdicts, any_unproductive, judge
from rf_widgets.errors import ResolutionError, shown

__all__ = [
    "Engine",
    "Evaluation",
    "Judgement",
    "MapRequirement",
    "engine",
    "evaluate",
    "normalize_resolution",
]

MAX_SEARCHED_RESOLUTION = 1 << 20
MAX_INPUT_SIZE = 1 << 31
"""The largest input size per axis accepted (beyond any image; larger values overflow floats)."""


def normalize_resolution(value: object, ndim: int) -> tuple[int, ...]:
    """One positive int per axis from an int or a sequence; a clear error otherwise."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        values: tuple[object, ...] = (int(value),) * ndim
    elif isinstance(value, Sequence) and not isinstance(value, str):
        values = tuple(value)
        if len(values) != ndim:
            raise ResolutionError(
                f"input size must have one value per spatial axis ({ndim}), got {shown(value)}"
            )
    else:
        raise ResolutionError(f"input size must be a positive integer (or one per axis), got {shown(value)}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or int(v) < 1:
            raise ResolutionError(f"input size must be a positive integer on every axis, got {shown(value)}")
        if int(v) > MAX_INPUT_SIZE:
            raise ResolutionError(
                f"input size must be at most {MAX_INPUT_SIZE} per axis, got {shown(int(v))}"
            )
    return tuple(int(v) for v in values)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Evaluation:
    """A stack at one resolution: sizes, resolved size-dependent layers, field, verdicts, notes."""

    sizes: list[tuple[int, ...]]
    resolved: dict[int, Resolved]
    field: Field
    verdicts: Verdicts
    diagnostics: list[Diagnostic]


@dataclass(frozen=True)
class Judgement:
    """A stack judged at one resolution by :meth:`Engine.judge`: an :class:`Evaluation` without the field.

    ``r_min`` has one row per layer (numpy, inf where every path is global); ``field`` is the full
    field when the graph needed it (phased layers), else None.
    """

    sizes: list[tuple[int, ...]]
    resolved: dict[int, Resolved]
    diagnostics: list[Diagnostic]
    verdicts: Verdicts
    r_min: Any
    field: Field | None


@dataclass(eq=False)
class Engine:
    """What one stack needs to be judged at any resolution, with its caches.

    ``plan`` drives the verdicts, ``sizes`` the size pass; both are compiled once per stack.
    """

    stack: Stack
    plan: VerdictPlan
    sizes: SizePlan
    _fields: dict[tuple[tuple[int, Resolved], ...], tuple[Field, FieldArrays]] = field(default_factory=dict)
    _smallest: list[int | None] = field(default_factory=list)  # empty until searched
    _last: tuple[dict[int, Resolved], Field] | None = None
    # The r_min pass of the graph this engine is a variant of (shared by all its variants), the layers
    # that differ from that graph, and r_min per resolution of the size-dependent layers.
    _pass: RMinPass | None = None
    _changes: dict[int, Layer] = field(default_factory=dict)
    _r_mins: dict[tuple[tuple[int, Resolved], ...], tuple[FieldArrays, Field | None]] = field(
        default_factory=dict
    )

    def variant(self, changes: Mapping[int, Layer], name: str | None = None) -> Engine:
        """The engine of this stack with the layers at the indices of ``changes`` replaced.

        Each replacement keeps its layer's name and inputs (see :meth:`Stack.with_layers`); only the
        replaced layers are compiled again, and the variants of one engine share its r_min pass (the
        layers before the first replaced one are propagated once for all of them). Without changes,
        the engine itself.
        """
        if not changes:
            return self
        stack = self.stack.with_layers(changes, f"{self.stack.name} (edited)" if name is None else name)
        found = Engine(stack, self.plan.with_layers(stack, changes), self.sizes.with_layers(stack, changes))
        found._pass = self._r_min_pass()
        found._changes = {**self._changes, **{i: stack.layers[i] for i in changes}}
        return found

    def _r_min_pass(self) -> RMinPass:
        if self._pass is None:
            self._pass = RMinPass(self.stack)
        return self._pass

    def judge(self, resolution: tuple[int, ...]) -> Judgement:
        """Sizes and verdicts at ``resolution``, from ``r_min`` alone where the graph allows.

        The verdicts equal those of :meth:`evaluate`; only ``r_min`` of the field is computed
        (several times faster), except for graphs with phased layers, which take the full field.
        """
        sizes, resolved, diagnostics = feature_maps(self.stack, resolution, self.sizes)
        key = tuple(sorted(resolved.items()))
        found = self._r_mins.get(key)
        if found is None:
            r_min = self._r_min_pass().run(self._changes, resolved)
            if r_min is None:
                full, full_arrays = self.field_at(resolved)
                found = (full_arrays, full)
            else:
                found = (self.plan.r_min_arrays(r_min), None)
            self._r_mins[key] = found
        arrays, field_if_needed = found
        verdicts = judge(self.plan, arrays, sizes, resolved, resolution)
        return Judgement(sizes, resolved, diagnostics, verdicts, arrays.r_min, field_if_needed)

    def field_at(self, resolved: dict[int, Resolved]) -> tuple[Field, FieldArrays]:
        """The field with the size-dependent layers resolved as given, and its arrays (memoised)."""
        key = tuple(sorted(resolved.items()))
        found = self._fields.get(key)
        if found is None:
            # Start from the last field computed: only the layers downstream of a layer resolved
            # differently are propagated again.
            computed = fields(self.stack, resolved, self._last)
            found = self._fields[key] = (computed, self.plan.field_arrays(computed))
            self._last = (dict(resolved), computed)
        return found

    def evaluate(self, resolution: tuple[int, ...]) -> Evaluation:
        """Sizes, field and verdicts at ``resolution`` (one int per axis)."""
        sizes, resolved, diagnostics = feature_maps(self.stack, resolution, self.sizes)
        computed, arrays = self.field_at(resolved)
        verdicts = judge(self.plan, arrays, sizes, resolved, resolution)
        return Evaluation(sizes, resolved, computed, verdicts, diagnostics)

    def has_unproductive(self, side: int) -> bool:
        """Whether any layer is unproductive at the square resolution ``side``."""
        resolution = (side,) * self.stack.ndim
        sizes, resolved, _ = feature_maps(self.stack, resolution, self.sizes)
        return any_unproductive(self.plan, self.field_at(resolved)[1], sizes, resolved, resolution)

    def smallest_feasible(self) -> int | None:
        """The smallest square resolution with no unproductive layer (None beyond the search limit).

        Doubling then bisection: the set of unproductive layers only shrinks as the resolution grows.
        """
        if not self._smallest:
            self._smallest.append(self._search_smallest())
        return self._smallest[0]

    def _search_smallest(self) -> int | None:
        high = 1
        while self.has_unproductive(high):
            high *= 2
            if high > MAX_SEARCHED_RESOLUTION:
                return None
        low = high // 2  # has unproductive layers (or is 0)
        while high - low > 1:
            mid = (low + high) // 2
            if self.has_unproductive(mid):
                low = mid
            else:
                high = mid
        return high


_ENGINES: weakref.WeakKeyDictionary[Stack, Engine] = weakref.WeakKeyDictionary()


def engine(stack: Stack) -> Engine:
    """The :class:`Engine` of ``stack`` (built on first use, kept as long as the stack lives)."""
    found = _ENGINES.get(stack)
    if found is None:
        found = _ENGINES[stack] = Engine(stack, VerdictPlan.build(stack), size_plan(stack))
    return found


def evaluate(stack: Stack, resolution: tuple[int, ...]) -> Evaluation:
    """Sizes, resolved layers, field and verdicts of ``stack`` at ``resolution``."""
    return engine(stack).evaluate(resolution)


def resolution_range(stack: Stack, field: Field) -> tuple[int | None, int | None]:
    """The feasible square resolutions ``(min, max)`` of SPEC section 6.

    ``max`` is the largest finite ``r_max_local`` of ``field`` (the field at the analysed resolution).
    """
    local = [max(r) for r in field.r_max_local if r is not None]
    top = max(local) if local else None
    upper = None if top is None or top == INF else int(top)
    return engine(stack).smallest_feasible(), upper


@dataclass(frozen=True)
class MapRequirement:
    """A condition the real module puts on the feature map of ``layer`` (kept in ``stack.metadata``).

    An importer adds one where the module computes something else, or refuses to run, at other sizes
    (timm's Swin blocks fix their window and attention mask at construction). ``accepts`` tells whether
    a map (one size per axis) is fine. :func:`~rf_widgets.core.results.analyze_stack` raises
    :class:`ResolutionError` with ``why`` at an input size that breaks one; the searches over
    resolutions (smallest feasible size) do not look.
    """

    layer: str
    accepts: Callable[[tuple[int, ...]], bool]
    why: str


def check_requirements(stack: Stack, sizes: Sequence[tuple[int, ...]], resolution: tuple[int, ...]) -> None:
    found = stack.metadata.get("map_requirements", ())
    for need in found if isinstance(found, tuple) else ():
        # an edited stack keeps the import's metadata: a requirement of a removed layer is gone
        if isinstance(need, MapRequirement) and need.layer in stack.index:
            size = tuple(sizes[stack.index[need.layer]])
            if not need.accepts(size):
                shown, at = "x".join(map(str, size)), "x".join(map(str, resolution))
                raise ResolutionError(
                    f"at input size {at}, layer '{need.layer}' gets a {shown} map: {need.why}"
                )


def imported_diagnostics(stack: Stack) -> tuple[Diagnostic, ...]:
    """What the model import noticed (unknown operations), kept with the stack."""
    found = stack.metadata.get("diagnostics", ())
    return tuple(d for d in found if isinstance(d, Diagnostic)) if isinstance(found, tuple) else ()
