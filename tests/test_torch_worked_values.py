"""SPEC section 7 worked values on real torchvision models (hand-derived in the SPEC, not by us)."""

from __future__ import annotations

import pytest

torchvision = pytest.importorskip("torchvision")

import rf_widgets as rfw  # noqa: E402


def _windows(result: rfw.Analysis) -> list[rfw.LayerResult]:
    return [layer for layer in result.layers if layer.op in ("Conv2d", "MaxPool2d")]


def test_alexnet_features():
    result = rfw.analyze(torchvision.models.alexnet().features, 224)
    layers = _windows(result)
    assert [layer.r_max[0] for layer in layers] == [11, 19, 51, 67, 99, 131, 163, 195]
    assert [layer.jump[0] for layer in layers] == [4, 8, 8, 16, 16, 16, 16, 32]
    assert layers[-1].offset == (66, 66)


def test_vgg16_features():
    result = rfw.analyze(torchvision.models.vgg16().features, 224)
    layers = _windows(result)
    expected = [3, 5, 6, 10, 14, 16, 24, 32, 40, 44, 60, 76, 92, 100, 132, 164, 196, 212]
    assert [layer.r_max[0] for layer in layers] == expected
    pools = [layer.r_max[0] for layer in layers if layer.op == "MaxPool2d"]
    assert pools == [6, 16, 44, 100, 212]
    assert layers[-1].jump == (32, 32)
    assert layers[-1].offset == (90, 90)


@pytest.fixture(scope="module")
def resnet18_32():
    return rfw.analyze(torchvision.models.resnet18(), 32)


@pytest.mark.parametrize(
    ("name", "r_min", "r_max"),
    [
        ("conv1", 7, 7),
        ("maxpool", 11, 11),
        ("layer1.0.conv1", 19, 19),
        ("layer1.0.conv2", 27, 27),
        ("layer1.0.add", 11, 27),
        ("layer2.0.conv1", 19, 51),
        ("layer3.0.conv1", 27, 115),
        ("layer4.1.conv2", 139, 435),
    ],
)
def test_resnet18_fields(resnet18_32, name, r_min, r_max):
    layer = resnet18_32.layer(name)
    assert layer.r_min == (r_min, r_min)
    assert layer.r_max == (r_max, r_max)


def test_resnet18_every_residual_add_keeps_r_min_11(resnet18_32):
    adds = [layer for layer in resnet18_32.layers if layer.op == "add"]
    assert len(adds) == 8
    assert all(layer.r_min == (11, 11) for layer in adds)
    final = resnet18_32.layer("layer4.1.add")
    assert final.r_max == (435, 435)
    assert final.jump == (32, 32)


def test_resnet18_verdicts_at_32(resnet18_32):
    convs = {
        layer.name for layer in resnet18_32.layers if layer.op == "Conv2d" and layer.status == "unproductive"
    }
    assert convs == {
        "layer3.0.conv2",
        "layer3.1.conv1",
        "layer3.1.conv2",
        "layer4.0.conv1",
        "layer4.0.conv2",
        "layer4.1.conv1",
        "layer4.1.conv2",
    }
    assert resnet18_32.layer("layer4.0.downsample.0").status == "productive"
    rule_b = resnet18_32.layer("layer3.0.conv2")
    assert rule_b.reason == "feature-map-covered"
    assert resnet18_32.layer("layer3.0.relu").r_min == (27, 27)
    # SPEC section 6 version 2: the tail starts at the 11th of the 17 convolutions that are not 1x1,
    # where the paper's ResNet18/CIFAR-10 figure draws its line
    assert resnet18_32.border_layer == "layer3.0.conv2"
    assert resnet18_32.border_layers == ("layer3.0.conv2",)
    spatial_convs = [layer.name for layer in resnet18_32.layers if layer.op == "Conv2d" and layer.spatial]
    assert len(spatial_convs) == 17
    assert spatial_convs.index("layer3.0.conv2") == 10
    assert sum(layer.spatial for layer in resnet18_32.layers if layer.status == "unproductive") == 7
    assert len(resnet18_32.unproductive_layers) == 17
    assert len(resnet18_32.layers) == 69
    critical = resnet18_32.layer("layer2.0.conv2")
    assert (critical.status, critical.r_min) == ("critical", (35, 35))
    bn2 = resnet18_32.layer("layer2.0.bn2")  # version 1 called this BatchNorm unproductive
    assert (bn2.status, bn2.reason) == ("critical", None)
    assert resnet18_32.layer("layer3.0.bn2").reason == "follows-unproductive"
    assert resnet18_32.resolution_range == (97, 435)


