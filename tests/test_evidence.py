"""rf_widgets.evidence: saturation, probes, effective fields, measure(), the data and the figure.

Oracles: numpy's own covariance and eigenvalues on explicitly collected activations; features of known
rank; linearly separable and random-label probes; the ERF sizes of SPEC section 8; the gradient support
with positive weights against the theoretical box of the analysis.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision

import rf_widgets as rfw
from rf_widgets.errors import DataError, GraphError, ResolutionError, RFError
from rf_widgets.evidence import (
    SHAPE_PAIR_CLASSES,
    EvidenceResult,
    effective_field,
    erf_map,
    load_cifar10,
    load_image_folder,
    measure,
    plot_evidence,
    probes,
    saturation,
    shape_pairs,
    train_classifier,
)
from rf_widgets.evidence.saturation import saturation_of_covariance


def _small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 5, padding=2),  # at 16 px: sees a 4x4 map, r_min 23 (unproductive by A and B)
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )


# -- saturation -----------------------------------------------------------------------------------------


def _numpy_saturation(features: np.ndarray, delta: float) -> float:
    """Independent: np.cov over (observations, channels), eigenvalues, smallest k reaching delta."""
    eig = np.sort(np.linalg.eigvalsh(np.cov(features, rowvar=False)))[::-1]
    eig = np.clip(eig, 0, None)
    share = np.cumsum(eig) / eig.sum()
    return (int(np.argmax(share >= delta)) + 1) / len(eig)


@pytest.mark.parametrize(("rank", "channels"), [(3, 16), (7, 16), (16, 16), (5, 40)])
def test_saturation_of_known_rank_is_rank_over_channels(rank, channels):
    # A 1x1 convolution embeds `rank` independent unit-variance inputs in `channels` orthonormal
    # directions: the output covariance has exactly `rank` equal eigenvalues, so 99% needs all of them.
    generator = torch.Generator().manual_seed(rank)
    q, _ = torch.linalg.qr(torch.randn(channels, rank, generator=generator))
    net = nn.Sequential(nn.Conv2d(rank, channels, 1, bias=True))
    with torch.no_grad():
        net[0].weight.copy_(q[:, :, None, None])
        net[0].bias.normal_()
    x = torch.randn(300, rank, 6, 6, generator=generator)
    out = saturation(net, x, layers=["0"], batch_size=64)["0"]
    assert out.saturation == pytest.approx(rank / channels)
    assert out.observations == 300 * 36
    assert not out.rank_limited


def test_saturation_matches_numpy_on_collected_activations():
    net = _small_net()
    x = torch.randn(50, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = net[:4](x)  # the output of layer "3"
    features = full.permute(0, 2, 3, 1).reshape(-1, 8).double().numpy()
    for delta in (0.5, 0.9, 0.99):
        ours = saturation(net, x, layers=["3"], delta=delta, batch_size=7)["3"].saturation
        assert ours == pytest.approx(_numpy_saturation(features, delta))
    # the streaming covariance equals numpy's to float precision, whatever the batching
    from rf_widgets.evidence.saturation import _Scatter

    scatter = _Scatter()
    for chunk in np.array_split(features, 9):
        scatter.add(torch.from_numpy(chunk))
    np.testing.assert_allclose(scatter.covariance(), np.cov(features, rowvar=False), rtol=1e-9, atol=1e-12)


def test_saturation_edge_cases():
    assert saturation_of_covariance(np.zeros((4, 4))) == 0.0
    assert saturation_of_covariance(np.diag([1.0, 0, 0, 0])) == 0.25
    net = nn.Sequential(nn.Conv2d(3, 8, 3))
    out = saturation(net, torch.randn(2, 3, 3, 3), layers=["0"])["0"]  # 2 observations, 8 channels
    assert out.rank_limited
    assert out.observations == 2
    assert out.saturation <= 1 / 8
    with pytest.raises(RFError, match="delta"):
        saturation(net, torch.randn(2, 3, 3, 3), delta=0)


# -- probes ---------------------------------------------------------------------------------------------


def _identity_conv(channels: int) -> nn.Sequential:
    conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        for c in range(channels):
            conv.weight[c, c, 1, 1] = 1.0
    return nn.Sequential(conv)


def test_probe_on_linearly_separable_classes_is_perfect():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(300) % 3
    # class k raises channel k: the pooled features are three well separated clusters
    x = torch.randn(300, 3, 5, 5, generator=generator) * 0.3
    x[torch.arange(300), labels] += 2.0
    result = probes(_identity_conv(3), (x[:200], labels[:200]), (x[200:], labels[200:]))["0"]
    assert result.train_accuracy == 1.0
    assert result.test_accuracy == 1.0


def test_probe_on_random_labels_is_at_chance():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(1600, 4, 4, 4, generator=generator)
    y = torch.randint(0, 4, (1600,), generator=generator)
    result = probes(_identity_conv(4), (x[:800], y[:800]), (x[800:], y[800:]))["0"]
    # 800 test labels at chance 0.25: a 4-sigma band is +-0.06
    assert abs(result.test_accuracy - 0.25) < 0.06


# -- effective receptive fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layers", "size", "r"), [(5, 8.31, 11), (10, 11.70, 21), (20, 16.16, 41), (40, 22.74, 81)]
)
def test_erf_size_of_all_ones_chain_matches_spec(layers, size, r):
    net = nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1, bias=False) for _ in range(layers)])
    with torch.no_grad():
        for conv in net:
            conv.weight.fill_(1.0)
    erf = effective_field(net, str(layers - 1), input_size=r + 10, samples=2)
    assert round(erf.size, 2) == size
    assert erf.theoretical_box.size == (r, r)
    assert erf.support_box is not None  # linear and positive: all of it
    assert erf.support_box.size == (r, r)
    assert erf.support_inside_theoretical()


FAMILIES = [
    ("resnet18", "layer2.0.conv2", 64, None),
    ("resnet18", "layer3.1.conv1", 64, (0, 3)),  # a corner unit: its box reaches into the padding
    ("vgg11", "features.8", 64, None),
    ("mobilenet_v2", "features.6.conv.1.0", 64, None),
    ("densenet121", "features.denseblock2.denselayer1.conv2", 64, None),
    ("regnet_x_400mf", "trunk_output.block2.block2-0.f.b.0", 64, None),
]


@pytest.mark.slow
@pytest.mark.parametrize(("family", "layer", "size", "unit"), FAMILIES)
def test_erf_support_lies_inside_the_theoretical_box(family, layer, size, unit):
    model = getattr(torchvision.models, family)(weights=None)
    erf = effective_field(model, layer, unit, input_size=size, weights="positive", samples=1)
    assert erf.support_box is not None
    assert erf.support_inside_theoretical(), (erf.support_box, erf.theoretical_box)
    # with positive weights the gradient reaches far: at least half of the clipped box on every axis
    clipped = erf.theoretical_box.clipped(erf.input_size)
    assert clipped is not None
    assert all(s >= c / 2 for s, c in zip(erf.support_box.size, clipped.size, strict=True))


def test_erf_of_a_trained_looking_net_is_smaller_than_its_box():
    torch.manual_seed(0)
    net = nn.Sequential(*[m for _ in range(6) for m in (nn.Conv2d(2, 2, 3, padding=1), nn.ReLU())])
    erf = effective_field(net, "10", input_size=31, samples=8)
    assert erf.theoretical_box.size == (13, 13)
    assert erf.size < 13
    assert erf.support_inside_theoretical()


def test_erf_map_is_cached_until_the_weights_change():
    net = _small_net()
    first = erf_map(net, "3", input_size=16, samples=2)
    assert erf_map(net, "3", input_size=16, samples=2) is first
    other = erf_map(net, "3", unit=(0, 0), input_size=16, samples=2)
    assert other is not first
    assert other.unit == (0, 0)
    with torch.no_grad():
        net[0].weight.mul_(2.0)  # an in-place update, as an optimiser step makes
    assert erf_map(net, "3", input_size=16, samples=2) is not first


def test_erf_weights_variants_and_bad_units():
    net = _small_net()
    given = effective_field(net, "5", input_size=16, samples=2)
    random = effective_field(net, "5", input_size=16, samples=2, weights="random", seed=3)
    assert not np.allclose(given.map, random.map)
    json.dumps(given.to_dict())
    with pytest.raises(ResolutionError, match="outside the 4x4 feature map of layer '5'"):
        effective_field(net, "5", unit=(4, 0), input_size=16)
    with pytest.raises(RFError, match="weights must be"):
        effective_field(net, "5", input_size=16, weights="ones")  # type: ignore[arg-type]


# -- the model is left exactly as found -----------------------------------------------------------------


def _snapshot(model: nn.Module) -> dict:
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [p.grad for p in model.parameters()],
        "hooks": [
            (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for m in model.modules()
        ],
        "dtype": [p.dtype for p in model.parameters()],
    }


def _assert_same(model: nn.Module, before: dict) -> None:
    after = _snapshot(model)
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert all(g is None for g in after["grads"])
    assert after["hooks"] == before["hooks"]
    assert after["dtype"] == before["dtype"]
    for key, value in before["state"].items():
        assert torch.equal(after["state"][key], value), key


def _awkward_model() -> nn.Sequential:
    """Training mode, one frozen parameter, a user hook: everything that must survive."""
    net = _small_net()
    net.train()
    net[1].eval()
    net[0].bias.requires_grad_(False)
    net[3].register_forward_hook(lambda m, a, o: None)
    return net


def test_every_function_leaves_the_model_as_found():
    data = shape_pairs(30, 16, seed=0)
    train, test = data.split(20)
    calls = [
        lambda net: saturation(net, test),
        lambda net: probes(net, train, test),
        lambda net: effective_field(net, "3", input_size=16, samples=2),
        lambda net: effective_field(net, "3", input_size=16, samples=2, weights="positive"),
        lambda net: measure(net, train, test, 16),
    ]
    for call in calls:
        net = _awkward_model()
        before = _snapshot(net)
        call(net)
        _assert_same(net, before)


def test_model_is_restored_after_a_failure():
    net = _awkward_model()

    def fail(module, args):
        raise RuntimeError("Calculated output size: (0x0). Output size is too small\nmore text")

    net[5].register_forward_pre_hook(fail)  # the last convolution cannot run
    before = _snapshot(net)
    with pytest.raises(ResolutionError, match="cannot run on images of 16x16 pixels: Calculated output"):
        saturation(net, torch.randn(2, 3, 16, 16), layers=["3", "5"])
    with pytest.raises(ResolutionError, match="cannot run"):
        effective_field(net, "5", input_size=16)
    with pytest.raises(ResolutionError, match="cannot run"):
        effective_field(net, "5", input_size=16, weights="random")  # the failure inside the copy
    _assert_same(net, before)


# -- bad input ------------------------------------------------------------------------------------------


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_bad_input_gives_clear_one_line_errors():
    net = _small_net()
    data = shape_pairs(20, 16, seed=0)
    with pytest.raises(DataError) as err:
        saturation(net, np.zeros((0, 3, 16, 16), np.float32))
    assert "empty" in _one_line(err)
    with pytest.raises(DataError) as err:
        saturation(net, np.zeros((2, 1, 16, 16), np.float32))
    assert "1 channels but the model's first convolution expects 3" in _one_line(err)
    with pytest.raises(DataError) as err:
        measure(net, data, shape_pairs(20, 32, seed=0), 16)
    assert "test has images of 32x32 pixels, expected 16x16" in _one_line(err)
    with pytest.raises(GraphError) as err:
        probes(net, data, data, layers=["7.conv"])
    assert "no module named '7.conv' in Sequential" in _one_line(err)
    with pytest.raises(DataError) as err:
        probes(net, data.images, data)
    assert "train must be an ImageSet or an (images, labels) pair" in _one_line(err)
    with pytest.raises(DataError):
        saturation(net, np.zeros((3, 16, 16), np.float32))
    alexnet = torchvision.models.alexnet(num_classes=10)
    with pytest.raises(ResolutionError) as err:
        saturation(alexnet, torch.zeros(1, 3, 16, 16), layers=["features.10"])
    assert "AlexNet cannot run on images of 16x16 pixels" in _one_line(err)


# -- measure, the JSON export and the figure ------------------------------------------------------------


def test_measure_joins_the_analysis_and_round_trips_through_json():
    net = _small_net()
    data = shape_pairs(60, 16, seed=2)
    train, test = data.split(40)
    result = measure(net, train, test, 16, meta={"note": "tiny"})
    analysis = rfw.analyze(net, 16)
    assert [layer.name for layer in result.layers] == ["0", "3", "5"]
    assert result.border_layer == analysis.border_layer
    assert result.border_layer in ("4", "5")  # the ReLU before it under verdicts v1, the conv under v2
    assert result.layer("5").status == "unproductive"
    assert result.layer("3").r_min == analysis.layer("3").r_min
    assert result.layer("3").feature_map == (4, 4)
    assert result.model_accuracy is not None
    assert 0 <= result.model_accuracy <= 1
    for layer in result.layers:
        assert layer.saturation is not None
        assert 0 < layer.saturation <= 1
        assert layer.probe_test is not None
        assert 0 <= layer.probe_test <= 1
    # saturation agrees with the standalone function on the same test images
    assert result.layer("3").saturation == saturation(net, test, ["3"])["3"].saturation
    back = EvidenceResult.from_json(result.to_json())
    assert back == result
    assert back.meta == {"note": "tiny"}
    assert set(result.curves()["3"]) == {"saturation", "probe"}
    assert f"border layer {result.border_layer}," in repr(result)
    with pytest.raises(DataError, match="evidence_schema"):
        EvidenceResult.from_dict({"model": "x"})


def test_plot_evidence_draws_the_papers_figure():
    net = _small_net()
    data = shape_pairs(40, 16, seed=3)
    train, test = data.split(30)
    result = measure(net, train, test, 16)
    view = plot_evidence(result, baseline=result)
    artists = view.artists
    assert list(artists["saturation"].get_xdata()) == [1, 2, 3]
    assert list(artists["saturation"].get_ydata()) == [layer.saturation for layer in result.layers]
    assert list(artists["r_min"].get_ydata()) == [layer.r_min[0] for layer in result.layers]
    assert artists["border"].get_xdata()[0] == pytest.approx(2.5)  # before layer 3 of 3
    assert len(artists["unproductive"]) == 1
    assert artists["accuracy"].get_ydata()[0] == pytest.approx(result.model_accuracy)
    assert [t.get_text() for t in view.ax.get_xticklabels()] == ["0", "3", "5"]
    view.figure.canvas.draw()


def test_evidence_is_reachable_lazily_from_the_package():
    assert rfw.evidence.measure is measure


# -- data -----------------------------------------------------------------------------------------------


def test_shape_pairs_is_seeded_balanced_and_scales():
    a = shape_pairs(50, 32, seed=4)
    b = shape_pairs(50, 32, seed=4)
    assert np.array_equal(a.images, b.images)
    assert np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, shape_pairs(50, 32, seed=5).images)
    assert a.images.shape == (50, 3, 32, 32)
    assert a.images.dtype == np.float32
    assert a.images.min() >= 0
    assert a.images.max() <= 1
    assert np.bincount(a.labels, minlength=10).tolist() == [5] * 10
    assert len(SHAPE_PAIR_CLASSES) == 10
    assert shape_pairs(3, 48, seed=0).images.shape == (3, 3, 48, 48)
    with pytest.raises(DataError, match="at least 16"):
        shape_pairs(3, 8)
    with pytest.raises(DataError, match="positive number"):
        shape_pairs(0)


def test_shape_pair_arrangement_is_in_the_image():
    # The two shapes are one colour: along the pair's axis the colour's mass has two separated peaks.
    data = shape_pairs(200, 64, seed=6)
    spread = []
    for image, label in zip(data.images, data.labels, strict=True):
        grey = image.max(axis=0)
        mask = grey >= np.quantile(grey, 0.9)
        ys, xs = np.nonzero(mask)
        spread.append((np.std(xs) > np.std(ys)) == (label < 5))
    assert np.mean(spread) > 0.8  # side-by-side pairs spread along x, stacked ones along y


def test_cifar10_loader_reads_local_batches_and_names_missing_files(tmp_path):
    with pytest.raises(DataError, match=r"missing data_batch_1.*never downloads"):
        load_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump({b"data": pixels, b"labels": [3, 1, 4, 1]}, handle)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, handle)
    data = load_cifar10(tmp_path, train=False)
    assert data.images.shape == (4, 3, 32, 32)
    assert data.labels.tolist() == [3, 1, 4, 1]
    assert data.classes[3] == "c3"
    assert data.images[0, 0, 0, 1] == pytest.approx(pixels[0, 1] / 255)  # row-major red plane first


def test_image_folder_loader(tmp_path):
    from PIL import Image

    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "none", 8)
    for name, colour in (("cats", (255, 0, 0)), ("dogs", (0, 0, 255))):
        (tmp_path / name).mkdir()
        Image.new("RGB", (20, 10), colour).save(tmp_path / name / "a.png")
    data = load_image_folder(tmp_path, 8)
    assert data.classes == ("cats", "dogs")
    assert data.images.shape == (2, 3, 8, 8)
    assert data.labels.tolist() == [0, 1]
    assert data.images[0, 0].mean() == pytest.approx(1.0)
    assert data.images[1, 2].mean() == pytest.approx(1.0)


def test_train_classifier_learns_a_separable_problem():
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(120) % 3
    x = torch.randn(120, 3, 8, 8, generator=generator) * 0.2
    x[torch.arange(120), labels] += 1.0
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)
    )
    history = train_classifier(net, (x, labels), 15, batch_size=16, lr=1e-2)
    assert len(history) == 15
    assert not net.training
    assert history[-1]["loss"] < history[0]["loss"]
    from rf_widgets.evidence import accuracy

    assert accuracy(net, (x, labels)) > 0.9
