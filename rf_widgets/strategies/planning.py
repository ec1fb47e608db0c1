"""The design strategies on the layer graph: which edit turns unproductive layers into a better network.

Pure functions of a :class:`~rf_widgets.core.graph.Stack` and its analysis (no torch): they decide
*what* to change and predict the result by analysing the edited stack.
:mod:`rf_widgets.strategies.surgery` carries the same plans over to a torch module.

Two graph notions do the work:

* the **output chain**: the layers every path from the input to the output passes through (the
  dominators of the output), in order. In a plain chain every layer is on it; in a ResNet the block
  outputs are, the layers inside a block are not. A network can only be cut at a layer of this chain.
* the **head**: everything from the first layer of the chain that discards the spatial layout (global or
  adaptive pooling, flatten) onwards. Trimming replaces it; downsampling is only changed before it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from rf_widgets import _format
from rf_widgets.core.analysis import evaluate
from rf_widgets.core.graph import NETWORK_INPUT, Stack
from rf_widgets.core.layers import Layer
from rf_widgets.core.results import Analysis
from rf_widgets.core.verdicts import Verdicts
from rf_widgets.editing import change_layer, rename_inputs

__all__ = [
    "ResolutionPlan",
    "StridePlan",
    "TrimPlan",
    "head_start",
    "output_chain",
    "plan_resolution",
    "plan_slowdown",
    "plan_trim",
    "stride_groups",
    "trimmed_stack",
]

HEAD_KINDS = ("global", "adaptive", "flatten")


class NotApplicable(Exception):
    """Raised by a planner with the reason a strategy does not apply to this network."""


@dataclass(frozen=True)
class TrimPlan:
    """Keep the layers the output of ``cut`` depends on, drop the rest and attach ``head``.

    ``bypassed`` holds ``(add, source)`` pairs: residual adds removed with their branch, whose readers
    read ``source`` instead (the skip input, or what a removed skip add itself reads).
    """

    cut: str
    kept: tuple[str, ...]
    removed: tuple[str, ...]
    head: tuple[Layer, ...]
    bypassed: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class StridePlan:
    """New strides: one ``(layer, old stride, new stride)`` per changed layer, in the order chosen."""

    changes: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]


@dataclass(frozen=True)
class ResolutionPlan:
    """Feed the network inputs of ``input_size`` instead."""

    input_size: tuple[int, ...]


# -- graph structure --------------------------------------------------------------------------------------


def immediate_dominators(stack: Stack) -> list[int]:
    """The immediate dominator of every layer (``NETWORK_INPUT`` for layers only the input dominates).

    The layers are in topological order, so one pass with the two-finger intersection of Cooper,
    Harvey and Kennedy is exact on a DAG.
    """
    idom: list[int] = []
    for sources in stack.input_indices:
        preds = list(sources) or [NETWORK_INPUT]
        dom = preds[0]
        for other in preds[1:]:
            dom = _intersect(idom, dom, other)
        idom.append(dom)
    return idom


def _intersect(idom: list[int], a: int, b: int) -> int:
    while a != b:
        if a > b:
            a = idom[a]
        else:
            b = idom[b]
    return a


def output_chain(stack: Stack, idom: list[int] | None = None) -> list[int]:
    """Indices of the layers on every path from the input to the output, in topological order."""
    idom = immediate_dominators(stack) if idom is None else idom
    sinks = [i for i, succ in enumerate(stack.successors) if not succ]
    node = sinks[0]
    for other in sinks[1:]:
        node = _intersect(idom, node, other)
    chain = []
    while node != NETWORK_INPUT:
        chain.append(node)
        node = idom[node]
    return chain[::-1]


def head_start(stack: Stack, chain: list[int]) -> int | None:
    """The first layer of the output chain that discards the spatial layout (None: the stack has no head)."""
    for i in chain:
        if stack.layers[i].kind in HEAD_KINDS:
            return i
    return None


def ancestors(stack: Stack, index: int) -> set[int]:
    """``index`` and every layer it depends on."""
    seen = {index}
    todo = [index]
    while todo:
        for j in stack.input_indices[todo.pop()]:
            if j != NETWORK_INPUT and j not in seen:
                seen.add(j)
                todo.append(j)
    return seen


def is_downsampling(layer: Layer) -> bool:
    return layer.kind == "window" and any(s > 1 for s in layer.stride)


def stride_groups(stack: Stack) -> list[tuple[int, ...]]:
    """The downsampling layers before the head, grouped by the stretch of the output chain they sit in.

    Strided layers in parallel branches between the same two chain layers (a ResNet block's strided
    convolution and its projection shortcut) must change together, or the branches stop lining up at
    the merge. A strided layer on the chain is a group of its own.
    """
    idom = immediate_dominators(stack)
    chain = output_chain(stack, idom)
    on_chain = set(chain)
    head = head_start(stack, chain)
    # Keys: ("on", i) for a chain layer itself, ("after", a) for the stretch that starts at chain layer a
    # (or at the input), so a strided chain layer never shares a group with the branches after it.
    groups: dict[tuple[str, int], list[int]] = {}
    for i, layer in enumerate(stack.layers):
        if (head is not None and i >= head) or not is_downsampling(layer):
            continue
        if i in on_chain:
            groups[("on", i)] = [i]
            continue
        anchor = idom[i]
        while anchor != NETWORK_INPUT and anchor not in on_chain:
            anchor = idom[anchor]
        groups.setdefault(("after", anchor), []).append(i)
    return [tuple(g) for g in groups.values()]


@dataclass(frozen=True)
class Topology:
    """The wiring facts the trim needs, computed once for stacks that share a graph (edited strides)."""

    idom: list[int]
    chain: list[int]
    stack: Stack
    _ancestors: dict[int, frozenset[int]] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, stack: Stack) -> Topology:
        idom = immediate_dominators(stack)
        return cls(idom, output_chain(stack, idom), stack)

    def ancestors(self, index: int) -> frozenset[int]:
        """:func:`ancestors` of ``index``, remembered."""
        found = self._ancestors.get(index)
        if found is None:
            found = self._ancestors[index] = frozenset(ancestors(self.stack, index))
        return found


# -- trim -------------------------------------------------------------------------------------------------


def plan_trim(
    analysis: Analysis,
    make_head: Callable[[str], tuple[Layer, ...]],
    merge_blocker: Callable[[str], str | None] = lambda name: None,
) -> TrimPlan:
    """Cut after the last productive chain layer, attach a new head, and drop dead residual branches.

    ``make_head(cut)`` returns the layers of the new head, reading ``cut``'s output (for a torch model:
    global average pooling, flatten and a linear layer with the right width). Before the cut, a residual
    branch whose layers are all unproductive is removed with its ``add``: the block keeps its skip
    connection (see :func:`dead_branches`). ``merge_blocker(name)`` gives a reason to keep a merge.
    """
    return plan_trim_at(analysis.stack, analysis.verdicts, analysis.input_size, make_head, merge_blocker)


def plan_trim_at(
    stack: Stack,
    verdicts: Verdicts,
    resolution: tuple[int, ...],
    make_head: Callable[[str], tuple[Layer, ...]],
    merge_blocker: Callable[[str], str | None] = lambda name: None,
    topology: Topology | None = None,
) -> TrimPlan:
    """:func:`plan_trim` from the verdicts alone (the search judges many stacks without an Analysis)."""
    status = verdicts.status
    if not verdicts.unproductive:
        raise NotApplicable(f"no layer is unproductive at {_format.size(resolution)}")
    topology = topology or Topology.of(stack)
    chain = topology.chain
    head = head_start(stack, chain)
    body = [i for i in chain if head is None or i < head]
    productive = [i for i in body if status[i] != "unproductive"]
    if not productive:
        raise NotApplicable("every layer on the path to the output is unproductive; nothing would be left")
    cut = productive[-1]
    kept_indices = set(topology.ancestors(cut))
    branches = [
        b
        for b in _dead_branches(stack, verdicts, kept_indices, topology)
        if not merge_blocker(stack.layers[b[0]].name)
    ]
    for merge, _, branch in branches:
        kept_indices -= branch | {merge}
    if cut == body[-1] and not branches:
        last = stack.layers[cut].name
        raise NotApplicable(
            f"the unproductive layers sit inside blocks whose output is still productive (the last block "
            f"output before the head, '{last}', is {status[cut]}), and no residual branch is unproductive "
            "as a whole, so nothing can be removed"
        )
    kept = tuple(layer.name for i, layer in enumerate(stack.layers) if i in kept_indices)
    removed = tuple(layer.name for i, layer in enumerate(stack.layers) if i not in kept_indices)
    reads: dict[str, str] = {}  # a removed add is read through to its skip, across consecutive blocks
    for m, skip, _ in sorted(branches):
        name = stack.layers[skip].name
        reads[stack.layers[m].name] = reads.get(name, name)
    bypassed = tuple(reads.items())
    return TrimPlan(stack.layers[cut].name, kept, removed, make_head(stack.layers[cut].name), bypassed)


def plan_cut_before_border(
    stack: Stack,
    verdicts: Verdicts,
    resolution: tuple[int, ...],
    make_head: Callable[[str], tuple[Layer, ...]],
    topology: Topology | None = None,
) -> TrimPlan:
    """Cut at the last output-chain layer before the first border layer and attach ``make_head(cut)``.

    The authors' efficiency recipe: the blocks from the border on are replaced by a simple head, even
    when the block holding the border layer still has productive layers.
    """
    if not verdicts.border:
        raise NotApplicable(f"no layer is unproductive at {_format.size(resolution)}")
    border = verdicts.border[0]
    chain = [i for i in (topology or Topology.of(stack)).chain if i < border]
    if not chain:
        raise NotApplicable("the first border layer comes before any layer the network can be cut at")
    cut = chain[-1]
    kept_indices = (topology or Topology.of(stack)).ancestors(cut)
    kept = tuple(layer.name for i, layer in enumerate(stack.layers) if i in kept_indices)
    removed = tuple(layer.name for i, layer in enumerate(stack.layers) if i not in kept_indices)
    return TrimPlan(stack.layers[cut].name, kept, removed, make_head(stack.layers[cut].name))


def dead_branches(analysis: Analysis, within: set[int]) -> list[tuple[int, int, frozenset[int]]]:
    """Residual blocks in ``within`` whose branch is an unproductive tail: ``(add, skip, branch)``.

    The branch of a two-input ``add`` is everything one input depends on after the block's entry (the
    add's immediate dominator). It qualifies when it holds a spatial layer, every spatial layer in it is
    unproductive, its output is unproductive, and nothing outside it reads it; the add can then be
    replaced by its other input, the skip connection. Pointwise layers in front of the first spatial
    layer (a bottleneck's 1x1 reduction) stay productive by the verdicts, since they read a productive
    block input, but they only feed the unproductive ones and go with the branch.
    """
    return _dead_branches(analysis.stack, analysis.verdicts, within, Topology.of(analysis.stack))


def _dead_branches(
    stack: Stack, verdicts: Verdicts, within: set[int], topology: Topology
) -> list[tuple[int, int, frozenset[int]]]:
    idom = topology.idom
    status = verdicts.status
    spatial = verdicts.spatial
    found: list[tuple[int, int, frozenset[int]]] = []
    taken: set[int] = set()
    for m in sorted(within):
        sources = stack.input_indices[m]
        if stack.layers[m].op != "add" or len(sources) != 2 or NETWORK_INPUT in sources:
            continue
        entry = idom[m]
        before = topology.ancestors(entry) if entry != NETWORK_INPUT else frozenset()
        for b, skip in ((sources[0], sources[1]), (sources[1], sources[0])):
            branch = topology.ancestors(b) - before
            if not branch or skip in branch or branch & taken:
                continue
            if status[b] != "unproductive" or not any(spatial[v] for v in branch):
                continue
            if any(spatial[v] and status[v] != "unproductive" for v in branch):
                continue
            if any(w not in branch and w != m for v in branch for w in stack.successors[v]):
                continue
            found.append((m, skip, frozenset(branch)))
            taken |= branch | {m}
            break
    return found


def trimmed_stack(stack: Stack, plan: TrimPlan) -> Stack:
    """The stack the trim plan predicts: the kept layers in their order, then the new head.

    Readers of a removed ``add`` read its skip input instead. Layers imported from torch are renumbered
    the way the import names repeated calls (``relu``, ``relu:2``): a removed call shifts the count.
    """
    keep = set(plan.kept)
    layers = [layer for layer in stack.layers if layer.name in keep] + list(plan.head)
    for merge, skip in plan.bypassed:
        layers = rename_inputs(layers, merge, (skip,))
    if any("fx_node" in layer.extra for layer in layers):
        layers = _renumbered(layers)
    return Stack(layers, stack.ndim, f"{stack.name} (trimmed)", stack.metadata)


def _renumbered(layers: list[Layer]) -> list[Layer]:
    counts: dict[str, int] = {}
    names: dict[str, str] = {}
    for layer in layers:
        base = layer.name.split(":")[0]
        counts[base] = counts.get(base, 0) + 1
        names[layer.name] = base if counts[base] == 1 else f"{base}:{counts[base]}"
    return [
        replace(layer, name=names[layer.name], inputs=tuple(names.get(i, i) for i in layer.inputs or ()))
        for layer in layers
    ]


# -- slow the growth --------------------------------------------------------------------------------------


def smaller_stride(stride: tuple[int, ...]) -> tuple[int, ...]:
    """Half the stride where it is even and above 2 (a stride-4 patchify becomes 2), else 1."""
    return tuple(s // 2 if s > 2 and s % 2 == 0 else 1 for s in stride)


def _with_strides(stack: Stack, changes: dict[str, tuple[int, ...]]) -> Stack:
    for name, stride in changes.items():
        stack = change_layer(stack, name, stride=stride)
    return stack


def plan_slowdown(
    analysis: Analysis, blocker: Callable[[str], str | None] = lambda name: None, max_steps: int = 8
) -> tuple[StridePlan, Stack]:
    """Reduce downsampling step by step, each time where it leaves the fewest layers unproductive.

    Every step halves the stride of one group of parallel downsampling layers (see
    :func:`stride_groups`); among the steps that leave equally few layers unproductive the one that adds
    the least compute wins. Steps that would misalign a merge, leave an empty feature map (even one the
    original already had: the result must run) or change the size a flatten layer sees (a fixed-width
    classifier) are skipped, and so are layers for which ``blocker(name)`` gives a reason (a torch
    module that runs twice, a stride set in code). Stops when nothing is unproductive or no step helps.
    """
    stack = analysis.stack
    resolution = analysis.input_size
    if not analysis.unproductive_layers:
        raise NotApplicable(f"no layer is unproductive at {_format.size(resolution)}")
    groups = stride_groups(stack)
    if not groups:
        raise NotApplicable("the network has no downsampling layer before its head")
    blocked = {stack.layers[i].name: blocker(stack.layers[i].name) for g in groups for i in g}
    reasons = [f"'{name}': {why}" for name, why in blocked.items() if why]
    groups = [g for g in groups if not any(blocked[stack.layers[i].name] for i in g)]
    baseline = _problems(stack, resolution)
    flatten_sizes = flatten_input_sizes(stack, analysis.sizes)
    current: dict[str, tuple[int, ...]] = {}
    current_stack = stack
    best_count = len(analysis.unproductive_layers)
    steps: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    rejected: list[str] = []
    for _ in range(max_steps):
        best: tuple[int, int, dict[str, tuple[int, ...]], Stack] | None = None
        for group in groups:
            trial = dict(current)
            for i in group:
                layer = stack.layers[i]
                trial[layer.name] = smaller_stride(trial.get(layer.name, layer.stride))
            if trial == current:
                continue
            candidate = _with_strides(stack, trial)
            trial_result = evaluate(candidate, resolution)
            sizes = trial_result.sizes
            found = {(d.layer, d.kind) for d in trial_result.diagnostics}
            empty = any(kind == "empty-output" for _, kind in found)
            if found - baseline or empty or flatten_input_sizes(candidate, sizes) != flatten_sizes:
                rejected.append(stack.layers[group[0]].name)
                continue
            count = len(trial_result.verdicts.unproductive)
            macs = sum(candidate.macs(sizes, resolution))
            if best is None or (count, macs) < (best[0], best[1]):
                best = (count, macs, trial, candidate)
        if best is None or best[0] >= best_count:
            break
        best_count, _, chosen, current_stack = best
        for name, stride in chosen.items():
            if current.get(name) != stride:
                steps.append((name, current.get(name, stack[name].stride), stride))
        current = chosen
        if best_count == 0:
            break
    if not steps:
        why = "no change of a stride lowers the number of unproductive layers"
        if rejected:
            why += f"; skipped because they break the network's shapes: {', '.join(dict.fromkeys(rejected))}"
        if reasons:
            why += f"; cannot be changed: {'; '.join(reasons)}"
        raise NotApplicable(why)
    renamed = Stack(current_stack.layers, stack.ndim, f"{stack.name} (slower downsampling)", stack.metadata)
    return StridePlan(tuple(steps)), renamed


def _problems(stack: Stack, resolution: tuple[int, ...]) -> set[tuple[str | None, str]]:
    return {(d.layer, d.kind) for d in evaluate(stack, resolution).diagnostics}


def flatten_input_sizes(stack: Stack, sizes: object) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = []
    for layer, sources in zip(stack.layers, stack.input_indices, strict=True):
        if layer.kind == "flatten":
            out.extend(sizes[j] for j in sources if j != NETWORK_INPUT)  # type: ignore[index]
    return out


# -- input resolution -------------------------------------------------------------------------------------


def plan_resolution(analysis: Analysis) -> ResolutionPlan:
    """Move the input size into the feasible range, to its nearest end."""
    low, high = analysis.resolution_range
    size = analysis.input_size
    if low is None:
        raise NotApplicable("no input size makes every layer productive (searched up to the limit)")
    if high is not None and low > high:
        raise NotApplicable(
            f"the feasible range is empty (smallest size without unproductive layers {low} is above the "
            f"largest useful size {high})"
        )
    if min(size) < low:
        return ResolutionPlan((low,) * len(size))
    if high is not None and max(size) > high:
        return ResolutionPlan((high,) * len(size))
    raise NotApplicable(f"{_format.size(size)} is already inside the feasible range {low} to {high}")
