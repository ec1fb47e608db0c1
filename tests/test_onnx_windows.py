"""Window partitions, cyclic shifts and attention heads written out as ONNX operators.

The graphs are written by hand the way torch's exporter writes torchvision's Swin, MaxViT and ViT
(Reshape -> Transpose -> Reshape into windows, a roll as two Slices and a Concat with bounds computed
from the map size, a pad to whole windows by computed amounts) and checked against ONNX's reference
evaluator, pixel by pixel (tests/test_onnx_graphs.py: the output units a pixel changes are the units
that read it). The attention is a softmax over the window's tokens with every weight positive, so each
token reads exactly the pixels of its window.
"""

from __future__ import annotations

import itertools
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_onnx_graphs import brute_support, check_against_brute_force, make_model  # noqa: E402

import rf_widgets as rfw  # noqa: E402
from rf_widgets.errors import UnknownOperationWarning  # noqa: E402


def _int(name: str, value: Any) -> Any:
    return helper.make_node(
        "Constant", [], [name], value=helper.make_tensor(name, onnx.TensorProto.INT64, [len(value)], value)
    )


def _roll(src: str, out: str, axis: int, amount: str, tag: str) -> list[Any]:
    """``torch.roll`` as the exporter writes it: ``k = amount mod n``, ``concat(x[k:], x[:k])``."""
    return [
        helper.make_node("Shape", [src], [f"{tag}_n"], start=axis, end=axis + 1),
        helper.make_node("Mod", [amount, f"{tag}_n"], [f"{tag}_k"]),
        helper.make_node("Slice", [src, "zero", f"{tag}_k", f"ax{axis}"], [f"{tag}_head"]),
        helper.make_node("Slice", [src, f"{tag}_k", f"{tag}_n", f"ax{axis}"], [f"{tag}_tail"]),
        helper.make_node("Concat", [f"{tag}_tail", f"{tag}_head"], [out], axis=axis),
    ]


