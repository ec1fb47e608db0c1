"""Rules for timm modules whose ``forward`` the tracer cannot read as windows on its own.

Registered by ``"module.qualname"`` string, so timm is never imported here: a model that does not use
timm pays nothing.

- ``timm.layers.SpaceToDepth`` (TResNet's stem): ``view -> permute -> view`` that moves each
  ``bs x bs`` block into the channels. Output unit ``u`` holds input pixels ``u*bs .. u*bs + bs - 1``
  along each axis: a ``bs x bs`` window with stride ``bs``, as ``PixelUnshuffle`` (the channel order
  differs, the field does not).
- ``timm.layers.BlurPool2d`` (anti-aliased downsampling in TResNet): reflect padding by
  ``((stride - 1) + (filt_size - 1)) // 2``, then a fixed binomial ``filt_size x filt_size`` filter with
  ``stride``. Reflected pixels are input pixels inside the box when ``2 p <= filt_size - 1`` (odd
  filters, TResNet's 3x3), so the padding counts as padding; an even filter's reflection reaches past
  the window, and such a layer is unknown.
- ``timm.layers.DropPath`` (stochastic depth, active in training mode) multiplies each whole sample by
  0 or ``1 / keep``: no value moves to another position, so it is pointwise.
- timm's Swin blocks (V1, V2, V2-Cr): the shifted window attention as a ``"windows"`` layer
  ``<block>.attn`` with the block's own ``window_size``/``shift_size``, then ``<block>``, the residual
  sum (norms and MLP are pointwise). timm fixes window and shift at construction and rolls before
  padding, so at some maps its windows are not the analyzer's (they wrap around the border), and a
  block with a shift and a mask built at construction (``strict_img_size=True``) runs on one map
  only: both are :class:`~rf_widgets.core.analysis.MapRequirement` of the stack, and analysing at a
  size that breaks one is a ``ResolutionError`` naming the block. ``PatchMerging``: a 2x2 window with
  stride 2 (ceil mode).
- timm's MaxViT (``PartitionAttentionCl``, ``PartitionAttention2d``, ``ParallelPartitionAttention``):
  block attention is a ``"windows"`` layer of the partition size, grid attention global over the map
  (as torchvision's), each plus the residual; the partition must divide the map (timm asserts it).
- ``Conv2dSame``, ``AvgPool2dSame``, ``MaxPool2dSame``: TensorFlow's "SAME" padding, decided per size.
- ``timm.layers.HaloAttn`` (HaloNet, and the halo blocks of ``halo2botnet``, ``lamhalobotnet``,
  ``sehalonet``, ``haloregnetz``): the queries of each ``b x b`` block attend to the keys and values of
  the block grown by its halo ``h`` on every side (zero padding at the border). Unit ``u`` of block
  ``j = u // b`` sees ``[j b - h, j b + b + h - 1]``: a ``2h + 1`` window with padding ``h``
  (``<m>.halo``) followed by attention within windows of ``b`` (the union of the ``2h + 1`` windows
  over a block). With a query stride ``s`` (``block_stride``) output unit ``u`` is the query at
  ``s u``: a 1x1 window with stride ``s`` follows; with ``avg_down`` a 2x2 average pool. timm asserts
  that ``b`` divides the map: a :class:`~rf_widgets.core.analysis.MapRequirement`.
"""

from __future__ import annotations

import math
from typing import Any

import torch.nn as nn

from rf_widgets.torch_import.call import Act, Call
from rf_widgets.torch_import.ops_windows import _channels_first, _unshuffle
from rf_widgets.torch_import.rules import RuleTable, Unsupported


def _space_to_depth(call: Call) -> Act:
    module: Any = call.module
    return _unshuffle(call, int(module.bs))


def _blur_pool(call: Call) -> Act:
    module: Any = call.module
    _channels_first(call)
    lo, hi, top, bottom = (int(p) for p in module.padding)
    if lo != hi or top != bottom or lo != top:
        raise Unsupported(f"BlurPool2d with uneven padding {module.padding}")
    size, stride = int(module.filt_size), int(module.stride)
    if module.pad_mode == "reflect" and 2 * lo > size - 1:
        # the reflection of padded position -p is pixel p, beyond what the window reaches from -p
        raise Unsupported(f"BlurPool2d of size {size} whose reflect padding {lo} reaches past its window")
    return call.window(size, stride, padding=lo, op="blur_pool")


