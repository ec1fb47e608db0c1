"""Image data for the evidence experiments: a procedural set that needs spatial context, and local files.

:func:`shape_pairs` draws a seeded 10-class set at any size in numpy, with no files and no network.
Each image holds two copies of one shape on a cluttered background; the class is the shape (disk, square,
triangle, cross, ring) together with how the pair is arranged (side by side or one above the other).
Telling the shape needs a neighbourhood about one shape wide; telling the arrangement needs both shapes,
which sit about half the image apart, so a network must integrate context over a large share of the input.
All lengths scale with the image, so at 64 px a layer needs twice the receptive field it needs at 32 px.

:func:`load_cifar10` reads the CIFAR-10 "python version" batches and :func:`load_image_folder` reads a
folder with one sub-folder per class, both from files the user already has. Nothing is downloaded: a
missing file is a :class:`~rf_widgets.errors.DataError` that says what to put where.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rf_widgets.errors import DataError, shown

__all__ = ["SHAPE_PAIR_CLASSES", "ImageSet", "load_cifar10", "load_image_folder", "shape_pairs"]

_SHAPES = ("disk", "square", "triangle", "cross", "ring")
_ARRANGEMENTS = ("side by side", "stacked")
SHAPE_PAIR_CLASSES = tuple(f"{shape}, {how}" for how in _ARRANGEMENTS for shape in _SHAPES)
"""Class names of :func:`shape_pairs`, in label order."""

_SUPERSAMPLE = 2
_CHUNK = 256


@dataclass(frozen=True)
class ImageSet:
    """Images and labels, ready for a network.

    ``images`` is float32 of shape (N, C, H, W) with values in [0, 1]; ``labels`` is int64 of shape (N,).
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or len(self.images) != len(self.labels):
            raise DataError(
                f"an ImageSet needs images of shape (N, C, H, W) and N labels, got {self.images.shape} "
                f"and {len(self.labels)} labels"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def split(self, n: int) -> tuple[ImageSet, ImageSet]:
        """The first ``n`` images and the rest."""
        return (
            ImageSet(self.images[:n], self.labels[:n], self.classes),
            ImageSet(self.images[n:], self.labels[n:], self.classes),
        )


def shape_pairs(n: int, size: int = 32, *, seed: int = 0) -> ImageSet:
    """``n`` images of ``size`` x ``size`` pixels, 10 balanced classes, reproducible from ``seed``.

    Parameters
    ----------
    n
        Number of images (labels cycle through the 10 classes, then are shuffled).
    size
        Side in pixels (at least 16). Shapes, gaps and clutter scale with it.
    seed
        The same ``(n, size, seed)`` always gives the same images.

    Examples
    --------
    >>> from rf_widgets.evidence import shape_pairs
    >>> data = shape_pairs(20, 32, seed=1)
    >>> data.images.shape, data.labels[:5].tolist()
    ((20, 3, 32, 32), [1, 0, 8, 6, 7])
    """
    if not isinstance(n, int) or n < 1:
        raise DataError(f"shape_pairs needs a positive number of images, got n={n!r}")
    if not isinstance(size, int) or size < 16:
        raise DataError(f"shape_pairs needs an image size of at least 16 pixels, got size={size!r}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(SHAPE_PAIR_CLASSES)).astype(np.int64)
    images = np.empty((n, 3, size, size), np.float32)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        images[start:stop] = _draw(labels[start:stop], size, rng)
    return ImageSet(images, labels, SHAPE_PAIR_CLASSES)


def _draw(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A chunk of images, drawn at ``_SUPERSAMPLE`` times the size and averaged down (anti-aliasing)."""
    m = len(labels)
    big = size * _SUPERSAMPLE
    # Coordinates in units of the image side, so every length below is a fraction of the image.
    axis = (np.arange(big) + 0.5) / big
    y, x = axis[None, :, None], axis[None, None, :]

    canvas = _background(m, big, rng)
    _clutter(canvas, x, y, rng)

    shape = labels % len(_SHAPES)
    stacked = labels >= len(_SHAPES)
    radius = rng.uniform(0.09, 0.12, m)
    gap = rng.uniform(0.42, 0.52, m)  # distance between the two centres
    # The pair's midpoint, kept so that both shapes lie inside the image.
    half = gap / 2 + radius
    along = rng.uniform(half, 1 - half)
    across = rng.uniform(radius + 0.02, 1 - radius - 0.02)
    jitter = rng.uniform(-0.04, 0.04, m)  # the pair is not perfectly aligned
    mid_x = np.where(stacked, across, along)
    mid_y = np.where(stacked, along, across)
    dx = np.where(stacked, jitter, gap / 2)
    dy = np.where(stacked, gap / 2, jitter)
    colour = rng.uniform(0.0, 1.0, (m, 3))
    colour[np.arange(m), rng.integers(0, 3, m)] = rng.uniform(0.85, 1.0, m)  # one strong channel
    for sign in (-1.0, 1.0):
        angle = rng.uniform(-0.35, 0.35, m)
        mask = _shape_masks(shape, mid_x + sign * dx, mid_y + sign * dy, radius, angle, x, y)
        canvas = np.where(mask[:, None], colour[:, :, None, None], canvas)
    noise = rng.normal(0.0, 0.04, canvas.shape)
    canvas = np.clip(canvas + noise, 0.0, 1.0)
    k = _SUPERSAMPLE
    return canvas.reshape(m, 3, size, k, size, k).mean(axis=(3, 5)).astype(np.float32)


def _background(m: int, big: int, rng: np.random.Generator) -> np.ndarray:
    """A dim random colour plus a random linear gradient per image."""
    base = rng.uniform(0.05, 0.45, (m, 3, 1, 1))
    ramp = np.linspace(-0.5, 0.5, big)
    gx = rng.uniform(-0.2, 0.2, (m, 3, 1, 1)) * ramp[None, None, None, :]
    gy = rng.uniform(-0.2, 0.2, (m, 3, 1, 1)) * ramp[None, None, :, None]
    return np.clip(base + gx + gy, 0.0, 1.0)


def _clutter(canvas: np.ndarray, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> None:
    """Small blobs and thin bars in random colours: texture that a shape detector must ignore."""
    m = canvas.shape[0]
    for _ in range(6):
        cx, cy = rng.uniform(0, 1, (m, 1, 1)), rng.uniform(0, 1, (m, 1, 1))
        r = rng.uniform(0.02, 0.05, (m, 1, 1))
        blob = (x - cx) ** 2 + (y - cy) ** 2 < r**2
        colour = rng.uniform(0.0, 0.9, (m, 3, 1, 1))
        canvas[:] = np.where(blob[:, None], colour, canvas)
    for _ in range(3):
        cx, cy = rng.uniform(0, 1, (m, 1, 1)), rng.uniform(0, 1, (m, 1, 1))
        theta = rng.uniform(0, np.pi, (m, 1, 1))
        u = (x - cx) * np.cos(theta) + (y - cy) * np.sin(theta)
        v = -(x - cx) * np.sin(theta) + (y - cy) * np.cos(theta)
        bar = (np.abs(u) < rng.uniform(0.08, 0.2, (m, 1, 1))) & (np.abs(v) < 0.012)
        colour = rng.uniform(0.0, 0.9, (m, 3, 1, 1))
        canvas[:] = np.where(bar[:, None], colour, canvas)


def _shape_masks(
    shape: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    radius: np.ndarray,
    angle: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
) -> np.ndarray:
    """Boolean masks (m, H, W): every shape is computed for the chunk and the wanted one picked."""
    col = (slice(None), None, None)
    r = radius[col]
    c, s = np.cos(angle)[col], np.sin(angle)[col]
    u = ((x - cx[col]) * c + (y - cy[col]) * s) / r
    v = (-(x - cx[col]) * s + (y - cy[col]) * c) / r
    dist = np.hypot(u, v)
    disk = dist < 1.0
    square = np.maximum(np.abs(u), np.abs(v)) < 0.85
    # An upward triangle with its centroid at the centre: three half-planes.
    triangle = (v < 0.6) & (np.sqrt(3) * u - v < 1.2) & (-np.sqrt(3) * u - v < 1.2)
    cross = (np.minimum(np.abs(u), np.abs(v)) < 0.3) & (np.maximum(np.abs(u), np.abs(v)) < 1.0)
    ring = (dist < 1.0) & (dist > 0.6)
    masks = np.stack([disk, square, triangle, cross, ring])
    return masks[shape, np.arange(len(shape))]


# -- files the user has ---------------------------------------------------------------------------------


def load_cifar10(root: str | Path, *, train: bool = True, limit: int | None = None) -> ImageSet:
    """CIFAR-10 from the "python version" batches already on disk (nothing is downloaded).

    Parameters
    ----------
    root
        The folder ``cifar-10-batches-py`` (as unpacked from ``cifar-10-python.tar.gz``) or its parent.
    train
        ``data_batch_1`` ... ``data_batch_5`` (50,000 images) when True, ``test_batch`` (10,000) otherwise.
    limit
        Keep only the first ``limit`` images.
    """
    folder = Path(root)
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"CIFAR-10 batches not found in '{folder}' (missing {', '.join(missing)}): unpack "
            "cifar-10-python.tar.gz there; rf_widgets never downloads data"
        )
    images, labels = [], []
    for name in names:
        data, batch_labels = _cifar_batch(folder / name)
        images.append(data)
        labels.append(batch_labels)
        if limit is not None and sum(len(a) for a in labels) >= limit:
            break
    classes: tuple[str, ...] = tuple(f"class {i}" for i in range(10))
    meta = folder / "batches.meta"
    if meta.is_file():
        meta_read = _unpickle(meta)
        names_read = meta_read.get(b"label_names") if isinstance(meta_read, dict) else None
        if (
            not isinstance(names_read, list)
            or len(names_read) != 10
            or not all(isinstance(c, bytes) and len(c) <= 100 for c in names_read)
        ):
            raise DataError(f"'{meta}' is not a CIFAR-10 batches.meta file (label_names: ten names)")
        classes = tuple(c.decode("utf-8", "replace") for c in names_read)
    all_images = np.concatenate(images)[:limit].astype(np.float32) / 255.0
    return ImageSet(all_images, np.concatenate(labels)[:limit], classes)


MAX_CIFAR_BYTES = 64 * 2**20
"""The largest CIFAR batch file read (the real ones are 31 MB)."""

_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}
"""What a CIFAR batch pickle may name: numpy's array reconstruction (the data), nothing else."""


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles only dicts, lists, bytes, numbers and numpy arrays: any other global (a function to
    call, a class to build) is refused before it is looked up, so a crafted file runs no code."""

    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_GLOBALS:
            raise DataError(
                f"'{self.path}' is not a CIFAR-10 batch: it names {shown(module + '.' + name, 60)}, and "
                "batches are read with numpy arrays only (no code runs from data)"
            )
        if name == "_reconstruct":
            return _reconstruct
        if name == "encode":
            return _latin1
        return super().find_class(module, name)


def _latin1(text: Any, encoding: Any = "utf-8") -> bytes:
    """How protocol-2 pickles written by Python 3 spell bytes: ``_codecs.encode(text, 'latin1')``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise DataError("a CIFAR-10 batch spells bytes as latin-1 text only")
    return text.encode("latin-1")


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> Any:
    """numpy's pickle helper, for a plain ndarray of at most MAX_CIFAR_BYTES."""

    if subtype is not np.ndarray or not isinstance(shape, tuple) or len(shape) > 8:
        raise DataError("a CIFAR-10 batch holds plain numpy arrays only")
    count = 1
    for n in shape:
        count *= int(n)
    if count * np.dtype(dtype).itemsize > MAX_CIFAR_BYTES:
        raise DataError(
            f"a CIFAR-10 batch array larger than {MAX_CIFAR_BYTES // 2**20} MiB (MAX_CIFAR_BYTES)"
        )
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _unpickle(path: Path) -> Any:
    from rf_widgets.stackfile import read_regular

    raw = read_regular(path, MAX_CIFAR_BYTES, "CIFAR-10 batch", DataError)
    if len(raw) > MAX_CIFAR_BYTES:
        raise DataError(f"'{path}' is larger than {MAX_CIFAR_BYTES // 2**20} MiB (MAX_CIFAR_BYTES)")
    try:
        return _BatchUnpickler(io.BytesIO(raw), path).load()
    except DataError:
        raise
    except Exception as err:  # truncated or malformed pickles raise many kinds of errors
        raise DataError(f"'{path}' is not a readable CIFAR-10 batch ({type(err).__name__})") from None


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) of one batch, checked against the format."""
    batch = _unpickle(path)
    data = batch.get(b"data") if isinstance(batch, dict) else None
    labels = batch.get(b"labels") if isinstance(batch, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"'{path}' is not a CIFAR-10 batch (b'data' must be a uint8 array of N x 3072)")
    if (
        not isinstance(labels, list)
        or len(labels) != len(data)
        or not all(type(v) is int and 0 <= v < 10 for v in labels)
    ):
        raise DataError(f"'{path}' is not a CIFAR-10 batch (b'labels' must be {len(data)} ints from 0 to 9)")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, np.int64)


def load_image_folder(root: str | Path, size: int, *, limit_per_class: int | None = None) -> ImageSet:
    """Images from ``root/<class name>/*.png|jpg|...``, resized to ``size`` x ``size`` RGB.

    Classes are the sub-folder names in sorted order. Needs Pillow (a matplotlib dependency).
    """
    from PIL import Image

    folder = Path(root)
    if not folder.is_dir():
        raise DataError(f"image folder '{folder}' does not exist")
    suffixes = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"image folder '{folder}' has no sub-folders: put each class in its own sub-folder")
    images, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in suffixes)
        for path in files[:limit_per_class]:
            with Image.open(path) as image:
                rgb = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            images.append(np.asarray(rgb, np.float32).transpose(2, 0, 1) / 255.0)
            labels.append(label)
    if not images:
        raise DataError(f"no images ({', '.join(sorted(suffixes))}) found under '{folder}'")
    return ImageSet(np.stack(images), np.asarray(labels, np.int64), tuple(classes))
