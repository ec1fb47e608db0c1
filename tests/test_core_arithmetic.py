"""Hand-computed receptive fields, feature maps and verdicts of the torch-free core (SPEC sections 1-7).

Every expected number is derived by hand from SPEC section 2 (``r' = r + (k_eff - 1) * J``,
``P' = P + p_lo * J``, ``J' = J * s``) and section 5 (``floor((n + p_lo + p_hi - k_eff) / s) + 1``);
the comments show the derivation where it is not obvious. Feature-map sizes are also compared with the
output shapes of real torch layers.
"""

from __future__ import annotations

import itertools
import math

import pytest

import rf_widgets as rfw
from rf_widgets import INPUT, adaptive_pool, add, concat, conv, elementwise, flatten, global_pool, mul, pool

INF = math.inf


@pytest.fixture(scope="module")
def torch():
    """torch with one intra-op thread: the tensors here are tiny and a second thread only adds overhead."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


def kinds(analysis: rfw.Analysis, kind: str) -> list[rfw.Diagnostic]:
    return [d for d in analysis.diagnostics if d.kind == kind]


# -- plain stacks -------------------------------------------------------------------------------------


def test_plain_conv_stack():
    stack = rfw.Stack(
        [
            conv("c1", 3, padding=1),
            conv("c2", 3, stride=2, padding=1),
            pool("p1", 2),
            conv("c3", 5, padding=2),
            conv("c4", 3, dilation=2, padding=2),
        ]
    )
    result = rfw.analyze(stack, 32)
    expected = {
        # name: (r, J, P, feature map)
        "c1": (3, 1, 1, 32),
        "c2": (5, 2, 2, 16),  # r = 3 + 2*1, P = 1 + 1*1, n = (32 + 2 - 3) // 2 + 1
        "p1": (7, 4, 2, 8),  # r = 5 + 1*2, J = 2*2, no padding
        "c3": (23, 4, 10, 8),  # r = 7 + 4*4, P = 2 + 2*4
        "c4": (39, 4, 18, 8),  # k_eff = 5: r = 23 + 4*4, P = 10 + 2*4
    }
    for name, (r, jump, offset, size) in expected.items():
        layer = result.layer(name)
        assert layer.r_min == layer.r_max == layer.r_max_local == (r, r), name
        assert layer.jump == (jump, jump), name
        assert layer.offset == (offset, offset), name
        assert layer.feature_map == (size, size), name
        assert layer.status == ("critical" if r > 32 else "productive"), name
    assert result.border_layer is None
    assert result.unproductive_layers == ()
    assert result.diagnostics == ()
    # unit 3 of c4: start 3*4 - 18 = -6, stop -6 + 39 - 1 = 32, centre 12 - 18 + 19 = 13
    box = result.unit_box("c4", 3)
    assert box == rfw.Box((-6, -6), (32, 32), (13, 13))
    assert box.size == (39, 39)
    assert box.clipped((32, 32)) == rfw.Box((0, 0), (31, 31), (15.5, 15.5))
    assert result.unit_box("c4", (3, 0)).start == (-6, -18)


def test_dilation_worked_value():
    """SPEC section 7: a 3x3 conv with dilation 2 after the input has r = 5, another 3x3 after it 7."""
    result = rfw.analyze([conv("c1", 3, dilation=2), conv("c2", 3)], 16)
    assert result.layer("c1").r_max == (5, 5)
    assert result.layer("c2").r_max == (7, 7)
    assert result.layer("c1").feature_map == (12, 12)  # 16 - 5 + 1
    assert result.layer("c2").feature_map == (10, 10)


def test_alexnet_features_worked_values():
    """SPEC section 7, torchvision AlexNet ``features``."""
    stack = rfw.Stack(
        [
            conv("c1", 11, stride=4, padding=2),
            elementwise("r1"),
            pool("p1", 3, stride=2),
            conv("c2", 5, padding=2),
            elementwise("r2"),
            pool("p2", 3, stride=2),
            conv("c3", 3, padding=1),
            elementwise("r3"),
            conv("c4", 3, padding=1),
            elementwise("r4"),
            conv("c5", 3, padding=1),
            elementwise("r5"),
            pool("p3", 3, stride=2),
        ]
    )
    result = rfw.analyze(stack, 224)
    names = ["c1", "p1", "c2", "p2", "c3", "c4", "c5", "p3"]
    assert [result.layer(n).r_max[0] for n in names] == [11, 19, 51, 67, 99, 131, 163, 195]
    assert [result.layer(n).jump[0] for n in names] == [4, 8, 8, 16, 16, 16, 16, 32]
    assert result.layer("p3").offset == (66, 66)
    # 224 -> 55 -> 27 -> 27 -> 13 -> 13 -> 13 -> 13 -> 6, as torchvision prints
    assert [result.layer(n).feature_map[0] for n in names] == [55, 27, 27, 13, 13, 13, 13, 6]


def test_vgg16_features_worked_values():
    """SPEC section 7, torchvision VGG16 ``features`` (pools in brackets there)."""
    layers = []
    for block, convs in enumerate([2, 2, 3, 3, 3], start=1):
        layers += [conv(f"b{block}c{i}", 3, padding=1) for i in range(convs)]
        layers.append(pool(f"b{block}p", 2))
    result = rfw.analyze(layers, 224)
    expected = [3, 5, 6, 10, 14, 16, 24, 32, 40, 44, 60, 76, 92, 100, 132, 164, 196, 212]
    assert [result.layer(layer.name).r_max[0] for layer in layers] == expected
    assert result.layer("b5p").jump == (32, 32)
    assert result.layer("b5p").offset == (90, 90)
    assert result.layer("b5p").feature_map == (7, 7)


# -- non-square kernels, strides and asymmetric padding -----------------------------------------------


def test_non_square_kernel_and_stride():
    stack = rfw.Stack(
        [
            conv("c1", (3, 5), stride=(1, 2), padding=((1, 2), (0, 3))),
            conv("c2", 3, stride=(2, 1), padding=((0, 1), (2, 0))),
        ]
    )
    result = rfw.analyze(stack, (9, 11))
    c1, c2 = result.layer("c1"), result.layer("c2")
    assert c1.kernel == (3, 5)
    assert c1.padding == ((1, 2), (0, 3))
    assert c1.r_max == (3, 5)
    assert c1.jump == (1, 2)
    assert c1.offset == (1, 0)
    # height: 9 + 1 + 2 - 3 + 1 = 10; width: (11 + 0 + 3 - 5) // 2 + 1 = 5
    assert c1.feature_map == (10, 5)
    # height: r = 3 + 2*1, J = 1*2, P = 1 + 0; width: r = 5 + 2*2, J = 2, P = 0 + 2*2
    assert c2.r_min == c2.r_max == (5, 9)
    assert c2.jump == (2, 2)
    assert c2.offset == (1, 4)
    # height: (10 + 0 + 1 - 3) // 2 + 1 = 5; width: 5 + 2 + 0 - 3 + 1 = 5
    assert c2.feature_map == (5, 5)
    # unit (2, 1): height 2*2 - 1 = 3 .. 3 + 4 = 7; width 1*2 - 4 = -2 .. -2 + 8 = 6
    box = result.unit_box("c2", (2, 1))
    assert box.start == (3, -2)
    assert box.stop == (7, 6)
    assert box.centre == (5, 2)


def test_asymmetric_padding_effective_offset():
    stack = rfw.Stack(
        [
            conv("c1", 3, padding=((2, 0),)),
            pool("p1", 2, padding=((1, 0),)),
            conv("c2", 3, padding=((0, 2),)),
        ],
        ndim=1,
    )
    result = rfw.analyze(stack, 10)
    c1, p1, c2 = (result.layer(n) for n in ("c1", "p1", "c2"))
    assert (c1.r_max, c1.jump, c1.offset, c1.feature_map) == ((3,), (1,), (2,), (10,))
    # r = 3 + 1*1, P = 2 + 1*1, J = 2, n = (10 + 1 - 2) // 2 + 1
    assert (p1.r_max, p1.jump, p1.offset, p1.feature_map) == ((4,), (2,), (3,), (5,))
    # r = 4 + 2*2, P = 3 + 0*2: the high padding moves nothing
    assert (c2.r_max, c2.jump, c2.offset, c2.feature_map) == ((8,), (2,), (3,), (5,))
    # unit 0 of c2: [0*2 - 3, -3 + 8 - 1] = [-3, 4], centre 0.5
    assert result.unit_box("c2", 0) == rfw.Box((-3,), (4,), (0.5,))
    assert result.unit_box("c2", 4) == rfw.Box((5,), (12,), (8.5,))


def test_padding_on_the_high_side_only_does_not_move_the_centre():
    lo = rfw.analyze(rfw.Stack([conv("c", 5, padding=((4, 0),))], ndim=1), 20).unit_box("c", 0)
    hi = rfw.analyze(rfw.Stack([conv("c", 5, padding=((0, 4),))], ndim=1), 20).unit_box("c", 0)
    assert (lo.start, lo.stop) == ((-4,), (0,))
    assert (hi.start, hi.stop) == ((0,), (4,))


# -- feature-map sizes against torch ------------------------------------------------------------------


def _torch_size(torch, run, n):
    """The output length of ``run`` on a 1-D input of length ``n`` (0 when torch refuses to run)."""
    try:
        return run(torch.zeros(1, 1, n, dtype=torch.float64)).shape[-1]
    except RuntimeError:
        return 0


def test_conv_sizes_match_torch_conv1d(torch):
    functional = torch.nn.functional
    checked = 0
    for n, k, s, lo, hi, d in itertools.product(
        range(1, 12), range(1, 5), (1, 2, 3), (0, 1, 2), (0, 2), (1, 2)
    ):
        ours = rfw.analyze(
            rfw.Stack([conv("c", k, stride=s, dilation=d, padding=((lo, hi),))], ndim=1), n
        ).layer("c")
        weight = torch.ones(1, 1, k, dtype=torch.float64)

        def run(x, k=k, s=s, d=d, lo=lo, hi=hi, weight=weight):
            return functional.conv1d(functional.pad(x, (lo, hi)), weight, stride=s, dilation=d)

        assert ours.feature_map == (_torch_size(torch, run, n),), (n, k, s, lo, hi, d)
        checked += 1
    assert checked == 11 * 4 * 3 * 3 * 2 * 2


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pool_sizes_match_torch_maxpool1d(ceil_mode, torch):
    checked = 0
    for n, k, s, p, d in itertools.product(range(1, 14), range(1, 6), (1, 2, 3), (0, 1, 2), (1, 2)):
        if p > k // 2:  # torch: padding at most half the kernel
            continue
        ours = rfw.analyze(
            rfw.Stack([pool("p", k, stride=s, dilation=d, padding=p, ceil_mode=ceil_mode)], ndim=1), n
        ).layer("p")
        module = torch.nn.MaxPool1d(k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)
        assert ours.feature_map == (_torch_size(torch, module, n),), (n, k, s, p, d)
        checked += 1
    assert checked > 500


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        # kernel 3, stride 2, no padding: floor gives (n - 3) // 2 + 1, ceil ceil((n - 3) / 2) + 1
        (7, 3),  # (7 - 3) / 2 is whole: ceil and floor agree
        (8, 4),  # ceil(5 / 2) + 1 = 4, the last window starts at 6 < 8
        (9, 4),
        (10, 5),
        (3, 1),
        (2, 1),  # ceil(-1 / 2) + 1 = 1: PyTorch keeps a window wider than the input
        (1, 0),  # ceil(-2 / 2) + 1 = 0
    ],
)
def test_ceil_mode_pool_sizes(n, expected, torch):
    stack = rfw.Stack([pool("p", 3, stride=2, ceil_mode=True)])
    assert rfw.analyze(stack, n).layer("p").feature_map == (expected, expected)
    module = torch.nn.MaxPool2d(3, stride=2, ceil_mode=True)
    if expected:
        assert tuple(module(torch.zeros(1, 1, n, n)).shape[-2:]) == (expected, expected)
    else:
        with pytest.raises(RuntimeError):
            module(torch.zeros(1, 1, n, n))


def test_ceil_mode_pool_on_a_map_smaller_than_its_kernel(torch):
    """GoogLeNet's ``MaxPool2d(2, 2, ceil_mode=True)`` maps a 1x1 map to 1x1: nothing is empty."""
    stack = rfw.Stack([conv("c1", 3, stride=2), pool("p1", 2, ceil_mode=True), conv("c2", 1)])
    result = rfw.analyze(stack, 4)
    out = torch.nn.MaxPool2d(2, 2, ceil_mode=True)(torch.nn.Conv2d(1, 1, 3, 2)(torch.zeros(1, 1, 4, 4)))
    assert result.layer("c1").feature_map == (1, 1)
    assert result.layer("p1").feature_map == tuple(out.shape[-2:]) == (1, 1)
    assert result.layer("c2").feature_map == (1, 1)
    assert kinds(result, "empty-output") == []


