"""Shared plumbing: check the data, pick layers, run a model in batches with hooks, restore the model."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from rf_widgets.errors import DataError, GraphError, ModelImportError, ResolutionError, shown

__all__ = [
    "Images",
    "as_images",
    "as_labelled",
    "check_batch_size",
    "class_count",
    "default_layers",
    "forward_batches",
    "left_as_found",
    "resolve_layers",
]

Images = Any
"""What the public functions accept as data: an ImageSet, a (images, labels) pair, or an array/tensor."""

BATCH = 256
MAX_BATCH = 65536
"""The largest batch_size accepted."""
MAX_CLASSES = 1000
"""The largest label + 1 (class count) a probe or classifier accepts: labels size its weights."""


def check_batch_size(batch_size: object) -> int:
    """``batch_size`` as an int from 1 to MAX_BATCH, or a one-line error naming it."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH:
        raise DataError(f"batch_size must be a whole number from 1 to {MAX_BATCH:,}, got {shown(batch_size)}")
    return batch_size


def class_count(*labels: torch.Tensor) -> int:
    """The number of classes the labels imply, after checking they are 0, 1, ... below MAX_CLASSES."""
    low = min(int(y.min()) for y in labels)
    high = max(int(y.max()) for y in labels)
    if low < 0 or high >= MAX_CLASSES:
        raise DataError(
            f"labels must be whole numbers from 0 to {MAX_CLASSES - 1:,} (MAX_CLASSES), "
            f"got {low if low < 0 else high:,}"
        )
    return high + 1


def _as_tensor(images: Any, what: str) -> torch.Tensor:
    if isinstance(images, torch.Tensor):
        tensor = images.detach()
    else:
        try:
            array = np.asarray(images)
            if array.dtype.kind not in "biuf":
                raise TypeError(f"its values are {array.dtype} (numbers are needed)")
            tensor = torch.as_tensor(array)
        except (TypeError, ValueError, RuntimeError) as err:
            raise DataError(f"{what} must be an array of images (N, C, H, W): {err}") from None
    if tensor.ndim != 4:
        raise DataError(f"{what} must have shape (N, C, H, W), got shape {tuple(tensor.shape)}")
    if tensor.shape[0] == 0:
        raise DataError(f"{what} is empty: it needs at least one image")
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise DataError(f"{what} must hold real numbers, got {tensor.dtype}")
    if not tensor.is_floating_point():
        tensor = tensor.float()
    bad = int((~torch.isfinite(tensor)).sum())
    if bad:
        raise DataError(f"{what} has {bad:,} pixels that are NaN or infinite")
    return tensor


def as_images(data: Any, what: str = "data") -> torch.Tensor:
    """The images of ``data`` as a float tensor (N, C, H, W); labels, if any, are ignored."""
    if data is None:
        raise DataError(f"{what} is missing: pass images of shape (N, C, H, W)")
    if hasattr(data, "images") and hasattr(data, "labels"):
        return _as_tensor(data.images, what)
    if isinstance(data, tuple) and len(data) == 2:
        return _as_tensor(data[0], what)
    return _as_tensor(data, what)


