"""Design strategies: plans on hand-built graphs, dominators against brute force, torch surgery.

The torch tests check every applied strategy against what ``suggest()`` predicted, by independent
routes: the forward pass of the new module, its parameters counted by torch, its multiply-adds counted
by torch's FLOP counter, and a fresh import and analysis of the new module.
"""

from __future__ import annotations

import random

import pytest

import rf_widgets as rfw
from rf_widgets.core.graph import NETWORK_INPUT
from rf_widgets.errors import RFError
from rf_widgets.strategies import planning

# -- plans on declared stacks ---------------------------------------------------------------------------


def chain() -> list[rfw.Layer]:
    """c1 (stride 2) then three 3x3 convs, all padded: r = 3, 7, 11, 15 and maps 4, 4, 4, 4 at 8 px."""
    return [rfw.conv("c1", 3, stride=2, padding=1)] + [rfw.conv(f"c{i}", 3, padding=1) for i in (2, 3, 4)]


def residual() -> rfw.Stack:
    """A stem, one downsampling residual block (strided conv + strided 1x1 shortcut), two plain convs."""
    return rfw.Stack(
        [
            rfw.conv("stem", 3, padding=1),
            rfw.conv("a1", 3, stride=2, padding=1),
            rfw.conv("a2", 3, padding=1),
            rfw.conv("short", 1, stride=2, inputs="stem"),
            rfw.add("sum", ["a2", "short"]),
            rfw.conv("c1", 3, padding=1),
            rfw.conv("c2", 3, padding=1),
            rfw.global_pool("gap"),
        ]
    )


def test_trim_cuts_after_the_last_productive_layer_of_a_chain():
    # at 8 px: c3's input has r = 7 < 8 (productive, r 11 > 8 makes it critical); c4's input has
    # r = 11 >= 8 and its own r 15 > 8: unproductive (rule A)
    plan = rfw.suggest(chain(), 8)
    trim = plan["trim"]
    assert trim.applicable
    assert trim.removed == ("c4",)
    assert trim.before.unproductive_layers == ("c4",)
    assert trim.still_unproductive == ()
    assert trim.stack is not None
    assert trim.stack.names == ("c1", "c2", "c3")
    assert trim.apply().names == ("c1", "c2", "c3")  # a declared stack: apply gives the stack


def test_output_chain_of_a_residual_block_skips_the_block_interior():
    stack = residual()
    chain_names = [stack.layers[i].name for i in planning.output_chain(stack)]
    assert chain_names == ["stem", "sum", "c1", "c2", "gap"]
    assert planning.head_start(stack, planning.output_chain(stack)) == stack.index["gap"]


def test_parallel_downsampling_layers_change_together():
    stack = residual()
    groups = [{stack.layers[i].name for i in g} for g in planning.stride_groups(stack)]
    assert groups == [{"a1", "short"}]
    # at 12 px: the block output has r_min 3 (shortcut 1x1 after the stem), c1 r_min 3 + 2*2 = 7,
    # c2 r_min 11 (input 7 < 12, productive)... use 6 px so that c2 is unproductive
    analysis = rfw.analyze(stack, 6)
    assert "c2" in analysis.unproductive_layers
    slow = rfw.suggest(stack, 6)["slow-downsampling"]
    assert slow.applicable
    assert {name for name, _, _ in slow.plan.changes} == {"a1", "short"}
    assert all(new == (1, 1) for _, _, new in slow.plan.changes)
    # with stride 1: block r_min 3, c1 5, c2 7 > 6 but its input 5 < 6: productive
    assert slow.still_unproductive == ()
    assert slow.after.layer("c2").r_min == (7, 7)


def block() -> rfw.Stack:
    """A stem and one residual block whose branch is two 5x5 convs; the skip is the stem itself."""
    return rfw.Stack(
        [
            rfw.conv("stem", 3, padding=1),
            rfw.conv("a1", 5, padding=2),
            rfw.conv("a2", 5, padding=2),
            rfw.add("sum", ["a2", "stem"]),
            rfw.global_pool("gap"),
        ]
    )