def _same(call: Call) -> Act:
    # Conv2dSame, AvgPool2dSame, MaxPool2dSame (the "tf_" models) pad at run time as TensorFlow's "SAME":
    # total max((ceil(n / s) - 1) s + (k - 1) d + 1 - n, 0), the odd unit at the high end. They are
    # subclasses of Conv2d/AvgPool2d/MaxPool2d, whose rules would read their padding as 0.
    from rf_widgets.torch_import.ops_layers import _record, conv_layer

    module: Any = call.module
    _channels_first(call)
    if isinstance(module, nn.Conv2d):
        return conv_layer(call, padding_mode="same_upper")
    if getattr(module, "ceil_mode", False):
        raise Unsupported(f"{type(module).__name__} with ceil_mode")
    pool = "max" if isinstance(module, nn.MaxPool2d) else "avg"
    dilation = module.dilation if pool == "max" else 1
    act = call.window(module.kernel_size, module.stride, dilation, padding_mode="same_upper")
    return _record(call, act, pool=pool)


def _drop_path(call: Call) -> Act:
    return call.pointwise()


def _patch_merging(call: Call) -> Act:
    # pads H and W at the high end to even sizes and stacks each 2x2 block along the channels, then a
    # norm and a linear reduction: a 2x2 window with stride 2, ceil mode giving the padded size
    module: Any = call.module
    if tuple(call.x.layout) != ("N", 0, 1, "C"):
        raise Unsupported(f"a patch merging of a tensor laid out as {call.x.layout}")
    reduction = module.reduction
    macs = reduction.in_features * reduction.out_features
    return call.window(2, 2, ceil_mode=True, macs_per_position=macs)


def _swin_block(call: Call) -> Act:
    from rf_widgets.core.analysis import MapRequirement
    from rf_widgets.core.layers import Resample

    module: Any = call.module
    window = tuple(int(v) for v in module.window_size)
    shift = tuple(int(v) for v in module.shift_size)
    built = getattr(module, "input_resolution", None) or getattr(module, "feat_size", None)
    if built is None or call.ndim != 2 or tuple(call.x.layout) != ("N", 0, 1, "C"):
        raise Unsupported(f"a Swin block on a tensor laid out as {call.x.layout}")
    built = tuple(int(v) for v in built)
    kind = type(module).__name__

    def windows_match(size: tuple[int, ...]) -> bool:
        axes = zip(size, window, shift, strict=True)
        return all(_timm_groups(n, w, s) == _window_groups(n, w, s) for n, w, s in axes)

    wanted = "x".join(map(str, built))
    if not windows_match(built):
        raise Unsupported(
            f"{kind} with window {window} and shift {shift} on its {wanted} map: timm rolls before padding, "
            "so its windows wrap around the border"
        )
    spec = Resample("windows", window=window, shift=shift)
    act = call.emit(
        "window_attention",
        suffix="attn",
        kind="resample",
        resample=spec,
        # per token the projections, per pair of tokens in a window q.k and the weighted value
        mixing_macs=(_projection_macs(module.attn), 2 * _attention_width(module.attn)),
    )
    # the residual keeps the input's own path: the block is the sum of the input and the attention
    # (the MLP and the norms are pointwise)
    block = call.emit(
        inputs=[call.x, act], macs_per_position=_linear_macs(module) - _linear_macs(module.attn)
    )
    if any(shift) and not getattr(module, "dynamic_mask", False):
        call.builder.requirements.append(
            MapRequirement(
                act.source,
                lambda size: tuple(size) == built,
                f"timm's {kind} was built for a {wanted} map and its shifted-window mask is fixed "
                "(strict_img_size=True): analyse at the model's img_size, or create it with that img_size "
                "or dynamic_img_size=True",
            )
        )
    if any(shift):
        call.builder.requirements.append(
            MapRequirement(
                act.source,
                windows_match,
                f"timm's {kind} (window {window}, shift {shift}, fixed when it was built for {wanted}) "
                "rolls before padding to whole windows: at this map its windows wrap around the image "
                "border (or split one window covering the map), which no field of windows in the image "
                "describes",
            )
        )
    return block


