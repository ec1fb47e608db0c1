"""timm's Swin V1, V2 and V2-Cr: block and patch-merging rules against the gradient support of the real
modules, the sizes timm refuses (or computes something else at) refused, and no unknown layer in the
real models.

The oracle is the one of ``tests/test_dense_models.py``: a float64 copy with positive weights scaled by
their fan-in, the input gradient of one output unit, support above 1e-30 of its largest value (the
shifted windows' mask adds -100 to the logits across seams: a weight of about 4e-44). Tiny models
(embed_dim 8, two blocks per stage, patch 2, window 4, shift 2) keep every check within seconds: at 32 px
the maps are 16, 8 and 4 (the last stage's window covers its map: global), at 64 px 32, 16 and 8 (all
local). Units: the window-boundary phases (0, s - 1, s, w - 1, w, w + s - 1, w + s), the middle and the
last two, each as row and as column, paired along both diagonals, on every block and patch merging.
"""

from __future__ import annotations

import math
import warnings

import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from test_dense_models import _compare, _oracle_copy, _support  # noqa: E402
from timm.models.swin_transformer import SwinTransformer  # noqa: E402
from timm.models.swin_transformer_v2 import SwinTransformerV2  # noqa: E402
from timm.models.swin_transformer_v2_cr import SwinTransformerV2Cr  # noqa: E402

import rf_widgets as rfw  # noqa: E402
from rf_widgets.errors import ResolutionError, UnknownOperationWarning  # noqa: E402

TINY = {"patch_size": 2, "window_size": 4, "embed_dim": 8, "depths": (2, 2, 2), "num_heads": (1, 1, 1)}
FAMILIES = [SwinTransformer, SwinTransformerV2, SwinTransformerV2Cr]


def _quiet(model, size):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownOperationWarning)
        return rfw.analyze(model, size)


def _tiny(cls, img_size, **extra):
    torch.manual_seed(0)
    return cls(img_size=img_size, num_classes=3, **TINY, **extra)


