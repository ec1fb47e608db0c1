"""Hand-written ONNX graphs: auto_pad, ceil_mode, dilations, layouts, resizing, depth/space, bad input.

Two oracles, both independent of rf_widgets' arithmetic: values worked out by hand (in the comments),
and brute force with ONNX's own reference evaluator (``onnx.reference``, numpy): every input pixel is
set alone, the graph is run, and the output units whose value changed are the units that read that
pixel. With all weights positive nothing cancels, so the units a pixel reaches are exactly the support.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import rf_widgets as rfw  # noqa: E402
from rf_widgets.errors import ModelImportError, UnknownOperationWarning  # noqa: E402

BIG = 1 << 62


def make_model(
    nodes: list[Any],
    shape: list[Any],
    weights: dict[str, tuple[int, ...]] | None = None,
    constants: dict[str, Any] | None = None,
    opset: int = 21,
    extra_inputs: list[Any] = (),  # type: ignore[assignment]
) -> Any:
    """One graph: input ``x`` of ``shape``, the output of the last node, positive weights."""
    rng = np.random.default_rng(0)
    inits = []
    for name, dims in (weights or {}).items():
        inits.append(helper.make_tensor(name, TensorProto.FLOAT, dims, rng.uniform(0.5, 1.5, dims).ravel()))
    for name, value in (constants or {}).items():
        array = np.asarray(value)
        kind = TensorProto.INT64 if array.dtype.kind in "iu" else TensorProto.FLOAT
        inits.append(helper.make_tensor(name, kind, array.shape, array.ravel().tolist()))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [x, *extra_inputs], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def brute_support(model: Any, shape: tuple[int, ...], channels_last: bool = False) -> dict[tuple, list]:
    """Output unit (spatial index) -> per axis (first, last) input position it reads, by impulses."""
    evaluator = ReferenceEvaluator(model)
    spatial = shape[1:-1] if channels_last else shape[2:]
    base = np.zeros(shape, dtype=np.float32)
    (reference,) = evaluator.run(None, {"x": base})
    reach: dict[tuple, list] = {}
    for pixel in itertools.product(*(range(n) for n in spatial)):
        x = base.copy()
        if channels_last:
            x[(0, *pixel, slice(None))] = 1.0
        else:
            x[(0, slice(None), *pixel)] = 1.0
        (out,) = evaluator.run(None, {"x": x})
        changed = np.abs(out - reference) > 0
        mask = changed.any(axis=(0, -1)) if channels_last else changed.any(axis=(0, 1))
        for unit in zip(*np.nonzero(mask), strict=True):
            key = tuple(int(u) for u in unit)
            bounds = reach.setdefault(key, [[p, p] for p in pixel])
            for a, p in enumerate(pixel):
                bounds[a][0] = min(bounds[a][0], p)
                bounds[a][1] = max(bounds[a][1], p)
    return reach


def check_against_brute_force(model: Any, shape: tuple[int, ...], channels_last: bool = False) -> Any:
    """Feature map and unit boxes of the last layer against impulses through the reference evaluator."""
    spatial = shape[1:-1] if channels_last else shape[2:]
    result = rfw.analyze(model, tuple(spatial))
    last = result.layers[-1].name
    (out,) = ReferenceEvaluator(model).run(None, {"x": np.zeros(shape, dtype=np.float32)})
    out_spatial = out.shape[1:-1] if channels_last else out.shape[2:]
    assert result.layer(last).feature_map == tuple(out_spatial)
    reach = brute_support(model, shape, channels_last)
    for unit in itertools.product(*(range(n) for n in out_spatial)):
        box = result.unit_box(last, unit, path="hull")
        seen = reach.get(unit)
        clipped = box.clipped(tuple(spatial))
        if seen is None:  # reads padding only
            assert clipped is None or _all_holes(model), (unit, box)
            continue
        assert clipped is not None, (unit, box, seen)
        for a, (first, final) in enumerate(seen):
            assert clipped.start[a] <= first, (unit, box, seen)
            assert final <= clipped.stop[a], (unit, box, seen)
            if _no_holes(model):
                assert (clipped.start[a], clipped.stop[a]) == (first, final), (unit, box, seen)
    return result


def _no_holes(model: Any) -> bool:
    """Without dilation or transposed strides every position inside a box is read."""
    for node in model.graph.node:
        for a in node.attribute:
            if a.name == "dilations" and any(v > 1 for v in a.ints):
                return False
        if node.op_type == "ConvTranspose":
            return False
    return True


def _all_holes(model: Any) -> bool:
    return not _no_holes(model)


def conv(name: str, src: str, out: str, k: tuple[int, ...], cin: int = 2, cout: int = 2, **attrs: Any) -> Any:
    return helper.make_node("Conv", [src, f"{name}.w"], [out], name=name, kernel_shape=list(k), **attrs)


def weights(name: str, k: tuple[int, ...], cin: int = 2, cout: int = 2) -> dict[str, tuple[int, ...]]:
    return {f"{name}.w": (cout, cin, *k)}


# -- auto_pad, strides, dilations, ceil_mode --------------------------------------------------------------

# (kernel, stride, auto_pad, input H x W, padding per axis worked out by hand: ceil(n/s) outputs, the
# total (out-1)*s + k - n split with the odd pixel at the end for SAME_UPPER, at the start for SAME_LOWER)
SAME_CASES = [
    (3, 2, "SAME_UPPER", (7, 8), ((1, 1), (0, 1)), (4, 4)),  # 7: 3*2+3-7 = 2; 8: 3*2+3-8 = 1
    (3, 2, "SAME_LOWER", (7, 8), ((1, 1), (1, 0)), (4, 4)),
    (4, 1, "SAME_UPPER", (6, 5), ((1, 2), (1, 2)), (6, 5)),  # even kernel: 3 pixels
    (4, 1, "SAME_LOWER", (6, 5), ((2, 1), (2, 1)), (6, 5)),
    (3, 3, "SAME_UPPER", (8, 9), ((0, 1), (0, 0)), (3, 3)),  # 8: 2*3+3-8 = 1; 9: 2*3+3-9 = 0
    (5, 2, "SAME_LOWER", (5, 6), ((2, 2), (2, 1)), (3, 3)),  # 5: 2*2+5-5 = 4; 6: 4+5-6 = 3
]


@pytest.mark.parametrize(("k", "s", "mode", "size", "padding", "out"), SAME_CASES)
def test_auto_pad_same_against_hand_values(
    k: int, s: int, mode: str, size: tuple, padding: tuple, out: tuple
) -> None:
    node = conv("c", "x", "y", (k, k), strides=[s, s], auto_pad=mode)
    model = make_model([node], [1, 2, *size], weights("c", (k, k)))
    result = check_against_brute_force(model, (1, 2, *size))
    layer = result.layer("c")
    assert layer.padding == padding
    assert layer.feature_map == out
    # unit 0 starts lo pixels before the image
    assert result.unit_box("c", 0).start == tuple(-lo for lo, _ in padding)


@pytest.mark.parametrize("mode", ["SAME_UPPER", "SAME_LOWER"])
def test_auto_pad_on_pools(mode: str) -> None:
    nodes = [
        helper.make_node(
            "AveragePool", ["x"], ["p"], name="p", kernel_shape=[2, 2], strides=[2, 2], auto_pad=mode
        ),
        helper.make_node(
            "AveragePool", ["p"], ["y"], name="a", kernel_shape=[3, 3], strides=[1, 1], auto_pad=mode
        ),
    ]
    model = make_model(nodes, [1, 1, 7, 6])
    result = check_against_brute_force(model, (1, 1, 7, 6))
    # 2/2 on 7: 4 outputs, total 3*2+2-7 = 1; on 6: 3 outputs, total 0
    assert result.layer("p").padding == (((0, 1), (0, 0)) if mode == "SAME_UPPER" else ((1, 0), (0, 0)))
    assert result.layer("a").feature_map == (4, 3)


def test_auto_pad_same_lower_on_max_pool_by_hand() -> None:
    """onnx 1.23's reference MaxPool gives 3 outputs for SAME_LOWER 2/2 on 7 (the spec says ceil(7/2) = 4,
    as its AveragePool does), so this case is checked against hand values only."""
    node = helper.make_node(
        "MaxPool", ["x"], ["y"], name="p", kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_LOWER"
    )
    result = rfw.analyze(make_model([node], [1, 1, 7, 6]), (7, 6))
    assert result.layer("p").feature_map == (4, 3)
    assert result.layer("p").padding == ((1, 0), (0, 0))
    assert result.unit_box("p", (0, 0)).start == (-1, 0)


def test_dynamic_input_sizes_resolve_same_padding_per_size() -> None:
    node = conv("c", "x", "y", (3, 3), strides=[2, 2], auto_pad="SAME_UPPER")
    model = make_model([node], [1, 2, "h", "w"], weights("c", (3, 3)))
    assert rfw.analyze(model, 8).layer("c").padding == ((0, 1), (0, 1))
    assert rfw.analyze(model, 9).layer("c").padding == ((1, 1), (1, 1))


@pytest.mark.parametrize(
    ("n", "k", "s", "pad", "out"),
    [
        (8, 3, 2, 0, 4),  # ceil((8-3)/2)+1 = 4, the last window starts at 6 inside the input
        (7, 2, 2, 0, 4),  # ceil(5/2)+1 = 4: the last window hangs over the end
        (3, 2, 2, 1, 2),  # ceil(3/2)+1 = 3, but window 2 would start at 4 = n + pad: dropped
        (6, 3, 2, 1, 4),  # ceil(5/2)+1 = 4, the last starts at 6 < 7
    ],
)
def test_ceil_mode(n: int, k: int, s: int, pad: int, out: int) -> None:
    node = helper.make_node(
        "MaxPool", ["x"], ["y"], name="p", kernel_shape=[k, k], strides=[s, s], pads=[pad] * 4, ceil_mode=1
    )
    model = make_model([node], [1, 1, n, n])
    result = check_against_brute_force(model, (1, 1, n, n))
    assert result.layer("p").feature_map == (out, out)


def test_dilations_and_asymmetric_pads() -> None:
    nodes = [
        conv("c1", "x", "h", (3, 3), dilations=[2, 1], pads=[2, 0, 1, 1]),
        conv("c2", "h", "y", (3, 2), strides=[2, 1], dilations=[1, 3]),
    ]
    model = make_model(nodes, [1, 2, 11, 10], {**weights("c1", (3, 3)), **weights("c2", (3, 2))})
    result = check_against_brute_force(model, (1, 2, 11, 10))
    # c1: k_eff (5, 3); c2: k_eff (3, 4) with stride 2 on H
    assert result.layer("c1").r_max == (5, 3)
    assert result.layer("c2").r_max == (7, 6)


def test_one_and_three_spatial_axes() -> None:
    model1 = make_model([conv("c", "x", "y", (5,), strides=[2], pads=[2, 2])], [1, 2, 17], weights("c", (5,)))
    result = check_against_brute_force(model1, (1, 2, 17))
    assert result.stack.ndim == 1
    assert result.layer("c").feature_map == (9,)
    model3 = make_model(
        [conv("c", "x", "y", (3, 3, 3), strides=[2, 1, 1], pads=[1] * 6)],
        [1, 2, 5, 4, 4],
        weights("c", (3, 3, 3)),
    )
    result = check_against_brute_force(model3, (1, 2, 5, 4, 4))
    assert result.stack.ndim == 3
    assert result.layer("c").feature_map == (3, 4, 4)


# -- layouts -----------------------------------------------------------------------------------------------


def test_channels_last_input_with_transposes() -> None:
    """A converter's NHWC graph: Transpose in, convolutions, Transpose out."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
        conv("c1", "t", "h", (3, 3), strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        conv("c2", "r", "z", (3, 1)),
        helper.make_node("Transpose", ["z"], ["y"], name="out", perm=[0, 2, 3, 1]),
    ]
    model = make_model(nodes, [1, 9, 8, 2], {**weights("c1", (3, 3)), **weights("c2", (3, 1))})
    result = rfw.analyze(model, (9, 8))
    assert result.stack.metadata["channels_last_input"] is True
    assert result.layer("c2").r_max == (7, 3)
    assert result.layer("c2").feature_map == (3, 4)
    assert [layer.name for layer in result.stack.layers] == ["c1", "relu", "c2"]  # Transposes add no layer
    # the reference evaluator agrees on the NHWC output
    reach = brute_support(model, (1, 9, 8, 2), channels_last=True)
    box = result.unit_box("c2", (1, 2), path="hull").clipped((9, 8))
    assert box is not None
    assert [list(v) for v in zip(box.start, box.stop, strict=True)] == reach[(1, 2)]


