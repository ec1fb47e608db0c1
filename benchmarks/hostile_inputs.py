"""How fast, and in how much memory, hostile inputs are refused.

Stack files are written to a temporary folder and read with ``rf_widgets.load_stack``; the other
surfaces (issue 24: ONNX files, upsample sizes, specs, CIFAR pickles, evidence arrays, zoo caches,
uploads, Explorer edits, huge integers) are called directly. The script prints each outcome, the wall
time and the peak traced memory (tracemalloc: Python and numpy allocations), then the worst of each.
Targets: every refusal under 1 s and under 200 MB (issue 14's file cases: 100 MB).

    python benchmarks/hostile_inputs.py
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rf_widgets as rfw


def _alias_bomb() -> str:
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 40)]
    return "\n".join([*lines, "layers:", "  - {name: c, type: conv, kernel: *a39}"]) + "\n"


CASES: dict[str, tuple[str, bytes]] = {
    "YAML alias bomb (5**39 leaves)": ("bomb.yaml", _alias_bomb().encode()),
    "2,000 stride-2 layers": (
        "deep.json",
        json.dumps(
            {"layers": [{"name": f"s{i}", "type": "conv", "kernel": 3, "stride": 2} for i in range(2000)]}
        ).encode(),
    ),
    "ndim 10**9": (
        "ndim.json",
        b'{"ndim": 1000000000, "layers": [{"name": "a", "type": "conv", "kernel": 3}]}',
    ),
    "kernel 10**30": (
        "kernel.json",
        b'{"layers": [{"name": "a", "type": "conv", "kernel": 1' + b"0" * 30 + b"}]}",
    ),
    "nesting 100,000 deep": ("nested.json", b"[" * 100_000 + b"]" * 100_000),
    "20,000 layers": (
        "wide.json",
        json.dumps({"layers": [{"name": f"e{i}", "type": "elementwise"} for i in range(20_000)]}).encode(),
    ),
    "non-UTF-8": ("latin1.json", b'{"layers": [{"name": "caf\xe9", "type": "conv", "kernel": 3}]}'),
    "op: 5": ("op.json", b'{"layers": [{"name": "a", "type": "conv", "kernel": 3, "op": 5}]}'),
    "4 MiB of spaces": ("big.json", b" " * (4 * 2**20 + 1)),
}


def _measure(action):  # type: ignore[no-untyped-def]
    """Outcome, wall time (without tracing) and peak traced memory (a second run) of ``action``."""
    start = time.perf_counter()
    try:
        action()
        outcome = "accepted"
    except rfw.RFError as err:
        outcome = str(err)
    elapsed = time.perf_counter() - start
    tracemalloc.start()
    with contextlib.suppress(rfw.RFError):
        action()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return outcome, elapsed, peak


CASES.update(
    {
        "upsample scale 1000000": (
            "up.json",
            b'{"layers": [{"name": "u", "type": "upsample", "mode": "nearest", "scale": 1000000}]}',
        ),
        'upsample scale "9999999/1"': (
            "up2.json",
            b'{"layers": [{"name": "u", "type": "upsample", "mode": "linear", "scale": "9999999/1"}]}',
        ),
        "YAML kernel: 017": ("octal.yaml", b"layers:\n  - {name: c, type: conv, kernel: 017}\n"),
        "YAML <<: merge key": (
            "merge.yaml",
            b"layers:\n  - {name: c, type: conv, kernel: 3, <<: {kernel: 5}}\n",
        ),
    }
)


def _onnx_cases(folder: Path) -> dict[str, Callable[[], object]]:
    import onnx
    from onnx import TensorProto, helper

    from rf_widgets.onnx_import import import_onnx

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])
    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3])
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], [1.0] * 108)

    def model(nodes: list[Any], inits: list[Any]) -> Any:
        y = helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)
        graph = helper.make_graph(nodes, "g", [x], [y], [weight, *inits])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])

    (folder / "big.bin").touch()
    os.truncate(folder / "big.bin", 3 * 2**30)  # sparse: 3 GiB that must not be read
    shape = onnx.TensorProto(name="shape", data_type=TensorProto.INT64, dims=[4])
    shape.data_location = onnx.TensorProto.EXTERNAL
    shape.external_data.add(key="location", value="big.bin")
    reshape = helper.make_node("Reshape", ["c", "shape"], ["y"], name="reshape")
    (folder / "external.onnx").write_bytes(model([conv, reshape], [shape]).SerializeToString())
    fills = []
    for i in range(3):
        size = helper.make_tensor(f"s{i}", TensorProto.INT64, [2], [14000, 14000])
        value = helper.make_tensor("v", TensorProto.DOUBLE, [1], [1.0])
        fills.append((helper.make_node("ConstantOfShape", [f"s{i}"], [f"f{i}"], value=value), size))
    folded = model([*(n for n, _ in fills), conv], [s for _, s in fills])
    negative = model([conv], [])
    negative.graph.initializer[0].ClearField("dims")
    negative.graph.initializer[0].dims.extend([-5, 3, 3, 3])
    return {
        "ONNX 3 GiB external data": lambda: import_onnx(folder / "external.onnx"),
        "ONNX ConstantOfShape 14000^2 x3": lambda: import_onnx(folded),
        "ONNX weight dims [-5, 3, 3, 3]": lambda: import_onnx(negative),
        "ONNX path of 5,000 characters": lambda: import_onnx("a" * 5000 + ".onnx"),
    }


def _other_cases(folder: Path) -> dict[str, Callable[[], object]]:
    import pickle

    import numpy as np

    from rf_widgets.data import load_image
    from rf_widgets.specs import load_model_spec
    from rf_widgets.stackfile import stack_from_dict

    os.mkfifo(folder / "fifo.json")
    (folder / "cifar").mkdir()
    (folder / "cifar" / "test_batch").write_bytes(pickle.dumps({b"data": _Payload()}, protocol=2))
    size_up = stack_from_dict(
        {
            "layers": [
                {"name": "c", "type": "conv", "kernel": 3},
                {"name": "u", "type": "upsample", "mode": "linear", "size": 1000000},
            ]
        }
    )
    bomb = _png_bomb()
    cases: dict[str, Callable[[], object]] = {
        "stack file that is a FIFO": lambda: rfw.load_stack(folder / "fifo.json"),
        "upsample size 1000000 at 32": lambda: rfw.analyze(size_up, 32),
        "analyze(stack, 10**5000)": lambda: rfw.analyze([rfw.conv("c", 3)], 10**5000),
        "conv('a', 10**400)": lambda: rfw.conv("a", 10**400),
        "spec of 5,000 characters": lambda: load_model_spec("a" * 5000),
        "7000x7000 1-bit PNG upload": lambda: load_image(bomb),
    }
    try:
        import torch

        from rf_widgets.evidence import probes, saturation
        from rf_widgets.evidence.datasets import load_cifar10
    except ImportError:
        return cases
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    images = torch.rand(4, 3, 8, 8)
    nan = images.clone()
    nan[1, 1, 1, 1] = float("nan")
    cases.update(
        {
            "spec torch.hub:tempfile.mkdtemp": lambda: load_model_spec("torch.hub:tempfile.mkdtemp"),
            "CIFAR batch with a __reduce__": lambda: load_cifar10(folder / "cifar", train=False),
            "probe label 10**9": lambda: probes(
                net, (images, np.array([0, 1, 1, 10**9])), (images, np.ones(4, int))
            ),
            "one NaN pixel in saturation": lambda: saturation(net, nan),
            "batch_size 2.5": lambda: saturation(net, images, batch_size=2.5),
            "budget 10**400": lambda: _search(10**400),
        }
    )
    return cases


class _Payload:
    def __reduce__(self) -> Any:
        return (print, ("this must never be printed",))


def _png_bomb() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (7000, 7000), 1).save(buffer, format="PNG")
    return buffer.getvalue()


def _search(budget: int) -> object:
    from rf_widgets.strategies import search

    return search([rfw.conv("c1", 3, stride=2), rfw.conv("c2", 3)], 8, budget=budget)


def _explorer_cases() -> dict[str, Callable[[], object]]:
    try:
        from rf_widgets.widgets.state import ExplorerState
    except ImportError:
        return {}
    state = ExplorerState(rfw.Stack([rfw.conv("conv1", 7, stride=2, padding=3), rfw.conv("conv2", 3)]), 64)
    return {
        "Explorer stride 1000000": lambda: state.edit("conv1", stride=1000000),
        "Explorer padding 1000000": lambda: state.edit("conv1", padding=1000000),
        "Explorer 1,000,000-char name": lambda: state.add(1, rfw.elementwise("x" * 1_000_000)),
        "Explorer ceil_mode='no'": lambda: state.edit("conv1", ceil_mode="no"),
    }


def _report(label: str, action: Callable[[], object], worst: list[float]) -> None:
    outcome, elapsed, peak = _measure(action)
    worst[0], worst[1] = max(worst[0], elapsed), max(worst[1], peak)
    print(f"{label:34s} {elapsed * 1000:8.1f} ms {peak / 2**20:7.1f} MiB  {outcome[-80:]}")


def main() -> None:
    import warnings

    import yaml  # noqa: F401 - imported once up front, so its import time is not counted

    warnings.simplefilter("ignore")
    worst = [0.0, 0.0]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for label, (file_name, content) in CASES.items():
            path = folder / file_name
            path.write_bytes(content)
            _report(label, lambda path=path: rfw.load_stack(str(path)), worst)
        cases: dict[str, Callable[[], object]] = {}
        try:
            cases.update(_onnx_cases(folder))
        except ImportError:
            print("(onnx not installed: its cases are skipped)")
        cases.update(_other_cases(folder))
        cases.update(_explorer_cases())
        for label, action in cases.items():
            _report(label, action, worst)
    for size in (10**400, 10**6):
        _report(
            f"analyze at {str(size)[:12]}", lambda size=size: rfw.analyze([rfw.conv("c", 3)], size), worst
        )
    print(
        f"worst refusal over all inputs: {worst[0] * 1000:.1f} ms, {worst[1] / 2**20:.1f} MiB "
        "(targets: 1000 ms, 200 MiB)"
    )


if __name__ == "__main__":
    main()