def _timm_groups(n: int, w: int, s: int) -> tuple[int, ...]:
    """The tokens each token of an axis of ``n`` attends to in timm's block, as the first token of its group.

    timm rolls the ``n`` tokens by ``-s``, pads to a multiple of ``w``, cuts windows of ``w`` and masks
    the regions ``[0, P - w)``, ``[P - w, P - s)``, ``[P - s, P)`` of the padded length ``P`` apart.
    """
    padded = -(-n // w) * w
    labels: dict[tuple[int, int], int] = {}
    out = []
    for t in range(n):
        p = (t - s) % n  # where the roll puts token t
        region = 0 if not s or p < padded - w else (1 if p < padded - s else 2)
        out.append(labels.setdefault((p // w, region), t))
    return tuple(out)


def _window_groups(n: int, w: int, s: int) -> tuple[int, ...]:
    """The same for the core's ``"windows"`` resample: borders at ``s + j w``, one window when ``n <= w``."""
    if n <= w:
        return (0,) * n
    shift = s % w
    labels: dict[int, int] = {}
    return tuple(labels.setdefault((t - shift) // w, t) for t in range(n))


def _partition_attention(call: Call) -> Act:
    """timm MaxViT's ``PartitionAttentionCl``/``PartitionAttention2d``/``ParallelPartitionAttention``."""
    from rf_widgets.core.analysis import MapRequirement
    from rf_widgets.core.layers import Resample

    module: Any = call.module
    size = tuple(int(v) for v in module.partition_size)
    layout = tuple(call.x.layout)
    if call.ndim != 2 or layout not in (("N", 0, 1, "C"), ("N", "C", 0, 1)):
        raise Unsupported(f"a partition attention on a tensor laid out as {call.x.layout}")
    kind = type(module).__name__
    parallel = hasattr(module, "attn_block") and hasattr(module, "attn_grid")
    branches = (
        [("attn_block", "windows", module.attn_block), ("attn_grid", "grid", module.attn_grid)]
        if parallel
        else [("attn", "windows" if module.partition_block else "grid", module.attn)]
    )
    mixed = []
    for suffix, mode, attn in branches:
        # grid attention reads, from every cell, the unit at its own place: its hull spans all but
        # n / cells - 1 units of the map. Counted as global, as torchvision's MaxViT grid attention:
        # the exact per-phase form has period n, and the path classes it creates through the residual
        # blocks multiply beyond what the analysis can afford (maxvit_tiny did not finish)
        window = size if mode == "windows" else (1 << 30,) * call.ndim
        spec = Resample("windows", window=window, shift=(0,) * call.ndim)
        op = "block_attention" if mode == "windows" else "grid_attention"
        mixed.append(
            call.emit(
                op,
                inputs=[call.x],
                suffix=suffix,
                kind="resample",
                resample=spec,
                # pairs: a token and the p x p tokens of its window, or of its grid (one per cell)
                **(
                    {"mixing_macs": (_projection_macs(attn), 2 * _attention_width(attn))}
                    if mode == "windows"
                    else {
                        "macs_per_position": _linear_macs(attn) + 2 * _attention_width(attn) * math.prod(size)
                    }
                ),
            )
        )
    attention = sum(_linear_macs(attn) for _, _, attn in branches)
    block = call.emit(inputs=[call.x, *mixed], macs_per_position=_linear_macs(module) - attention)
    shown = "x".join(map(str, size))
    call.builder.requirements.append(
        MapRequirement(
            mixed[0].source,
            lambda n: all(a % p == 0 for a, p in zip(n, size, strict=True)),
            f"timm's {kind} cuts the map into {shown} partitions and asserts that it divides the map",
        )
    )
    return block


def _halo_attention(call: Call) -> Act:
    from rf_widgets.core.analysis import MapRequirement
    from rf_widgets.core.layers import Resample

    module: Any = call.module
    if call.ndim != 2 or tuple(call.x.layout) != ("N", "C", 0, 1):
        raise Unsupported(f"a halo attention on a tensor laid out as {call.x.layout}")
    block, halo, stride = int(module.block_size), int(module.halo_size), int(module.block_stride)
    win = int(module.win_size)
    pooled = isinstance(module.pool, nn.AvgPool2d)
    # per query: the query projection, q.k and the weighted values over the win x win keys, and the
    # relative logits along each axis (q against 2 win - 1 embeddings per axis)
    qk, v = int(module.dim_out_qk), int(module.dim_out_v)
    per_query = module.q.in_channels * module.q.out_channels + win * win * (qk + v) + 2 * (2 * win - 1) * qk
    keys = call.emit(
        "halo",
        suffix="halo",
        kernel=(2 * halo + 1,) * 2,
        padding=((halo, halo),) * 2,
        macs_per_position=module.kv.in_channels * module.kv.out_channels,
    )
    spec = Resample("windows", window=(block, block), shift=(0, 0))
    last = stride == 1 and not pooled
    attn = call.emit(
        "halo_attention",
        inputs=[keys],
        suffix="" if last else "attn",
        kind="resample",
        resample=spec,
        macs_per_position=per_query if stride == 1 else 0,
    )
    call.builder.requirements.append(
        MapRequirement(
            attn.source,
            lambda size: all(n % block == 0 for n in size),
            f"timm's HaloAttn cuts the map into {block}x{block} blocks and asserts that they divide it",
        )
    )
    if last:
        return attn
    if pooled:
        return call.emit("avg_pool", inputs=[attn], kernel=(2, 2), stride=(2, 2))
    # the queries are the strided positions: output unit u is the query at s u
    return call.emit(
        "halo_queries", inputs=[attn], kernel=(1, 1), stride=(stride,) * 2, macs_per_position=per_query
    )


def _attention_pool(call: Call) -> Act:
    """timm's ``AttentionPool2d`` (CLIP's ResNet head): attention over every position of the map plus a
    mean or class token, then that token (``pool_type="token"``) or the map's positions: global either way."""
    from rf_widgets.core.layers import Resample

    module: Any = call.module
    if tuple(call.x.layout) != ("N", "C", *range(call.ndim)):
        raise Unsupported(f"an attention pool on a tensor laid out as {call.x.layout}")
    # per token: the projections (q, k, v, out); per pair: q.k and the weighted value
    mixing = (_linear_macs(module), 2 * int(module.num_heads) * int(module.head_dim))
    if module.pool_type == "token":
        return call.global_("attention_pool", layout=("N", "C"), mixing_macs=mixing)
    # the map's positions, each having attended to all of them: windows larger than any map
    spec = Resample("windows", window=(1 << 30,) * call.ndim, shift=(0,) * call.ndim)
    return call.emit("attention_pool", kind="resample", resample=spec)


def _projection_macs(attn: Any) -> int:
    """Per token: the query/key/value and output projections (not a position-bias MLP, run once per map)."""
    return sum(_linear_macs(getattr(attn, name)) for name in ("qkv", "proj") if hasattr(attn, name))


def _attention_width(attn: Any) -> int:
    """Channels of the queries (heads x head width): the cost of one query-key product."""
    qkv = attn.qkv
    out = qkv.out_features if isinstance(qkv, nn.Linear) else qkv.out_channels
    return int(out) // 3


def _linear_macs(module: nn.Module) -> int:
    """Multiply-adds per token of the linear layers (and 1x1 convolutions) in ``module``."""
    total = 0
    for m in module.modules():
        if isinstance(m, nn.Linear):
            total += m.in_features * m.out_features
        elif isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1):  # PartitionAttention2d's projections
            total += m.in_channels * m.out_channels // m.groups
    return total


def register(table: RuleTable) -> None:
    table.module("timm.layers.space_to_depth.SpaceToDepth", _space_to_depth)
    table.module("timm.layers.blur_pool.BlurPool2d", _blur_pool)
    table.module("timm.layers.drop.DropPath", _drop_path)
    table.module("timm.layers.conv2d_same.Conv2dSame", _same)
    table.module("timm.layers.pool2d_same.AvgPool2dSame", _same)
    table.module("timm.layers.pool2d_same.MaxPool2dSame", _same)
    for block in (
        "timm.models.swin_transformer.SwinTransformerBlock",
        "timm.models.swin_transformer_v2.SwinTransformerV2Block",
        "timm.models.swin_transformer_v2_cr.SwinTransformerV2CrBlock",
    ):
        table.module(block, _swin_block)
    for partition in ("PartitionAttentionCl", "PartitionAttention2d", "ParallelPartitionAttention"):
        table.module(f"timm.models.maxxvit.{partition}", _partition_attention)
    table.module("timm.layers.halo_attn.HaloAttn", _halo_attention)
    table.module("timm.layers.attention_pool2d.AttentionPool2d", _attention_pool)
    for merging in ("swin_transformer", "swin_transformer_v2", "swin_transformer_v2_cr"):
        table.module(f"timm.models.{merging}.PatchMerging", _patch_merging)