def test_ceil_mode_drops_a_window_that_starts_in_the_right_padding(torch):
    # k 3, s 3, p 1, n 5: ceil((5 + 2 - 3) / 3) + 1 = 3, but window 2 would start at 2*3 = 6 >= 5 + 1
    stack = rfw.Stack([pool("p", 3, stride=3, padding=1, ceil_mode=True)])
    result = rfw.analyze(stack, (5, 7))
    out = torch.nn.MaxPool2d(3, stride=3, padding=1, ceil_mode=True)(torch.zeros(1, 1, 5, 7))
    assert result.layer("p").feature_map == tuple(out.shape[-2:]) == (2, 3)
    # ceil mode changes the size, never the receptive field
    assert result.layer("p").r_max == (3, 3)


def test_2d_sizes_match_torch_modules_per_axis(torch):
    cases = itertools.product(((3, 1), (2, 5)), ((1, 2), (3, 1)), ((0, 1), (2, 0)), ((1, 2), (2, 1)))
    for (kh, kw), (sh, sw), (ph, pw), (dh, dw) in cases:
        for size in ((13, 9), (8, 17)):
            x = torch.zeros(1, 1, *size)
            module = torch.nn.Conv2d(1, 1, (kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw))
            ours = rfw.analyze(
                [conv("c", (kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw))], size
            )
            assert ours.layer("c").feature_map == tuple(module(x).shape[-2:])
            if ph <= kh // 2 and pw <= kw // 2:
                for ceil_mode in (False, True):
                    module = torch.nn.MaxPool2d(
                        (kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), ceil_mode=ceil_mode
                    )
                    layer = pool(
                        "p",
                        (kh, kw),
                        stride=(sh, sw),
                        padding=(ph, pw),
                        dilation=(dh, dw),
                        ceil_mode=ceil_mode,
                    )
                    assert rfw.analyze([layer], size).layer("p").feature_map == tuple(module(x).shape[-2:])


