"""Offline sample images, example layer stacks, and a guarded image decoder for uploads.

Nothing here touches the network: ``grace_hopper`` ships with matplotlib, ``checkerboard`` and ``rings``
are generated with numpy. :func:`load_image` decodes untrusted bytes (an upload) and fails with an
:class:`~rf_widgets.errors.RFError` that says what is wrong instead of a PIL traceback.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from rf_widgets.core.graph import Stack
from rf_widgets.core.layers import add, concat, conv, elementwise, global_pool, pool
from rf_widgets.errors import RFError

__all__ = ["SAMPLE_IMAGES", "example_stacks", "load_image", "sample_image"]

SAMPLE_IMAGES = ("grace_hopper", "checkerboard", "rings")
"""Names accepted by :func:`sample_image`."""

DEFAULT_MAX_PIXELS = 16_000_000
"""The largest upload decoded (4000 x 4000): its RGB copy and the decoder's own buffers stay near
150 MB; the header is read first, so a larger image is refused before any pixel is decoded."""
ACCEPTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
_GENERATED_SIZE = 512


# -- sample images ------------------------------------------------------------------------------------


def _grace_hopper() -> np.ndarray:
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
        return np.asarray(image.convert("RGB"))


def _checkerboard() -> np.ndarray:
    """8x8 squares of 64 pixels: sharp edges make the box positions easy to read."""
    index = np.arange(_GENERATED_SIZE) // (_GENERATED_SIZE // 8)
    board = (index[:, None] + index[None, :]) % 2
    grey = np.where(board == 1, 230, 40).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def _rings() -> np.ndarray:
    """Concentric rings whose spacing grows outwards, tinted by angle, so a box's position is visible."""
    coords = np.arange(_GENERATED_SIZE) - (_GENERATED_SIZE - 1) / 2
    y, x = np.meshgrid(coords, coords, indexing="ij")
    radius = np.hypot(x, y)
    angle = np.arctan2(y, x)
    shade = 0.5 + 0.5 * np.cos(2 * np.pi * np.sqrt(radius) / 2.5)
    red = shade * (0.6 + 0.4 * np.cos(angle))
    green = shade * (0.6 + 0.4 * np.cos(angle - 2 * np.pi / 3))
    blue = shade * (0.6 + 0.4 * np.cos(angle + 2 * np.pi / 3))
    return np.round(np.stack([red, green, blue], axis=2) * 255).astype(np.uint8)


_GENERATORS: dict[str, Callable[[], np.ndarray]] = {
    "grace_hopper": _grace_hopper,
    "checkerboard": _checkerboard,
    "rings": _rings,
}


def sample_image(name: str) -> np.ndarray:
    """A built-in sample image as an HxWx3 uint8 array (a fresh copy each call).

    Parameters
    ----------
    name
        One of :data:`SAMPLE_IMAGES`: ``"grace_hopper"`` (a photograph shipped with matplotlib),
        ``"checkerboard"`` or ``"rings"`` (512x512, generated).

    Examples
    --------
    >>> sample_image("checkerboard").shape
    (512, 512, 3)
    """
    try:
        make = _GENERATORS[name]
    except (KeyError, TypeError):
        raise RFError(f"sample image must be one of {', '.join(SAMPLE_IMAGES)}, got {name!r}") from None
    return np.array(make(), dtype=np.uint8)


# -- example stacks -----------------------------------------------------------------------------------


def _vgg_like() -> Stack:
    layers = []
    for block, convs in enumerate((2, 2, 3), start=1):
        for i in range(1, convs + 1):
            layers.append(conv(f"block{block}.conv{i}", 3, padding=1))
            layers.append(elementwise(f"block{block}.relu{i}"))
        layers.append(pool(f"block{block}.pool", 2))
    layers.append(global_pool("gap"))
    return Stack(layers, name="vgg-like")


def _residual_block(name: str, source: str, stride: int) -> list[Any]:
    """Two 3x3 convs plus a skip path (a strided 1x1 conv when the block downsamples)."""
    layers = [
        conv(f"{name}.conv1", 3, stride=stride, padding=1, inputs=source),
        elementwise(f"{name}.relu1"),
        conv(f"{name}.conv2", 3, padding=1),
    ]
    skip = source
    if stride > 1:
        layers.append(conv(f"{name}.down", 1, stride=stride, inputs=source))
        skip = f"{name}.down"
    layers.append(add(f"{name}.add", [f"{name}.conv2", skip]))
    layers.append(elementwise(f"{name}.relu2"))
    return layers


