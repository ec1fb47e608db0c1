"""Budgeted design strategies: combine edits, predict every combination, keep the Pareto front.

Richter et al. describe three ways to act on the border layer (their ResNet18 on 16-px inputs, and the
efficiency / performance / hybrid variants of the ICMLA chapter):

* *efficiency*: less compute, nothing unproductive (a smaller stem, the blocks past the border replaced
  by a simple head);
* *performance*: no unproductive layer and as much productive depth as a compute budget allows (no stem
  pooling, stem stride 1, a downsampling step removed);
* *hybrid*: a balance of the two.

:func:`search` enumerates the combinations of the :class:`Edit` kinds that apply to a network (see
:data:`EDIT_KINDS`), predicts each from the edited layer graph alone (nothing is built or run), and
returns a :class:`Front`: every :class:`Candidate` with its cost and its verdicts, the non-dominated ones
in :attr:`Front.pareto`, and the three picks. :meth:`Candidate.apply` builds the network of a candidate
(torch.fx surgery on a copy of a torch model; the edited :class:`Stack` for a declared one).

The front is taken over four objectives: multiply-adds, the unproductive share of the multiply-adds and
parameters (all lower is better) and the *productive depth* (higher is better: the most spatial layers
that are not unproductive on one path from the input to the output). Without the depth the network cut
back to its stem would dominate every other candidate, since it is the cheapest and wastes nothing.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import product
from typing import Any

from rf_widgets import _format
from rf_widgets.core.analysis import Engine, Evaluation, engine, normalize_resolution
from rf_widgets.core.graph import Stack
from rf_widgets.core.layers import Layer
from rf_widgets.core.results import Analysis, analyze_stack
from rf_widgets.core.verdicts import Verdicts
from rf_widgets.errors import RFError
from rf_widgets.errors import shown as short_repr
from rf_widgets.strategies import planning
from rf_widgets.strategies.blocks import MovePlan, border_counts, even_counts, moved_stack
from rf_widgets.strategies.edits import EDIT_KINDS, Edit
from rf_widgets.strategies.planning import NotApplicable, TrimPlan
from rf_widgets.strategies.resolve import source_of
from rf_widgets.strategies.source import Source

__all__ = ["EDIT_KINDS", "PICKS", "Candidate", "Edit", "Front", "search", "search_source"]

PICKS = ("efficiency", "performance", "hybrid")
MAX_BUDGET = 1000.0
"""The largest budget: a thousand times the original multiply-adds (larger ones overflow floats)."""
"""The three named candidates of a :class:`Front`."""

STEM_KERNELS = (5, 3)
MAX_STRIDE_STEPS = 8  # 2**8 stride combinations at most; more steps keep only the last eight


class _Built:
    """The predicted graph and its evaluation, made on first use (a trimmed graph costs a rebuild)."""

    def __init__(self, make: Callable[[], tuple[Stack, Evaluation]]) -> None:
        self._make: Callable[[], tuple[Stack, Evaluation]] | None = make
        self._value: tuple[Stack, Evaluation] | None = None

    @classmethod
    def ready(cls, stack: Stack, found: Evaluation) -> _Built:
        built = cls(lambda: (stack, found))
        built.get()
        return built

    def get(self) -> tuple[Stack, Evaluation]:
        if self._value is None:
            assert self._make is not None
            self._value, self._make = self._make(), None
        return self._value


@dataclass(frozen=True, eq=False)
class Candidate:
    """One combination of edits with its predicted cost and verdicts.

    Attributes
    ----------
    edits
        The edits, in the order they are applied (architecture first, then trim).
    label
        The edits in a few words (``"original"`` for none).
    input_size
        The size the network is fed (differs from the target only with an ``input-size`` edit).
    params, macs
        Predicted parameters and multiply-adds (convolutions and linear layers) at ``input_size``.
    macs_ratio
        ``macs`` over the original network's multiply-adds at the target size.
    unproductive
        The unproductive spatial layers (convolutions and pools).
    unproductive_params_share, unproductive_macs_share
        Share of the parameters and multiply-adds in unproductive layers (spatial or not).
    productive_depth
        The most spatial layers that are not unproductive on one path from the input to the output.
    refused
        Why the candidate is not offered (over the budget), else None.
    stack
        The predicted layer graph (built on first use for a trimmed candidate; ``evaluation`` holds its
        sizes and verdicts, ``border_layer`` its first border layer).
    """

    edits: tuple[Edit, ...]
    label: str
    input_size: tuple[int, ...]
    params: int
    macs: int
    macs_ratio: float
    unproductive: tuple[str, ...]
    unproductive_params_share: float
    unproductive_macs_share: float
    productive_depth: int
    refused: str | None
    source: Any = field(repr=False)  # the model (or stack) and the stack the edits refer to
    built: _Built = field(repr=False)

    @property
    def stack(self) -> Stack:
        """The predicted layer graph."""
        return self.built.get()[0]

    @property
    def evaluation(self) -> Evaluation:
        """Sizes, fields and verdicts of :attr:`stack` at :attr:`input_size`."""
        return self.built.get()[1]

    @property
    def border_layer(self) -> str | None:
        """The first border layer (None when nothing is unproductive)."""
        border = self.evaluation.verdicts.border
        return self.stack.layers[border[0]].name if border else None

    @property
    def unproductive_count(self) -> int:
        """How many spatial layers are unproductive."""
        return len(self.unproductive)

    @property
    def status(self) -> dict[str, str]:
        """The predicted status of every layer, by name."""
        return dict(zip(self.stack.names, self.evaluation.verdicts.status, strict=True))

    @property
    def analysis(self) -> Analysis:
        """The full :class:`Analysis` of the predicted network (fields, feasible range; computed on use)."""
        cache = self.source.analyses
        found = cache.get(id(self))
        if found is None:
            found = cache[id(self)] = analyze_stack(self.stack, self.input_size, self.stack.name)
        return found  # type: ignore[no-any-return]

    def apply(self, model: Any = None) -> Any:
        """Build the candidate: a new ``nn.Module`` for a torch model, the edited :class:`Stack` otherwise.

        ``model`` defaults to the model the search ran on; the model is never modified. A candidate
        with an ``input-size`` edit keeps the architecture: feed the result inputs of :attr:`input_size`.
        """
        if self.refused:
            raise RFError(f"the candidate '{self.label}' is refused: {self.refused}")
        return self.source.apply(self.edits, self.label, self.stack, model)

    def describe(self) -> str:
        """Two lines for people: the edits, then cost and verdicts."""
        return (
            f"{self.label}\n  {_format.count(self.macs)} multiply-adds ({self.macs_ratio:.2f}x), "
            f"{_format.count(self.params)} parameters, {self.unproductive_count} unproductive spatial "
            f"layers ({self.unproductive_macs_share:.0%} of the compute), productive depth "
            f"{self.productive_depth}" + (f"; refused: {self.refused}" if self.refused else "")
        )

    def __str__(self) -> str:
        return self.describe()


class Front(Sequence[Candidate]):
    """Every candidate of a search, the Pareto front and the three picks.

    Index by position, or by a pick's name (``front["efficiency"]``).

    Attributes
    ----------
    original
        The unedited network at the target size (``macs_ratio`` 1).
    pareto
        The candidates within the budget that no other candidate within the budget dominates, by
        multiply-adds.
    picks
        ``{"efficiency": ..., "performance": ..., "hybrid": ...}``; a pick is None when no candidate
        qualifies, and :attr:`reasons` says why.
    budget
        The compute ceiling as a ratio of the original multiply-adds (efficiency uses at most 1).
    """

    def __init__(
        self,
        candidates: Sequence[Candidate],
        original: Candidate,
        budget: float,
        picks: dict[str, Candidate | None],
        reasons: dict[str, str],
        pareto: tuple[Candidate, ...],
        model_name: str,
    ) -> None:
        self._items = tuple(candidates)
        self.original = original
        self.budget = budget
        self.picks = picks
        self.reasons = reasons
        self.pareto = pareto
        self.model_name = model_name

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Candidate]:
        return iter(self._items)

    def __getitem__(self, key: int | str) -> Candidate:  # type: ignore[override]
        if isinstance(key, str):
            if key not in PICKS:
                raise KeyError(f"no pick '{key}'; the picks are {', '.join(PICKS)}")
            found = self.picks[key]
            if found is None:
                raise RFError(f"no {key} pick: {self.reasons[key]}")
            return found
        return self._items[key]

    @property
    def refused(self) -> tuple[Candidate, ...]:
        """The candidates over the budget."""
        return tuple(c for c in self._items if c.refused)

    def table(self) -> str:
        """The original, the picks and the front as a text table."""
        rows: list[tuple[str, ...]] = [("", "candidate", "MACs", "ratio", "params", "unprod.", "depth")]

        def row(tag: str, c: Candidate) -> tuple[str, ...]:
            return (
                tag,
                c.label,
                _format.count(c.macs),
                f"{c.macs_ratio:.2f}x",
                _format.count(c.params),
                str(c.unproductive_count),
                str(c.productive_depth),
            )

        rows.append(row("original", self.original))
        for name in PICKS:
            pick = self.picks[name]
            rows.append(
                row(name, pick) if pick else (name, f"none: {self.reasons[name]}", "", "", "", "", "")
            )
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        return "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
        )

    def __repr__(self) -> str:
        size = _format.size(self.original.input_size)
        return (
            f"Design search for {self.model_name} at {size}: {len(self)} candidates, "
            f"{len(self.pareto)} on the front, budget {self.budget:g}x\n{self.table()}"
        )


# -- the search -------------------------------------------------------------------------------------------


def search(
    model: Any,
    input_size: int | Sequence[int] = 224,
    budget: float | None = None,
    *,
    name: str | None = None,
    edits: Sequence[str] = EDIT_KINDS,
) -> Front:
    """Enumerate the combinations of edits for ``model`` at ``input_size`` and predict each.

    Parameters
    ----------
    model
        A ``torch.nn.Module``, a :class:`Stack`, a list of layers, a model spec string, or an
        :class:`Analysis` (its stack and input size are used). The model is not modified.
    input_size
        The target input resolution (ignored for an :class:`Analysis`).
    budget
        The compute ceiling for the performance and hybrid picks, as a ratio of the original
        multiply-adds (default 1.0). The efficiency pick stays within ``min(budget, 1)``. Candidates
        over the budget stay listed, with ``refused`` saying why.
    edits
        Which edit kinds to combine (default: all of :data:`EDIT_KINDS`).

    Returns
    -------
    Front
        Every candidate, the Pareto front and the picks.

    Examples
    --------
    >>> import rf_widgets as rfw
    >>> from rf_widgets.strategies import search
    >>> stack = [rfw.conv("c1", 3, stride=2, padding=1)]
    >>> stack += [rfw.conv(f"c{i}", 3, padding=1) for i in (2, 3, 4)]
    >>> front = search(stack, 8, edits=("stride", "trim"))
    >>> front["performance"].label
    'c1 stride 2 -> 1'
    >>> front["performance"].unproductive_count
    0
    """
    budget = 1.0 if budget is None else budget
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget <= MAX_BUDGET:
        raise RFError(
            f"budget must be a positive ratio of the original multiply-adds, at most {MAX_BUDGET:g}, "
            f"got {short_repr(budget)}"
        )
    unknown = [k for k in edits if k not in EDIT_KINDS]
    if unknown:
        raise RFError(f"unknown edit kind {unknown[0]!r}; the edit kinds are {', '.join(EDIT_KINDS)}")
    source, analysed_at = source_of(model, name)
    return search_source(source, analysed_at or input_size, float(budget), edits)


def search_source(
    source: Source, input_size: int | Sequence[int], budget: float = 1.0, edits: Sequence[str] = EDIT_KINDS
) -> Front:
    """:func:`search` on a model already wrapped in its adapter (:func:`source_of`): nothing is imported."""
    resolution = normalize_resolution(input_size, source.stack.ndim)
    return _Search(source, resolution, budget, tuple(edits)).run()


@dataclass(frozen=True)
class _Judged:
    """A judged graph: its verdicts, ``r_min`` per layer, multiply-adds and productive depth per layer."""

    stack: Stack
    verdicts: Verdicts
    r_min: Any  # numpy array, one row per layer
    layer_macs: list[int]
    depth: list[int]
    full: Callable[[], Evaluation]  # the complete evaluation (fields with every path class)
    problems: frozenset[str] = frozenset()  # layers with an empty map or a new size problem

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.stack.layers)


@dataclass(frozen=True)
class _Variant:
    """An architecture variant before the trim: the edits and the layers they replace."""

    edits: tuple[Edit, ...]
    changes: dict[int, Layer]


@dataclass(frozen=True)
class _Moved:
    """The graph with blocks moved, before any other edit, and what the search needs to know about it."""

    plan: MovePlan
    stack: Stack
    engine: Engine
    topology: planning.Topology
    origin: dict[str, str]  # layer name -> the layer of the original graph it is (or copies)
    delta: int  # parameters added minus removed


class _Search:
    def __init__(
        self, source: Source, resolution: tuple[int, ...], budget: float, kinds: tuple[str, ...]
    ) -> None:
        self.source = source
        self.budget = budget
        self.kinds = kinds
        self.stack = source.stack
        self.resolution = resolution
        self.base = engine(self.stack)
        self.base_params = source.params()
        self.stack_params = sum(layer.params for layer in self.stack.layers)
        found = self.base.evaluate(self.resolution)
        self.baseline_problems = {
            (d.layer, d.kind) for d in found.diagnostics + list(found.field.diagnostics)
        }
        self.base_macs = sum(self.stack.macs(found.sizes, self.resolution))
        flatten_sizes = planning.flatten_input_sizes(self.stack, found.sizes)
        # What a classifier after a flatten reads must not change; unknown when the original's map is
        # already empty there (it does not run at this size): then the built module is the judge.
        self.flatten_sizes = None if any(0 in n for n in flatten_sizes) else flatten_sizes
        self.topology = planning.Topology.of(self.stack)  # edits here keep the wiring: computed once
        self.stages = source.stages(resolution) if "move-blocks" in kinds else ()
        self.moved: dict[tuple[int, ...], _Moved] = {}

    # -- what can be edited -----------------------------------------------------------------------------

    def stride_steps(self) -> list[list[Edit | None]]:
        """Per downsampling step: keep it (None) or the edits that soften it."""
        stack = self.stack
        options: list[list[Edit | None]] = []
        for group in planning.stride_groups(stack):
            layers = [stack.layers[i] for i in group]
            if any(self.source.stride_blocker(layer.name) for layer in layers):
                continue
            choices: list[Edit | None] = [None]
            pools = all("pool" in layer.extra or "Pool" in layer.op for layer in layers)
            if "remove-pool" in self.kinds and pools and all(self.source.can_remove(x) for x in layers):
                names = tuple(layer.name for layer in layers)
                choices.append(Edit("remove-pool", names, (), f"remove {_names(names)}"))
            elif "stride" in self.kinds and not pools:
                old = layers[0].stride
                new = planning.smaller_stride(old)
                names = tuple(layer.name for layer in layers)
                label = f"{_names(names)} stride {_format.per_axis(old)} -> {_format.per_axis(new)}"
                choices.append(Edit("stride", names, new, label))
            if len(choices) > 1:
                options.append(choices)
        return options[-MAX_STRIDE_STEPS:]

    def stem_options(self) -> list[Edit | None]:
        if "stem-kernel" not in self.kinds:
            return [None]
        stack = self.stack
        chain = planning.output_chain(stack)
        first = next((stack.layers[i] for i in chain if stack.layers[i].kind == "window"), None)
        first_spatial = next(
            (layer for layer in stack.layers if layer.kind == "window" and max(layer.kernel) > 1), None
        )
        if first is None or first is not first_spatial or not self.source.can_rekernel(first):
            return [None]
        k = first.kernel
        if len(set(k)) != 1 or k[0] <= max(first.stride):
            return [None]
        options: list[Edit | None] = [None]
        for new in STEM_KERNELS:
            if new < k[0]:
                label = f"{first.name} kernel {_format.per_axis(k)} -> {new}"
                options.append(Edit("stem-kernel", (first.name,), (new,) * stack.ndim, label))
        return options

    def sizes(self) -> list[tuple[int, ...]]:
        sizes = [self.resolution]
        if "input-size" in self.kinds:
            sizes.append(tuple(2 * s for s in self.resolution))
            low = self.base.smallest_feasible()
            if low is not None and low > 2 * min(self.resolution):
                sizes.append((low,) * len(self.resolution))
        return sizes

    # -- predicting -------------------------------------------------------------------------------------

    def layer_changes(self, edits: Sequence[Edit]) -> dict[int, Layer]:
        stack = self.stack
        changes: dict[int, Layer] = {}
        for edit in edits:
            for name in edit.layers:
                i = stack.index[name]
                layer = changes.get(i, stack.layers[i])
                changes[i] = _edited_layer(layer, edit, stack.ndim)
        return changes

    def refusal(self, ratio: float) -> str | None:
        if ratio > self.budget * (1 + 1e-9):
            return f"needs {ratio:.2f}x the original multiply-adds, over the budget of {self.budget:g}x"
        return None

    def judged(self, eng: Engine, size: tuple[int, ...]) -> _Judged | None:
        """Judge the graph of ``eng`` at ``size`` (None when the edit breaks its shapes).

        Only ``r_min`` enters the verdicts: :meth:`Engine.judge` computes it alone where it can.
        """
        stack = eng.stack
        found = eng.judge(size)
        sizes = found.sizes
        # An empty map (the network cannot run) or a new size problem: the graph is not offered as it
        # is, but a trim that removes the layers concerned may be.
        problems = frozenset(
            str(d.layer)
            for d in found.diagnostics
            if d.kind == "empty-output" or (d.layer, d.kind) not in self.baseline_problems
        )
        if (
            self.flatten_sizes is not None
            and planning.flatten_input_sizes(stack, sizes) != self.flatten_sizes
        ):
            return None  # a fixed-width classifier would see another number of features
        if found.field is not None:  # the full field was needed: its problems count too
            problems |= {
                str(d.layer)
                for d in found.field.diagnostics
                if (d.layer, d.kind) not in self.baseline_problems
            }
        return _Judged(
            stack,
            found.verdicts,
            found.r_min,
            stack.macs(sizes, size),
            _depths(stack, found.verdicts),
            lambda: eng.evaluate(size),
            problems,
        )

    def candidate(
        self, edits: tuple[Edit, ...], judged: _Judged, size: tuple[int, ...], params: int
    ) -> Candidate:
        stack = judged.stack
        return self.make(
            edits,
            size,
            params,
            layers=range(len(stack.layers)),
            judged=judged,
            built=_Built(lambda: (stack, judged.full())),
        )

    def make(
        self,
        edits: tuple[Edit, ...],
        size: tuple[int, ...],
        params: int,
        layers: Sequence[int],
        judged: _Judged,
        built: _Built,
        head: Sequence[Layer] = (),
        names: Callable[[str], str] = lambda name: name,
    ) -> Candidate:
        """A candidate from the figures of ``layers`` of an evaluated graph, plus a new ``head``."""
        stack, verdicts = judged.stack, judged.verdicts
        if len(layers) != len(stack.layers):
            keep = set(layers)
            bad_all = [i for i in verdicts.unproductive if i in keep]
        else:
            bad_all = list(verdicts.unproductive)
        spatial = verdicts.spatial
        if len(layers) == len(stack.layers):
            macs, total_params, depth = sum(judged.layer_macs), judged.total_params, max(judged.depth)
        else:
            macs = sum(map(judged.layer_macs.__getitem__, layers)) + sum(h.macs_per_position for h in head)
            total_params = sum(stack.layers[i].params for i in layers) + sum(h.params for h in head)
            depth = max(map(judged.depth.__getitem__, layers), default=0)
        ratio = macs / self.base_macs if self.base_macs else 1.0
        return Candidate(
            edits=edits,
            label=", ".join(e.label for e in edits) or "original",
            input_size=size,
            params=params,
            macs=macs,
            macs_ratio=ratio,
            unproductive=tuple(names(stack.layers[i].name) for i in bad_all if spatial[i]),
            unproductive_params_share=(
                sum(stack.layers[i].params for i in bad_all) / total_params if total_params else 0.0
            ),
            unproductive_macs_share=sum(judged.layer_macs[i] for i in bad_all) / macs if macs else 0.0,
            productive_depth=depth,
            refused=self.refusal(ratio),
            source=self.source,
            built=built,
        )

    def trims(
        self,
        edits: tuple[Edit, ...],
        judged: _Judged,
        size: tuple[int, ...],
        params: int,
        moved: _Moved | None = None,
    ) -> list[Candidate]:
        """The two cuts: after the last productive block output, and before the first border layer."""
        stack, verdicts = judged.stack, judged.verdicts
        plans: list[TrimPlan] = []
        topology = self.topology if moved is None else moved.topology
        target = self.resolution

        def head(cut: str) -> tuple[Layer, ...]:
            return self.source.head_at_any_size(cut, target)

        blocker = self.source.merge_blocker
        if moved is not None:  # the source knows the original's layers: ask about the one a layer copies
            origin = moved.origin

            def head(cut: str) -> tuple[Layer, ...]:
                found = self.source.head_at_any_size(origin[cut], target)
                return (replace(found[0], inputs=(cut,)), *found[1:]) if found else found

            def blocker(layer: str) -> str | None:
                return self.source.merge_blocker(origin[layer])

        for planner in (
            lambda: planning.plan_trim_at(stack, verdicts, size, head, blocker, topology),
            lambda: planning.plan_cut_before_border(stack, verdicts, size, head, topology),
        ):
            try:
                plan = planner()
            except NotApplicable:
                continue
            if all(plan.cut != other.cut or plan.bypassed != other.bypassed for other in plans):
                plans.append(plan)
        out = []
        for plan in plans:
            made = self.trimmed(edits, judged, plan, size, params, moved)
            if made is not None:
                out.append(made)
        return out

    def trimmed(
        self,
        edits: tuple[Edit, ...],
        judged: _Judged,
        plan: TrimPlan,
        size: tuple[int, ...],
        params: int,
        moved: _Moved | None = None,
    ) -> Candidate | None:
        stack = judged.stack
        if judged.problems & set(plan.kept):
            return None
        removed = len(plan.removed)
        edit = Edit("trim", (plan.cut,), (), f"trim after {plan.cut} ({removed} layers removed)", plan)
        kept = [stack.index[name] for name in plan.kept]
        if moved is None:
            delta = sum(  # what the architecture edits changed in the kept layers
                stack.layers[i].params - self.stack.layers[i].params for i in kept
            )
            trimmed_params = self.source.params_after_trim(plan) + delta
        else:  # blocks move only where every parameter belongs to one layer (Source.stages)
            trimmed_params = sum(stack.layers[i].params for i in kept) + sum(h.params for h in plan.head)

        def build() -> tuple[Stack, Evaluation]:
            trimmed = planning.trimmed_stack(stack, plan)
            return trimmed, engine(trimmed).evaluate(size)

        index = stack.index
        if any(
            tuple(judged.r_min[index[merge]]) != tuple(judged.r_min[index[skip]])
            for merge, skip in plan.bypassed
        ):  # a removed branch changes r_min after it: judge the new graph
            trimmed = planning.trimmed_stack(stack, plan)
            again = self.judged(engine(trimmed), size)
            if again is None or again.problems:
                return None
            return self.candidate((*edits, edit), again, size, trimmed_params)
        # The kept layers are the cut's ancestors: their sizes, r_min and verdicts do not change (a
        # removed residual branch only held unproductive layers and did not set r_min at its add), and
        # the new head is global (pooling to 1, flatten, linear)
        return self.make(
            (*edits, edit),
            size,
            trimmed_params,
            layers=kept,
            judged=judged,
            built=_Built(build),
            head=plan.head,
            names=_renumbering([stack.layers[i] for i in kept]),
        )

    def run(self) -> Front:
        # The search allocates many small tuples; with a torch model in memory every full collection
        # walks its object graph, which took most of the time. Collection resumes afterwards.
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._run()
        finally:
            if enabled:
                gc.enable()

    def _run(self) -> Front:
        steps = self.stride_steps()
        stems = self.stem_options()
        sizes = self.sizes()
        candidates: list[Candidate] = []
        original: Candidate | None = None
        for stem, *strides in product(stems, *steps):
            arch = tuple(e for e in (stem, *strides) if e is not None)
            variant = _Variant(arch, self.layer_changes(arch))
            eng = self.base.variant(variant.changes)
            params = self.base_params + sum(
                layer.params - self.stack.layers[i].params for i, layer in variant.changes.items()
            )
            for size in sizes:
                judged = self.judged(eng, size)
                if judged is None:
                    continue
                edits = arch + ((_size_edit(size),) if size != self.resolution else ())
                made = self.candidate(edits, judged, size, params)
                if not edits:
                    original = made
                    if judged.problems:  # kept as the reference, never offered
                        original = made = replace(made, refused=self.broken(judged))
                if not judged.problems or not edits:
                    candidates.append(made)
                if "trim" in self.kinds and made.unproductive:
                    candidates += self.trims(edits, judged, size, params)
                if self.stages:
                    candidates += self.moves(variant, judged, size, params)
        assert original is not None  # the unedited network always passes its own checks
        if all(e.kind == "input-size" for c in candidates for e in c.edits):
            kinds = [k for k in self.kinds if k != "input-size"]
            raise RFError(
                f"no edit of the architecture applies to {self.source.name} at "
                f"{_format.size(self.resolution)} (tried: {', '.join(kinds) or 'none'}): it has no "
                "downsampling step or stem the search can change and nothing to trim"
            )
        allowed = [c for c in candidates if not c.refused]
        while True:
            pareto = _pareto(allowed)
            picks, reasons = _picks(allowed, original, self.budget)
            # The fast pass does not look for misaligned merges: the full fields of what is shown
            # decide, and a candidate that misaligns a merge leaves the search.
            shown = {id(c): c for c in (*pareto, *picks.values()) if c is not None}
            broken = {key for key, c in shown.items() if self.misaligned(c)}
            if not broken:
                break
            candidates = [c for c in candidates if id(c) not in broken]
            allowed = [c for c in allowed if id(c) not in broken]
        return Front(candidates, original, self.budget, picks, reasons, pareto, self.source.name)

    def moves(
        self, variant: _Variant, judged: _Judged, size: tuple[int, ...], params: int
    ) -> list[Candidate]:
        """``variant`` with its blocks moved to the stages that stay productive in ``judged``."""
        arch = variant.edits
        status, spatial = judged.verdicts.status, judged.verdicts.spatial
        stages = self.stages
        productive = [
            not any(spatial[i] and status[i] == "unproductive" for i in stage.layers[0]) for stage in stages
        ]
        current = tuple(stage.count for stage in stages)
        out: list[Candidate] = []
        seen = {current}
        for counts in (even_counts(stages, productive), border_counts(stages, productive)):
            if counts in seen:
                continue
            seen.add(counts)
            moved = self.moved_graph(counts)
            base = moved.stack
            if any(moved.origin.get(moved.plan.rename(n)) != n for n in _edited_names(arch)):
                continue  # an edited layer is in a block the move removes: the two do not combine
            changes: dict[int, Layer] = {}
            for layer in variant.changes.values():
                j = base.index[moved.plan.rename(layer.name)]
                if base.layers[j].name == layer.name and base.layers[j].inputs == layer.inputs:
                    changes[j] = layer  # the same layer in the same place: the edited copy serves
                    continue
                for edit in arch:  # renamed or rewired (a flat Sequential renumbered): edit it again
                    if layer.name in edit.layers:
                        changes[j] = _edited_layer(changes.get(j, base.layers[j]), edit, base.ndim)
            found = self.judged(moved.engine.variant(changes, base.name), size)
            if found is None:
                continue
            edit = Edit("move-blocks", (), counts, moved.plan.label, move=moved.plan)
            edits = (*arch, edit) + ((_size_edit(size),) if size != self.resolution else ())
            made = self.candidate(edits, found, size, params + moved.delta)
            if not found.problems:
                out.append(made)
            if "trim" in self.kinds and made.unproductive:
                out += self.trims(edits, found, size, params + moved.delta, moved)
        return out

    def moved_graph(self, counts: tuple[int, ...]) -> _Moved:
        found = self.moved.get(counts)
        if found is None:
            from rf_widgets.strategies import blocks

            plan = blocks.plan(self.stages, counts)
            stack, origin = moved_stack(self.stack, plan)
            delta = sum(layer.params for layer in stack.layers) - self.stack_params
            found = self.moved[counts] = _Moved(
                plan, stack, engine(stack), planning.Topology.of(stack), origin, delta
            )
        return found

    def broken(self, judged: _Judged) -> str:
        found = judged.full()
        why = next(d.message for d in found.diagnostics if str(d.layer) in judged.problems)
        return f"the network does not work at {_format.size(self.resolution)}: {why}"

    def misaligned(self, candidate: Candidate) -> bool:
        found = {(d.layer, d.kind) for d in candidate.evaluation.field.diagnostics}
        baseline = {(d.layer, d.kind) for d in self.base.evaluate(self.resolution).field.diagnostics}
        return bool(found - baseline)


# -- picks and the front ----------------------------------------------------------------------------------


def _objectives(c: Candidate) -> tuple[float, float, float, float]:
    """Lower is better on every axis."""
    return (c.macs, c.unproductive_macs_share + c.unproductive_params_share, c.params, -c.productive_depth)


def _pareto(candidates: Sequence[Candidate]) -> tuple[Candidate, ...]:
    points = [_objectives(c) for c in candidates]
    order = sorted(range(len(points)), key=lambda i: points[i])
    front: list[int] = []
    for i in order:  # sorted: a dominating point always comes first
        p = points[i]
        if any(all(a <= b for a, b in zip(points[j], p, strict=True)) and points[j] != p for j in front):
            continue
        if any(points[j] == p for j in front):
            continue  # the same numbers twice: keep the first (fewest edits come first in sort order)
        front.append(i)
    return tuple(candidates[i] for i in front)


def _picks(
    allowed: Sequence[Candidate], original: Candidate, budget: float
) -> tuple[dict[str, Candidate | None], dict[str, str]]:
    picks: dict[str, Candidate | None] = dict.fromkeys(PICKS)
    reasons: dict[str, str] = {}
    size = _format.size(original.input_size)
    cheap = [c for c in allowed if c.macs_ratio <= min(budget, 1.0) * (1 + 1e-9) and not c.unproductive]
    deep = [c for c in cheap if c.productive_depth >= original.productive_depth]
    if deep or cheap:
        picks["efficiency"] = min(
            deep or cheap, key=lambda c: (c.macs, c.params, -c.productive_depth, len(c.edits))
        )
    else:
        reasons["efficiency"] = (
            f"no candidate within {min(budget, 1.0):g}x the original multiply-adds leaves every layer "
            f"productive at {size}"
        )
    if allowed:
        picks["performance"] = min(
            allowed,
            key=lambda c: (
                c.unproductive_count,
                -c.productive_depth,
                c.unproductive_macs_share,
                c.macs,
                len(c.edits),
            ),
        )
    else:
        reasons["performance"] = f"no candidate fits the budget of {budget:g}x"
    front = _pareto(allowed)
    if front:
        picks["hybrid"] = _knee(front)
    else:
        reasons["hybrid"] = f"no candidate fits the budget of {budget:g}x"
    return picks, reasons


def _knee(front: Sequence[Candidate]) -> Candidate:
    """The front candidate nearest the ideal point: log compute, waste and depth scaled to [0, 1]."""
    logs = [math.log(max(c.macs, 1)) for c in front]
    waste = [c.unproductive_macs_share for c in front]
    depth = [-float(c.productive_depth) for c in front]

    def scaled(values: list[float]) -> list[float]:
        low, high = min(values), max(values)
        return [0.0 if high == low else (v - low) / (high - low) for v in values]

    axes = [scaled(logs), scaled(waste), scaled(depth)]
    distance = [math.hypot(*(axis[i] for axis in axes)) for i in range(len(front))]
    best = min(range(len(front)), key=lambda i: (distance[i], front[i].macs, len(front[i].edits)))
    return front[best]


# -- helpers ----------------------------------------------------------------------------------------------


def _edited_layer(layer: Layer, edit: Edit, ndim: int) -> Layer:
    if edit.kind == "stride":
        return replace(layer, stride=edit.value)
    if edit.kind == "remove-pool":
        return Layer(
            layer.name,
            "Identity",
            "window",
            layer.inputs,
            kernel=(1,) * ndim,
            stride=(1,) * ndim,
            dilation=(1,) * ndim,
            padding=((0, 0),) * ndim,
            module=layer.module,
            extra=dict(layer.extra),
        )
    if edit.kind == "stem-kernel":
        per_position = _conv_weights(layer, edit.value)
        bias = int(layer.extra["out_channels"]) if layer.extra.get("bias") else 0  # type: ignore[call-overload]
        # torch pads both sides by (k - 1) * d // 2: "same" for the odd kernels offered here
        pads = tuple(((k - 1) * d // 2,) * 2 for k, d in zip(edit.value, layer.dilation, strict=True))
        return replace(
            layer,
            kernel=edit.value,
            padding=pads,
            params=per_position + bias,
            macs_per_position=per_position,
            extra=dict(layer.extra),
        )
    raise AssertionError(edit.kind)


def _edited_names(edits: Sequence[Edit]) -> list[str]:
    return [name for edit in edits for name in edit.layers]


def _conv_weights(layer: Layer, kernel: tuple[int, ...]) -> int:
    facts = layer.extra
    per_group = int(facts["in_channels"]) // int(facts["groups"])  # type: ignore[call-overload]
    return int(facts["out_channels"]) * per_group * math.prod(kernel)  # type: ignore[call-overload]


def _size_edit(size: tuple[int, ...]) -> Edit:
    return Edit("input-size", (), size, f"input {_format.size(size)}")


def _depths(stack: Stack, verdicts: Verdicts) -> list[int]:
    """Per layer: the most spatial layers that are not unproductive on one path from the input to it."""
    status = verdicts.status
    spatial = verdicts.spatial
    depth: list[int] = []
    append = depth.append
    for i, sources in enumerate(stack.input_indices):
        before = 0
        for j in sources:
            if j >= 0 and depth[j] > before:
                before = depth[j]
        append(before + 1 if spatial[i] and status[i] != "unproductive" else before)
    return depth


def _renumbering(kept: Sequence[Layer]) -> Callable[[str], str]:
    """The names :func:`planning.trimmed_stack` gives the kept layers (repeated calls renumbered)."""
    if not any("fx_node" in layer.extra for layer in kept):
        return lambda name: name
    counts: dict[str, int] = {}
    names: dict[str, str] = {}
    for layer in kept:
        base = layer.name.split(":")[0]
        counts[base] = counts.get(base, 0) + 1
        names[layer.name] = base if counts[base] == 1 else f"{base}:{counts[base]}"
    return names.__getitem__


def _names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1})"
