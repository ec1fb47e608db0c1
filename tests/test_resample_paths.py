"""``r_min``, ``r_max`` and unit boxes through upsampling, against brute-force path enumeration.

Hypothesis generates small 1-D graphs of windows (convolutions and pools with stride, dilation and
padding), nearest and linear upsampling, transposed convolutions and additions. The reference shares no
code with rf_widgets: it enumerates every input-to-layer path and, for each unit, follows the *set* of
units it reads back to the input, op by op, straight from PyTorch's formulas:

* window: unit ``u`` reads ``u s - lo + j d`` for ``0 <= j < k``;
* nearest upsampling by ``f``: ``floor(u / f)``;
* linear upsampling by ``f`` (``align_corners=False``): position ``(u + 1/2) / f - 1/2``, both
  neighbours, one when the position falls on a unit (the other weight is exactly 0);
* transposed convolution: ``u`` receives input ``i`` when ``u = i s - p + j d`` for some ``0 <= j < k``.

A path's field is the largest hull over the units (units of different phases see different widths);
``r_min``/``r_max`` are the smallest/largest over paths, and the hull box of a unit spans every path.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rf_widgets as rfw
from rf_widgets.core.layers import conv_transpose, upsample

UNITS = range(0, 72)  # several periods of every generated graph (periods divide 36)


@st.composite
def graphs(draw):
    nodes = []
    for i in range(draw(st.integers(2, 6))):
        earlier = ["input", *(n[0] for n in nodes)]
        kind = draw(st.sampled_from(["window", "nearest", "linear", "transpose", "add"]))
        name = f"n{i}"
        source = draw(st.sampled_from(earlier))
        if kind == "add" and len(earlier) > 2:
            other = draw(st.sampled_from([e for e in earlier if e not in (source, "input")] or [source]))
            nodes.append((name, "add", (source, other), ()))
        elif kind == "window" or kind == "add":
            k, s, d = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
            lo = draw(st.integers(0, d * (k - 1)))
            nodes.append((name, "window", (source,), (k, s, d, lo)))
        elif kind in ("nearest", "linear"):
            nodes.append((name, kind, (source,), (draw(st.sampled_from([2, 3])),)))
        else:
            s, d = draw(st.integers(1, 3)), draw(st.integers(1, 2))
            k = draw(st.integers(1, 4))
            p = draw(st.integers(0, d * (k - 1)))
            if any(not _transposed_reads(o, k, s, d, p) for o in range(s)):
                k, d = s, 1  # every phase must read something (else the rule reports unknown)
                p = 0
            nodes.append((name, "transpose", (source,), (k, s, d, p)))
    return nodes


def _transposed_reads(o, k, s, d, p):
    return [(o + p - j * d) // s for j in range(k) if (o + p - j * d) % s == 0]


def _reads(kind, params, u):
    if kind == "window":
        k, s, d, lo = params
        return {u * s - lo + j * d for j in range(k)}
    if kind == "nearest":
        return {u // params[0]}
    if kind == "linear":
        position = (u + Fraction(1, 2)) / params[0] - Fraction(1, 2)
        return {math.floor(position), math.ceil(position)}
    if kind == "transpose":
        return set(_transposed_reads(u, *params))
    return {u}  # add


def _stack(nodes):
    layers = []
    for name, kind, inputs, params in nodes:
        if kind == "window":
            k, s, d, lo = params
            layers.append(rfw.conv(name, k, s, d, [(lo, d * (k - 1) - lo)], inputs=inputs))
        elif kind in ("nearest", "linear"):
            layers.append(upsample(name, params[0], mode=kind, inputs=inputs))
        elif kind == "transpose":
            k, s, d, p = params
            layers.append(conv_transpose(name, k, s, d, p, inputs=inputs))
        else:
            layers.append(rfw.add(name, list(inputs)))
    return rfw.Stack(layers, ndim=1)


def _paths(nodes):
    """Every path from the input to each node, as the list of (kind, params) from the node back."""
    table = {n[0]: n for n in nodes}

    @cache
    def paths(name):
        if name == "input":
            return [()]
        _, kind, inputs, params = table[name]
        return [((kind, params), *rest) for source in dict.fromkeys(inputs) for rest in paths(source)]

    return {n[0]: paths(n[0]) for n in nodes}


def _seen(path, u):
    units = {u}
    for kind, params in path:
        units = {t for v in units for t in _reads(kind, params, v)}
    return min(units), max(units)


SETTINGS = {"deadline": None, "max_examples": 150, "suppress_health_check": [HealthCheck.too_slow]}


@settings(**SETTINGS)
@given(graphs())
def test_fields_and_boxes_match_path_enumeration(nodes):
    result = rfw.analyze(_stack(nodes), 200)
    for name, paths in _paths(nodes).items():
        widths = [max(b - a + 1 for a, b in (_seen(path, u) for u in UNITS)) for path in paths]
        layer = result.layer(name)
        assert layer.r_min == (min(widths),), (name, paths)
        assert layer.r_max == (max(widths),), (name, paths)
        for u in (0, 1, 2, 5, 7, 11, 30):
            if u >= layer.feature_map[0]:
                continue
            spans = [_seen(path, u) for path in paths]
            box = result.unit_box(name, (u,), path="hull")
            assert (box.start, box.stop) == ((min(a for a, _ in spans),), (max(b for _, b in spans),))


def test_unet_stack_from_the_docs():
    unet = rfw.Stack(
        [
            rfw.conv("enc1a", 3, padding=1),
            rfw.conv("enc1b", 3, padding=1),
            rfw.pool("down1", 2),
            rfw.conv("enc2a", 3, padding=1),
            rfw.conv("enc2b", 3, padding=1),
            rfw.pool("down2", 2),
            rfw.conv("mid_a", 3, padding=1),
            rfw.conv("mid_b", 3, padding=1),
            rfw.conv_transpose("up2", 2, stride=2),
            rfw.concat("skip2", ["up2", "enc2b"]),
            rfw.conv("dec2", 3, padding=1),
            rfw.conv_transpose("up1", 2, stride=2),
            rfw.concat("skip1", ["up1", "enc1b"]),
            rfw.conv("dec1", 3, padding=1),
        ],
        name="unet",
    )
    result = rfw.analyze(unet, 64)
    got = {name: (result.layer(name).r_min[0], result.layer(name).r_max[0]) for name in unet.names}
    assert got["mid_b"] == (32, 32)
    assert got["up2"] == (32, 32)
    assert got["dec2"] == (18, 36)  # skip: 14 + 2 x 2; bottleneck: two mid_b units, 32 + 4
    assert got["dec1"] == (7, 40)  # skip: 5 + 2; phase 1 spans three mid_b units, 32 + 8
    assert result.layer("dec1").jump == (1, 1)
    # unit 1 (three mid_b units) and unit 3 (two) of dec1 see different widths
    assert result.unit_box("dec1", (1, 1)).size == (40, 40)
    assert result.unit_box("dec1", (3, 3)).size == (36, 36)


def test_a_dilated_window_after_a_transposed_convolution_skips_its_holes():
    """Found by the hypothesis test above: the window's taps (0 and 2) read the same input unit.

    The transposed convolution (kernel 3, stride 3, dilation 2) gives every output unit one input, and
    units ``v`` and ``v + 2`` the same one; a window of 2 taps with dilation 2 reads exactly that pair,
    so it sees one input unit. Counting the hole ``v + 1`` (another input unit) gave 2.
    """
    for p, lo in ((0, 0), (1, 2), (3, 1), (4, 2)):
        nodes = [("n0", "transpose", ("input",), (3, 3, 2, p)), ("n1", "window", ("n0",), (2, 3, 2, lo))]
        result = rfw.analyze(_stack(nodes), 200)
        assert result.layer("n1").r_max == (1,)
        for u in range(6):
            box = result.unit_box("n1", (u,), path="hull")
            start, stop = _seen(_paths(nodes)["n1"][0], u)
            assert (box.start, box.stop) == ((start,), (stop,))
