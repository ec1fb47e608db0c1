"""The budgeted design search: hand-computed stacks, the Pareto front against brute force, the picks.

The torch tests build every pick and check it by independent routes: its multiply-adds counted by
torch's FLOP counter in a forward pass, its parameters counted by torch, and a fresh import and
analysis of the built module (statuses by layer name). The fast ``r_min`` pass of the search is checked
against the full fields of the core (another implementation) on every candidate of two networks.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

import rf_widgets as rfw
from rf_widgets.errors import RFError
from rf_widgets.strategies import EDIT_KINDS, PICKS, Front, search


def chain() -> list[rfw.Layer]:
    """c1 (3x3, stride 2) then three 3x3 convs, all padded: at 8 px r = 3, 7, 11, 15."""
    return [rfw.conv("c1", 3, stride=2, padding=1)] + [rfw.conv(f"c{i}", 3, padding=1) for i in (2, 3, 4)]


def _dominates(a, b) -> bool:
    """Brute force: a is no worse than b on every objective and better on one."""
    pa = (a.macs, a.unproductive_macs_share + a.unproductive_params_share, a.params, -a.productive_depth)
    pb = (b.macs, b.unproductive_macs_share + b.unproductive_params_share, b.params, -b.productive_depth)
    return all(x <= y for x, y in zip(pa, pb, strict=True)) and pa != pb


def _check_front(front: Front) -> None:
    allowed = [c for c in front if not c.refused]
    for c in front.pareto:
        assert not c.refused
        assert not any(_dominates(other, c) for other in allowed), c.label
    for c in allowed:
        if c not in front.pareto:  # dominated, or the same figures as a front member
            assert any(_dominates(p, c) or _same(p, c) for p in front.pareto), c.label


def _same(a, b) -> bool:
    return (a.macs, a.params, a.productive_depth, a.unproductive_macs_share) == (
        b.macs,
        b.params,
        b.productive_depth,
        b.unproductive_macs_share,
    )


# -- declared stacks --------------------------------------------------------------------------------------


def test_a_stride_edit_makes_the_chain_productive():
    # at 8 px: c4 reads r 11 >= 8 and has r 15 > 8: unproductive (rule A); c1..c3 productive, c3
    # critical (r 11 > 8), so the border layer is c3: one trim cuts after c3 (the last productive
    # layer), the other before the border (after c2).
    # c1 with stride 1: r = 3, 5, 7, 9; c4 reads 7 < 8: productive (critical), depth 4
    front = search(chain(), 8, edits=("stride", "trim"))
    assert front.original.unproductive == ("c4",)
    assert front.original.border_layer == "c3"
    assert front.original.productive_depth == 3
    labels = {c.label for c in front}
    assert labels == {
        "original",
        "c1 stride 2 -> 1",
        "trim after c3 (1 layers removed)",
        "trim after c2 (2 layers removed)",
    }
    best = front["performance"]
    assert best.label == "c1 stride 2 -> 1"
    assert best.unproductive == ()
    assert best.productive_depth == 4
    assert best.stack["c1"].stride == (1, 1)
    assert [layer.r_min for layer in best.analysis.layers] == [(3, 3), (5, 5), (7, 7), (9, 9)]
    assert best.apply().names == ("c1", "c2", "c3", "c4")  # a declared stack: apply gives the stack
    depths = {c.stack.names: c.productive_depth for c in front if c.edits and c.edits[-1].kind == "trim"}
    assert depths == {("c1", "c2", "c3"): 3, ("c1", "c2"): 2}
    assert all(not c.unproductive for c in front if c.edits)
    _check_front(front)


def test_an_analysis_or_a_stack_gives_the_same_search():
    by_stack = search(chain(), 8, budget=2.0)
    by_analysis = search(rfw.analyze(chain(), 8), budget=2.0)
    assert [c.label for c in by_analysis] == [c.label for c in by_stack]
    assert [c.macs_ratio for c in by_analysis] == [c.macs_ratio for c in by_stack]
    assert by_analysis.original.input_size == (8, 8)


def test_bad_budgets_and_edit_kinds_are_refused_with_a_message():
    for bad in (0, -1.0, True, "2", float("nan")):
        with pytest.raises(RFError, match="budget must be a positive ratio"):
            search(chain(), 8, budget=bad)
        with pytest.raises(RFError, match="budget must be a positive ratio"):
            rfw.suggest(chain(), 8, budget=bad)
    with pytest.raises(RFError, match="unknown edit kind 'widen'"):
        search(chain(), 8, edits=("widen",))
    with pytest.raises(RFError, match="pass budget="):
        rfw.suggest(chain(), 8, kinds=("efficiency",))


def test_a_model_where_no_edit_applies():
    # one padded 3x3 conv: no downsampling, no recorded channels for a new stem, nothing unproductive
    with pytest.raises(RFError, match="no edit of the architecture applies to stack at 8x8"):
        search([rfw.conv("only", 3, padding=1)], 8)


def test_a_size_where_even_the_smallest_network_is_unproductive():
    # at 1 px the first conv already sees r 3 > 1 (the first layer's rule): nothing can be cut before
    # it, and the input sizes that would help need 16x the compute or more (the budget is 4x)
    layers = [replace(layer, macs_per_position=9) for layer in chain()]
    front = search(layers, 1, budget=4.0)
    assert all(c.unproductive for c in front if not c.refused)
    # at 1 px every map is 1x1 (4 layers x 9 = 36 multiply-adds); at 12 px c1 gives 6x6 maps
    # (4 x 36 x 9 = 1296: 36x), with stride 1 12x12 maps (4 x 144 x 9 = 5184: 144x). Those would help.
    assert {c.label: c.macs_ratio for c in front.refused} == {
        "input 12x12": 36.0,
        "c1 stride 2 -> 1, input 12x12": 144.0,
    }
    assert all("over the budget of 4x" in c.refused and not c.unproductive for c in front.refused)
    assert front.picks["efficiency"] is None
    with pytest.raises(RFError, match="no efficiency pick: no candidate within 1x the original"):
        front["efficiency"]
    allowed = [c for c in front if not c.refused]
    assert front["performance"].unproductive_count == min(c.unproductive_count for c in allowed)
    plan = rfw.suggest(layers, 1, budget=4.0)
    assert not plan["efficiency"].applicable
    assert "leaves every layer productive at 1x1" in plan["efficiency"].reason


def test_an_original_that_does_not_run_is_the_reference_but_never_offered():
    # 5 px: c1 (3x3, stride 2, no padding) gives 2x2, c2 then has nothing left: (2 - 3) // 2 + 1 = 0
    stack = [rfw.conv("c1", 3, stride=2), rfw.conv("c2", 3, stride=2), rfw.conv("c3", 3, padding=1)]
    front = search(stack, 5, budget=4.0)
    assert front.original.refused == (
        "the network does not work at 5x5: "
        "'c2' gets an input of 2x2 and its output is empty at input size 5x5"
    )
    offered = [c for c in front if not c.refused]
    assert offered
    assert all(not any(d.kind == "empty-output" for d in c.evaluation.diagnostics) for c in offered)
    assert "trim after c1 (2 layers removed)" in {c.label for c in offered}  # cut before the empty map
    assert all(front.picks[name] in offered for name in PICKS)


def test_the_front_index_and_its_text():
    front = search(chain(), 8, budget=2.0)
    with pytest.raises(KeyError, match="the picks are efficiency, performance, hybrid"):
        front["fastest"]
    text = repr(front)
    for name in ("original", *PICKS):
        assert name in text
    assert front[0] is next(iter(front))


# -- torch models ---------------------------------------------------------------------------------------

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import meta_models  # noqa: E402

# The torch tests below run on the meta device (tests/meta_models.py): the search, the built candidates'
# shapes, multiply-adds, parameter counts and statuses are those of the CPU models, in milliseconds per
# build; that the values of a model's weights are left as found is test_model_integrity's.


@pytest.fixture(autouse=True)
def _on_meta():
    """Tensors made without a device (inputs, the importer's placeholder) are meta tensors too."""
    with torch.device("meta"):
        yield


def _model(name):
    """The torchvision model, built once per test run on the meta device (shared: leave it as found)."""
    return meta_models.torchvision_model(name)


_snapshot = meta_models.snapshot
_assert_unchanged = meta_models.left_as_found


def _built_figures(module, size):
    """Multiply-adds (torch's FLOP counter / 2), parameters and output shape of the built module."""
    from torch.utils.flop_counter import FlopCounterMode

    module.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = module(torch.randn(1, 3, *size))
    return counter.get_total_flops() // 2, sum(p.numel() for p in module.parameters()), out.shape


def _check_built(candidate, model):
    new = candidate.apply()
    assert isinstance(new, torch.nn.Module)
    assert new is not model
    macs, params, shape = _built_figures(new, candidate.input_size)
    # the output of the original (at a size where every family runs: VGG-11 does not at 16 px)
    reference = tuple(max(n, 64) for n in candidate.input_size)
    _, _, expected_shape = _built_figures(model, reference)
    assert shape == expected_shape
    assert macs == candidate.macs, candidate.label
    assert params == candidate.params, candidate.label
    fresh = rfw.analyze(new, candidate.input_size)
    assert {layer.name: layer.status for layer in fresh.layers} == candidate.status, candidate.label
    spatial_bad = tuple(n for n in fresh.unproductive_layers if fresh.layer(n).spatial)
    assert spatial_bad == candidate.unproductive
    assert fresh.border_layer == candidate.border_layer


def test_resnet18_at_16_px_figures_of_the_picks():
    model = _model("resnet18")
    snapshot = _snapshot(model)
    plan = rfw.suggest(model, 16, budget=8.0)
    front = plan.front
    assert front is not None
    original = front.original
    assert original.macs == _built_figures(model, (16, 16))[0]
    efficiency, performance = front["efficiency"], front["performance"]
    assert efficiency.macs_ratio < 0.3
    assert efficiency.unproductive == ()
    assert performance.macs_ratio <= 8.0
    assert performance.unproductive_count <= 1
    assert performance.productive_depth > original.productive_depth
    for name in PICKS:
        _check_built(front[name], model)
        assert plan[name].macs_after == front[name].macs
        assert plan[name].params_after == front[name].params
    # the old strategies stay, and say when they need more than the budget
    slow = plan["slow-downsampling"]
    assert slow.macs_ratio is not None
    assert slow.macs_ratio > 8.0
    assert not slow.applicable
    assert slow.refused is not None
    assert "over the budget of 8x" in slow.refused
    with pytest.raises(RFError, match="over the budget"):
        slow.apply()
    assert all(c.macs_ratio > 8.0 for c in front.refused)
    assert all(c.macs_ratio <= 8.0 for c in front.pareto)
    _check_front(front)
    _assert_unchanged(model, snapshot)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_the_fast_prediction_equals_the_full_analysis_of_every_candidate(name):
    """The search's r_min pass and trim shortcut against the core's full fields on the built graph."""
    front = search(_model(name), 32, budget=8.0)
    for c in front:
        full = c.evaluation  # evaluated from the complete graph (a trimmed one is rebuilt here)
        stack = c.stack
        spatial = full.verdicts.spatial
        assert c.unproductive == tuple(stack.layers[i].name for i in full.verdicts.unproductive if spatial[i])
        macs = sum(
            layer.macs_per_position * math.prod(n) for layer, n in zip(stack.layers, full.sizes, strict=True)
        )
        assert c.macs == macs, c.label
        assert c.params - front.original.params == sum(x.params for x in stack.layers) - sum(
            x.params for x in front.original.stack.layers
        ), c.label


FAMILIES = [
    "resnet18",
    "resnet50",
    "wide_resnet50_2",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "regnet_y_400mf",
    "convnext_tiny",
    "vgg11",
    "densenet121",
]
CASES = [(name, size) for name in FAMILIES for size in (16, 32, 64)]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "size"), CASES)
def test_every_pick_builds_as_predicted(name, size):
    model = _model(name)
    snapshot = _snapshot(model)
    front = search(model, size, budget=8.0)
    built = 0
    for pick in PICKS:
        candidate = front.picks[pick]
        if candidate is None:
            assert front.reasons[pick]
            continue
        assert candidate.macs_ratio <= 8.0 * (1 + 1e-9)
        _check_built(candidate, model)
        built += 1
    assert front.picks["performance"] is not None
    assert built >= 2
    _assert_unchanged(model, snapshot)


