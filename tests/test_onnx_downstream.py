"""What comes after the ONNX import works unchanged: reports, JSON, the Explorer, strategies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

import rf_widgets as rfw  # noqa: E402
from rf_widgets.errors import RFError  # noqa: E402


def vgg_like() -> Any:
    """Five 3x3 convolutions and two pools, then a global mean and a Gemm, with dynamic height and width."""
    nodes, inits, src = [], [], "x"
    channels = 3
    plan = [("c1", 1), ("c2", 1), ("p1", 0), ("c3", 1), ("c4", 1), ("p2", 0), ("c5", 1)]
    for name, is_conv in plan:
        if is_conv:
            nodes.append(
                helper.make_node(
                    "Conv", [src, f"{name}.w"], [name], name=name, kernel_shape=[3, 3], pads=[1] * 4
                )
            )
            inits.append(
                helper.make_tensor(f"{name}.w", TensorProto.FLOAT, [8, channels, 3, 3], [0.1] * 72 * channels)
            )
            channels = 8
            nodes.append(helper.make_node("Relu", [name], [f"{name}.r"], name=f"{name}.relu"))
            src = f"{name}.r"
        else:
            nodes.append(
                helper.make_node("MaxPool", [src], [name], name=name, kernel_shape=[2, 2], strides=[2, 2])
            )
            src = name
    nodes.append(helper.make_node("GlobalAveragePool", [src], ["gap"], name="gap"))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="flat"))
    nodes.append(helper.make_node("Gemm", ["flat", "fc.w"], ["logits"], name="fc", transB=1))
    inits.append(helper.make_tensor("fc.w", TensorProto.FLOAT, [10, 8], [0.1] * 80))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "height", "width"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])
    return helper.make_model(helper.make_graph(nodes, "vgg_like", [x], [y], inits))


def test_report_json_and_outputs() -> None:
    result = rfw.analyze(vgg_like(), 16)
    # by hand: r = 3, 5, [6], 10, 14, [16], 24 (pools in brackets), jump 4 at c5
    assert result.layer("c5").r_max == (24, 24)
    assert result.layer("c5").jump == (4, 4)
    assert result.layer("c5").feature_map == (4, 4)
    assert result.layer("gap").status == "global"
    # at 16: c5's r_min 24 > 16 and its input p2 sees 16 >= 16: unproductive (rf-exceeds-input)
    assert result.layer("c5").status == "unproductive"
    assert result.border_layer == "c5"
    data = json.loads(result.to_json())
    assert data["model"] == "vgg_like"
    assert data["border_layer"] == "c5"
    assert [layer["name"] for layer in data["layers"]][:3] == ["c1", "c1.relu", "c2"]
    assert result.outputs["logits"].name == "fc"
    assert "c5" in repr(result)
    assert rfw.analyze(vgg_like(), 64).border_layer is None


def test_the_explorer_opens_on_an_onnx_model_and_follows_the_resolution(tmp_path: Path) -> None:
    pytest.importorskip("ipywidgets")
    path = tmp_path / "vgg_like.onnx"
    onnx.save(vgg_like(), str(path))
    ex = rfw.explore(str(path), input_size=16)
    assert ex.result.border_layer == "c5"
    assert ex.is_torch is False  # no effective-field measurement: there is no torch model to run
    ex.controls["resolution"].value = 64
    assert ex.result.input_size == (64, 64)
    assert ex.result.border_layer is None
    assert ex.result.layer("c5").feature_map == (16, 16)
    from_proto = rfw.explore(vgg_like(), input_size=32)
    assert from_proto.result.layer("c5").r_max == (24, 24)
    # editing the imported graph: c5 with a 5x5 kernel sees 24 + 2 * 4 = 32
    from_proto.controls["stack"].value = "c5"
    from_proto.controls["kernel"].value = "5"
    from_proto.controls["apply"].click()
    assert from_proto.stack["c5"].kernel == (5, 5)
    assert from_proto.result.layer("c5").r_max == (32, 32)
    # r_min 32 is not > 32 and its input map (8x8 after two pools) is wider than the kernel
    assert from_proto.result.layer("c5").status == "productive"


def test_strategies_predict_for_an_onnx_model_and_say_surgery_is_torch_only(tmp_path: Path) -> None:
    path = tmp_path / "vgg_like.onnx"
    onnx.save(vgg_like(), str(path))
    plans = rfw.suggest(str(path), 16)
    trim = plans["trim"]
    assert trim.applicable
    # a layer graph gets no new head: everything from the cut on goes (c5 and the classifier)
    assert trim.removed == ("c5", "c5.relu", "gap", "flat", "fc")
    # parameters by hand: c1 8*3*9 = 216, c2..c5 8*8*9 = 576 each, fc 10*8 = 80
    assert trim.params_before == 216 + 4 * 576 + 80
    assert trim.params_after == 216 + 3 * 576
    assert trim.stack is not None
    with pytest.raises(RFError, match="applies to torch models only"):
        trim.apply()
