"""Gradient support of Keras models (torch backend): the independent oracle of the Keras tests.

Every weight is made positive and scaled by its fan-in (nothing cancels, nothing overflows in
float64), mean statistics are zeroed (activations stay positive, so ReLUs pass gradients), max
pooling becomes average pooling with the same window (a max passes its gradient to one input only)
and capped ReLUs lose their cap. None of this changes the geometry the importer reads. Global
average pools (the squeeze of squeeze-and-excitation blocks) stop the gradient, so that the support
shows the local paths, whose hull is what ``unit_box(path="hull")`` predicts.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np


def oracle_model(model):
    """A float64 copy of ``model`` whose input gradient has the full support of each unit."""
    import keras

    def clone(layer):
        config = layer.get_config()
        if not isinstance(layer, keras.layers.Layer):
            return type(layer).from_config(config)  # an operation such as keras.ops.add
        config["dtype"] = "float64"
        name = type(layer).__name__
        if name.startswith("GlobalAveragePooling"):
            return _detached_mean(layer)
        if name.startswith("MaxPooling"):
            return getattr(keras.layers, name.replace("Max", "Average")).from_config(config)
        if name == "ReLU":
            config["max_value"] = None
        return type(layer).from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    rng = np.random.default_rng(0)
    for layer in copy.layers:
        depthwise = "Depthwise" in type(layer).__name__
        for weight in layer.weights:
            shape = tuple(weight.shape)
            path = weight.path
            if "mean" in path:
                values = np.zeros(shape)
            elif "count" in path:
                continue
            else:
                values = rng.uniform(0.5, 1.5, shape)
                if len(shape) >= 2 and "kernel" in path:
                    fan = math.prod(shape[:-2] if depthwise or "depthwise" in path else shape[:-1])
                    values /= fan
            weight.assign(values.astype(weight.dtype))
    return copy


def _detached_mean(layer):
    import keras

    axes = tuple(range(1, len(layer.input.shape) - 1))
    if layer.data_format == "channels_first":
        axes = tuple(a + 1 for a in axes)
    keepdims = layer.keepdims
    return keras.layers.Lambda(
        lambda x: keras.ops.stop_gradient(keras.ops.mean(x, axis=axes, keepdims=keepdims)),
        name=layer.name,
        dtype="float64",
    )


def support_boxes(model, units_by_layer, size, channels=3):
    """Bounding box ``((start...), (stop...))`` of the input-gradient support of units of layers.

    ``units_by_layer`` maps a layer name to spatial unit indices into its channels-last output; every
    unit is measured on its own batch element, all layers in one forward pass (None: no support).
    """
    import keras
    import torch

    names = list(units_by_layer)
    count = max(len(units) for units in units_by_layer.values())
    sub = keras.Model(model.inputs, [model.get_layer(name).output for name in names])
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.uniform(0.5, 1.5, (count, *size, channels)), dtype=torch.float64, requires_grad=True)
    outs = sub(x, training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    found = {}
    for name, out in zip(names, outs, strict=True):
        units = units_by_layer[name]
        total = sum(out[(b, *u)].sum() for b, u in enumerate(units))
        (grad,) = torch.autograd.grad(total, x, retain_graph=True)
        boxes = []
        for b in range(len(units)):
            seen = grad[b].abs().sum(-1).detach().numpy() > 0
            where = np.nonzero(seen)
            box = (tuple(int(w.min()) for w in where), tuple(int(w.max()) for w in where))
            boxes.append(box if seen.any() else None)
        found[name] = boxes
    return found