def test_feature_maps_are_not_input_over_jump():
    """SPEC section 5: sizes come from the real arithmetic, not from n // J."""
    result = rfw.analyze([conv("c1", 3, stride=2), conv("c2", 3, stride=2)], 32)
    # c1: (32 - 3) // 2 + 1 = 15; c2: (15 - 3) // 2 + 1 = 7 (32 // 4 would be 8)
    assert result.layer("c1").feature_map == (15, 15)
    assert result.layer("c2").feature_map == (7, 7)


# -- branches -----------------------------------------------------------------------------------------


def branchy_stack() -> rfw.Stack:
    return rfw.Stack(
        [
            conv("a", 3, padding=1),
            conv("b", 3, padding=1),
            conv("c", 3, padding=1),
            add("m", ["a", "c"]),
            conv("s", 1, inputs=INPUT),
            concat("cat", ["m", "s"]),
            conv("out", 3, padding=1),
        ]
    )


def test_add_and_concat_take_min_and_max_over_paths():
    result = rfw.analyze(branchy_stack(), 16)
    expected = {
        "a": (3, 3),
        "c": (7, 7),
        "m": (3, 7),  # short path a (3), long path a-b-c (7)
        "s": (1, 1),
        "cat": (1, 7),  # the 1x1 path straight from the input
        "out": (3, 9),
    }
    for name, (r_min, r_max) in expected.items():
        layer = result.layer(name)
        assert (layer.r_min, layer.r_max, layer.r_max_local) == ((r_min,) * 2, (r_max,) * 2, (r_max,) * 2), (
            name
        )
        assert layer.jump == (1, 1)
        assert layer.feature_map == (16, 16)
    assert result.layer("cat").inputs == ("m", "s")
    assert result.diagnostics == ()  # every path is centred: nothing is misaligned
    # every path is centred on the unit, so the boxes are nested: hull = longest path, min = 1x1 path
    assert result.unit_box("out", 5, path="hull") == rfw.Box((1, 1), (9, 9), (5, 5))
    assert result.unit_box("out", 5, path="max") == rfw.Box((1, 1), (9, 9), (5, 5))
    assert result.unit_box("out", 5, path="min") == rfw.Box((4, 4), (6, 6), (5, 5))


