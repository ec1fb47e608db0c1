"""The paper's verdicts (SPEC section 6): unproductive, critical, productive, border layers, range.

Rules at input resolution ``R`` for a layer ``L`` with layer inputs ``I(L)``, per axis:

* (A) ``rf-exceeds-input``: every ``q`` in ``I(L)`` has ``r_min(q) >= R`` and ``r_min(L) > R``; a layer
  fed only by the network input is judged by ``r_min(L) > R`` alone.
* (B) ``feature-map-covered``: ``L`` has a finite kernel, at least one layer input, and every input map
  is no larger than ``k_eff(L)``.

A layer is unproductive when on every axis (A) or (B) holds; the reason is ``rf-exceeds-input`` when (A)
holds on every axis, ``feature-map-covered`` otherwise. Layers whose every path is global get status
``global``; layers without a rule ``unknown``; neither is ever unproductive.
"""

from __future__ import annotations

from dataclasses import dataclass

from rf_widgets.core.arithmetic import GLOBAL, IDENTITY, WINDOW, Field, Resolved
from rf_widgets.core.graph import NETWORK_INPUT, Stack

__all__ = ["Verdicts", "judge", "STATUSES"]

STATUSES = ("productive", "critical", "unproductive", "global", "unknown")
RF_EXCEEDS_INPUT = "rf-exceeds-input"
FEATURE_MAP_COVERED = "feature-map-covered"


@dataclass(frozen=True)
class Verdicts:
    """Status and reason per layer, the border layers and the unproductive layers (as indices)."""

    status: tuple[str, ...]
    reason: tuple[str | None, ...]
    border: tuple[int, ...]
    unproductive: tuple[int, ...]


def _kernels(stack: Stack, resolved: dict[int, Resolved]) -> list[tuple[int, ...] | None]:
    """``k_eff`` per layer for rule (B); None where the kernel is not finite or not known."""
    ndim = stack.ndim
    out: list[tuple[int, ...] | None] = []
    for i, layer in enumerate(stack.layers):
        how = resolved[i][0] if i in resolved else layer.kind
        if i in resolved and how == WINDOW:
            out.append(tuple(int(k) for k in resolved[i][1]))
        elif how == IDENTITY:
            out.append((1,) * ndim)
        elif how == WINDOW:
            out.append(layer.kernel_effective)
        else:
            out.append(None)
    return out


def judge(
    stack: Stack,
    field: Field,
    sizes: list[tuple[int, ...]],
    resolved: dict[int, Resolved],
    resolution: tuple[int, ...],
) -> Verdicts:
    """Apply rules (A) and (B) to every layer at ``resolution`` (one int per axis)."""
    kernels = _kernels(stack, resolved)
    r_min = field.r_min
    axes = range(stack.ndim)
    status: list[str] = []
    reason: list[str | None] = []
    for i, layer in enumerate(stack.layers):
        own = r_min[i]
        if layer.kind == "unknown":
            status.append("unknown")
            reason.append(None)
            continue
        if own[0] == float("inf") or (i in resolved and resolved[i][0] == GLOBAL):
            status.append("global")
            reason.append(None)
            continue
        sources = [j for j in stack.input_indices[i] if j != NETWORK_INPUT]
        rule_a = [
            own[a] > resolution[a] and all(r_min[j][a] >= resolution[a] for j in sources)
            for a in axes
        ]
        kernel = kernels[i]
        rule_b = [
            kernel is not None and bool(sources) and all(sizes[j][a] <= kernel[a] for j in sources)
            for a in axes
        ]
        if all(a or b for a, b in zip(rule_a, rule_b, strict=True)):
            status.append("unproductive")
            reason.append(RF_EXCEEDS_INPUT if all(rule_a) else FEATURE_MAP_COVERED)
        elif all(own[a] > resolution[a] for a in axes):
            status.append("critical")
            reason.append(None)
        else:
            status.append("productive")
            reason.append(None)
    unproductive = tuple(i for i, s in enumerate(status) if s == "unproductive")
    border = tuple(
        i
        for i, s in enumerate(status)
        if s in ("productive", "critical")
        and any(status[j] == "unproductive" for j in stack.successors[i])
    )
    return Verdicts(tuple(status), tuple(reason), border, unproductive)
