"""Size-dependent "same" padding (TensorFlow/Keras ``padding="same"``, ONNX ``auto_pad``).

The oracles are hand-computed tables (TensorFlow's rule worked out on paper: ``ceil(n / s)`` outputs,
the odd pixel of padding at the end) and a brute-force composition of index sets that follows the
definition "output unit ``u`` reads input units ``u * s - lo + j * d``" layer by layer, without the
receptive-field arithmetic.
"""

from __future__ import annotations

import json

import pytest

import rf_widgets as rfw
from rf_widgets.core.layers import same_padding
from rf_widgets.editing import change_layer
from rf_widgets.errors import LayerSpecError, StackFileError
from rf_widgets.stackfile import stack_from_dict, stack_to_dict

# (n, k_eff, stride) -> (lo, hi) for "same_upper", worked out by hand
HAND = [
    (224, 7, 2, (2, 3)),  # 112 outputs: 111*2 + 7 - 224 = 5
    (5, 3, 2, (1, 1)),  # 3 outputs: 2*2 + 3 - 5 = 2
    (6, 3, 2, (0, 1)),  # 3 outputs: 4 + 3 - 6 = 1
    (7, 1, 2, (0, 0)),  # a strided 1x1 never pads
    (4, 5, 1, (2, 2)),
    (4, 4, 1, (1, 2)),  # even kernel, stride 1: 3 pixels, the odd one at the end
    (1, 3, 2, (1, 1)),
    (3, 2, 2, (0, 1)),
    (8, 3, 3, (0, 1)),  # 3 outputs: 6 + 3 - 8 = 1
    (2, 7, 1, (3, 3)),  # a kernel wider than the map
]


@pytest.mark.parametrize(("n", "k", "s", "expected"), HAND)
def test_same_padding_matches_hand_values(n: int, k: int, s: int, expected: tuple[int, int]) -> None:
    assert same_padding(n, k, s) == expected
    assert same_padding(n, k, s, "same_lower") == expected[::-1]


def _support(specs: list[tuple[int, int, int, int]], n: int, layer: int, unit: int) -> set[int]:
    """Input units one output unit of ``layer`` reads, by composing index sets layer by layer.

    ``specs`` holds ``(k, s, d, lo)`` per layer with ``lo`` taken from :data:`HAND`-style working; sizes
    are followed to drop padding positions.
    """
    sizes = [n]
    for _k, s, _d, _lo in specs:
        sizes.append(-(-sizes[-1] // s))
    units = {unit}
    for index in range(layer, -1, -1):
        k, s, d, lo = specs[index]
        below = sizes[index]
        units = {u * s - lo + j * d for u in units for j in range(k)}
        units = {v for v in units if 0 <= v < below}
    return units


@pytest.mark.parametrize("n", [7, 8, 9, 16, 17])
def test_unit_boxes_match_brute_force(n: int) -> None:
    layers = [
        rfw.conv("c1", 3, stride=2, padding="same"),
        rfw.conv("c2", 4, stride=1, padding="same"),
        rfw.conv("c3", 3, stride=2, dilation=2, padding="same_lower"),
    ]
    result = rfw.analyze(layers, n)
    # the padding each layer uses at this size, worked out from the hand rule step by step
    size, specs = n, []
    for k, s, d, mode in ((3, 2, 1, "upper"), (4, 1, 1, "upper"), (3, 2, 2, "lower")):
        out = -(-size // s)
        total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
        lo = total // 2 if mode == "upper" else total - total // 2
        specs.append((k, s, d, lo))
        size = out
    for index, name in enumerate(("c1", "c2", "c3")):
        fmap = result.layer(name).feature_map[0]
        assert fmap == -(-n // [2, 2, 4][index])
        for unit in sorted({0, fmap // 2, fmap - 1}):
            seen = _support(specs, n, index, unit)
            box = result.unit_box(name, unit).clipped((n, n))  # declared layers default to two axes
            assert box is not None
            assert (box.start[0], box.stop[0]) == (min(seen), max(seen)), (name, unit)


def test_reported_padding_and_feature_maps_follow_the_size() -> None:
    stem = [rfw.conv("stem", 7, stride=2, padding="same")]
    assert rfw.analyze(stem, 224).layer("stem").padding == ((2, 3), (2, 3))
    at_225 = rfw.analyze(stem, (225, 224)).layer("stem")
    assert at_225.padding == ((3, 3), (2, 3))
    assert at_225.feature_map == (113, 112)
    assert rfw.analyze(stem, 224).layer("stem").r_max == (7, 7)


def test_size_dependent_padding_changes_the_offset_between_sizes() -> None:
    """One stack, two sizes, two paddings: the cached field must not be reused across them."""
    layers = [rfw.conv("a", 3, stride=2, padding="same"), rfw.conv("b", 3, stride=2, padding="same")]
    result = rfw.analyze(layers, 8)  # a pads (0, 1), b gets 4 and pads (0, 1)
    assert result.unit_box("b", 0).start == (0, 0)
    odd = result.at(9)  # a pads (1, 1), b gets 5 and pads (1, 1)
    assert odd.unit_box("b", 0).start == (-3, -3)
    assert result.at(8).unit_box("b", 0).start == (0, 0)


def test_stack_file_round_trip_and_words() -> None:
    stack = rfw.Stack([rfw.conv("c1", 3, stride=2, padding="same"), rfw.pool("p", 2, padding="same_lower")])
    document = json.loads(json.dumps(stack_to_dict(stack)))
    assert [layer["padding"] for layer in document["layers"]] == ["same_upper", "same_lower"]
    again = stack_from_dict(document, "memory")
    assert [layer.padding_mode for layer in again.layers] == ["same_upper", "same_lower"]
    bad = {"layers": [{"name": "c", "type": "conv", "kernel": 3, "padding": "half"}]}
    with pytest.raises(StackFileError, match="padding"):
        stack_from_dict(bad, "memory")


def test_editing_switches_between_same_and_explicit_padding() -> None:
    stack = rfw.Stack([rfw.conv("c1", 3, stride=2, padding="same")])
    explicit = change_layer(stack, "c1", padding=1)
    assert explicit["c1"].padding_mode is None
    assert explicit["c1"].padding == ((1, 1), (1, 1))
    back = change_layer(explicit, "c1", padding="same_lower")
    assert back["c1"].padding_mode == "same_lower"
    assert stack["c1"].padding_mode == "same_upper"  # the original stack is untouched


def test_bad_padding_words_and_combinations_are_refused() -> None:
    with pytest.raises(LayerSpecError, match=r"'half'.*'c'"):
        rfw.conv("c", 3, padding="half")
    with pytest.raises(LayerSpecError, match=r"padding_mode.*'p'"):
        rfw.Layer("p", "maxpool", kernel=(3,), padding=((1, 1),), padding_mode="same_upper")
    with pytest.raises(LayerSpecError, match="padding_mode"):
        rfw.Layer("q", "conv", kernel=(3,), padding_mode="same")  # type: ignore[arg-type]
