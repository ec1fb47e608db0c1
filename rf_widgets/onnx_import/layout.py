"""What each dimension of an ONNX tensor means, followed through Transpose, Reshape, Flatten and friends.

A layout holds one role per dimension: ``"N"`` batch (or any dimension of size 1 that carries no
positions), ``"C"`` channels or features of one position, ``0 .. ndim-1`` one spatial axis, ``"T"`` every
spatial axis flattened into tokens (in order; ``"Tc"`` with constant tokens such as ViT's class token in
front), ``"X"`` a dimension that mixes part of the spatial
positions with something else, ``"F"`` features of a flatten layer (which already counted the spatial
mixing), ``"Cs"`` a block of a split channel or spatial axis that behaves like channels (the ``2`` of
``(N, C, 2, 2, H, W)`` in a pixel shuffle written as Reshape and Transpose).

An operation that mixes values along a dimension (a reduction, a softmax, a matrix product) is global
when the role is spatial, unknown when it is ``"X"`` and pointwise otherwise. A Transpose only permutes
roles: a channels-last tensor ``("N", 0, 1, "C")`` feeds a convolution correctly once a Transpose has
brought the roles back to ``("N", "C", 0, 1)``, whatever the converter did in between.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["Layout", "Role", "channels_first", "is_spatial", "mixing", "regroup", "spatial_order"]

Role = str | int
Layout = tuple[Role, ...]


def channels_first(ndim: int) -> Layout:
    """``("N", "C", 0, 1, ...)``."""
    return ("N", "C", *range(ndim))


def is_spatial(role: Role) -> bool:
    return isinstance(role, int) or role in ("T", "Tc", "X")


def mixing(roles: Sequence[Role]) -> str:
    """``"global"``, ``"unknown"`` or ``"pointwise"`` for an operation mixing values along ``roles``."""
    if any(isinstance(r, int) or r in ("T", "Tc") for r in roles):
        return "global"
    return "unknown" if "X" in roles else "pointwise"


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
            if len(roles) == 1 and isinstance(roles[0], int) and len(parts) == 2:
                axis = roles[0]
                blocks["split"][axis] = parts[1]
                out.extend("N" if n == 1 else (axis if n == parts[0] else "Cs") for n in after[first : j + 1])
            elif len(roles) == 1 and roles[0] in ("C", "Cs", "F") and span > 1:
                out.extend([roles[0]] + ["Cs"] * (span - 1))
            elif span == 1 and len(roles) == 2 and isinstance(roles[0], int) and roles[1] == "Cs":
                blocks["merge"][roles[0]] = sizes[1]
                out.append(roles[0])
            else:
                out.extend([_merged(roles, span, ndim)] * span)
            j += 1
    return tuple(out)


def _merged(roles: list[Role], span: int, ndim: int) -> Role:
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
