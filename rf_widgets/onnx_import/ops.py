"""The built-in ONNX rules: one function per operator family, registered by op type.

Every rule gets an :class:`~rf_widgets.onnx_import.builder.OnnxCall`. Per-axis attributes (``kernel_shape``,
``strides``, ``dilations``, ``pads``) are given in tensor order and mapped onto the spatial axes the
input holds (a Transpose may have permuted them). What each operator means for the receptive field is
documented in docs/onnx.md.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from rf_widgets.core.layers import INPUT, Resample
from rf_widgets.onnx_import.builder import Act, OnnxCall, ShapeOf
from rf_widgets.onnx_import.layout import (
    Block,
    Cut,
    Extended,
    Layout,
    Phase,
    Role,
    is_spatial,
    merged,
    regroup,
)
from rf_widgets.onnx_import.reader import Const
from rf_widgets.rules import RuleTable, Unsupported

__all__ = ["register"]

TO_THE_END = 1 << 31
"""A Slice end at or beyond this means "to the end" (exporters write INT64_MAX or INT32_MAX)."""


# -- windows -------------------------------------------------------------------------------------------


def _padding(call: OnnxCall, n: int) -> tuple[tuple[tuple[int, int], ...], str | None]:
    """``pads`` as (lo, hi) pairs in tensor order, or the size-dependent ``auto_pad`` mode."""
    auto = call.attr("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return ((0, 0),) * n, auto.lower()
    if auto == "VALID":
        return ((0, 0),) * n, None
    if auto != "NOTSET":
        raise Unsupported(f"auto_pad '{auto}'")
    pads = list(call.attr("pads", [0] * (2 * n)))
    if len(pads) != 2 * n:
        raise Unsupported(f"pads {pads} for {n} spatial axes")
    return tuple((int(pads[i]), int(pads[i + n])) for i in range(n)), None


def _sliding(call: OnnxCall, kernel: list[int], *, dilated: bool, pool: bool, **extra: Any) -> Act:
    n = len(kernel)
    if n != call.ndim:
        raise Unsupported(f"a {n}-axis window on a tensor with {call.ndim} spatial axes")
    strides = list(call.attr("strides", [1] * n))
    dilations = list(call.attr("dilations", [1] * n)) if dilated else [1] * n
    padding, mode = _padding(call, n)
    ceil_mode = bool(call.attr("ceil_mode", 0)) if pool else False
    _window_shape(call, kernel, strides, dilations, padding, mode, ceil_mode, pool)
    if mode is not None:
        # With SAME_* the output has ceil(n / s) units whatever ceil_mode says.
        return call.window(kernel, strides, dilations, padding, padding_mode=mode, **extra)
    return call.window(kernel, strides, dilations, padding, ceil_mode=ceil_mode, **extra)


def _window_shape(
    call: OnnxCall,
    kernel: list[int],
    strides: list[int],
    dilations: list[int],
    padding: tuple[tuple[int, int], ...],
    mode: str | None,
    ceil_mode: bool,
    pool: bool,
) -> None:
    """The output shape at the reference size, for the Reshapes after it when inference lost track."""
    from rf_widgets.core.arithmetic import window_size

    shape = call.shape(call.node.input[0])
    if shape is None or len(shape) != len(kernel) + 2:
        return
    spatial = []
    for n, k, s, d, (lo, hi) in zip(shape[2:], kernel, strides, dilations, padding, strict=True):
        k_eff = d * (k - 1) + 1
        spatial.append(-(-n // s) if mode else window_size(n, k_eff, s, lo, hi, ceil_mode))
    weight = call.input_dims(1)
    channels = shape[1] if pool or not weight else weight[0]
    call.remember_shape((shape[0], channels, *spatial))


def _conv(call: OnnxCall) -> Act:
    weight = call.input_dims(1)
    kernel = call.attr("kernel_shape") or (list(weight[2:]) if weight else None)
    if not kernel:
        raise Unsupported("the kernel size is neither an attribute nor the shape of a constant weight")
    macs = math.prod(weight) if weight else 0
    return _sliding(call, list(kernel), dilated=True, pool=False, macs_per_position=macs)


def _pool(call: OnnxCall) -> Act:
    kernel = call.attr("kernel_shape")
    if not kernel:
        raise Unsupported("a pool without kernel_shape")
    return _sliding(call, list(kernel), dilated=call.op_type != "LpPool", pool=True)


def _global_pool(call: OnnxCall) -> Act:
    call.spatial_axes()
    shape = call.shape(call.node.input[0])
    if shape is not None:
        call.remember_shape((*shape[:2], *(1,) * (len(shape) - 2)))
    return call.global_()


def _space_to_depth(call: OnnxCall) -> Act:
    block = int(call.attr("blocksize"))
    n = call.ndim
    return call.window([block] * n, [block] * n, [1] * n, [(0, 0)] * n)


# -- resampling ----------------------------------------------------------------------------------------


def _conv_transpose(call: OnnxCall) -> Act:
    from rf_widgets.core.arithmetic import transpose_taps
    from rf_widgets.errors import LayerSpecError

    weight = call.input_dims(1)
    kernel = list(call.attr("kernel_shape") or (weight[2:] if weight else []))
    if not kernel:
        raise Unsupported("the kernel size is neither an attribute nor the shape of a constant weight")
    n = len(kernel)
    if call.attr("output_shape") is not None:
        raise Unsupported("a transposed convolution with an explicit output_shape")
    padding, mode = _padding(call, n)
    if mode is not None:
        raise Unsupported(f"a transposed convolution with auto_pad {mode.upper()}")
    if any(lo != hi for lo, hi in padding):
        raise Unsupported(f"a transposed convolution with asymmetric pads {padding}")
    strides = [int(v) for v in call.attr("strides", [1] * n)]
    dilations = [int(v) for v in call.attr("dilations", [1] * n)]
    extra = [int(v) for v in call.attr("output_padding", [0] * n)]
    for axis in range(n):
        try:
            transpose_taps(kernel[axis], strides[axis], dilations[axis], padding[axis][0])
        except LayerSpecError as err:
            raise Unsupported(str(err)) from None
    macs = math.prod(weight) // math.prod(strides) if weight else 0
    return call.resample(
        Resample("transpose", output_padding=tuple(extra)),
        kernel=tuple(kernel),
        stride=tuple(strides),
        dilation=tuple(dilations),
        padding=padding,
        macs_per_position=macs,
    )


def _depth_to_space(call: OnnxCall) -> Act:
    block = int(call.attr("blocksize"))
    # Output position v on each axis comes from input v // block (both DCR and CRD orders).
    return call.resample(Resample("nearest", scale=(Fraction(block),) * call.ndim))


_HALF_PIXEL = ("half_pixel", "pytorch_half_pixel")


def _interpolation(call: OnnxCall, mode: str, transform: str, nearest: str) -> tuple[str, bool]:
    """ONNX's mode and coordinate transformation as the PyTorch modes :class:`Resample` follows."""
    if mode == "nearest":
        if transform == "asymmetric" and nearest == "floor":
            return "nearest", False
        if transform in _HALF_PIXEL and nearest == "round_prefer_ceil":
            return "nearest-exact", False
        raise Unsupported(
            f"nearest resizing with coordinate_transformation_mode '{transform}' and nearest_mode "
            f"'{nearest}' (exact rules exist for asymmetric+floor and half_pixel+round_prefer_ceil)"
        )
    if mode in ("linear", "cubic"):
        if transform == "align_corners":
            return mode, True
        if transform in _HALF_PIXEL:
            return mode, False
        raise Unsupported(f"{mode} resizing with coordinate_transformation_mode '{transform}'")
    raise Unsupported(f"resize mode '{mode}'")


