"""SPEC section 6 (version 2) written a second time, as directly as the text reads, for the tests.

It shares no code with ``rf_widgets.core.verdicts``: no arrays, no dynamic programming, the border layers
from explicit sets of ancestors and descendants. It is fed per-layer facts (inputs, ``k_eff``, ``r_min``,
feature map, whether the operation is unknown), either from brute force on a generated network or from
an analysis whose fields are checked elsewhere (tests/test_oracle.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

INPUT = "input"


@dataclass(frozen=True)
class Facts:
    """What the rules need to know about one layer."""

    inputs: tuple[str, ...]
    k_eff: tuple[int, ...] | None  # None: not a window (global, flatten, unknown)
    r_min: tuple[float, ...]  # inf on every axis when every path is global
    feature_map: tuple[int, ...]
    unknown: bool = False


@dataclass(frozen=True)
class Reference:
    status: dict[str, str]
    reason: dict[str, str | None]
    spatial: set[str]
    border: list[str]  # in the given order


def judge(facts: dict[str, Facts], order: list[str], resolution: tuple[int, ...]) -> Reference:
    """Status, reason, spatial layers and border layers of SPEC section 6 at ``resolution``."""

    def is_global(name: str) -> bool:
        return math.isinf(facts[name].r_min[0])

    def is_spatial(name: str) -> bool:
        f = facts[name]
        return not f.unknown and not is_global(name) and f.k_eff is not None and any(k > 1 for k in f.k_eff)

    spatial = {name for name in order if is_spatial(name)}
    reason: dict[str, str | None] = dict.fromkeys(order)

    @cache
    def unproductive(name: str) -> bool:
        f = facts[name]
        if f.unknown or is_global(name):
            return False
        layer_inputs = [q for q in f.inputs if q != INPUT]
        if name in spatial:
            assert f.k_eff is not None
            by_a = []
            for a, n in enumerate(resolution):
                rule_a = f.r_min[a] > n and all(facts[q].r_min[a] >= n for q in layer_inputs)
                rule_b = bool(layer_inputs) and all(
                    facts[q].feature_map[a] <= f.k_eff[a] for q in layer_inputs
                )
                if not (rule_a or rule_b):
                    return False
                by_a.append(rule_a)
            reason[name] = "rf-exceeds-input" if all(by_a) else "feature-map-covered"
            return True
        if INPUT in f.inputs:  # the image itself is productive content
            return False
        local = [q for q in layer_inputs if not is_global(q)]
        if local and all(unproductive(q) for q in local):
            reason[name] = "follows-unproductive"
            return True
        return False

    status = {}
    for name in order:
        f = facts[name]
        if f.unknown:
            status[name] = "unknown"
        elif is_global(name):
            status[name] = "global"
        elif unproductive(name):
            status[name] = "unproductive"
        elif all(r > n for r, n in zip(f.r_min, resolution, strict=True)):
            status[name] = "critical"
        else:
            status[name] = "productive"

    parents = {name: {q for q in facts[name].inputs if q != INPUT} for name in order}
    children: dict[str, set[str]] = {name: set() for name in order}
    for name in order:
        for q in parents[name]:
            children[q].add(name)

    def reach(start: str, step: dict[str, set[str]]) -> set[str]:
        seen: set[str] = set()
        todo = list(step[start])
        while todo:
            x = todo.pop()
            if x not in seen:
                seen.add(x)
                todo.extend(step[x])
        return seen

    late = {name for name in spatial if status[name] in ("critical", "unproductive")}

    def qualifies(name: str) -> bool:
        if name not in late:
            return False
        after = reach(name, children) & spatial
        return after <= late and any(status[x] == "unproductive" for x in after | {name})

    qualifying = {name for name in order if qualifies(name)}
    border = [name for name in order if name in qualifying and not (reach(name, parents) & qualifying)]
    return Reference(status, reason, spatial, border)


def facts_of(result: Any) -> tuple[dict[str, Facts], list[str]]:
    """The facts of an :class:`rf_widgets.Analysis`: its fields and maps, not its verdicts."""
    facts = {}
    for layer in result.layers:
        k_eff = None
        if layer.kernel is not None:
            dilation = layer.dilation or (1,) * len(layer.kernel)
            k_eff = tuple(d * (k - 1) + 1 for k, d in zip(layer.kernel, dilation, strict=True))
        facts[layer.name] = Facts(
            inputs=layer.inputs,
            k_eff=k_eff,
            r_min=tuple(float(v) for v in layer.r_min),
            feature_map=layer.feature_map,
            unknown=result.stack[layer.name].kind == "unknown",
        )
    return facts, [layer.name for layer in result.layers]


def check_against_reference(result: Any) -> Reference:
    """Assert that ``result``'s verdicts are the reference's; return the reference."""
    facts, order = facts_of(result)
    ref = judge(facts, order, result.input_size)
    for layer in result.layers:
        assert layer.status == ref.status[layer.name], (layer.name, layer.status, ref.status[layer.name])
        assert layer.reason == ref.reason[layer.name], (layer.name, layer.reason, ref.reason[layer.name])
        assert layer.spatial == (layer.name in ref.spatial), layer.name
    assert list(result.border_layers) == ref.border
    assert result.border_layer == (ref.border[0] if ref.border else None)
    assert list(result.unproductive_layers) == [n for n in order if ref.status[n] == "unproductive"]
    return ref


def check_feasible_minimum(result: Any) -> None:
    """The reported smallest feasible size has no unproductive layer, one pixel less has some."""
    low = result.resolution_range[0]
    assert low is not None

    def has_unproductive(side: int) -> bool:
        at = result.at(side)
        facts, order = facts_of(at)
        return "unproductive" in judge(facts, order, at.input_size).status.values()

    assert not has_unproductive(low)
    if low > 1:
        assert has_unproductive(low - 1)