def _picks(n: int, w: int = 4, s: int = 2) -> list[int]:
    return sorted({p for p in (0, s - 1, s, w - 1, w, w + s - 1, w + s, n // 2, n - 2, n - 1) if 0 <= p < n})


def _against_gradient(model, size: int) -> tuple[int, int]:
    """Every block and patch merging of ``model`` at ``size``: boxes and r_max against the gradient."""
    result = _quiet(model, size)
    twin = _oracle_copy(model)
    modules = dict(twin.named_modules())
    names = [
        layer.name
        for layer in result.layers
        if layer.op
        in ("SwinTransformerBlock", "SwinTransformerV2Block", "SwinTransformerV2CrBlock", "PatchMerging")
    ]
    outputs = {}
    hooks = [
        modules[name].register_forward_hook(lambda m, a, out, name=name: outputs.__setitem__(name, out))
        for name in names
    ]
    x = torch.rand(1, 3, size, size, dtype=torch.float64, requires_grad=True)
    try:
        twin(x)
    finally:
        for hook in hooks:
            hook.remove()
    exact = global_checked = 0
    for name in names:
        layer = result.layer(name)
        out = outputs[name]  # (N, H, W, C)
        assert layer.feature_map == tuple(out.shape[1:3]), name
        n = out.shape[1]
        reaches_all = layer.r_max[0] == math.inf  # some path passes a global attention
        widest = 0
        picks = _picks(n)
        diagonals = [*zip(picks, picks, strict=True), *zip(picks, reversed(picks), strict=True)]
        units = dict.fromkeys([*diagonals, (0, n - 1), (n - 1, 0)])
        for unit in units:
            support = _support(out, x, unit, channels_last=True, floor=1e-30)
            if reaches_all:
                assert support == [(0, size - 1), (0, size - 1)], (name, unit, support)
                global_checked += 1
                continue
            exact += _compare(result, name, unit, support, (size, size))
            box = result.unit_box(name, unit, path="hull")
            if all(a >= 0 and b <= size - 1 for a, b in zip(box.start, box.stop, strict=True)):
                widest = max(widest, *(hi - lo + 1 for lo, hi in support))
        if not reaches_all and widest:
            # some checked unit's field lies inside the image: the widest support is r_max
            assert widest == layer.r_max[0] == layer.r_max[1], (name, widest, layer.r_max)
    return exact, global_checked


@pytest.mark.parametrize("cls", FAMILIES, ids=lambda c: c.__name__)
def test_tiny_swin_at_32_is_local_then_global(cls):
    exact, global_checked = _against_gradient(_tiny(cls, 32), 32)
    assert exact > 150
    assert global_checked > 0  # the last stage: 4x4 windows on a 4x4 map


@pytest.mark.slow
@pytest.mark.parametrize("cls", FAMILIES, ids=lambda c: c.__name__)
def test_tiny_swin_at_64_is_local_everywhere(cls):
    exact, global_checked = _against_gradient(_tiny(cls, 64), 64)
    assert exact > 150
    assert global_checked == 0


def test_stage_fields_by_hand():
    # patch 2: r 2, jump 2; a 4-wide window adds 3 jumps, the shifted one straddles two windows (+4 jumps)
    result = _quiet(_tiny(SwinTransformer, 32), 32)
    expected = {  # name: (r_min, r_max, jump)
        "layers.0.blocks.0.attn": (8, 8, 2),  # 2 + 3 x 2
        "layers.0.blocks.0": (2, 8, 2),  # the residual keeps the patch's own field
        "layers.0.blocks.1.attn": (8, 16, 2),  # 8 + 4 x 2
        # not 16 + 2: the two tokens a merged unit stacks never straddle a shifted seam (at 2 + 4 j)
        "layers.1.downsample": (4, 16, 4),
    }
    for name, (r_min, r_max, jump) in expected.items():
        layer = result.layer(name)
        assert (layer.r_min[0], layer.r_max[0], layer.jump[0]) == (r_min, r_max, jump), name
    assert result.layer("layers.2.blocks.0.attn").status == "global"


def test_strict_model_refuses_other_sizes():
    model = _tiny(SwinTransformer, 32)
    result = _quiet(model, 32)
    with pytest.raises(
        ResolutionError, match=r"layers\.0\.blocks\.1\.attn' gets a 32x32 map: .*built for a 16x16"
    ):
        result.at(64)
    with pytest.raises(AssertionError):  # timm itself refuses, which is what the error stands for
        model(torch.rand(1, 3, 64, 64))


def test_dynamic_model_follows_its_fixed_windows_at_other_sizes():
    # dynamic_img_size: the mask is rebuilt for each input, the window and shift stay as built for 32 px.
    # At 40 px the maps are 20, 10 and 5: stage 2 is not a multiple of the window (10 = 2 x 4 + 2, the
    # two tokens the roll carries round form the window [0, 2) on their own), stage 3 keeps the window
    # 4 it was built with for a 4x4 map, now two windows per axis on a padded 5x5 map.
    model = _tiny(SwinTransformer, 32, dynamic_img_size=True)
    exact, global_checked = _against_gradient(model, 40)
    assert exact > 150
    assert global_checked == 0


def test_dynamic_model_refuses_sizes_where_its_windows_wrap_around():
    model = _tiny(SwinTransformer, 32, dynamic_img_size=True)
    with pytest.raises(
        ResolutionError, match=r"'layers\.0\.blocks\.1\.attn' gets a 17x17 map: .*rolls before"
    ):
        _quiet(model, 34)
    # the refusal is warranted: timm rolls the 17 tokens by -2 and pads to 20, so the window of the
    # padded positions 12 .. 15 holds tokens 14, 15, 16 and 0: row 14 sees both image borders
    twin = _oracle_copy(model)
    out = {}
    twin.layers[0].blocks[1].register_forward_hook(lambda m, a, o: out.__setitem__("x", o))
    x = torch.rand(1, 3, 34, 34, dtype=torch.float64, requires_grad=True)
    twin(x)
    rows = _support(out["x"], x, (14, 8), channels_last=True, floor=1e-30)[0]
    assert rows == (0, 33)


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("swin_tiny_patch4_window7_224", 224),
        pytest.param("swin_small_patch4_window7_224", 224, marks=pytest.mark.slow),
        ("swinv2_tiny_window8_256", 256),
        pytest.param("swinv2_cr_tiny_ns_224", 224, marks=pytest.mark.slow),
    ],
)
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_real_models_have_no_unknown_layer(name, size, train):
    model = timm.create_model(name, pretrained=False).train(train)
    result = _quiet(model, size)
    assert not [layer.name for layer in result.layers if layer.status == "unknown"]
    attention = [layer for layer in result.layers if layer.op == "window_attention"]
    assert attention[0].r_max[0] < math.inf
    assert attention[-1].status == "global"  # the last stage's window covers its map
    assert model.training == train


def test_swin_tiny_matches_torchvision_swin_t():
    torchvision = pytest.importorskip("torchvision")
    ours = _quiet(timm.create_model("swin_tiny_patch4_window7_224"), 224)
    theirs = _quiet(torchvision.models.swin_t(), 224)
    for stage, block in ((0, 1), (1, 1), (2, 5)):
        mine = ours.layer(f"layers.{stage}.blocks.{block}.attn")
        tv = theirs.layer(f"features.{2 * stage + 1}.{block}.attn.shifted_window_attention")
        assert (mine.r_min, mine.r_max, mine.jump, mine.feature_map) == (
            tv.r_min,
            tv.r_max,
            tv.jump,
            tv.feature_map,
        )


def test_multiply_adds_match_torch_flop_counter():
    # per token the block's linear layers; per pair of tokens in a window q.k and the weighted value
    # (the oracle: torch's FLOP counter on a forward pass, halved; it does not count norms either).
    # V2 and V2-Cr are left out: their position-bias MLPs run once per block on the window's offset
    # table, which the per-position accounting does not hold (0.3% of swinv2_tiny_window8_256).
    from rf_widgets.zoo import count_macs

    model = _tiny(SwinTransformer, 32)
    layers = _quiet(model, 32).layers
    assert sum(layer.macs for layer in layers) == count_macs(model, (32, 32), device="cpu")
