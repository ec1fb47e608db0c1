"""``suggest()``: the design strategies that apply to a network, each with its predicted effect."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rf_widgets import _format
from rf_widgets.core.analysis import normalize_resolution
from rf_widgets.core.graph import Stack
from rf_widgets.core.layers import Layer
from rf_widgets.core.results import Analysis, analyze_stack
from rf_widgets.errors import RFError
from rf_widgets.errors import shown as short_repr
from rf_widgets.strategies import planning
from rf_widgets.strategies.budget import MAX_BUDGET, Candidate, Front, search_source
from rf_widgets.strategies.planning import NotApplicable, ResolutionPlan, StridePlan, TrimPlan
from rf_widgets.strategies.resolve import source_of
from rf_widgets.strategies.source import Source

__all__ = ["KINDS", "PICK_KINDS", "Suggestion", "Suggestions", "suggest"]

KINDS = ("trim", "slow-downsampling", "resolution")
PICK_KINDS = ("efficiency", "performance", "hybrid")
"""The picks of a budgeted search (:func:`rf_widgets.strategies.search`), offered when a budget is given."""

TITLES = {
    "trim": "Trim the unproductive layers and attach a new head",
    "slow-downsampling": "Slow the receptive-field growth: less downsampling",
    "resolution": "Change the input resolution to the feasible range",
    "efficiency": "Efficiency: the least compute with no unproductive layer",
    "performance": "Performance: fewest unproductive layers, most productive depth within the budget",
    "hybrid": "Hybrid: the knee of the front between compute, waste and depth",
}


@dataclass(frozen=True)
class Suggestion:
    """One design strategy for one network at one input size, with its predicted effect.

    Nothing is trained and nothing is built to make the prediction: the numbers come from analysing
    the edited layer graph. :meth:`apply` builds the modified network.

    Attributes
    ----------
    kind
        ``"trim"``, ``"slow-downsampling"`` or ``"resolution"``.
    applicable, reason
        Whether the strategy applies; when it does not, ``reason`` says why.
    changes
        The edits, one sentence each.
    input_size, new_input_size
        The target input size and the size the modified network should be fed (they differ only for
        ``"resolution"``).
    params_before, params_after, macs_before, macs_after
        Parameters of the whole model and multiply-adds of its convolutions and linear layers at the
        input size, before and after (after: predicted).
    removed, made_productive, still_unproductive
        Layer names: removed by the edit; unproductive before and productive after; unproductive after.
    border_before, border_after
        The first border layer before and after (None when nothing is unproductive).
    before, after
        The analyses of the original and of the modified network (``after`` is None when not applicable).
    """

    kind: str
    applicable: bool
    reason: str | None
    changes: tuple[str, ...]
    input_size: tuple[int, ...]
    new_input_size: tuple[int, ...]
    params_before: int
    params_after: int | None
    macs_before: int
    macs_after: int | None
    removed: tuple[str, ...]
    made_productive: tuple[str, ...]
    still_unproductive: tuple[str, ...]
    border_before: str | None
    border_after: str | None
    before: Analysis = field(repr=False)
    after: Analysis | None = field(repr=False)
    plan: TrimPlan | StridePlan | ResolutionPlan | Candidate | None = field(repr=False)
    source: Source = field(repr=False, compare=False)
    refused: str | None = None

    @property
    def model(self) -> Any:
        """The model the strategy was planned for (not modified)."""
        return self.source.model

    @property
    def macs_ratio(self) -> float | None:
        """Predicted multiply-adds over the original's (None when the strategy does not apply)."""
        if self.macs_after is None or not self.macs_before:
            return None
        return self.macs_after / self.macs_before

    @property
    def title(self) -> str:
        return TITLES[self.kind]

    @property
    def stack(self) -> Stack | None:
        """The modified layer graph (None when the strategy does not apply)."""
        return None if self.after is None else self.after.stack

    def apply(self) -> Any:
        """The modified network: a new ``nn.Module`` for a torch model, a :class:`Stack` otherwise.

        The original model is not touched. For ``"resolution"`` the architecture stays; a torch model
        is returned as a copy, to be fed inputs of :attr:`new_input_size`.
        """
        if not self.applicable or self.plan is None or self.after is None:
            raise RFError(f"the strategy '{self.kind}' does not apply: {self.reason}")
        if isinstance(self.plan, Candidate):
            return self.plan.apply()
        return self.source.apply_plan(self.plan, self.kind, self.after.stack)

    def describe(self) -> str:
        """A few lines for people: what changes and what it is predicted to do."""
        if not self.applicable and self.after is None:
            return f"{self.title}: does not apply ({self.reason})"
        assert self.params_after is not None
        assert self.macs_after is not None
        lines = [f"{self.title}:"]
        lines += [f"  - {change}" for change in self.changes]
        if self.params_before or self.macs_before:  # a declared stack without channels has neither
            lines.append(
                f"  parameters {_format.count(self.params_before)} -> {_format.count(self.params_after)}"
                f" ({_ratio(self.params_after, self.params_before)}), multiply-adds at "
                f"{_format.size(self.new_input_size)} {_format.count(self.macs_before)} -> "
                f"{_format.count(self.macs_after)}"
                f" ({_ratio(self.macs_after, self.macs_before)})"
            )
        lines.append(
            f"  unproductive layers {len(self.before.unproductive_layers)} -> {len(self.still_unproductive)}"
            f"; border layer {self.border_before or 'none'} -> {self.border_after or 'none'}"
        )
        if self.refused:
            lines.append(f"  refused: {self.refused}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.describe()


class Suggestions(Sequence[Suggestion]):
    """The strategies for one network at one input size; index by position or by kind.

    ``repr()`` is a table; :meth:`applicable` lists the ones that apply.
    """

    def __init__(self, items: Sequence[Suggestion], model_name: str, front: Front | None = None) -> None:
        self._items = tuple(items)
        self.model_name = model_name
        self.front = front
        """The budgeted search behind the picks (None when ``suggest`` ran without a budget)."""

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Suggestion]:
        return iter(self._items)

    def __getitem__(self, key: int | str) -> Suggestion:  # type: ignore[override]
        if isinstance(key, str):
            for item in self._items:
                if item.kind == key:
                    return item
            raise KeyError(
                f"no strategy '{key}'; the strategies are {', '.join(i.kind for i in self._items)}"
            )
        return self._items[key]

    def applicable(self) -> tuple[Suggestion, ...]:
        return tuple(item for item in self._items if item.applicable)

    def table(self) -> str:
        rows = [("strategy", "applies", "params", "MACs", "unproductive", "border layer after")]
        for s in self._items:
            if s.params_after is not None and s.macs_after is not None:
                rows.append(
                    (
                        s.kind,
                        "yes" if s.applicable else "refused",
                        f"{_format.count(s.params_before)} -> {_format.count(s.params_after)}",
                        f"{_format.count(s.macs_before)} -> {_format.count(s.macs_after)}",
                        f"{len(s.before.unproductive_layers)} -> {len(s.still_unproductive)}",
                        s.border_after or "none",
                    )
                )
            else:
                rows.append((s.kind, "no", "", "", "", ""))
        widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
        ]
        reasons = [f"{s.kind}: {s.reason}" for s in self._items if not s.applicable]
        return "\n".join(lines + ([""] + reasons if reasons else []))

    def __repr__(self) -> str:
        first = self._items[0] if self._items else None
        size = _format.size(first.input_size) if first else "?"
        return f"Design strategies for {self.model_name} at {size}\n{self.table()}"


