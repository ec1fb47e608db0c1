"""The model-zoo table: every number against rfw.analyze of the real module and an independent count."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
pd = pytest.importorskip("pandas")

import rf_widgets as rfw  # noqa: E402
from rf_widgets import zoo  # noqa: E402
from rf_widgets.__main__ import main as cli  # noqa: E402

SIZE = 64

# One model per torchvision module (= family), so every family's builder is covered.
TORCHVISION_SAMPLE = [
    "alexnet",
    "convnext_tiny",
    "densenet121",
    "efficientnet_b0",
    "googlenet",
    "inception_v3",
    "maxvit_t",
    "mnasnet0_5",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "regnet_x_400mf",
    "resnet18",
    "shufflenet_v2_x0_5",
    "squeezenet1_1",
    "swin_t",
    "vgg11_bn",
    "vit_b_32",
]
TIMM_SAMPLE = [
    "resnet18",
    "efficientnet_b0",
    "mobilenetv3_small_100",
    "convnext_atto",
    "regnetx_002",
    "densenet121",
    "ghostnet_100",
    "cspresnet50",
]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_torchvision_sample_covers_every_family():
    families = {zoo._family(spec) for spec in zoo.model_specs("torchvision")}
    sampled = {zoo._family(f"torchvision:{name}") for name in TORCHVISION_SAMPLE}
    assert families == sampled
    assert len(zoo.model_specs("torchvision")) == len(
        torchvision.models.list_models(module=torchvision.models)
    )


def _real(spec):
    prefix, _, name = spec.partition(":")
    if prefix == "torchvision":
        return torchvision.models.get_model(name, weights=None).eval()
    timm = pytest.importorskip("timm")
    return timm.create_model(name, pretrained=False).eval()


def _is_spatial(layer):
    """SPEC section 6: a window with an effective kernel d * (k - 1) + 1 above 1 on some axis."""
    dilation = layer.dilation or (1,) * len(layer.kernel or ())
    return layer.kernel is not None and any(
        d * (k - 1) + 1 > 1 for k, d in zip(layer.kernel, dilation, strict=True)
    )


def _check_row(row, spec):
    """The row against rfw.analyze of the real (CPU, randomly initialised) module and torch's own counts."""
    assert row["status"] in ("ok", "unknown-ops"), row["note"]
    model = _real(spec)
    with (
        pytest.warns(rfw.errors.UnknownOperationWarning) if row["status"] == "unknown-ops" else _no_warning()
    ):
        result = rfw.analyze(model, SIZE)
    low, high = result.resolution_range
    assert (row["feasible_min"], row["feasible_max"]) == (low, high)
    assert row["border_layer"] == result.border_layer
    assert row["unproductive_layers"] == len(result.unproductive_layers)
    assert row["layers"] == len(result.layers)
    spatial = [layer for layer in result.layers if layer.spatial]
    assert row["spatial_layers"] == len(spatial) == len(result.spatial_layers)
    assert row["spatial_unproductive"] == sum(layer.status == "unproductive" for layer in spatial)
    # a spatial layer is a window wider than one pixel (SPEC section 6); the analysis may also count an
    # adaptive pool by the window it resolves to
    assert all(layer.op.startswith("Adaptive") or _is_spatial(layer) for layer in spatial)
    share = result.unproductive_share()
    assert row["unproductive_params_share"] == pytest.approx(share["params"], abs=0, rel=1e-12)
    assert row["unproductive_macs_share"] == pytest.approx(share["macs"], abs=0, rel=1e-12)
    assert row["fits"] == (low is not None and high is not None and low <= SIZE <= high)
    assert (row["status"] == "unknown-ops") == (result.counts["unknown"] > 0)
    # independent counts of the real module
    assert row["params"] == sum(p.numel() for p in model.parameters())
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.randn(1, 3, SIZE, SIZE))
        counted = counter.get_total_flops() // 2
    except Exception:
        counted = None  # the model does not run at this size: the table's count is all there is
    assert row["runs"] == (counted is not None)
    if counted is None:
        assert row["macs_source"] == "layer table"
        assert row["macs"] == sum(layer.macs for layer in result.layers)
    else:
        assert row["macs_source"] == "forward pass"
        assert row["macs"] == counted


class _no_warning:
    def __enter__(self):
        import warnings

        self._catcher = warnings.catch_warnings()
        self._catcher.__enter__()
        warnings.simplefilter("error", rfw.errors.UnknownOperationWarning)

    def __exit__(self, *exc):
        self._catcher.__exit__(*exc)


