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

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from rf_widgets.core.arithmetic import IDENTITY, WINDOW, Field, Resolved
from rf_widgets.core.graph import NETWORK_INPUT, Stack

__all__ = ["STATUSES", "Verdicts", "judge"]

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


_STATUS_OF_CODE = ("productive", "critical", "unproductive", "global", "unknown")


@dataclass(frozen=True)
class _Plan:
    """Index arrays of a stack for the vectorised rules (one row per layer, plus a sentinel row)."""

    sources: np.ndarray  # flat layer-input indices; a layer without layer inputs points at the sentinel
    starts: np.ndarray  # where each layer's run begins in ``sources``
    has_sources: np.ndarray
    edge_from: np.ndarray
    edge_to: np.ndarray
    kernel: np.ndarray  # k_eff per axis for rule (B); -1 where the kernel is not finite
    unknown: np.ndarray


_PLANS: weakref.WeakKeyDictionary[Stack, _Plan] = weakref.WeakKeyDictionary()
_FIELD_ARRAYS: weakref.WeakKeyDictionary[Field, tuple[np.ndarray, np.ndarray]] = weakref.WeakKeyDictionary()


def _plan(stack: Stack) -> _Plan:
    import numpy as np  # imported on first use: ``import rf_widgets`` stays light

    plan = _PLANS.get(stack)
    if plan is not None:
        return plan
    count = len(stack.layers)
    sources: list[int] = []
    starts: list[int] = []
    edge_from: list[int] = []
    edge_to: list[int] = []
    for i, inputs in enumerate(stack.input_indices):
        starts.append(len(sources))
        layer_inputs = [j for j in inputs if j != NETWORK_INPUT]
        sources.extend(layer_inputs or [count])
        edge_from.extend(layer_inputs)
        edge_to.extend([i] * len(layer_inputs))
    kernel = np.array(
        [layer.kernel_effective if layer.kind == WINDOW else (-1,) * stack.ndim for layer in stack.layers],
        dtype=float,
    )
    plan = _PLANS[stack] = _Plan(
        np.array(sources, dtype=np.intp),
        np.array(starts, dtype=np.intp),
        np.array([any(j != NETWORK_INPUT for j in inputs) for inputs in stack.input_indices]),
        np.array(edge_from, dtype=np.intp),
        np.array(edge_to, dtype=np.intp),
        kernel,
        np.array([layer.kind == "unknown" for layer in stack.layers]),
    )
    return plan


def _field_arrays(field: Field, plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """``r_min`` per layer and the smallest ``r_min`` over each layer's inputs (inf: none)."""
    import numpy as np

    found = _FIELD_ARRAYS.get(field)
    if found is None:
        r_min = np.array([[float(v) for v in row] for row in field.r_min], dtype=float)
        padded = np.vstack([r_min, np.full((1, r_min.shape[1]), np.inf)])
        smallest_input = np.minimum.reduceat(padded[plan.sources], plan.starts, axis=0)
        found = _FIELD_ARRAYS[field] = (r_min, smallest_input)
    return found


def judge(
    stack: Stack,
    field: Field,
    sizes: list[tuple[int, ...]],
    resolved: dict[int, Resolved],
    resolution: tuple[int, ...],
) -> Verdicts:
    """Apply rules (A) and (B) to every layer at ``resolution`` (one int per axis)."""
    import numpy as np

    plan = _plan(stack)
    r_min, smallest_input = _field_arrays(field, plan)
    kernel = plan.kernel
    if resolved:
        kernel = kernel.copy()
        for i, (how, k, _, _) in resolved.items():
            kernel[i] = [float(v) for v in k] if how == WINDOW else (1.0 if how == IDENTITY else -1.0)
    size = np.array([*sizes, (0,) * stack.ndim], dtype=float)
    largest_input = np.maximum.reduceat(size[plan.sources], plan.starts, axis=0)
    target = np.array(resolution, dtype=float)
    rule_a = (r_min > target) & (smallest_input >= target)
    rule_b = plan.has_sources[:, None] & (largest_input <= kernel)
    judged = ~(plan.unknown | np.isinf(r_min[:, 0]))
    unproductive = judged & np.all(rule_a | rule_b, axis=1)
    critical = judged & ~unproductive & np.all(r_min > target, axis=1)
    codes = np.where(unproductive, 2, np.where(critical, 1, 0))
    codes = np.where(np.isinf(r_min[:, 0]), 3, codes)
    codes = np.where(plan.unknown, 4, codes)
    by_a = np.all(rule_a, axis=1)
    status = tuple(_STATUS_OF_CODE[c] for c in codes.tolist())
    reason = tuple(
        (RF_EXCEEDS_INPUT if a else FEATURE_MAP_COVERED) if u else None
        for u, a in zip(unproductive.tolist(), by_a.tolist(), strict=True)
    )
    feeds_unproductive = np.zeros(len(status), dtype=bool)
    feeds_unproductive[plan.edge_from[unproductive[plan.edge_to]]] = True
    border = np.flatnonzero(feeds_unproductive & (codes <= 1))
    return Verdicts(status, reason, tuple(border.tolist()), tuple(np.flatnonzero(unproductive).tolist()))