def suggest(
    model: Any,
    input_size: int | Sequence[int] = 224,
    *,
    kinds: Sequence[str] | None = None,
    name: str | None = None,
    budget: float | None = None,
) -> Suggestions:
    """The design strategies of Richter et al. that apply to ``model`` at ``input_size``.

    Parameters
    ----------
    model
        A ``torch.nn.Module``, a :class:`Stack`, a list of layers or a model spec string (as for
        :func:`rf_widgets.analyze`). The model is not modified.
    input_size
        The target input resolution.
    kinds
        Which strategies to evaluate: :data:`KINDS` by default, and with a ``budget`` also the picks
        of :data:`PICK_KINDS` (``"efficiency"``, ``"performance"``, ``"hybrid"``).
    budget
        A compute ceiling as a ratio of the original multiply-adds. With it, the picks of a budgeted
        search (:func:`rf_widgets.strategies.search`) are added, and a strategy that would need more
        compute is refused: ``applicable`` is False, ``refused`` and ``reason`` say why, and its
        predictions stay readable. Without it the strategies are not limited (as before).

    Returns
    -------
    Suggestions
        One :class:`Suggestion` per kind, applicable or with the reason it is not; ``.front`` holds
        the search when a budget was given.

    Examples
    --------
    >>> import rf_widgets as rfw
    >>> stack = [rfw.conv("c1", 3, stride=2, padding=1)]
    >>> stack += [rfw.conv(f"c{i}", 3, padding=1) for i in (2, 3, 4)]
    >>> plan = rfw.suggest(stack, 8)
    >>> plan["trim"].removed
    ('c4',)
    """
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget <= MAX_BUDGET
    ):
        raise RFError(
            f"budget must be a positive ratio of the original multiply-adds, at most {MAX_BUDGET:g}, "
            f"got {short_repr(budget)}"
        )
    if kinds is None:
        kinds = KINDS + PICK_KINDS if budget is not None else KINDS
    unknown = [k for k in kinds if k not in KINDS + PICK_KINDS]
    if unknown:
        raise RFError(f"unknown strategy {unknown[0]!r}; the strategies are {', '.join(KINDS + PICK_KINDS)}")
    picks = [k for k in kinds if k in PICK_KINDS]
    if picks and budget is None:
        raise RFError(f"the pick {picks[0]!r} comes from a budgeted search: pass budget= (e.g. 1.0)")
    source, _ = source_of(model, name)
    resolution = normalize_resolution(input_size, source.stack.ndim)
    before = analyze_stack(source.stack, resolution, source.name)
    builders = {"trim": _trim, "slow-downsampling": _slowdown, "resolution": _resolution}
    items = [builders[kind](source, before) for kind in kinds if kind in builders]
    if budget is None:
        return Suggestions(items, source.name)
    items = [_within(item, budget) for item in items]
    front = search_source(source, resolution, float(budget))
    items += [_from_pick(kind, front, before, source) for kind in picks]
    return Suggestions(items, source.name, front)


