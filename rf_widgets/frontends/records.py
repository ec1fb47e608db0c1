"""The value records of an import, shared by the torch, ONNX and Keras frontends.

A frontend walks its framework's graph and gives every value one of these: the rules read them as
arguments and return them. The layout of an :class:`Act` is the frontend's own description of the
tensor's dimensions (a tuple of roles for torch and Keras, a layout string for ONNX).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

__all__ = ["CONST", "Act", "ShapeOf"]

LayoutT = TypeVar("LayoutT")


@dataclass(frozen=True)
class Act(Generic[LayoutT]):
    """An activation: produced by layer ``source`` (or the network input), dimensions as ``layout``."""

    source: str
    layout: LayoutT


@dataclass(frozen=True)
class ShapeOf:
    """Entries of an activation's shape (``x.shape[-2:]``, ONNX ``Shape``): one role per entry.

    ``values`` holds the entries at the import's reference input size when the frontend knows them.
    """

    source: str
    roles: tuple[Any, ...]
    values: tuple[int, ...] | None = None


class _Constant:
    """The type of :data:`CONST` (one instance)."""

    def __repr__(self) -> str:
        return "CONST"


CONST: Final[Any] = _Constant()
"""A value that does not depend on the image input (shapes, parameters, literals): no receptive field."""