def test_residual_block_with_strided_shortcut_is_aligned():
    stack = rfw.Stack(
        [
            conv("conv1", 3, stride=2, padding=1),
            conv("conv2", 3, padding=1),
            conv("down", 1, stride=2, inputs=INPUT),
            add("add", ["conv2", "down"]),
        ],
        ndim=1,
    )
    result = rfw.analyze(stack, 15)
    merged = result.layer("add")
    # main path: r = 3 + 2*2 = 7, P = 1 + 1*2 = 3, centre of unit 0 = 3 - 3 = 0; shortcut: r 1, centre 0
    assert (merged.r_min, merged.r_max, merged.jump) == ((1,), (7,), (2,))
    assert merged.feature_map == (8,)
    assert kinds(result, "misaligned-merge") == []
    assert result.unit_box("add", 2, path="hull") == rfw.Box((1,), (7,), (4,))


def test_resnet18_hand_stack_matches_the_spec_values():
    result = rfw.analyze(resnet18_stack(), 32)
    expected = {
        "conv1": (7, 7),
        "maxpool": (11, 11),
        "layer1.0.conv1": (19, 19),
        "layer1.0.conv2": (27, 27),
        "layer1.0.add": (11, 27),
        "layer2.0.conv1": (19, 51),
        "layer3.0.conv1": (27, 115),
        "layer4.1.conv2": (139, 435),
        "layer4.1.relu:2": (11, 435),
    }
    for name, (r_min, r_max) in expected.items():
        layer = result.layer(name)
        assert (layer.r_min, layer.r_max) == ((r_min,) * 2, (r_max,) * 2), name
    assert result.layer("layer4.1.relu:2").jump == (32, 32)
    assert all(result.layer(f"layer{s}.{b}.add").r_min == (11, 11) for s in range(1, 5) for b in range(2))
    unproductive_convs = {n for n in result.unproductive_layers if ".conv" in n or "downsample.0" in n}
    assert unproductive_convs == {
        "layer3.0.conv2",
        "layer3.1.conv1",
        "layer3.1.conv2",
        "layer4.0.conv1",
        "layer4.0.conv2",
        "layer4.1.conv1",
        "layer4.1.conv2",
    }
    assert result.layer("layer3.0.conv2").reason == "feature-map-covered"
    assert result.layer("layer4.0.downsample.0").status == "productive"
    # SPEC section 6 version 2: the tail starts at layer3.0.conv2, as in the paper's figure
    assert result.border_layer == "layer3.0.conv2"
    assert result.layer("layer2.0.conv2").status == "critical"
    assert result.layer("layer2.0.conv2").r_min == (35, 35)
    # version 1 judged the BatchNorm after it by rule A; a pointwise layer now only follows its inputs
    assert (result.layer("layer2.0.bn2").status, result.layer("layer2.0.bn2").reason) == ("critical", None)
    assert result.layer("layer3.0.bn2").reason == "follows-unproductive"
    assert len(result.unproductive_layers) == 17
    assert result.resolution_range == (97, 435)
    assert kinds(result, "misaligned-merge") == []
    assert result.layer("avgpool").status == "global"


def resnet18_stack() -> rfw.Stack:
    """torchvision's resnet18 written out with the layer constructors (BasicBlock, v1)."""
    layers = [
        conv("conv1", 7, stride=2, padding=3),
        elementwise("bn1", "bn"),
        elementwise("relu"),
        pool("maxpool", 3, stride=2, padding=1),
    ]
    previous = "maxpool"
    for stage, stride in enumerate((1, 2, 2, 2), start=1):
        for block in range(2):
            p = f"layer{stage}.{block}"
            s = stride if block == 0 else 1
            layers += [
                conv(f"{p}.conv1", 3, stride=s, padding=1, inputs=previous),
                elementwise(f"{p}.bn1", "bn"),
                elementwise(f"{p}.relu"),
                conv(f"{p}.conv2", 3, padding=1),
                elementwise(f"{p}.bn2", "bn"),
            ]
            shortcut = previous
            if s != 1:
                layers += [
                    conv(f"{p}.downsample.0", 1, stride=s, inputs=previous),
                    elementwise(f"{p}.downsample.1", "bn"),
                ]
                shortcut = f"{p}.downsample.1"
            layers += [add(f"{p}.add", [f"{p}.bn2", shortcut]), elementwise(f"{p}.relu:2")]
            previous = f"{p}.relu:2"
    layers += [adaptive_pool("avgpool", 1), flatten("flatten"), elementwise("fc", "linear")]
    return rfw.Stack(layers, name="resnet18")