@pytest.mark.parametrize(("size", "border"), [(64, "layer4.0.conv2"), (96, "layer4.0.conv2"), (100, None)])
def test_resnet18_border_moves_with_the_input_size(resnet18_32, size, border):
    result = resnet18_32.at(size)
    assert result.border_layer == border
    assert bool(result.unproductive_layers) == (border is not None)


SPEC_SECTION_6 = [
    # model, size, border layer, feasible range (SPEC section 6 worked values, torchvision weights=None)
    ("resnet34", 32, "layer3.0.conv2", (97, 899)),
    ("vgg16", 32, "features.14", (197, 212)),
    ("vgg16", 30, "features.12", (197, 212)),
    ("resnet50", 32, "layer3.1.conv2", (97, 427)),
    ("efficientnet_b0", 224, None, (172, 851)),
    ("mobilenet_v2", 32, "features.5.conv.1.0", (100, 491)),
    ("alexnet", 224, None, (164, 195)),
]


@pytest.mark.parametrize(("name", "size", "border", "feasible"), SPEC_SECTION_6)
def test_spec_section_6_worked_values(name, size, border, feasible):
    result = rfw.analyze(torchvision.models.get_model(name), size, name=name)
    assert result.border_layer == border
    assert result.resolution_range == feasible
    if border is None:
        assert result.unproductive_layers == ()
    else:
        assert result.layer(border).spatial


def test_resnet34_border_is_the_17th_of_33_spatial_convolutions():
    result = rfw.analyze(torchvision.models.resnet34(), 32)
    spatial_convs = [layer.name for layer in result.layers if layer.op == "Conv2d" and layer.spatial]
    assert len(spatial_convs) == 33
    assert spatial_convs.index(result.border_layer) == 16


def test_vgg16_border_fields():
    at32 = rfw.analyze(torchvision.models.vgg16(), 32)
    assert at32.layer("features.14").r_max == (40, 40)  # conv3_3
    assert at32.at(30).layer("features.12").status == "critical"  # conv3_2


def test_resnet50_final_field():
    result = rfw.analyze(torchvision.models.resnet50(), 224)
    final = result.layer("layer4.2.add")
    assert final.r_max == (427, 427)
    assert final.r_min == (11, 11)
    assert final.jump == (32, 32)


def test_json_matches_spec_section_9(resnet18_32):
    document = resnet18_32.to_dict()
    assert document["schema_version"] == 2
    assert document["input_size"] == [32, 32]
    assert document["border_layer"] == "layer3.0.conv2"
    assert document["border_layers"] == ["layer3.0.conv2"]
    assert document["resolution_range"] == {"min": 97, "max": 435}
    by_name = {layer["name"]: layer for layer in document["layers"]}
    conv = by_name["layer3.0.conv2"]
    assert conv["module"] == "layer3.0.conv2"
    assert conv["op"] == "Conv2d"
    assert conv["inputs"] == ["layer3.0.relu"]
    assert conv["kernel"] == [3, 3]
    assert conv["padding"] == [1, 1]
    assert conv["r_min"] == [59, 59]
    assert conv["r_max"] == [147, 147]
    assert conv["r_max_local"] == [147, 147]
    assert conv["jump"] == [16, 16]
    assert conv["feature_map"] == [2, 2]
    assert (conv["status"], conv["reason"]) == ("unproductive", "feature-map-covered")
    assert by_name["avgpool"]["r_max"] == "inf"
    assert by_name["avgpool"]["r_max_local"] is None
    assert "layer1.0.relu:2" in by_name
    assert set(document["unproductive_layers"]) >= {"layer3.0.conv2", "layer4.1.conv2"}
