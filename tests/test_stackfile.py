"""Layer stacks as JSON and YAML files: read, write, round trip, clear errors."""

from __future__ import annotations

import json
from fractions import Fraction

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
        (
            {"layers": [{"name": "a", "type": "conv", "kernel": 0}]},
            "layer 'a', key 'kernel': must be between 1",
        ),
        (
            {"layers": [{"name": "a", "type": "conv", "kernel": 3, "stride": -1}]},
            "layer 'a', key 'stride': must be between 1",
        ),
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


# -- strict values and hostile files ------------------------------------------------------------------


def _layer(**keys):
    return {"layers": [{"name": "c1", "type": "pool", "kernel": 2, **keys}]}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (_layer(ceil_mode="false"), "layer 'c1', key 'ceil_mode': must be true or false, got 'false'"),
        (_layer(ceil_mode=1), "key 'ceil_mode': must be true or false"),
        (_layer(kernel=True), "key 'kernel': must be whole numbers (not booleans"),
        (_layer(stride=[2, False]), "key 'stride': must be whole numbers"),
        (_layer(kernel=3.0), "key 'kernel': must be whole numbers"),
        (_layer(kernel="3"), "key 'kernel': must be whole numbers"),
        (_layer(kernel=10**30), "key 'kernel': must be between 1 and 1,000,000"),
        (_layer(padding=[[1, 2, 3]]), "key 'padding': must be an int, one int per axis"),
        (_layer(kernel=[2] * 9), "key 'kernel': must have 1 to 8 values"),
        (_layer(op=5), "layer 'c1', key 'op': must be a string"),
        (_layer(inputs=[5]), "key 'inputs': must be a non-empty list of layer names"),
        ({**_layer(), "ndim": True}, "key 'ndim' must be a whole number from 1 to 8, got True"),
        ({**_layer(), "ndim": 10**9}, "key 'ndim' must be a whole number from 1 to 8"),
        ({**_layer(), "name": ["x"]}, "key 'name' must be a string"),
        ({**_layer(), "version": 2}, "unknown top-level keys version"),
        ({"layers": [{"name": "a", "type": 5}]}, "layer 'a' has type 5"),
        ({"layers": [{"name": f"c{i}", "type": "elementwise"} for i in range(10_001)]}, "at most 10,000"),
    ],
)
def test_values_are_read_strictly(document, message):
    with pytest.raises(StackFileError) as caught:
        stack_from_dict(document, "doc.json")
    text = str(caught.value)
    assert message in text
    assert text.startswith("doc.json: ")
    assert "\n" not in text


def test_strides_that_overflow_any_size_are_refused_at_the_layer_that_overflows():
    import tracemalloc

    document = {"layers": [{"name": f"s{i}", "type": "conv", "kernel": 3, "stride": 2} for i in range(2000)]}
    tracemalloc.start()
    try:
        with pytest.raises(StackFileError, match=r"layer 's64', key 'stride': the strides up to this layer"):
            stack_from_dict(document, "deep.json")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20
    fine = stack_from_dict({"layers": document["layers"][:64]})  # 2**64 is still accepted
    assert rfw.analyze(fine, 32).layers[-1].jump == (2**64, 2**64)


