"""Models built on the meta device once per test run, for tests where the weights do not matter.

Shapes, fields, verdicts, parameter counts and multiply-adds (torch's FLOP counter works from shapes)
are the same on the meta device as on the CPU, and a build takes milliseconds instead of the seconds of
random initialisation; a forward pass computes nothing. The values of the weights are not there: that a
model's values are left as found is checked on CPU models in ``test_model_integrity.py``. On the meta
device ``left_as_found`` checks that every parameter and buffer is still the same tensor, not written in
place (its version counter), and that the structure and training flags are unchanged.

A cached model is shared: a test that uses one must leave it as found (and say so with ``left_as_found``).
Wrap the test in ``torch.device("meta")`` so that the inputs the test and the package make are meta
tensors too.
"""

from __future__ import annotations

import warnings
from functools import cache
from typing import Any

import torch


def _build(make: Any) -> Any:
    try:
        with torch.device("meta"):
            model = make()
    except NotImplementedError:
        # RegNets compute with tensors in their constructors ("Cannot copy out of meta tensor"):
        # built on the CPU (also inside a test's meta context), then moved
        with torch.device("cpu"):
            model = make()
        model = model.to("meta")
    return model.eval()


@cache
def torchvision_model(name: str) -> Any:
    """``torchvision.models.get_model(name)`` on the meta device, in eval mode."""
    import torchvision

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return _build(lambda: torchvision.models.get_model(name))


@cache
def timm_model(name: str) -> Any:
    """``timm.create_model(name, pretrained=False)`` on the meta device, in eval mode."""
    import timm

    return _build(lambda: timm.create_model(name, pretrained=False))


def snapshot(model: Any) -> Any:
    """The structure, every tensor (the object and its version counter) and every training flag."""
    state = model.state_dict(keep_vars=True)
    return (
        str(model),
        {k: (v, v._version) for k, v in state.items()},
        [(n, m.training) for n, m in model.named_modules()],
    )


def left_as_found(model: Any, before: Any) -> None:
    text, state, flags = before
    now = snapshot(model)
    assert now[0] == text
    assert now[1].keys() == state.keys()
    replaced = [k for k, (v, _) in state.items() if now[1][k][0] is not v]
    assert not replaced, f"tensors replaced: {replaced[:5]}"
    written = [k for k, (v, n) in state.items() if v._version != n]
    assert not written, f"tensors written in place: {written[:5]}"
    assert now[2] == flags