def swin_like(n: int, w: int, shift: int) -> Any:
    """(1, 1, n, n) -> channels last -> pad to whole windows -> roll by -shift -> windows of w x w ->
    attention within windows (masked across the roll's seam) -> windows undone -> roll back -> crop."""
    padded = -(-n // w) * w
    count = (padded // w) ** 2
    L = w * w
    nodes = [
        _int("zero", [0]), _int("ax1", [1]), _int("ax2", [2]), _int("wv", [w]), _int("shift", [shift]),
        _int("unshift", [-shift]), _int("zeros4", [0, 0, 0, 0]), _int("zero1", [0]),
        helper.make_node("Transpose", ["x"], ["nhwc"], perm=[0, 2, 3, 1]),
        # pad at the end to whole windows: (w - n % w) % w, computed from the shape
        helper.make_node("Shape", ["nhwc"], ["hw"], start=1, end=3),
        helper.make_node("Mod", ["hw", "wv"], ["rem"]),
        helper.make_node("Sub", ["wv", "rem"], ["short"]),
        helper.make_node("Mod", ["short", "wv"], ["extra"]),
        helper.make_node("Concat", ["zeros4", "zero1", "extra", "zero1"], ["pads"], axis=0),
        helper.make_node("Pad", ["nhwc", "pads"], ["padded"]),
        *_roll("padded", "rolled_h", 1, "shift", "r1"),
        *_roll("rolled_h", "rolled", 2, "shift", "r2"),
        # (1, H, W, 1) -> (1, H/w, w, W/w, w, 1) -> (1, H/w, W/w, w, w, 1) -> (windows, w*w, 1)
        helper.make_node("Shape", ["rolled"], ["phw"], start=1, end=3),
        helper.make_node("Div", ["phw", "wv"], ["blocks"]),
        helper.make_node("Gather", ["blocks", "zero"], ["bh"]),
        helper.make_node("Gather", ["blocks", "one"], ["bw"]),
        helper.make_node("Concat", ["one", "bh", "wv", "bw", "wv", "one"], ["split_shape"], axis=0),
        helper.make_node("Reshape", ["rolled", "split_shape"], ["split"]),
        helper.make_node("Transpose", ["split"], ["grouped"], perm=[0, 1, 3, 2, 4, 5]),
        helper.make_node("Reshape", ["grouped", "tokens_shape"], ["tokens"]),
        # logits[i, j] = x_i x_j + mask[i, j]; softmax over j; out_i = sum_j p_ij x_j
        helper.make_node("Transpose", ["tokens"], ["keys"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["tokens", "keys"], ["products"]),
        helper.make_node("Add", ["products", "mask"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["weights"], axis=-1),
        helper.make_node("MatMul", ["weights", "tokens"], ["mixed"]),
        # and back
        helper.make_node("Concat", ["one", "bh", "bw", "wv", "wv", "one"], ["merge_shape"], axis=0),
        helper.make_node("Reshape", ["mixed", "merge_shape"], ["merged"]),
        helper.make_node("Transpose", ["merged"], ["ungrouped"], perm=[0, 1, 3, 2, 4, 5]),
        helper.make_node("Concat", ["one", "phw", "one"], ["map_shape"], axis=0),
        helper.make_node("Reshape", ["ungrouped", "map_shape"], ["windows_undone"]),
        *_roll("windows_undone", "back_h", 1, "unshift", "b1"),
        *_roll("back_h", "back", 2, "unshift", "b2"),
        helper.make_node("Shape", ["x"], ["h"], start=2, end=3),
        helper.make_node("Shape", ["x"], ["wd"], start=3, end=4),
        helper.make_node("Slice", ["back", "zero", "h", "ax1"], ["crop_h"]),
        helper.make_node("Slice", ["crop_h", "zero", "wd", "ax2"], ["crop"]),
        helper.make_node("Transpose", ["crop"], ["y"], perm=[0, 3, 1, 2]),
    ]  # fmt: skip
    # torchvision's mask: tokens from both sides of the roll's seam do not attend to each other
    region = np.zeros(padded, dtype=np.int64)
    if shift:
        region[padded - w : padded - shift] = 1
        region[padded - shift :] = 2
    labels = (region[:, None] * 3 + region[None, :]).reshape(padded // w, w, padded // w, w)
    labels = labels.transpose(0, 2, 1, 3).reshape(count, L)
    mask = np.where(labels[:, :, None] == labels[:, None, :], 0.0, -1e9).astype(np.float32)
    return make_model(
        nodes,
        [1, 1, n, n],
        constants={"one": np.array([1]), "tokens_shape": np.array([-1, L, 1]), "mask": mask},
    )


@pytest.mark.parametrize(("n", "w", "shift"), [(8, 4, 0), (10, 4, 0), (10, 4, 2), (9, 3, 1), (7, 4, 2)])
def test_shifted_windows_against_the_reference_evaluator(n: int, w: int, shift: int) -> None:
    model = swin_like(n, w, shift)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownOperationWarning)
        result = check_against_brute_force(model, (1, 1, n, n))
    windows = [layer for layer in result.stack.layers if layer.kind == "resample"]
    assert [layer.op for layer in windows] == ["Softmax", "MatMul"]
    for layer in windows:
        assert layer.resample is not None
        assert (layer.resample.window, layer.resample.shift) == ((w, w), (shift, shift))
    assert result.layer(windows[-1].name).feature_map == (n, n)


def test_one_window_covering_the_map_is_not_guessed() -> None:
    """At the reference size the partition into one window has block dimensions of size 1, which carry
    no positions: the tokens mix part of the map as far as the importer can tell. Unknown, not global."""
    with pytest.warns(UnknownOperationWarning, match="Softmax"):
        result = rfw.analyze(swin_like(8, 8, 0), 8)
    assert "unknown" in {layer.kind for layer in result.stack.layers}


def maxvit_like(n: int, p: int, grid: bool) -> Any:
    """(1, 1, n, n) -> (1, 1, n/p, p, n/p, p) -> (1, windows, p*p, 1): softmax over the positions within
    a window (block attention) or, after swapping the two, over the windows (grid attention)."""
    perm = [0, 2, 4, 3, 5, 1]
    nodes = [
        helper.make_node("Reshape", ["x", "split_shape"], ["split"]),
        helper.make_node("Transpose", ["split"], ["grouped"], perm=perm),
        helper.make_node("Reshape", ["grouped", "tokens_shape"], ["tokens"]),
    ]
    axis = 1 if grid else 2
    nodes += [
        helper.make_node("Softmax", ["tokens"], ["mixed"], axis=axis),
        helper.make_node("Reshape", ["mixed", "merge_shape"], ["merged"]),
        helper.make_node("Transpose", ["merged"], ["y"], perm=[0, 5, 1, 3, 2, 4]),
        helper.make_node("Reshape", ["y", "out_shape"], ["out"]),
    ]
    b = n // p
    return make_model(
        nodes,
        [1, 1, n, n],
        constants={
            "split_shape": np.array([1, 1, b, p, b, p]),
            "tokens_shape": np.array([1, b * b, p * p, 1]),
            "merge_shape": np.array([1, b, b, p, p, 1]),
            "out_shape": np.array([1, 1, n, n]),
        },
    )


def test_block_partition_against_the_reference_evaluator() -> None:
    result = check_against_brute_force(maxvit_like(8, 4, grid=False), (1, 1, 8, 8))
    (layer,) = [layer for layer in result.stack.layers if layer.kind == "resample"]
    assert layer.resample is not None
    assert layer.resample.window == (4, 4)


def test_grid_partition_is_global() -> None:
    result = rfw.analyze(maxvit_like(8, 4, grid=True), 8)
    (layer,) = result.stack.layers
    assert result.layer(layer.name).status == "global"


def _global_against_brute_force(model: Any, shape: tuple[int, ...]) -> Any:
    """The analysis says the last layer is global, and every output unit's value changes with every
    input pixel (impulses through ONNX's reference evaluator)."""
    spatial = shape[2:]
    result = rfw.analyze(model, tuple(spatial))
    assert result.layer(result.layers[-1].name).status == "global"
    reach = brute_support(model, shape)
    units = list(itertools.product(*(range(n) for n in spatial)))
    assert sorted(reach) == units
    assert all(reach[unit] == [[0, n - 1] for n in spatial] for unit in units), reach
    return result


def maxvit_last_stage(n: int, c: int) -> Any:
    """MaxViT's last stage as the exporter writes it for a map of one window (maxvit_t at 224): every
    shape a constant of the file, so block and grid partitions are splits ``(1, n)`` and ``(n, 1)``
    whose dimensions of size 1 carry no positions. Block attention over the one ``n x n`` window, the
    window undone and the grid partition with blocks of one position in a single Reshape, grid attention
    over the ``n * n`` windows, the grid undone, then a 3x3 convolution on the map."""
    nodes = [
        helper.make_node("Reshape", ["x", "block_split"], ["b_split"]),
        helper.make_node("Transpose", ["b_split"], ["b_grouped"], perm=[0, 2, 4, 3, 5, 1]),
        helper.make_node("Reshape", ["b_grouped", "block_tokens"], ["b_tokens"]),
        helper.make_node("Softmax", ["b_tokens"], ["b_mixed"], axis=2, name="block_attention"),
        helper.make_node("Reshape", ["b_mixed", "block_merge"], ["b_merged"]),
        helper.make_node("Transpose", ["b_merged"], ["b_back"], perm=[0, 5, 1, 3, 2, 4]),
        # the block departition's (1, C, n, n) and the grid partition's split, folded into one Reshape
        helper.make_node("Reshape", ["b_back", "grid_split"], ["g_split"]),
        helper.make_node("Transpose", ["g_split"], ["g_grouped"], perm=[0, 2, 4, 3, 5, 1]),
        helper.make_node("Reshape", ["g_grouped", "grid_tokens"], ["g_tokens"]),
        helper.make_node("Transpose", ["g_tokens"], ["g_swapped"], perm=[0, 2, 1, 3]),
        helper.make_node("Softmax", ["g_swapped"], ["g_mixed"], axis=2, name="grid_attention"),
        helper.make_node("Transpose", ["g_mixed"], ["g_unswapped"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["g_unswapped", "grid_merge"], ["g_merged"]),
        helper.make_node("Transpose", ["g_merged"], ["g_back"], perm=[0, 5, 1, 3, 2, 4]),
        helper.make_node("Reshape", ["g_back", "map_shape"], ["map"]),
        helper.make_node("Conv", ["map", "w"], ["y"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    ]
    return make_model(
        nodes,
        [1, c, n, n],
        weights={"w": (c, c, 3, 3)},
        constants={
            "block_split": np.array([1, c, 1, n, 1, n]),
            "block_tokens": np.array([1, 1, n * n, c]),
            "block_merge": np.array([1, 1, 1, n, n, c]),
            "grid_split": np.array([1, c, n, 1, n, 1]),
            "grid_tokens": np.array([1, n * n, 1, c]),
            "grid_merge": np.array([1, n, n, 1, 1, c]),
            "map_shape": np.array([1, c, n, n]),
        },
    )


@pytest.mark.parametrize("n", [3, 4])
def test_one_window_with_constant_shapes_against_the_reference_evaluator(n: int) -> None:
    """The constants pin the map to n x n, so one window of n and global are the same there: the
    attention layers are read as the torch import reads maxvit_t (windows of n, a grid reaching every
    window) and the convolution after them sees the map again, checked pixel by pixel."""
    model = maxvit_last_stage(n, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownOperationWarning)
        result = _global_against_brute_force(model, (1, 2, n, n))
    block, grid = result.stack["block_attention"], result.stack["grid_attention"]
    assert block.resample is not None
    assert grid.resample is not None
    assert block.resample.window == (n, n)
    assert grid.resample.window == (1 << 30, 1 << 30)
    assert result.layer("block_attention").status == result.layer("grid_attention").status == "global"
    assert result.stack["conv"].kind == "window"


def _computed_partition(src: str, p: str, tag: str, divide: bool = True) -> list[Any]:
    """The TorchScript exporter's partition: the target concatenates block counts computed from the
    map's shape (``H / p``) with the block size ``p``, a constant of the file. ``divide=False`` (blocks
    of one only): the shape entries themselves are the counts."""
    counts = [
        helper.make_node("Div", [f"{tag}_h", p], [f"{tag}_hb"]),
        helper.make_node("Div", [f"{tag}_w", p], [f"{tag}_wb"]),
    ]
    if not divide:
        counts = [
            helper.make_node("Identity", [f"{tag}_h"], [f"{tag}_hb"]),
            helper.make_node("Identity", [f"{tag}_w"], [f"{tag}_wb"]),
        ]
    return [
        helper.make_node("Shape", [src], [f"{tag}_shape"]),
        helper.make_node("Gather", [f"{tag}_shape", "i2"], [f"{tag}_h"]),
        helper.make_node("Gather", [f"{tag}_shape", "i3"], [f"{tag}_w"]),
        *counts,
        helper.make_node("Concat", ["one", "c", f"{tag}_hb", p, f"{tag}_wb", p], [f"{tag}_split"], axis=0),
        helper.make_node("Reshape", [src, f"{tag}_split"], [f"{tag}_blocks"]),
        helper.make_node("Transpose", [f"{tag}_blocks"], [f"{tag}_grouped"], perm=[0, 2, 4, 3, 5, 1]),
        helper.make_node("Concat", ["one", f"{tag}_hb", f"{tag}_wb", p, p, "c"], [f"{tag}_merge"], axis=0),
        helper.make_node("Concat", ["one", "c", f"{tag}_h", f"{tag}_w"], [f"{tag}_map"], axis=0),
    ]


@pytest.mark.parametrize("divide", [True, False])
def test_one_window_with_computed_block_counts_against_the_reference_evaluator(divide: bool) -> None:
    """Block attention over one window of 4 and grid attention over blocks of one on a 4 x 4 map, the
    targets as the TorchScript exporter writes them: the block counts (1 and 4) are computed from the
    shape, the block sizes (4 and 1) are constants, so the splits are blocks of 4 and blocks of one
    wherever the file runs (at 8 x 8 the same file makes four windows). Checked pixel by pixel."""
    n, c = 4, 2
    nodes = [
        *_computed_partition("x", "four", "b"),
        # tokens (1, blocks, p * p, C): here the number of blocks is hb * wb with hb = wb
        helper.make_node("Reshape", ["b_grouped", "b_tokens_target"], ["b_tokens"]),
        helper.make_node("Softmax", ["b_tokens"], ["b_mixed"], axis=2, name="block_attention"),
        helper.make_node("Reshape", ["b_mixed", "b_merge"], ["b_merged"]),
        helper.make_node("Transpose", ["b_merged"], ["b_back"], perm=[0, 5, 1, 3, 2, 4]),
        helper.make_node("Reshape", ["b_back", "b_map"], ["b_out"]),
        *_computed_partition("b_out", "one", "g", divide),
        helper.make_node("Reshape", ["g_grouped", "g_tokens_target"], ["g_tokens"]),
        helper.make_node("Transpose", ["g_tokens"], ["g_swapped"], perm=[0, 2, 1, 3]),
        helper.make_node("Softmax", ["g_swapped"], ["g_mixed"], axis=2, name="grid_attention"),
        helper.make_node("Transpose", ["g_mixed"], ["g_unswapped"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["g_unswapped", "g_merge"], ["g_merged"]),
        helper.make_node("Transpose", ["g_merged"], ["g_back"], perm=[0, 5, 1, 3, 2, 4]),
        helper.make_node("Reshape", ["g_back", "g_map"], ["map"]),
        helper.make_node("Conv", ["map", "w"], ["y"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    ]
    model = make_model(
        nodes,
        [1, c, n, n],
        weights={"w": (c, c, 3, 3)},
        constants={
            "i2": np.array([2]), "i3": np.array([3]), "one": np.array([1]), "four": np.array([4]),
            "c": np.array([c]),
            "b_tokens_target": np.array([1, -1, 16, c]), "g_tokens_target": np.array([1, -1, 1, c]),
        },
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownOperationWarning)
        result = _global_against_brute_force(model, (1, c, n, n))
    block, grid = result.stack["block_attention"], result.stack["grid_attention"]
    assert block.resample is not None
    assert grid.resample is not None
    assert block.resample.window == (n, n)
    assert grid.resample.window == (1 << 30, 1 << 30)
    assert result.stack["conv"].kind == "window"


def test_size_one_dimensions_on_both_sides_are_not_read_as_a_partition() -> None:
    """With one channel the grid split (1, 1, n, 1, n, 1) has a dimension of size 1 before and after
    each axis: one block of n or n blocks of one cannot be told apart, and the axes are merged as plain
    tokens (global over the n x n map the constants allow, still exact)."""
    n = 4
    nodes = [
        helper.make_node("Reshape", ["x", "grid_split"], ["g_split"]),
        helper.make_node("Transpose", ["g_split"], ["g_grouped"], perm=[0, 2, 4, 3, 5, 1]),
        helper.make_node("Reshape", ["g_grouped", "grid_tokens"], ["g_tokens"]),
        helper.make_node("Softmax", ["g_tokens"], ["mixed"], axis=1, name="attention"),
        helper.make_node("Reshape", ["mixed", "map_shape"], ["y"]),
    ]
    model = make_model(
        nodes,
        [1, 1, n, n],
        constants={
            "grid_split": np.array([1, 1, n, 1, n, 1]),
            "grid_tokens": np.array([1, n * n, 1, 1]),
            "map_shape": np.array([1, 1, n, n]),
        },
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownOperationWarning)
        result = _global_against_brute_force(model, (1, 1, n, n))
    assert result.stack["attention"].kind == "global"


def test_phases_of_a_padded_map_are_a_window_only_all_together() -> None:
    """Swin's patch merging: pad to even sizes by computed amounts, the four phases x[i::2, j::2]
    concatenated along channels: a 2x2 window with stride 2 (ceil mode), checked pixel by pixel. Two of
    the four phases are not that window: unknown, the node named."""

    def merging(phases: list[tuple[int, int]]) -> Any:
        nodes = [
            helper.make_node("Shape", ["x"], ["hw"], start=2, end=4),
            helper.make_node("Mod", ["hw", "two"], ["odd"]),
            helper.make_node("Concat", ["zeros2", "zeros2", "zeros2", "odd"], ["pads"], axis=0),
            helper.make_node("Pad", ["x", "pads"], ["padded"]),
        ]
        names = []
        for i, j in phases:
            nodes.append(helper.make_node("Slice", ["padded", f"s{i}", "big", "ax2", "two"], [f"r{i}{j}"]))
            nodes.append(helper.make_node("Slice", [f"r{i}{j}", f"s{j}", "big", "ax3", "two"], [f"p{i}{j}"]))
            names.append(f"p{i}{j}")
        nodes.append(helper.make_node("Concat", names, ["y"], axis=1, name="merge"))
        constants = {
            "two": np.array([2]), "zeros2": np.array([0, 0]), "s0": np.array([0]), "s1": np.array([1]),
            "big": np.array([1 << 40]), "ax2": np.array([2]), "ax3": np.array([3]),
        }  # fmt: skip
        return make_model(nodes, [1, 1, "h", "w"], constants=constants)

    for n in (6, 7):
        model = merging([(0, 0), (1, 0), (0, 1), (1, 1)])
        fixed = make_model(list(model.graph.node), [1, 1, n, n], constants=None)
        fixed.graph.initializer.extend(model.graph.initializer)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UnknownOperationWarning)
            result = check_against_brute_force(fixed, (1, 1, n, n))
        layer = result.stack["merge"]
        assert (layer.kernel, layer.stride, layer.ceil_mode) == ((2, 2), (2, 2), True)
    with pytest.warns(UnknownOperationWarning, match="merge"):
        result = rfw.analyze(merging([(0, 0), (1, 1)]), 9)
    assert result.stack["merge"].kind == "unknown"
    assert "not every phase" in (result.stack["merge"].note or "")
