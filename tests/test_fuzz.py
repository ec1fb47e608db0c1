"""Fuzzing stack files and the command line: only rf_widgets' own errors, in bounded time and memory.

Generated documents mix valid layers with wrong types, duplicate names, dangling inputs, huge and
negative numbers, booleans and strings where numbers belong. Whatever comes in, reading and analysing
must either succeed or raise an :class:`~rf_widgets.errors.RFError` with a one-line message; the
command line must exit 0 or 2, and on 2 print exactly one line. Each example has a deadline (a hang
fails) and a memory budget measured with tracemalloc.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import rf_widgets as rfw
from rf_widgets.__main__ import main
from rf_widgets.errors import RFError
from rf_widgets.stackfile import read_stack, stack_from_dict

MEMORY_BUDGET = 100 * 2**20
FUZZ = settings(
    deadline=5000,  # milliseconds: a generous bound that only a hang or a blow-up exceeds
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same examples in CI every time
)

NAMES = st.sampled_from(["a", "b", "c", "d", "input", "", "x" * 600])
SCALARS = st.one_of(
    st.integers(-3, 6),
    st.sampled_from([0, 1, 2, 10**6, 10**6 + 1, 2**63, -(2**70), 10**400]),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["3", "false", "true", "", "x"]),
    st.none(),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4), max_leaves=12)
KEYS = st.sampled_from(
    [
        *("kernel", "stride", "dilation", "padding", "ceil_mode", "output_size", "op", "inputs", "name"),
        *("type", "scale", "size", "window", "shift", "mode", "size_of", "align_corners"),
    ]
)
WINDOW_TYPES = ["conv", "pool", "maxpool", "avgpool"]
OTHER_TYPES = ["elementwise", "global_pool", "flatten", "unknown", "adaptive_pool"]
VALID_LAYER = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(WINDOW_TYPES), "kernel": st.integers(1, 5)},
        optional={
            "stride": st.integers(1, 3),
            "dilation": st.integers(1, 3),
            "padding": st.one_of(
                st.integers(0, 3),
                st.lists(st.lists(st.integers(0, 2), min_size=2, max_size=2), min_size=2, max_size=2),
            ),
            "ceil_mode": st.booleans(),
        },
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(OTHER_TYPES)}, optional={"output_size": st.integers(1, 4)}
    ),
    st.fixed_dictionaries({"type": st.sampled_from(["add", "mul", "concat"])}),
    st.fixed_dictionaries(
        {
            "type": st.just("upsample"),
            "mode": st.sampled_from(["nearest", "linear", "cubic", "nearest-exact"]),
            "scale": st.one_of(
                st.integers(1, 4), st.sampled_from(["3/2", "1/2", "4095/4096", "9999999/1", 1000000])
            ),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.just("upsample"), "mode": st.just("linear"), "size": st.sampled_from([7, 40, 1000000])}
    ),
    st.fixed_dictionaries(
        {"type": st.just("windows"), "window": st.integers(1, 8), "shift": st.integers(0, 3)}
    ),
    st.fixed_dictionaries(
        {"type": st.just("conv_transpose"), "kernel": st.integers(1, 4), "stride": st.integers(1, 3)}
    ),
)
CORRUPTION = st.dictionaries(KEYS, VALUES, min_size=1, max_size=2)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, object]:
    """Mostly valid stacks (so that the analysis is reached), some with one or two keys corrupted."""
    layers = []
    for i in range(draw(st.integers(1, 10))):
        layer = {"name": f"l{i}", **draw(VALID_LAYER)}
        if layer["type"] in ("add", "mul", "concat") or draw(st.integers(0, 4)) == 0:
            earlier = ["input", *(f"l{j}" for j in range(i))]
            layer["inputs"] = draw(st.lists(st.sampled_from(earlier), min_size=1, max_size=3))
        if layer["type"] == "adaptive_pool" and "output_size" not in layer:
            layer["output_size"] = 1
        if draw(st.integers(0, 9)) == 0:
            layer.update(draw(CORRUPTION))
        layers.append(layer)
    document: dict[str, object] = {"layers": layers, "name": "fuzz"}
    if draw(st.integers(0, 4)) == 0:
        document["ndim"] = draw(st.one_of(st.integers(1, 3), SCALARS))
    if draw(st.integers(0, 19)) == 0:
        document[draw(st.sampled_from(["layers", "name", "extra"]))] = draw(VALUES)
    return document


DOCUMENT = documents()
SIZES = st.one_of(
    st.integers(1, 300), st.integers(-2, 300), st.lists(st.integers(0, 64), max_size=3), SCALARS
)


def _one_line(err: BaseException, names: str = "") -> None:
    """A refusal: one of rf_widgets' errors, one non-empty line, naming ``names`` (the file)."""
    assert isinstance(err, RFError), f"{type(err).__name__}: {err}"
    assert str(err).strip()
    assert "\n" not in str(err)
    assert names in str(err)


@contextlib.contextmanager
def _bounded_memory():
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BUDGET, f"peak {peak / 2**20:.0f} MiB"


