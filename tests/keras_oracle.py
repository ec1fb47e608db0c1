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


def support_boxes(model, units_by_layer, size, channels=3, channels_first=False):
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
    shape = (count, channels, *size) if channels_first else (count, *size, channels)
    x = torch.tensor(rng.uniform(0.5, 1.5, shape), dtype=torch.float64, requires_grad=True)
    outs = sub(x, training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    found = {}
    for name, out in zip(names, outs, strict=True):
        units = units_by_layer[name]
        if channels_first:
            total = sum(out[(b, slice(None), *u)].sum() for b, u in enumerate(units))
        else:
            total = sum(out[(b, *u)].sum() for b, u in enumerate(units))
        (grad,) = torch.autograd.grad(total, x, retain_graph=True)
        boxes = []
        for b in range(len(units)):
            seen = grad[b].abs().sum(0 if channels_first else -1).detach().numpy() > 0
            if not seen.any():
                boxes.append(None)  # a unit that reads padding only
                continue
            where = np.nonzero(seen)
            boxes.append((tuple(int(w.min()) for w in where), tuple(int(w.max()) for w in where)))
        found[name] = boxes
    return found


def sample_units(shape, every=False):
    """Corners, edge midpoints and the centre of a map (every unit with ``every=True``)."""
    import itertools

    if every:
        return list(itertools.product(*(range(n) for n in shape)))
    picks = [sorted({0, n // 2, n - 1}) for n in shape]
    return list(itertools.product(*picks))


def mismatches(model, result, names, size, *, every=False, channels=3, channels_first=False, holes=False):
    """Units whose gradient support box differs from ``result.unit_box(..., path="hull")`` clipped.

    ``model`` is the oracle copy (see :func:`oracle_model`); ``result`` the analysis of the original
    at ``size``. Returns ``(layer, unit, predicted, measured)`` tuples and the number of units checked.
    ``holes=True`` (dilated kernels upstream): a field is a span with holes, and where it reaches into
    the padding its first pixels inside the image may fall in a hole; there the measured side may lie
    inside the predicted one, every side that is not clipped must still match exactly.
    """
    wanted = {name: sample_units(result.layer(name).feature_map, every) for name in names}
    measured = support_boxes(model, wanted, size, channels, channels_first)
    bad, checked = [], 0
    for name, units in wanted.items():
        for unit, got in zip(units, measured[name], strict=True):
            box = result.unit_box(name, unit, path="hull").clipped(tuple(size))
            want = (
                None if box is None else (tuple(int(v) for v in box.start), tuple(int(v) for v in box.stop))
            )
            checked += 1
            if want != got and not (
                holes and _inside_clipped(box, got, box_full=result.unit_box(name, unit, path="hull"))
            ):
                bad.append((name, unit, want, got))
    return bad, checked


def _inside_clipped(clipped, got, box_full):
    """``got`` lies in ``clipped`` and matches it on every side that the image did not clip."""
    if clipped is None or got is None:
        return clipped is None and got is None
    for axis in range(len(got[0])):
        low, high = int(clipped.start[axis]), int(clipped.stop[axis])
        if not low <= got[0][axis] <= got[1][axis] <= high:
            return False
        if box_full.start[axis] >= 0 and got[0][axis] != low:
            return False
        if box_full.stop[axis] <= high and got[1][axis] != high:
            return False
    return True
