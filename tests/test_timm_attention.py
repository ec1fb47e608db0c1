"""Rules for timm's attention and token layers (issue 22) against independent oracles.

Oracle: the gradient support of the real module in float64 with positive weights (the helpers of
``tests/test_dense_models.py``): every output unit whose box lies inside the image must match
``unit_box(path="hull")`` exactly, units at the border must lie inside the clipped box. Multiply-adds
are compared with torch's FLOP counter (``rf_widgets.zoo.count_macs``) where the layer is matmuls.
"""

from __future__ import annotations

import itertools
import warnings

import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

import torch.nn as nn  # noqa: E402
from test_dense_models import _oracle_copy, _support  # noqa: E402
from timm.layers.halo_attn import HaloAttn  # noqa: E402

import rf_widgets as rfw  # noqa: E402
from rf_widgets.errors import ResolutionError, UnknownOperationWarning  # noqa: E402
from rf_widgets.zoo import count_macs  # noqa: E402


def _quiet(model, size):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownOperationWarning)
        return rfw.analyze(model, size)


def _every_unit(model: nn.Module, result, layer: str, size: int, channels: int = 2) -> int:
    """Check every unit of ``model``'s output against the gradient; the number of exact box sides."""
    twin = _oracle_copy(model)
    x = torch.rand(1, channels, size, size, dtype=torch.float64, requires_grad=True)
    out = twin(x)
    assert tuple(out.shape[2:]) == result.layer(layer).feature_map
    exact = 0
    for unit in itertools.product(*(range(n) for n in out.shape[2:])):
        support = _support(out, x, unit)
        box = result.unit_box(layer, unit, path="hull")
        inside = all(a >= 0 and b <= size - 1 for a, b in zip(box.start, box.stop, strict=True))
        for (lo, hi), a, b in zip(support, box.start, box.stop, strict=True):
            if inside:
                assert (lo, hi) == (a, b), (unit, support, box)
                exact += 1
            else:
                assert max(a, 0) <= lo, (unit, support, box)
                assert hi <= min(b, size - 1), (unit, support, box)
    return exact


# -- HaloNet's blocked attention --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "size", "r_max"),
    [
        # blocks of 4 grown by 1: a 3x3 conv (3) + the 3 units around a block of 4 (+ 2 + 3) = 8
        ({"block_size": 4, "halo_size": 1}, 12, 8),
        # strided queries (block_stride 2): the query at 2u, its block of 4 grown by 2
        ({"block_size": 4, "halo_size": 2, "stride": 2}, 16, 10),
        # block 3 with stride 2: attention at full resolution, then a 2x2 average pool
        ({"block_size": 3, "halo_size": 1, "stride": 2}, 12, 10),
    ],
)
def test_halo_attention_every_unit(options, size, r_max):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), HaloAttn(8, 8, num_heads=2, **options)).eval()
    result = _quiet(model, size)
    assert result.layers[-1].name == "1"
    assert result.layer("1").r_max == (r_max, r_max)
    assert _every_unit(model, result, "1", size) > 0
    # per query: the projections, q.k and the values over the (b + 2h)^2 keys, relative logits
    assert sum(layer.macs for layer in result.layers) == count_macs(model, (size, size), device="cpu")


def test_halo_attention_on_one_block_is_global_and_blocks_must_divide_the_map():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 8, 3, padding=1), HaloAttn(8, 8, num_heads=2, block_size=4, halo_size=1)
    )
    result = _quiet(model, 4)
    assert result.layer("1").status == "global"
    out = _oracle_copy(model)(x := torch.rand(1, 2, 4, 4, dtype=torch.float64, requires_grad=True))
    assert _support(out, x, (0, 0)) == [(0, 3), (0, 3)]
    with pytest.raises(ResolutionError, match=r"HaloAttn cuts the map into 4x4 blocks"):
        result.at(18)


@pytest.mark.parametrize(("name", "first_map"), [("halonet26t", 16), ("sehalonet33ts", 32)])
def test_halonets_have_no_unknown_layer(name, first_map):
    # before the rule: "the rule for reshape failed at fx node 'reshape_2'" (a ModelImportError)
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    result = _quiet(model, 256)
    halo = [layer for layer in result.layers if layer.op == "halo_attention"]
    assert halo[0].feature_map == (first_map, first_map)
    assert result.layers[-1].status == "global"