@pytest.mark.slow
def test_torchvision_rows_equal_analyze_and_independent_counts():
    frame = zoo.table(SIZE, models=[f"torchvision:{n}" for n in TORCHVISION_SAMPLE], progress=False)
    assert list(frame.columns) == list(zoo.COLUMNS)
    assert frame["model"].tolist() == [f"torchvision:{n}" for n in TORCHVISION_SAMPLE]
    for _, row in frame.iterrows():
        _check_row(row, row["model"])
    # the worked values of SPEC section 6 (ResNet18 at 64: border layer4.0.conv2, range 97 to 435)
    resnet = frame.set_index("model").loc["torchvision:resnet18"]
    assert resnet["feasible_max"] == 435
    # RegNets compute with tensors in their constructor: only their parameters go to the meta device
    assert frame.set_index("model").loc["torchvision:regnet_x_400mf", "build"] == "meta-parameters"
    assert frame.set_index("model").loc["torchvision:resnet18", "build"] == "meta"


@pytest.mark.slow
def test_timm_rows_equal_analyze_and_independent_counts():
    pytest.importorskip("timm")
    frame = zoo.table(SIZE, "timm", models=[f"timm:{n}" for n in TIMM_SAMPLE], progress=False)
    assert len(frame) == len(TIMM_SAMPLE)
    for _, row in frame.iterrows():
        _check_row(row, row["model"])
    assert len(set(frame["family"])) == len(TIMM_SAMPLE)  # one model per family
    assert set(frame["family"]) >= {"resnet", "efficientnet", "mobilenetv3", "convnext", "regnet", "densenet"}


def test_every_listed_timm_model_exists():
    timm = pytest.importorskip("timm")
    known = set(timm.list_models())
    assert [name for name in zoo.TIMM_MODELS if name not in known] == []
    for name in zoo.TIMM_MODELS:
        assert name in zoo.__doc__


def test_meta_and_cpu_builds_analyse_the_same():
    """The zoo's meta-device import gives what rfw.analyze gives on the real module (reshapes too)."""
    for name in ("shufflenet_v2_x0_5", "vit_b_32", "regnet_y_400mf"):
        spec = f"torchvision:{name}"
        row = zoo.analyse_model(spec, (SIZE, SIZE))
        assert row["build"] in ("meta", "meta-parameters")
        result = rfw.analyze(_real(spec), SIZE)
        assert row["unproductive_layers"] == len(result.unproductive_layers)
        assert row["layers"] == len(result.layers)
        assert (row["feasible_min"], row["feasible_max"]) == result.resolution_range
        assert row["status"] == "ok"