def as_labelled(data: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and integer labels of ``data`` (an ImageSet or an ``(images, labels)`` pair)."""
    if hasattr(data, "images") and hasattr(data, "labels"):
        images, labels = data.images, data.labels
    elif isinstance(data, tuple) and len(data) == 2:
        images, labels = data
    else:
        raise DataError(f"{what} must be an ImageSet or an (images, labels) pair, got {type(data).__name__}")
    x = _as_tensor(images, what)
    raw = np.asarray(labels)
    if raw.dtype.kind not in "iu" or raw.size == 0:
        raise DataError(
            f"{what} labels must be whole numbers (an integer array), got {raw.dtype} of {raw.size}"
        )
    y = torch.as_tensor(raw.astype(np.int64, copy=False)).reshape(-1)
    if len(y) != len(x):
        raise DataError(f"{what} has {len(x)} images but {len(y)} labels")
    return x, y


def check_images(model: nn.Module, images: torch.Tensor, input_size: Sequence[int] | None, what: str) -> None:
    """Channel count against the model's first convolution, spatial size against ``input_size``."""
    first = next((m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    if first is not None and images.shape[1] != first.in_channels:
        raise DataError(
            f"{what} has {images.shape[1]} channels but the model's first convolution expects "
            f"{first.in_channels}"
        )
    if input_size is not None and tuple(images.shape[2:]) != tuple(input_size):
        got = "x".join(map(str, images.shape[2:]))
        raise DataError(f"{what} has images of {got} pixels, expected {'x'.join(map(str, input_size))}")


def default_layers(model: nn.Module) -> list[str]:
    """The spatial convolutions (kernel larger than 1 on some axis), in module order.

    These are the layers the paper's figure plots: 17 for torchvision's ResNet18 (its three 1x1
    downsampling convolutions are pointwise and left out).
    """
    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.conv._ConvNd) and any(k > 1 for k in m.kernel_size)
    ]


def resolve_layers(model: nn.Module, layers: Sequence[str] | str | None) -> dict[str, nn.Module]:
    """Module per requested name (all spatial convolutions by default), with a clear error for a typo."""
    if not isinstance(model, nn.Module):
        raise ModelImportError(f"the model must be a torch.nn.Module, got {type(model).__name__}")
    modules = dict(model.named_modules())
    if layers is None:
        names = default_layers(model)
        if not names:
            raise GraphError(f"{type(model).__name__} has no convolution with a kernel larger than 1")
    else:
        names = [layers] if isinstance(layers, str) else list(layers)
        if not names:
            raise GraphError("layers is empty: name at least one module, or pass None for every convolution")
    for name in names:
        if name not in modules or name == "":
            close = [n for n in modules if n and n.endswith(name.split(".")[-1])][:3]
            hint = f" (similar: {', '.join(close)})" if close else ""
            raise GraphError(f"no module named '{name}' in {type(model).__name__}{hint}")
    return {name: modules[name] for name in names}


@contextlib.contextmanager
def left_as_found(model: nn.Module) -> Iterator[None]:
    """Run inside with the model in eval mode and without parameter gradients; restore everything after.

    Training flags and ``requires_grad`` are restored in ``finally``; the hooks the caller registers are
    removed by the caller's own ``finally``. Parameters and buffers are never written (eval mode keeps
    BatchNorm statistics fixed), and gradients are taken with ``torch.autograd.grad`` so no ``.grad``
    field changes.
    """
    flags = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in grads:
            p.requires_grad_(False)
        yield
    finally:
        for m, flag in flags:
            m.training = flag
        for p, flag in grads:
            p.requires_grad_(flag)


class _Stop(Exception):
    """Raised by a hook to end a forward pass once every wanted layer has been seen."""


def forward_batches(
    model: nn.Module,
    images: torch.Tensor,
    modules: dict[str, nn.Module],
    consume: Callable[[str, torch.Tensor], None],
    *,
    batch_size: int = BATCH,
    logits: Callable[[torch.Tensor], None] | None = None,
) -> None:
    """Feed ``images`` through ``model`` in batches and hand each wanted layer's output to ``consume``.

    Only the first call of a module in a forward pass is used (a module called twice, like ResNet's
    shared ReLU, would otherwise mix two different feature maps). Without ``logits`` the pass stops
    after the last wanted layer. The model must already be inside :func:`left_as_found`.
    """
    check_batch_size(batch_size)
    seen: set[str] = set()

    def hook_for(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if name in seen:
                return
            seen.add(name)
            if not isinstance(output, torch.Tensor):
                raise GraphError(f"module '{name}' returns {type(output).__name__}, not a tensor")
            consume(name, output)
            if logits is None and len(seen) == len(modules):
                raise _Stop

        return hook

    device = _device(model)
    dtype = _dtype(model)
    handles = [m.register_forward_hook(hook_for(name)) for name, m in modules.items()]
    try:
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                seen.clear()
                batch = images[start : start + batch_size].to(device=device, dtype=dtype)
                try:
                    out = model(batch)
                except _Stop:
                    continue
                except (RuntimeError, ValueError) as err:
                    raise ResolutionError(
                        f"{type(model).__name__} cannot run on images of "
                        f"{'x'.join(map(str, batch.shape[2:]))} pixels: {_first_line(err)}"
                    ) from err
                if logits is not None:
                    logits(out)
                missing = [name for name in modules if name not in seen]
                if missing:
                    raise GraphError(f"module(s) {', '.join(missing)} were not called in the forward pass")
    finally:
        for handle in handles:
            handle.remove()


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _dtype(model: nn.Module) -> torch.dtype:
    p = next(model.parameters(), None)
    return p.dtype if p is not None and p.is_floating_point() else torch.float32