# -- moving blocks between stages -------------------------------------------------------------------------


def _stages(counts):
    """Stand-in stages of the given block counts (only ``count`` matters to the planners)."""
    from rf_widgets.strategies.blocks import Stage

    return [Stage(f"s{i}", "", 0, n - 1, (), ()) for i, n in enumerate(counts)]


@pytest.mark.parametrize(
    ("counts", "productive", "even", "border"),
    [
        # ResNet18 with layer4 past the border: 2 + 2 + 2 + 1 movable = 7 over three stages, the last gets
        # the rest; the one repeat of layer4 goes to the stage with the fewest blocks (a tie: the later)
        ((2, 2, 2, 2), (True, True, True, False), (2, 2, 3, 1), (2, 2, 3, 1)),
        # 2 + 6 + 2 + 2 = 12 over three stages: 4 each; the border variant moves only layer4's two
        # repeats: to the third stage (2, a tie with the first: the later), then the first (2 < 3)
        ((2, 6, 2, 3), (True, True, True, False), (4, 4, 4, 1), (3, 6, 3, 1)),
        # ResNet50's 3-4-6-3 with every stage productive: even spreads 16 as 4 each, border moves none
        ((3, 4, 6, 3), (True,) * 4, (4, 4, 4, 4), (3, 4, 6, 3)),
        # two stages past the border: 3 + 4 + 5 + 2 = 14 over two: 7 each
        ((3, 4, 6, 3), (True, True, False, False), (7, 7, 1, 1), (7, 7, 1, 1)),
        # nothing productive to move to: unchanged
        ((2, 2), (False, False), (2, 2), (2, 2)),
    ],
)
def test_block_counts_by_hand(counts, productive, even, border):
    from rf_widgets.strategies.blocks import border_counts, even_counts

    stages = _stages(counts)
    assert even_counts(stages, productive) == even
    assert border_counts(stages, productive) == border
    assert sum(even) - sum(counts) == sum(border) - sum(counts) == 0 or not any(productive)


