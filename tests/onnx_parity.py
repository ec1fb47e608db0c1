"""The ONNX import of a torch model against its torch import: what is compared and how layers are matched.

Layer names differ between the two imports (module paths against ONNX node names) and so does the
number of pointwise layers: torch's exporter folds every BatchNorm into the convolution before it,
drops Dropout and Identity, and writes a flatten as a Reshape. Layers are therefore matched by their
order among the *windowed* layers, those with a kernel, stride or padding that is not 1/1/0, or of kind
resample: each import lists them in topological order, and the two lists must have the same length
and the same kernel, stride, dilation and padding at each position. For every matched pair and every
input size the analyses must give the same ``r_min``, ``r_max``, ``r_max_local``, feature map, status
and reason, and the border layer (and every border layer) must sit at the same position. The ONNX import may
not have more unknown layers than the torch import.

Used by tests/test_onnx_parity.py and benchmarks/onnx_sweep.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import rf_widgets as rfw
from rf_widgets.core.graph import Stack


def windowed(stack: Stack) -> list[str]:
    """Names of the layers with a window (kernel, stride or padding not 1/1/0) or a resample, in order.

    A window-attention layer (``Resample("windows")``) that reads the one before it with the same windows
    (the softmax and the product with the values, which the torch import of Swin reads as one layer)
    counts once, by the later layer: mixing within the same windows twice reaches no further than once.
    """
    out: list[str] = []
    for layer in stack.layers:
        spec = layer.resample if layer.kind == "resample" else None
        if spec is not None and spec.mode == "windows" and out:
            last = stack[out[-1]]
            if last.resample is not None and last.resample == spec and last.name in layer.inputs:
                out[-1] = layer.name
                continue
        if layer.kind == "resample" or (
            layer.kind == "window"
            and (
                any(k > 1 for k in layer.kernel_effective)
                or any(s > 1 for s in layer.stride)
                or any(p != (0, 0) for p in layer.padding)
                or getattr(layer, "padding_mode", None)
            )
        ):
            out.append(layer.name)
    return out


def compare(model: Any, onnx_model: Any, sizes: Iterable[int]) -> list[str]:
    """Differences between the torch import of ``model`` and the ONNX import of ``onnx_model``."""
    torch_stack = rfw.analyze(model, 32).stack
    onnx_stack = rfw.analyze(onnx_model, 32).stack
    return compare_stacks(torch_stack, onnx_stack, sizes)


def compare_stacks(torch_stack: Stack, onnx_stack: Stack, sizes: Iterable[int]) -> list[str]:
    ours, theirs = windowed(torch_stack), windowed(onnx_stack)
    problems: list[str] = []
    unknown = [f"{layer.name} ({layer.op})" for layer in onnx_stack.layers if layer.kind == "unknown"]
    if len(unknown) > sum(layer.kind == "unknown" for layer in torch_stack.layers):
        problems.append(f"unknown in the ONNX import: {', '.join(unknown[:4])}")
    if len(ours) != len(theirs):
        return [f"{len(ours)} windowed layers in the torch import, {len(theirs)} in the ONNX import"]
    for a, b in zip(ours, theirs, strict=True):
        la, lb = torch_stack[a], onnx_stack[b]
        for label in ("kernel", "stride", "dilation", "padding"):
            if getattr(la, label) != getattr(lb, label):
                problems.append(f"{a} / {b}: {label} {getattr(la, label)} != {getattr(lb, label)}")
    if problems:
        return problems
    pairs = dict(zip(theirs, ours, strict=True))
    for size in sizes:
        ra, rb = rfw.analyze(torch_stack, size), rfw.analyze(onnx_stack, size)
        for b, a in pairs.items():
            xa, xb = ra.layer(a), rb.layer(b)
            for label in ("r_min", "r_max", "r_max_local", "feature_map", "status", "reason"):
                if getattr(xa, label) != getattr(xb, label):
                    problems.append(
                        f"at {size}: {a} / {b}: {label} {getattr(xa, label)} != {getattr(xb, label)}"
                    )
        for label in ("border_layer",):
            va, vb = getattr(ra, label), getattr(rb, label)
            if (va is None) != (vb is None) or (vb is not None and pairs.get(vb) != va):
                problems.append(f"at {size}: {label} {va} (torch) != {vb} (onnx)")
        mapped = tuple(pairs.get(n, n) for n in rb.border_layers)
        if mapped != tuple(ra.border_layers):
            problems.append(f"at {size}: border layers {ra.border_layers} != {mapped}")
    return problems
