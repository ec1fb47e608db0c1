"""Rules for timm's attention and token layers (issue 22) against independent oracles.

Oracle: the gradient support of the real module in float64 with positive weights (the helpers of
``tests/test_dense_models.py``): every output unit whose box lies inside the image must match
``unit_box(path="hull")`` exactly, units at the border must lie inside the clipped box. Multiply-adds
are compared with torch's FLOP counter (``rf_widgets.zoo.count_macs``) where the layer is matmuls.
"""

from __future__ import annotations

import itertools
import math
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


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny tensors: a second intra-op thread only waits for a busy core (200 ms a forward under load)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


# -- tokens turned back into a grid, class tokens cut off and put back -------------------------------------


class TokensBack(nn.Module):
    """A 3x3 conv, a Linear over the tokens of its map, the tokens reshaped to the map, another 3x3 conv
    (MetaFormer's downsampling after attention stages, CoaT's and PiT's convolutions between tokens)."""

    def __init__(self, split=None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.mix = nn.Linear(4, 4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.split = split

    def forward(self, x):
        y = self.conv1(x)
        b, c, h, w = y.shape
        tokens = self.mix(y.flatten(2).transpose(1, 2))
        grid = (h, w) if self.split is None else (h // 2, w * 2)
        return self.conv2(tokens.transpose(1, 2).reshape(b, c, *grid))


class ClassTokenAround(nn.Module):
    """Tokens with a class token in front; the class token cut off, the map's tokens through a 3x3 conv on
    their grid (CoaT's convolutional position encoding), the class token put back, a scaling of the map's
    tokens only (as RoPE), and the grid again: a 3x3 conv."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(2, 4, 2, stride=2)
        self.cls = nn.Parameter(torch.zeros(1, 1, 4))
        self.cpe = nn.Conv2d(4, 4, 3, padding=1)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        y = self.patch(x)
        b, c, h, w = y.shape
        t = torch.cat((self.cls.expand(b, -1, -1), y.flatten(2).transpose(1, 2)), dim=1)
        cls, img = t[:, :1], t[:, 1:]
        img = self.cpe(img.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
        t = torch.cat((cls, img), dim=1)
        t = torch.cat((t[:, :1], t[:, 1:] * 2.0), dim=1)
        t = nn.functional.pad(t[:, 1:], (0, 0, 1, 0))  # a zero token in front, as CoaT's factor attention
        return self.conv(t[:, 1:].transpose(1, 2).reshape(b, c, h, w))


def test_tokens_reshaped_to_their_map_are_the_map_again():
    # before: the second conv saw "partitioned positions" and was unknown (86 timm models, caformer first)
    model = TokensBack()
    result = _quiet(model, 12)
    assert result.layer("conv2").r_max == (5, 5)
    assert _every_unit(model, result, "conv2", 12) > 0


def test_tokens_reshaped_to_another_grid_stay_unknown():
    with pytest.warns(UnknownOperationWarning, match="'conv2'"):
        result = rfw.analyze(TokensBack(split=True), 12)
    assert result.layer("conv2").status == "unknown"


def test_class_tokens_cut_off_and_put_back():
    model = ClassTokenAround()
    result = _quiet(model, 16)
    # 2x2 patches (2), the 3x3 cpe at jump 2 (+ 4), the 3x3 conv (+ 4)
    assert result.layer("conv").r_max == (10, 10)
    assert result.layer("cpe").r_max == (6, 6)
    assert _every_unit(model, result, "conv", 16) > 0


def test_lambda_layer_position_lambda_is_its_window_and_the_content_global():
    from timm.layers.lambda_layer import LambdaLayer

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 8, 1), LambdaLayer(8, 8, num_heads=2, dim_head=4, r=5)).eval()
    result = _quiet(model, 12)
    assert result.layer("1.conv_lambda").r_max == (5, 5)
    last = result.layers[-1]  # the content lambda reaches everything, the position lambda its window
    assert last.r_max == (math.inf, math.inf)
    assert last.r_max_local == (5, 5)
    twin = _oracle_copy(model)
    seen = {}
    twin[1].conv_lambda.register_forward_hook(lambda m, a, out: seen.__setitem__("pos", out))
    # brute force (torch's gradient through timm's strided reshape was not trustworthy here): perturb
    # each pixel and see which units of the position lambda (N, dim_head, H, W, dim_v) change
    x = torch.rand(1, 2, 12, 12, dtype=torch.float64)
    with torch.no_grad():
        twin(x)
        base = seen["pos"].abs().sum(dim=(0, 1, 4))
        reach = torch.zeros(12, 12, 12, 12, dtype=torch.bool)  # unit (h, w) x pixel (i, j)
        for i, j in itertools.product(range(12), range(12)):
            moved = x.clone()
            moved[0, :, i, j] += 1.0
            out = twin(moved)
            assert out.shape == (1, 8, 12, 12)
            reach[:, :, i, j] = (seen["pos"].abs().sum(dim=(0, 1, 4)) - base).abs() > 0
    for unit in [(0, 0), (5, 6), (11, 3), (2, 9)]:
        rows, cols = torch.nonzero(reach[unit]).unbind(1)
        box = result.unit_box("1.conv_lambda", unit, path="hull")
        assert (int(rows.min()), int(rows.max())) == (max(box.start[0], 0), min(box.stop[0], 11))
        assert (int(cols.min()), int(cols.max())) == (max(box.start[1], 0), min(box.stop[1], 11))


# -- per-position and whole-map operations: GRN, normalize, square ------------------------------------------


class Normalize(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x):
        if self.dim == 1:
            return torch.square(nn.functional.normalize(x, dim=1))
        b, c, h, w = x.shape  # over the tokens of the map (XCA), then back to the map
        tokens = nn.functional.normalize(x.flatten(2), dim=-1)
        return tokens.reshape(b, c, h, w)


@pytest.mark.parametrize(("dim", "local"), [(1, True), (-1, False)])
def test_normalize_along_channels_is_pointwise_and_along_tokens_global(dim, local):
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), Normalize(dim), nn.Conv2d(4, 2, 3, padding=1))
    result = _quiet(model, 10)
    twin = _oracle_copy(model)
    x = torch.rand(1, 2, 10, 10, dtype=torch.float64, requires_grad=True)
    out = twin(x)
    if local:
        assert result.layer("2").r_max == (5, 5)
        assert _every_unit(model, result, "2", 10) > 0
    else:
        assert result.layer("2").status == "global"
        assert _support(out, x, (5, 5)) == [(0, 9), (0, 9)]


def test_global_response_norm_reaches_the_whole_map():
    from timm.layers.grn import GlobalResponseNorm

    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), GlobalResponseNorm(4, channels_last=False))
    result = _quiet(model, 10)
    last = result.layers[-1]  # x + addcmul(bias, weight, x * (norm over the map))
    assert last.op == "add"
    assert last.r_max == (math.inf, math.inf)
    assert last.r_max_local == (3, 3)
    twin = _oracle_copy(model)
    x = torch.rand(1, 2, 10, 10, dtype=torch.float64, requires_grad=True)
    assert _support(twin(x), x, (4, 4)) == [(0, 9), (0, 9)]


@pytest.mark.parametrize("pool_type", ["token", ""])
def test_attention_pool_is_global(pool_type):
    from timm.layers.attention_pool2d import AttentionPool2d

    torch.manual_seed(0)
    pool = AttentionPool2d(4, feat_size=6, out_features=3, head_dim=4, pool_type=pool_type)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), pool).eval()
    result = _quiet(model, 6)
    assert result.layer("1").status == "global"
    twin = _oracle_copy(model)
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    out = twin(x)
    if pool_type == "token":
        (grad,) = torch.autograd.grad(out[0].sum(), x)
        assert bool((grad.abs().sum(dim=(0, 1)) > 0).all())
    else:
        assert result.layer("1").feature_map == (6, 6)
        assert _support(out, x, (0, 0)) == [(0, 5), (0, 5)]


def test_eca_conv_over_channels_stays_pointwise():
    # a Conv1d over the channels of a pooled map (ECA): no spatial axis, pointwise as before the lambda rule
    from timm.layers import EcaModule

    model = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), EcaModule(8, kernel_size=3))
    result = _quiet(model, 8)
    last = result.layers[-1]
    assert last.r_max_local == (3, 3)
    assert last.r_max == (math.inf, math.inf)


class SplitSizes(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 6, 3, padding=1)
        self.dim = dim

    def forward(self, x):
        a, b = torch.split_with_sizes(self.conv(x), [2, 4] if self.dim == 1 else [3, 5], dim=self.dim)
        return a.sum(dim=self.dim, keepdim=True) + b.sum(dim=self.dim, keepdim=True)


def test_split_with_sizes_along_channels_is_a_split_and_along_an_axis_unknown():
    # TinyViT splits q, k, v with torch.split_with_sizes (before: no rule)
    assert _quiet(SplitSizes(1), 8).layers[-1].r_max == (3, 3)
    with pytest.warns(UnknownOperationWarning, match="split_with_sizes"):
        result = rfw.analyze(SplitSizes(2), 8)
    assert result.layers[1].status == "unknown"