MOVABLE = {  # the stages found, as (label, blocks), by reading torchvision's definitions
    "resnet18": [("layer1", 2), ("layer2", 2), ("layer3", 2), ("layer4", 2)],
    "resnet50": [("layer1", 3), ("layer2", 4), ("layer3", 6), ("layer4", 3)],
    "wide_resnet50_2": [("layer1", 3), ("layer2", 4), ("layer3", 6), ("layer4", 3)],
    # inverted residuals with a shortcut (stride 1, same width) follow the first block of each width;
    # the stages of one block (16, 320 channels) have no repeat to give or copy
    "mobilenet_v2": [
        ("features.2-3", 2),
        ("features.4-6", 3),
        ("features.7-10", 4),
        ("features.11-13", 3),
        ("features.14-16", 3),
    ],
    "mobilenet_v3_small": [
        ("features.2-3", 2),
        ("features.4-6", 3),
        ("features.7-8", 2),
        ("features.9-11", 3),
    ],
    "efficientnet_b0": [
        ("features.2", 2),
        ("features.3", 2),
        ("features.4", 3),
        ("features.5", 3),
        ("features.6", 4),
    ],
    # RegNetY-400MF has depths 1, 3, 6, 6: block1 has nothing to move
    "regnet_y_400mf": [("trunk_output.block2", 3), ("trunk_output.block3", 6), ("trunk_output.block4", 6)],
    "convnext_tiny": [("features.1", 3), ("features.3", 3), ("features.5", 9), ("features.7", 3)],
    "vgg11": [],  # the repeated unit (conv, ReLU) is not a module of its own
    "densenet121": [],  # every dense layer widens the map: no block keeps its input's shape
}


