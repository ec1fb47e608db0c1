"""The paper's verdicts (SPEC section 6, version 2): unproductive, critical, productive, border layers.

A layer is **spatial** at a resolution when it integrates a neighbourhood: a window with ``k_eff > 1`` on
some axis (adaptive pooling counts with the window it resolves to; a resampling layer, such as a bilinear
upsampling, a transposed convolution or a window of attention, with the most input units one output unit
reads). Every other judged layer is
**pointwise**. Layers whose every path is global get status ``global``, layers without a rule
``unknown``; neither is ever unproductive, and neither counts as spatial below.

Rules at input resolution ``R`` for a spatial layer ``L`` with layer inputs ``I(L)``, per axis:

* (A) ``rf-exceeds-input``: every ``q`` in ``I(L)`` has ``r_min(q) >= R`` and ``r_min(L) > R``; a layer
  fed only by the network input is judged by ``r_min(L) > R`` alone.
* (B) ``feature-map-covered``: ``L`` has at least one layer input and every input map is no larger than
  ``k_eff(L)``.

A spatial layer is unproductive when on every axis (A) or (B) holds (the reason is ``rf-exceeds-input``
when (A) holds on every axis, ``feature-map-covered`` otherwise). A pointwise layer is unproductive
(``follows-unproductive``) when it has at least one non-global layer input and every non-global input is
unproductive; the network input counts as a productive input. A layer that is not unproductive is
critical when ``r_min > R`` on every axis, productive otherwise.

Border layers are the spatial layers that are critical or unproductive, whose downstream spatial layers
are all critical or unproductive, with at least one unproductive among them and itself, and none of whose
upstream layers qualifies in the same way: the starts of the unproductive tails.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from rf_widgets.core.arithmetic import IDENTITY, PHASED, WINDOW, Field, Resolved
from rf_widgets.core.graph import NETWORK_INPUT, Stack

__all__ = [
    "FEATURE_MAP_COVERED",
    "FOLLOWS_UNPRODUCTIVE",
    "REASONS",
    "RF_EXCEEDS_INPUT",
    "STATUSES",
    "VerdictPlan",
    "Verdicts",
    "judge",
]

STATUSES = ("productive", "critical", "unproductive", "global", "unknown")
RF_EXCEEDS_INPUT = "rf-exceeds-input"
FEATURE_MAP_COVERED = "feature-map-covered"
FOLLOWS_UNPRODUCTIVE = "follows-unproductive"
REASONS = (RF_EXCEEDS_INPUT, FEATURE_MAP_COVERED, FOLLOWS_UNPRODUCTIVE)

_PRODUCTIVE, _CRITICAL, _UNPRODUCTIVE, _GLOBAL, _UNKNOWN = range(5)


@dataclass(frozen=True)
class Verdicts:
    """Status and reason per layer, which layers are spatial, the border and unproductive layers.

    ``border`` and ``unproductive`` hold layer indices in topological order.
    """

    status: tuple[str, ...]
    reason: tuple[str | None, ...]
    spatial: tuple[bool, ...]
    border: tuple[int, ...]
    unproductive: tuple[int, ...]


@dataclass(frozen=True)
class VerdictPlan:
    """Index arrays of a stack for the vectorised rules (one row per layer, plus a sentinel row).

    Built once per stack by :meth:`build`; only the resolution-dependent parts (sizes, resolved adaptive
    layers, fields) change between calls of :func:`judge`.
    """

    sources: np.ndarray  # flat layer-input indices; a layer without layer inputs points at the sentinel
    starts: np.ndarray  # where each layer's run begins in ``sources``
    has_sources: np.ndarray
    kernel: np.ndarray  # k_eff per axis; -1 where the layer is not a window
    unknown: np.ndarray
    layer_inputs: tuple[tuple[int, ...], ...]
    reads_input: tuple[bool, ...]
    successors: tuple[tuple[int, ...], ...]

    @classmethod
    def build(cls, stack: Stack) -> VerdictPlan:
        import numpy as np  # imported on first use: ``import rf_widgets`` stays light

        count = len(stack.layers)
        sources: list[int] = []
        starts: list[int] = []
        layer_inputs = []
        for inputs in stack.input_indices:
            starts.append(len(sources))
            inside = tuple(j for j in inputs if j != NETWORK_INPUT)
            sources.extend(inside or [count])
            layer_inputs.append(inside)
        kernel = np.array(
            [
                layer.kernel_effective if layer.kind == WINDOW else (-1,) * stack.ndim
                for layer in stack.layers
            ],
            dtype=float,
        )
        return cls(
            sources=np.array(sources, dtype=np.intp),
            starts=np.array(starts, dtype=np.intp),
            has_sources=np.array([bool(inside) for inside in layer_inputs]),
            kernel=kernel,
            unknown=np.array([layer.kind == "unknown" for layer in stack.layers]),
            layer_inputs=tuple(layer_inputs),
            reads_input=tuple(NETWORK_INPUT in inputs for inputs in stack.input_indices),
            successors=stack.successors,
        )

    def with_layers(self, stack: Stack, changed: Iterable[int]) -> VerdictPlan:
        """The plan of ``stack``, a graph with this plan's wiring whose layers ``changed`` differ."""
        kernel, unknown = self.kernel.copy(), self.unknown.copy()
        for i in changed:
            layer = stack.layers[i]
            kernel[i] = layer.kernel_effective if layer.kind == WINDOW else (-1,) * stack.ndim
            unknown[i] = layer.kind == "unknown"
        return replace(self, kernel=kernel, unknown=unknown)

    def field_arrays(self, field: Field) -> FieldArrays:
        """``r_min`` per layer and the smallest ``r_min`` over each layer's layer inputs (inf: none)."""
        import numpy as np

        return self.r_min_arrays(np.array([[float(v) for v in row] for row in field.r_min], dtype=float))

    def r_min_arrays(self, r_min: np.ndarray) -> FieldArrays:
        """:class:`FieldArrays` from ``r_min`` alone (one row per layer)."""
        import numpy as np

        padded = np.vstack([r_min, np.full((1, r_min.shape[1]), np.inf)])
        smallest_input = np.minimum.reduceat(padded[self.sources], self.starts, axis=0)
        return FieldArrays(r_min, smallest_input)


