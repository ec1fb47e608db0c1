"""Every torchvision classification model and a broad sample of timm CNNs analyse without error.

The models are built on the meta device (tests/meta_models.py): the analysis reads shapes and module
attributes only, and a build takes milliseconds instead of seconds of random initialisation. That a meta
build analyses exactly as the CPU model does is checked in tests/test_zoo.py and, here, on a sample.
"""

from __future__ import annotations

import math
import warnings

import pytest
from verdict_reference import check_against_reference, check_feasible_minimum

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import meta_models  # noqa: E402

import rf_widgets as rfw  # noqa: E402
from rf_widgets.errors import UnknownOperationWarning  # noqa: E402

TORCHVISION_MODELS = torchvision.models.list_models(module=torchvision.models)

# Operations that have no exact rule yet, reported as unknown (with a warning) rather than guessed:
# none among torchvision's classifiers since Swin's shifted windows and MaxViT's partitions have rules.
EXPECTED_UNKNOWN_OPS: dict[str, set[str] | None] = {}


def _family(name: str) -> str | None:
    return next((family for family in EXPECTED_UNKNOWN_OPS if name.startswith(family)), None)


def _analyze(model, name):
    # on the meta device the importer's placeholder input must be a meta tensor too
    with warnings.catch_warnings(record=True) as caught, torch.device("meta"):
        warnings.simplefilter("always", UnknownOperationWarning)
        result = rfw.analyze(model, 224, name=name)
    return result, [w for w in caught if issubclass(w.category, UnknownOperationWarning)]


def test_there_are_80_classification_models():
    assert len(TORCHVISION_MODELS) >= 80


@pytest.mark.slow
@pytest.mark.parametrize("name", TORCHVISION_MODELS)
def test_torchvision_model(name):
    result, unknown_warnings = _analyze(meta_models.torchvision_model(name), name)
    unknown = {layer.op for layer in result.layers if layer.status == "unknown"}
    family = _family(name)
    if family is None:
        assert not unknown, f"{name}: unknown operations {unknown}"
        assert not unknown_warnings
    else:
        expected = EXPECTED_UNKNOWN_OPS[family]
        assert unknown
        assert expected is None or unknown == expected
        assert unknown_warnings, "unknown operations must be announced"
        noted = {d.layer for d in result.diagnostics if d.kind == "unknown-op"}
        assert noted == {layer.name for layer in result.layers if layer.status == "unknown"}
    first = result.layers[0]
    assert first.r_max[0] < math.inf
    assert result.layers[-1].status in ("global", "unknown")
    low, high = result.resolution_range
    assert low is not None
    assert high is not None
    assert low >= 1
    again = result.at(32)
    assert again.input_size == (32, 32)
    check_verdicts(result)


TIMM_MODELS = [
    "resnet50d",  # residual, deep stem
    "seresnet50",  # squeeze-and-excitation
    "densenet121",  # dense
    "inception_v3",  # inception-style
    "xception41",  # depthwise separable
    "efficientnet_b0",  # depthwise + SE
    "mobilenetv3_large_100",
    "convnext_tiny",  # ConvNeXt
    "regnety_016",
    "dpn68",
    "ghostnet_100",
    "dla34",
    "repvgg_a2",
    "nfnet_f0",
    "selecsls42b",
    "poolformer_s12",
    "vit_small_patch16_224",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", TIMM_MODELS)
def test_timm_model(name):
    timm = pytest.importorskip("timm")
    assert timm is not None
    result, unknown_warnings = _analyze(meta_models.timm_model(name), name)
    assert not unknown_warnings
    assert all(layer.status != "unknown" for layer in result.layers)
    assert result.layers[0].r_max[0] < math.inf
    assert result.resolution_range[0] is not None
    check_verdicts(result)


def check_verdicts(result):
    """SPEC section 6 version 2 against the independent reference at the sizes the issue names."""
    for size in (32, 64, 96, 224):
        at = result.at(size)
        check_against_reference(at)
        assert all(at.layer(name).spatial for name in at.border_layers)  # never a pointwise layer
    check_feasible_minimum(result)


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec",
    [
        "torchvision:resnet18",
        "torchvision:mobilenet_v3_small",
        "torchvision:shufflenet_v2_x0_5",
        "torchvision:regnet_x_400mf",  # built on the CPU and moved: its constructor computes with tensors
        "timm:ghostnet_100",
    ],
)
def test_a_meta_build_analyses_as_the_cpu_model(spec):
    """The meta builds above stand for the CPU models: every layer's fields and verdicts are the same."""
    source, _, name = spec.partition(":")
    if source == "timm":
        timm = pytest.importorskip("timm")
        cpu, meta = timm.create_model(name, pretrained=False), meta_models.timm_model(name)
    else:
        cpu, meta = torchvision.models.get_model(name), meta_models.torchvision_model(name)
    assert next(meta.parameters()).is_meta
    assert not next(cpu.parameters()).is_meta
    on_cpu = rfw.analyze(cpu.eval(), 224, name=name)
    on_meta, _ = _analyze(meta, name)
    assert on_meta.layers == on_cpu.layers
    assert on_meta.resolution_range == on_cpu.resolution_range
    assert on_meta.border_layers == on_cpu.border_layers
