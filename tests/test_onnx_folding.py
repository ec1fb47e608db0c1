"""The ONNX constant folder: what it cannot compute stays a run-time value, its own bugs name the node.

Issue 21: the folder used to turn any exception into "computed at run time", so a bug in it read as an
unknown layer with a false reason. Now an operator it does not handle is "not foldable", numbers that
do not fit their operator (a reshape to the wrong count, an index out of range) stay run-time values,
and anything else is a :class:`ModelImportError` naming the node.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")

from onnx import TensorProto, helper

import rf_widgets as rfw
from rf_widgets.errors import ModelImportError
from rf_widgets.onnx_import import builder
from rf_widgets.onnx_import.reader import Const


def test_an_operator_the_folder_does_not_compute_is_not_foldable():
    node = helper.make_node("Neg", ["a"], ["b"], name="negate")
    found = builder.fold(node, [Const(np.array([1, 2]))])
    assert isinstance(found, Const)
    assert found.value is None  # a value known only at run time, no error


def test_numbers_that_do_not_fit_stay_run_time_values():
    reshape = helper.make_node("Reshape", ["a", "s"], ["b"], name="bad_reshape")
    found = builder.fold(reshape, [Const(np.arange(6)), Const(np.array([4, 4]))])
    assert isinstance(found, Const)
    assert found.value is None
    divide = helper.make_node("Div", ["a", "b"], ["c"], name="by_zero")
    with np.errstate(divide="ignore", invalid="ignore"):
        found = builder.fold(divide, [Const(np.array([1.0])), Const(np.array([0.0]))])
    assert np.isinf(found.value).all()  # float division by zero is a number, as at run time


def test_the_folder_that_computes_gives_the_value():
    node = helper.make_node("Add", ["a", "b"], ["c"], name="sum")
    found = builder.fold(node, [Const(np.array([1, 2])), Const(np.array([3, 4]))])
    assert found.value.tolist() == [4, 6]


def _model_with_a_folded_reshape():
    nodes = [
        helper.make_node("Add", ["zeros", "target"], ["shape"], name="shape_sum"),
        helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3]),
        helper.make_node("Reshape", ["y", "shape"], ["z"], name="flatten"),
    ]
    inits = [
        helper.make_tensor("w", TensorProto.FLOAT, (2, 1, 3, 3), np.ones(18).tolist()),
        helper.make_tensor("zeros", TensorProto.INT64, (2,), [0, 0]),
        helper.make_tensor("target", TensorProto.INT64, (2,), [1, -1]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [x], [z], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def test_a_bug_of_the_folder_is_an_import_error_naming_the_node(monkeypatch):
    model = _model_with_a_folded_reshape()
    rfw.analyze(model, 8)  # imports as it is

    def broken(node, op, values):
        raise KeyError("a bug")

    monkeypatch.setattr(builder, "_fold_numpy", broken)
    with pytest.raises(ModelImportError, match=r"node 'shape_sum' \(Add\).*KeyError"):
        rfw.analyze(model, 8)
