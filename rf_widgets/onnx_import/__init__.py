"""Import an ONNX model as a :class:`~rf_widgets.core.graph.Stack` (the ``onnx`` package only: no runtime,
no torch).

The graph is read without its weights (parameter counts come from the declared initializer shapes),
shapes are inferred with ONNX's own shape inference at a reference input size (the model's fixed size,
else 224, or 32 for 3-D inputs) only where a Reshape or Squeeze needs them, and every node that reads the
image is mapped to layers by the ONNX rules of the rule table (:mod:`rf_widgets.rules`, frontend
``"onnx"``; the built-in ones are in :mod:`rf_widgets.onnx_import.ops`). Layers are named after the ONNX
nodes. Operators without a rule become ``unknown`` layers with a diagnostic and an
:class:`~rf_widgets.errors.UnknownOperationWarning`. See docs/onnx.md.
"""

from __future__ import annotations

from typing import Any

from rf_widgets.core.graph import Stack
from rf_widgets.errors import ModelImportError
from rf_widgets.rules import RuleTable, lookup_chain

__all__ = ["import_onnx"]


def import_onnx(model: Any, *, name: str | None = None, rules: RuleTable | None = None) -> Stack:
    """The layer graph of an ONNX model.

    Parameters
    ----------
    model
        An ``onnx.ModelProto``, or the path of a ``.onnx`` file (its external data is not read).
    name
        What to call it in reports (default: the file name, or the graph's name).
    rules
        A :class:`~rf_widgets.RuleTable` consulted before the active and built-in rules; ONNX rules are
        registered with ``table.operator("onnx", "OpType", rule)``.

    Examples
    --------
    >>> import onnx
    >>> from onnx import TensorProto, helper
    >>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])
    >>> y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    >>> conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv1", kernel_shape=[3, 3])
    >>> w = helper.make_tensor("w", TensorProto.FLOAT, [8, 3, 3, 3], [0.0] * 216)
    >>> stack = import_onnx(helper.make_model(helper.make_graph([conv], "g", [x], [y], [w])))
    >>> stack["conv1"].kernel, stack["conv1"].params
    ((3, 3), 216)
    """
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ModelImportError(
            "reading ONNX models needs the onnx package: pip install 'rf_widgets[onnx]'"
        ) from None
    from rf_widgets.onnx_import.builder import GraphBuilder
    from rf_widgets.onnx_import.reader import REFERENCE_SIZE, image_input, infer_shapes, load

    if rules is not None and not isinstance(rules, RuleTable):
        raise TypeError(f"rules must be a RuleTable, got {type(rules).__name__}")
    proto, label, base = load(model)
    label = name or label
    chain = lookup_chain(rules, frontend="onnx")
    image = image_input(proto.graph, f"'{label}'")
    reference = image.static or (REFERENCE_SIZE.get(image.ndim, 32),) * image.ndim
    shapes = infer_shapes(proto, image, reference)
    opset = next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), 21)
    builder = GraphBuilder(proto.graph, image, shapes, chain, base, opset)
    layers = builder.build()
    if builder.unknown and image.static is None:
        # Layouts are read off the shapes at one size, where a dimension of size 1 carries no positions:
        # a window partition of a map no larger than one window (Swin's last stage at 224) looks like
        # no partition. Twice the size tells them apart; its import is kept when it leaves fewer unknown.
        larger = tuple(2 * n for n in reference)
        retry = GraphBuilder(proto.graph, image, infer_shapes(proto, image, larger), chain, base, opset)
        retried = retry.build()
        if len(retry.unknown) < len(builder.unknown):
            builder, layers = retry, retried
    if not layers:
        raise ModelImportError(f"'{label}' has no operation on its image input that rf_widgets can see")
    builder.warn_unknown(label, stacklevel=2)
    return Stack(
        layers,
        image.ndim,
        label,
        metadata={
            "frontend": "onnx",
            "onnx_opset": opset,
            "channels_last_input": image.channels_last,
            "diagnostics": tuple(builder.diagnostics),
            "outputs": builder.outputs(),
        },
    )
