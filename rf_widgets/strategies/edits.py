"""The edits the design search combines (:func:`rf_widgets.strategies.search`), as plain records.

Kept apart from the search so that the model adapters (:mod:`rf_widgets.strategies.source`,
:mod:`rf_widgets.strategies.surgery`) can apply edits without importing the search.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rf_widgets.strategies.blocks import MovePlan
from rf_widgets.strategies.planning import TrimPlan

__all__ = ["EDIT_KINDS", "Edit"]

EDIT_KINDS = ("stride", "remove-pool", "stem-kernel", "move-blocks", "trim", "input-size")
"""``stride``: a downsampling step softened (stride 2 to 1, a stride-4 patchify to 2) in every parallel
layer of one step; ``remove-pool``: a pooling step removed (the pool becomes an identity);
``stem-kernel``: the first convolution's kernel made smaller, its padding kept "same";
``move-blocks``: the repeated blocks of the stages moved to the stages that stay productive (spread
evenly, or only the blocks past the border; torch models, see :mod:`rf_widgets.strategies.blocks`);
``trim``: the blocks past the last productive block output replaced by a head (pooling, a linear
layer); ``input-size``: the network fed larger inputs."""


@dataclass(frozen=True)
class Edit:
    """One change of a network or of its input.

    Attributes
    ----------
    kind
        One of :data:`EDIT_KINDS`.
    layers
        The layers it changes (for ``trim``: the cut, the layer whose output the new head reads).
    value
        The new stride (``stride``), kernel (``stem-kernel``) or input size (``input-size``), per axis;
        the new block count per stage (``move-blocks``).
    label
        A few words for people, e.g. ``"layer2.0.conv2 stride 2 -> 1"``.
    """

    kind: str
    layers: tuple[str, ...] = ()
    value: tuple[int, ...] = ()
    label: str = ""
    plan: TrimPlan | None = field(default=None, compare=False, repr=False)
    move: MovePlan | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return self.label
