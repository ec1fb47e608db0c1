"""Import a Keras 3 model (any backend) as a :class:`~rf_widgets.core.graph.Stack`.

The Functional graph is walked node by node (a Sequential model through the Functional graph Keras
builds for it; nested models in place, their layers named ``outer/inner``). Each Keras layer is
mapped to layers by the Keras rule table (:mod:`rf_widgets.keras_import.ops`, plus any
:class:`~rf_widgets.RuleTable` with ``operator("keras", LayerClass, rule)``), reading the layer's
configuration only: the model is never called, so no backend computation runs and the model is left
as it was. Layer names are the Keras layer names. A layer without a rule (a ``Lambda``, a custom
layer) becomes an ``unknown`` layer with a diagnostic and an
:class:`~rf_widgets.errors.UnknownOperationWarning`. ``padding="same"`` follows TensorFlow's rule,
whose padding depends on the input size; it is resolved at every analysed size (docs/keras.md).
"""

from __future__ import annotations

from typing import Any

from rf_widgets.core.graph import Stack
from rf_widgets.errors import ModelImportError
from rf_widgets.keras_import.builder import KerasBuilder, graph_of
from rf_widgets.keras_import.call import Act, KerasCall, channel_layout
from rf_widgets.rules import RuleTable, lookup_chain

__all__ = ["Act", "KerasCall", "import_model", "is_keras_model"]


def is_keras_model(model: Any) -> bool:
    """Whether ``model`` is a Keras 3 layer or model (without importing Keras)."""
    import sys

    keras = sys.modules.get("keras")
    return keras is not None and isinstance(model, keras.layers.Layer)


def import_model(model: Any, *, name: str | None = None, rules: RuleTable | None = None) -> Stack:
    """The layer graph of a Keras model.

    Parameters
    ----------
    model
        A Functional or Sequential ``keras.Model`` (built: its input shape known), with one input
        shaped ``(batch, *spatial, channels)`` or ``(batch, channels, *spatial)``; other inputs
        without spatial axes are allowed and add no field.
    name
        What to call it in reports (default: the model's name).
    rules
        A :class:`~rf_widgets.RuleTable` consulted before the active and built-in rules.

    Examples
    --------
    >>> import keras  # doctest: +SKIP
    >>> model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3)])  # doctest: +SKIP
    >>> import_model(model).names  # doctest: +SKIP
    ('conv2d',)
    """
    if not is_keras_model(model):
        raise ModelImportError(f"import_model needs a Keras model, got {type(model).__name__}")
    label = name or model.name
    graph = graph_of(model)
    if graph is None:
        raise ModelImportError(
            f"{label}: only Functional and Sequential Keras models have a graph to read; build a "
            "Sequential model first (give it a keras.Input), and write a subclassed model's layers "
            "as a Functional model"
        )
    shapes = [tuple(t.shape) for t in graph.inputs]
    spatial = [i for i, shape in enumerate(shapes) if len(shape) >= 3]
    shown = ", ".join(str(s) for s in shapes)
    if not spatial:
        raise ModelImportError(
            f"{label} has no spatial input (its inputs are shaped {shown}); rf_widgets analyses models "
            "whose input has spatial axes, shaped (batch, *spatial, channels)"
        )
    if len(spatial) > 1:
        raise ModelImportError(
            f"{label} has {len(spatial)} image inputs (shaped {shown}); rf_widgets analyses one input: "
            "analyse a model built on each input separately"
        )
    ndim = len(shapes[spatial[0]]) - 2
    data_format = _data_format(graph, graph.inputs[spatial[0]])
    builder = KerasBuilder(ndim, data_format, lookup_chain(rules, frontend="keras"))
    inputs: list[Any] = [None] * len(shapes)
    from rf_widgets.keras_import.call import CONST

    for i in range(len(shapes)):
        inputs[i] = Act("input", channel_layout(ndim, data_format)) if i == spatial[0] else CONST
    outputs = builder.walk(graph, inputs)
    if not builder.layers:
        raise ModelImportError(f"{label} has no layer that reads its spatial input")
    builder.warn_unknown(label, stacklevel=3)
    named = [(str(i), act.source) for i, act in enumerate(outputs) if isinstance(act, Act)]
    return Stack(
        builder.layers,
        ndim,
        label,
        metadata={
            "frontend": "keras",
            "data_format": data_format,
            "diagnostics": tuple(builder.diagnostics),
            "outputs": tuple((n, s) for n, s in named if s != "input"),
        },
    )


def _data_format(graph: Any, tensor: Any) -> str:
    """Where the input keeps its channels: as the first layer that reads it says, else Keras' default.

    Layers without a ``data_format`` (rescaling, activations) are followed to the next; a layer that
    moves dimensions (a Permute, a Reshape) leaves the question to Keras' default.
    """
    nodes = [
        node
        for depth in sorted(graph._nodes_by_depth, reverse=True)
        for node in graph._nodes_by_depth[depth]
        if node.operation is not None and not node.is_input
    ]
    for _ in range(len(nodes)):
        node = next((n for n in nodes if any(t is tensor for t in n.input_tensors)), None)
        if node is None:
            break
        found = getattr(node.operation, "data_format", None)
        if found in ("channels_first", "channels_last"):
            return str(found)
        inner = graph_of(node.operation)
        if inner is not None and len(inner.inputs) == 1:
            return _data_format(inner, inner.inputs[0])
        if type(node.operation).__name__ in ("Permute", "Reshape", "Lambda") or len(node.outputs) != 1:
            break
        tensor = node.outputs[0]
    import keras

    return str(keras.config.image_data_format())
