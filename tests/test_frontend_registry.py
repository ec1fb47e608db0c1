"""One registry of frontends and one ``resolve(model)``: what each kind of model is, and who imports it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import rf_widgets as rfw
from rf_widgets import rules
from rf_widgets.frontends import registry
from rf_widgets.frontends.registry import Resolved, frontend, frontends, register, resolve
from rf_widgets.strategies.resolve import source_of


def _onnx_conv() -> Any:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv1", kernel_shape=[5, 5])
    w = helper.make_tensor("w", TensorProto.FLOAT, [8, 3, 5, 5], [0.0] * 600)
    return helper.make_model(helper.make_graph([conv], "g", [x], [y], [w]))


def test_resolve_names_who_imports_each_kind_of_model(tmp_path: Path) -> None:
    import onnx
    import torch.nn as nn

    layers = [rfw.conv("c1", 3)]
    assert resolve(rfw.Stack(layers)).kind == "stack"
    assert resolve(layers).kind == "stack"
    module = nn.Sequential(nn.Conv2d(3, 4, 3))
    assert resolve(module).kind == "torch"
    assert resolve(module).model is module
    proto = _onnx_conv()
    onnx.save(proto, tmp_path / "net.onnx")
    for given in (proto, str(tmp_path / "net.onnx"), tmp_path / "net.onnx"):
        assert resolve(given).kind == "onnx"
    (tmp_path / "net.json").write_text(json.dumps({"layers": [{"name": "c", "type": "conv", "kernel": 3}]}))
    assert resolve(tmp_path / "net.json").stack().names == ("c",)
    spec = resolve("torchvision:alexnet")  # a spec is loaded once, and names its model
    assert spec.kind == "torch"
    assert isinstance(spec.model, nn.Module)
    assert spec.name == "torchvision:alexnet"
    assert resolve(spec) is spec
    with pytest.raises(rfw.ModelImportError, match="got dict"):
        resolve({"not": "a model"})


def test_every_imported_stack_says_which_frontend_read_it() -> None:
    import torch.nn as nn

    torch_stack = rfw.analyze(nn.Sequential(nn.Conv2d(3, 4, 3)), 16).stack
    assert torch_stack.metadata["frontend"] == "torch"
    assert rfw.analyze(_onnx_conv(), 32).stack.metadata["frontend"] == "onnx"
    assert "frontend" not in rfw.Stack([rfw.conv("c1", 3)]).metadata


def test_a_torch_model_imported_earlier_is_a_stack_to_the_strategies() -> None:
    import torch.nn as nn

    stack = rfw.analyze(nn.Sequential(nn.Conv2d(3, 4, 3)), 16).stack
    source, _ = source_of(stack)
    assert type(source).__name__ == "Source"  # the torch.fx adapter needs the module, not its graph
    assert source.apply((), "as is", stack, stack) is stack  # a torch-imported stack is not refused


def test_the_built_in_rule_tables_need_no_importer_imported_first() -> None:
    # ONNX and Keras used to register their rule modules as a side effect of being imported
    code = (
        "from rf_widgets.rules import builtin_rules; import sys; "
        "print(len(builtin_rules('onnx')) > 50, len(builtin_rules('keras')) > 20, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "False"]


class Toy:
    """A frontend for a made-up format: ``{"toy": [kernel, kernel, ...]}``, a chain of convolutions."""

    name = "toy"

    def register_rules(self, table: Any) -> None:
        pass  # this frontend reads no operator rules

    def accepts(self, model: object) -> bool:
        return isinstance(model, dict) and "toy" in model

    def load(self, model: Any, *, name: str | None = None, rules: Any = None) -> rfw.Stack:
        layers = [rfw.conv(f"c{i}", k) for i, k in enumerate(model["toy"])]
        return rfw.Stack(layers, name=name or "toy", metadata={"frontend": self.name})


def test_a_registered_frontend_is_asked_before_the_built_in_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTERED", list(registry._REGISTERED))
    monkeypatch.setattr(rules, "_FILLERS", dict(rules._FILLERS))
    register(Toy())
    assert [f.name for f in frontends()] == ["toy", "keras", "onnx", "torch"]
    assert frontend("toy").accepts({"toy": []})
    assert rfw.analyze({"toy": [3, 5]}, 32).layer("c1").r_max == (7, 7)  # 1 + 2 + 4
    with pytest.raises(TypeError, match="accepts"):
        register(object())  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="known: toy, keras, onnx, torch"):
        frontend("jax")
    assert isinstance(resolve({"toy": [3]}), Resolved)
