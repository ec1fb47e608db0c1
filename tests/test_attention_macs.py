"""Multiply-adds of attention layers: projections per token and the token-pair products.

The oracle is torch's own FLOP counter on a forward pass (``rf_widgets.zoo.count_macs`` is
``FlopCounterMode`` halved), plus counts done by hand.
"""

from __future__ import annotations

import pytest

import rf_widgets as rfw
from rf_widgets.core.layers import Layer, Resample

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
nn = torch.nn

from rf_widgets.zoo import count_macs  # noqa: E402


def table_macs(model, size: int) -> int:
    return sum(layer.macs for layer in rfw.analyze(model, size).layers)


def test_hand_counts_for_windows_global_and_other_layers():
    windows = Layer(
        "w", "attn", kind="resample", resample=Resample("windows", window=(7, 7), shift=(3, 3)),
        mixing_macs=(10, 2),
    )  # fmt: skip
    # an 8x8 map is padded to 14x14 (four windows of 49 tokens): 196 tokens, 49 partners each
    assert windows.macs((8, 8), (8, 8)) == 10 * 196 + 2 * 196 * 49
    assert windows.macs((7, 14), (7, 14)) == 10 * 98 + 2 * 98 * 49
    attention = Layer("a", "attn", kind="global", mixing_macs=(10, 2), macs_per_position=5)
    # a global layer's own map is 1x1; its 5x4 input gives 20 tokens that all attend to each other
    assert attention.macs((1, 1), (5, 4)) == 5 + 10 * 20 + 2 * 20 * 20
    along_channels = Layer("c", "attn", mixing_macs=(10, 2))
    assert along_channels.macs((3, 3), (3, 3)) == 10 * 9


class TokenAttention(nn.Module):
    """A patch embedding, then self-attention over the patches (as ViT, without a class token)."""

    def __init__(self, kdim: int | None = None, vdim: int | None = None) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 16, 4, stride=4)
        self.kv = nn.Linear(16, kdim) if kdim else None
        self.attention = nn.MultiheadAttention(16, 2, batch_first=True, kdim=kdim, vdim=vdim)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        other = self.kv(tokens) if self.kv is not None else tokens
        mixed, _ = self.attention(tokens, other, other)
        return self.head(mixed.mean(1))


@pytest.mark.parametrize("dims", [(None, None), (8, 8)])
@pytest.mark.parametrize("size", [16, 28])
def test_multihead_attention_matches_the_flop_counter(dims, size):
    model = TokenAttention(*dims).eval()
    assert table_macs(model, size) == count_macs(model, (size, size), device="cpu")


def tiny_swin(v2: bool = False):
    from torchvision.models import swin_transformer as swin

    extra = {"block": swin.SwinTransformerBlockV2, "downsample_layer": swin.PatchMergingV2} if v2 else {}
    return swin.SwinTransformer(
        patch_size=[4, 4], embed_dim=8, depths=[2, 2], num_heads=[1, 2], window_size=[4, 4],
        num_classes=3, **extra,
    ).eval()  # fmt: skip


@pytest.mark.parametrize("size", [32, 40, 56])  # 40 and 56: maps padded to whole windows
def test_swin_matches_the_flop_counter_at_sizes_that_pad(size):
    model = tiny_swin()
    assert table_macs(model, size) == count_macs(model, (size, size), device="cpu")


def test_swin_v2_differs_by_its_bias_mlp_only():
    # V2 computes its relative position bias with a two-layer MLP (2 -> 512 -> heads) over a table of
    # (2w - 1)^2 offsets in every block, whatever the input size; the layer table leaves it out.
    model = tiny_swin(v2=True)
    heads_per_block = [1, 1, 2, 2]
    bias_mlp = sum((2 * 4 - 1) ** 2 * (2 * 512 + 512 * heads) for heads in heads_per_block)
    for size in (32, 48):
        assert count_macs(model, (size, size), device="cpu") - table_macs(model, size) == bias_mlp


@pytest.mark.slow
def test_swin_t_at_224_counts_what_torch_counts():
    model = torchvision.models.swin_t().eval()
    assert table_macs(model, 224) == count_macs(model, (224, 224), device="cpu") == 4_490_566_656


def test_the_design_search_counts_attention_like_the_built_modules():
    from rf_widgets.strategies import search

    model = tiny_swin()
    front = search(model, 32, budget=20)
    assert len(front) > 1
    for candidate in front:
        built = candidate.apply(model).eval()
        assert candidate.macs == count_macs(built, tuple(candidate.input_size), device="cpu"), candidate.label
