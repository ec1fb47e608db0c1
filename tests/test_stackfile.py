"""Layer stacks as JSON and YAML files: read, write, round trip, clear errors."""

from __future__ import annotations

import json

import pytest

import rf_widgets as rfw
from rf_widgets.errors import StackFileError
from rf_widgets.stackfile import read_stack, stack_from_dict, stack_to_dict, write_stack

DOCUMENT = {
    "name": "branchy",
    "ndim": 2,
    "layers": [
        {"name": "stem", "type": "conv", "kernel": [3, 5], "stride": [1, 2], "padding": [[1, 0], [2, 2]]},
        {"name": "pool", "type": "maxpool", "kernel": 3, "stride": 2, "ceil_mode": True},
        {"name": "left", "type": "conv", "kernel": 3, "dilation": 2, "padding": 2},
        {"name": "right", "type": "conv", "kernel": 1, "inputs": ["pool"]},
        {"name": "join", "type": "concat", "inputs": ["left", "right"]},
        {"name": "act", "type": "elementwise", "op": "relu"},
        {"name": "down", "type": "adaptive_pool", "output_size": [4, 4]},
        {"name": "flat", "type": "flatten"},
    ],
}


def test_document_builds_the_declared_stack():
    stack = stack_from_dict(DOCUMENT)
    assert stack.names == ("stem", "pool", "left", "right", "join", "act", "down", "flat")
    stem = stack["stem"]
    assert (stem.kernel, stem.stride, stem.padding) == ((3, 5), (1, 2), ((1, 0), (2, 2)))
    assert stack["pool"].ceil_mode
    assert stack["join"].inputs == ("left", "right")
    assert stack["right"].inputs == ("pool",)


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_round_trip_through_a_file(tmp_path, suffix):
    if suffix == ".yaml":
        pytest.importorskip("yaml")
    stack = stack_from_dict(DOCUMENT)
    path = tmp_path / f"stack{suffix}"
    write_stack(stack, path)
    again = read_stack(path)
    assert again.names == stack.names
    assert [layer.inputs for layer in again] == [layer.inputs for layer in stack]
    assert rfw.analyze(again, 37).to_dict() == rfw.analyze(stack, 37).to_dict()


def test_round_trip_of_an_imported_model(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    stack = rfw.analyze(torchvision.models.resnet18(), 64).stack
    document = stack_to_dict(stack)
    again = stack_from_dict(json.loads(json.dumps(document)))
    first, second = rfw.analyze(stack, 64), rfw.analyze(again, 64)
    assert [layer.r_max for layer in first.layers] == [layer.r_max for layer in second.layers]
    assert first.unproductive_layers == second.unproductive_layers
    assert first.resolution_range == second.resolution_range


def test_yaml_file(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "tiny.yml"
    path.write_text(
        "name: tiny\nlayers:\n  - {name: c1, type: conv, kernel: 3}\n  - {name: c2, type: conv, kernel: 3}\n"
    )
    assert rfw.load_stack(str(path)).names == ("c1", "c2")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"layers": "no"}, "expected a mapping with a 'layers' list"),
        ({"layers": [{"type": "conv", "kernel": 3}]}, "layer #1 needs a 'name'"),
        ({"layers": [{"name": "a", "type": "convolution"}]}, "layer 'a' has type 'convolution'"),
        ({"layers": [{"name": "a", "type": "conv", "kernel": 3, "strides": 2}]}, "unknown keys strides"),
        ({"layers": [{"name": "a", "type": "conv", "kernel": 0}]}, "kernel_size must be >= 1"),
        ({"layers": [{"name": "a", "type": "conv", "kernel": 3, "stride": -1}]}, "stride must be >= 1"),
        ({"layers": [{"name": "a", "type": "add"}]}, "layer 'a' of type 'add' needs an 'inputs' list"),
        ({"layers": [{"name": "a", "type": "add", "inputs": ["b"]}]}, "names an unknown input 'b'"),
    ],
)
def test_invalid_documents_name_the_culprit(document, message):
    with pytest.raises(StackFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        stack_from_dict(document, "doc")


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(StackFileError, match="cannot read stack file"):
        read_stack(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"layers": [}')
    with pytest.raises(StackFileError, match="is not valid JSON"):
        read_stack(bad)
