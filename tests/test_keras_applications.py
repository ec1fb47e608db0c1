"""keras.applications (weights=None) through the Keras frontend, checked against Keras itself.

Each model is imported with no unknown layer, and the boxes of units (corners, edges, centre) of
spatial layers spread over its depth equal the support of their input gradient, computed by Keras on
the torch backend in float64 (tests/keras_oracle.py). Published final fields: VGG16 212,
InceptionV3 1311 (Keras' own "same"/"valid" padding, TensorFlow's rule; docs/keras.md).
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import pytest

keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("these tests run Keras on the torch backend", allow_module_level=True)

from keras_oracle import mismatches, oracle_model  # noqa: E402

import rf_widgets as rfw  # noqa: E402

# (application, input size of the gradient check, layer and final field where one is known)
APPLICATIONS = [
    ("ResNet50", 64, None),
    ("VGG16", 64, ("block5_pool", 212)),
    ("MobileNetV2", 48, None),
    ("EfficientNetB0", 48, None),
    ("DenseNet121", 64, None),
    ("ConvNeXtTiny", 32, None),
    ("InceptionV3", 75, ("mixed10", 1311)),
]


@pytest.mark.slow
@pytest.mark.parametrize(("app", "size", "published"), APPLICATIONS, ids=[a[0] for a in APPLICATIONS])
def test_application_imports_and_matches_the_gradient_support(app, size, published):
    model = getattr(keras.applications, app)(weights=None, input_shape=(size, size, 3))
    result = rfw.analyze(model, size)  # UnknownOperationWarning is an error in this suite
    assert [layer.name for layer in result.layers if layer.status == "unknown"] == []
    assert rfw.analyze(model, 224).layers[-1].name == result.layers[-1].name
    if published is not None:
        layer, field = published
        assert result.layer(layer).r_max == (field, field)
    spatial = [
        layer.name
        for layer in result.layers
        if layer.kernel and max(layer.kernel) > 1 and layer.r_max_local is not None and "/" not in layer.name
    ]
    picked = spatial[:: max(1, len(spatial) // 5)][:5] + [spatial[-1]]
    bad, checked = mismatches(oracle_model(model), result, picked, (size, size))
    assert checked >= 6 * 4
    assert bad == []
