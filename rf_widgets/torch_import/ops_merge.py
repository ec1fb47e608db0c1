"""Built-in rules that combine activations or reduce along dimensions: arithmetic, concatenation, means."""

from __future__ import annotations

import operator
from typing import Any

import torch

from rf_widgets.torch_import.call import Act, Call
from rf_widgets.torch_import.layout import is_spatial
from rf_widgets.torch_import.ops_layout import dims
from rf_widgets.torch_import.rules import RuleTable, Unsupported

__all__ = ["register"]

BINARY_OPS: dict[Any, str] = {
    operator.add: "add", operator.iadd: "add", torch.add: "add", "add": "add", "add_": "add",
    operator.sub: "sub", operator.isub: "sub", torch.sub: "sub", "sub": "sub", "sub_": "sub",
    operator.mul: "mul", operator.imul: "mul", torch.mul: "mul", "mul": "mul", "mul_": "mul",
    operator.truediv: "div", operator.itruediv: "div", torch.div: "div", "div": "div", "div_": "div",
    operator.floordiv: "div", torch.maximum: "max", torch.minimum: "min", torch.where: "where",
}  # fmt: skip

REDUCTIONS: dict[Any, str] = {
    torch.mean: "mean", "mean": "mean", torch.sum: "sum", "sum": "sum", torch.amax: "amax",
    "amax": "amax", torch.amin: "amin", "amin": "amin", torch.std: "std", "std": "std",
    torch.var: "var", "var": "var", torch.logsumexp: "logsumexp", "logsumexp": "logsumexp",
    torch.norm: "norm", "norm": "norm",
}  # fmt: skip


def _binary(op: str) -> Any:
    def rule(call: Call) -> Act:
        layout = max((a.layout for a in call.acts), key=len)
        return call.pointwise(op, layout=layout)

    return rule


def _addcmul(call: Call) -> Act:
    # input + value * tensor1 * tensor2, position by position (ConvNeXt-V2's GRN, ResMLP's affine)
    layout = max((a.layout for a in call.acts), key=len)
    return call.pointwise("addcmul", layout=layout)


def _normalize(call: Call) -> Act:
    # x / max(||x||_p along dim, eps): mixes values along dim (channels: pointwise; positions: global)
    dim = int(call.literal(2, "dim", 1)) % len(call.x.layout)
    return call.mix([call.x.layout[dim]], op="normalize")


def reduce(call: Call, op: str, dim: Any, keepdim: Any) -> Act:
    x = call.x
    along = dims(dim, len(x.layout))
    layout = x.layout if keepdim else tuple(r for d, r in enumerate(x.layout) if d not in along)
    return call.mix([x.layout[d] for d in along], layout, op=op)


def _reduction(op: str) -> Any:
    def rule(call: Call) -> Act:
        return reduce(call, op, call.literal(1, "dim", None), call.literal(2, "keepdim", False))

    return rule


def _max(call: Call) -> Any:
    op = "max" if call.op == "max" else "min"
    other = call.arg(1, "dim", None)
    if isinstance(other, Act):
        return call.pointwise(op, layout=max((a.layout for a in call.acts), key=len))
    if other is None:
        return reduce(call, op, None, False)
    out = reduce(call, op, call.literal(1, "dim", None), call.literal(2, "keepdim", False))
    return (out, out)


def _cat(call: Call) -> Any:
    x = call.x
    dim = int(call.literal(1, "dim", 0)) % len(x.layout)
    if call.op == "stack":
        return call.pointwise("stack", layout=x.layout[:dim] + ("C",) + x.layout[dim:])
    roles = [a.layout[dim] if len(a.layout) > dim else None for a in call.acts]
    spatial = [a for a, r in zip(call.acts, roles, strict=True) if r is not None and is_spatial(r)]
    if not spatial:
        return call.pointwise("concat" if len(call.acts) > 1 else "cat")
    role = spatial[0].layout[dim]
    if len(call.acts) == 1:
        # One activation and constants (a class token): positions are added, none are mixed.
        tensors = call.args[0] if isinstance(call.args[0], (list, tuple)) else call.args
        layout = x.layout
        if role in ("T", "Tc") and not isinstance(tensors[0], Act):
            layout = x.layout[:dim] + ("Tc",) + x.layout[dim + 1 :]
        return call.pointwise("cat", layout=layout)
    if len(spatial) == 1 and role in ("T", "Tc") and all(r == "N" for r in roles if r not in ("T", "Tc")):
        # the map's tokens and constant tokens sliced off before (CoaT's class token, RoPE applied to the
        # map's tokens only): each token of the map is its input's own, the constants are no position
        layout = spatial[0].layout[:dim] + ("Tc",) + spatial[0].layout[dim + 1 :]
        return call.pointwise("cat", inputs=spatial, layout=layout)
    raise Unsupported("concatenating activations along a spatial axis")


def register(table: RuleTable) -> None:
    """Add this module's rules to ``table``."""
    for key, op in BINARY_OPS.items():
        (table.method if isinstance(key, str) else table.function)(key, _binary(op))
    for key, op in REDUCTIONS.items():
        (table.method if isinstance(key, str) else table.function)(key, _reduction(op))
    fn: Any
    for fn in (torch.max, torch.min):
        table.function(fn, _max)
    for name in ("max", "min"):
        table.method(name, _max)
    for fn in (torch.cat, torch.concat, torch.concatenate, torch.stack):
        table.function(fn, _cat)
    table.function(torch.addcmul, _addcmul)
    table.method("addcmul", _addcmul)
    table.function(torch.nn.functional.normalize, _normalize)
