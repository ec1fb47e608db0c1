"""The Explorer's effective fields: computed on demand with :func:`rf_widgets.evidence.erf_map`, cached.

torch (through ``rf_widgets.evidence``) is imported only when a field is first asked for.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ERF_SAMPLES", "EffectiveFields"]

ERF_SAMPLES = 4


class EffectiveFields:
    """The effective field of one unit per (layer, unit, input size) of one torch model, cached."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._cache: dict[tuple[Any, ...], Any] = {}

    def cached(self, layer: str, unit: tuple[int, ...], size: tuple[int, ...]) -> Any:
        """The stored field, or None when it has not been computed yet."""
        return self._cache.get((layer, unit, size))

    def get(self, layer: str, unit: tuple[int, ...], size: tuple[int, ...]) -> Any:
        """The field of ``unit`` of ``layer`` at ``size`` (weights as given, float32, a few inputs)."""
        key = (layer, unit, size)
        if key not in self._cache:
            from rf_widgets.evidence import erf_map

            self._cache[key] = erf_map(self.model, layer, unit, size, "as given", samples=ERF_SAMPLES)
        return self._cache[key]
