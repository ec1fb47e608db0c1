"""What each dimension of an activation tensor means, followed through reshapes and permutes.

A layout is a tuple with one role per tensor dimension:

``"N"`` batch, ``"C"`` channels (or any per-position feature), ``0 .. ndim-1`` one spatial axis,
``"T"`` all spatial axes flattened into tokens (``"Tc"``: with constant tokens such as ViT's class
token concatenated in front), ``"X"`` a dimension that holds part of the spatial
positions mixed with something else (window partitions), ``"F"`` features flattened by a flatten layer
(that layer already accounts for the spatial mixing), ``Partition("Pw", p)`` the positions within
``p x p`` windows of a window partition and ``Partition("Pg", p)`` the index of those windows (MaxViT's
partitions). The roles are those of :mod:`rf_widgets.frontends.layout`.

An operation that mixes values along a dimension is global when the role is spatial (an axis or
``"T"``), unknown when it is ``"X"``, and elementwise otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

from rf_widgets.frontends.layout import Layout, Partition, Role, is_spatial
from rf_widgets.frontends.layout import channels_first as standard

__all__ = ["Layout", "Partition", "Role", "is_spatial", "mixing", "regroup", "standard", "token_grid"]


def partition(role: Role) -> tuple[str, int] | None:
    """``("Pw", p)`` or ``("Pg", p)`` for the roles of a window partition, else None."""
    return (role.kind, role.size) if isinstance(role, Partition) else None


def mixing(roles: Sequence[Role]) -> str:
    """``"global"``, ``"window:p"``, ``"unknown"`` or ``"elementwise"`` for mixing along ``roles``.

    Mixing along the window index of a partition (grid attention) reaches every window: global.
    """
    parts = [partition(r) for r in roles]
    if any(isinstance(r, int) or r in ("T", "Tc") for r in roles) or any(p and p[0] == "Pg" for p in parts):
        return "global"
    if "X" in roles:
        return "unknown"
    windows = {p[1] for p in parts if p}
    if len(windows) == 1:
        return f"window:{windows.pop()}"
    return "unknown" if windows else "elementwise"


def regroup(
    layout: Layout,
    before: Sequence[int],
    after: Sequence[int],
    ndim: int,
    grids: Collection[tuple[int, ...]] = (),
) -> Layout | None:
    """The layout after reshaping a tensor of shape ``before`` (with ``layout``) into ``after``.

    Consecutive dimensions are grouped so that their sizes multiply to the same number on both sides;
    a group keeps its role when it maps one dimension to one, becomes ``"T"`` when it merges exactly
    all spatial axes in order, ``"X"`` when it splits or merges spatial positions otherwise, and the
    non-spatial role of its members (``"C"`` over ``"N"``) when no spatial axis takes part. Tokens
    (``"T"``) split into ``ndim`` dimensions whose sizes are one of ``grids`` (the maps that tokens were
    flattened from, at the same reference size) are the spatial axes again, in order. Dimensions of size
    1 carry no positions: dropped on the left, role ``"N"`` on the right. Returns None when the sizes do
    not factor.
    """
    if math.prod(before) != math.prod(after):
        return None
    out: list[Role] = []
    i = j = 0
    while j < len(after):
        if i < len(before) and before[i] == after[j]:
            out.append(layout[i])
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
            have, want, span = before[i], after[j], 1
            i += 1
            while have != want:
                if have < want:
                    if i >= len(before):
                        return None
                    have *= before[i]
                    if before[i] != 1:
                        roles.append(layout[i])
                    i += 1
                else:
                    j += 1
                    if j >= len(after):
                        return None
                    want *= after[j]
                    span += 1
            if roles == ["T"] and span == ndim and tuple(after[j - span + 1 : j + 1]) in grids:
                out.extend(range(ndim))  # the grid the tokens were flattened from, restored
            else:
                out.extend([_group_role(roles, span, ndim)] * span)
            j += 1
    return tuple(out)


def token_grid(layout: Layout, shape: Sequence[int], ndim: int) -> tuple[int, ...] | None:
    """The sizes of the spatial axes when ``layout`` holds them all, in order (about to become tokens)."""
    axes = [d for d, r in enumerate(layout) if isinstance(r, int)]
    if [layout[d] for d in axes] != list(range(ndim)) or len(shape) != len(layout):
        return None
    return tuple(int(shape[d]) for d in axes)


def _group_role(roles: list[Role], span: int, ndim: int) -> Role:
    spatial = [r for r in roles if is_spatial(r)]
    if not spatial:
        return "C" if "C" in roles or "F" in roles else (roles[0] if roles else "N")
    if span == 1 and len(roles) == 1:
        return roles[0]
    if span == 1 and roles == list(range(ndim)):
        return "T"
    if span == 1 and len(roles) == 1 and roles[0] in ("T", "Tc"):
        return roles[0]
    return "X"