@settings(FUZZ, max_examples=300)
@given(DOCUMENT, SIZES)
def test_documents_are_built_and_analysed_or_refused_cleanly(document, size):
    with _bounded_memory():
        try:
            stack = stack_from_dict(document, "fuzz.json")
        except Exception as err:
            _one_line(err, names="fuzz.json")
            event("refused by the reader")
            return
        try:
            result = rfw.analyze(stack, size)
        except Exception as err:
            _one_line(err)
            event("refused by the analysis")
            return
        event("analysed")
        result.to_json()
        result.summary()


TEXT_PIECES = st.sampled_from(
    [
        '{"layers": [',
        '{"name": "a", "type": "conv", "kernel": 3}',
        ", ",
        "]}",
        '"kernel": 3, "kernel": 5',
        "&a [1, 2]",
        "*a",
        "layers:\n",
        "  - {name: a, type: conv, kernel: 3}\n",
        "  - {name: b, type: pool, kernel: 2, ceil_mode: yes}\n",
        "!!python/object:os.system\n",
        "- ",
        "\t",
        "\x00",
        "9" * 50,
        "[[[[[[",
        "{",
        "}",
        "\ufeff",
    ]
)


@settings(FUZZ, max_examples=150)
@given(
    st.sampled_from([".json", ".yaml"]),
    st.one_of(
        st.lists(TEXT_PIECES, max_size=12).map(lambda parts: "".join(parts).encode("utf-8")),
        st.binary(max_size=200),
        DOCUMENT.map(lambda d: json.dumps(d, default=str).encode()),
    ),
)
def test_files_are_read_or_refused_cleanly(suffix, content):
    pytest.importorskip("yaml")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(content)
        with _bounded_memory():
            try:
                read_stack(path)
            except Exception as err:
                _one_line(err, names=str(path))


TOKENS = st.sampled_from(
    [
        "-r",
        "--resolution",
        "--input-size",
        "--json",
        "--summary",
        "0",
        "7",
        "32",
        "-5",
        "abc",
        "99999999999999999999",
        "STACK",
        "missing.json",
        "no_such_module_xyz:make",
        "os:abort",
        "gibberish",
        "--what",
    ]
)


@settings(FUZZ, max_examples=80)
@given(st.lists(TOKENS, max_size=6), DOCUMENT)
def test_the_command_line_exits_0_or_2_with_one_line(tokens, document):
    with tempfile.TemporaryDirectory() as folder:
        stack = Path(folder) / "stack.json"
        stack.write_text(json.dumps(document, default=str))
        argv = [str(stack) if token == "STACK" else token for token in tokens]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 2
    assert code in (0, 2), (argv, err.getvalue())
    if code == 2:
        lines = err.getvalue().strip().splitlines()
        assert len(lines) == 1, (argv, err.getvalue())
        assert lines[0].startswith("rf_widgets: error: ")
    else:
        assert out.getvalue()


# -- ONNX bytes and evidence arrays (issue 24) --------------------------------------------------------


def _onnx_seed() -> bytes:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], strides=[2, 2]),
        helper.make_node("Shape", ["c"], ["s"], name="shape"),
        helper.make_node("ConstantOfShape", ["s"], ["z"], name="fill"),
        helper.make_node("Add", ["c", "z"], ["y"], name="add"),
    ]
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], [1.0] * 108)
    graph = helper.make_graph(nodes, "g", [x], [y], [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]).SerializeToString()


@settings(FUZZ, max_examples=60)
@given(st.data())
def test_onnx_bytes_are_imported_or_refused_cleanly(data):
    pytest.importorskip("onnx")
    from rf_widgets.onnx_import import import_onnx

    seed = bytearray(_onnx_seed())
    for _ in range(data.draw(st.integers(0, 6))):  # overwrite a few bytes: mostly decodable, often odd
        seed[data.draw(st.integers(0, len(seed) - 1))] = data.draw(st.integers(0, 255))
    content = bytes(seed) if data.draw(st.booleans()) else data.draw(st.binary(max_size=300))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.onnx"
        path.write_bytes(content)
        with _bounded_memory(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                import_onnx(path)
            except Exception as err:
                _one_line(err)


ARRAYS = st.one_of(
    st.builds(lambda v: np.full((2, 3, 6, 6), v), st.sampled_from([0.5, np.nan, np.inf, -1e308, 7])),
    st.builds(
        lambda d: np.zeros((2, 3, 6, 6), dtype=d), st.sampled_from([object, bool, "U1", complex, np.int8])
    ),
    st.builds(lambda shape: np.zeros(shape, np.float32), st.lists(st.integers(0, 3), max_size=5).map(tuple)),
    st.sampled_from([None, "images", [[1, 2], [3]], 5]),
)


@settings(FUZZ, max_examples=40)
@given(ARRAYS, st.one_of(st.integers(-2, 4), st.sampled_from([2.5, True, 10**400])))
def test_evidence_arrays_are_measured_or_refused_cleanly(images, batch_size):
    torch = pytest.importorskip("torch")
    from rf_widgets.evidence import saturation

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.ReLU())
    with _bounded_memory(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            saturation(net, images, batch_size=batch_size)
        except Exception as err:
            _one_line(err)
