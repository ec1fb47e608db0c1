"""What each dimension of an ONNX tensor means, followed through Transpose, Reshape, Flatten and friends.

A layout holds one role per dimension (:mod:`rf_widgets.frontends.layout`): ``"N"`` batch (or any
dimension of size 1 that carries no positions), ``"C"`` channels, ``0 .. ndim-1`` one spatial axis,
``"T"``/``"Tc"`` tokens, ``"X"`` mixed positions, ``"F"`` flatten features, ``"Cs"`` a block of a split
channel axis (the ``2`` of ``(N, C, 2, 2, H, W)`` in a pixel shuffle written as Reshape and Transpose).

Window partitions (docs/onnx.md, "Window partitions") are typed roles: :class:`Block` ``G``/``W`` the
block index and the position within blocks of ``b`` of one spatial axis; :class:`Partition` ``Pw``/``Pg``
the positions within ``b x b`` windows and the window index once every axis's blocks are merged;
:class:`Extended` an axis padded at its end by a computed amount and rolled (Swin); :class:`Cut` one half
of a roll; :class:`Phase` the phase ``i::b`` of a padded axis (Swin's patch merging). Block, pad and roll
details ride along in the partition roles (``Partition("Pw", 7, (56, 56), (3, 3))``).

A Reshape that leaves every spatial axis whole on one dimension next to a dimension of size 1, all on
the same side, with the block size (the second of each pair) a constant of the file, is read as the
split ``(n / b, b)`` it is wherever it runs (the first of the pair is a constant 1, so the Reshape runs
only at that size, or a block count computed from the shape): ``(1, n)`` is one block of ``n``
(``Whole("W", a, n)``, the whole axis as the position within its one block) and ``(n, 1)`` is ``n``
blocks of one (``Whole("G", a, 1)``). Merged in axis order they are ``Partition("Pw", n, whole=True)`` /
``Partition("Pg", 1, whole=True)``; anything else reads them as the axis itself (MaxViT's last stage at
224: windows and grid of one 7 x 7 window).

An operation that mixes values along a dimension (a reduction, a softmax, a matrix product) is global
when the role is spatial, a windows layer along ``Pw``, global along ``Pg``, unknown along ``"X"``
or any other piece of an axis, and pointwise otherwise. A Transpose only permutes
roles: a channels-last tensor ``("N", 0, 1, "C")`` feeds a convolution correctly once a Transpose has
brought the roles back to ``("N", "C", 0, 1)``, whatever the converter did in between.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from rf_widgets.frontends.layout import (
    Block,
    Cut,
    Extended,
    Layout,
    Partition,
    Phase,
    Role,
    Whole,
    Windows,
    channels_first,
    is_spatial,
)

__all__ = [
    "Block", "Cut", "Extended", "Layout", "Partition", "Phase", "Role", "Whole", "channels_first",
    "is_spatial", "merged", "mixing", "plain", "regroup", "spatial_order",
]  # fmt: skip


def mixing(roles: Sequence[Role]) -> Literal["global", "unknown", "pointwise"] | Windows:
    """``"global"``, :class:`Windows`, ``"unknown"`` or ``"pointwise"`` for mixing values along ``roles``.

    Mixing along the window index of a partition (MaxViT's grid attention) reaches every window: global.
    Mixing along the positions within ``b x b`` windows (and nothing else spatial) is ``Windows(b)``.
    """
    parts = [r for r in roles if isinstance(r, Partition)]
    if any(isinstance(r, (int, Whole)) or r in ("T", "Tc") for r in roles) or any(
        p.kind == "Pg" for p in parts
    ):
        return "global"
    if "X" in roles or any(isinstance(r, (Block, Extended, Cut, Phase)) for r in roles):
        return "unknown"
    windows = {(p.size, p.shifts) for p in parts}
    if len(windows) == 1:
        b, shifts = windows.pop()
        return Windows(b, shifts if any(shifts) else ())
    return "unknown" if windows else "pointwise"


def spatial_order(layout: Layout, ndim: int) -> tuple[int, ...] | None:
    """For an operator that reads ``(N, C, spatial...)``: which spatial axis each trailing dim holds.

    None unless dimension 1 holds channels and the trailing ``ndim`` dimensions are the spatial axes,
    each exactly once (in any order: a Transpose may have swapped height and width).
    """
    if len(layout) != ndim + 2 or layout[1] != "C":
        return None
    axes = [a for a in layout[2:] if isinstance(a, int)]
    if len(axes) != ndim or sorted(axes) != list(range(ndim)):
        return None
    return tuple(axes)


def regroup(
    layout: Layout,
    before: Sequence[int],
    after: Sequence[int],
    ndim: int,
    blocks: dict[str, dict[int, int]] | None = None,
    fixed: Sequence[bool] | None = None,
) -> Layout | None:
    """The layout of a tensor of shape ``before`` reshaped to ``after``; None when the sizes do not factor.

    Runs of consecutive dimensions whose sizes multiply to the same number are matched. A run keeps its
    role when it maps one dimension to one; merging exactly the spatial axes in order gives ``"T"``;
    merging channels with spatial axes gives ``"F"`` (the caller emits a flatten layer); any other split
    or merge of spatial positions gives ``"X"``. Size-1 dimensions carry no positions.

    Two block moves are recognised and recorded in ``blocks`` (the caller emits their layers): splitting
    spatial axis ``a`` into ``(n / b, b)`` (``blocks["split"][a] = b``: space to depth, the block
    becomes ``"Cs"``) and merging axis ``a`` with a following ``"Cs"`` block of size ``b``
    (``blocks["merge"][a] = b``: depth to space, a nearest upsampling by ``b``).

    ``fixed``: per dimension of ``after``, whether its size is a constant of the file rather than
    computed from the map size; whole axes next to dimensions of size 1 may then be read as a partition
    into one block, or into blocks of one (see the module docstring).
    """
    if blocks is None:
        blocks = {}
    blocks.setdefault("split", {})
    blocks.setdefault("merge", {})
    if len(before) != len(layout) or math.prod(before) != math.prod(after):
        return None
    out: list[Role] = []
    i = j = 0
    while j < len(after):
        if i < len(before) and before[i] == after[j]:
            out.append(layout[i] if before[i] != 1 else "N")
            i, j = i + 1, j + 1
        elif after[j] == 1:
            out.append("N")
            j += 1
        elif i < len(before) and before[i] == 1:
            i += 1
        else:
            if i >= len(before):
                return None
            roles = [layout[i]]
            sizes = [before[i]]
            first = j
            have, want, span = before[i], after[j], 1
            i += 1
            while have != want:
                if have < want:
                    if i >= len(before):
                        return None
                    have *= before[i]
                    if before[i] != 1:
                        roles.append(layout[i])
                        sizes.append(before[i])
                    i += 1
                else:
                    j += 1
                    if j >= len(after):
                        return None
                    want *= after[j]
                    span += 1
            parts = [n for n in after[first : j + 1] if n != 1]
            unpacked = _unpartition(roles[0], parts, ndim) if len(roles) == 1 else None
            blocked = [r if isinstance(r, Block) else None for r in roles]
            whole = roles[0] if len(roles) == 1 else merged(roles, 1, ndim) if len(roles) == 2 else None
            pieces = _split_axis(whole, parts) if whole is not None else None
            if pieces is not None:
                # (n) -> (n / b, b): which block and where in it; what they become is decided where
                # they are merged again (the axis, a window partition, or channels: space to depth).
                # The blocks of an axis may be regrouped at once: (n / b, b) -> (n / b', b').
                inner = iter(pieces)
                out.extend("N" if n == 1 else next(inner) for n in after[first : j + 1])
            elif unpacked is not None:
                inner = iter(unpacked)
                out.extend("N" if n == 1 else next(inner) for n in after[first : j + 1])
            elif (
                span == 1
                and any(k is not None and k.kind == "W" for k in blocked)
                and any(r in ("C", "Cs", "F") for r in roles)
                and all(
                    (k is not None and k.kind == "W") or r in ("C", "Cs", "F")
                    for r, k in zip(roles, blocked, strict=True)
                )
            ):
                # positions within blocks merged into channels: space to depth by each block
                for k in blocked:
                    if k is not None:
                        blocks["split"][k.axis] = k.size
                out.append("C")
            elif len(roles) == 1 and roles[0] in ("C", "Cs", "F") and span > 1:
                out.extend([roles[0]] + ["Cs"] * (span - 1))
            elif span == 1 and len(roles) == 2 and isinstance(roles[0], int) and roles[1] == "Cs":
                blocks["merge"][roles[0]] = sizes[1]
                out.append(roles[0])
            else:
                out.extend([merged(roles, span, ndim)] * span)
            j += 1
    return _one_block(out, after, ndim, fixed) if fixed is not None and any(fixed) else tuple(out)


def _one_block(out: list[Role], after: Sequence[int], ndim: int, fixed: Sequence[bool]) -> Layout:
    """Every spatial axis whole on one dimension, each next to a dimension of size 1 on the same side:
    the split ``(1, n)`` (one block of ``n``) or ``(n, 1)`` (``n`` blocks of one), whose block size (the
    second dimension of the pair) is a constant of the file. Whatever the first dimension is (a
    constant 1, or the number of blocks computed from the map size), blocks of that size are what the
    Reshape makes wherever it runs. Both sides, or neither: left as it is (cannot be told)."""
    dims: dict[int, list[int]] = {}
    for d, role in enumerate(out):
        axis = role if isinstance(role, int) else role.axis if isinstance(role, Whole) else None
        if axis is not None and after[d] > 1:
            dims.setdefault(axis, []).append(d)
    if sorted(dims) != list(range(ndim)) or any(len(found) != 1 for found in dims.values()):
        return tuple(out)
    at = {axis: found[0] for axis, found in dims.items()}
    first = all(d > 0 and after[d - 1] == 1 and fixed[d] for d in at.values())
    last = all(d + 1 < len(after) and after[d + 1] == 1 and fixed[d + 1] for d in at.values())
    if first == last:
        return tuple(out)
    for axis, d in at.items():
        out[d] = Whole("W", axis, after[d]) if first else Whole("G", axis, 1)
    return tuple(out)


def plain(layout: Layout) -> Layout:
    """``layout`` with whole axes read as one block (or blocks of one) back to the axes themselves: what
    every operator but Transpose and Reshape sees."""
    return tuple(r.axis if isinstance(r, Whole) else r for r in layout)


def _unpartition(role: Role, parts: list[int], ndim: int) -> list[Role] | None:
    """A window partition role split back into one block role per spatial axis."""
    if not isinstance(role, Partition) or len(parts) != ndim:
        return None
    kind, b = role.block_kind, role.size
    if kind == "W" and any(n != b for n in parts):
        return None
    if role.whole:  # one window (or windows of one position): the whole axes, as they were merged
        return [Whole(kind, a, b) for a in range(ndim)]
    exts: list[tuple[int, int] | None] = [None] * ndim
    if role.extents:
        exts = [(n, k) for n, k in zip(role.extents, role.shifts, strict=True)]
    return [Block(kind, a, b, exts[a]) for a in range(ndim)]


def _partitioned(roles: list[Role], ndim: int) -> Partition | None:
    """Every axis's block index (or position within the block), in axis order: a window partition."""
    blocked = [r for r in roles if isinstance(r, Block)]
    if len(roles) != ndim or len(blocked) != len(roles):
        return None
    kinds = {k.kind for k in blocked}
    sizes = {k.size for k in blocked}
    if len(kinds) != 1 or len(sizes) != 1 or [k.axis for k in blocked] != list(range(ndim)):
        return None
    kind: Literal["Pw", "Pg"] = "Pw" if kinds.pop() == "W" else "Pg"
    exts = [k.extended for k in blocked]
    if all(e is None for e in exts):
        return Partition(kind, sizes.pop())
    if any(e is None for e in exts):
        return None
    full = [e for e in exts if e is not None]
    return Partition(kind, sizes.pop(), tuple(e[0] for e in full), tuple(e[1] for e in full))


def _split_axis(whole: Role, parts: list[int]) -> list[Role] | None:
    """An axis (or a padded, rolled axis) split into ``(n / b, b)``: block index and position in block."""
    if len(parts) != 2:
        return None
    b = parts[1]
    if isinstance(whole, int):
        return [Block("G", whole, b), Block("W", whole, b)]
    if not isinstance(whole, Extended):
        return None
    if parts[0] * b != -(-whole.n0 // b) * b:
        return None  # padded to something else than whole blocks (at the reference size)
    return [Block(k, whole.axis, b, (whole.n0, whole.shift)) for k in ("G", "W")]


def merged(roles: Sequence[Role], span: int, ndim: int) -> Role:
    """The role of ``span`` dimensions made by merging dimensions with ``roles`` (a Reshape's group, a
    Flatten's side): the axis again, a window partition, tokens, flatten features, or mixed positions."""
    roles = list(roles)
    wholes = [r for r in roles if isinstance(r, Whole)]
    if wholes:
        if (
            span == 1
            and len(wholes) == len(roles) == ndim
            and len({(w.kind, w.size) for w in wholes}) == 1
            and [w.axis for w in wholes] == list(range(ndim))
        ):
            return Partition("Pw" if wholes[0].kind == "W" else "Pg", wholes[0].size, whole=True)
        roles = list(plain(tuple(roles)))
    if span == 1 and len(roles) == 2:
        outer, inner = roles
        if (
            isinstance(outer, Block)
            and isinstance(inner, Block)
            and (outer.kind, inner.kind) == ("G", "W")
            and (outer.axis, outer.size, outer.extended) == (inner.axis, inner.size, inner.extended)
        ):
            # the blocks of an axis put back in order: the axis (still padded and rolled, if it was)
            return outer.whole_axis()
    if span == 1 and (found := _partitioned(roles, ndim)) is not None:
        return found
    spatial = [r for r in roles if is_spatial(r)]
    if not spatial:
        return "C" if any(r in ("C", "F", "Cs") for r in roles) else roles[0]
    if span == 1 and len(roles) == 1:
        return roles[0]
    if span == 1 and roles == list(range(ndim)):
        return "T"
    if (
        span == 1
        and sorted(r for r in spatial if isinstance(r, int)) == list(range(ndim))
        and len(spatial) == ndim
        and all(r in ("C", "Cs", "N") or isinstance(r, int) for r in roles)
    ):
        return "F"
    return "X"