def test_transpose_that_swaps_height_and_width() -> None:
    """A conv applied to a (N, C, W, H) tensor: its kernel's first axis runs along the width."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 1, 3, 2]),
        conv("c", "t", "y", (5, 1), strides=[2, 1]),
    ]
    result = rfw.analyze(make_model(nodes, [1, 2, 12, 16], weights("c", (5, 1))), (12, 16))
    assert result.layer("c").kernel == (1, 5)
    assert result.layer("c").stride == (1, 2)
    assert result.layer("c").feature_map == (12, 6)


def test_a_conv_reading_channels_last_without_transpose_is_unknown() -> None:
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
        conv("c", "t", "y", (3, 3)),
    ]
    with pytest.warns(UnknownOperationWarning, match="'c' \\(Conv\\)"):
        result = rfw.analyze(make_model(nodes, [1, 2, 12, 16], weights("c", (3, 3))), (12, 16))
    assert result.layer("c").status == "unknown"


def test_flatten_then_gemm_is_global_on_a_map_larger_than_1x1() -> None:
    nodes = [
        conv("c", "x", "h", (3, 3)),
        helper.make_node("Flatten", ["h"], ["f"], name="flat", axis=1),
        helper.make_node("Gemm", ["f", "fc.w"], ["y"], name="fc", transB=1),
    ]
    model = make_model(nodes, [1, 2, "h", "w"], {**weights("c", (3, 3)), "fc.w": (10, 2 * 4 * 4)})
    result = rfw.analyze(model, 6)
    assert result.layer("flat").status == "global"
    assert result.layer("fc").status == "global"
    assert result.layer("fc").params == 10 * 32
    # on a 1x1 map the flatten mixes nothing
    assert rfw.analyze(model, 3).layer("fc").r_max == (3, 3)


def test_reductions_over_spatial_axes_and_channel_softmax() -> None:
    nodes = [
        conv("c", "x", "h", (3, 3), pads=[1, 1, 1, 1]),
        helper.make_node("Softmax", ["h"], ["s"], name="soft", axis=1),
        helper.make_node("ReduceMean", ["s", "axes"], ["m"], name="mean", keepdims=0),
        helper.make_node("ReduceMax", ["h", "axes1"], ["y0"], name="chmax", keepdims=1),
        helper.make_node("Add", ["m", "m"], ["y"], name="sum"),
    ]
    model = make_model(nodes, [1, 2, 8, 8], weights("c", (3, 3)), {"axes": [2, 3], "axes1": [1]})
    result = rfw.analyze(model, 8)
    assert result.layer("soft").r_max == (3, 3)  # over channels: pointwise
    assert result.layer("chmax").r_max == (3, 3)
    assert result.layer("mean").status == "global"
    assert result.layer("sum").status == "global"


@pytest.mark.parametrize(("index", "status", "r"), [(0, "global", None), (3, "productive", (4, 4))])
def test_tokens_and_a_class_token(index: int, status: str, r: Any) -> None:
    """ViT's layout: patches flattened into tokens, a constant class token in front, one token picked.
    The class token has no local path; any other token sees its 4x4 patch."""
    nodes = [
        conv("patch", "x", "p", (4, 4), strides=[4, 4]),
        helper.make_node("Reshape", ["p", "flat"], ["t"], name="tokens"),
        helper.make_node("Transpose", ["t"], ["tt"], perm=[0, 2, 1]),
        helper.make_node("Concat", ["cls", "tt"], ["seq"], name="cat", axis=1),
        helper.make_node("Gather", ["seq", "i"], ["y"], name="pick", axis=1),
    ]
    consts = {"flat": [1, 2, 4], "cls": np.zeros((1, 1, 2), np.float32), "i": np.asarray(index)}
    result = rfw.analyze(make_model(nodes, [1, 2, 8, 8], weights("patch", (4, 4)), consts), 8)
    assert result.layer("pick").status == status
    if r is not None:
        assert result.layer("pick").r_max == r


@pytest.mark.parametrize("pad_mode", ["constant", "edge"])
def test_pad_slice_and_channel_split(pad_mode: str) -> None:
    """Edge padding repeats the border pixel, which every box clipped to the image contains. (Reflect
    padding is imported the same way, but a border unit then reads mirrored pixels just inside the
    image that its clipped box may not reach: docs/onnx.md says so.)"""
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"], name="pad", mode=pad_mode),
        conv("c", "p", "h", (3, 3)),
        helper.make_node("Slice", ["h", "starts", "ends", "axes", "steps"], ["s"], name="crop"),
        helper.make_node("Split", ["s"], ["a", "b"], name="split", axis=1, num_outputs=2),
        helper.make_node("Mul", ["a", "b"], ["y"], name="gate"),
    ]
    consts = {
        "pads": [0, 0, 1, 2, 0, 0, 1, 0],
        "starts": [1, 0],
        "ends": [BIG, -1],
        "axes": [2, 3],
        "steps": [2, 1],
    }
    model = make_model(nodes, [1, 2, 9, 9], weights("c", (3, 3)), consts, opset=18)
    result = check_against_brute_force(model, (1, 2, 9, 9))
    assert result.layer("pad").padding == ((1, 1), (2, 0))
    assert result.layer("gate").inputs == ("crop",)


def test_spatial_slices_that_depend_on_the_size_are_unknown() -> None:
    nodes = [
        conv("c", "x", "h", (3, 3)),
        helper.make_node("Slice", ["h", "starts", "ends", "axes"], ["y"], name="crop"),
    ]
    model = make_model(nodes, [1, 2, 9, 9], weights("c", (3, 3)), {"starts": [0], "ends": [4], "axes": [2]})
    with pytest.warns(UnknownOperationWarning, match="crop"):
        result = rfw.analyze(model, 9)
    assert result.layer("crop").status == "unknown"
    assert "depends on the size" in next(d.message for d in result.diagnostics if d.layer == "crop")


# -- resampling --------------------------------------------------------------------------------------------

RESIZE_CASES = [
    ("nearest", "asymmetric", "floor", [1, 1, 2, 2], None),
    ("nearest", "half_pixel", "round_prefer_ceil", [1, 1, 1.5, 2], None),
    ("nearest", "pytorch_half_pixel", "round_prefer_ceil", [1, 1, 2, 3], None),
    ("linear", "pytorch_half_pixel", "floor", [1, 1, 2, 2], None),
    ("linear", "half_pixel", "floor", [1, 1, 3, 2], None),
    ("linear", "align_corners", "floor", None, [1, 1, 9, 7]),
    ("cubic", "pytorch_half_pixel", "floor", [1, 1, 2, 2], None),
    ("cubic", "align_corners", "floor", None, [1, 1, 11, 5]),
    ("nearest", "asymmetric", "floor", None, [1, 1, 10, 8]),
]


@pytest.mark.parametrize(("mode", "transform", "nearest", "scales", "sizes"), RESIZE_CASES)
def test_resize_against_brute_force(mode: str, transform: str, nearest: str, scales: Any, sizes: Any) -> None:
    inputs = ["h", "", "scales", ""] if scales is not None else ["h", "", "", "sizes"]
    nodes = [
        conv("c", "x", "h", (3, 3), cin=1, cout=1),
        helper.make_node(
            "Resize", inputs[: 3 if sizes is None else 4], ["y"], name="up", mode=mode,
            coordinate_transformation_mode=transform, nearest_mode=nearest,
        ),
    ]  # fmt: skip
    consts: dict[str, Any] = {}
    if scales is not None:
        consts["scales"] = np.asarray(scales, dtype=np.float32)
    else:
        consts["sizes"] = np.asarray(sizes, dtype=np.int64)
    model = make_model(nodes, [1, 1, 6, 5], weights("c", (3, 3), 1, 1), consts)
    result = check_against_brute_force(model, (1, 1, 6, 5))
    assert result.stack["up"].kind == "resample"


@pytest.mark.parametrize(
    ("mode", "transform", "nearest"),
    [("linear", "asymmetric", "floor"), ("nearest", "half_pixel", "round_prefer_floor"),
     ("nearest", "align_corners", "floor"), ("linear", "tf_crop_and_resize", "floor")],
)  # fmt: skip
def test_resize_modes_without_an_exact_rule_are_unknown(mode: str, transform: str, nearest: str) -> None:
    nodes = [
        conv("c", "x", "h", (3, 3)),
        helper.make_node("Resize", ["h", "", "scales"], ["y"], name="up", mode=mode,
                         coordinate_transformation_mode=transform, nearest_mode=nearest),
    ]  # fmt: skip
    model = make_model(
        nodes, [1, 2, 6, 6], weights("c", (3, 3)), {"scales": np.asarray([1, 1, 2, 2], np.float32)}
    )
    with pytest.warns(UnknownOperationWarning):
        result = rfw.analyze(model, 6)
    assert result.layer("up").status == "unknown"
    note = result.stack["up"].note or ""
    assert transform in note or mode in note


@pytest.mark.parametrize(("op", "opset"), [("Upsample", 9), ("Resize", 10)])
def test_old_upsampling_operators_are_nearest_by_floor(op: str, opset: int) -> None:
    """Upsample-9 and Resize-10 read input floor(v / scale): by hand, scale 2.5 on 4 units gives 10
    outputs reading 0 0 0 1 1 2 2 2 3 3, so unit 3 sees conv unit 1 only."""
    nodes = [
        conv("c", "x", "h", (1, 3), pads=[0, 1, 0, 1]),
        helper.make_node(op, ["h", "s"], ["y"], name="up", mode="nearest"),
    ]
    scales = {"s": np.asarray([1, 1, 1, 2.5], np.float32)}
    model = make_model(nodes, [1, 2, 3, 4], weights("c", (1, 3)), scales, opset=opset)
    result = rfw.analyze(model, (3, 4))
    assert result.layer("up").feature_map == (3, 10)
    boxes = [result.unit_box("up", (0, v)) for v in range(10)]
    assert [(b.start[1] + 1) for b in boxes] == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]


def test_resize_to_the_size_of_another_tensor() -> None:
    """An FPN-style upsampling to a skip connection's size, read through Shape/Slice/Concat."""
    nodes = [
        conv("c1", "x", "a", (3, 3), strides=[2, 2], pads=[1, 1, 1, 1]),
        conv("c2", "a", "b", (3, 3), strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Shape", ["a"], ["sa"], start=2),
        helper.make_node("Concat", ["nc", "sa"], ["sizes"], axis=0),
        helper.make_node("Resize", ["b", "", "", "sizes"], ["u"], name="up", mode="nearest",
                         coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        helper.make_node("Add", ["u", "a"], ["y"], name="merge"),
    ]  # fmt: skip
    model = make_model(
        nodes, [1, 2, "h", "w"], {**weights("c1", (3, 3)), **weights("c2", (3, 3))}, {"nc": [1, 2]}
    )
    for size in (13, 16):
        result = check_against_brute_force(model, (1, 2, size, size))
        assert result.layer("up").feature_map == result.layer("c1").feature_map


def test_depth_to_space_space_to_depth_and_conv_transpose() -> None:
    nodes = [
        helper.make_node("SpaceToDepth", ["x"], ["s"], name="s2d", blocksize=2),
        conv("c", "s", "h", (3, 3), cin=4, cout=8, pads=[1, 1, 1, 1]),
        helper.make_node("DepthToSpace", ["h"], ["d"], name="d2s", blocksize=2, mode="CRD"),
        helper.make_node("ConvTranspose", ["d", "t.w"], ["y"], name="up", kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1], output_padding=[1, 1]),
    ]  # fmt: skip
    model = make_model(nodes, [1, 1, 8, 6], {**weights("c", (3, 3), 4, 8), "t.w": (2, 1, 3, 3)})
    result = check_against_brute_force(model, (1, 1, 8, 6))
    assert result.layer("d2s").feature_map == (8, 6)
    assert result.layer("up").feature_map == (16, 12)


# -- unknown operators, user rules, rule bugs --------------------------------------------------------------


def blur_model() -> Any:
    nodes = [
        conv("c", "x", "h", (3, 3)),
        helper.make_node("Blur", ["h"], ["b"], name="blur", domain="my.ops"),
        conv("c2", "b", "y", (3, 3)),
    ]
    model = make_model(nodes, [1, 2, 16, 16], {**weights("c", (3, 3)), **weights("c2", (3, 3))})
    model.opset_import.append(helper.make_opsetid("my.ops", 1))
    return model


def test_an_unknown_operator_is_analysed_and_named() -> None:
    with pytest.warns(UnknownOperationWarning, match=r"'blur' \(my\.ops\.Blur\)"):
        result = rfw.analyze(blur_model(), 16)
    assert result.layer("blur").status == "unknown"
    assert result.layer("c2").r_max == (5, 5)  # a lower bound, said in the diagnostic
    message = next(d.message for d in result.diagnostics if d.kind == "unknown-op")
    assert "my.ops.Blur" in message
    assert "lower bounds" in message


def test_a_user_rule_for_an_onnx_operator() -> None:
    table = rfw.RuleTable()
    table.operator("onnx", "my.ops.Blur", lambda call: call.window(5, padding=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = rfw.analyze(blur_model(), 16, rules=table)
        assert result.layer("c2").r_max == (9, 9)
        with table:  # an active table works too
            assert rfw.analyze(blur_model(), 16).layer("c2").r_max == (9, 9)


def test_a_user_rule_overrides_a_builtin_one() -> None:
    table = rfw.RuleTable()
    table.operator("onnx", "Relu", lambda call: call.window(3, padding=1))
    nodes = [conv("c", "x", "h", (3, 3)), helper.make_node("Relu", ["h"], ["y"], name="r")]
    model = make_model(nodes, [1, 2, 16, 16], weights("c", (3, 3)))
    assert rfw.analyze(model, 16, rules=table).layer("r").r_max == (5, 5)
    assert rfw.analyze(model, 16).layer("r").r_max == (3, 3)


def test_a_failing_rule_names_the_node() -> None:
    table = rfw.RuleTable()
    table.operator("onnx", "my.ops.Blur", lambda call: 1 / 0)
    with pytest.raises(ModelImportError, match=r"ONNX my\.ops\.Blur failed at node 'blur'"):
        rfw.analyze(blur_model(), 16, rules=table)


def test_unnamed_nodes_get_op_type_and_index() -> None:
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["h"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Relu", ["r"], ["y"], name="Relu_1"),
    ]
    model = make_model(nodes, [1, 2, 8, 8], {"w": (2, 2, 3, 3)})
    assert rfw.analyze(model, 8).stack.names == ("Conv_0", "Relu_1", "Relu_1:2")


# -- bad input ---------------------------------------------------------------------------------------------


def test_a_corrupt_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07this is not a protobuf \xff\xfe" * 10)
    with pytest.raises(ModelImportError, match=r"'.*broken\.onnx' is not a readable ONNX model"):
        rfw.analyze(str(path), 32)
    with pytest.raises(ModelImportError, match=r"no ONNX file at '.*missing\.onnx'"):
        rfw.analyze(str(tmp_path / "missing.onnx"), 32)


def test_two_image_inputs_are_refused() -> None:
    second = helper.make_tensor_value_info("x2", TensorProto.FLOAT, [1, 2, 8, 8])
    nodes = [helper.make_node("Add", ["x", "x2"], ["h"]), conv("c", "h", "y", (3, 3))]
    model = make_model(nodes, [1, 2, 8, 8], weights("c", (3, 3)), extra_inputs=[second])
    with pytest.raises(ModelImportError, match=r"2 image inputs \('x' \[1, 2, 8, 8\] and 'x2'"):
        rfw.analyze(model, 8)


def test_no_spatial_input_is_refused() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    with pytest.raises(ModelImportError, match=r"no image input .* 'x' \[1, 16\]"):
        rfw.analyze(helper.make_model(graph), 8)


# -- entry points and what stays light ----------------------------------------------------------------------


def small_model() -> Any:
    nodes = [
        conv("c1", "x", "h", (3, 3), strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        conv("c2", "r", "y", (3, 3), pads=[1, 1, 1, 1]),
    ]
    return make_model(nodes, [1, 2, "h", "w"], {**weights("c1", (3, 3)), **weights("c2", (3, 3))})


def test_analyze_a_path_a_proto_and_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "small.onnx"
    onnx.save(small_model(), str(path))
    from_path = rfw.analyze(str(path), 16)
    assert from_path.model == "small.onnx"
    assert from_path.layer("c2").r_max == (7, 7)
    assert rfw.analyze(path, 16).layer("c2").r_max == (7, 7)  # a pathlib.Path
    assert rfw.analyze(small_model(), 16).layer("c2").feature_map == (8, 8)
    assert from_path.layer("c1").params == 2 * 2 * 9
    done = subprocess.run(
        [sys.executable, "-m", "rf_widgets", str(path), "--resolution", "64", "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [layer["name"] for layer in data["layers"]] == ["c1", "relu", "c2"]
    assert data["layers"][2]["feature_map"] == [32, 32]


def test_import_rf_widgets_stays_light_and_the_onnx_import_needs_no_torch(tmp_path: Path) -> None:
    path = tmp_path / "small.onnx"
    onnx.save(small_model(), str(path))
    code = (
        "import sys, rf_widgets as rfw\n"
        "assert 'onnx' not in sys.modules\n"
        f"r = rfw.analyze({str(path)!r}, 32)\n"
        "assert 'onnx' in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)\n"
        "print(r.layer('c2').r_max)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(7, 7)"


def test_without_the_onnx_package_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "small.onnx"
    onnx.save(small_model(), str(path))
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(ModelImportError, match=r"needs the onnx package: pip install 'rf_widgets\[onnx\]'"):
        rfw.analyze(str(path), 32)