def _write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "dup.json",
            '{"layers": [{"name": "a", "type": "conv", "kernel": 3, "kernel": 5}]}',
            "key 'kernel' appears twice",
        ),
        (
            "dup.json",
            '{"layers": [], "layers": [{"name": "a", "type": "conv", "kernel": 3}]}',
            "key 'layers' appears twice",
        ),
        (
            "dup.yaml",
            "layers:\n  - {name: a, type: conv, kernel: 3, kernel: 5}\n",
            "line 2: key 'kernel' appears twice",
        ),
        (
            "latin1.json",
            b'{"layers": [{"name": "caf\xe9", "type": "conv", "kernel": 3}]}',
            "is not UTF-8 text",
        ),
        ("deep.json", "[" * 100_000 + "]" * 100_000, "is not valid JSON"),
        (
            "bigint.json",
            '{"layers": [{"name": "a", "type": "conv", "kernel": ' + "9" * 5000 + "}]}",
            "is not valid JSON",
        ),
        (
            "date.yaml",
            "layers:\n  - {name: a, type: conv, kernel: 2001-12-14}\n",
            "key 'kernel': must be whole numbers",
        ),
        ("tab.yaml", "layers:\n\t- a\n", "is not valid YAML"),
        ("list.yaml", "- 1\n- 2\n", "expected a mapping with a 'layers' list"),
    ],
)
def test_bad_files_give_one_line_naming_the_file(tmp_path, name, content, message):
    if name.endswith(".yaml"):
        pytest.importorskip("yaml")
    path = _write(tmp_path, name, content)
    with pytest.raises(StackFileError) as caught:
        read_stack(path)
    text = str(caught.value)
    assert message in text
    assert str(path) in text
    assert "\n" not in text


