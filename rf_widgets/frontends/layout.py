"""Layout roles: what each dimension of an imported tensor holds, as typed values.

A layout is a tuple with one role per tensor dimension. The plain roles are an ``int`` (one spatial
axis of the network input, 0 = height for images) or one of the tags :data:`BATCH` (``"N"``: batch,
or any dimension of size 1 that carries no positions), :data:`CHANNELS` (``"C"``: channels or features
of one position), :data:`TOKENS` (``"T"``: every spatial axis flattened into tokens, in order),
:data:`TOKENS_AND_CONSTANTS` (``"Tc"``: tokens with constant tokens such as ViT's class token in
front), :data:`MIXED` (``"X"``: part of the spatial positions mixed with something else),
:data:`FEATURES` (``"F"``: the features of a flatten layer, which already counted the spatial mixing)
and :data:`CHANNEL_BLOCK` (``"Cs"``: a block of a split channel axis, the ``2`` of ``(N, C, 2, 2, H, W)``
in a pixel shuffle written as reshapes).

Reshapes that cut spatial axes into pieces (window partitions, Swin's pad-and-roll, patch merging written
as strided slices) give the compound roles, frozen dataclasses: :class:`Block` (the block index or the
position within blocks of one axis), :class:`Whole` (a whole axis read as one block, or blocks of one),
:class:`Partition` (the positions within windows, or the window index, once every axis's blocks are
merged), :class:`Extended` (an axis padded at its end by a computed amount and rolled), :class:`Cut`
(one piece of an axis cut at computed bounds: a half of a roll) and :class:`Phase` (the phase
``i::b`` of a padded axis). Their ``str`` is a short notation for messages (``Pw:7/56,56>3,3``), never
parsed.

Which frontend makes which roles: torch the plain ones and :class:`Partition` (MaxViT's window
partitions), ONNX all of them (docs/onnx.md), Keras ints and its own ``"C"``/``"B"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

__all__ = [
    "BATCH", "CHANNELS", "CHANNEL_BLOCK", "FEATURES", "MIXED", "TOKENS", "TOKENS_AND_CONSTANTS", "Block",
    "Cut", "Extended", "Layout", "Partition", "Phase", "Role", "Whole", "Windows", "channels_first",
    "describe", "is_spatial",
]  # fmt: skip

BATCH: Final = "N"
CHANNELS: Final = "C"
TOKENS: Final = "T"
TOKENS_AND_CONSTANTS: Final = "Tc"
MIXED: Final = "X"
FEATURES: Final = "F"
CHANNEL_BLOCK: Final = "Cs"


@dataclass(frozen=True)
class Extended:
    """Spatial axis ``axis`` (``n0`` positions at the reference size) padded at its end by an amount
    computed from the map size, and rolled so that position ``i`` holds position ``i + shift`` (Swin's pad
    to whole windows and cyclic shift)."""

    axis: int
    n0: int
    shift: int = 0

    def __str__(self) -> str:
        return f"E{self.axis}/{self.n0}>{self.shift}"


@dataclass(frozen=True)
class Block:
    """One half of spatial axis ``axis`` split into ``(n / size, size)``: ``kind`` ``"G"`` the block index,
    ``"W"`` the position within a block. ``extended`` is ``(n0, shift)`` when the axis was padded to whole
    blocks or rolled first (see :class:`Extended`)."""

    kind: Literal["G", "W"]
    axis: int
    size: int
    extended: tuple[int, int] | None = None

    def __str__(self) -> str:
        ext = f"/{self.extended[0]}>{self.extended[1]}" if self.extended else ""
        return f"{self.kind}{self.axis}:{self.size}{ext}"

    def whole_axis(self) -> Extended | int:
        """The axis the block index and the position within blocks make together."""
        if self.extended is None:
            return self.axis
        return Extended(self.axis, *self.extended)


@dataclass(frozen=True)
class Whole:
    """A whole spatial axis read as one block of ``size`` (``kind`` ``"W"``) or as blocks of one (``"G"``,
    ``size`` 1) by a reshape with a constant block size; to anything but a further partition it is the
    axis itself."""

    kind: Literal["G", "W"]
    axis: int
    size: int

    def __str__(self) -> str:
        return f"{self.kind}{self.axis}:{self.size}!"


@dataclass(frozen=True)
class Partition:
    """A window partition: every axis's blocks of ``size`` merged in axis order. ``kind`` ``"Pw"`` is the
    positions within ``size x size`` windows, ``"Pg"`` the window index. ``extents`` and ``shifts`` (one
    per axis, or empty) are the axes' sizes at the reference size and their cyclic shifts when they
    were padded and rolled first; ``whole`` marks one window (or windows of one position) that covers
    the axes as they were merged."""

    kind: Literal["Pw", "Pg"]
    size: int
    extents: tuple[int, ...] = ()
    shifts: tuple[int, ...] = ()
    whole: bool = False

    def __str__(self) -> str:
        ext = ""
        if self.extents:
            ext = "/" + ",".join(map(str, self.extents)) + ">" + ",".join(map(str, self.shifts))
        return f"{self.kind}:{self.size}{ext}{'!' if self.whole else ''}"

    @property
    def block_kind(self) -> Literal["G", "W"]:
        """The :class:`Block` kind each axis had before the merge."""
        return "W" if self.kind == "Pw" else "G"


@dataclass(frozen=True)
class Cut:
    """The piece ``start:end`` (bounds at the reference size, computed from the map size) of a dimension
    with role ``role``: one half of a roll before the halves are concatenated again."""

    role: Role
    start: int
    end: int

    def __str__(self) -> str:
        return f"cut({self.role}){self.start}:{self.end}"


@dataclass(frozen=True)
class Phase:
    """The phase ``start::step`` of spatial axis ``axis`` (``n0`` positions at the reference size) padded
    to a multiple of ``step`` (Swin's patch merging written as strided slices)."""

    axis: int
    step: int
    start: int
    n0: int

    def __str__(self) -> str:
        return f"S{self.axis}:{self.step}+{self.start}/{self.n0}"


Role: TypeAlias = str | int | Block | Whole | Partition | Extended | Cut | Phase
"""One dimension's role: a plain tag, a spatial axis, or one of the compound roles."""

Layout: TypeAlias = tuple[Role, ...]


@dataclass(frozen=True)
class Windows:
    """Mixing values along the positions within ``size`` windows (window attention): a windows layer,
    its windows shifted by ``shift`` per axis (empty: not shifted)."""

    size: int
    shift: tuple[int, ...] = ()


_COMPOUND = (Block, Whole, Partition, Extended, Cut, Phase)


def channels_first(ndim: int) -> Layout:
    """``("N", "C", 0, 1, ...)``: the layout of a channels-first input with ``ndim`` spatial axes."""
    return (BATCH, CHANNELS, *range(ndim))


def is_spatial(role: Role) -> bool:
    """Whether a dimension holds spatial positions (whole, flattened or cut into pieces)."""
    return isinstance(role, (int, *_COMPOUND)) or role in (TOKENS, TOKENS_AND_CONSTANTS, MIXED)


_NAMES = {
    BATCH: "batch", CHANNELS: "channels", TOKENS: "tokens", MIXED: "mixed positions", FEATURES: "features",
}  # fmt: skip


def describe(layout: Layout) -> str:
    """A layout in words for messages: ``(batch, channels, spatial 0, spatial 1)``."""
    words = [
        f"spatial {r}" if isinstance(r, int) else _NAMES.get(r, str(r)) if isinstance(r, str) else str(r)
        for r in layout
    ]
    return "(" + ", ".join(words) + ")"
