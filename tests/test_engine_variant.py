"""``Engine.variant`` and ``Engine.judge`` against an engine compiled from scratch (issue 21).

The design search predicts every candidate with the engine of the original graph applied to the edited
layers (:meth:`Engine.variant`) and judges it from ``r_min`` alone (:meth:`Engine.judge`). On generated
graphs (chains and merges of windows with explicit or "same" padding, dilations, ceil mode, adaptive
pools) both must give what a fresh :func:`engine` of the edited graph gives with the full fields.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rf_widgets as rfw
from rf_widgets.core.analysis import Engine, engine
from rf_widgets.core.graph import Stack


@st.composite
def windows(draw, name: str, inputs: tuple[str, ...]) -> rfw.Layer:
    kernel = draw(st.sampled_from([1, 2, 3, 5]))
    stride = draw(st.sampled_from([1, 1, 2, 3]))
    dilation = draw(st.sampled_from([1, 1, 2]))
    padding: object = draw(st.sampled_from(["same", "same_lower", 0, 1, 2]))
    if draw(st.booleans()):
        return rfw.conv(name, kernel, stride=stride, dilation=dilation, padding=padding, inputs=inputs)
    ceil = padding not in ("same", "same_lower") and draw(st.booleans())
    return rfw.pool(name, kernel, stride=stride, padding=padding, ceil_mode=ceil, inputs=inputs)


@st.composite
def graphs(draw) -> Stack:
    layers: list[rfw.Layer] = []
    for i in range(draw(st.integers(2, 9))):
        names = [layer.name for layer in layers]
        name = f"l{i}"
        if len(names) >= 2 and draw(st.integers(0, 4)) == 0:
            pair = tuple(draw(st.lists(st.sampled_from(names), min_size=2, max_size=2, unique=True)))
            layers.append(rfw.add(name, inputs=pair))
        elif names and draw(st.integers(0, 6)) == 0:
            layers.append(rfw.adaptive_pool(name, draw(st.sampled_from([1, 2, 3])), inputs=(names[-1],)))
        else:
            source = (draw(st.sampled_from(names)),) if names else ("input",)
            layers.append(draw(windows(name, source)))
    return Stack(layers, 2, "generated")


def _edited(draw, layer: rfw.Layer) -> rfw.Layer:
    """Another stride, kernel or padding for a window; the name and inputs stay."""
    kind = draw(st.sampled_from(["stride", "kernel", "padding"]))
    if kind == "stride":
        return replace(layer, stride=(draw(st.sampled_from([1, 2])),) * 2)
    if kind == "kernel":
        return replace(layer, kernel=(draw(st.sampled_from([1, 3, 7])),) * 2)
    mode = draw(st.sampled_from([None, "same_upper", "same_lower"]))
    if mode is None:
        return replace(layer, padding_mode=None, padding=((1, 1),) * 2)
    return replace(layer, padding_mode=mode, padding=((0, 0),) * 2, ceil_mode=False)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), st.data())
def test_a_variant_judges_as_a_fresh_engine_of_the_edited_graph(stack, data):
    base = engine(stack)
    variants: list[tuple[Engine, dict[int, rfw.Layer]]] = []
    editable = [i for i, x in enumerate(stack.layers) if x.kind == "window" and len(x.inputs) == 1]
    for _ in range(3):
        picked = data.draw(st.lists(st.sampled_from(editable), max_size=3, unique=True)) if editable else []
        changes = {i: _edited(data.draw, stack.layers[i]) for i in picked}
        variants.append((base.variant(changes), changes))
    sizes = data.draw(st.lists(st.integers(1, 40), min_size=1, max_size=3))
    for eng, changes in variants:
        rebuilt = Stack([changes.get(i, layer) for i, layer in enumerate(stack.layers)], 2, "rebuilt")
        fresh = engine(rebuilt)
        assert eng.sizes == fresh.sizes
        assert np.array_equal(eng.plan.kernel, fresh.plan.kernel)
        assert np.array_equal(eng.plan.unknown, fresh.plan.unknown)
        for side in sizes:
            resolution = (side, side)
            expected = fresh.evaluate(resolution)
            judged = eng.judge(resolution)
            assert judged.sizes == expected.sizes
            assert judged.resolved == expected.resolved
            assert judged.verdicts == expected.verdicts
            r_min = np.array([[float(v) for v in row] for row in expected.field.r_min])
            assert np.array_equal(judged.r_min, r_min)
            full = eng.evaluate(resolution)
            assert full.verdicts == expected.verdicts
            assert full.field.r_min == expected.field.r_min


def test_a_replacement_must_keep_name_and_inputs():
    stack = Stack([rfw.conv("a", 3), rfw.conv("b", 3)])
    with pytest.raises(rfw.RFError, match="layer 'b'"):
        engine(stack).variant({1: rfw.conv("c", 3, inputs=("a",))})
