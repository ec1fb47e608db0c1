"""Reading an ONNX model: the file, its constants, its image input and its tensor shapes (no runtime).

Weights are never needed: a file is loaded without its external data, parameter counts come from the
declared dimensions of the initializers, and only small constants (axes, pads, scales, shapes) are read.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rf_widgets.errors import ModelImportError

__all__ = ["Const", "ImageInput", "constant_of", "image_input", "infer_shapes", "load", "shown_path"]

SMALL = 4096
"""Constants with at most this many elements are read (and given to shape inference)."""

REFERENCE_SIZE = {1: 224, 2: 224, 3: 32}

MAX_SHOWN = 200
"""Paths longer than this many characters are shortened in messages."""


@dataclass(frozen=True)
class Const:
    """A value that does not depend on the image: ``value`` is its numpy array when it could be read
    (an initializer, a Constant node, or folded from those), None when it is computed at run time.

    ``at_reference`` is the value computed from activation shapes at the reference input size (a
    Reshape target built with Shape, Div and Concat): good for working out that one Reshape's sizes,
    never used as a constant of the model. ``constant_entries`` says, for such a vector concatenated
    from pieces, which entries are constants of the file (the block size of a partition) and which
    are computed (the number of blocks)."""

    value: Any = None
    dims: tuple[int, ...] | None = None
    at_reference: Any = None
    constant_entries: tuple[bool, ...] | None = None


@dataclass(frozen=True)
class ImageInput:
    name: str
    ndim: int
    channels_last: bool
    static: tuple[int, ...] | None


def load(model: Any) -> tuple[Any, str, Path | None]:
    """The ``ModelProto``, a label for messages, and the folder external data would be read from."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model, model.graph.name or "onnx model", None
    path = Path(os.fspath(model))
    try:
        regular = stat.S_ISREG(path.stat().st_mode)
    except OSError as err:  # missing, a name too long for the file system, a loop of links
        raise ModelImportError(f"no ONNX file at '{shown_path(path)}' ({err.strerror or err})") from None
    if not regular:
        raise ModelImportError(f"'{shown_path(path)}' is not a regular file (a folder, a pipe or a device)")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf raises its own DecodeError, other failures are OSErrors
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        raise ModelImportError(f"'{shown_path(path)}' is not a readable ONNX model ({reason})") from None
    if not proto.graph.node:
        raise ModelImportError(f"'{shown_path(path)}' is not a readable ONNX model (its graph has no nodes)")
    return proto, shown_path(path.name), path.parent


def shown_path(path: Path | str) -> str:
    """A path short enough for a one-line message (its start and its end)."""
    text = str(path)
    if len(text) <= MAX_SHOWN:
        return text
    return f"{text[: MAX_SHOWN // 2]}...{text[-MAX_SHOWN // 2 :]}"


# element types whose external data is read: a fixed item size, one element per item
_READABLE_TYPES = {1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 16}


def constant_of(tensor: Any, base: Path | None, what: str = "") -> Const:
    """A Const for an initializer or a Constant node's tensor (small ones are read, big ones sized).

    ``what`` names the tensor in messages (default ``initializer 'name'``). Declared dimensions must be
    >= 0 and the data must hold what they declare; external data is read only from a regular file
    inside the model's folder, and only the bytes the dimensions call for.
    """
    from onnx import numpy_helper

    what = what or f"initializer '{tensor.name}'"
    dims = tuple(int(d) for d in tensor.dims)
    if any(d < 0 for d in dims):
        raise ModelImportError(f"{what} declares a negative dimension {list(dims)}: ONNX sizes are >= 0")
    count = 1
    for d in dims:
        count *= d
    if count > SMALL:
        return Const(None, dims)
    if tensor.data_location == 1:  # EXTERNAL
        if base is None or tensor.data_type not in _READABLE_TYPES:
            return Const(None, dims)
        data = _external_bytes(tensor, base, count, what)
        if data is None:
            return Const(None, dims)
        copy = type(tensor)()
        copy.CopyFrom(tensor)
        del copy.external_data[:]
        copy.data_location = 0
        copy.raw_data = data
        tensor = copy
    try:
        value = numpy_helper.to_array(tensor)
    except Exception as err:  # numpy's reshape error when the data and the dimensions disagree
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        raise ModelImportError(
            f"{what} declares dimensions {list(dims)} ({count} elements) but its data does not fit them "
            f"({reason})"
        ) from None
    return Const(value, dims)


def _external_bytes(tensor: Any, base: Path, count: int, what: str) -> bytes | None:
    """The bytes of a small tensor stored outside the model file; None when that file is missing.

    The location must name a regular file inside ``base`` (after following links), and only the
    ``count`` elements the dimensions declare are read from ``offset``: a declared ``length`` must agree.
    """
    from onnx import helper

    entries = {e.key: e.value for e in tensor.external_data}
    location = entries.get("location", "")
    needed = count * helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    try:
        offset = int(entries.get("offset", "0"))
        length = int(entries["length"]) if "length" in entries else needed
    except ValueError:
        raise ModelImportError(f"{what} has an external-data offset or length that is not a number") from None
    if offset < 0 or length != needed:
        raise ModelImportError(
            f"{what} declares {count} elements ({needed} bytes) but its external data says offset "
            f"{offset}, length {length}"
        )
    folder = base.resolve()
    try:
        target = (folder / location).resolve()
        inside = bool(location) and target.is_relative_to(folder) and target != folder
        if inside and not target.exists():
            return None
        regular = inside and stat.S_ISREG(target.stat().st_mode)
    except (OSError, ValueError, RuntimeError):  # a name too long, a NUL byte, a loop of links
        inside = regular = False
    if not regular:
        raise ModelImportError(
            f"{what} keeps its data in '{shown_path(location)}', which is not a regular file inside the "
            f"model's folder '{shown_path(folder)}' (the only place external data is read from)"
        )
    with open(target, "rb") as file:
        file.seek(offset)
        data = file.read(needed)
    if len(data) != needed:
        raise ModelImportError(
            f"{what} needs {needed} bytes at offset {offset} of '{shown_path(location)}', which holds fewer"
        )
    return data


