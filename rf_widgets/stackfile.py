"""Layer stacks as JSON/YAML documents: read, validate, write.

A document is a mapping with ``layers`` (a list) and optionally ``name`` and ``ndim``::

    {"name": "tiny", "ndim": 2, "layers": [
        {"name": "conv1", "type": "conv", "kernel": 3, "padding": 1},
        {"name": "pool1", "type": "pool", "kernel": 2},
        {"name": "conv2", "type": "conv", "kernel": [3, 5], "dilation": 2},
        {"name": "skip", "type": "add", "inputs": ["pool1", "conv2"]},
        {"name": "gap", "type": "global_pool"}]}

``type`` is one of ``conv``, ``pool`` (``maxpool``, ``avgpool``), ``elementwise``, ``add``, ``mul``,
``concat``, ``global_pool``, ``adaptive_pool``, ``flatten``, ``upsample``, ``conv_transpose``,
``windows``, ``unknown``. Parameters take an int (every axis), a list with one value per axis, and for
``padding`` also one ``[lo, hi]`` pair per axis or a word (``"valid"``, ``"same"`` = ``"same_upper"``,
``"same_lower"``: size-dependent padding). A layer without ``inputs`` takes the layer before it;
``"input"`` names the network input.

The resampling layers (SPEC section 1, docs/semantics.md "Resampling")::

    {"name": "up", "type": "upsample", "mode": "linear", "scale": 2, "align_corners": false}
    {"name": "up", "type": "upsample", "mode": "nearest", "scale": "3/2"}      # a fraction
    {"name": "up", "type": "upsample", "mode": "cubic", "size": [40, 60]}
    {"name": "up", "type": "upsample", "mode": "linear", "size_of": "input", "size_axes": [0, 1]}
    {"name": "t", "type": "conv_transpose", "kernel": 4, "stride": 2, "padding": 1, "output_padding": 0}
    {"name": "attn", "type": "windows", "window": 7, "shift": 3}

``mode`` is ``nearest``, ``nearest-exact``, ``linear`` or ``cubic``; an upsampling gives exactly one of
``scale`` (a positive int, or a fraction written ``"p/q"``), ``size`` or ``size_of`` (``"input"`` or a
layer declared before it, whose feature map gives the size; ``size_axes`` picks its axes). ``windows``
is attention within non-overlapping windows shifted by ``shift`` (Swin); a window of up to
:data:`MAX_WINDOW` units stands for "every position" (grid attention).

Files are read strictly, because a stack file may come from anyone: every value must have its exact
type (``true``/``false`` for ``ceil_mode``, ints that are not booleans for sizes), a key may appear once
per mapping, YAML anchors and aliases are refused, and sizes no network needs are refused before any
work is done: more than :data:`MAX_LAYERS` layers, more than :data:`MAX_NDIM` axes, a parameter above
:data:`MAX_PARAMETER`, strides whose product along a path exceeds ``2**64``, files above
:data:`MAX_FILE_BYTES`. Every error is one line naming the file, the layer and the key.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

from rf_widgets.core import layers as L
from rf_widgets.core.graph import Stack
from rf_widgets.core.layers import INPUT, Layer
from rf_widgets.errors import RFError, StackFileError, shown

__all__ = [
    "LAYER_TYPES",
    "MAX_FILE_BYTES",
    "MAX_LAYERS",
    "MAX_NDIM",
    "MAX_PARAMETER",
    "read_stack",
    "stack_from_dict",
    "stack_to_dict",
    "write_stack",
]

MAX_LAYERS = 10_000
"""The most layers a stack file may declare (the largest timm networks have about 3,000)."""
MAX_NDIM = 8
"""The most spatial axes a stack file may declare."""
MAX_PARAMETER = 1_000_000
"""The largest kernel, stride, dilation, padding or output size a stack file may declare."""
MAX_JUMP_BITS = 64
"""Strides whose product along a path exceeds ``2**64`` are refused (no input is that large)."""
MAX_FILE_BYTES = 4 * 1024 * 1024
"""The largest stack file read (a 10,000-layer file takes well under 1 MiB)."""
MAX_TEXT = 500
"""The longest name, op or type string accepted."""
MAX_WINDOW = 1 << 30
"""The largest attention window (the importer writes ``2**30`` for attention over every position)."""
UPSAMPLE_MODES = ("nearest", "nearest-exact", "linear", "cubic")


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


def _upsample(name: str, spec: dict[str, Any]) -> Layer:
    given = [k for k in ("scale", "size", "size_of") if k in spec]
    if len(given) != 1:
        raise StackFileError(
            f"layer '{name}': an upsample needs exactly one of 'scale', 'size' and 'size_of', "
            f"got {', '.join(given) or 'none'}"
        )
    if "size_axes" in spec and "size_of" not in spec:
        raise StackFileError(f"layer '{name}': 'size_axes' goes with 'size_of'")
    scale = spec.get("scale")
    scales = None
    if scale is not None:
        scales = tuple(_fraction(v) for v in _listed(scale))
    size = spec.get("size")
    sizes = None if size is None else tuple(_listed(size))
    axes = spec.get("size_axes")
    resample = L.Resample(
        spec["mode"],
        scale=scales,
        size=sizes,
        size_of=spec.get("size_of"),
        size_axes=None if axes is None else tuple(axes),
        align_corners=spec.get("align_corners", False),
    )
    return Layer(
        name, spec.get("op", "upsample"), "resample", L._inputs(spec.get("inputs"), name), resample=resample
    )


def _windows(name: str, spec: dict[str, Any]) -> Layer:
    window, shift = spec["window"], spec.get("shift", 0)
    resample = L.Resample(
        "windows",
        window=tuple(_listed(window)),
        shift=tuple(_listed(shift)),
    )
    return Layer(
        name, spec.get("op", "windows"), "resample", L._inputs(spec.get("inputs"), name), resample=resample
    )


def _fraction(value: Any) -> Fraction:
    """An int, or a ``"p/q"`` string (checked by :func:`_check_layer`)."""
    return Fraction(value) if isinstance(value, int) else Fraction(*map(int, value.split("/")))


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
    "upsample": _upsample,
    "conv_transpose": _window(
        L.conv_transpose, ("kernel", "stride", "dilation", "padding", "output_padding")
    ),
    "windows": _windows,
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
    "mode",
    "scale",
    "size",
    "size_of",
    "size_axes",
    "align_corners",
    "output_padding",
    "window",
    "shift",
}
_RESAMPLE_KEYS = {
    "upsample": {"mode", "scale", "size", "size_of", "size_axes", "align_corners"},
    "conv_transpose": {"kernel", "stride", "dilation", "padding", "output_padding"},
    "windows": {"window", "shift"},
}
_FRACTION = re.compile(r"[1-9][0-9]{0,6}/[1-9][0-9]{0,6}")
_DOCUMENT_KEYS = {"name", "ndim", "layers"}


def _tupled(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tupled(v) for v in value)
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Culprit:
    """Formats one-line errors that name the file, the layer and the key."""

    def __init__(self, source: str, layer: str) -> None:
        self.source, self.layer = source, layer

    def __call__(self, key: str, problem: str, value: Any) -> StackFileError:
        return StackFileError(f"{self.source}: {self.layer}, key '{key}': {problem}, got {_show(value)}")


_PADDING_WORDS = ("valid", "same", "same_upper", "same_lower")


def _listed(value: Any) -> list[Any]:
    """A per-axis value as a list: one value stands for every axis."""
    return value if isinstance(value, list) else [value]


def _per_axis(value: Any, key: str, culprit: _Culprit) -> list[Any]:
    """:func:`_listed`, refusing a list with no value or more values than axes."""
    if isinstance(value, list) and not 1 <= len(value) <= MAX_NDIM:
        raise culprit(key, f"must have 1 to {MAX_NDIM} values (one per axis)", value)
    return _listed(value)


def _check_sizes(value: Any, key: str, low: int, culprit: _Culprit, pairs: bool = False) -> None:
    """An int or a list of ints (or, for padding, of [lo, hi] pairs) within [low, MAX_PARAMETER]."""
    for item in _per_axis(value, key, culprit):
        values = item if pairs and isinstance(item, list) and isinstance(value, list) else [item]
        if pairs and isinstance(item, list) and len(item) != 2:
            raise culprit(key, "must be an int, one int per axis or one [lo, hi] pair per axis", value)
        for v in values:
            if not _is_int(v):
                raise culprit(key, "must be whole numbers (not booleans, strings or decimals)", value)
            if not low <= v <= MAX_PARAMETER:
                raise culprit(key, f"must be between {low} and {MAX_PARAMETER:,} on every axis", value)


def _check_layer(spec: dict[str, Any], culprit: _Culprit) -> None:
    """Exact types and bounded sizes for every key of one layer."""
    for key in ("type", "op"):
        if key in spec and (not isinstance(spec[key], str) or len(spec[key]) > MAX_TEXT):
            raise culprit(key, f"must be a string of at most {MAX_TEXT} characters", spec[key])
    for key, low in (("kernel", 1), ("stride", 1), ("dilation", 1)):
        if key in spec:
            _check_sizes(spec[key], key, low, culprit)
    if isinstance(spec.get("padding"), str):
        if spec["padding"] not in _PADDING_WORDS:
            raise culprit("padding", f"as a word must be one of {', '.join(_PADDING_WORDS)}", spec["padding"])
    elif "padding" in spec:
        _check_sizes(spec["padding"], "padding", 0, culprit, pairs=True)
    if "ceil_mode" in spec and not isinstance(spec["ceil_mode"], bool):
        raise culprit("ceil_mode", "must be true or false", spec["ceil_mode"])
    if "output_size" in spec:
        value = spec["output_size"]
        for v in _per_axis(value, "output_size", culprit):
            if v is not None and (not _is_int(v) or not 1 <= v <= MAX_PARAMETER):
                raise culprit("output_size", f"must be null or between 1 and {MAX_PARAMETER:,}", value)
    _check_resample(spec, culprit)
    if "inputs" in spec:
        inputs = spec["inputs"]
        if isinstance(inputs, str):
            inputs = [inputs]
        if (
            not isinstance(inputs, list)
            or not inputs
            or len(inputs) > MAX_LAYERS
            or not all(isinstance(i, str) and 0 < len(i) <= MAX_TEXT for i in inputs)
        ):
            raise culprit("inputs", "must be a non-empty list of layer names", spec["inputs"])


def _check_resample(spec: dict[str, Any], culprit: _Culprit) -> None:
    """The keys of the resampling layers: only on their own types, exact types, bounded sizes."""
    kind = spec.get("type")
    for key in set(spec) & set().union(*_RESAMPLE_KEYS.values()):
        if key not in _RESAMPLE_KEYS.get(str(kind), ()) and key not in (
            "kernel",
            "stride",
            "dilation",
            "padding",
        ):
            raise culprit(key, f"is not a key of a {kind!r} layer", spec[key])
    if kind == "upsample" and spec.get("mode") not in UPSAMPLE_MODES:
        raise culprit("mode", f"must be one of {', '.join(UPSAMPLE_MODES)}", spec.get("mode"))
    if "scale" in spec:
        value = spec["scale"]
        for v in _per_axis(value, "scale", culprit):
            whole = _is_int(v) and 1 <= v <= MAX_PARAMETER
            if not whole and not (isinstance(v, str) and _FRACTION.fullmatch(v)):
                raise culprit("scale", 'must be positive whole numbers or fractions written "p/q"', value)
            ratio = _fraction(v)
            if ratio.numerator > L.MAX_RESAMPLE_PERIOD or ratio.denominator > MAX_PARAMETER:
                raise culprit(
                    "scale",
                    f"must be at most {L.MAX_RESAMPLE_PERIOD} (MAX_RESAMPLE_PERIOD) in lowest terms p/q, "
                    f"with q at most {MAX_PARAMETER:,}",
                    value,
                )
    for key, low in (("size", 1), ("size_axes", 0), ("output_padding", 0), ("shift", 0)):
        if key in spec:
            _check_sizes(spec[key], key, low, culprit)
    if "size_axes" in spec and any(a >= MAX_NDIM for a in _listed(spec["size_axes"])):
        raise culprit("size_axes", f"must be axis numbers below {MAX_NDIM}", spec["size_axes"])
    if "size_of" in spec and (
        not isinstance(spec["size_of"], str) or not 0 < len(spec["size_of"]) <= MAX_TEXT
    ):
        raise culprit("size_of", "must be a layer name or 'input'", spec["size_of"])
    if "align_corners" in spec and not isinstance(spec["align_corners"], bool):
        raise culprit("align_corners", "must be true or false", spec["align_corners"])
    if kind == "windows":
        window = spec.get("window")
        items = _listed(window)
        if not 1 <= len(items) <= MAX_NDIM or not all(_is_int(v) and 1 <= v <= MAX_WINDOW for v in items):
            raise culprit(
                "window", f"must be whole numbers between 1 and {MAX_WINDOW:,} (one per axis)", window
            )


def _check_sources(stack: Stack, source: str) -> None:
    """An upsampling to the size of another layer must name the input or a layer computed before it."""
    for i, layer in enumerate(stack.layers):
        named = layer.resample.size_of if layer.resample is not None else None
        if named is not None and named != INPUT and not stack.index.get(named, i) < i:
            raise StackFileError(
                f"{source}: layer '{layer.name}', key 'size_of': must be 'input' or a layer computed "
                f"before it, got {_show(named)}"
            )


def stack_from_dict(document: Any, source: str = "stack") -> Stack:
    """Build a :class:`Stack` from a parsed document; errors name the file, the layer and the key."""
    if not isinstance(document, dict) or not isinstance(document.get("layers"), list):
        raise StackFileError(f"{source}: expected a mapping with a 'layers' list")
    extra = set(document) - _DOCUMENT_KEYS
    if extra:
        shown = ", ".join(sorted(map(str, extra)))
        raise StackFileError(f"{source}: unknown top-level keys {shown}; expected name, ndim and layers")
    stack_name = document.get("name")
    if stack_name is not None and (not isinstance(stack_name, str) or len(stack_name) > MAX_TEXT):
        raise StackFileError(f"{source}: key 'name' must be a string, got {_show(stack_name)}")
    ndim = document.get("ndim")
    if ndim is not None and (not _is_int(ndim) or not 1 <= ndim <= MAX_NDIM):
        raise StackFileError(
            f"{source}: key 'ndim' must be a whole number from 1 to {MAX_NDIM}, got {_show(ndim)}"
        )
    if len(document["layers"]) > MAX_LAYERS:
        raise StackFileError(
            f"{source}: {len(document['layers']):,} layers; a stack file may declare at most {MAX_LAYERS:,}"
        )
    built = []
    bits: dict[str, float] = {INPUT: 0.0}
    previous = INPUT
    for position, spec in enumerate(document["layers"], start=1):
        if not isinstance(spec, dict):
            raise StackFileError(f"{source}: layer #{position} must be a mapping, got {_show(spec)}")
        name = spec.get("name")
        if not isinstance(name, str) or not name or len(name) > MAX_TEXT:
            raise StackFileError(f"{source}: layer #{position} needs a 'name' (a non-empty string)")
        culprit = _Culprit(source, f"layer '{name}'")
        kind = spec.get("type")
        if not isinstance(kind, str) or kind not in LAYER_TYPES:
            raise StackFileError(
                f"{source}: layer '{name}' has type {_show(kind)}; expected one of {', '.join(LAYER_TYPES)}"
            )
        extra = set(spec) - _KNOWN_KEYS
        if extra:
            shown = ", ".join(sorted(map(str, extra)))
            raise StackFileError(f"{source}: layer '{name}' has unknown keys {shown}")
        _check_layer(spec, culprit)
        previous = _check_jump(spec, name, previous, bits, culprit)
        try:
            built.append(LAYER_TYPES[kind](name, spec))
        except StackFileError as err:
            raise StackFileError(f"{source}: {err}") from None
        except RFError as err:
            raise StackFileError(f"{source}: {err}") from None
        except TypeError as err:
            raise StackFileError(f"{source}: layer '{name}': {err}") from None
    try:
        stack = Stack(built, ndim, stack_name or source)
    except RFError as err:
        raise StackFileError(f"{source}: {err}") from None
    _check_jumps(stack, source)  # again on the graph: inputs may name layers declared later
    _check_sources(stack, source)
    return stack


def _check_jump(
    spec: dict[str, Any], name: str, previous: str, bits: dict[str, float], culprit: _Culprit
) -> str:
    """Refuse strides whose product along some path exceeds ``2**MAX_JUMP_BITS`` (floats would overflow).

    Checked on the declarations, before any layer is built, so a file of 2,000 stride-2 layers is
    refused at the 65th. ``bits`` maps each name seen so far to log2 of its largest jump.
    """
    inputs = spec.get("inputs", [previous])
    inputs = [inputs] if isinstance(inputs, str) else inputs
    before = max((bits.get(i, 0.0) for i in inputs), default=0.0)
    stride = spec.get(
        "stride", spec.get("kernel", 1) if spec["type"] in ("pool", "maxpool", "avgpool") else 1
    )
    strides = _listed(stride)
    bits[name] = before + max(math.log2(s) for s in strides)
    if bits[name] > MAX_JUMP_BITS:
        raise culprit(
            "stride",
            f"the strides up to this layer multiply to more than 2**{MAX_JUMP_BITS}, which no input can use",
            stride,
        )
    return name


def _check_jumps(stack: Stack, source: str) -> None:
    """The stride-product limit of :func:`_check_jump` on the built graph, in topological order."""
    bits: list[float] = []
    for i, layer in enumerate(stack.layers):
        before = max((bits[j] for j in stack.input_indices[i] if j >= 0), default=0.0)
        bits.append(before + (max(math.log2(s) for s in layer.stride) if layer.kind == "window" else 0.0))
        if bits[-1] > MAX_JUMP_BITS:
            raise StackFileError(
                f"{source}: layer '{layer.name}', key 'stride': the strides up to this layer multiply to "
                f"more than 2**{MAX_JUMP_BITS}, which no input can use"
            )


def read_regular(
    path: Path, limit: int, what: str = "stack file", error: type[RFError] = StackFileError
) -> bytes:
    """At most ``limit + 1`` bytes of ``path``, which must be a regular file: a FIFO or a device is
    refused at once (opened without blocking, checked on the open descriptor, before any read)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError) as err:  # missing, a name too long, a NUL byte
        reason = getattr(err, "strerror", None) or str(err)
        raise error(f"cannot read {what} '{shown_path(path)}': {reason}") from None
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise error(
                f"cannot read {what} '{shown_path(path)}': not a regular file (a folder, a pipe or a device)"
            )
        try:
            # never more than the file holds: read(limit + 1) would reserve limit + 1 bytes up front
            return handle.read(min(os.fstat(descriptor).st_size, limit) + 1)
        except OSError as err:
            raise error(f"cannot read {what} '{shown_path(path)}': {err.strerror or err}") from None


