"""Hostile data (issue 24): CIFAR batches run no code, the zoo builds only listed models whatever its
cache says, and every size that comes from data (labels, pixels, batch sizes) is checked first.

Each case here failed before its fix: a crafted pickle ran its ``__reduce__``, a poisoned cache built a
model the library does not list, a JSON-list cache crashed every later call, one label of 10**9 sized a
64 GB probe, one NaN pixel raised numpy's LinAlgError, a 7000x7000 1-bit PNG decoded into gigabytes.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rf_widgets as rfw
from rf_widgets.errors import DataError, RFError

# -- CIFAR batches ------------------------------------------------------------------------------------


def _batch(n: int = 20) -> dict[bytes, Any]:
    data = (np.arange(n * 3072) % 251).astype(np.uint8).reshape(n, 3072)
    return {b"batch_label": b"test", b"data": data, b"labels": [i % 10 for i in range(n)]}


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_cifar_batch_is_read(tmp_path: Path, protocol: int) -> None:
    from rf_widgets.evidence.datasets import load_cifar10

    (tmp_path / "test_batch").write_bytes(pickle.dumps(_batch(), protocol=protocol))
    loaded = load_cifar10(tmp_path, train=False)
    assert loaded.images.shape == (20, 3, 32, 32)
    assert loaded.labels.tolist() == [i % 10 for i in range(20)]
    assert loaded.images[1, 0, 0, 0] == pytest.approx((3072 % 251) / 255)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("where", ["data", "labels", "meta"])
def test_a_crafted_cifar_pickle_runs_nothing(tmp_path: Path, where: str) -> None:
    from rf_widgets.evidence.datasets import load_cifar10

    marker = tmp_path / "ran"
    batch = _batch()
    if where == "meta":
        (tmp_path / "batches.meta").write_bytes(pickle.dumps({b"label_names": _Payload(marker)}, protocol=2))
    else:
        batch[f"{where}".encode()] = _Payload(marker)
    (tmp_path / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError) as err:
        load_cifar10(tmp_path, train=False)
    assert "\n" not in str(err.value)
    assert "names '__builtin__.getattr'" in str(err.value)  # how the pickle reaches Path.touch
    assert not marker.exists()


def test_a_cifar_batch_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    from rf_widgets.evidence.datasets import load_cifar10

    os.mkfifo(tmp_path / "test_batch")
    with pytest.raises(DataError, match="test_batch"):  # refused, not read (which would block)
        load_cifar10(tmp_path, train=False)


# -- the zoo cache ------------------------------------------------------------------------------------


@pytest.fixture
def zoo_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    pytest.importorskip("torchvision")
    pytest.importorskip("pandas")
    from rf_widgets import zoo

    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    calls: list[str] = []
    monkeypatch.setattr(zoo, "analyse_model", lambda spec, size: (calls.append(spec), _row(zoo, spec))[1])
    path = zoo._cache_file(zoo.cache_dir(), "torchvision", (32, 32))
    path.parent.mkdir(parents=True)
    return zoo, path, calls


def _row(zoo: Any, spec: str) -> dict[str, Any]:
    row = dict.fromkeys(zoo.COLUMNS)
    row.update(model=spec, source=spec.partition(":")[0], status="ok")
    return row


def _document(zoo: Any, specs: list[str], rows: dict[str, Any]) -> str:
    return json.dumps({"versions": zoo._versions(), "specs": specs, "rows": rows})


@pytest.mark.parametrize("content", ["[1, 2, 3]", "null", "{not json"])
def test_a_zoo_cache_that_is_not_the_table_is_recomputed(zoo_cache: Any, content: str) -> None:
    zoo, path, calls = zoo_cache
    path.write_text(content)
    with pytest.warns(UserWarning, match="set aside"):
        frame = zoo.table(32, models=["resnet18"], progress=False)
    assert calls == ["torchvision:resnet18"]
    assert frame["model"].tolist() == ["torchvision:resnet18"]
    zoo.table(32, models=["resnet18"], progress=False)  # the rewritten cache is read again, silently
    assert calls == ["torchvision:resnet18"]


def test_a_malformed_zoo_row_is_recomputed(zoo_cache: Any) -> None:
    zoo, path, calls = zoo_cache
    specs = zoo.model_specs("torchvision")
    path.write_text(_document(zoo, specs, {"torchvision:resnet18": {"model": 5}}))
    with pytest.warns(UserWarning, match="malformed"):
        zoo.table(32, models=["resnet18"], progress=False)
    assert calls == ["torchvision:resnet18"]


def test_a_zoo_cache_naming_unlisted_models_builds_none_of_them(zoo_cache: Any) -> None:
    zoo, path, calls = zoo_cache
    specs = [*zoo.model_specs("torchvision"), "torchvision:evil_net"]
    path.write_text(_document(zoo, specs, {}))
    with pytest.warns(UserWarning, match="evil_net"), pytest.raises(RFError, match="evil_net"):
        zoo.table(32, models=["evil_net"], progress=False)
    assert calls == []


# -- sizes from data ----------------------------------------------------------------------------------


torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())


def _data(labels: Any) -> tuple[Any, Any]:
    return torch.rand(len(labels), 3, 8, 8), np.asarray(labels)


def test_a_huge_label_is_refused_before_anything_is_allocated() -> None:
    from rf_widgets.evidence import measure, probes

    tracemalloc.start()
    try:
        for call in (
            lambda: probes(_net(), _data([0, 1, 10**9]), _data([0, 1, 1])),
            lambda: measure(_net(), _data([0, 1, 10**9]), _data([0, 1, 1]), input_size=8),
        ):
            with pytest.raises(DataError, match="MAX_CLASSES") as err:
                call()
            assert "1,000,000,000" in str(err.value)
        assert tracemalloc.get_traced_memory()[1] < 50 * 2**20
    finally:
        tracemalloc.stop()


def test_float_labels_are_refused() -> None:
    from rf_widgets.evidence import probes

    with pytest.raises(DataError, match="labels must be whole numbers"):
        probes(_net(), _data([0.0, 1.5, 1.0]), _data([0, 1, 1]))


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, 10**400])
def test_a_batch_size_that_is_not_a_positive_int_is_refused(batch_size: Any) -> None:
    from rf_widgets.evidence import probes, saturation

    for call in (
        lambda: saturation(_net(), torch.rand(4, 3, 8, 8), batch_size=batch_size),
        lambda: probes(_net(), _data([0, 1, 1]), _data([0, 1, 1]), batch_size=batch_size),
    ):
        with pytest.raises(DataError, match="batch_size") as err:
            call()
        assert "\n" not in str(err.value)


def test_one_nan_pixel_is_refused_naming_it() -> None:
    from rf_widgets.evidence import saturation

    images = torch.rand(4, 3, 8, 8)
    images[2, 1, 3, 3] = float("nan")
    with pytest.raises(DataError, match="1 pixels that are NaN"):
        saturation(_net(), images)


@pytest.mark.parametrize(
    "images",
    [
        np.empty((2, 3, 8, 8), dtype=object),
        np.full((2, 3, 8, 8), "a"),
        [[["x"]]],
        np.zeros((2, 3, 8, 8), bool),
    ],
)
def test_images_that_are_not_numbers_are_refused(images: Any) -> None:
    from rf_widgets.evidence import saturation

    with pytest.raises(DataError) as err:
        saturation(_net(), images)
    assert "\n" not in str(err.value)


def test_a_small_png_of_many_pixels_is_refused_from_its_header() -> None:
    from PIL import Image

    from rf_widgets.data import DEFAULT_MAX_PIXELS, load_image

    buffer = io.BytesIO()
    Image.new("1", (7000, 7000), 1).save(buffer, format="PNG")
    assert len(buffer.getvalue()) < 30_000
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(RFError, match=f"at most {DEFAULT_MAX_PIXELS:,}"):
                load_image(buffer.getvalue())
        assert tracemalloc.get_traced_memory()[1] < 10 * 2**20
    finally:
        tracemalloc.stop()


def test_an_image_under_the_pixel_limit_decodes_in_bounded_memory() -> None:
    from PIL import Image

    from rf_widgets.data import load_image

    buffer = io.BytesIO()
    Image.new("1", (4000, 4000), 1).save(buffer, format="PNG")
    tracemalloc.start()
    try:
        assert load_image(buffer.getvalue()).shape == (4000, 4000, 3)
        assert tracemalloc.get_traced_memory()[1] < 200 * 2**20
    finally:
        tracemalloc.stop()


def test_analyze_accepts_rfw_path(tmp_path: Path) -> None:
    stack = rfw.load_stack  # a stack file given as a Path, as an ONNX path already was
    path = tmp_path / "s.yaml"
    path.write_text("layers:\n  - {name: c, type: conv, kernel: 5}\n")
    assert stack(path).layers[0].kernel == (5, 5)
    assert rfw.analyze(path, 16).layer("c").r_max == (5, 5)