def _resize_target(call: OnnxCall, rank: int, axes: list[int]) -> dict[str, Any]:
    """``scale``, ``size`` or ``size_of``/``size_axes`` of the Resample, from the scales or sizes input."""
    order = call.spatial_axes()
    spatial = {2 + position: axis for position, axis in enumerate(order)}
    sizes_value = call.input(3)
    # Resize from opset 11 takes (X, roi, scales, sizes); Resize-10 and Upsample-9 take (X, scales)
    scales_value = call.input(2) if call.op_type == "Resize" and call.opset >= 11 else call.input(1)
    if call.op_type == "Upsample" and scales_value is None:
        scales_value = Const(call.attr("scales"))
    scales = _present(scales_value)
    if scales is not None:
        full = _on_axes([float(v) for v in _flat(scales)], axes, rank, 1.0)
        if any(full[d] != 1.0 for d in range(rank) if d not in spatial):
            raise Unsupported("resizing along a dimension that is not spatial")
        per_axis = [Fraction(1)] * call.ndim
        for d, axis in spatial.items():
            per_axis[axis] = Fraction(full[d])
        return {"scale": tuple(per_axis)}
    if isinstance(sizes_value, ShapeOf):
        roles = _on_axes(list(sizes_value.roles), axes, rank, None)
        targets = [roles[d] for d in sorted(spatial)]
        if not all(isinstance(r, int) for r in targets):
            raise Unsupported(f"a resize to sizes read off a shape as {roles}")
        picked = [0] * call.ndim
        for d, axis in spatial.items():
            picked[axis] = int(roles[d])
        return {
            "size_of": sizes_value.source if sizes_value.source != INPUT else "input",
            "size_axes": tuple(picked),
        }
    sizes = _present(sizes_value)
    if sizes is not None:
        full_sizes = _on_axes([int(v) for v in _flat(sizes)], axes, rank, None)
        per_axis_sizes = [0] * call.ndim
        for d, axis in spatial.items():
            if full_sizes[d] is None:
                raise Unsupported("a resize whose sizes leave a spatial axis out")
            per_axis_sizes[axis] = int(full_sizes[d])
        return {"size": tuple(per_axis_sizes)}
    raise Unsupported("a resize whose scales and sizes are computed at run time")