def _source(name):
    from rf_widgets.strategies.surgery import TorchSource

    return TorchSource(_model(name), name)


@pytest.mark.parametrize("name", sorted(MOVABLE))
def test_the_stages_of_ten_families(name):
    stages = _source(name).stages((32, 32))
    assert [(s.label, s.count) for s in stages] == MOVABLE[name]


@pytest.mark.parametrize("name", [n for n in sorted(MOVABLE) if MOVABLE[n]])
def test_the_moved_graph_is_the_built_modules_graph(name):
    """The predicted graph against a fresh import of the module the move builds (both plans)."""
    import copy

    from rf_widgets.strategies import blocks
    from rf_widgets.torch_import import import_traced

    model = _model(name)
    snapshot = _snapshot(model)
    source = _source(name)
    stages = source.stages((32, 32))
    productive = [True] * (len(stages) - 1) + [False]
    plans = {blocks.even_counts(stages, productive), blocks.border_counts(stages, productive)}
    plans.add(tuple(reversed([s.count for s in stages])))  # blocks moved both ways
    plans.discard(tuple(s.count for s in stages))
    for counts in plans:
        move = blocks.plan(stages, counts)
        predicted, origin = blocks.moved_stack(source.stack, move)
        built = copy.deepcopy(model)
        blocks.move_blocks(built, move)
        fresh = import_traced(built)[0]
        assert predicted.names == fresh.names, counts
        for a, b in zip(predicted.layers, fresh.layers, strict=True):
            assert (a.inputs, a.module, a.kernel, a.stride, a.padding, a.dilation) == (
                b.inputs,
                b.module,
                b.kernel,
                b.stride,
                b.padding,
                b.dilation,
            ), a.name
            assert (a.params, a.macs_per_position) == (b.params, b.macs_per_position), a.name
            assert source.stack[origin[a.name]].op == a.op
        assert sum(p.numel() for p in built.parameters()) == sum(x.params for x in predicted.layers)
    _assert_unchanged(model, snapshot)


