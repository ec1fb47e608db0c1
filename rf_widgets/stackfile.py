"""Layer stacks as JSON/YAML documents: read, validate, write.

A document is a mapping with ``layers`` (a list) and optionally ``name`` and ``ndim``::

    {"name": "tiny", "ndim": 2, "layers": [
        {"name": "conv1", "type": "conv", "kernel": 3, "padding": 1},
        {"name": "pool1", "type": "pool", "kernel": 2},
        {"name": "conv2", "type": "conv", "kernel": [3, 5], "dilation": 2},
        {"name": "skip", "type": "add", "inputs": ["pool1", "conv2"]},
        {"name": "gap", "type": "global_pool"}]}

``type`` is one of ``conv``, ``pool`` (``maxpool``, ``avgpool``), ``elementwise``, ``add``, ``mul``,
``concat``, ``global_pool``, ``adaptive_pool``, ``flatten``, ``unknown``. Parameters take an int (every
axis), a list with one value per axis, and for ``padding`` also one ``[lo, hi]`` pair per axis. A layer
without ``inputs`` takes the layer before it; ``"input"`` names the network input.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rf_widgets.core import layers as L
from rf_widgets.core.graph import Stack
from rf_widgets.core.layers import Layer
from rf_widgets.errors import RFError, StackFileError

__all__ = ["LAYER_TYPES", "read_stack", "stack_from_dict", "stack_to_dict", "write_stack"]


def _window(make: Callable[..., Layer], keys: tuple[str, ...]) -> Callable[[str, dict[str, Any]], Layer]:
    def build(name: str, spec: dict[str, Any]) -> Layer:
        kwargs = {k: _tupled(spec[k]) for k in keys if k in spec}
        if "op" in spec:
            kwargs["op"] = spec["op"]
        return make(name, inputs=spec.get("inputs"), **kwargs)

    return build


def _merge(make: Callable[..., Layer]) -> Callable[[str, dict[str, Any]], Layer]:
    def build(name: str, spec: dict[str, Any]) -> Layer:
        if "inputs" not in spec:
            raise StackFileError(f"layer '{name}' of type {spec['type']!r} needs an 'inputs' list")
        return make(name, spec["inputs"])

    return build


LAYER_TYPES: dict[str, Callable[[str, dict[str, Any]], Layer]] = {
    "conv": _window(L.conv, ("kernel", "stride", "dilation", "padding")),
    "pool": _window(L.pool, ("kernel", "stride", "dilation", "padding", "ceil_mode")),
    "maxpool": _window(L.pool, ("kernel", "stride", "dilation", "padding", "ceil_mode")),
    "avgpool": lambda name, spec: _window(L.pool, ("kernel", "stride", "dilation", "padding", "ceil_mode"))(
        name, {"op": "avgpool", **spec}
    ),
    "elementwise": _window(L.elementwise, ()),
    "add": _merge(L.add),
    "mul": _merge(L.mul),
    "concat": _merge(L.concat),
    "global_pool": _window(L.global_pool, ()),
    "adaptive_pool": _window(L.adaptive_pool, ("output_size",)),
    "flatten": _window(L.flatten, ()),
    "unknown": lambda name, spec: L.unknown(name, spec.get("op", "unknown"), inputs=spec.get("inputs")),
}
_KNOWN_KEYS = {
    "name",
    "type",
    "op",
    "inputs",
    "kernel",
    "stride",
    "dilation",
    "padding",
    "ceil_mode",
    "output_size",
}


def _tupled(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tupled(v) for v in value)
    return value


def stack_from_dict(document: Any, source: str = "stack") -> Stack:
    """Build a :class:`Stack` from a parsed document; errors name the layer and the parameter."""
    if not isinstance(document, dict) or not isinstance(document.get("layers"), list):
        raise StackFileError(f"{source}: expected a mapping with a 'layers' list")
    built = []
    for position, spec in enumerate(document["layers"], start=1):
        if not isinstance(spec, dict):
            raise StackFileError(f"{source}: layer #{position} must be a mapping, got {spec!r}")
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise StackFileError(f"{source}: layer #{position} needs a 'name'")
        kind = spec.get("type")
        if kind not in LAYER_TYPES:
            raise StackFileError(
                f"{source}: layer '{name}' has type {kind!r}; expected one of {', '.join(LAYER_TYPES)}"
            )
        extra = set(spec) - _KNOWN_KEYS
        if extra:
            raise StackFileError(f"{source}: layer '{name}' has unknown keys {', '.join(sorted(extra))}")
        try:
            built.append(LAYER_TYPES[kind](name, spec))
        except StackFileError:
            raise
        except RFError as err:
            raise StackFileError(f"{source}: {err}") from None
        except TypeError as err:
            raise StackFileError(f"{source}: layer '{name}': {err}") from None
    try:
        return Stack(built, document.get("ndim"), document.get("name") or source)
    except RFError as err:
        raise StackFileError(f"{source}: {err}") from None


def read_stack(path: str | Path) -> Stack:
    """Read a stack from a ``.json``, ``.yaml`` or ``.yml`` file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise StackFileError(f"cannot read stack file '{path}': {err.strerror or err}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise StackFileError(f"reading '{path}' needs PyYAML: pip install pyyaml") from None
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise StackFileError(f"'{path}' is not valid YAML: {err}") from None
    else:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as err:
            raise StackFileError(f"'{path}' is not valid JSON: {err.msg} at line {err.lineno}") from None
    return stack_from_dict(document, str(path))


_TYPE_OF_OP = {"add": "add", "mul": "mul", "concat": "concat"}


def stack_to_dict(stack: Stack) -> dict[str, Any]:
    """The document that :func:`stack_from_dict` turns back into ``stack``."""
    out = []
    previous = "input"
    for layer in stack.layers:
        spec: dict[str, Any] = {"name": layer.name}
        if layer.kind == "window":
            if layer.op in _TYPE_OF_OP and layer.inputs and len(layer.inputs) > 1:
                spec["type"] = _TYPE_OF_OP[layer.op]
            elif (
                layer.kernel == (1,) * stack.ndim
                and layer.stride == (1,) * stack.ndim
                and not any(lo or hi for lo, hi in layer.padding)
            ):
                spec["type"] = "elementwise"
                spec["op"] = layer.op
            else:
                spec["type"] = "pool" if "pool" in layer.op.lower() else "conv"
                spec["op"] = layer.op
                spec["kernel"] = _compact(layer.kernel)
                spec["stride"] = _compact(layer.stride)
                spec["dilation"] = _compact(layer.dilation)
                spec["padding"] = _compact_padding(layer.padding)
                if layer.ceil_mode:
                    spec["ceil_mode"] = True
        elif layer.kind == "global":
            spec.update(type="global_pool", op=layer.op)
        elif layer.kind == "adaptive":
            spec.update(type="adaptive_pool", op=layer.op, output_size=list(layer.output_size or ()))
        elif layer.kind == "flatten":
            spec["type"] = "flatten"
        else:
            spec.update(type="unknown", op=layer.op)
        if layer.inputs != (previous,) or spec["type"] in _TYPE_OF_OP.values():
            spec["inputs"] = list(layer.inputs or ())
        out.append(spec)
        previous = layer.name
    return {"name": stack.name, "ndim": stack.ndim, "layers": out}


def write_stack(stack: Stack, path: str | Path) -> None:
    """Write ``stack`` as JSON (or YAML for ``.yaml``/``.yml``)."""
    path = Path(path)
    document = stack_to_dict(stack)
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    else:
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def _compact(values: tuple[int, ...]) -> Any:
    return values[0] if len(set(values)) == 1 else list(values)


def _compact_padding(padding: tuple[tuple[int, int], ...]) -> Any:
    if all(lo == hi for lo, hi in padding):
        return _compact(tuple(lo for lo, _ in padding))
    return [[lo, hi] for lo, hi in padding]
