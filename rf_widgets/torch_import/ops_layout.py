"""Built-in rules that reinterpret dimensions: reshapes, permutes, flatten, squeeze, indexing, splitting.

Most of them emit no layer: the activation keeps its producer and gets a new layout. Slicing a spatial
axis is a 1x1 window with a stride and a crop; flattening the spatial axes into features is a
``flatten`` layer.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import torch
import torch.fx as fx

from rf_widgets.torch_import.call import CONST, Act, Call, ShapeOf
from rf_widgets.torch_import.layout import is_spatial, regroup, token_grid
from rf_widgets.torch_import.rules import RuleTable, Unsupported

__all__ = ["dims", "flatten", "register"]

_METADATA_ATTRIBUTES = {"dtype", "device", "ndim", "is_cuda", "requires_grad", "layout", "is_sparse"}


def dims(dim: Any, rank: int) -> list[int]:
    """Dimension arguments as non-negative ints (None: every dimension)."""
    if dim is None or dim is CONST:
        return list(range(rank))
    if isinstance(dim, int):
        return [dim % rank]
    return [int(d) % rank for d in dim]


def flatten(call: Call, start: int, end: int) -> Act:
    x = call.x
    rank = len(x.layout)
    start, end = start % rank, end % rank
    merged = list(x.layout[start : end + 1])
    if len(merged) <= 1:
        return x
    spatial = [r for r in merged if is_spatial(r)]
    kept = [r for r in merged if r != "N"]
    if not spatial:
        role: Any = "C"
    elif len(kept) == 1:
        # positions merged with the batch (LeViT's BatchNorm1d over (B * tokens, C)): each value keeps its
        # position; mixing along the merged dimension mixes positions, as along the positions alone
        role = kept[0]
    elif merged == list(range(call.ndim)):
        role = "T"
        shape = call.shape_of(call.node.args[0])
        if shape is not None:
            _remember_grid(call, x.layout, shape)
    elif all(isinstance(r, int) for r in spatial) and len(spatial) == call.ndim:
        layout = x.layout[:start] + ("F",) + x.layout[end + 1 :]
        return call.emit("flatten" if call.module is None else None, layout=layout, kind="flatten")
    else:
        role = "X"
    return call.relayout(x.layout[:start] + (role,) + x.layout[end + 1 :])


def _reshape(call: Call) -> Act:
    x = call.x
    source = call.node.args[0]
    before = call.shape_of(source)
    after = call.shape_of(call.node)
    if before is None or after is None:
        raise Unsupported("the shapes around this reshape could not be worked out")
    if len(before) != len(x.layout):
        # an unknown operation before it changed the rank (timm's HaloNet without its rule: unfold)
        raise Unsupported(
            f"its input's dimensions are not known ({len(before)} dimensions, {len(x.layout)} followed)"
        )
    grids = call.builder.token_grids
    layout = regroup(x.layout, before, after, call.ndim, grids)
    if layout is None:
        raise Unsupported(f"a reshape from {before} to {after}")
    if "T" in layout and "T" not in x.layout:
        _remember_grid(call, x.layout, before)
    return call.relayout(layout)


def _remember_grid(call: Call, layout: Any, shape: Any) -> None:
    """The map that is being flattened into tokens: a later reshape of the tokens to it restores the axes."""
    grid = token_grid(layout, shape, call.ndim)
    if grid is not None:
        call.builder.token_grids.add(grid)


def _permute(call: Call) -> Act:
    x = call.x
    given = call.args[1:] if len(call.args) > 1 else (call.kwargs.get("dims") or ())
    order = given[0] if len(given) == 1 and isinstance(given[0], (tuple, list)) else given
    return call.relayout(tuple(x.layout[int(d) % len(x.layout)] for d in order))


def _transpose(call: Call) -> Act:
    x = call.x
    rank = len(x.layout)
    d0 = int(call.literal(1, "dim0", 0)) % rank
    d1 = int(call.literal(2, "dim1", 1)) % rank
    layout = list(x.layout)
    layout[d0], layout[d1] = layout[d1], layout[d0]
    return call.relayout(tuple(layout))


def _movedim(call: Call) -> Act:
    x = call.x
    rank = len(x.layout)
    src = dims(call.literal(1, "source", 0), rank)
    dst = dims(call.literal(2, "destination", 0), rank)
    order = [d for d in range(rank) if d not in src]
    for s, t in sorted(zip(dst, src, strict=True)):
        order.insert(s, t)
    return call.relayout(tuple(x.layout[d] for d in order))


def _flatten_fn(call: Call) -> Act:
    return flatten(call, int(call.literal(1, "start_dim", 0)), int(call.literal(2, "end_dim", -1)))


def _unsqueeze(call: Call) -> Act:
    x = call.x
    d = int(call.literal(1, "dim", 0)) % (len(x.layout) + 1)
    return call.relayout(x.layout[:d] + ("N",) + x.layout[d:])


def _squeeze(call: Call) -> Act:
    x = call.x
    dim = call.literal(1, "dim", None)
    if dim is None:
        shape = call.shape_of(call.node.args[0])
        if shape is None:
            raise Unsupported("squeeze without a dimension on a tensor of unknown shape")
        gone = {d for d, n in enumerate(shape) if n == 1}
    else:
        gone = set(dims(dim, len(x.layout)))
    return call.relayout(tuple(r for d, r in enumerate(x.layout) if d not in gone))


def _same(call: Call) -> Act:
    return call.x


def _split(call: Call) -> Any:
    x = call.x
    dim = int(call.literal(2, "dim", 0)) % len(x.layout)
    if is_spatial(x.layout[dim]):
        raise Unsupported("splitting along a spatial axis")
    count = call.args[1] if call.op == "chunk" and isinstance(call.args[1], int) else None
    if count is None:
        shape = call.shape_of(call.node)
        count = len(shape) if isinstance(shape, tuple) else 64
    return tuple(x for _ in range(max(int(count), 1)))


def _unbind(call: Call) -> Any:
    x = call.x
    dim = int(call.literal(1, "dim", 0)) % len(x.layout)
    if is_spatial(x.layout[dim]):
        raise Unsupported("unbinding a spatial axis")
    layout = x.layout[:dim] + x.layout[dim + 1 :]
    return tuple(Act(x.source, layout) for _ in range(64))


def _getattr(call: Call) -> Any:
    x, name = call.args[0], call.args[1]
    if not isinstance(x, Act):
        return CONST
    if name == "shape":
        return ShapeOf(x.source, x.layout)
    if name in ("T", "mT"):
        return call.relayout(x.layout[:-2] + (x.layout[-1], x.layout[-2]))
    if name in _METADATA_ATTRIBUTES:
        return CONST
    raise Unsupported(f"the tensor attribute '{name}'")


def _size(call: Call) -> Any:
    x = call.x
    d = call.arg(1, "dim", None)
    if d is None:
        return ShapeOf(x.source, x.layout)
    if isinstance(d, int):
        return ShapeOf(x.source, (x.layout[d],))
    return CONST


def _const(call: Call) -> Any:
    return CONST


def _getitem(call: Call) -> Any:
    value, index = call.args[0], call.args[1]
    if isinstance(value, (tuple, list)):
        return value[index] if isinstance(index, int) else CONST
    if not isinstance(value, Act):
        return CONST
    index = index if isinstance(index, tuple) else (index,)
    layout = list(value.layout)
    if any(isinstance(i, Act) for i in index):
        raise Unsupported("indexing with a tensor of positions")
    if Ellipsis in index:
        at = index.index(Ellipsis)
        fill = len(layout) - (len([i for i in index if i is not None]) - 1)
        index = index[:at] + (slice(None),) * fill + index[at + 1 :]
    out: list[Any] = []
    ndim = call.ndim
    stride, padding = [1] * ndim, [(0, 0)] * ndim
    constants = False
    d = 0
    for item in index:
        if item is None:
            out.append("N")
            continue
        if d >= len(layout):
            break
        role = layout[d]
        if isinstance(item, slice):
            if item == slice(None):
                out.append(role)
            elif isinstance(role, int):
                start, stop, step = item.start or 0, item.stop, item.step or 1
                if not all(isinstance(v, int) for v in (start, step)) or not isinstance(
                    stop, (int, type(None))
                ):
                    raise Unsupported(f"the slice {item} of a spatial axis is computed at run time")
                if start < 0 or (stop is not None and stop > 0) or step < 1:
                    raise Unsupported(f"the slice {item} of a spatial axis depends on its size")
                stride[role] = step
                padding[role] = (-start, 0 if stop is None else stop)
                out.append(role)
            elif role in ("T", "Tc"):
                kept, only_constants = _token_slice(call, role, item, d, len(out))
                constants = constants or only_constants
                out.append(kept)
            elif role == "X":
                out.append("X")
            else:
                out.append(role)
        elif isinstance(item, int):
            if isinstance(role, int):
                raise Unsupported("selecting one position of a spatial axis")
            if role in ("T", "Tc", "X"):
                rest = tuple(out) + tuple(layout[d + 1 :])
                if role == "Tc" and item == 0:
                    # A token concatenated as a constant (ViT's class token): it has no local path
                    # and sees the image only through the attention that mixed all tokens.
                    return call.global_("select", layout=rest)
                # One token of the map: its field is that of any unit of the map.
                return call.emit("select", layout=rest)
        else:
            raise Unsupported(f"indexing with {type(item).__name__}")
        d += 1
    out.extend(layout[d:])
    if constants:
        # the constant tokens in front of the map's (ViT's class token): as for selecting token 0, they
        # see the image only through whatever mixed all tokens
        return call.global_("select", layout=tuple(out))
    if stride != [1] * ndim or padding != [(0, 0)] * ndim:
        return call.emit(
            "slice", layout=tuple(out), kernel=(1,) * ndim, stride=tuple(stride), padding=tuple(padding)
        )
    return call.relayout(tuple(out))


def _token_slice(call: Call, role: Any, item: slice, before_dim: int, after_dim: int) -> tuple[Any, bool]:
    """The role of a slice of tokens, and whether it holds constant tokens only.

    All of them keep their role; after the constant tokens in front (``x[:, prefix:]``, sizes from the
    shape pass) the map's tokens are ``"T"``; the constant tokens alone (``x[:, :prefix]``) and an empty
    slice carry no position (``"N"``); any other part of the positions is ``"X"``.
    """
    start, stop, step = item.start, item.stop, item.step
    if start in (None, 0) and stop is None and step in (None, 1):
        return role, False
    before = call.shape_of(call.node.args[0])
    after = call.shape_of(call.node)
    if step not in (None, 1) or before is None or after is None:
        return "X", False
    if len(before) <= before_dim or len(after) <= after_dim:
        return "X", False
    n, m = before[before_dim], after[after_dim]
    if m == 0:
        return "N", False
    counts = {math.prod(grid) for grid in call.builder.token_grids}
    if role == "Tc" and stop is None and m in counts:
        return "T", False
    if role == "Tc" and start in (None, 0) and n - m in counts:
        return "N", True
    return "X", False


LAYOUT_METHODS: tuple[str, ...] = (
    "contiguous", "clone", "detach", "to", "float", "double", "half", "bfloat16", "type", "type_as",
    "requires_grad_", "cpu", "cuda", "expand", "expand_as",
)  # fmt: skip


def register(table: RuleTable) -> None:
    """Add this module's rules to ``table``."""
    for name in LAYOUT_METHODS:
        table.method(name, _same)
    for name in ("dim", "numel", "ndimension", "nelement", "get_device"):
        table.method(name, _const)
    table.method("size", _size)
    for check in (torch._assert, len, isinstance, torch.is_tensor):
        table.function(check, _const)
    table.function(getattr, _getattr)
    table.function(operator.getitem, _getitem)
    for key, rule in (
        ("reshape", _reshape), ("view", _reshape), ("view_as", _reshape), ("reshape_as", _reshape),
        ("permute", _permute), ("transpose", _transpose), ("swapaxes", _transpose),
        ("swapdims", _transpose), ("movedim", _movedim), ("flatten", _flatten_fn),
        ("unsqueeze", _unsqueeze), ("squeeze", _squeeze), ("chunk", _split), ("split", _split),
        ("tensor_split", _split), ("split_with_sizes", _split), ("unbind", _unbind),
    ):  # fmt: skip
        table.method(key, rule)
    fn: Any
    for fn, rule in (
        (torch.reshape, _reshape), (torch.permute, _permute), (torch.transpose, _transpose),
        (torch.swapaxes, _transpose), (torch.swapdims, _transpose), (torch.movedim, _movedim),
        (torch.flatten, _flatten_fn), (torch.unsqueeze, _unsqueeze), (torch.squeeze, _squeeze),
        (torch.chunk, _split), (torch.split, _split), (torch.tensor_split, _split),
        (torch.split_with_sizes, _split), (torch.unbind, _unbind),
    ):  # fmt: skip
        table.function(fn, rule)


def is_node(value: Any) -> bool:
    return isinstance(value, fx.Node)