def shown_path(path: Path | str) -> str:
    """A path short enough for a one-line message."""
    text = str(path)
    return text if len(text) <= 200 else f"{text[:100]}...{text[-100:]}"


def _read_text(path: Path) -> str:
    data = read_regular(path, MAX_FILE_BYTES)
    if len(data) > MAX_FILE_BYTES:
        raise StackFileError(
            f"'{path}' is larger than {MAX_FILE_BYTES // 2**20} MiB; no stack file needs that much"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise StackFileError(f"'{path}' is not UTF-8 text (byte {err.start}: {err.reason})") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise StackFileError(f"key '{key}' appears twice in one mapping")
        out[key] = value
    return out


def _json(text: str, path: Path) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except StackFileError as err:
        raise StackFileError(f"'{path}': {err}") from None
    except json.JSONDecodeError as err:
        raise StackFileError(f"'{path}' is not valid JSON: {err.msg} at line {err.lineno}") from None
    except (ValueError, RecursionError) as err:  # ints beyond Python's digit limit, absurd nesting
        raise StackFileError(f"'{path}' is not valid JSON: {type(err).__name__}: {err}") from None


_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# anchored at both ends: PyYAML's resolver only calls match()
_YAML12_INT = re.compile(r"(?:[-+]?(0|[1-9][0-9]*))\Z")
_YAML12_FLOAT = re.compile(
    r"(?:[-+]?(\.[0-9]+|[0-9]+\.[0-9]*)([eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+"
    r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN))\Z"
)