@dataclass(frozen=True)
class FieldArrays:
    """A :class:`~rf_widgets.core.arithmetic.Field` as arrays for the rules (cached with the field)."""

    r_min: np.ndarray
    smallest_input_r_min: np.ndarray


@dataclass(frozen=True)
class _Rules:
    """The per-layer rule results at one resolution (boolean arrays)."""

    unknown: np.ndarray
    judged: np.ndarray  # neither unknown nor global on every path
    spatial: np.ndarray
    rule_a: np.ndarray  # per axis
    unproductive: np.ndarray  # spatial layers only


def _spatial_rules(
    plan: VerdictPlan,
    arrays: FieldArrays,
    sizes: list[tuple[int, ...]],
    resolved: dict[int, Resolved],
    resolution: tuple[int, ...],
) -> _Rules:
    import numpy as np

    kernel = plan.kernel
    if resolved:
        kernel = kernel.copy()
        for i, (how, k, _, _) in resolved.items():
            if how in (WINDOW, PHASED):  # a resampling layer counts with its widest phase
                kernel[i] = [float(v) for v in k]
            else:
                kernel[i] = 1.0 if how == IDENTITY else -1.0
    r_min = arrays.r_min
    judged = ~(plan.unknown | np.isinf(r_min[:, 0]))
    spatial = judged & np.any(kernel > 1, axis=1)
    size = np.array([*sizes, (0,) * r_min.shape[1]], dtype=float)
    largest_input = np.maximum.reduceat(size[plan.sources], plan.starts, axis=0)
    target = np.array(resolution, dtype=float)
    rule_a = (r_min > target) & (arrays.smallest_input_r_min >= target)
    rule_b = plan.has_sources[:, None] & (largest_input <= kernel)
    return _Rules(plan.unknown, judged, spatial, rule_a, spatial & np.all(rule_a | rule_b, axis=1))