# -- misaligned merges --------------------------------------------------------------------------------


def test_merge_of_paths_with_different_jumps_is_misaligned():
    # a: k 3, s 3 on 9 -> 3 units, J 3; b: k 7, s 1 on 9 -> 3 units, J 1
    stack = rfw.Stack(
        [conv("a", 3, stride=3, inputs=INPUT), conv("b", 7, inputs=INPUT), add("m", ["a", "b"])]
    )
    result = rfw.analyze(stack, 9)
    merged = result.layer("m")
    assert merged.feature_map == (3, 3)
    assert (merged.r_min, merged.r_max) == ((3, 3), (7, 7))  # the numbers are kept
    assert merged.jump == (3, 3)  # the largest jump is reported
    (diagnostic,) = kinds(result, "misaligned-merge")
    assert diagnostic.layer == "m"
    assert "'m'" in diagnostic.message
    assert "3" in diagnostic.message
    assert "1" in diagnostic.message
    assert kinds(result, "size-mismatch") == []


def test_merge_of_paths_with_different_centres_is_misaligned():
    # a: k 3 with padding (2, 0) keeps the size (9 + 2 - 3 + 1) but centres unit 0 at 1 - 2 = -1
    stack = rfw.Stack([conv("a", 3, padding=((2, 0),), inputs=INPUT), add("merge", ["a", INPUT])], ndim=1)
    result = rfw.analyze(stack, 9)
    (diagnostic,) = kinds(result, "misaligned-merge")
    assert diagnostic.layer == "merge"
    assert "'merge'" in diagnostic.message
    assert "-1" in diagnostic.message
    merged = result.layer("merge")
    assert (merged.r_min, merged.r_max, merged.jump, merged.feature_map) == ((1,), (3,), (1,), (9,))
    # paths: a sees [u - 2, u], the input [u, u]
    assert result.unit_box("merge", 4, path="hull") == rfw.Box((2,), (4,), (3,))
    assert result.unit_box("merge", 4, path="max") == rfw.Box((2,), (4,), (3,))
    assert result.unit_box("merge", 4, path="min") == rfw.Box((4,), (4,), (4,))


def test_concat_of_paths_with_different_centres_is_misaligned_too():
    stack = rfw.Stack(
        [
            conv("a", 3, padding=((0, 2),), inputs=INPUT),
            conv("b", 3, padding=1, inputs=INPUT),
            concat("cat", ["a", "b"]),
        ],
        ndim=1,
    )
    result = rfw.analyze(stack, 12)
    assert [d.layer for d in kinds(result, "misaligned-merge")] == ["cat"]


# -- global operations --------------------------------------------------------------------------------


def test_global_pooling_is_global():
    stack = rfw.Stack([conv("c1", 3, padding=1), global_pool("gap"), conv("fc", 1)])
    result = rfw.analyze(stack, 8)
    for name in ("gap", "fc"):
        layer = result.layer(name)
        assert layer.status == "global"
        assert layer.reason is None
        assert layer.r_min == layer.r_max == (INF, INF)
        assert layer.r_max_local is None
        assert layer.is_global
        assert layer.feature_map == (1, 1)
        entry = layer.to_dict()
        assert entry["r_min"] == entry["r_max"] == "inf"
        assert entry["r_max_local"] is None
    assert result.unproductive_layers == ()
    with pytest.raises(rfw.GraphError, match="gap"):
        result.unit_box("gap", 0)
    # the range max ignores global layers: the largest finite r_max_local is c1's 3
    assert result.resolution_range[1] == 3


def test_squeeze_and_excitation():
    """x * sigmoid(fc(relu(fc(mean(x))))): r_max inf, r_max_local and r_min from the local path."""
    stack = rfw.Stack(
        [
            conv("c1", 3, padding=1),
            conv("c2", 3, padding=1),
            global_pool("squeeze"),
            conv("fc1", 1),
            elementwise("relu"),
            conv("fc2", 1),
            elementwise("gate", "sigmoid"),
            mul("scale", ["c2", "gate"]),
            conv("c3", 3, padding=1),
        ]
    )
    result = rfw.analyze(stack, 16)
    scale, c3 = result.layer("scale"), result.layer("c3")
    assert scale.r_max == (INF, INF)
    assert scale.r_max_local == (5, 5)
    assert scale.r_min == (5, 5)
    assert scale.feature_map == (16, 16)  # the 1x1 gate broadcasts
    assert scale.status == "productive"
    assert c3.r_max == (INF, INF)
    assert (c3.r_min, c3.r_max_local) == ((7, 7), (7, 7))
    assert c3.to_dict()["r_max"] == "inf"
    assert c3.to_dict()["r_max_local"] == [7, 7]
    assert result.layer("gate").status == "global"
    assert kinds(result, "size-mismatch") == []
    # judged by the local r_min: at R = 6, c3 (r_min 7) is critical, its input scale (5) is not >= 6
    assert result.at(6).layer("c3").status == "critical"
    # at R = 4, c2 (r 5, input r 3 < 4, a 4x4 map) is critical: so is the pointwise scale (r_min 5 > 4)
    assert result.at(4).layer("scale").status == "critical"
    # at R = 3, c2 is unproductive by rule A; scale follows it, the global gate does not count
    at3 = result.at(3)
    assert at3.layer("c2").reason == "rf-exceeds-input"
    assert (at3.layer("scale").status, at3.layer("scale").reason) == ("unproductive", "follows-unproductive")


