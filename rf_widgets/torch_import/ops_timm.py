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
"""

from __future__ import annotations

from typing import Any

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


def register(table: RuleTable) -> None:
    table.module("timm.layers.space_to_depth.SpaceToDepth", _space_to_depth)
    table.module("timm.layers.blur_pool.BlurPool2d", _blur_pool)