def _within(item: Suggestion, budget: float) -> Suggestion:
    """The suggestion, refused when it needs more multiply-adds than the budget allows."""
    ratio = item.macs_ratio
    if not item.applicable or ratio is None or ratio <= budget * (1 + 1e-9):
        return item
    why = f"needs {ratio:.2f}x the original multiply-adds, over the budget of {budget:g}x"
    return replace(item, applicable=False, reason=why, refused=why)


def _from_pick(kind: str, front: Front, before: Analysis, source: Source) -> Suggestion:
    pick = front.picks[kind]
    if pick is None:
        return _not_applicable(kind, before, source, front.reasons[kind])
    after = pick.analysis
    removed = next((e.plan.removed for e in pick.edits if e.plan is not None), ())
    changes = tuple(edit.label for edit in pick.edits)
    return _outcome(kind, before, after, source, pick, changes, pick.params, removed)


def _base(kind: str, before: Analysis, source: Source) -> dict[str, Any]:
    return {
        "kind": kind,
        "input_size": before.input_size,
        "new_input_size": before.input_size,
        "params_before": source.params(),
        "macs_before": _macs(before),
        "border_before": before.border_layer,
        "before": before,
        "source": source,
    }


def _not_applicable(kind: str, before: Analysis, source: Source, reason: str) -> Suggestion:
    return Suggestion(
        applicable=False,
        reason=reason,
        changes=(),
        params_after=None,
        macs_after=None,
        removed=(),
        made_productive=(),
        still_unproductive=before.unproductive_layers,
        border_after=None,
        after=None,
        plan=None,
        **_base(kind, before, source),
    )


