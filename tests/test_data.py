"""Offline sample images, example stacks, and the guarded decoder for uploaded images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import rf_widgets as rfw
from rf_widgets.data import SAMPLE_IMAGES, example_stacks, load_image, sample_image


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _noise(size: tuple[int, int] = (64, 48)) -> Image.Image:
    """Random pixels compress badly, so truncating the file cuts into the image data."""
    width, height = size
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))


# -- samples ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLE_IMAGES)
def test_sample_images_are_rgb_uint8(name):
    image = sample_image(name)
    assert image.dtype == np.uint8
    assert image.ndim == 3
    assert image.shape[2] == 3
    assert image.std() > 10  # not blank
    if name != "grace_hopper":
        assert image.shape == (512, 512, 3)


def test_sample_images_are_fresh_copies():
    image = sample_image("checkerboard")
    image[:] = 0
    assert sample_image("checkerboard").max() > 0


def test_unknown_sample_names_the_choices():
    with pytest.raises(rfw.RFError, match="grace_hopper, checkerboard, rings"):
        sample_image("lena")


def test_example_stacks_analyse():
    stacks = example_stacks()
    assert set(stacks) == {"vgg-like", "resnet-like", "dilated", "inception-like"}
    for name, stack in stacks.items():
        assert stack.name == name
        assert rfw.analyze(stack, 64).layers
    resnet = rfw.analyze(stacks["resnet-like"], 64)
    assert resnet.layer("block1.add").r_min < resnet.layer("block1.add").r_max
    # Dilations 2, 4, 8 after a 3x3: r = 3 + 4 + 8 + 16.
    assert rfw.analyze(stacks["dilated"], 64).layer("dilated8").r_max == (31, 31)
    assert rfw.analyze(stacks["inception-like"], 64).layer("mixed").r_max == (11, 11)


# -- load_image ---------------------------------------------------------------------------------------


def test_load_png_and_jpeg():
    noise = _noise()
    png = load_image(_encode(noise, "PNG"))
    assert png.dtype == np.uint8
    assert png.shape == (48, 64, 3)
    assert np.array_equal(png, np.asarray(noise))
    jpeg = load_image(_encode(noise, "JPEG", quality=95))
    assert jpeg.dtype == np.uint8
    assert jpeg.shape == (48, 64, 3)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("L", (5, 4), 200), [200, 200, 200]),
        (Image.new("RGBA", (5, 4), (255, 0, 0, 0)), [255, 255, 255]),  # transparent -> white
        (Image.new("RGBA", (5, 4), (255, 0, 0, 255)), [255, 0, 0]),
        (Image.new("RGB", (5, 4), (10, 20, 30)).convert("P", palette=Image.Palette.ADAPTIVE), [10, 20, 30]),
        (Image.fromarray(np.full((4, 5), 65535, dtype=np.uint16)), [255, 255, 255]),  # 16-bit grey
    ],
)
def test_modes_become_rgb(image, expected):
    decoded = load_image(_encode(image, "PNG"))
    assert decoded.shape == (4, 5, 3)
    assert decoded.dtype == np.uint8
    assert decoded[0, 0].tolist() == expected


def test_non_image_bytes_are_rejected():
    with pytest.raises(rfw.RFError, match="not an image"):
        load_image(b"hello, this is a text file")
    with pytest.raises(rfw.RFError, match="bytes"):
        load_image("picture.png")  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_rejected(fmt):
    data = _encode(_noise(), fmt)
    with pytest.raises(rfw.RFError, match=f"{fmt} file is truncated or corrupt"):
        load_image(data[: len(data) // 2])


def test_corrupt_data_is_rejected():
    data = bytearray(_encode(_noise(), "PNG"))
    data[100:200] = bytes(100)  # zeroed image data: the checksum no longer matches
    with pytest.raises(rfw.RFError, match="truncated or corrupt"):
        load_image(bytes(data))


def test_oversize_images_are_rejected_before_decoding():
    data = _encode(Image.new("RGB", (100, 80)), "PNG")
    with pytest.raises(rfw.RFError, match=r"100x80 = 8,000 pixels, at most 5,000"):
        load_image(data, max_pixels=5_000)
    assert load_image(data, max_pixels=8_000).shape == (80, 100, 3)


def test_pil_decompression_bomb_becomes_rf_error(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    with pytest.raises(rfw.RFError, match="too large"):
        load_image(_encode(Image.new("RGB", (100, 80)), "PNG"))
