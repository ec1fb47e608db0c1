"""The analysis never runs the user's hooks (issue 24): they are detached while the model is traced and
its layers measured, and put back afterwards, in place, even when tracing fails."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import rf_widgets as rfw  # noqa: E402
from rf_widgets.errors import ModelImportError  # noqa: E402


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer1 = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
        self.layer2 = nn.Sequential(nn.Conv2d(8, 8, 3, stride=2), nn.ReLU())

    def forward(self, x: Any) -> Any:
        return self.layer2(self.layer1(x))


def _hooks(module: nn.Module) -> dict[str, list[Any]]:
    names = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs", "_backward_hooks")
    return {name: list(getattr(module, name).items()) for name in names}


def _hooked() -> tuple[Net, list[str], list[Any]]:
    model, calls, stored = Net(), [], []
    model.layer1.register_forward_pre_hook(lambda m, args: calls.append("pre layer1"))
    model.layer2.register_forward_hook(lambda m, args, out: stored.append(out))
    model.layer2[0].register_forward_hook(lambda m, args, out: calls.append("conv2"))
    model.layer1[0].register_forward_pre_hook(lambda m, args, kw: calls.append("kw"), with_kwargs=True)
    model.register_forward_hook(lambda m, args, out: calls.append("root"))
    return model, calls, stored


def test_analyze_runs_no_hook_and_leaves_every_hook_in_place() -> None:
    model, calls, stored = _hooked()
    before = {name: _hooks(m) for name, m in model.named_modules()}
    result = rfw.analyze(model, 32)
    assert calls == []
    assert stored == []
    assert [layer.name for layer in result.layers] == ["layer1.0", "layer1.1", "layer2.0", "layer2.1"]
    assert {name: _hooks(m) for name, m in model.named_modules()} == before
    model(torch.zeros(1, 3, 16, 16))  # the hooks still work after the analysis
    assert calls == ["pre layer1", "kw", "conv2", "root"]
    assert len(stored) == 1


def test_global_module_hooks_do_not_run_during_the_analysis() -> None:
    calls: list[str] = []
    handle = nn.modules.module.register_module_forward_hook(lambda m, a, o: calls.append(type(m).__name__))
    try:
        rfw.analyze(Net(), 32)
        assert calls == []
        Net()(torch.zeros(1, 3, 8, 8))
        assert "Conv2d" in calls
    finally:
        handle.remove()


class Untraceable(Net):
    def forward(self, x: Any) -> Any:
        if x.sum() > 0:  # data-dependent control flow: torch.fx refuses it at the root
            return x
        return super().forward(x)


def test_hooks_are_restored_when_tracing_fails() -> None:
    model = Untraceable()
    calls: list[str] = []
    handle = model.layer1.register_forward_hook(lambda m, a, o: calls.append("layer1"))
    with pytest.raises(ModelImportError):
        rfw.analyze(model, 32)
    assert list(model.layer1._forward_hooks) == [handle.id]
    handle.remove()  # the handle still refers to the model's own dictionary
    assert not model.layer1._forward_hooks
