"""``suggest()``: the design strategies that apply to a network, each with its predicted effect."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rf_widgets import _format
from rf_widgets._api import _is_torch_module, to_stack
from rf_widgets.core.analysis import analyze_stack, normalize_resolution
from rf_widgets.core.graph import Stack
from rf_widgets.core.layers import Layer
from rf_widgets.core.results import Analysis
from rf_widgets.errors import RFError
from rf_widgets.strategies import planning
from rf_widgets.strategies.planning import NotApplicable, ResolutionPlan, StridePlan, TrimPlan

__all__ = ["KINDS", "Suggestion", "Suggestions", "suggest"]

KINDS = ("trim", "slow-downsampling", "resolution")

TITLES = {
    "trim": "Trim the unproductive layers and attach a new head",
    "slow-downsampling": "Slow the receptive-field growth: less downsampling",
    "resolution": "Change the input resolution to the feasible range",
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
    plan: TrimPlan | StridePlan | ResolutionPlan | None = field(repr=False)
    model: Any = field(repr=False, compare=False)

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
        if _is_torch_module(self.model):
            from rf_widgets.strategies.surgery import apply_plan

            return apply_plan(self.model, self.plan, self.before.stack)
        frontend = self.before.stack.metadata.get("frontend")
        if frontend is not None:  # imported from Keras or ONNX: nothing to edit the model with
            raise RFError(
                f"the strategy '{self.kind}' applies to torch models only (torch.fx surgery); this "
                f"{frontend} model is not changed: its predicted layer graph is .stack"
            )
        return self.after.stack

    def describe(self) -> str:
        """A few lines for people: what changes and what it is predicted to do."""
        if not self.applicable:
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
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.describe()


class Suggestions(Sequence[Suggestion]):
    """The strategies for one network at one input size; index by position or by kind.

    ``repr()`` is a table; :meth:`applicable` lists the ones that apply.
    """

    def __init__(self, items: Sequence[Suggestion], model_name: str) -> None:
        self._items = tuple(items)
        self.model_name = model_name

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
            if s.applicable:
                assert s.params_after is not None
                assert s.macs_after is not None
                rows.append(
                    (
                        s.kind,
                        "yes",
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
    kinds: Sequence[str] = KINDS,
    name: str | None = None,
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
        Which strategies to evaluate (default: all of :data:`KINDS`).

    Returns
    -------
    Suggestions
        One :class:`Suggestion` per kind, applicable or with the reason it is not.

    Examples
    --------
    >>> import rf_widgets as rfw
    >>> stack = [rfw.conv("c1", 3, stride=2, padding=1)]
    >>> stack += [rfw.conv(f"c{i}", 3, padding=1) for i in (2, 3, 4)]
    >>> plan = rfw.suggest(stack, 8)
    >>> plan["trim"].removed
    ('c4',)
    """
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise RFError(f"unknown strategy {unknown[0]!r}; the strategies are {', '.join(KINDS)}")
    if isinstance(model, str):
        from rf_widgets.specs import load_model_spec

        loaded = load_model_spec(model)
        name = name or model
        model = loaded
    if _is_torch_module(model):
        from rf_widgets.strategies.surgery import TorchContext

        context: Context = TorchContext(model, name)
    else:
        context = Context(to_stack(model), name)
    resolution = normalize_resolution(input_size, context.stack.ndim)
    before = analyze_stack(context.stack, resolution, context.name)
    builders = {"trim": _trim, "slow-downsampling": _slowdown, "resolution": _resolution}
    items = [builders[kind](context, before) for kind in kinds]
    return Suggestions(items, context.name)


class Context:
    """What the planners need to know about the model beyond its layer graph (declared stacks)."""

    def __init__(self, stack: Stack, name: str | None) -> None:
        self.stack = stack
        self.name = name or stack.name
        self.model: Any = stack

    def params(self) -> int:
        return sum(layer.params for layer in self.stack.layers)

    def head(self, cut: str, resolution: tuple[int, ...]) -> tuple[Layer, ...]:
        """A declared stack gets no new layers: the trimmed stack simply ends at the cut."""
        return ()

    def stride_blocker(self, layer: str) -> str | None:
        """Why the stride of ``layer`` cannot be changed (None: it can)."""
        return None

    def merge_blocker(self, layer: str) -> str | None:
        """Why the add ``layer`` cannot be replaced by its skip input (None: it can)."""
        return None

    def check_runs(self, size: tuple[int, ...]) -> None:
        """Raise :class:`NotApplicable` when the model cannot run at ``size`` (a stack always can)."""

    def params_after_trim(self, plan: TrimPlan) -> int:
        kept = set(plan.kept)
        return sum(layer.params for layer in self.stack.layers if layer.name in kept) + sum(
            layer.params for layer in plan.head
        )


def _base(kind: str, before: Analysis, context: Context) -> dict[str, Any]:
    return {
        "kind": kind,
        "input_size": before.input_size,
        "new_input_size": before.input_size,
        "params_before": context.params(),
        "macs_before": _macs(before),
        "border_before": before.border_layer,
        "before": before,
        "model": context.model,
    }


def _not_applicable(kind: str, before: Analysis, context: Context, reason: str) -> Suggestion:
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
        **_base(kind, before, context),
    )


def _outcome(
    kind: str,
    before: Analysis,
    after: Analysis,
    context: Context,
    plan: TrimPlan | StridePlan | ResolutionPlan,
    changes: tuple[str, ...],
    params_after: int,
    removed: tuple[str, ...] = (),
) -> Suggestion:
    now = set(after.unproductive_layers)
    base = _base(kind, before, context)
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


def _trim(context: Context, before: Analysis) -> Suggestion:
    try:
        plan = planning.plan_trim(
            before, lambda cut: context.head(cut, before.input_size), context.merge_blocker
        )
    except NotApplicable as why:
        return _not_applicable("trim", before, context, str(why))
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
        "trim", before, after, context, plan, tuple(changes), context.params_after_trim(plan), plan.removed
    )


def _slowdown(context: Context, before: Analysis) -> Suggestion:
    try:
        plan, stack = planning.plan_slowdown(before, context.stride_blocker)
    except NotApplicable as why:
        return _not_applicable("slow-downsampling", before, context, str(why))
    after = analyze_stack(stack, before.input_size, stack.name)
    changes = tuple(
        f"stride of '{name}' {_format.per_axis(old)} -> {_format.per_axis(new)}"
        for name, old, new in plan.changes
    )
    return _outcome("slow-downsampling", before, after, context, plan, changes, context.params())


def _resolution(context: Context, before: Analysis) -> Suggestion:
    try:
        plan = planning.plan_resolution(before)
        context.check_runs(plan.input_size)
    except NotApplicable as why:
        return _not_applicable("resolution", before, context, str(why))
    after = before.at(plan.input_size)
    low, high = before.resolution_range
    changes = (
        f"feed {_format.size(plan.input_size)} inputs instead of {_format.size(before.input_size)} "
        f"(feasible range {_format.feasible_range(low, high)})",
    )
    return _outcome("resolution", before, after, context, plan, changes, context.params())


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
