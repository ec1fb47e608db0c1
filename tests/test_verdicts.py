"""SPEC section 6 version 2 against an independent reference (tests/verdict_reference.py).

Generated networks mix spatial windows, pointwise layers (1x1 convolutions, activations, additions),
squeeze-and-excitation gates (a global path into a multiplication) and unknown operations. Their facts
(feature maps, ``r_min`` over every path, global paths) come from brute force written from SPEC sections 2,
4 and 5, so nothing of rf_widgets is used on the reference side; the verdicts, the border layers and the
smallest feasible size must agree at every drawn resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from verdict_reference import INPUT, Facts, check_against_reference, judge

import rf_widgets as rfw


@dataclass(frozen=True)
class Node:
    name: str
    op: str  # conv, relu, add, mul, gap (global average pool), unknown
    inputs: tuple[str, ...]
    kernel: tuple[int, ...] = (1, 1)
    stride: tuple[int, ...] = (1, 1)
    dilation: tuple[int, ...] = (1, 1)
    padding: tuple[int, ...] = (0, 0)


@st.composite
def networks(draw) -> list[Node]:
    nodes: list[Node] = []
    names = [INPUT]
    for i in range(draw(st.integers(1, 10))):
        name = f"n{i}"
        op = draw(st.sampled_from(("conv", "conv", "conv", "relu", "add", "se", "unknown")))
        source = draw(st.sampled_from(names[-3:]))
        if op == "conv":
            nodes.append(
                Node(
                    name,
                    "conv",
                    (source,),
                    tuple(draw(st.integers(1, 4)) for _ in range(2)),
                    tuple(draw(st.integers(1, 2)) for _ in range(2)),
                    tuple(draw(st.integers(1, 2)) for _ in range(2)),
                    tuple(draw(st.integers(0, 2)) for _ in range(2)),
                )
            )
        elif op == "add":
            # add two earlier layers of the same map size is checked by the size rule (max over inputs)
            other = draw(st.sampled_from(names))
            nodes.append(Node(name, "add", (source, other)))
        elif op == "se":  # x * gate(mean(x)): a global path into a multiplication
            nodes.append(Node(f"{name}_pool", "gap", (source,)))
            nodes.append(Node(f"{name}_fc", "conv", (f"{name}_pool",)))
            nodes.append(Node(name, "mul", (source, f"{name}_fc")))
            names += [f"{name}_pool", f"{name}_fc"]
        else:
            nodes.append(Node(name, op, (source,)))
        names.append(name)
    return nodes


def to_stack(nodes: list[Node]) -> rfw.Stack:
    layers = []
    for node in nodes:
        if node.op == "conv":
            layers.append(
                rfw.conv(
                    node.name,
                    node.kernel,
                    stride=node.stride,
                    dilation=node.dilation,
                    padding=node.padding,
                    inputs=node.inputs,
                )
            )
        elif node.op == "relu":
            layers.append(rfw.elementwise(node.name, inputs=node.inputs))
        elif node.op == "add":
            layers.append(rfw.add(node.name, node.inputs))
        elif node.op == "mul":
            layers.append(rfw.mul(node.name, node.inputs))
        elif node.op == "gap":
            layers.append(rfw.global_pool(node.name, inputs=node.inputs))
        else:
            layers.append(rfw.unknown(node.name, "mystery", inputs=node.inputs))
    return rfw.Stack(layers, ndim=2, name="generated")


def brute_force_facts(nodes: list[Node], size: tuple[int, int]) -> dict[str, Facts]:
    """Feature maps and r_min from every path, by recursion (SPEC sections 2, 4 and 5)."""
    by_name = {node.name: node for node in nodes}

    @cache
    def paths(name: str) -> tuple[tuple[tuple[int, int], bool], ...]:
        """Every path to ``name`` as (r per axis, passes a global operation); jumps kept alongside."""
        return tuple((r, glob) for r, _, glob in walk(name))

    @cache
    def walk(name: str) -> tuple[tuple[tuple[int, int], tuple[int, int], bool], ...]:
        if name == INPUT:
            return (((1, 1), (1, 1), False),)
        node = by_name[name]
        out = []
        for source in node.inputs:
            for r, jump, glob in walk(source):
                if node.op == "conv":
                    r = tuple(r[a] + node.dilation[a] * (node.kernel[a] - 1) * jump[a] for a in range(2))
                    jump = tuple(jump[a] * node.stride[a] for a in range(2))
                out.append((r, jump, glob or node.op == "gap"))
        return tuple(out)

    @cache
    def feature_map(name: str) -> tuple[int, int]:
        if name == INPUT:
            return size
        node = by_name[name]
        ins = [feature_map(source) for source in node.inputs]
        if node.op == "conv":
            (n,) = ins
            out = []
            for a in range(2):
                span = n[a] + 2 * node.padding[a] - node.dilation[a] * (node.kernel[a] - 1) - 1
                out.append(span // node.stride[a] + 1 if n[a] > 0 and span >= 0 else 0)
            return (out[0], out[1])
        if node.op == "gap":
            return (min(ins[0][0], 1), min(ins[0][1], 1))  # per axis: an empty axis stays empty
        return (max(n[0] for n in ins), max(n[1] for n in ins))

    facts = {}
    for node in nodes:
        local = [r for r, glob in paths(node.name) if not glob]
        r_min = tuple(min(r[a] for r in local) for a in range(2)) if local else (math.inf, math.inf)
        k_eff = None
        if node.op == "conv":
            k_eff = tuple(node.dilation[a] * (node.kernel[a] - 1) + 1 for a in range(2))
        elif node.op in ("relu", "add", "mul"):
            k_eff = (1, 1)
        facts[node.name] = Facts(node.inputs, k_eff, r_min, feature_map(node.name), node.op == "unknown")
    return facts


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(networks(), st.integers(1, 40), st.integers(1, 40))
def test_generated_networks_against_the_reference(nodes, height, width):
    stack = to_stack(nodes)
    result = rfw.analyze(stack, (height, width))
    facts = brute_force_facts(nodes, (height, width))
    order = list(result.stack.names)
    for name in order:  # the facts the reference is fed are the analysis's too
        assert result.layer(name).feature_map == facts[name].feature_map, name
        assert tuple(float(v) for v in result.layer(name).r_min) == facts[name].r_min, name
    ref = judge(facts, order, (height, width))
    for name in order:
        layer = result.layer(name)
        assert (layer.status, layer.reason) == (ref.status[name], ref.reason[name]), name
        assert layer.spatial == (name in ref.spatial), name
    assert list(result.border_layers) == ref.border
    for name in result.border_layers:
        assert name in ref.spatial  # never a pointwise layer


@settings(max_examples=60, deadline=None)
@given(networks())
def test_smallest_feasible_size_by_scanning(nodes):
    stack = to_stack(nodes)
    low = rfw.analyze(stack, 8).resolution_range[0]
    order = list(stack.names)

    def has_unproductive(side: int) -> bool:
        ref = judge(brute_force_facts(nodes, (side, side)), order, (side, side))
        return "unproductive" in ref.status.values()

    first = next((side for side in range(1, 400) if not has_unproductive(side)), None)
    assert first is not None  # every generated field is finite and below 400
    assert low == first
    assert all(not has_unproductive(side) for side in range(first, first + 20))


# -- hand-computed cases ------------------------------------------------------------------------------------


def test_pointwise_layers_follow_and_never_start_a_tail():
    stack = rfw.Stack(
        [
            rfw.conv("c1", 3, padding=1),
            rfw.elementwise("bn1", "batchnorm"),
            rfw.conv("c2", 3, padding=1),  # r 5 > 4 with input r 3 < 4, a 4x4 map: critical
            rfw.elementwise("bn2", "batchnorm"),  # critical, but pointwise: not unproductive
            rfw.conv("c3", 3, padding=1),  # input r 5 >= 4, own r 7 > 4: rule A
            rfw.elementwise("relu3"),
            rfw.conv("c4", 1),  # a 1x1 conv is pointwise: follows c3
        ]
    )
    result = rfw.analyze(stack, 4)
    assert [layer.status for layer in result.layers] == [
        "productive",
        "productive",
        "critical",
        "critical",
        "unproductive",
        "unproductive",
        "unproductive",
    ]
    assert result.layer("c3").reason == "rf-exceeds-input"
    assert result.layer("relu3").reason == "follows-unproductive"
    assert result.layer("c4").reason == "follows-unproductive"
    assert result.border_layer == "c2"  # critical, and every spatial layer after it is unproductive
    assert result.spatial_layers == ("c1", "c2", "c3")
    check_against_reference(result)


def test_a_productive_skip_keeps_the_add_productive_and_the_border_stays_spatial():
    stack = rfw.Stack(
        [
            rfw.conv("stem", 3, stride=2, padding=1),  # 8 -> 4
            rfw.conv("a", 3, padding=1),  # r 7 < 8: productive
            rfw.conv("b", 3, stride=2, padding=1),  # 4 -> 2, r 11 > 8 but input r 7 < 8: critical
            rfw.conv("c", 3, padding=1, inputs="b"),  # r 19 > 8, input r 11 >= 8: rule A (B holds too)
            rfw.elementwise("bn", "batchnorm"),
            rfw.add("sum", ["bn", "b"]),  # b is productive: so is the sum
            rfw.global_pool("gap"),
        ]
    )
    result = rfw.analyze(stack, 8)
    assert result.layer("b").status == "critical"
    assert result.layer("c").reason == "rf-exceeds-input"
    assert result.layer("bn").status == "unproductive"
    assert result.layer("sum").status != "unproductive"
    assert result.layer("gap").status == "global"
    assert result.border_layer == "b"
    check_against_reference(result)


def test_a_squeeze_and_excitation_gate_does_not_rescue_an_unproductive_map():
    stack = rfw.Stack(
        [
            rfw.conv("c1", 5),
            rfw.conv("c2", 5),  # r 9 > 4, input r 5 >= 4: rule A
            rfw.global_pool("squeeze", inputs="c2"),
            rfw.conv("excite", 1, inputs="squeeze"),
            rfw.mul("scale", ["c2", "excite"]),
        ]
    )
    result = rfw.analyze(stack, 4)
    assert result.layer("excite").status == "global"
    assert result.layer("scale").status == "unproductive"
    assert result.layer("scale").reason == "follows-unproductive"
    assert result.layer("scale").r_max[0] == math.inf
    check_against_reference(result)


def test_an_unknown_gate_behind_a_global_pool_does_not_rescue_an_unproductive_map():
    """An unknown operation that reads only a global pool sees the whole image whatever it computes: like
    the known gate above it leaves ``scale`` unproductive. On a local map the same operation may carry
    content of its own, and the layer after it is not called unproductive.

    (Found by the generated networks: the engine counted every unknown input as local content.)
    """
    stack = rfw.Stack(
        [
            rfw.conv("c1", 5),
            rfw.conv("c2", 5),  # r 9 > 4, input r 5 >= 4: rule A
            rfw.global_pool("squeeze", inputs="c2"),
            rfw.unknown("excite", "mystery", inputs="squeeze"),
            rfw.add("scale", ["c2", "excite"]),
            rfw.unknown("local", "mystery", inputs="c2"),
            rfw.add("mixed", ["c2", "local"]),
        ]
    )
    result = rfw.analyze(stack, 4)
    assert result.layer("excite").status == "unknown"
    assert result.layer("excite").r_min[0] == math.inf
    assert (result.layer("scale").status, result.layer("scale").reason) == (
        "unproductive",
        "follows-unproductive",
    )
    assert result.layer("local").r_min == (9, 9)
    assert result.layer("mixed").status == "critical"  # r_min 9 > 4, and not unproductive
    check_against_reference(result)


def test_the_network_input_counts_as_productive_content():
    stack = rfw.Stack(
        [
            rfw.conv("c1", 5),
            rfw.conv("c2", 5),  # unproductive at 4 (rule A)
            rfw.pool("up", 1, inputs="input"),  # pointwise, straight from the image
            rfw.concat("both", ["c2", "input"]),
        ]
    )
    result = rfw.analyze(stack, 4)
    assert result.layer("c2").status == "unproductive"
    assert result.layer("both").status != "unproductive"
    check_against_reference(result)


def test_several_tails_give_several_border_layers():
    stack = rfw.Stack(
        [
            rfw.conv("a1", 3, inputs="input"),
            rfw.conv("a2", 9),  # r 11 > 8, input r 3 < 8: critical
            rfw.conv("a3", 3),  # unproductive by rule A
            rfw.conv("b1", 5, inputs="input"),
            rfw.conv("b2", 5),  # r 9 > 8, input r 5 < 8: critical
            rfw.conv("b3", 3),  # rule A
            rfw.concat("cat", ["a3", "b3"]),
        ]
    )
    result = rfw.analyze(stack, 8)
    assert result.border_layers == ("a2", "b2")
    assert result.border_layer == "a2"
    assert result.layer("cat").status == "unproductive"
    check_against_reference(result)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13])
def test_reference_agrees_on_an_empty_map(size):
    stack = rfw.Stack([rfw.conv("c1", 3, stride=2), rfw.conv("c2", 3, stride=2), rfw.conv("c3", 3)])
    check_against_reference(rfw.analyze(stack, size))


def test_a_productive_layer_further_down_means_no_tail_starts_here():
    stack = rfw.Stack(
        [
            rfw.conv("c1", 9, padding=4),  # r 9 > 8 from the image: critical
            rfw.conv("c2", 3, padding=1),  # r 11, input r 9 >= 8: unproductive (rule A)
            rfw.add("skip", ["c2", "input"]),  # the image comes back in: r_min 1
            rfw.conv("c3", 3, padding=1),  # r_min 3 < 8: productive, two steps after c1
        ]
    )
    result = rfw.analyze(stack, 8)
    assert result.layer("c2").status == "unproductive"
    assert result.layer("c3").status == "productive"
    assert result.border_layers == ()  # an unproductive layer, but no unproductive tail
    check_against_reference(result)


def test_resampling_layers_count_with_their_widest_phase():
    stack = rfw.Stack(
        [
            rfw.conv("enc", 3, stride=2, padding=1),  # 8 -> 4, r 3
            rfw.conv("bottleneck", 3, stride=2, padding=1),  # 4 -> 2, r 7 < 8: productive
            rfw.conv_transpose("up1", 4, stride=2, padding=1),  # every output reads 2 inputs per axis
            rfw.upsample("up2", 2, mode="nearest"),  # every output reads 1 input: pointwise
            rfw.upsample("up3", 2, mode="linear"),  # 2 inputs per axis
        ]
    )
    result = rfw.analyze(stack, 8)
    up1, up2, up3 = (result.layer(n) for n in ("up1", "up2", "up3"))
    assert (up1.kernel, up1.stride, up1.spatial) == ((2, 2), (0.5, 0.5), True)
    assert (up1.status, up1.reason) == ("unproductive", "feature-map-covered")  # reads the whole 2x2 map
    assert (up2.spatial, up2.reason) == (False, "follows-unproductive")
    assert (up3.spatial, up3.reason) == (True, "rf-exceeds-input")
    assert result.border_layer == "up1"
    for size in (3, 4, 8, 16):
        check_against_reference(result.at(size))
