"""Errors of the torch import's shape pass are where they belong (issue 21).

The fake-tensor shape pass runs the model's own code: a node that fails there (ShapeProp reports it as
a RuntimeError naming the node) leaves its shapes unknown. Any other exception is a bug of the pass and
is a :class:`ModelImportError`, never hidden as unknown shapes.
"""

from __future__ import annotations

import pytest

import rf_widgets as rfw
from rf_widgets.errors import ModelImportError, UnknownOperationWarning

torch = pytest.importorskip("torch")
shape_prop = pytest.importorskip("torch.fx.passes.shape_prop")


class Tokens(torch.nn.Module):
    """A convolution whose map is read as tokens: the reshape needs the shape pass."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y.reshape(y.shape[0], 4, -1).mean(-1)


def test_a_bug_of_the_shape_pass_is_an_import_error(monkeypatch):
    rfw.analyze(Tokens(), 8)  # imports as it is

    def broken(self, *args):
        raise KeyError("a bug")

    monkeypatch.setattr(shape_prop.ShapeProp, "propagate", broken)
    with pytest.raises(ModelImportError, match=r"shape pass.*KeyError"):
        rfw.analyze(Tokens(), 8)


def test_a_node_that_fails_in_the_shape_pass_leaves_its_shapes_unknown(monkeypatch):
    def failing(self, *args):
        raise RuntimeError("ShapeProp error for: node=conv")

    monkeypatch.setattr(shape_prop.ShapeProp, "propagate", failing)
    with pytest.warns(UnknownOperationWarning, match="'reshape'"):
        found = rfw.analyze(Tokens(), 8)  # no error: the reshape without shapes is reported unknown
    assert found.layer("conv").status != "unknown"
    assert found.layer("reshape").status == "unknown"