def _resnet_like() -> Stack:
    layers = [
        conv("stem", 7, stride=2, padding=3),
        elementwise("stem.relu"),
        pool("stem.pool", 3, 2, padding=1),
    ]
    layers += _residual_block("block1", "stem.pool", 1)
    layers += _residual_block("block2", "block1.relu2", 2)
    layers += _residual_block("block3", "block2.relu2", 2)
    layers.append(global_pool("gap", inputs="block3.relu2"))
    return Stack(layers, name="resnet-like")


def _dilated() -> Stack:
    layers = [conv("conv1", 3, padding=1)]
    for rate in (2, 4, 8):
        layers.append(conv(f"dilated{rate}", 3, dilation=rate, padding=rate))
    layers.append(conv("head", 1))
    return Stack(layers, name="dilated")


def _inception_like() -> Stack:
    layers = [
        conv("stem", 3, stride=2, padding=1),
        conv("branch1x1", 1, inputs="stem"),
        conv("branch3x3", 3, padding=1, inputs="stem"),
        conv("branch5x5.reduce", 1, inputs="stem"),
        conv("branch5x5", 5, padding=2),
        pool("branch_pool", 3, 1, padding=1, inputs="stem"),
        concat("mixed", ["branch1x1", "branch3x3", "branch5x5", "branch_pool"]),
        pool("pool", 2),
        global_pool("gap"),
    ]
    return Stack(layers, name="inception-like")


def example_stacks() -> dict[str, Stack]:
    """Small declared networks for demos and tests, keyed by name.

    ``"vgg-like"`` (plain 3x3 convs and pools), ``"resnet-like"`` (residual blocks with 1x1 strided
    skips), ``"dilated"`` (dilation 2, 4, 8) and ``"inception-like"`` (four parallel branches joined by a
    concatenation).

    Examples
    --------
    >>> import rf_widgets as rfw
    >>> stacks = example_stacks()
    >>> rfw.analyze(stacks["dilated"], 64).layer("dilated8").r_max
    (31, 31)
    """
    builders = (_vgg_like, _resnet_like, _dilated, _inception_like)
    return {stack.name: stack for stack in (build() for build in builders)}


# -- decoding uploads ---------------------------------------------------------------------------------


def load_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode PNG/JPEG (also GIF, BMP, WebP) bytes into an HxWx3 uint8 array.

    The header is read first, so an image above ``max_pixels`` is rejected before it is decoded.
    Greyscale, palette and 16-bit images become RGB; transparency is composited on white; a JPEG's
    EXIF orientation is applied.

    Parameters
    ----------
    data
        The file's bytes.
    max_pixels
        The largest accepted width x height.

    Raises
    ------
    RFError
        For bytes that are not an image, a truncated or corrupt file, or an image that is too large.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buffer = io.BytesIO()
    >>> Image.new("L", (4, 3), 200).save(buffer, format="PNG")
    >>> load_image(buffer.getvalue()).shape
    (3, 4, 3)
    """
    from PIL import Image, UnidentifiedImageError

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise RFError(f"load_image() takes the file's bytes, got {type(data).__name__}")
    with warnings.catch_warnings():
        # The pixel limit below is ours; PIL's own warning would only repeat it less clearly.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
        except UnidentifiedImageError:
            raise RFError(
                f"not an image that can be read ({', '.join(ACCEPTED_FORMATS)} are accepted)"
            ) from None
        except Image.DecompressionBombError:
            raise RFError(f"the image is too large (more than {max_pixels:,} pixels)") from None
        with image:
            width, height = image.size
            if width * height > max_pixels:
                raise RFError(
                    f"the image is too large: {width}x{height} = {width * height:,} pixels, "
                    f"at most {max_pixels:,} are accepted"
                )
            try:
                image.load()
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
                raise RFError(f"the {image.format} file is truncated or corrupt ({err})") from None
            return _to_rgb(image)


def _to_rgb(image: Any) -> np.ndarray:
    """RGB uint8 from any PIL mode: 16-bit and float data are scaled, alpha is composited on white."""
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float64)
        scale = 255 / 65535 if values.max() > 255 else 1.0
        grey = np.clip(np.round(values * scale), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)