class _DataDependent(torch.nn.Module):
    """torch.fx cannot trace Python control flow on tensor values."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x):
        if x.sum() > 0:
            return self.conv(x)
        return x


def test_a_model_that_fails_is_a_row_with_its_reason(monkeypatch):
    real_constructor = zoo._constructor
    broken = {"torchvision:broken-build", "torchvision:broken-trace"}

    def constructor(spec):
        if spec == "torchvision:broken-build":

            def fail():
                raise RuntimeError("no such layer config")

            return fail
        if spec == "torchvision:broken-trace":
            return _DataDependent
        return real_constructor(spec)

    monkeypatch.setattr(zoo, "_constructor", constructor)
    real_specs = zoo.model_specs
    monkeypatch.setattr(zoo, "model_specs", lambda source: [*real_specs(source), *sorted(broken)])
    frame = zoo.table(SIZE, models=["resnet18", *sorted(broken)], progress=False)
    rows = frame.set_index("model")
    assert rows.loc["torchvision:resnet18", "status"] == "ok"
    build = rows.loc["torchvision:broken-build"]
    assert build["status"] == "failed"
    assert "no such layer config" in build["note"]
    assert pd.isna(build["params"])
    assert pd.isna(build["feasible_min"])
    trace = rows.loc["torchvision:broken-trace"]
    assert trace["status"] == "failed"
    assert "torch.fx could not trace" in trace["note"]
    assert not trace["fits"]


def test_second_call_reads_the_cache(monkeypatch, private_cache):
    calls = []
    real = zoo.analyse_model

    def counting(spec, size):
        calls.append(spec)
        return real(spec, size)

    monkeypatch.setattr(zoo, "analyse_model", counting)
    first = zoo.table(SIZE, models=["resnet18", "vgg11"], progress=False)
    assert calls == ["torchvision:resnet18", "torchvision:vgg11"]
    files = list(private_cache.rglob("*.json"))
    assert [f.name for f in files] == [f"torchvision-{SIZE}x{SIZE}.json"]
    second = zoo.table(SIZE, models=["vgg11", "resnet18"], progress=False)
    assert len(calls) == 2  # nothing recomputed
    pd.testing.assert_frame_equal(
        second.set_index("model").loc[first["model"]].reset_index(), first, check_like=False
    )
    zoo.table(SIZE, models=["resnet18", "alexnet"], progress=False)
    assert calls[2:] == ["torchvision:alexnet"]  # only the new model
    zoo.table(SIZE + 1, models=["resnet18"], progress=False)
    assert calls[3:] == ["torchvision:resnet18"]  # another size is another table
    # another library version (or changed rf_widgets sources) starts a new cache
    monkeypatch.setattr(zoo, "_versions", lambda: {"torch": "0.0-other"})
    zoo.table(SIZE, models=["resnet18"], progress=False)
    assert calls[4:] == ["torchvision:resnet18"]
    assert len({f.parent for f in private_cache.rglob("*.json")}) == 2


def test_cache_can_be_switched_off(monkeypatch, private_cache):
    zoo.table(SIZE, models=["resnet18"], progress=False, cache=False)
    assert not private_cache.exists()


def test_versions_name_the_libraries():
    versions = zoo._versions()
    assert {"torch", "torchvision", "timm", "rf-widgets", "rf_widgets_sources"} <= set(versions)
    assert versions["torch"] == torch.__version__.split("+")[0] or versions["torch"] == torch.__version__


def test_both_sources_and_bare_names():
    pytest.importorskip("timm")
    frame = zoo.table(SIZE, "both", models=["resnet18"], progress=False)
    assert frame["model"].tolist() == ["torchvision:resnet18", "timm:resnet18"]
    assert frame["source"].tolist() == ["torchvision", "timm"]
    assert frame["params"].tolist() == [11_689_512, 11_689_512]
    assert len(zoo.model_specs("both")) == len(zoo.model_specs("torchvision")) + len(zoo.TIMM_MODELS)


def test_max_params_and_model_names():
    frame = zoo.table(SIZE, models=["resnet18", "vgg11", "squeezenet1_1"], max_params="12M", progress=False)
    assert frame["model"].tolist() == ["torchvision:resnet18", "torchvision:squeezenet1_1"]
    assert zoo.parse_count("30M") == 30_000_000
    assert zoo.parse_count("1.5G") == 1_500_000_000
    assert zoo.parse_count("500k") == 500_000
    assert zoo.parse_count(1234) == 1234


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: zoo.table(SIZE, source="keras"), "source must be one of"),
        (lambda: zoo.table(SIZE, models=["resnet19"]), "'resnet19' is not in the torchvision zoo"),
        (lambda: zoo.table(0, models=["resnet18"]), "input size must be a positive integer"),
        (lambda: zoo.parse_count("thirty"), "optional k, M or G suffix"),
    ],
)
def test_bad_arguments_are_one_clear_error(call, message):
    with pytest.raises(rfw.RFError, match=message):
        call()


def test_progress_goes_to_stderr(capsys):
    zoo.table(SIZE, models=["squeezenet1_1"], progress=True)
    captured = capsys.readouterr()
    assert "squeezenet1_1" in captured.err
    assert captured.out == ""


def test_cli_json_and_text(capsys):
    assert cli(["zoo", "--resolution", "32", "--models", "resnet18", "alexnet", "--json", "-q"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["model"] for row in rows] == ["torchvision:resnet18", "torchvision:alexnet"]
    assert rows[0]["feasible_max"] == 435
    assert rows[1]["macs_source"] == "layer table"  # AlexNet does not run at 32x32
    assert "does not run at 32x32" in rows[1]["note"]
    assert cli(["zoo", "-r", str(SIZE), "--models", "resnet18", "alexnet", "--max-params", "30M", "-q"]) == 0
    text = capsys.readouterr().out
    assert "torchvision:resnet18" in text
    assert "alexnet" not in text
    assert f"1 models at {SIZE}x{SIZE}" in text


def test_cli_bad_input_is_one_line(capsys):
    assert cli(["zoo", "--models", "nonet", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "'nonet' is not in the torchvision zoo" in err[0]


def test_plot_feasible_draws_a_bar_per_range_and_the_size():
    pytest.importorskip("matplotlib")
    frame = pd.DataFrame(
        {
            "model": ["a", "b", "c", "d"],
            "feasible_min": pd.array([97, 269, None, 17], dtype="Int64"),
            "feasible_max": pd.array([435, 268, None, 24], dtype="Int64"),
        }
    )
    view = zoo.plot_feasible(frame, 64)
    bars = view.artists["bars"].patches
    assert [(b.get_x(), b.get_x() + b.get_width()) for b in bars] == [(97, 435), (17, 24)]
    empty = view.artists["empty"].patches
    assert [(b.get_x(), b.get_x() + b.get_width()) for b in empty] == [(268, 269)]
    assert view.artists["missing"] == ["c"]
    assert list(view.artists["line"].get_xdata()) == [64, 64]
    assert [t.get_text() for t in view.ax.get_yticklabels()] == ["a", "b", "c", "d"]
    picked = zoo.plot_feasible(frame, None, models=["d", "a"])
    assert [t.get_text() for t in picked.ax.get_yticklabels()] == ["d", "a"]
    assert "line" not in picked.artists
    with pytest.raises(rfw.RFError, match="no model 'e'"):
        zoo.plot_feasible(frame, models=["e"])


def test_format_table_sorts_by_compute():
    frame = zoo.table(SIZE, models=["vgg11", "squeezenet1_1", "resnet18"], progress=False)
    lines = zoo.format_table(frame).splitlines()
    assert [line.split()[0] for line in lines[2:]] == [
        "torchvision:squeezenet1_1",
        "torchvision:resnet18",
        "torchvision:vgg11",
    ]
    assert not math.isnan(frame["unproductive_macs_share"].iloc[0])