def test_a_strided_chain_layer_does_not_join_the_branches_after_it():
    # 'down' is on the output chain; the block right after it starts at 'down' too: two groups
    stack = rfw.Stack(
        [
            rfw.conv("down", 3, stride=2, padding=1),
            rfw.conv("a", 3, stride=2, padding=1),
            rfw.conv("short", 1, stride=2, inputs="down"),
            rfw.add("sum", ["a", "short"]),
        ]
    )
    groups = [{stack.layers[i].name for i in g} for g in planning.stride_groups(stack)]
    assert groups == [{"down"}, {"a", "short"}]


def test_trim_removes_a_residual_branch_that_is_unproductive_as_a_whole():
    # at 4 px: a1 (r 7) has a 4x4 map under a 5x5 kernel (rule B), a2 reads r 7 >= 4 (rule A); the add
    # stays productive through the skip (r_min 3), so the block can only become its skip connection
    analysis = rfw.analyze(block(), 4)
    assert analysis.unproductive_layers == ("a1", "a2")
    assert analysis.layer("sum").status == "productive"
    trim = rfw.suggest(block(), 4)["trim"]
    assert trim.applicable
    assert trim.plan.bypassed == (("sum", "stem"),)
    assert set(trim.removed) == {"a1", "a2", "sum", "gap"}  # a declared stack gets no new head
    assert trim.stack.names == ("stem",)


def test_trim_is_not_applicable_when_every_block_keeps_a_productive_layer():
    # at 6 px a1 is critical (productive, r 7 > 6 but its input r 3 < 6) and only a2 is unproductive:
    # the branch is not unproductive as a whole and the block output is the last layer before the head
    assert rfw.analyze(block(), 6).unproductive_layers == ("a2",)
    trim = rfw.suggest(block(), 6)["trim"]
    assert not trim.applicable
    assert "'sum'" in trim.reason
    assert "no residual branch is unproductive as a whole" in trim.reason
    with pytest.raises(RFError, match="does not apply"):
        trim.apply()


def test_resolution_moves_into_the_feasible_range():
    stack = residual()
    low, high = rfw.analyze(stack, 6).resolution_range
    move = rfw.suggest(stack, 6)["resolution"]
    assert move.applicable
    assert move.new_input_size == (low, low)
    assert move.still_unproductive == ()
    inside = rfw.suggest(stack, low)["resolution"]
    assert not inside.applicable
    assert f"feasible range {low} to {high}" in inside.reason


def test_without_unproductive_layers_only_a_smaller_input_can_be_suggested():
    # the largest local receptive field of the chain is 15 (c4): inputs above it are larger than any
    # layer can integrate, so the resolution strategy proposes 15
    plan = rfw.suggest(chain(), 64)
    assert [s.kind for s in plan.applicable()] == ["resolution"]
    assert "no layer is unproductive at 64x64" in plan["trim"].reason
    assert "no layer is unproductive at 64x64" in plan["slow-downsampling"].reason
    assert plan["resolution"].new_input_size == (15, 15)


def test_suggestions_lookup_and_bad_kinds():
    plan = rfw.suggest(chain(), 8, kinds=["trim"])
    assert [s.kind for s in plan] == ["trim"]
    with pytest.raises(KeyError, match="the strategies are trim"):
        plan["resolution"]
    with pytest.raises(RFError, match="unknown strategy 'prune'"):
        rfw.suggest(chain(), 8, kinds=["prune"])
    assert "Design strategies for" in repr(rfw.suggest(chain(), 8))


def _brute_force_chain(stack: rfw.Stack) -> list[int]:
    """Layers without which no sink can be reached from the input (search with the layer removed)."""
    sinks = [i for i, succ in enumerate(stack.successors) if not succ]
    starts = [i for i, src in enumerate(stack.input_indices) if NETWORK_INPUT in src]
    out = []
    for v in range(len(stack.layers)):
        seen = {i for i in starts if i != v}
        todo = list(seen)
        while todo:
            for j in stack.successors[todo.pop()]:
                if j != v and j not in seen:
                    seen.add(j)
                    todo.append(j)
        if not any(s in seen for s in sinks if s != v) or all(s == v for s in sinks):
            out.append(v)
    return out


