"""The model a strategy works on: one adapter per kind of model, for the planners and the search.

:class:`Source` is a declared (or Keras/ONNX-imported) :class:`Stack`: every edit is predicted on the
layer graph and the edited graph is the result. :class:`rf_widgets.strategies.surgery.TorchSource` adds
what a torch model knows beyond its graph (parameters outside the layers, the channels a new head
reads, which strides and merges can be edited) and builds the edited module by torch.fx surgery.
:func:`rf_widgets.strategies.resolve.source_of` picks the adapter; :func:`~rf_widgets.strategies.suggest` and
:func:`~rf_widgets.strategies.search` both go through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rf_widgets.core.graph import Stack
from rf_widgets.core.layers import Layer
from rf_widgets.core.results import Analysis
from rf_widgets.errors import RFError
from rf_widgets.strategies.blocks import Stage
from rf_widgets.strategies.planning import ResolutionPlan, StridePlan, TrimPlan

if TYPE_CHECKING:
    from rf_widgets.strategies.edits import Edit

__all__ = ["Source"]


class Source:
    """A declared stack: what the planners and the search need to know beyond the layer graph.

    Attributes
    ----------
    stack
        The layer graph the edits name layers of.
    name
        The model's name in reports.
    model
        What the user gave (here the stack; the ``nn.Module`` for a torch model).
    analyses
        Full analyses of the search's candidates, made on first use (by candidate id).
    """

    def __init__(self, stack: Stack, name: str | None = None) -> None:
        self.stack = stack
        self.name = name or stack.name
        self.model: Any = stack
        self.analyses: dict[int, Analysis] = {}

    def params(self) -> int:
        """Parameters of the whole model."""
        return sum(layer.params for layer in self.stack.layers)

    def head(self, cut: str, resolution: tuple[int, ...]) -> tuple[Layer, ...]:
        """The layers a trim at ``cut`` attaches (a declared stack gets none: it ends at the cut).

        Raises :class:`NotApplicable` when no head can be attached at ``resolution``.
        """
        return ()

    def head_at_any_size(self, cut: str, resolution: tuple[int, ...]) -> tuple[Layer, ...]:
        """:meth:`head`, read at a size where the model runs when it does not run at ``resolution``."""
        return self.head(cut, resolution)

    def stride_blocker(self, layer: str) -> str | None:
        """Why the stride of ``layer`` cannot be changed (None: it can)."""
        return None

    def merge_blocker(self, layer: str) -> str | None:
        """Why the add ``layer`` cannot be replaced by its skip input (None: it can)."""
        return None

    def check_runs(self, size: tuple[int, ...]) -> None:
        """Raise :class:`NotApplicable` when the model cannot run at ``size`` (a stack always can)."""

    def can_remove(self, layer: Layer) -> bool:
        """Whether the pooling ``layer`` can be removed (made an identity)."""
        return layer.kind == "window"

    def can_rekernel(self, layer: Layer) -> bool:
        """Whether the kernel of the convolution ``layer`` can be made smaller."""
        return "out_channels" in layer.extra

    def stages(self, resolution: tuple[int, ...]) -> tuple[Stage, ...]:
        """The stages whose blocks can move (torch models only)."""
        return ()

    def params_after_trim(self, plan: TrimPlan) -> int:
        """Parameters of the model ``plan`` trims, its new head included."""
        kept = set(plan.kept)
        return sum(layer.params for layer in self.stack.layers if layer.name in kept) + sum(
            layer.params for layer in plan.head
        )

    def apply(self, edits: Sequence[Edit], label: str, predicted: Stack, model: Any) -> Any:
        """The network of a search candidate (``edits``, called ``label``): its predicted stack."""
        self._refuse_imported(f"building '{label}'", "the candidate's predicted")
        return predicted

    def apply_plan(self, plan: TrimPlan | StridePlan | ResolutionPlan, kind: str, predicted: Stack) -> Any:
        """The network of a strategy's plan: its predicted stack ``predicted``."""
        self._refuse_imported(f"the strategy '{kind}'", "its predicted")
        return predicted

    def _refuse_imported(self, what: str, whose: str) -> None:
        frontend = self.stack.metadata.get("frontend")
        if frontend not in (None, "torch"):  # imported from Keras or ONNX: nothing to edit the model with
            raise RFError(
                f"{what} applies to torch models only (torch.fx surgery); this {frontend} model is not "
                f"changed: {whose} layer graph is .stack"
            )
