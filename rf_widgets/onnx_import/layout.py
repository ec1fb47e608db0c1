"""What each dimension of an ONNX tensor means, followed through Transpose, Reshape, Flatten and friends.

A layout holds one role per dimension: ``"N"`` batch (or any dimension of size 1 that carries no
positions), ``"C"`` channels or features of one position, ``0 .. ndim-1`` one spatial axis, ``"T"`` every
spatial axis flattened into tokens (in order; ``"Tc"`` with constant tokens such as ViT's class token in
front), ``"X"`` a dimension that mixes part of the spatial
positions with something else, ``"F"`` features of a flatten layer (which already counted the spatial
mixing), ``"Cs"`` a block of a split channel axis that behaves like channels (the ``2`` of
``(N, C, 2, 2, H, W)`` in a pixel shuffle written as Reshape and Transpose).

Window partitions (docs/onnx.md, "Window partitions"): ``"G<a>:<b>"`` and ``"W<a>:<b>"`` the block index
and the position within blocks of ``b`` of spatial axis ``a``; ``"Pw:<b>"`` / ``"Pg:<b>"`` the positions
within ``b x b`` windows and the window index once every axis's blocks are merged; ``"E<a>/<n0>><k>"``
axis ``a`` padded at its end by a computed amount and rolled by ``k`` (Swin); ``"cut(<role>)<i>:<j>"``
one half of a roll; ``"S<a>:<b>+<i>/<n0>"`` the phase ``i::b`` of a padded axis (Swin's patch merging).
Block, pad and roll details ride along in the partition roles (``"Pw:7/56,56>3,3"``).

A Reshape that leaves every spatial axis whole on one dimension next to a dimension of size 1, all on
the same side, with the block size (the second of each pair) a constant of the file, is read as the
split ``(n / b, b)`` it is wherever it runs (the first of the pair is a constant 1, so the Reshape runs
only at that size, or a block count computed from the shape): ``(1, n)`` is one block of ``n``
(``"W<a>:<n>!"``, the whole axis as the position within its one block) and ``(n, 1)`` is ``n`` blocks of
one (``"G<a>:1!"``). Merged in axis order they are ``"Pw:<n>!"`` / ``"Pg:1!"``; anything else reads them
as the axis itself (MaxViT's last stage at 224: windows and grid of one 7 x 7 window).

An operation that mixes values along a dimension (a reduction, a softmax, a matrix product) is global
when the role is spatial, a windows layer along ``"Pw"``, global along ``"Pg"``, unknown along ``"X"``
or any other piece of an axis, and pointwise otherwise. A Transpose only permutes
roles: a channels-last tensor ``("N", 0, 1, "C")`` feeds a convolution correctly once a Transpose has
brought the roles back to ``("N", "C", 0, 1)``, whatever the converter did in between.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

__all__ = [
    "Layout", "Role", "block", "channels_first", "cut", "extended", "is_spatial", "mixing", "partition",
    "plain", "regroup", "spatial_order", "whole",
]  # fmt: skip

Role = str | int
Layout = tuple[Role, ...]


def channels_first(ndim: int) -> Layout:
    """``("N", "C", 0, 1, ...)``."""
    return ("N", "C", *range(ndim))


def is_spatial(role: Role) -> bool:
    return (
        isinstance(role, int)
        or role in ("T", "Tc", "X")
        or any(f(role) is not None for f in (block, partition, extended, cut, whole))
        or (isinstance(role, str) and _PHASE.match(role) is not None)
    )


def mixing(roles: Sequence[Role]) -> str:
    """``"global"``, ``"window:b"``, ``"unknown"`` or ``"pointwise"`` for mixing values along ``roles``.

    Mixing along the window index of a partition (MaxViT's grid attention) reaches every window: global.
    Mixing along the positions within ``b x b`` windows (and nothing else spatial) is ``"window:b"``.
    """
    parts = [partition(r) for r in roles]
    if any(isinstance(r, int) or r in ("T", "Tc") or whole(r) for r in roles) or any(
        p and p[0] == "Pg" for p in parts
    ):
        return "global"
    if "X" in roles or any(
        block(r) or extended(r) or cut(r) or (is_spatial(r) and isinstance(r, str) and r[:1] == "S")
        for r in roles
    ):
        return "unknown"
    windows = {(p[1], p[2]) for p in parts if p}
    if len(windows) == 1:
        b, shifts = windows.pop()
        return f"window:{b}" + (":" + ",".join(str(k) for k in shifts) if any(shifts) else "")
    return "unknown" if windows else "pointwise"


def spatial_order(layout: Layout, ndim: int) -> tuple[int, ...] | None:
    """For an operator that reads ``(N, C, spatial...)``: which spatial axis each trailing dim holds.

    None unless dimension 1 holds channels and the trailing ``ndim`` dimensions are the spatial axes,
    each exactly once (in any order: a Transpose may have swapped height and width).
    """
    if len(layout) != ndim + 2 or layout[1] != "C":
        return None
    axes = layout[2:]
    if sorted(a for a in axes if isinstance(a, int)) != list(range(ndim)) or not all(
        isinstance(a, int) for a in axes
    ):
        return None
    return tuple(int(a) for a in axes)


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
            blocked = [block(r) for r in roles]
            whole = roles[0] if len(roles) == 1 else _merged(roles, 1, ndim) if len(roles) == 2 else None
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
                and any(k is not None and k[0] == "W" for k in blocked)
                and any(r in ("C", "Cs", "F") for r in roles)
                and all(
                    (k is not None and k[0] == "W") or r in ("C", "Cs", "F")
                    for r, k in zip(roles, blocked, strict=True)
                )
            ):
                # positions within blocks merged into channels: space to depth by each block
                for k in blocked:
                    if k is not None:
                        blocks["split"][k[1]] = k[2]
                out.append("C")
            elif len(roles) == 1 and roles[0] in ("C", "Cs", "F") and span > 1:
                out.extend([roles[0]] + ["Cs"] * (span - 1))
            elif span == 1 and len(roles) == 2 and isinstance(roles[0], int) and roles[1] == "Cs":
                blocks["merge"][roles[0]] = sizes[1]
                out.append(roles[0])
            else:
                out.extend([_merged(roles, span, ndim)] * span)
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
        axis = role if isinstance(role, int) else w[1] if (w := whole(role)) is not None else None
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
        out[d] = f"W{axis}:{after[d]}!" if first else f"G{axis}:1!"
    return tuple(out)


_BLOCK = re.compile(r"^([GW])(\d+):(\d+)(?:/(\d+)>(\d+))?$")
_EXTENDED = re.compile(r"^E(\d+)/(\d+)>(\d+)$")
_PARTITION = re.compile(r"^P([wg]):(\d+)(?:/([\d,]+)>([\d,]+))?(!)?$")
_WHOLE = re.compile(r"^([GW])(\d+):(\d+)!$")
_CUT = re.compile(r"^cut\((.+)\)(\d+):(\d+)$")
_PHASE = re.compile(r"^S(\d+):(\d+)\+(\d+)/(\d+)$")


def block(role: Role) -> tuple[str, int, int, tuple[int, int] | None] | None:
    """``("G", axis, b, ext)`` for the block index, ``("W", axis, b, ext)`` for the position within a
    block of size ``b`` of a split spatial axis, else None. ``ext`` is ``(n0, shift)`` when the axis was
    padded to whole blocks or rolled first (see :func:`extended`)."""
    found = _BLOCK.match(role) if isinstance(role, str) else None
    if found is None:
        return None
    ext = (int(found[4]), int(found[5])) if found[4] is not None else None
    return found[1], int(found[2]), int(found[3]), ext


def _block_role(kind: str, axis: int, b: int, ext: tuple[int, int] | None) -> str:
    return f"{kind}{axis}:{b}" + (f"/{ext[0]}>{ext[1]}" if ext else "")


def extended(role: Role) -> tuple[int, int, int] | None:
    """``(axis, n0, shift)`` for ``"E<axis>/<n0>><shift>"``: spatial axis ``axis`` (``n0`` positions at
    the reference size) padded at its end by an amount computed from the map size, and rolled so that
    position ``i`` holds position ``i + shift`` (Swin's pad to whole windows and cyclic shift)."""
    found = _EXTENDED.match(role) if isinstance(role, str) else None
    return None if found is None else (int(found[1]), int(found[2]), int(found[3]))


def whole(role: Role) -> tuple[str, int, int] | None:
    """``(kind, axis, b)`` for a whole axis read as one block of ``b`` (``"W<axis>:<b>!"``) or as blocks
    of one (``"G<axis>:1!"``) by a Reshape with a constant block size (see the module docstring), else
    None."""
    found = _WHOLE.match(role) if isinstance(role, str) else None
    return None if found is None else (found[1], int(found[2]), int(found[3]))


def plain(layout: Layout) -> Layout:
    """``layout`` with whole axes read as one block (or blocks of one) back to the axes themselves: what
    every operator but Transpose and Reshape sees."""
    return tuple(w[1] if (w := whole(r)) is not None else r for r in layout)


def cut(role: Role) -> tuple[Role, int, int] | None:
    """``(role, start, end)`` for a piece of an axis cut at bounds computed from the map size (the two
    halves of a roll before they are concatenated; the bounds are those at the reference size)."""
    found = _CUT.match(role) if isinstance(role, str) else None
    if found is None:
        return None
    inner: Role = int(found[1]) if found[1].isdigit() else found[1]
    return inner, int(found[2]), int(found[3])


def partition(role: Role) -> tuple[str, int, tuple[int, ...]] | None:
    """``("Pw", b, shifts)`` (positions within ``b x b`` windows, shifted by ``shifts`` per axis) or
    ``("Pg", b, shifts)`` (the window index)."""
    found = _PARTITION.match(role) if isinstance(role, str) else None
    if found is None:
        return None
    shifts = tuple(int(v) for v in found[4].split(",")) if found[4] else ()
    return "P" + found[1], int(found[2]), shifts


def _unpartition(role: Role, parts: list[int], ndim: int) -> list[Role] | None:
    """A window partition role split back into one block role per spatial axis."""
    found = _PARTITION.match(role) if isinstance(role, str) else None
    if found is None or len(parts) != ndim:
        return None
    kind, b = found[1], int(found[2])
    if kind == "w" and any(n != b for n in parts):
        return None
    if found[5]:  # one window (or windows of one position): the whole axes, as they were merged
        return [f"{'W' if kind == 'w' else 'G'}{a}:{b}!" for a in range(ndim)]
    exts: list[tuple[int, int] | None] = [None] * ndim
    if found[3]:
        sizes = [int(v) for v in found[3].split(",")]
        shifts = [int(v) for v in found[4].split(",")]
        exts = [(n, k) for n, k in zip(sizes, shifts, strict=True)]
    return [_block_role("W" if kind == "w" else "G", a, b, exts[a]) for a in range(ndim)]


def _partitioned(roles: list[Role], ndim: int) -> Role | None:
    """Every axis's block index (or position within the block), in axis order: a window partition."""
    blocked = [block(r) for r in roles]
    if len(roles) != ndim or any(k is None for k in blocked):
        return None
    kinds = {k[0] for k in blocked if k}
    sizes = {k[2] for k in blocked if k}
    if len(kinds) != 1 or len(sizes) != 1 or [k[1] for k in blocked if k] != list(range(ndim)):
        return None
    exts = [k[3] for k in blocked if k]
    role = f"P{'w' if kinds.pop() == 'W' else 'g'}:{sizes.pop()}"
    if all(e is None for e in exts):
        return role
    full = [e or (0, 0) for e in exts]
    if any(e is None for e in exts):
        return None
    return role + "/" + ",".join(str(e[0]) for e in full) + ">" + ",".join(str(e[1]) for e in full)


def _split_axis(whole: Role, parts: list[int]) -> list[Role] | None:
    """An axis (or a padded, rolled axis) split into ``(n / b, b)``: block index and position in block."""
    if len(parts) != 2:
        return None
    b = parts[1]
    if isinstance(whole, int):
        return [f"G{whole}:{b}", f"W{whole}:{b}"]
    ext = extended(whole)
    if ext is None:
        return None
    axis, n0, shift = ext
    if parts[0] * b != -(-n0 // b) * b:
        return None  # padded to something else than whole blocks (at the reference size)
    return [_block_role(k, axis, b, (n0, shift)) for k in ("G", "W")]


def _merged(roles: list[Role], span: int, ndim: int) -> Role:
    wholes = [whole(r) for r in roles]
    if any(wholes):
        axes = [w for w in wholes if w is not None]
        if (
            span == 1
            and len(axes) == len(roles) == ndim
            and len({(w[0], w[2]) for w in axes}) == 1
            and [w[1] for w in axes] == list(range(ndim))
        ):
            return f"P{'w' if axes[0][0] == 'W' else 'g'}:{axes[0][2]}!"
        roles = list(plain(tuple(roles)))
    if span == 1 and len(roles) == 2:
        outer, inner = block(roles[0]), block(roles[1])
        if outer and inner and outer[0] == "G" and inner[0] == "W" and outer[1:] == inner[1:]:
            # the blocks of an axis put back in order: the axis (still padded and rolled, if it was)
            ext = outer[3]
            return outer[1] if ext is None else f"E{outer[1]}/{ext[0]}>{ext[1]}"
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
