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
    from rf_widgets.frontends.registry import resolve

    if isinstance(model, Analysis):
        return Source(model.stack, name or model.model), model.input_size
    found = resolve(model)
    name = name or found.name
    if found.kind == "torch":
        from rf_widgets.strategies.surgery import TorchSource

        return TorchSource(found.model, name), None
    return Source(found.stack(), name), None