@pytest.mark.parametrize("seed", range(150))
def test_output_chain_matches_brute_force_on_random_graphs(seed):
    rng = random.Random(seed)
    layers: list[rfw.Layer] = []
    for i in range(rng.randint(1, 12)):
        names = [layer.name for layer in layers] + ["input"]
        if i and rng.random() < 0.4:
            inputs = rng.sample(names, min(len(names), rng.randint(2, 3)))
            layers.append(rfw.add(f"m{i}", inputs))
        else:
            layers.append(rfw.conv(f"c{i}", 1, inputs=rng.choice(names[-3:])))
    stack = rfw.Stack(layers)
    assert planning.output_chain(stack) == _brute_force_chain(stack)


# -- torch models ---------------------------------------------------------------------------------------

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
nn = torch.nn

import meta_models  # noqa: E402

FAMILIES = [
    "vgg11",
    "resnet18",
    "resnext50_32x4d",
    "wide_resnet50_2",
    "densenet121",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "regnet_x_400mf",
    "convnext_tiny",
]


def _snapshot(model):
    return (
        str(model),
        {k: v.clone() for k, v in model.state_dict().items()},
        [m.training for m in model.modules()],
    )


def _assert_unchanged(model, snapshot):
    text, state, flags = snapshot
    assert str(model) == text
    now = model.state_dict()
    assert now.keys() == state.keys()
    assert all(torch.equal(now[k], v) for k, v in state.items())
    assert [m.training for m in model.modules()] == flags


def _run(module, size):
    """The output and the multiply-adds (torch's FLOP counter / 2) of one forward pass in eval mode."""
    from torch.utils.flop_counter import FlopCounterMode

    module.eval()
    device = next(module.parameters()).device
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = module(torch.randn(1, 3, *size, device=device))
    return out, counter.get_total_flops() // 2


def _check_applied(suggestion, model):
    new = suggestion.apply()
    assert isinstance(new, nn.Module)
    assert new is not model
    size = suggestion.new_input_size
    out, macs = _run(new, size)
    expected, macs_before = _run(model, suggestion.input_size)
    assert out.shape == expected.shape
    assert macs == suggestion.macs_after
    assert macs_before == suggestion.macs_before
    assert sum(p.numel() for p in new.parameters()) == suggestion.params_after
    fresh = rfw.analyze(new, size)
    predicted = {layer.name: layer.status for layer in suggestion.after.layers}
    assert {layer.name: layer.status for layer in fresh.layers} == predicted
    assert fresh.border_layer == suggestion.border_after


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_every_strategy_on_torchvision_families(name):
    # On the meta device (tests/meta_models.py): shapes, multiply-adds, parameter counts and statuses are
    # those of the CPU model; that the values of the weights are left as found is test_model_integrity's.
    model = meta_models.torchvision_model(name)
    snapshot = meta_models.snapshot(model)
    with torch.device("meta"):
        plan = rfw.suggest(model, 32)
        assert {s.kind for s in plan.applicable()} == {"trim", "slow-downsampling", "resolution"}, repr(plan)
        for suggestion in plan:
            _check_applied(suggestion, model)
            assert suggestion.params_before == sum(p.numel() for p in model.parameters())
    trim, slow = plan["trim"], plan["slow-downsampling"]
    assert trim.params_after < trim.params_before
    assert set(trim.removed) & set(trim.before.unproductive_layers)
    assert len(slow.still_unproductive) < len(slow.before.unproductive_layers)
    meta_models.left_as_found(model, snapshot)


def test_trim_keeps_the_training_flag_and_the_users_model_in_train_mode():
    model = torchvision.models.resnet18().train()
    snapshot = _snapshot(model)
    trimmed = rfw.suggest(model, 32)["trim"].apply()
    assert trimmed.training
    assert all(m.training for m in trimmed.modules())
    _assert_unchanged(model, snapshot)