def _resize(call: OnnxCall) -> Act:
    if call.attr("antialias", 0):
        raise Unsupported("antialiased resizing")
    if call.attr("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise Unsupported(f"keep_aspect_ratio_policy '{call.attr('keep_aspect_ratio_policy')}'")
    if call.op_type == "Upsample" or call.opset < 11:
        # Upsample and Resize-10 have no coordinate modes: asymmetric, nearest rounds down when enlarging
        transform = "asymmetric"
        nearest = "floor"
    else:
        transform = call.attr("coordinate_transformation_mode", "half_pixel")
        nearest = call.attr("nearest_mode", "round_prefer_floor")
    mode, align = _interpolation(call, call.attr("mode", "nearest"), transform, nearest)
    rank = len(call.x.layout)
    axes = [int(a) % rank for a in call.attr("axes", [])] or list(range(rank))
    target = _resize_target(call, rank, axes)
    if call.op_type == "Resize" and call.opset < 11 and any(f < 1 for f in target.get("scale", ())):
        raise Unsupported("Resize-10 shrinking (its nearest rounding is not PyTorch's)")
    return call.resample(Resample(mode, align_corners=align, **target))


def _present(value: Any) -> Any:
    """The numpy value of a constant input that is given and not empty (ONNX marks unused inputs so)."""
    if isinstance(value, Const) and value.value is not None and getattr(value.value, "size", 1) > 0:
        return value.value
    return None


def _flat(value: Any) -> list[Any]:
    import numpy as np

    return list(np.asarray(value).reshape(-1))


def _on_axes(values: list[Any], axes: list[int], rank: int, fill: Any) -> list[Any]:
    if len(values) == rank and axes == list(range(rank)):
        return values
    if len(values) != len(axes):
        raise Unsupported(f"{len(values)} resize values for axes {axes}")
    full = [fill] * rank
    for a, v in zip(axes, values, strict=True):
        full[a] = v
    return full


# -- pointwise, merges, reductions -----------------------------------------------------------------------


def _pointwise(call: OnnxCall) -> Act:
    _keep_shape(call)
    return call.pointwise()


def _same(call: OnnxCall) -> Act:
    _keep_shape(call)
    return call.x


def _keep_shape(call: OnnxCall) -> None:
    """An elementwise node's output has its inputs' broadcast shape (where inference lost track)."""
    import numpy as np

    shapes = [
        call.shape(name) for name, v in zip(call.node.input, call.inputs, strict=False) if isinstance(v, Act)
    ]
    if shapes and all(s is not None for s in shapes):
        import contextlib

        with contextlib.suppress(ValueError):  # shapes that do not broadcast stay unknown
            call.remember_shape(tuple(int(n) for n in np.broadcast_shapes(*shapes)))  # type: ignore[arg-type]


def _concat(call: OnnxCall) -> Act:
    x = call.x
    axis = int(call.attr("axis", 0)) % len(x.layout)
    shapes = [call.shape(name) for name in call.node.input]
    known = [s for s in shapes if s is not None and len(s) == len(x.layout)]
    if len(known) == len(shapes):
        first = known[0]
        call.remember_shape((*first[:axis], sum(s[axis] for s in known), *first[axis + 1 :]))
    merged = _merge_phases(call)
    if merged is not None:
        return merged
    if not is_spatial(x.layout[axis]):
        return call.pointwise()
    rolled = _roll(call, axis)
    if rolled is not None:
        return rolled
    if len(call.acts) == 1:
        # One activation and constants (a class token in front): positions are added, none mixed.
        role = x.layout[axis]
        layout = x.layout
        if role in ("T", "Tc") and not isinstance(call.input(0), Act):
            layout = x.layout[:axis] + ("Tc",) + x.layout[axis + 1 :]
        return call.pointwise(layout)
    raise Unsupported("concatenating activations along a spatial axis")


def _axes(call: OnnxCall, rank: int) -> list[int] | None:
    """Reduction axes from the attribute or (newer opsets) the second input; None: every axis."""
    axes = call.attr("axes")
    if axes is None and len(call.inputs) > 1 and call.inputs[1] is not None:
        axes = _flat(call.constant(1, "axes"))
    if not axes:
        return None
    return sorted({int(a) % rank for a in axes})


def _reduce(call: OnnxCall) -> Any:
    x = call.x
    rank = len(x.layout)
    if call.op_type in ("ArgMax", "ArgMin"):
        along = [int(call.attr("axis", 0)) % rank]
    else:
        found = _axes(call, rank)
        if found is None and call.attr("noop_with_empty_axes", 0):
            return x
        along = list(range(rank)) if found is None else found
    keep = bool(call.attr("keepdims", 1))
    layout = x.layout if keep else tuple(r for d, r in enumerate(x.layout) if d not in along)
    shape = call.shape(call.node.input[0])
    if shape is not None:
        kept = [1 if d in along else n for d, n in enumerate(shape)]
        call.remember_shape(tuple(kept if keep else (n for d, n in enumerate(shape) if d not in along)))
    return call.mix([x.layout[d] for d in along], layout)


def _softmax(call: OnnxCall) -> Act:
    x = call.x
    rank = len(x.layout)
    default = -1 if call.opset >= 13 else 1
    axis = int(call.attr("axis", default)) % rank
    roles = [x.layout[axis]] if call.opset >= 13 else list(x.layout[axis:])
    _keep_shape(call)
    return call.mix(roles, x.layout)


def _gemm(call: OnnxCall) -> Act:
    a = call.input(0)
    b = call.input(1)
    weight = call.input_dims(1)
    macs = math.prod(weight) if weight and len(weight) == 2 else 0
    # Gemm multiplies (M, K) by (K, N) after the optional transposes: K is contracted
    roles: list[Any] = []
    out: Layout = ("N", "C")
    if isinstance(a, Act):
        layout_a = a.layout[::-1] if call.attr("transA", 0) else a.layout
        roles.append(layout_a[-1])
        out = (layout_a[0], "C")
    if isinstance(b, Act):
        layout_b = b.layout[::-1] if call.attr("transB", 0) else b.layout
        roles.append(layout_b[0])
    return call.mix(roles, out, macs_per_position=macs)


def _matmul(call: OnnxCall) -> Act:
    a, b = call.input(0), call.input(1)
    _matmul_shape(call)
    if isinstance(a, Act) and not isinstance(b, Act):
        dims = call.input_dims(1)
        macs = math.prod(dims[-2:]) if dims and len(dims) >= 2 else 0
        return call.mix([a.layout[-1]], a.layout[:-1] + ("C",), macs_per_position=macs)
    if isinstance(b, Act) and not isinstance(a, Act):
        if len(b.layout) < 2:
            raise Unsupported("a matrix product with a vector activation")
        return call.mix([b.layout[-2]], b.layout[:-2] + ("C", b.layout[-1]))
    assert isinstance(a, Act)
    assert isinstance(b, Act)
    if len(b.layout) < 2:
        raise Unsupported("a matrix product with a vector activation")
    return call.mix([a.layout[-1], b.layout[-2]], a.layout[:-1] + (b.layout[-1],))


def _matmul_shape(call: OnnxCall) -> None:
    """The product's shape at the reference size (where inference lost track of a computed reshape)."""
    import numpy as np

    shapes = [call.shape(name) or call.input_dims(i) for i, name in enumerate(call.node.input[:2])]
    if any(s is None or len(s) < 2 for s in shapes):
        return
    left, right = shapes
    assert left is not None
    assert right is not None
    if left[-1] != right[-2]:
        return
    try:
        batch = np.broadcast_shapes(tuple(left[:-2]), tuple(right[:-2]))
    except ValueError:
        return
    call.remember_shape((*(int(n) for n in batch), left[-2], right[-1]))


def _einsum(call: OnnxCall) -> Act:
    """Letters summed over (absent from the output) are mixed; the output's letters keep their roles."""
    equation = str(call.attr("equation", "")).replace(" ", "")
    lhs, _, rhs = equation.partition("->")
    if "..." in equation or not rhs:
        raise Unsupported(f"the einsum '{equation}' (ellipsis or implicit output)")
    role_of: dict[str, Any] = {}
    for spec, operand in zip(lhs.split(","), call.inputs, strict=False):
        if isinstance(operand, Act):
            if len(spec) != len(operand.layout):
                raise Unsupported(
                    f"the einsum '{equation}' on an operand with {len(operand.layout)} dimensions"
                )
            for letter, role in zip(spec, operand.layout, strict=True):
                role_of.setdefault(letter, role)
    sizes: dict[str, int] = {}
    for spec, name in zip(lhs.split(","), call.node.input, strict=False):
        shape = call.shape(name)
        if shape is not None and len(shape) == len(spec):
            for letter, n in zip(spec, shape, strict=True):
                if n != 1 or letter not in sizes:
                    sizes[letter] = int(n)
    if all(c in sizes for c in rhs):
        call.remember_shape(tuple(sizes[c] for c in rhs))
    contracted = [role for letter, role in role_of.items() if letter not in rhs]
    return call.mix(contracted, tuple(role_of.get(c, "C") for c in rhs))


# -- layout plumbing (no layer) ---------------------------------------------------------------------------


def _transpose(call: OnnxCall) -> Act:
    x = call.x
    perm = call.attr("perm") or list(range(len(x.layout)))[::-1]
    if sorted(int(p) for p in perm) != list(range(len(x.layout))):
        raise Unsupported(f"a Transpose with perm {list(perm)} of a tensor with {len(x.layout)} dimensions")
    shape = call.shape(call.node.input[0])
    if shape is not None:
        call.remember_shape(tuple(shape[int(p)] for p in perm))
    return call.relayout(tuple(x.layout[int(p)] for p in perm))


def _reshape(call: OnnxCall) -> Act:
    x = call.x
    before = call.shape(call.node.input[0])
    after = call.shape(call.node.output[0])
    if after is None and before is not None:
        # ONNX's data propagation gives up on some shape arithmetic (Div): use the target's numbers
        # at the reference size, with Reshape's 0 (copy) and -1 (the rest)
        target = call.input(1)
        numbers = target.values if isinstance(target, ShapeOf) else None
        if isinstance(target, Const):
            numbers = target.value if target.value is not None else target.at_reference
        if numbers is not None:
            after = _reshaped(before, [int(n) for n in _flat(numbers)], bool(call.attr("allowzero", 0)))
            call.remember_shape(after)
    if before is None or after is None:
        raise Unsupported("the shapes around this reshape could not be inferred")
    blocks: dict[str, dict[int, int]] = {}
    fixed = _constant_entries(call.input(1), after)
    layout = regroup(x.layout, before, after, call.ndim, blocks, fixed=fixed)
    if layout is None:
        raise Unsupported(f"a reshape from {list(before)} to {list(after)}")
    split, merge = blocks["split"], blocks["merge"]
    if split and merge:
        raise Unsupported(f"a reshape from {list(before)} to {list(after)} that splits and merges blocks")
    if split:  # space to depth: each block of b positions becomes channels of one position
        kernel = tuple(split.get(a, 1) for a in range(call.ndim))
        # the block indices are the positions of the new map
        layout = tuple(
            r.axis if isinstance(r, Block) and r.kind == "G" and split.get(r.axis) == r.size else r
            for r in layout
        )
        if any(isinstance(r, Block) for r in layout):
            raise Unsupported(
                f"a reshape from {list(before)} to {list(after)} that moves blocks of positions"
            )
        return call.emit(layout=layout, kernel=kernel, stride=kernel)
    if merge:  # depth to space: output position v comes from position v // b
        scale = tuple(Fraction(merge.get(a, 1)) for a in range(call.ndim))
        return call.emit(layout=layout, kind="resample", resample=Resample("nearest", scale=scale))
    return _maybe_flatten(call, layout)


def _constant_entries(target: Any, after: tuple[int, ...]) -> tuple[bool, ...] | None:
    """Which entries of a Reshape's target are constants of the file (0 and -1 are not sizes)."""
    if isinstance(target, Const) and target.value is not None:
        numbers = [int(n) for n in _flat(target.value)]
        flags = [True] * len(numbers)
    elif isinstance(target, Const) and target.constant_entries is not None:
        numbers = [int(n) for n in _flat(target.at_reference)]
        flags = list(target.constant_entries)
    elif isinstance(target, ShapeOf) and target.values is not None:
        numbers = list(target.values)
        flags = [isinstance(r, tuple) and r[:1] == ("K",) for r in target.roles]
    else:
        return None
    if len(numbers) != len(after) or len(flags) != len(after):
        return None
    return tuple(f and n > 0 for f, n in zip(flags, numbers, strict=True))


def _reshaped(before: tuple[int, ...], target: list[int], allowzero: bool) -> tuple[int, ...] | None:
    sizes = [before[i] if n == 0 and not allowzero and i < len(before) else n for i, n in enumerate(target)]
    if sizes.count(-1) > 1:
        return None
    if -1 in sizes:
        known = math.prod(n for n in sizes if n != -1)
        if known == 0 or math.prod(before) % known:
            return None
        sizes[sizes.index(-1)] = math.prod(before) // known
    return tuple(sizes) if math.prod(sizes) == math.prod(before) else None


def _maybe_flatten(call: OnnxCall, layout: Layout) -> Act:
    if "F" in layout:
        return call.emit(layout=layout, kind="flatten")
    return call.relayout(layout)


def _flatten(call: OnnxCall) -> Act:
    x = call.x
    rank = len(x.layout)
    axis = int(call.attr("axis", 1)) % (rank + 1)
    left, right = list(x.layout[:axis]), list(x.layout[axis:])
    roles = [
        merged(part, 1, call.ndim) if len(part) > 1 else (part[0] if part else "N") for part in (left, right)
    ]
    return _maybe_flatten(call, tuple(roles))


def _squeeze(call: OnnxCall) -> Act:
    x = call.x
    rank = len(x.layout)
    axes = _axes(call, rank)
    if axes is None:
        shape = call.shape(call.node.input[0])
        if shape is None:
            raise Unsupported("a squeeze without axes on a tensor of unknown shape")
        axes = [d for d, n in enumerate(shape) if n == 1]
    shape = call.shape(call.node.input[0])
    if shape is not None:
        call.remember_shape(tuple(n for d, n in enumerate(shape) if d not in axes))
    return call.relayout(tuple(r for d, r in enumerate(x.layout) if d not in axes))


def _unsqueeze(call: OnnxCall) -> Act:
    x = call.x
    axes = call.attr("axes")
    if axes is None:
        axes = _flat(call.constant(1, "axes"))
    rank = len(x.layout) + len(axes)
    layout = list(x.layout)
    shape = call.shape(call.node.input[0])
    dims = None if shape is None else list(shape)
    for a in sorted(int(a) % rank for a in axes):
        layout.insert(a, "N")
        if dims is not None:
            dims.insert(a, 1)
    if dims is not None:
        call.remember_shape(tuple(dims))
    return call.relayout(tuple(layout))


def _expand(call: OnnxCall) -> Act:
    import contextlib

    import numpy as np

    x = call.x
    before, target = call.shape(call.node.input[0]), _reference_numbers(call.input(1))
    if before is not None and target is not None:
        with contextlib.suppress(ValueError):  # shapes that do not broadcast stay unknown
            call.remember_shape(
                tuple(int(n) for n in np.broadcast_shapes(before, tuple(int(t) for t in target)))
            )
    shape = call.shape(call.node.output[0])
    if shape is not None and len(shape) > len(x.layout):
        return call.relayout(("N",) * (len(shape) - len(x.layout)) + x.layout)
    return x


def _split(call: OnnxCall) -> Any:
    x = call.x
    axis = int(call.attr("axis", 0)) % len(x.layout)
    if is_spatial(x.layout[axis]):
        raise Unsupported("splitting along a spatial axis")
    shape = call.shape(call.node.input[0])
    if shape is not None:
        given = call.attr("split")
        if given is None and call.input(1) is not None:
            given = _flat(call.constant(1, "split"))
        count = len(call.node.output)
        sizes = [int(v) for v in given] if given else [-(-shape[axis] // count)] * count
        sizes[-1] = shape[axis] - sum(sizes[:-1])
        for i, size in enumerate(sizes):
            call.remember_shape((*shape[:axis], size, *shape[axis + 1 :]), i)
    return tuple(x for _ in call.node.output)


def _slice(call: OnnxCall) -> Act:
    x = call.x
    rank = len(x.layout)
    if len(call.inputs) > 1:
        if call.input(3) is not None:
            axes = _flat(call.constant(3, "axes"))
        else:
            count = call.input_dims(1) or call.shape(call.node.input[1])
            axes = list(range(count[0] if count else rank))
        if not any(is_spatial(x.layout[int(a) % rank]) for a in axes):
            _slice_shape(call, axes)
            return x  # a slice of channels (or batch): every position keeps its field, whatever the bounds
        computed = any(_present(call.input(i)) is None for i in (1, 2) if call.input(i) is not None)
        if computed and len(axes) == 1:
            d = int(axes[0]) % rank
            return _roll_piece(call, x.layout[d], d)
        starts = _flat(call.constant(1, "starts"))
        ends = _flat(call.constant(2, "ends"))
        steps = _flat(call.constant(4, "steps")) if call.input(4) is not None else [1] * len(starts)
    else:
        starts, ends = call.attr("starts"), call.attr("ends")
        axes = call.attr("axes") or list(range(len(starts)))
        steps = [1] * len(starts)
    stride, padding = [1] * call.ndim, [(0, 0)] * call.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        start, end, step = int(start), int(end), int(step)
        role = x.layout[int(axis) % rank]
        if not is_spatial(role):
            continue  # a slice of channels: every position keeps its field
        ext = role if isinstance(role, Extended) else None
        if ext is not None and len(starts) == 1 and _phase_ok(call, int(axis) % rank, ext, start, end, step):
            # one phase of a subsampling by `step` of an axis padded to whole blocks of `step` (Swin's
            # patch merging): taken further only by a Concat that gathers every phase (below)
            shape = call.shape(call.node.input[0])
            if shape is not None:
                d = int(axis) % rank
                call.remember_shape((*shape[:d], shape[d] // step, *shape[d + 1 :]))
            d = int(axis) % rank
            return call.relayout(x.layout[:d] + (Phase(ext.axis, step, start, ext.n0),) + x.layout[d + 1 :])
        if ext is not None and len(starts) == 1 and step == 1:
            # one half of a roll written with constant bounds (torch's TorchScript exporter)
            return _roll_piece(call, role, int(axis) % rank)
        if not isinstance(role, int):
            if isinstance(role, Extended):
                raise Unsupported(
                    f"a slice {start}:{end}:{step} of spatial axis {role.axis} padded by an amount "
                    "computed at run time (only a window partition or the crop back to the map size is "
                    "recognised after such a pad)"
                )
            raise Unsupported(f"slicing spatial positions held as {role!r}")
        if start == 0 and end >= TO_THE_END and step == 1:
            continue
        if start < 0 or step < 1 or 0 <= end < TO_THE_END:
            raise Unsupported(
                f"the slice {start}:{end}:{step} of spatial axis {role} depends on the size of the map "
                "(only non-negative starts with an end counted from the end are size-independent)"
            )
        stride[role] = step
        padding[role] = (-start, end if end < 0 else 0)
    if stride == [1] * call.ndim and padding == [(0, 0)] * call.ndim:
        return x
    return call.emit(kernel=(1,) * call.ndim, stride=tuple(stride), padding=tuple(padding))


def _phase_ok(call: OnnxCall, d: int, ext: Extended, start: int, end: int, step: int) -> bool:
    """A slice ``start::step`` to the end of an unrolled axis padded to a multiple of ``step``."""
    shape = call.shape(call.node.input[0])
    n0, shift = ext.n0, ext.shift
    return (
        shift == 0 and step >= 2 and 0 <= start < step and end >= TO_THE_END
        and shape is not None and shape[d] == -(-n0 // step) * step
    )  # fmt: skip


def _merge_phases(call: OnnxCall) -> Act | None:
    """``Concat`` along channels of every phase ``x[i::b, j::b]`` of a map padded to whole ``b x b`` blocks:
    a ``b x b`` window with stride ``b`` (ceil mode: the padded size), as the torch import reads Swin's
    patch merging. None when no input holds such a phase; Unsupported when the phases are not all there."""
    found = [[(d, r) for d, r in enumerate(a.layout) if isinstance(r, Phase)] for a in call.acts]
    if not any(found):
        return None
    sources = {a.source for a in call.acts}
    dims = {tuple(d for d, _ in f) for f in found}
    steps = {r.step for f in found for _, r in f}
    if len(sources) != 1 or len(dims) != 1 or len(steps) != 1 or len(call.acts) != len(call.inputs):
        raise Unsupported("a concatenation of subsampled phases of different maps or strides")
    b = steps.pop()
    (positions,) = dims
    phases = {tuple(r.start for _, r in f) for f in found}
    if len(phases) != len(call.acts) or len(phases) != b ** len(positions) or len(positions) != call.ndim:
        raise Unsupported(
            f"a concatenation of {len(call.acts)} phases of a subsampling by {b}: not every phase"
        )
    layout = list(call.x.layout)
    for d, r in found[0]:
        layout[d] = r.axis
    return call.emit(
        layout=tuple(layout), kernel=(b,) * call.ndim, stride=(b,) * call.ndim, ceil_mode=True,
    )  # fmt: skip


def _slice_shape(call: OnnxCall, axes: list[Any]) -> None:
    """The sliced shape at the reference size (bounds may be computed from shapes)."""
    shape = call.shape(call.node.input[0])
    bounds = [_reference_numbers(call.input(i)) for i in (1, 2)]
    steps = _reference_numbers(call.input(4)) if call.input(4) is not None else [1] * len(axes)
    if shape is None or bounds[0] is None or bounds[1] is None or steps is None:
        return
    out = list(shape)
    for a, start, end, step in zip(axes, bounds[0], bounds[1], steps, strict=False):
        d = int(a) % len(shape)
        out[d] = len(range(*slice(int(start), int(end), int(step)).indices(shape[d])))
    call.remember_shape(tuple(out))


def _reference_numbers(value: Any) -> list[Any] | None:
    if isinstance(value, ShapeOf):
        return None if value.values is None else list(value.values)
    if isinstance(value, Const):
        found = value.value if value.value is not None else value.at_reference
        return None if found is None else _flat(found)
    return None


def _gather(call: OnnxCall) -> Act:
    x = call.x
    if call.input(0) is not x:
        raise Unsupported("gathering with indices computed from the image")
    rank = len(x.layout)
    axis = int(call.attr("axis", 0)) % rank
    role = x.layout[axis]
    indices = call.input(1)
    shape, picked_dims = call.shape(call.node.input[0]), call.input_dims(1)
    if shape is not None and picked_dims is not None:
        call.remember_shape((*shape[:axis], *picked_dims, *shape[axis + 1 :]))
    scalar = (
        isinstance(indices, Const) and indices.value is not None and getattr(indices.value, "ndim", 1) == 0
    )
    if role in ("T", "Tc") and scalar:
        rest = x.layout[:axis] + x.layout[axis + 1 :]
        if role == "Tc" and int(indices.value) == 0:  # type: ignore[union-attr]
            # The constant token in front (ViT's class token): no local path, it sees the image only
            # through the attention that mixed every token.
            return call.global_(rest)
        return call.pointwise(rest)  # one token of the map: its field is that of any unit
    if is_spatial(role):
        raise Unsupported("selecting positions of a spatial axis")
    dims = call.input_dims(1)
    if dims is None:  # a scalar index has dims (): it drops the axis
        dims = call.shape(call.node.input[1])
    if dims is None:
        raise Unsupported("gathering with indices of unknown shape")
    # Every dimension of the indices selects along the same (non-spatial) role; size 1 carries nothing.
    picked = tuple("N" if n == 1 else x.layout[axis] for n in dims)
    return call.relayout(x.layout[:axis] + picked + x.layout[axis + 1 :])


def _shape(call: OnnxCall) -> ShapeOf:
    x = call.x
    cut = slice(int(call.attr("start", 0)), None if call.attr("end") is None else int(call.attr("end")))
    shape = call.shape(call.node.input[0])
    return ShapeOf(x.source, tuple(x.layout[cut]), None if shape is None else tuple(shape[cut]))


def _constant(call: OnnxCall) -> Const:
    return Const()


def _pad(call: OnnxCall) -> Act:
    x = call.x
    mode = call.attr("mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        raise Unsupported(f"pad mode '{mode}' (wrap reads the opposite border)")
    rank = len(x.layout)
    if len(call.inputs) >= 2 and _present(call.input(1)) is None and mode == "constant":
        return _pad_to_blocks(call)
    pads = call.attr("pads") if len(call.inputs) < 2 else _flat(call.constant(1, "pads"))
    if pads is None:
        raise Unsupported("a pad without pads")
    axes = _flat(call.constant(3, "axes")) if call.input(3) is not None else list(range(rank))
    axes = [int(a) % rank for a in axes]
    if len(pads) != 2 * len(axes):
        raise Unsupported(f"{len(pads)} pads for {len(axes)} axes")
    padding = [(0, 0)] * call.ndim
    for i, d in enumerate(axes):
        pair = (int(pads[i]), int(pads[i + len(axes)]))
        role = x.layout[d]
        if isinstance(role, int):
            padding[role] = pair
        elif role in ("T", "X") and pair != (0, 0):
            raise Unsupported("padding flattened spatial positions")
    if all(p == (0, 0) for p in padding):
        return call.pointwise()
    return call.emit(kernel=(1,) * call.ndim, padding=tuple(padding))


def _pad_to_blocks(call: OnnxCall) -> Act:
    """Zero padding by amounts computed from the map size: Swin's pad to whole windows.

    Recognised only as padding at the end of spatial axes (nothing at their start or on other
    dimensions at the reference size); the axes become ``"E<axis>/<n0>>0"`` and only a window
    partition into blocks that the padded size fills exactly (at the reference size) takes them further:
    the window layer pads to whole windows itself. Anything else that reads them is unknown.
    """
    x = call.x
    rank = len(x.layout)
    pads = _reference_numbers(call.input(1))
    shape = call.shape(call.node.input[0])
    if call.input(3) is not None or pads is None or len(pads) != 2 * rank or shape is None:
        raise Unsupported("a pad whose amounts are computed at run time")
    layout = list(x.layout)
    for d in range(rank):
        begin, end = int(pads[d]), int(pads[d + rank])
        role = x.layout[d]
        if isinstance(role, int) and begin == 0:
            layout[d] = Extended(role, int(shape[d]))
        elif begin or end:
            raise Unsupported(
                "a pad by amounts computed at run time that is not at the end of the spatial axes"
            )
    call.remember_shape(tuple(int(n) + int(pads[d]) + int(pads[d + rank]) for d, n in enumerate(shape)))
    return call.relayout(tuple(layout))


def _roll_piece(call: OnnxCall, role: Any, d: int) -> Act:
    """A slice with bounds computed from the map size: one half of a cyclic shift (or the crop of the
    padding to whole windows, once the axis is back in place and unrolled)."""
    x = call.x
    shape = call.shape(call.node.input[0])
    starts, ends = _reference_numbers(call.input(1)), _reference_numbers(call.input(2))
    steps = _reference_numbers(call.input(4)) if call.input(4) is not None else [1]
    if shape is None or starts is None or ends is None or steps is None or len(starts) != 1:
        raise Unsupported(f"the slice of spatial axis {role} at bounds computed at run time")
    n = shape[d]
    start, end = int(starts[0]), int(ends[0])
    start, end = start + n if start < 0 else start, end + n if end < 0 else min(end, n)
    if int(steps[0]) != 1 or start < 0 or end < start:
        raise Unsupported(f"the slice {start}:{end} of spatial axis {role} at bounds computed at run time")
    ext = role if isinstance(role, Extended) else None
    out_shape = (*shape[:d], end - start, *shape[d + 1 :])
    call.remember_shape(out_shape)
    bound = call.input(2)
    to_the_end = (isinstance(bound, ShapeOf) and bound.source == x.source) or int(ends[0]) >= TO_THE_END
    if ext is not None and ext.shift == 0 and start == 0 and end == ext.n0 and not to_the_end:
        # the padding to whole windows cropped: the axis as it was
        return call.relayout(x.layout[:d] + (ext.axis,) + x.layout[d + 1 :])
    return call.relayout(x.layout[:d] + (Cut(role, start, end),) + x.layout[d + 1 :])


def _roll(call: OnnxCall, axis: int) -> Act | None:
    """``Concat(x[k:n], x[:k])`` along one axis: a cyclic shift by ``k`` (None when not this pattern)."""
    pieces = [a.layout[axis] for a in call.acts]
    if len(call.acts) != len(call.inputs) or len(pieces) != 2:
        return None
    tail, head = pieces
    if not isinstance(tail, Cut) or not isinstance(head, Cut):
        return None
    role, k, n = tail.role, tail.start, tail.end
    if role != head.role or head.start != 0 or head.end != k or len({a.source for a in call.acts}) != 1:
        return None
    rolled: Role
    if isinstance(role, int):
        rolled = Extended(role, n, k % n)
    elif isinstance(role, Extended):
        rolled = Extended(role.axis, role.n0, (role.shift + k) % n)
    else:
        return None
    x = call.acts[0]
    return call.relayout(x.layout[:axis] + (rolled,) + x.layout[axis + 1 :], x)


# -- the table -------------------------------------------------------------------------------------------

POINTWISE = (
    "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Gelu", "Erf", "Sigmoid", "HardSigmoid",
    "HardSwish", "Swish", "Mish", "Softplus", "Softsign", "Tanh", "Clip", "ThresholdedRelu", "Shrink",
    "Exp", "Log", "Abs", "Neg", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Not", "Sin",
    "Cos", "Dropout", "BatchNormalization", "InstanceNormalization", "LayerNormalization",
    "GroupNormalization", "MeanVarianceNormalization", "LpNormalization", "LRN",
    "RMSNormalization", "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mean", "Sum", "Where",
    "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "And", "Or", "Xor", "Mod",
    "BitShift", "IsNaN", "IsInf", "QuantizeLinear", "DequantizeLinear",
)  # fmt: skip

NO_LAYER = ("Identity", "Cast", "CastLike", "Expand")


def register(table: RuleTable) -> None:
    """Add the built-in ONNX rules to ``table``."""
    rules: dict[str, Any] = {
        "Conv": _conv, "ConvTranspose": _conv_transpose, "MaxPool": _pool, "AveragePool": _pool,
        "LpPool": _pool, "GlobalAveragePool": _global_pool, "GlobalMaxPool": _global_pool,
        "GlobalLpPool": _global_pool, "SpaceToDepth": _space_to_depth, "DepthToSpace": _depth_to_space,
        "Resize": _resize, "Upsample": _resize, "Concat": _concat, "Softmax": _softmax,
        "LogSoftmax": _softmax, "Hardmax": _softmax, "Gemm": _gemm, "MatMul": _matmul,
        "Einsum": _einsum, "Transpose": _transpose, "Reshape": _reshape, "Flatten": _flatten,
        "Squeeze": _squeeze, "Unsqueeze": _unsqueeze, "Split": _split, "Slice": _slice, "Gather": _gather,
        "Shape": _shape,
        "Size": _constant, "ConstantOfShape": _constant, "Pad": _pad, "Expand": _expand,
        "Identity": _same, "Cast": _same, "CastLike": _same,
    }  # fmt: skip
    for op in (
        "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2",
        "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin",
    ):  # fmt: skip
        rules[op] = _reduce
    for op in POINTWISE:
        rules.setdefault(op, _pointwise)
    for op, rule in rules.items():
        table.operator("onnx", op, rule)
