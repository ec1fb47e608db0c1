"""Fields reused across input sizes: the engine's incremental field equals a pass from scratch.

The engine propagates again only the layers downstream of a layer whose size-dependent window changed
since the last field it computed (arithmetic.fields(..., known=...)). Here every field it hands out, in
an order that jumps between sizes (as the feasible-range search does), must equal a full pass of
``fields`` on the same resolved layers: classes, global flags, fields, jumps, offsets and notes.
"""

from __future__ import annotations

import dataclasses

import pytest

import rf_widgets as rfw
from rf_widgets.core.analysis import Engine, size_plan
from rf_widgets.core.arithmetic import feature_maps, fields
from rf_widgets.core.verdicts import VerdictPlan

SIZES = (224, 37, 96, 101, 17, 64, 65, 300, 8, 224, 133)


def _check_every_size(stack: rfw.Stack) -> int:
    engine = Engine(stack, VerdictPlan.build(stack), size_plan(stack))
    changed = 0
    for side in SIZES:
        _, resolved, _ = feature_maps(stack, (side,) * stack.ndim, engine.sizes)
        before = engine._last
        got, fresh = engine.field_at(resolved)[0], fields(stack, resolved)
        for part in dataclasses.fields(got):  # Field compares by identity
            assert getattr(got, part.name) == getattr(fresh, part.name), (side, part.name)
        changed += before is not None and before[0] != resolved
    return changed


def _decoder() -> rfw.Stack:
    # adaptive pools and a size-following upsampling resolve differently at every size; a misaligned
    # merge after them gives a note that has to be recomputed, and one before them that is kept
    return rfw.Stack(
        [
            rfw.conv("c1", 3, stride=2, padding=1),
            rfw.conv("c2", 3, stride=2),
            rfw.add("early", ["c1", "c2"]),
            rfw.adaptive_pool("ap", 5, inputs=["c2"]),
            rfw.upsample("up", size=12, mode="linear", inputs=["ap"]),
            rfw.conv("c3", 3, inputs=["c1"]),
            rfw.add("late", ["up", "c3"]),
        ],
        name="decoder",
    )


def test_declared_stack_with_size_dependent_layers():
    stack = _decoder()
    assert _check_every_size(stack) >= 5
    notes = rfw.analyze(stack, 96).diagnostics
    assert {d.layer for d in notes if d.kind == "misaligned-merge"} == {"early", "late"}


def test_same_padding_resolved_per_size():
    # "same" padding of a strided layer depends on the input size; a merge after it
    stack = rfw.Stack(
        [
            rfw.conv("a", 3, stride=2, padding="same"),
            rfw.conv("b", 5, stride=3, padding="same_lower"),
            rfw.conv("side", 1, stride=6, inputs=["input"]),
            rfw.add("join", ["b", "side"]),
            rfw.conv("c", 3),
        ]
    )
    assert _check_every_size(stack) >= 5


@pytest.mark.parametrize("name", ["fcn_resnet50", "lraspp_mobilenet_v3_large", "swin_t"])
def test_torchvision_dense_models(name):
    torchvision = pytest.importorskip("torchvision")
    builder = torchvision.models.get_model_builder(name)
    options = {"weights": None} | ({"weights_backbone": None} if "segmentation" in builder.__module__ else {})
    stack = rfw.analyze(builder(**options), 224).stack
    assert _check_every_size(stack) >= 3
