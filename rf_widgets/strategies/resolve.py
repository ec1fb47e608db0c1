"""Which adapter a model gets: :func:`source_of` (torch models the torch.fx one, the rest a stack)."""

from __future__ import annotations

from typing import Any

from rf_widgets.core.results import Analysis
from rf_widgets.strategies.source import Source

__all__ = ["source_of"]


def source_of(model: Any, name: str | None = None) -> tuple[Source, tuple[int, ...] | None]:
    """The adapter of ``model``, and the input size an :class:`Analysis` was made at (else None).

    ``model`` is an ``nn.Module``, a :class:`Stack`, a list of layers, a model spec string or an
    :class:`Analysis`.
    """
    from rf_widgets._api import is_torch_module, to_stack

    if isinstance(model, Analysis):
        return Source(model.stack, name or model.model), model.input_size
    if isinstance(model, str):
        from rf_widgets.specs import load_model_spec

        name = name or model
        model = load_model_spec(model)
    if is_torch_module(model):
        from rf_widgets.strategies.surgery import TorchSource

        return TorchSource(model, name), None
    return Source(to_stack(model), name), None