def _yaml(text: str, path: Path) -> Any:
    try:
        import yaml
    except ImportError:
        raise StackFileError(f"reading '{path}' needs PyYAML: pip install pyyaml") from None
    base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class StrictLoader(base):  # type: ignore[misc, valid-type]
        """Safe loading without aliases (no expansion bombs), merge keys or duplicate keys, and with
        YAML 1.2 numbers: ``017``, ``1_000``, ``1:30`` and ``0x10`` are text (refused where a number
        belongs), not the octal, grouped, base-60 and hexadecimal integers of YAML 1.1."""

        def construct_object(self, node: Any, deep: bool = False) -> Any:
            if node in self.constructed_objects or node in self.recursive_objects:
                mark = node.start_mark
                raise StackFileError(
                    f"'{path}' line {mark.line + 1}: YAML anchors and aliases are not accepted in stack files"
                )
            return super().construct_object(node, deep=deep)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen = set()
            for key_node, _ in node.value:
                key = key_node.value
                line = key_node.start_mark.line + 1
                if key_node.tag == _MERGE_TAG or key == "<<":
                    raise StackFileError(f"'{path}' line {line}: YAML merge keys (<<) are not accepted")
                if key in seen:
                    raise StackFileError(f"'{path}' line {line}: key '{key}' appears twice in one mapping")
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

        def construct_strict_number(self, node: Any) -> Any:
            text = self.construct_scalar(node)
            if _YAML12_INT.fullmatch(text):
                return int(text)
            if _YAML12_FLOAT.fullmatch(text):
                return float(text.replace(".inf", "inf").replace(".Inf", "inf").replace(".INF", "inf"))
            raise StackFileError(
                f"'{path}' line {node.start_mark.line + 1}: {shown(text)} is not a YAML 1.2 number "
                "(no octal, underscores, base 60 or hexadecimal)"
            )

    StrictLoader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT_TAG, _FLOAT_TAG, _MERGE_TAG)]
        for first, resolvers in base.yaml_implicit_resolvers.items()
    }
    StrictLoader.add_implicit_resolver(_INT_TAG, _YAML12_INT, list("-+0123456789"))
    StrictLoader.add_implicit_resolver(_FLOAT_TAG, _YAML12_FLOAT, list("-+.0123456789"))
    StrictLoader.add_constructor(_INT_TAG, StrictLoader.construct_strict_number)
    StrictLoader.add_constructor(_FLOAT_TAG, StrictLoader.construct_strict_number)

    try:
        return yaml.load(text, Loader=StrictLoader)  # a SafeLoader subclass
    except StackFileError:
        raise
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StackFileError(f"'{path}' is not valid YAML: {first}") from None
    except (ValueError, TypeError, RecursionError) as err:
        raise StackFileError(f"'{path}' is not a valid stack file: {type(err).__name__}: {err}") from None