def any_unproductive(
    plan: VerdictPlan,
    arrays: FieldArrays,
    sizes: list[tuple[int, ...]],
    resolved: dict[int, Resolved],
    resolution: tuple[int, ...],
) -> bool:
    """Whether any layer is unproductive (pointwise layers only follow spatial ones, so those decide)."""
    return bool(_spatial_rules(plan, arrays, sizes, resolved, resolution).unproductive.any())


def judge(
    plan: VerdictPlan,
    arrays: FieldArrays,
    sizes: list[tuple[int, ...]],
    resolved: dict[int, Resolved],
    resolution: tuple[int, ...],
) -> Verdicts:
    """The verdicts of every layer at ``resolution`` (one int per axis)."""
    import numpy as np

    rules = _spatial_rules(plan, arrays, sizes, resolved, resolution)
    bad_spatial = np.flatnonzero(rules.unproductive)
    unproductive_array = rules.unproductive
    spatial = rules.spatial.tolist()
    if len(bad_spatial):
        # Pointwise layers carry what their inputs computed: one pass in topological order, from the
        # first unproductive layer on (nothing before it can follow one).
        unproductive = rules.unproductive.tolist()
        judged = rules.judged.tolist()
        unknown = rules.unknown.tolist()
        layer_inputs, reads_input = plan.layer_inputs, plan.reads_input
        # An unknown layer may carry local content, unless all it reads is global (its field is then
        # the whole image whatever it computes): it counts as a global input, as a gate would.
        everywhere = np.all(np.isinf(arrays.r_min), axis=1).tolist()
        for i in range(int(bad_spatial[0]) + 1, len(spatial)):
            if spatial[i] or not judged[i] or reads_input[i]:
                continue
            local = [j for j in layer_inputs[i] if judged[j] or (unknown[j] and not everywhere[j])]
            unproductive[i] = bool(local) and all(unproductive[j] for j in local)
        unproductive_array = np.array(unproductive)
    critical = np.all(arrays.r_min > np.array(resolution, dtype=float), axis=1)
    codes = np.where(
        rules.unknown,
        _UNKNOWN,
        np.where(
            ~rules.judged,
            _GLOBAL,
            np.where(unproductive_array, _UNPRODUCTIVE, np.where(critical, _CRITICAL, _PRODUCTIVE)),
        ),
    ).tolist()
    bad = tuple(np.flatnonzero(unproductive_array).tolist())
    reason: list[str | None] = [None] * len(codes)
    if bad:
        by_a = np.all(rules.rule_a, axis=1).tolist()
        for i in bad:
            if not spatial[i]:
                reason[i] = FOLLOWS_UNPRODUCTIVE
            else:
                reason[i] = RF_EXCEEDS_INPUT if by_a[i] else FEATURE_MAP_COVERED
    return Verdicts(
        status=tuple([STATUSES[code] for code in codes]),
        reason=tuple(reason),
        spatial=tuple(spatial),
        border=_border_layers(plan, codes, spatial) if bad else (),
        unproductive=bad,
    )


def _border_layers(plan: VerdictPlan, codes: list[int], spatial: list[bool]) -> tuple[int, ...]:
    """The starts of the unproductive tails (SPEC section 6), in topological order."""
    count = len(codes)
    late = [spatial[i] and codes[i] in (_CRITICAL, _UNPRODUCTIVE) for i in range(count)]
    # Downstream, in reverse topological order: no productive spatial layer after i, an unproductive
    # spatial layer after i.
    clean_after = [True] * count
    waste_after = [False] * count
    for i in range(count - 1, -1, -1):
        clean = True
        waste = False
        for s in plan.successors[i]:
            clean = clean and clean_after[s] and (late[s] or not spatial[s])
            waste = waste or waste_after[s] or (spatial[s] and codes[s] == _UNPRODUCTIVE)
        clean_after[i] = clean
        waste_after[i] = waste
    qualifies = [
        late[i] and clean_after[i] and (codes[i] == _UNPRODUCTIVE or waste_after[i]) for i in range(count)
    ]
    # Upstream, in topological order: does some layer before i qualify?
    after_qualifying = [False] * count
    for i in range(count):
        after_qualifying[i] = any(after_qualifying[j] or qualifies[j] for j in plan.layer_inputs[i])
    return tuple(i for i in range(count) if qualifies[i] and not after_qualifying[i])