def _dims(value_info: Any) -> tuple[int | None, ...] | None:
    kind = value_info.type.WhichOneof("value")
    if kind != "tensor_type" or not value_info.type.tensor_type.HasField("shape"):
        return None
    return tuple(
        int(d.dim_value) if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim
    )


def image_input(graph: Any, label: str) -> ImageInput:
    """The one graph input with spatial axes (rank 3, 4 or 5); a clear error for none or several."""
    initializers = {t.name for t in graph.initializer}
    candidates = []
    for value in graph.input:
        if value.name in initializers:
            continue
        dims = _dims(value)
        if dims is not None and 3 <= len(dims) <= 5:
            candidates.append((value.name, dims))
    if not candidates:
        shown = ", ".join(f"'{v.name}' {_show(_dims(v))}" for v in graph.input if v.name not in initializers)
        raise ModelImportError(
            f"{label} has no image input (a tensor of rank 3, 4 or 5 with batch, channels and 1-3 "
            f"spatial axes); its inputs are {shown or 'none'}"
        )
    if len(candidates) > 1:
        shown = " and ".join(f"'{n}' {_show(d)}" for n, d in candidates)
        raise ModelImportError(
            f"{label} has {len(candidates)} image inputs ({shown}); rf_widgets analyses networks with one "
            "image input: export a graph with one input"
        )
    name, dims = candidates[0]
    channels_last = _channels_last(graph, name, dims)
    spatial = dims[1:-1] if channels_last else dims[2:]
    static = tuple(int(d) for d in spatial if d) if all(d for d in spatial) else None
    return ImageInput(name, len(dims) - 2, channels_last, static)


_ELEMENTWISE_ON_INPUT = {"Cast", "Identity", "Sub", "Div", "Mul", "Add"}


def _channels_last(graph: Any, name: str, dims: tuple[int | None, ...]) -> bool:
    """Whether the input holds channels last: a Transpose moves its last dim to position 1 before any
    other operation (converters from TensorFlow leave this), else a small trailing dim on a static shape."""
    rank = len(dims)
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    frontier, seen = [name], set()
    while frontier:
        value = frontier.pop()
        if value in seen:
            continue
        seen.add(value)
        for node in consumers.get(value, []):
            if node.op_type == "Transpose":
                perm = [list(a.ints) for a in node.attribute if a.name == "perm"]
                if perm and len(perm[0]) == rank and perm[0][1] == rank - 1:
                    return True
            elif node.op_type in _ELEMENTWISE_ON_INPUT:
                frontier.extend(node.output)
    if any(node.op_type in ("Conv", "ConvTranspose") and node.input[0] == name for node in graph.node):
        return False
    last, second = dims[-1], dims[1]
    return last is not None and last <= 4 and (second is None or second > 4)


def _show(dims: tuple[int | None, ...] | None) -> str:
    if dims is None:
        return "(shape unknown)"
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def infer_shapes(model: Any, image: ImageInput, reference: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Static shapes of every value at the reference input size (ONNX shape inference, no runtime).

    A light copy of the graph is inferred: the image input gets the reference size, big initializers
    become typed inputs (their values are not needed), small ones stay for data propagation.
    """
    import onnx

    graph = model.graph
    light = onnx.GraphProto()
    light.name = graph.name or "graph"
    light.node.extend(graph.node)
    light.output.extend(graph.output)
    for value in graph.input:
        if value.name == image.name:
            copy = onnx.ValueInfoProto()
            copy.CopyFrom(value)
            dims = copy.type.tensor_type.shape.dim
            positions = range(1, len(dims) - 1) if image.channels_last else range(2, len(dims))
            for position, size in zip(positions, reference, strict=True):
                dims[position].Clear()
                dims[position].dim_value = size
            if not dims[0].HasField("dim_value"):
                dims[0].Clear()
                dims[0].dim_value = 1
            light.input.append(copy)
        elif value.name not in {t.name for t in graph.initializer}:
            light.input.append(value)
    for tensor in graph.initializer:
        count = 1
        for d in tensor.dims:
            count *= int(d)
        if count <= SMALL and tensor.data_location != 1:
            light.initializer.append(tensor)
        else:
            light.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims))
    proto = onnx.helper.make_model(light, opset_imports=model.opset_import)
    proto.ir_version = model.ir_version
    proto.functions.extend(model.functions)
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True)
    except Exception:  # inference is a help for reshapes, not a requirement: go on without shapes
        return {}
    shapes: dict[str, tuple[int, ...]] = {}
    for value in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        dims = _dims(value)
        if dims is not None and all(d is not None for d in dims):
            shapes[value.name] = tuple(int(d) for d in dims)  # type: ignore[arg-type]
    return shapes
