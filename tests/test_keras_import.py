"""The Keras frontend on small models: hand-computed fields and the gradient support of the model."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pytest

keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("these tests run Keras on the torch backend", allow_module_level=True)

from keras import layers  # noqa: E402
from keras_oracle import mismatches, oracle_model  # noqa: E402

import rf_widgets as rfw  # noqa: E402
from rf_widgets.errors import ModelImportError, UnknownOperationWarning  # noqa: E402


def _chain(n, *stack, channels=1, name="chain"):
    x = inputs = keras.Input((n, n, channels) if n else (None, None, channels))
    for layer in stack:
        x = layer(x)
    return keras.Model(inputs, x, name=name)


def _box(result, layer, unit):
    box = result.unit_box(layer, unit)
    return tuple(int(v) for v in box.start), tuple(int(v) for v in box.stop)


# -- "same" padding: TensorFlow's size-dependent rule, by hand --------------------------------------------


@pytest.mark.parametrize(
    ("n", "size", "first", "last"),
    [
        # 3x3 stride 2: ceil(n/2) outputs, total padding max((out-1)*2 + 3 - n, 0), odd pixel at the end
        (7, 4, ((-1, -1), (1, 1)), ((5, 5), (7, 7))),  # total 2: (1, 1)
        (8, 4, ((0, 0), (2, 2)), ((6, 6), (8, 8))),  # total 1: (0, 1)
        (9, 5, ((-1, -1), (1, 1)), ((7, 7), (9, 9))),  # total 2: (1, 1)
    ],
)
def test_same_padding_stride_two_by_hand(n, size, first, last):
    model = _chain(None, layers.Conv2D(1, 3, strides=2, padding="same", name="c"))
    result = rfw.analyze(model, n)
    assert result.layer("c").feature_map == (size, size)
    assert _box(result, "c", 0) == first
    assert _box(result, "c", size - 1) == last


def test_even_kernel_same_padding_puts_the_extra_pixel_at_the_end():
    # 4x4 stride 1 "same": total 3, (1, 2); after a 3x3 stride-2 "same" conv on 8 (padding (0, 1)):
    # r = 3 + 3 * 2 = 9, J = 2, P = 0 + 1 * 2 = 2, so unit 0 sees [-2, 6]
    model = _chain(
        None,
        layers.Conv2D(1, 3, strides=2, padding="same", name="c1"),
        layers.Conv2D(1, 4, padding="same", name="c2"),
    )
    result = rfw.analyze(model, 8)
    assert result.layer("c2").r_max == (9, 9)
    assert result.layer("c2").feature_map == (4, 4)
    assert _box(result, "c2", 0) == ((-2, -2), (6, 6))
    # at 7 the first conv pads (1, 1): P = 1 + 1 * 2 = 3
    assert _box(result.at(7), "c2", 0) == ((-3, -3), (5, 5))


def test_same_pooling_and_valid_pooling_by_hand():
    # 2x2 stride-2 "same" max pool on 5: 3 outputs, padding (0, 1); the last window is [4, 5]
    model = _chain(None, layers.MaxPooling2D(2, padding="same", name="p"))
    result = rfw.analyze(model, 5)
    assert result.layer("p").feature_map == (3, 3)
    assert _box(result, "p", 2) == ((4, 4), (5, 5))
    valid = rfw.analyze(_chain(None, layers.MaxPooling2D(2, name="p")), 5)
    assert valid.layer("p").feature_map == (2, 2)


# -- the gradient support of small models with every kind of layer ----------------------------------------


def _beyond_padding(result, bad):
    """Mismatches other than the units ZeroPadding2D adds (its last row, its first two columns).

    Those units read nothing; ``unit_box`` gives them the span the window arithmetic extrapolates (the
    same for torch's ZeroPad2d), so the gradient says "no support" where the box says a few pixels.
    """
    rows, cols = result.layer("pad").feature_map
    added = {(r, c) for r in range(rows) for c in range(cols) if r == rows - 1 or c < 2}
    assert all(not (b[0] == "pad" and b[1] in added) or b[3] is None for b in bad)
    return [b for b in bad if not (b[0] == "pad" and b[1] in added)]


def _zoo(n, data_format="channels_last"):
    """A branchy 2-D model with the windows, resampling and padding layers of the Keras frontend."""
    shape = (2, n, n) if data_format == "channels_first" else (n, n, 2)
    kw = {"data_format": data_format}
    inputs = keras.Input(shape)
    a = layers.Conv2D(3, 3, strides=2, padding="same", name="conv_same", **kw)(inputs)
    b = layers.DepthwiseConv2D(3, padding="same", name="dw", **kw)(a)
    c = layers.SeparableConv2D(3, (3, 2), strides=2, padding="same", name="sep", **kw)(b)
    d = layers.AveragePooling2D(3, strides=2, padding="same", name="avg", **kw)(a)
    e = layers.Add(name="merge")([c, d])
    f = layers.Conv2DTranspose(3, 3, strides=2, padding="same", name="up_same", **kw)(e)
    g = layers.Conv2DTranspose(3, 4, strides=2, padding="valid", name="up_valid", **kw)(f)
    h = layers.UpSampling2D(2, interpolation="bilinear", name="bilinear", **kw)(e)
    i = layers.Cropping2D(((1, 0), (0, 2)), name="crop", **kw)(h)
    j = layers.ZeroPadding2D(((0, 1), (2, 0)), name="pad", **kw)(i)
    k = layers.Conv2D(3, (2, 3), strides=(1, 2), padding="valid", name="conv_valid", **kw)(j)
    m = layers.UpSampling2D((3, 2), name="nearest", **kw)(k)
    return keras.Model(inputs, [g, m], name=f"zoo_{data_format}")


ZOO_LAYERS = ["conv_same", "dw", "sep", "avg", "merge", "up_same", "up_valid", "bilinear", "crop", "pad"]
ZOO_LAYERS += ["conv_valid", "nearest"]


@pytest.mark.parametrize("n", [15, 16, 17, pytest.param(22, marks=pytest.mark.slow)])
def test_every_unit_of_the_zoo_matches_the_gradient_support(n):
    model = _zoo(n)
    result = rfw.analyze(model, n)
    assert not [layer.name for layer in result.layers if layer.status == "unknown"]
    bad, checked = mismatches(oracle_model(model), result, ZOO_LAYERS, (n, n), every=True, channels=2)
    assert checked > 800
    assert _beyond_padding(result, bad) == []


@pytest.mark.parametrize("n", [9, pytest.param(10, marks=pytest.mark.slow)])
def test_transposed_convolutions_with_output_padding_and_bicubic_upsampling(n):
    inputs = keras.Input((n, n, 1))
    a = layers.Conv2DTranspose(1, 3, strides=2, padding="same", output_padding=1, name="t_same_op")(inputs)
    b = layers.Conv2DTranspose(1, 5, strides=3, padding="valid", output_padding=2, name="t_valid_op")(a)
    c = layers.Conv2DTranspose(1, 4, strides=2, padding="same", name="t_same_even")(inputs)
    d = layers.Conv2DTranspose(1, 2, strides=3, padding="valid", name="t_gap")(inputs)
    e = layers.UpSampling2D(3, interpolation="bicubic", name="cubic")(inputs)
    model = keras.Model(inputs, [b, c, d, e])
    with pytest.warns(UnknownOperationWarning, match=r"'t_gap \(Conv2DTranspose\)'"):
        result = rfw.analyze(model, n)  # kernel 2 < stride 3: output phase 2 reads nothing
    for name in ("t_same_op", "t_valid_op", "t_same_even", "cubic"):
        assert result.layer(name).feature_map == tuple(model.get_layer(name).output.shape[1:3])
    oracle = oracle_model(model)
    bad, checked = mismatches(
        oracle, result, ["t_same_op", "t_same_even", "cubic"], (n, n), every=True, channels=1
    )
    assert checked > 1000
    assert bad == []
    # output_padding=2 adds a last row and column that no input reaches: the gradient sees nothing
    # there, the box is the span the phases extrapolate (as for the units ZeroPadding adds)
    bad, checked = mismatches(oracle, result, ["t_valid_op"], (n, n), channels=1)
    last = result.layer("t_valid_op").feature_map[0] - 1
    assert checked == 9
    assert all(last in unit and got is None for _, unit, _, got in bad)
    assert len(bad) == 5


@pytest.mark.parametrize("n", [15, 16])
def test_dilated_windows_match_the_gradient_support_up_to_their_holes(n):
    inputs = keras.Input((n, n, 1))
    x = layers.Conv2D(2, 3, strides=2, padding="same", name="stride")(inputs)
    x = layers.DepthwiseConv2D(3, dilation_rate=2, padding="same", name="dilated")(x)
    x = layers.Conv2D(2, (3, 2), dilation_rate=(1, 3), padding="same", name="dilated_even")(x)
    model = keras.Model(inputs, x)
    result = rfw.analyze(model, n)
    assert result.layer("dilated").r_max == (3 + 4 * 2,) * 2
    names = ["stride", "dilated", "dilated_even"]
    bad, checked = mismatches(oracle_model(model), result, names, (n, n), every=True, channels=1, holes=True)
    assert checked > 100
    assert bad == []


def test_channels_first_gives_the_channels_last_fields():
    last, first = rfw.analyze(_zoo(17), 17), rfw.analyze(_zoo(17, "channels_first"), 17)
    for name in ZOO_LAYERS:
        a, b = last.layer(name), first.layer(name)
        assert (a.r_max, a.feature_map, a.jump) == (b.r_max, b.feature_map, b.jump), name
        assert _box(last, name, 0) == _box(first, name, 0)
    model = _zoo(16, "channels_first")
    result = rfw.analyze(model, 16)
    bad, checked = mismatches(
        oracle_model(model), result, ZOO_LAYERS, (16, 16), channels=2, channels_first=True
    )
    assert checked > 50
    assert _beyond_padding(result, bad) == []


def test_one_dimensional_causal_and_same_convolutions_match_the_gradient_support():
    inputs = keras.Input((None, 2))
    x = layers.Conv1D(2, 3, dilation_rate=2, padding="causal", name="causal")(inputs)
    x = layers.Conv1D(2, 4, strides=2, padding="same", name="same")(x)
    x = layers.MaxPooling1D(3, strides=2, padding="same", name="pool")(x)
    x = layers.UpSampling1D(3, name="up")(x)
    model = keras.Model(inputs, x)
    for n in (13, 14):
        result = rfw.analyze(model, n)
        assert result.layer("causal").r_max == (5,)
        assert _box(result, "causal", 0) == ((-4,), (0,))  # all padding in front
        bad, checked = mismatches(
            oracle_model(model),
            result,
            ["causal", "same", "pool", "up"],
            (n,),
            every=True,
            channels=2,
            holes=True,
        )
        assert checked > 30
        assert bad == []


def test_permute_moves_the_axes_a_window_reads():
    # (H, W, C) -> (C, H, W) read as channels_first: the 3x5 kernel is 3 along H, 5 along W;
    # (H, W, C) -> (W, H, C): the same kernel now runs 3 along W and 5 along H
    inputs = keras.Input((20, 20, 1))
    a = layers.Permute((3, 1, 2), name="to_first")(inputs)
    a = layers.Conv2D(1, (3, 5), data_format="channels_first", name="conv_first")(a)
    b = layers.Permute((2, 1, 3), name="swap")(inputs)
    b = layers.Conv2D(1, (3, 5), name="conv_swapped")(b)
    result = rfw.analyze(keras.Model(inputs, [a, b]), 20)
    assert result.layer("conv_first").r_max == (3, 5)
    assert result.layer("conv_swapped").r_max == (5, 3)
    assert result.layer("conv_swapped").feature_map == (16, 18)


# -- model structure: Sequential, nested models, shared layers ------------------------------------------


def test_sequential_and_nested_models_are_walked_in_place():
    inner = keras.Sequential(
        [keras.Input((None, None, 4)), layers.Conv2D(4, 3, name="ic1"), layers.MaxPooling2D(name="ip")],
        name="inner",
    )
    inner_in = keras.Input((None, None, 4))
    deeper = keras.Model(inner_in, layers.Conv2D(4, 3, strides=2, name="dc")(inner_in), name="deeper")
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(4, 3, name="c1")(inputs)
    x = inner(x)
    x = deeper(x)
    x = layers.Conv2D(4, 3, name="c2")(x)
    nested = keras.Model(inputs, x, name="outer")
    flat = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Conv2D(4, 3, name="c1"),
            layers.Conv2D(4, 3, name="ic1"),
            layers.MaxPooling2D(name="ip"),
            layers.Conv2D(4, 3, strides=2, name="dc"),
            layers.Conv2D(4, 3, name="c2"),
        ]
    )
    a, b = rfw.analyze(nested, 32), rfw.analyze(flat, 32)
    assert a.stack.names == ("c1", "inner/ic1", "inner/ip", "deeper/dc", "c2")
    assert b.stack.names == ("c1", "ic1", "ip", "dc", "c2")
    # c1 3, ic1 5, ip 6 (J 2), dc 6 + 2 * 2 = 10 (J 4), c2 10 + 2 * 4 = 18
    assert a.layer("c2").r_max == b.layer("c2").r_max == (18, 18)
    assert a.layer("inner/ic1").params == 4 * 4 * 9 + 4
    assert a.stack["inner/ic1"].module == "inner/ic1"


def test_a_shared_layer_called_twice_gets_two_names_and_counts_its_weights_once():
    conv = layers.Conv2D(2, 3, padding="same", name="shared")
    inputs = keras.Input((16, 16, 2))
    model = keras.Model(inputs, conv(conv(inputs)))
    result = rfw.analyze(model, 16)
    assert result.stack.names == ("shared", "shared:2")
    assert result.layer("shared:2").r_max == (5, 5)
    assert result.layer("shared").params == 2 * 2 * 9 + 2
    assert result.layer("shared:2").params == 0


def test_dense_on_channels_is_pointwise_and_after_flatten_sees_everything():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, name="conv")(inputs)
    x = layers.Dense(5, name="dense_pointwise")(x)
    x = layers.Flatten(name="flat")(x)
    x = layers.Dense(2, name="head")(x)
    result = rfw.analyze(keras.Model(inputs, x), 8)
    assert result.layer("dense_pointwise").r_max == (3, 3)
    assert result.stack["dense_pointwise"].macs_per_position == 4 * 5
    assert result.layer("head").status == "global"
    # a Dense over a spatial axis (after moving it last) mixes every position along it
    inputs = keras.Input((8, 8, 3))
    moved = layers.Permute((1, 3, 2), name="w_last")(inputs)
    result = rfw.analyze(keras.Model(inputs, layers.Dense(4, name="mix_w")(moved)), 8)
    assert result.layer("mix_w").status == "global"


def test_softmax_over_channels_is_pointwise_over_a_spatial_axis_global_and_dot_is_unknown():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, name="conv")(inputs)
    channels = layers.Activation("softmax", name="softmax_c")(x)
    along_w = layers.Softmax(axis=2, name="softmax_w")(x)
    moved = layers.Activation("softmax", name="softmax_last_w")(layers.Permute((1, 3, 2), name="w_last")(x))
    dot = layers.Dot(axes=-1, name="dot")([layers.Reshape((36, 4))(x), layers.Reshape((36, 4))(x)])
    with pytest.warns(UnknownOperationWarning, match=r"'dot \(Dot\)'"):
        result = rfw.analyze(keras.Model(inputs, [channels, along_w, moved, dot]), 8)
    assert result.layer("softmax_c").r_max == (3, 3)
    assert result.layer("softmax_w").status == "global"
    assert result.layer("softmax_last_w").status == "global"


def test_squeeze_and_excitation_reshape_and_gate():
    inputs = keras.Input((16, 16, 8))
    x = layers.Conv2D(8, 3, name="conv")(inputs)
    s = layers.GlobalAveragePooling2D(name="squeeze")(x)
    s = layers.Reshape((1, 1, 8), name="reshape")(s)
    s = layers.Conv2D(8, 1, activation="sigmoid", name="excite")(s)
    y = layers.Multiply(name="gate")([x, s])
    result = rfw.analyze(keras.Model(inputs, y), 16)
    gate = result.layer("gate")
    assert gate.r_max_local == (3, 3)
    assert gate.r_max == (float("inf"), float("inf"))


# -- unknown layers, user rules, errors ---------------------------------------------------------------


def test_a_lambda_layer_is_unknown_and_named():
    model = _chain(16, layers.Conv2D(2, 3, name="c1"), layers.Lambda(lambda t: t * 2, name="double"))
    with pytest.warns(UnknownOperationWarning, match=r"'double \(Lambda\)'"):
        result = rfw.analyze(model, 16)
    assert result.layer("double").status == "unknown"
    assert any("Lambda layer runs arbitrary Python code" in d.message for d in result.diagnostics)


class Blur(layers.Layer):
    """A made-up layer: a 5x5 box blur nobody wrote a rule for."""

    def call(self, x):
        return x


def test_a_user_rule_for_a_made_up_layer():
    model = _chain(32, layers.Conv2D(2, 3, name="c1"), Blur(name="blur"), layers.Conv2D(2, 3, name="c2"))
    with pytest.warns(UnknownOperationWarning, match=r"'blur \(Blur\)'"):
        assert rfw.analyze(model, 32).layer("blur").status == "unknown"
    table = rfw.RuleTable()
    table.operator("keras", Blur, lambda call: call.window(5, padding="same"))
    result = rfw.analyze(model, 32, rules=table)
    assert result.layer("blur").r_max == (7, 7)
    assert result.layer("c2").r_max == (9, 9)
    assert result.layer("c2").feature_map == (28, 28)
    # a rule may return Layer fields, and may name the class by its qualified name
    by_name = rfw.RuleTable()
    by_name.operator("keras", f"{__name__}.Blur", lambda call: {"kernel": 3, "padding": 1})
    with by_name:
        assert rfw.analyze(model, 32).layer("blur").r_max == (5, 5)


def test_a_broken_rule_is_an_import_error_naming_the_layer():
    model = _chain(32, Blur(name="blur"))
    table = rfw.RuleTable()
    table.operator("keras", Blur, lambda call: 1 / 0)
    with pytest.raises(ModelImportError, match=r"Keras layer 'blur'.*ZeroDivisionError"):
        rfw.analyze(model, 32, rules=table)


def test_models_without_one_image_input_are_refused_clearly():
    vector = keras.Input((10,))
    dense = keras.Model(vector, layers.Dense(3)(vector), name="tabular")
    with pytest.raises(ModelImportError, match=r"tabular has no spatial input .*\(None, 10\)"):
        rfw.analyze(dense, 32)
    left, right = keras.Input((32, 32, 3)), keras.Input((32, 32, 3))
    two = keras.Model([left, right], layers.Add()([layers.Conv2D(3, 3)(left), layers.Conv2D(3, 3)(right)]))
    with pytest.raises(ModelImportError, match="2 image inputs"):
        rfw.analyze(two, 32)
    unbuilt = keras.Sequential([layers.Conv2D(3, 3)], name="unbuilt")
    with pytest.raises(ModelImportError, match="unbuilt"):
        rfw.analyze(unbuilt, 32)


def test_a_second_input_without_spatial_axes_adds_no_field():
    image, scale = keras.Input((16, 16, 3)), keras.Input((3,))
    x = layers.Conv2D(3, 3, name="conv")(image)
    gated = layers.Multiply(name="scaled")([x, layers.Reshape((1, 1, 3), name="as_map")(scale)])
    result = rfw.analyze(keras.Model([image, scale], gated), 16)
    assert result.layer("scaled").r_max == (3, 3)
    assert "as_map" not in result.stack.names


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras' own Variable.numpy() on numpy 2
def test_fixed_and_free_input_sizes_analyse_at_any_size_and_leave_the_model_alone():
    fixed = _chain(224, layers.Conv2D(2, 7, strides=2, padding="same", name="stem"), channels=3)
    before = [w.numpy().copy() for w in fixed.weights]
    config = fixed.get_config()
    assert rfw.analyze(fixed, 64).layer("stem").feature_map == (32, 32)
    assert rfw.analyze(fixed, 224).layer("stem").feature_map == (112, 112)
    assert fixed.get_config() == config
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, fixed.weights, strict=True))
    free = _chain(None, layers.Conv2D(2, 7, strides=2, padding="same", name="stem"), channels=3)
    assert rfw.analyze(free, 63).layer("stem").feature_map == (32, 32)


# -- downstream: reports, JSON, strategies, Explorer ---------------------------------------------------


def _small_net():
    return _chain(
        32,
        layers.Conv2D(4, 3, padding="same", name="c1"),
        layers.MaxPooling2D(name="p1"),
        layers.Conv2D(4, 3, padding="same", name="c2"),
        layers.MaxPooling2D(name="p2"),
        layers.Conv2D(4, 3, padding="same", name="c3"),
        layers.GlobalAveragePooling2D(name="gap"),
        layers.Dense(10, name="head"),
        channels=3,
        name="small",
    )


def test_reports_json_and_verdicts_work_on_a_keras_stack():
    import json

    result = rfw.analyze(_small_net(), 8)
    assert result.border_layer == "p2"  # c2 sees 8 at 8 px; p2's input already does (rule A)
    document = json.loads(result.to_json())
    assert document["model"] == "small"
    assert [layer["name"] for layer in document["layers"]][:2] == ["c1", "p1"]
    assert "small" in repr(result)


def test_strategies_predict_but_apply_only_to_torch_models():
    plan = rfw.suggest(_small_net(), 8)
    trim = plan["trim"]
    assert trim.applicable
    assert trim.params_after < trim.params_before
    with pytest.raises(rfw.RFError, match="torch models only"):
        trim.apply()
    from rf_widgets.strategies import search

    front = search(_small_net(), 8, budget=8.0)
    built = [c for c in front.pareto if not c.refused]
    assert built, front.table()
    with pytest.raises(rfw.RFError, match="torch models only"):
        built[0].apply()


def test_the_explorer_opens_on_a_keras_model_and_changes_resolution():
    import json

    ex = rfw.explore(_small_net(), input_size=32)
    assert ex.result.border_layer is None
    ex.controls["resolution"].value = 8
    assert ex.result.input_size == (8, 8)
    assert ex.result.border_layer == "p2"
    assert "p2" in ex.summary.value
    ex.controls["resolution"].value = 15  # odd: the "same" convolutions pad by TensorFlow's rule
    ex.controls["layer"].value = "c2"
    ex.controls["unit_0"].value = 0
    ex.controls["unit_1"].value = 3
    box = ex.result.unit_box("c2", (0, 3))
    # c1 pads (1, 1): r 3; p1 (valid) 7 units, r 4, J 2, P 1; c2 pads (1, 1): r 8, P 3
    assert (box.start, box.stop) == ((-3, 3), (4, 10))
    rect = ex.renderer.overlay.artists["r_max"]
    assert rect.get_x() == pytest.approx(box.start[1] - 0.5)
    ex.controls["export_json"].click()
    assert [layer["name"] for layer in json.loads(ex.export_text.value)["layers"]] == list(ex.stack.names)
    ex.controls["export_python"].click()
    namespace: dict[str, object] = {}
    exec(ex.export_text.value, namespace)
    again = rfw.analyze(namespace["stack"], 15)
    assert [r.r_max for r in again.layers] == [r.r_max for r in ex.result.layers]
    assert again.unit_box("c2", (0, 3)) == box


def test_importing_rf_widgets_does_not_import_keras():
    import subprocess
    import sys

    code = (
        "import sys, rf_widgets as rfw\n"
        "rfw.analyze([rfw.conv('c', 3)], 8)\n"
        "print('keras' in sys.modules, 'rf_widgets.keras_import' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = layers.Conv2D(3, 3)

    def call(self, x):
        return self.conv(x)


def test_a_subclassed_model_has_no_graph_to_read():
    top = _Subclassed(name="net")
    top(keras.ops.ones((1, 8, 8, 3)))
    with pytest.raises(ModelImportError, match="net: only Functional and Sequential"):
        rfw.analyze(top, 8)
    inputs = keras.Input((8, 8, 3))
    wrapped = keras.Model(inputs, _Subclassed(name="inner_net")(inputs))
    with pytest.warns(UnknownOperationWarning, match="inner_net"):
        result = rfw.analyze(wrapped, 8)
    assert "subclassed model" in result.stack["inner_net"].note
