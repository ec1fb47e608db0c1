"""The user's model is left exactly as found by the analysis and the strategies, in train and eval mode.

Checked: every parameter and buffer (running statistics and ``num_batches_tracked`` included), every
training flag, every hook, devices, dtypes, ``requires_grad`` and the attributes of every module. Before
the fix, timm's ``BatchNormAct2d`` (EfficientNet, MobileNetV3, RegNet, DenseNet, Inception-v3 and
Xception in timm) had ``num_batches_tracked`` incremented by the trace, and ``suggest()`` updated its
running statistics in training mode.
"""

from __future__ import annotations

import contextlib
import functools
import warnings

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
nn = torch.nn

import rf_widgets as rfw  # noqa: E402
from rf_widgets.errors import ModelImportError, RFError  # noqa: E402

TORCHVISION_FAMILIES = [
    "vgg11",
    "resnet18",
    "densenet121",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "regnet_x_400mf",
    "convnext_tiny",
    "googlenet",
    "shufflenet_v2_x0_5",
    "vit_b_16",
]
TIMM_FAMILIES = [
    "resnet50d",
    "seresnet50",
    "densenet121",
    "inception_v3",
    "efficientnet_b0",
    "mobilenetv3_large_100",
    "convnext_tiny",
    "regnety_016",
]
APPLIED = {"resnet18", "vgg11", "efficientnet_b0", "densenet121"}
"""Families whose strategies are also applied (each ``apply()`` works on a deep copy)."""


def snapshot(model: nn.Module) -> dict[str, object]:
    """Everything about a model that an analysis must not change."""
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
        "flags": [(n, m.training) for n, m in model.named_modules()],
        "hooks": [
            (
                n,
                *(
                    dict(getattr(m, h))
                    for h in (
                        "_forward_hooks",
                        "_forward_pre_hooks",
                        "_backward_hooks",
                        "_backward_pre_hooks",
                        "_state_dict_hooks",
                        "_load_state_dict_pre_hooks",
                    )
                ),
            )
            for n, m in model.named_modules()
        ],
        "params": [(n, p.requires_grad, p.device, p.dtype, p.shape) for n, p in model.named_parameters()],
        "buffers": [(n, b.device, b.dtype, b.shape) for n, b in model.named_buffers()],
        "attributes": [(n, sorted(vars(m))) for n, m in model.named_modules()],
    }


def assert_same(model: nn.Module, before: dict[str, object]) -> None:
    now = snapshot(model)
    changed = [
        k
        for k, v in before["state"].items()  # type: ignore[attr-defined]
        if not torch.equal(now["state"][k], v)  # type: ignore[index]
    ]
    assert not changed, f"changed tensors: {changed[:5]}"
    for key in ("flags", "hooks", "params", "buffers", "attributes"):
        assert now[key] == before[key], key


def _user_hooks(model: nn.Module) -> list[object]:
    handles = [model.register_forward_hook(lambda *a: None)]
    first = next(m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd))
    handles.append(first.register_forward_pre_hook(lambda *a: None))
    return handles


def _exercise(model: nn.Module, train: bool, plan: bool, apply: bool = False) -> None:
    model.train(train)
    handles = _user_hooks(model)
    before = snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rfw.analyze(model, 64)
        assert_same(model, before)
        if plan:
            suggestions = rfw.suggest(model, 64)
            assert_same(model, before)
            for suggestion in suggestions.applicable() if apply else ():
                # A strategy may not carry over to the model; it must be untouched either way.
                with contextlib.suppress(RFError):
                    suggestion.apply()
            assert_same(model, before)
    for handle in handles:
        handle.remove()  # type: ignore[attr-defined]


@functools.cache
def _cpu_model(source: str, name: str) -> nn.Module:
    """A CPU model with random weights, built once for both modes: each test checks it is left as found."""
    if source == "timm":
        timm = pytest.importorskip("timm")
        return timm.create_model(name, pretrained=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torchvision.models.get_model(name)


@pytest.mark.slow
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", TORCHVISION_FAMILIES)
def test_torchvision_models_are_left_as_found(name, train):
    # Planning runs a forward pass: in training mode that is where running statistics could move.
    # torchvision's batch norms are leaf modules run in eval mode there, so a sample suffices.
    _exercise(_cpu_model("torchvision", name), train, plan=train and name in APPLIED, apply=name in APPLIED)


@pytest.mark.slow
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", TIMM_FAMILIES)
def test_timm_models_are_left_as_found(name, train):
    _exercise(_cpu_model("timm", name), train, plan=train, apply=name in APPLIED)


def test_timm_batchnorm_act_counter_is_not_incremented():
    """The case found for this guarantee: timm's BatchNormAct2d, in training mode."""
    timm = pytest.importorskip("timm")
    from timm.layers import BatchNormAct2d

    model = nn.Sequential(nn.Conv2d(3, 8, 3), BatchNormAct2d(8), nn.Conv2d(8, 8, 3, stride=2))
    model.train()
    before = snapshot(model)
    rfw.analyze(model, 16)
    assert int(model[1].num_batches_tracked) == 0
    rfw.suggest(model, 8)
    assert_same(model, before)
    assert timm is not None


def test_a_float64_model_keeps_its_dtype():
    model = torchvision.models.resnet18().double()
    _exercise(model, train=True, plan=True, apply=True)
    assert next(model.parameters()).dtype == torch.float64


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3)
        self.b = nn.Conv2d(3, 4, 5, padding=1)

    def forward(self, x, y):
        return self.a(x) + self.b(y)


class OptionalSecond(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3)

    def forward(self, x, scale: float = 2.0):
        return self.a(x) * scale


def test_a_second_input_is_never_dropped_in_silence():
    model = TwoInputs()
    before = snapshot(model)
    with pytest.raises(ModelImportError, match=r"TwoInputs.forward reads 2 inputs \('x', 'y'\)"):
        rfw.analyze(model, 32)
    assert_same(model, before)
    with pytest.raises(ModelImportError, match="reads 2 inputs"):
        rfw.suggest(model, 32)
    gm = torch.fx.symbolic_trace(model)  # a GraphModule of the same model is refused the same way
    with pytest.raises(ModelImportError, match="reads 2 inputs"):
        rfw.analyze(gm, 32)


def test_an_argument_with_a_default_is_not_an_input():
    result = rfw.analyze(OptionalSecond(), 32)
    assert result.layer("a").r_max == (3, 3)
