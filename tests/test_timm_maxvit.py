"""timm's MaxViT block and grid attention, and the "tf_" layers that pad as TensorFlow's SAME.

Oracle: the gradient support of the real modules in float64 with positive weights (the helpers of
``tests/test_dense_models.py`` and ``tests/test_resample_oracle.py``). A tiny MaxViT (two stages of one
block, MBConv without squeeze-excitation, whose global mean would reach everything, partitions of 4)
is checked at 64 px (maps 16 and 8: block attention local) and at 32 px (maps 8 and 4: the second
stage's window covers its map). Grid attention reads, from each of the g x g cells, the unit at its own
place: its hull misses up to n / g - 1 units of the map, and the analyzer counts it as global (as for
torchvision's MaxViT); in these models every grid unit's gradient does reach the whole image.
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

import torch.nn as nn  # noqa: E402
from test_dense_models import _compare, _oracle_copy, _support  # noqa: E402
from test_resample_oracle import _check  # noqa: E402
from timm.layers import AvgPool2dSame, Conv2dSame  # noqa: E402
from timm.models.maxxvit import MaxxVit, MaxxVitCfg, MaxxVitConvCfg, MaxxVitTransformerCfg  # noqa: E402

import rf_widgets as rfw  # noqa: E402
from rf_widgets.errors import ResolutionError, UnknownOperationWarning  # noqa: E402


def _quiet(model, size):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownOperationWarning)
        return rfw.analyze(model, size)


def _tiny():
    torch.manual_seed(0)
    cfg = MaxxVitCfg(
        embed_dim=(8, 16),
        depths=(1, 1),
        block_type=("M", "M"),
        stem_width=8,
        conv_cfg=MaxxVitConvCfg(attn_layer=None),
        transformer_cfg=MaxxVitTransformerCfg(dim_head=8, partition_ratio=16),
    )
    return MaxxVit(cfg, img_size=64, num_classes=3)  # partitions of 64 / 16 = 4


@pytest.mark.parametrize("n", [13, 16, 17])
def test_same_padding_layers_every_unit(n):
    # TensorFlow's SAME: the odd padded unit goes at the high end, the total depends on the map
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1),
        Conv2dSame(3, 3, 3, stride=2),
        AvgPool2dSame(3, stride=2),
        Conv2dSame(3, 2, 4, stride=3),
    )
    assert _check(model, (n, n + 1), units_per_layer=40) > 0


@pytest.mark.parametrize(("size", "last_block_global"), [(64, False), (32, True)])
def test_tiny_maxvit_against_the_gradient(size, last_block_global):
    model = _tiny()
    result = _quiet(model, size)
    assert result.layer("stages.0.blocks.0.attn_grid.attn").status == "global"
    last = result.layer("stages.1.blocks.0.attn_block.attn")
    assert last.feature_map == (size // 8, size // 8)
    assert (last.status == "global") == last_block_global  # 4x4 windows on an 8x8 or a 4x4 map
    twin = _oracle_copy(model)
    block = twin.stages[0].blocks[0]
    outputs = {}
    block.attn_block.register_forward_hook(lambda m, a, out: outputs.__setitem__("block", out))
    block.attn_grid.register_forward_hook(lambda m, a, out: outputs.__setitem__("grid", out))
    x = torch.rand(1, 3, size, size, dtype=torch.float64, requires_grad=True)
    twin(x)
    out = outputs["block"]  # (N, H, W, C): the first block attention with its residual
    layer = result.layer("stages.0.blocks.0.attn_block")
    assert layer.feature_map == tuple(out.shape[1:3])
    n = out.shape[1]
    exact = widest = 0
    for unit in [(0, 0), (3, 4), (4, 3), (n // 2, n // 2 - 1), (n - 1, n - 1), (n - 4, 0), (7, n - 5)]:
        support = _support(out, x, unit, channels_last=True)
        exact += _compare(result, layer.name, unit, support, (size, size))
        box = result.unit_box(layer.name, unit, path="hull")
        if all(a >= 0 and b < size for a, b in zip(box.start, box.stop, strict=True)):
            widest = max(widest, *(hi - lo + 1 for lo, hi in support))
    assert exact >= 10
    if size == 64:  # at 32 px every checked unit's box crosses a border of the image
        assert widest == layer.r_max[0] == 23  # 7-px stem + MBConv field, then 4 units at jump 4
    # grid attention: every unit reaches the whole image here (the analyzer counts it as global)
    grid = outputs["grid"]
    for unit in [(0, 0), (n - 1, n - 1), (n // 2, 1)]:
        assert _support(grid, x, unit, channels_last=True) == [(0, size - 1), (0, size - 1)]


def test_partition_must_divide_the_map():
    result = _quiet(_tiny(), 64)
    with pytest.raises(
        ResolutionError, match=r"gets a 14x14 map: timm's PartitionAttentionCl cuts the map into 4x4"
    ):
        result.at(56)
    with pytest.raises(AssertionError, match="divisible"):  # timm's own assertion
        _tiny()(torch.rand(1, 3, 56, 56))


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("maxvit_tiny_tf_224", 224),
        ("maxvit_rmlp_nano_rw_256", 256),
        pytest.param("maxxvit_rmlp_nano_rw_256", 256, marks=pytest.mark.slow),
        pytest.param("maxxvitv2_nano_rw_256", 256, marks=pytest.mark.slow),
    ],
)
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_real_models_have_no_unknown_layer(name, size, train):
    model = timm.create_model(name, pretrained=False).train(train)
    result = _quiet(model, size)
    assert not [layer.name for layer in result.layers if layer.status == "unknown"]
    # (maxxvitv2 has grid attention only)
    attention = [layer for layer in result.layers if layer.op in ("block_attention", "grid_attention")]
    assert attention[0].feature_map == (size // 4, size // 4)
    assert result.layers[-1].status == "global"
    assert model.training == train
