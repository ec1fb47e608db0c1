"""Why a trim keeps the border layer, and the deeper cut that removes it (for the Strategies tab).

The trim (:func:`rf_widgets.strategies.suggest`) cuts after the last productive block output and
removes a residual branch only when every spatial layer in it is unproductive. A border layer inside a
branch that also holds a productive spatial layer therefore stays: this module names that layer. The
deeper cut, before the first border layer (the authors' efficiency recipe), is found among the trims of
:func:`rf_widgets.strategies.search` restricted to trims, which predicts it like every other candidate.
Pure functions: no widgets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rf_widgets.core.graph import NETWORK_INPUT
from rf_widgets.core.results import Analysis
from rf_widgets.errors import RFError

__all__ = ["DEEPER_KIND", "DeeperCut", "border_kept_because", "deeper_cut"]

DEEPER_KIND = "trim-deeper"
DEEPER_TITLE = "Cut before the border layer (deeper trim)"


def border_kept_because(before: Analysis, trim: Any) -> str | None:
    """One sentence on why the trim ``trim`` (a Suggestion) keeps the border layer; None when it does not.

    The border layer stays when it is critical rather than unproductive (the trim removes unproductive
    layers only), or when a residual branch holding it also holds a productive spatial layer: the
    branch is then not unproductive as a whole, so its block, border layer included, is kept.
    """
    border = before.border_layer
    if border is None or trim.after is None or border not in trim.after.stack.index:
        return None
    stack, verdicts = before.stack, before.verdicts
    b = stack.names.index(border)
    if verdicts.status[b] != "unproductive":
        return (
            f"the border layer '{border}' stays: it is {verdicts.status[b]}, not unproductive (its field "
            "first reaches the input size there), and the trim removes unproductive layers only"
        )
    from rf_widgets.strategies.planning import Topology

    topology = Topology.of(stack)
    for m, layer in enumerate(stack.layers):
        if m <= b or layer.op != "add" or b not in topology.ancestors(m):
            continue
        entry = topology.idom[m]
        before_block = topology.ancestors(entry) if entry != NETWORK_INPUT else frozenset()
        for source in stack.input_indices[m]:
            if source == NETWORK_INPUT:
                continue
            branch = topology.ancestors(source) - before_block
            if b not in branch:
                continue
            keepers = [
                stack.layers[i].name
                for i in sorted(branch)
                if verdicts.spatial[i] and verdicts.status[i] != "unproductive"
            ]
            if keepers:
                names = ", ".join(f"'{name}'" for name in keepers)
                return (
                    f"the border layer '{border}' stays: its residual branch (into '{layer.name}') also "
                    f"holds the productive {names}, so the branch is not unproductive as a whole and the "
                    "trim keeps the block"
                )
    later = [
        stack.layers[i].name
        for i in range(b + 1, len(stack.layers))
        if stack.layers[i].name in trim.after.stack.index and verdicts.status[i] != "unproductive"
    ]
    if later:
        return f"the border layer '{border}' stays: the productive '{later[0]}' after it reads it"
    return f"the border layer '{border}' stays"


@dataclass(frozen=True)
class DeeperCut:
    """The cut before the first border layer, predicted: its candidate, stack and one-line summary."""

    candidate: Any  # a rf_widgets.strategies.Candidate
    title: str = DEEPER_TITLE
    kind: str = DEEPER_KIND

    @property
    def stack(self) -> Any:
        return self.candidate.stack

    def describe(self) -> str:
        c = self.candidate
        return (
            f"{self.title} (predicted):\n  - {c.label}\n  {c.describe().splitlines()[-1].strip()}; "
            f"border layer {c.border_layer or 'none'}"
        )


def deeper_cut(
    source: Any, resolution: tuple[int, ...], trim: Any, name: str | None = None
) -> DeeperCut | None:
    """The trim that removes more than ``trim`` and leaves no border layer, or None.

    ``source`` is what the strategies ran on (a torch model or a stack). Only asked for when ``trim``
    keeps the border layer; the search then runs on trims alone, at ``resolution``.
    """
    from rf_widgets.strategies import search

    try:
        front = search(source, resolution, edits=("trim",), name=name)
    except RFError:
        return None
    removed = len(trim.removed)
    deeper = [
        c
        for c in front
        if c.edits and all(e.kind == "trim" for e in c.edits) and not c.refused and c.border_layer is None
    ]
    deeper = [c for c in deeper if len(c.stack.layers) < len(trim.after.stack.layers) or removed == 0]
    if not deeper:
        return None
    return DeeperCut(max(deeper, key=lambda c: len(c.stack.layers)))  # the shallowest of the deeper cuts