def read_stack(path: str | os.PathLike[str]) -> Stack:
    """Read a stack from a ``.json``, ``.yaml`` or ``.yml`` file (strictly: see the module docstring)."""
    path = Path(path)
    text = _read_text(path)
    document = _yaml(text, path) if path.suffix.lower() in (".yaml", ".yml") else _json(text, path)
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
                # only the pool type reads ceil_mode (Swin's patch merging is a ceil-mode window)
                spec["type"] = "pool" if "pool" in layer.op.lower() or layer.ceil_mode else "conv"
                spec["op"] = layer.op
                spec["kernel"] = _compact(layer.kernel)
                spec["stride"] = _compact(layer.stride)
                spec["dilation"] = _compact(layer.dilation)
                spec["padding"] = layer.padding_mode or _compact_padding(layer.padding)
                if layer.ceil_mode:
                    spec["ceil_mode"] = True
        elif layer.kind == "global":
            spec.update(type="global_pool", op=layer.op)
        elif layer.kind == "adaptive":
            spec.update(type="adaptive_pool", op=layer.op, output_size=list(layer.output_size or ()))
        elif layer.kind == "flatten":
            spec.update(type="flatten", op=layer.op)
        elif layer.kind == "resample" and layer.resample is not None:
            spec.update(_resample_spec(layer, layer.resample))
        else:
            spec.update(type="unknown", op=layer.op)
        if layer.inputs != (previous,) or spec["type"] in _TYPE_OF_OP.values():
            spec["inputs"] = list(layer.inputs or ())
        out.append(spec)
        previous = layer.name
    return {"name": stack.name, "ndim": stack.ndim, "layers": out}