class Functional(nn.Module):
    """Strides set in code, by functions: the surgery rewrites the fx nodes."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.c3 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = nn.functional.max_pool2d(self.c1(x), 2)
        x = nn.functional.avg_pool2d(self.c2(x), 2, 2)
        x = self.c3(x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def test_functional_strides_are_rewritten_in_the_graph():
    model = Functional().eval()
    plan = rfw.suggest(model, 8)
    slow = plan["slow-downsampling"]
    assert slow.applicable
    assert {name for name, _, _ in slow.plan.changes} <= {"max_pool2d", "avg_pool2d"}
    _check_applied(slow, model)
    _check_applied(plan["trim"], model)


class SharedPool(nn.Module):
    """One pooling module called twice: changing its stride would change both calls."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.c3 = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.pool(self.c1(x))
        x = self.pool(self.c2(x))
        return self.fc(self.c3(x).mean((2, 3)))


def test_a_module_that_runs_twice_is_not_restrided():
    slow = rfw.suggest(SharedPool(), 6)["slow-downsampling"]
    assert not slow.applicable
    assert "its module 'pool' runs 2 times" in slow.reason


class FixedClassifier(nn.Module):
    """A LeNet-style classifier whose first linear layer expects exactly 8 x 2 x 2 features."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1), nn.MaxPool2d(2)
        )
        self.classifier = nn.Linear(8 * 2 * 2, 5)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def test_a_fixed_width_classifier_blocks_slower_downsampling_with_a_reason():
    model = FixedClassifier()
    assert rfw.analyze(model, 8).unproductive_layers
    slow = rfw.suggest(model, 8)["slow-downsampling"]
    assert not slow.applicable
    assert "break the network's shapes" in slow.reason


class TwoOutputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(*[nn.Conv2d(3 if i == 0 else 4, 4, 3, padding=1) for i in range(5)])

    def forward(self, x):
        y = self.body(x)
        return y, y.mean((2, 3))


def test_trim_needs_a_classifier_output():
    trim = rfw.suggest(TwoOutputs(), 4)["trim"]
    assert not trim.applicable
    assert "(batch, classes)" in trim.reason


def test_a_graph_module_is_read_from_its_own_graph_and_left_alone():
    model = torch.fx.symbolic_trace(torchvision.models.resnet18())
    before = [dict(node.meta) for node in model.graph.nodes]
    names = rfw.analyze(model, 32).stack.names
    assert "layer1.0.add" in names
    assert [dict(node.meta) for node in model.graph.nodes] == before


def test_a_model_that_does_not_run_at_the_target_size():
    # AlexNet's last max-pool gets a 1x1 map at 32 px and fails; every single stride step keeps an
    # empty map somewhere, so only the new input size remains, and it runs
    model = torchvision.models.alexnet().eval()
    plan = rfw.suggest(model, 32)
    assert plan["trim"].reason.startswith("the model does not run at 32x32 (RuntimeError: ")
    assert "break the network's shapes" in plan["slow-downsampling"].reason
    move = plan["resolution"]
    assert move.applicable
    out, _ = _run(move.apply(), move.new_input_size)
    assert out.shape == (1, 1000)


def test_trim_reads_through_an_unproductive_resnet_block():
    # ResNet18 at 32 px: the branches of layer3.1, layer4.0 and layer4.1 (conv1 .. bn2) are unproductive
    # tails; their adds go and each block's last ReLU reads the skip directly (layer3.1.relu:2 becomes the
    # module's first call, 'relu'; layer4.0's reads the stride-2 shortcut)
    model = torchvision.models.resnet18().eval()
    trim = rfw.suggest(model, 32)["trim"]
    assert trim.plan.bypassed == (
        ("layer3.1.add", "layer3.0.relu:2"),
        ("layer4.0.add", "layer4.0.downsample.1"),
        ("layer4.1.add", "layer4.0.relu:2"),
    )
    assert "layer3.1.conv2" in trim.removed
    assert trim.stack["layer3.1.relu"].inputs == ("layer3.0.relu:2",)
    assert trim.stack["layer4.0.relu"].inputs == ("layer4.0.downsample.1",)
    assert trim.still_unproductive == ("layer3.0.conv2", "layer3.0.bn2")  # conv1 of that branch is productive
    assert "layer3.1.relu" in trim.removed  # the branch's call of the module; the name lives on...
    assert trim.made_productive == ()  # ...but nothing was made productive by cutting
    _check_applied(trim, model)