def test_yaml_aliases_are_refused_before_they_expand(tmp_path):
    pytest.importorskip("yaml")
    import tracemalloc

    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 30)]
    lines += ["layers:", "  - {name: c, type: conv, kernel: *a29}"]
    path = _write(tmp_path, "bomb.yaml", "\n".join(lines) + "\n")
    tracemalloc.start()
    try:
        with pytest.raises(StackFileError, match="anchors and aliases are not accepted"):
            read_stack(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20


def test_an_oversized_file_is_not_read(tmp_path):
    path = _write(tmp_path, "big.json", b" " * (5 * 2**20))
    with pytest.raises(StackFileError, match="larger than 4 MiB"):
        read_stack(path)


# -- resampling layers ---------------------------------------------------------------------------------

RESAMPLING = {
    "name": "decoder",
    "layers": [
        {"name": "c1", "type": "conv", "kernel": 3, "stride": 2},
        {"name": "c2", "type": "conv", "kernel": 3, "stride": 2},
        {"name": "t", "type": "conv_transpose", "kernel": 4, "stride": 2, "padding": 1, "output_padding": 1},
        {"name": "up", "type": "upsample", "mode": "linear", "scale": [2, "3/2"], "align_corners": True},
        {"name": "near", "type": "upsample", "mode": "nearest", "size": 20, "inputs": ["c2"]},
        {"name": "full", "type": "upsample", "mode": "cubic", "size_of": "input", "size_axes": [0, 1]},
        {"name": "attn", "type": "windows", "window": 7, "shift": 3},
        {"name": "grid", "type": "windows", "window": 1 << 30},
        {"name": "back", "type": "upsample", "mode": "nearest-exact", "size_of": "c1", "inputs": ["up"]},
    ],
}


def test_resampling_layers_round_trip(tmp_path):
    stack = stack_from_dict(RESAMPLING)
    t, up = stack["t"], stack["up"]
    assert (t.kernel, t.stride, t.padding, t.resample.output_padding) == (
        (4, 4),
        (2, 2),
        ((1, 1),) * 2,
        (1, 1),
    )
    assert up.resample.scale == (2, Fraction(3, 2))
    assert up.resample.align_corners
    assert stack["full"].resample.size_of == "input"
    assert stack["attn"].resample.window == (7, 7)
    assert stack["attn"].resample.shift == (3, 3)
    # the written document reads back to the same layers, and to the same analysis at several sizes
    for suffix in (".json", ".yaml"):
        path = tmp_path / f"decoder{suffix}"
        write_stack(stack, path)
        again = read_stack(path)
        assert [(a.name, a.kind, a.inputs, a.resample) for a in again] == [
            (b.name, b.kind, b.inputs, b.resample) for b in stack
        ]
        for size in (37, 64):
            assert rfw.analyze(again, size).to_dict() == rfw.analyze(stack, size).to_dict()
    assert rfw.analyze(stack, 64).layer("back").feature_map == rfw.analyze(stack, 64).layer("c1").feature_map


@pytest.mark.parametrize("name", ["fcn_resnet50", "lraspp_mobilenet_v3_large", "swin_t"])
def test_round_trip_of_dense_models(name):
    # every layer geometry survives (Swin's ceil-mode patch merging was written as a conv without it)
    torchvision = pytest.importorskip("torchvision")
    builder = torchvision.models.get_model_builder(name)
    options = {"weights": None} | ({"weights_backbone": None} if "segmentation" in builder.__module__ else {})
    stack = rfw.analyze(builder(**options), 224).stack
    assert any(layer.kind == "resample" for layer in stack)
    again = stack_from_dict(json.loads(json.dumps(stack_to_dict(stack))))
    geometry = ("kind", "inputs", "kernel", "stride", "dilation", "padding", "ceil_mode", "output_size")
    for a, b in zip(stack.layers, again.layers, strict=True):
        assert a.resample == b.resample, a.name
        assert [getattr(a, k) for k in geometry] == [getattr(b, k) for k in geometry], a.name
    for size in (96, 224):
        first, second = rfw.analyze(stack, size), rfw.analyze(again, size)
        assert [(a.r_min, a.r_max, a.jump, a.feature_map) for a in first.layers] == [
            (b.r_min, b.r_max, b.jump, b.feature_map) for b in second.layers
        ]
        assert first.unproductive_layers == second.unproductive_layers
        assert first.resolution_range == second.resolution_range
    assert not any(layer.status == "unknown" for layer in rfw.analyze(again, 224).layers)


def _resampling(**keys):
    return {"layers": [{"name": "c1", "type": "conv", "kernel": 3}, {"name": "r", **keys}]}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (_resampling(type="upsample", mode="bilinear", scale=2), "key 'mode': must be one of nearest"),
        (_resampling(type="upsample", scale=2), "key 'mode': must be one of"),
        (
            _resampling(type="upsample", mode="linear"),
            "exactly one of 'scale', 'size' and 'size_of', got none",
        ),
        (_resampling(type="upsample", mode="linear", scale=2, size=4), "got scale, size"),
        (_resampling(type="upsample", mode="linear", scale=1.5), 'fractions written "p/q", got 1.5'),
        (_resampling(type="upsample", mode="linear", scale="3/0"), "key 'scale'"),
        (_resampling(type="upsample", mode="linear", scale=True), "key 'scale'"),
        (_resampling(type="upsample", mode="linear", size=0), "key 'size': must be between 1"),
        (
            _resampling(type="upsample", mode="linear", size_of="later"),
            "key 'size_of': must be 'input' or a layer",
        ),
        (_resampling(type="upsample", mode="linear", size_of="r"), "key 'size_of'"),
        (
            _resampling(type="upsample", mode="linear", size=4, size_axes=[0, 1]),
            "'size_axes' goes with 'size_of'",
        ),
        (_resampling(type="upsample", mode="linear", size_of=5), "key 'size_of': must be a layer name"),
        (
            _resampling(type="upsample", mode="linear", scale=2, align_corners=1),
            "key 'align_corners': must be true",
        ),
        (
            _resampling(type="conv_transpose", kernel=2, output_padding=-1),
            "key 'output_padding': must be between 0",
        ),
        (_resampling(type="conv", kernel=3, mode="linear"), "key 'mode': is not a key of a 'conv' layer"),
        (_resampling(type="windows", window=0), "key 'window': must be whole numbers between 1"),
        (_resampling(type="windows", window=7, shift=[1.5]), "key 'shift': must be whole numbers"),
        (_resampling(type="windows", window=[7, 7, 7, 7, 7, 7, 7, 7, 7]), "key 'window'"),
        (_resampling(type="windows"), "key 'window'"),
    ],
)
def test_resampling_values_are_read_strictly(document, message):
    with pytest.raises(StackFileError) as caught:
        stack_from_dict(document, "doc.json")
    text = str(caught.value)
    assert message in text
    assert text.startswith("doc.json: ")
    assert "\n" not in text