def test_resnet18_at_16_px_moves_blocks_for_depth():
    """The performance pick with the move is deeper than the best candidate without it, and builds."""
    model = _model("resnet18")
    kinds = tuple(k for k in EDIT_KINDS if k != "move-blocks")
    without = search(model, 16, budget=8.0, edits=kinds)
    front = search(model, 16, budget=8.0)
    best, before = front["performance"], without["performance"]
    assert best.unproductive_count <= before.unproductive_count
    assert best.productive_depth > before.productive_depth
    assert any(edit.kind == "move-blocks" for edit in best.edits)
    assert best.macs_ratio <= 8.0
    _check_built(best, model)


MOVE_CASES = [(name, size) for name in sorted(MOVABLE) if MOVABLE[name] for size in (16, 32, 64)]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "size"), MOVE_CASES)
def test_candidates_with_moved_blocks_build_as_predicted(name, size):
    """The deepest candidates with moved blocks, with and without a trim, built and checked."""
    model = _model(name)
    snapshot = _snapshot(model)
    front = search(model, size, budget=8.0)
    moved = [c for c in front if not c.refused and any(e.kind == "move-blocks" for e in c.edits)]
    assert moved
    for trimmed in (False, True):
        group = [c for c in moved if (c.edits[-1].kind == "trim") == trimmed]
        if group:
            _check_built(max(group, key=lambda c: (c.productive_depth, -c.macs)), model)
    _assert_unchanged(model, snapshot)