# -- adaptive pooling ---------------------------------------------------------------------------------


def test_adaptive_pool_is_identity_when_the_size_matches():
    stack = rfw.Stack([conv("c", 3, padding=1), adaptive_pool("ap", 8)])
    same = rfw.analyze(stack, 8).layer("ap")
    assert (same.r_min, same.r_max, same.jump, same.feature_map) == ((3, 3), (3, 3), (1, 1), (8, 8))
    assert same.status == "productive"
    # an output larger than the input only replicates values: no context is added
    larger = rfw.analyze(stack, 5).layer("ap")
    assert (larger.r_max, larger.jump, larger.feature_map) == ((3, 3), (1, 1), (8, 8))


@pytest.mark.parametrize(("n", "m"), [(12, 4), (10, 4), (7, 4), (7, 3), (9, 2), (13, 5), (6, 5)])
def test_adaptive_pool_uses_the_pytorch_window_formula(n, m, torch):
    result = rfw.analyze(rfw.Stack([adaptive_pool("ap", m)], ndim=1), n)
    layer = result.layer("ap")
    # measure the windows from torch: the input support of each output's gradient
    x = torch.ones(1, 1, n, requires_grad=True)
    out = torch.nn.AdaptiveAvgPool1d(m)(x)
    widths = []
    for i in range(m):
        (grad,) = torch.autograd.grad(out[0, 0, i], x, retain_graph=True)
        support = torch.nonzero(grad[0, 0]).flatten().tolist()
        assert support == list(range(support[0], support[-1] + 1))
        widths.append(len(support))
    assert layer.feature_map == (m,) == (out.shape[-1],)
    assert layer.kernel == (max(widths),)
    assert layer.r_max == (max(widths),)
    assert layer.stride == layer.jump
    assert layer.jump[0] == pytest.approx(n / m)
    if n % m == 0:
        assert layer.kernel == layer.stride == (n // m,)


@pytest.mark.parametrize("n", [1, 2, 7, 32])
def test_adaptive_pool_to_one_is_global_at_any_size(n):
    stack = rfw.Stack([conv("c", 1), adaptive_pool("ap", 1), conv("fc", 1)])
    result = rfw.analyze(stack, n)
    for name in ("ap", "fc"):
        assert result.layer(name).status == "global"
        assert result.layer(name).r_max == (INF, INF)
    assert result.layer("ap").feature_map == (1, 1)


def test_adaptive_pool_keeps_an_axis_given_as_none():
    result = rfw.analyze(rfw.Stack([adaptive_pool("ap", (2, None))]), (8, 6))
    layer = result.layer("ap")
    assert layer.feature_map == (2, 6)
    assert layer.r_max == (4, 1)
    assert layer.jump == (4, 1)


# -- empty outputs ------------------------------------------------------------------------------------


def test_empty_output_completes_with_a_diagnostic():
    stack = rfw.Stack([conv("c1", 5), conv("c2", 3), global_pool("gap")])
    result = rfw.analyze(stack, 3)
    assert result.layer("c1").feature_map == (0, 0)
    assert result.layer("c2").feature_map == (0, 0)
    assert result.layer("gap").feature_map == (0, 0)
    (diagnostic,) = kinds(result, "empty-output")  # only where the map first becomes empty
    assert diagnostic.layer == "c1"
    assert "'c1'" in diagnostic.message
    assert result.layer("c1").r_max == (5, 5)
    assert result.layer("c2").r_max == (7, 7)
    assert result.layer("c1").status == "unproductive"  # first layer: r 5 > 3 (rule A)
    assert "c1" in repr(result)


def test_empty_map_is_covered_by_any_kernel():
    stack = rfw.Stack([conv("c1", 2, stride=8), conv("c2", 3), elementwise("relu")], ndim=1)
    result = rfw.analyze(stack, 9)
    # c1: (9 - 2) // 8 + 1 = 1 unit, r 2, J 8; c2: 1 - 3 < 0 -> empty, r = 2 + 2*8 = 18
    assert [result.layer(n).feature_map for n in ("c1", "c2", "relu")] == [(1,), (0,), (0,)]
    assert [d.layer for d in kinds(result, "empty-output")] == ["c2"]
    assert result.layer("c1").status == "productive"
    # c2: its input's r_min 2 < 9, but its 3-wide kernel covers the 1-unit map (rule B)
    assert (result.layer("c2").status, result.layer("c2").reason) == ("unproductive", "feature-map-covered")
    # relu is pointwise: it follows c2
    assert (result.layer("relu").status, result.layer("relu").reason) == (
        "unproductive",
        "follows-unproductive",
    )
    assert result.border_layer == "c2"  # c1 (r 2 <= 9) is productive: the tail starts at c2


# -- verdicts -----------------------------------------------------------------------------------------


def test_rule_a_rf_exceeds_input():
    stack = rfw.Stack(
        [conv("c1", 3, padding=1), conv("c2", 3, padding=1), elementwise("bn"), conv("c3", 3, padding=1)]
    )
    # r: c1 3, c2 5, bn 5, c3 7; every map stays 4x4 so rule B never applies
    at4 = rfw.analyze(stack, 4)
    assert [at4.layer(n).status for n in ("c1", "c2", "bn", "c3")] == [
        "productive",  # 3 <= 4
        "critical",  # 5 > 4 but its input c1 has r_min 3 < 4
        "critical",  # pointwise: its input c2 is not unproductive, its own r_min 5 > 4
        "unproductive",  # input bn has 5 >= 4 and its own 7 > 4
    ]
    assert at4.layer("c3").reason == "rf-exceeds-input"
    assert at4.layer("c1").reason is None
    assert at4.border_layer == "c2"  # critical, and the only spatial layer after it is unproductive
    assert at4.border_layers == ("c2",)
    assert at4.unproductive_layers == ("c3",)
    # at R = 5, c2 (r 5) is productive and c3 (input 5 >= 5, own 7 > 5) is not: the tail starts at c3
    at5 = at4.at(5)
    assert [at5.layer(n).status for n in ("c1", "c2", "bn", "c3")] == [
        "productive",
        "productive",
        "productive",
        "unproductive",
    ]
    assert at5.border_layer == "c3"


def test_rule_a_on_the_first_layer():
    result = rfw.analyze(rfw.Stack([conv("c1", 9, padding=4), conv("c2", 1)]), 5)
    assert (result.layer("c1").status, result.layer("c1").reason) == ("unproductive", "rf-exceeds-input")
    assert result.layer("c2").reason == "follows-unproductive"  # a 1x1 conv is pointwise
    assert result.border_layer == "c1"  # the tail starts at the first layer itself
    # r 5 at R = 5 is not > R; the first layer is never judged by rule B
    result = rfw.analyze(rfw.Stack([conv("c1", 5, padding=2)]), 5)
    assert result.layer("c1").status == "productive"


def test_rule_b_feature_map_covered():
    stack = rfw.Stack([conv("c1", 3, stride=2), conv("c2", 3, padding=1), conv("c3", 1)])
    result = rfw.analyze(stack, 8)
    # c1: (8 - 3) // 2 + 1 = 3 units, r 3; c2: its 3-wide kernel covers the 3-unit map, r 3 + 2*2 = 7 <= 8
    assert result.layer("c1").feature_map == (3, 3)
    c2 = result.layer("c2")
    assert (c2.r_min, c2.status, c2.reason) == ((7, 7), "unproductive", "feature-map-covered")
    assert result.layer("c3").reason == "follows-unproductive"  # pointwise, after c2 only
    assert result.layer("c1").status == "productive"
    assert result.border_layer == "c2"
    assert result.unproductive_layers == ("c2", "c3")
    # one more pixel and c1 gives a 4-unit map: nothing is covered any more
    assert rfw.analyze(stack, 9).layer("c1").feature_map == (4, 4)
    assert rfw.analyze(stack, 9).unproductive_layers == ()


def test_verdicts_need_every_axis():
    stack = rfw.Stack([conv("c1", 3, padding=1), conv("c2", 3, padding=1), conv("c3", 3, padding=1)])
    # height: c3 is unproductive by rule A (5 >= 4, 7 > 4); width 16: neither rule holds
    result = rfw.analyze(stack, (4, 16))
    assert result.layer("c3").status == "productive"
    assert result.unproductive_layers == ()


def test_mixed_axes_give_the_feature_map_reason():
    stack = rfw.Stack(
        [
            conv("c1", 3, stride=(1, 4), padding=1),
            conv("c2", 3, padding=1),
            conv("c3", (3, 5), padding=(1, 2)),
        ]
    )
    result = rfw.analyze(stack, (4, 16))
    # width: c1 (16 + 2 - 3) // 4 + 1 = 4 units, J 4; c2 r 3 + 2*4 = 11; c3 sees the 4-unit map with k 5
    assert result.layer("c2").feature_map == (4, 4)
    assert result.layer("c2").r_min == (5, 11)
    c3 = result.layer("c3")
    # height by rule A (5 >= 4, 7 > 4), width by rule B only (11 < 16): not A on every axis
    assert (c3.status, c3.reason) == ("unproductive", "feature-map-covered")
    assert result.layer("c2").status == "productive"  # r_min (5, 11) is not above (4, 16) on both axes
    assert result.border_layer == "c3"


def test_unknown_operation_is_never_unproductive():
    stack = rfw.Stack([conv("c1", 3, padding=1), rfw.unknown("weird", "roll"), conv("c2", 3, padding=1)])
    result = rfw.analyze(stack, 4)
    assert result.layer("weird").status == "unknown"
    # downstream values assume the unknown op adds no context: lower bounds
    assert result.layer("c2").r_min == (5, 5)


# -- 1-D and 3-D --------------------------------------------------------------------------------------


def test_1d_stack(torch):
    stack = rfw.Stack(
        [conv("c1", 3, stride=2), pool("p1", 3, stride=2, ceil_mode=True), conv("c2", 3, dilation=2)], ndim=1
    )
    result = rfw.analyze(stack, 21)
    assert result.input_size == (21,)
    c1, p1, c2 = (result.layer(n) for n in ("c1", "p1", "c2"))
    assert (c1.r_max, c1.jump, c1.feature_map) == ((3,), (2,), (10,))  # (21 - 3) // 2 + 1
    # r = 3 + 2*2, J 4; ceil((10 - 3) / 2) + 1 = 5 and window 4 starts at 8 < 10
    assert (p1.r_max, p1.jump, p1.feature_map) == ((7,), (4,), (5,))
    assert (c2.r_max, c2.jump, c2.feature_map) == ((23,), (4,), (1,))  # 7 + 4*4, 5 - 5 + 1
    x = torch.zeros(1, 1, 21)
    x = torch.nn.Conv1d(1, 1, 3, stride=2)(x)
    assert x.shape[-1] == 10
    x = torch.nn.MaxPool1d(3, stride=2, ceil_mode=True)(x)
    assert x.shape[-1] == 5
    assert torch.nn.Conv1d(1, 1, 3, dilation=2)(x).shape[-1] == 1
    assert result.unit_box("c2", 0) == rfw.Box((0,), (22,), (11,))


def test_3d_stack(torch):
    stack = rfw.Stack(
        [
            conv("c1", (3, 3, 1), stride=(1, 2, 2), padding=(1, 1, 0)),
            conv("c2", (1, 3, 3), dilation=(1, 1, 2), padding=(0, 1, 2)),
            pool("p", 2),
        ],
        ndim=3,
    )
    result = rfw.analyze(stack, (8, 16, 15))
    c1, c2, p = (result.layer(n) for n in ("c1", "c2", "p"))
    assert c1.r_max == (3, 3, 1)
    assert c1.jump == (1, 2, 2)
    assert c1.offset == (1, 1, 0)
    # axis 1: r 3 + 2*2 = 7, P 1 + 1*2 = 3; axis 2: k_eff 5, r 1 + 4*2 = 9, P 0 + 2*2 = 4
    assert c2.r_max == (3, 7, 9)
    assert c2.offset == (1, 3, 4)
    assert p.r_max == (4, 9, 11)  # + 1*J per axis: (3 + 1, 7 + 2, 9 + 2)
    assert p.jump == (2, 4, 4)
    x = torch.zeros(1, 1, 8, 16, 15)
    x = torch.nn.Conv3d(1, 1, (3, 3, 1), stride=(1, 2, 2), padding=(1, 1, 0))(x)
    assert c1.feature_map == tuple(x.shape[-3:])
    x = torch.nn.Conv3d(1, 1, (1, 3, 3), dilation=(1, 1, 2), padding=(0, 1, 2))(x)
    assert c2.feature_map == tuple(x.shape[-3:])
    x = torch.nn.MaxPool3d(2)(x)
    assert p.feature_map == tuple(x.shape[-3:]) == (4, 4, 4)
    assert result.unit_box("c2", (1, 2, 3)) == rfw.Box((0, 1, 2), (2, 7, 10), (1, 4, 6))


# -- feasible resolutions and re-analysis --------------------------------------------------------------


def _stacks_for_range() -> list[rfw.Stack]:
    return [
        rfw.Stack(
            [conv("c1", 3, padding=1), conv("c2", 3, padding=1), elementwise("bn"), conv("c3", 3, padding=1)]
        ),
        rfw.Stack([conv("c1", 3, dilation=2), conv("c2", 3)]),
        rfw.Stack(
            [
                conv("c1", 7, stride=2, padding=3),
                pool("p1", 3, stride=2, padding=1, ceil_mode=True),
                conv("c2", 3, padding=1),
                conv("c3", 3, stride=2),
                conv("c4", 5, dilation=2, padding=4),
                global_pool("gap"),
                conv("fc", 1),
            ]
        ),
        branchy_stack(),
        resnet18_stack(),
    ]


@pytest.mark.parametrize("index", range(5))
def test_resolution_range_min_by_brute_force(index):
    stack = _stacks_for_range()[index]
    low, high = rfw.analyze(stack, 32).resolution_range
    feasible = [not rfw.analyze(stack, side).unproductive_layers for side in range(1, 301)]
    assert any(feasible)
    assert low == feasible.index(True) + 1
    # SPEC section 6: the set of unproductive layers only shrinks as R grows
    assert all(feasible[low - 1 :])
    # max: the largest finite r_max_local over all layers
    result = rfw.analyze(stack, 32)
    assert high == max(max(layer.r_max_local) for layer in result.layers if layer.r_max_local is not None)


def test_resolution_range_of_the_dilated_stack():
    # c1 (r 5) leaves a 3-unit map to c2's 3-wide kernel up to R = 7: the smallest feasible R is 8, above
    # the largest receptive field 7
    assert rfw.analyze([conv("c1", 3, dilation=2), conv("c2", 3)], 16).resolution_range == (8, 7)


@pytest.mark.parametrize("size", [1, 3, 4, 9, 31, 64, (5, 40)])
def test_at_equals_a_fresh_analysis(size):
    for stack in _stacks_for_range():
        first = rfw.analyze(stack, 32)
        moved = first.at(size)
        fresh = rfw.analyze(stack, size)
        assert moved.input_size == fresh.input_size
        assert moved.layers == fresh.layers
        assert moved.diagnostics == fresh.diagnostics
        assert moved.border_layers == fresh.border_layers
        assert moved.unproductive_layers == fresh.unproductive_layers
        assert moved.resolution_range == fresh.resolution_range
        assert moved.to_dict() == fresh.to_dict()
        # and the original is left as it was
        assert first.to_dict() == rfw.analyze(stack, 32).to_dict()