def _outcome(
    kind: str,
    before: Analysis,
    after: Analysis,
    source: Source,
    plan: TrimPlan | StridePlan | ResolutionPlan | Candidate,
    changes: tuple[str, ...],
    params_after: int,
    removed: tuple[str, ...] = (),
) -> Suggestion:
    now = set(after.unproductive_layers)
    base = _base(kind, before, source)
    base["new_input_size"] = after.input_size
    return Suggestion(
        applicable=True,
        reason=None,
        changes=changes,
        params_after=params_after,
        macs_after=_macs(after),
        removed=removed,
        # A removed layer is not made productive, even when a renumbered call now has its name.
        made_productive=tuple(
            n
            for n in before.unproductive_layers
            if n not in now and n in after.stack.index and n not in removed
        ),
        still_unproductive=after.unproductive_layers,
        border_after=after.border_layer,
        after=after,
        plan=plan,
        **base,
    )


def _trim(source: Source, before: Analysis) -> Suggestion:
    try:
        plan = planning.plan_trim(
            before, lambda cut: source.head(cut, before.input_size), source.merge_blocker
        )
    except NotApplicable as why:
        return _not_applicable("trim", before, source, str(why))
    stack = planning.trimmed_stack(before.stack, plan)
    after = analyze_stack(stack, before.input_size, stack.name)
    unproductive = set(before.unproductive_layers)
    dropped = [n for n in plan.removed if n in unproductive]
    merges = {merge for merge, _ in plan.bypassed}
    others = [n for n in plan.removed if n not in unproductive and n not in merges]
    changes = [f"cut after '{plan.cut}': remove {len(plan.removed)} layers ({len(dropped)} unproductive)"]
    if plan.bypassed:
        blocks = _names([merge for merge, _ in plan.bypassed])
        changes.append(f"residual branches unproductive as a whole, removed with their add: {blocks}")
    if others:
        changes.append(f"also removed: {_names(others)}")
    if plan.head:
        changes.append("new head: " + ", then ".join(_describe_layer(layer) for layer in plan.head))
    return _outcome(
        "trim", before, after, source, plan, tuple(changes), source.params_after_trim(plan), plan.removed
    )


def _slowdown(source: Source, before: Analysis) -> Suggestion:
    try:
        plan, stack = planning.plan_slowdown(before, source.stride_blocker)
    except NotApplicable as why:
        return _not_applicable("slow-downsampling", before, source, str(why))
    after = analyze_stack(stack, before.input_size, stack.name)
    changes = tuple(
        f"stride of '{name}' {_format.per_axis(old)} -> {_format.per_axis(new)}"
        for name, old, new in plan.changes
    )
    return _outcome("slow-downsampling", before, after, source, plan, changes, source.params())


def _resolution(source: Source, before: Analysis) -> Suggestion:
    try:
        plan = planning.plan_resolution(before)
        source.check_runs(plan.input_size)
    except NotApplicable as why:
        return _not_applicable("resolution", before, source, str(why))
    after = before.at(plan.input_size)
    low, high = before.resolution_range
    changes = (
        f"feed {_format.size(plan.input_size)} inputs instead of {_format.size(before.input_size)} "
        f"(feasible range {_format.feasible_range(low, high)})",
    )
    return _outcome("resolution", before, after, source, plan, changes, source.params())


# -- formatting -------------------------------------------------------------------------------------------


def _macs(analysis: Analysis) -> int:
    return sum(layer.macs for layer in analysis.layers)


def _describe_layer(layer: Layer) -> str:
    note = f" ({_format.count(layer.params)} parameters)" if layer.params else ""
    return f"{layer.op} '{layer.name}'{note}"


def _names(names: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _ratio(after: int, before: int) -> str:
    if before == 0:
        return "n/a"
    change = after / before - 1
    return "unchanged" if math.isclose(change, 0, abs_tol=5e-4) else f"{change:+.1%}"
