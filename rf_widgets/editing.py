"""Edits of a layer stack, as pure functions: each returns a new :class:`Stack` or raises an RFError.

The Explorer calls these and keeps the previous stack when one raises, so an invalid edit never loses
what the user had. :func:`to_python` writes code that rebuilds a stack with the public constructors.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from typing import Any

from rf_widgets.core.graph import Stack
from rf_widgets.core.layers import INPUT, Layer
from rf_widgets.errors import GraphError, LayerSpecError

__all__ = [
    "bypass_layer",
    "change_layer",
    "insert_layer",
    "move_layer",
    "remove_layer",
    "to_python",
]


def _rebuilt(stack: Stack, layers: list[Layer]) -> Stack:
    return stack.replace(layers)


def _explicit(stack: Stack) -> list[Layer]:
    """The layers with every input spelled out, so that reordering cannot rewire them by accident."""
    return [replace(layer, inputs=layer.inputs) for layer in stack.layers]


def rename_inputs(layers: list[Layer], old: str, new: tuple[str, ...]) -> list[Layer]:
    out = []
    for layer in layers:
        inputs = layer.inputs or ()
        if old in inputs:
            rewired: list[str] = []
            for name in inputs:
                rewired.extend(new if name == old else (name,))
            layer = replace(layer, inputs=tuple(dict.fromkeys(rewired)))
        out.append(layer)
    return out


def insert_layer(stack: Stack, position: int, layer: Layer) -> Stack:
    """Insert ``layer`` at ``position`` in a chain: it takes the input of the layer now at that place.

    With ``layer.inputs`` set, the layer is wired as declared instead and nothing else changes.
    """
    layers = _explicit(stack)
    if not 0 <= position <= len(layers):
        raise GraphError(f"position must be between 0 and {len(layers)}, got {position}")
    if layer.name in stack.index:
        raise GraphError(f"layer name '{layer.name}' is used twice")
    if layer.inputs is None:
        previous = layers[position - 1].name if position > 0 else INPUT
        layer = replace(layer, inputs=(previous,))
        if position < len(layers):
            after = layers[position]
            layers[position] = replace(
                after, inputs=tuple(layer.name if name == previous else name for name in after.inputs or ())
            )
    layers.insert(position, layer)
    return _rebuilt(stack, layers)


def remove_layer(stack: Stack, name: str) -> Stack:
    """Remove ``name``; the layers it fed take its inputs instead."""
    layer = stack[name]
    if len(stack.layers) == 1:
        raise GraphError(f"cannot remove '{name}': it is the only layer")
    layers = [item for item in _explicit(stack) if item.name != name]
    inputs = layer.inputs or (INPUT,)
    if len(inputs) > 1 and any(name in (item.inputs or ()) for item in layers):
        raise GraphError(
            f"cannot remove the merge '{name}' while other layers use it: it has {len(inputs)} inputs"
        )
    return _rebuilt(stack, rename_inputs(layers, name, inputs))


def move_layer(stack: Stack, name: str, offset: int) -> Stack:
    """Swap a layer of a chain with its neighbour (``offset`` -1: earlier, +1: later)."""
    if offset not in (-1, 1):
        raise GraphError(f"a layer moves one place at a time, got offset {offset}")
    order = list(stack.names)
    i = order.index(stack[name].name)
    j = i + offset
    if not 0 <= j < len(order):
        raise GraphError(f"'{name}' is already the {'first' if offset < 0 else 'last'} layer")
    first, second = sorted((i, j))
    a, b = stack.layers[first], stack.layers[second]
    if b.inputs != (a.name,) or any(
        a.name in (item.inputs or ()) for item in stack.layers if item.name != b.name
    ):
        raise GraphError(f"'{a.name}' and '{b.name}' are not a simple chain; only chained layers swap")
    layers = _explicit(stack)
    a_inputs = a.inputs
    new_b = replace(b, inputs=a_inputs)
    new_a = replace(a, inputs=(b.name,))
    layers[first], layers[second] = new_b, new_a
    layers = [
        replace(item, inputs=tuple(a.name if n == b.name else n for n in item.inputs or ()))
        if k > second
        else item
        for k, item in enumerate(layers)
    ]
    return _rebuilt(stack, layers)


def change_layer(stack: Stack, name: str, **changes: Any) -> Stack:
    """A new stack where layer ``name`` has other parameters (kernel, stride, dilation, padding, ...).

    Values follow the constructors: an int applies to every axis, a tuple gives one value per axis;
    padding also takes one ``(lo, hi)`` pair per axis, or ``"same"`` / ``"same_lower"`` / ``"valid"``.
    """
    from rf_widgets.core.layers import ints_per_axis, padding_or_mode

    layer = stack[name]
    allowed = {"kernel", "stride", "dilation", "padding", "op", "kind", "ceil_mode", "output_size"}
    unknown = set(changes) - allowed
    if unknown:
        raise LayerSpecError(f"cannot change {', '.join(sorted(unknown))} of layer '{name}'")
    fields: dict[str, Any] = {}
    for key, value in changes.items():
        if key in ("kernel", "stride", "dilation"):
            fields[key] = ints_per_axis(value, key, name)
        elif key == "padding":  # explicit padding replaces "same", and a word sets it
            fields["padding"], fields["padding_mode"] = padding_or_mode(value, name)
        else:
            fields[key] = value
    if fields.get("kind", layer.kind) != "window" and any(
        k in fields for k in ("kernel", "stride", "dilation", "padding", "padding_mode")
    ):
        raise LayerSpecError(f"layer '{name}' is {layer.kind}: it has no kernel, stride or padding to change")
    changed = replace(layer, **fields).broadcast(stack.ndim)
    layers = [changed if item.name == name else item for item in stack.layers]
    return _rebuilt(stack, layers)


def bypass_layer(stack: Stack, name: str) -> Stack:
    """Keep ``name`` in place but make it add no context (an identity), e.g. to skip a downsampling."""
    layer = stack[name]
    if len(layer.inputs or ()) > 1:
        raise GraphError(f"cannot bypass the merge '{name}': it has {len(layer.inputs or ())} inputs")
    identity = Layer(
        layer.name,
        f"{layer.op} (bypassed)",
        "window",
        layer.inputs,
        kernel=(1,) * stack.ndim,
        stride=(1,) * stack.ndim,
        dilation=(1,) * stack.ndim,
        padding=((0, 0),) * stack.ndim,
        module=layer.module,
    )
    return _rebuilt(stack, [identity if item.name == name else item for item in stack.layers])


def to_python(stack: Stack) -> str:
    """Python code that rebuilds ``stack`` with the public constructors."""
    from rf_widgets.stackfile import stack_to_dict

    document = stack_to_dict(stack)
    body = []
    for layer, spec in zip(stack.layers, document["layers"], strict=True):
        if layer.kind == "resample" and layer.resample is not None:
            body.append(f"        {_resample_constructor(layer, spec)},")
        else:
            body.append(f"        {_constructor(spec)},")
    header = ["import rf_widgets as rfw"]
    if any("Fraction(" in line for line in body):
        header.insert(0, "from fractions import Fraction")
    if any("Resample(" in line for line in body):
        header.append("from rf_widgets.core.layers import Resample")
    lines = [*header, "", "stack = rfw.Stack(", "    [", *body]
    lines.append("    ],")
    lines.append(f"    ndim={stack.ndim},")
    lines.append(f"    name={stack.name!r},")
    lines.append(")")
    return "\n".join(lines) + "\n"


_CONSTRUCTOR = {
    "conv": "conv",
    "pool": "pool",
    "elementwise": "elementwise",
    "add": "add",
    "mul": "mul",
    "concat": "concat",
    "global_pool": "global_pool",
    "adaptive_pool": "adaptive_pool",
    "flatten": "flatten",
    "unknown": "unknown",
}


def _constructor(spec: dict[str, Any]) -> str:
    kind = spec["type"]
    name = spec["name"]
    args = [repr(name)]
    if kind in ("add", "mul", "concat"):
        args.append(repr(list(spec["inputs"])))
    else:
        if kind in ("conv", "pool"):
            args.append(repr(_py(spec["kernel"])))
            for key in ("stride", "dilation", "padding"):
                args.append(f"{key}={_py(spec[key])!r}")
            if spec.get("ceil_mode"):
                args.append("ceil_mode=True")
        if kind == "adaptive_pool":
            args.append(repr(tuple(spec["output_size"])))
        if kind == "unknown":
            args.append(repr(spec.get("op", "unknown")))
        elif "op" in spec:
            args.append(f"op={spec['op']!r}")
        if "inputs" in spec:
            args.append(f"inputs={list(spec['inputs'])!r}")
    return f"rfw.{_CONSTRUCTOR[kind]}({', '.join(args)})"


def _resample_constructor(layer: Layer, spec: dict[str, Any]) -> str:
    """A resample layer: ``rfw.upsample`` or ``rfw.conv_transpose`` when they can say it, else the
    ``Layer`` with its ``Resample`` record (attention windows, sizes taken from another layer)."""
    resample = layer.resample
    assert resample is not None
    inputs = f", inputs={list(spec['inputs'])!r}" if "inputs" in spec else ""
    if resample.mode == "transpose" and all(lo == hi for lo, hi in layer.padding):
        return (
            f"rfw.conv_transpose({layer.name!r}, {layer.kernel!r}, stride={layer.stride!r}, "
            f"dilation={layer.dilation!r}, padding={tuple(lo for lo, _ in layer.padding)!r}, "
            f"output_padding={resample.output_padding!r}{inputs}, op={layer.op!r})"
        )
    if resample.mode not in ("transpose", "windows") and resample.size_of is None:
        amount = (
            f"scale={_fractions(resample.scale)}" if resample.scale is not None else f"size={resample.size!r}"
        )
        return (
            f"rfw.upsample({layer.name!r}, {amount}, mode={resample.mode!r}, "
            f"align_corners={resample.align_corners!r}{inputs}, op={layer.op!r})"
        )
    fields = [
        f"{name}={_fractions(value) if name == 'scale' else repr(value)}"
        for name, value in (
            ("scale", resample.scale),
            ("size", resample.size),
            ("size_of", resample.size_of),
            ("size_axes", resample.size_axes),
            ("align_corners", resample.align_corners),
            ("output_padding", resample.output_padding),
            ("window", resample.window),
            ("shift", resample.shift),
        )
        if value is not None
    ]
    window = (
        f", kernel={layer.kernel!r}, stride={layer.stride!r}, dilation={layer.dilation!r}, "
        f"padding={layer.padding!r}"
    )
    inputs_field = f", inputs={tuple(spec['inputs'])!r}" if "inputs" in spec else ""
    return (
        f"rfw.Layer({layer.name!r}, {layer.op!r}, 'resample'{inputs_field}{window}, "
        f"resample=Resample({resample.mode!r}, {', '.join(fields)}))"
    )


def _fractions(values: Any) -> str:
    if values is None:
        return "None"
    shown = [
        str(int(v)) if Fraction(v).denominator == 1 else f"Fraction({v.numerator}, {v.denominator})"
        for v in values
    ]
    return "(" + ", ".join(shown) + ("," if len(shown) == 1 else "") + ")"


def _py(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_py(v) for v in value)
    return value