def _resample_spec(layer: Layer, resample: L.Resample) -> dict[str, Any]:
    """The document keys of a resampling layer (see the module docstring)."""
    if resample.mode == "transpose":
        return {
            "type": "conv_transpose",
            "op": layer.op,
            "kernel": _compact(layer.kernel),
            "stride": _compact(layer.stride),
            "dilation": _compact(layer.dilation),
            "padding": _compact_padding(layer.padding),
            "output_padding": _compact(resample.output_padding),
        }
    if resample.mode == "windows":
        return {
            "type": "windows",
            "op": layer.op,
            "window": _compact(resample.window),
            "shift": _compact(resample.shift),
        }
    spec: dict[str, Any] = {"type": "upsample", "op": layer.op, "mode": resample.mode}
    if resample.scale is not None:
        spec["scale"] = _compact(tuple(_fraction_text(v) for v in resample.scale))
    if resample.size is not None:
        spec["size"] = _compact(resample.size)
    if resample.size_of is not None:
        spec["size_of"] = resample.size_of
        if resample.size_axes is not None:
            spec["size_axes"] = list(resample.size_axes)
    spec["align_corners"] = resample.align_corners
    return spec


def _fraction_text(value: Fraction | int) -> int | str:
    value = Fraction(value)
    return value.numerator if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def write_stack(stack: Stack, path: str | Path) -> None:
    """Write ``stack`` as JSON (or YAML for ``.yaml``/``.yml``)."""
    path = Path(path)
    document = stack_to_dict(stack)
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    else:
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def _compact(values: tuple[Any, ...]) -> Any:
    return values[0] if len(set(values)) == 1 else list(values)


def _compact_padding(padding: tuple[tuple[int, int], ...]) -> Any:
    if all(lo == hi for lo, hi in padding):
        return _compact(tuple(lo for lo, _ in padding))
    return [[lo, hi] for lo, hi in padding]
