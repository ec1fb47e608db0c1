"""Matplotlib views of an :class:`~rf_widgets.core.results.Analysis`.

Three functions, each taking ``ax=None`` and returning a small view object:

- :func:`plot_growth` -> :class:`GrowthPlot`: ``r_min`` and ``r_max`` layer by layer, the input size, the
  feasible band, the border layer, unproductive and critical layers.
- :func:`draw_unit_field` -> :class:`FieldOverlay`: the boxes one unit sees, drawn on the input image.
- :func:`plot_architecture` -> :class:`ArchitectureStrip`: the network as a strip of cells coloured by
  status, branches in parallel lanes.

Every view builds its artists once and names them in ``.artists``; ``.update(...)`` mutates them in
place (``set_data``, ``set_bounds``, ``set_offsets``), so a widget redraws without rebuilding the figure.
Nothing here imports pyplot: when ``ax`` is None a :class:`~matplotlib.figure.Figure` with an Agg canvas
is created, so ``view.ax.figure.savefig(...)`` works in a plain script.

Drawing choices the specification leaves open:

- **Growth plot.** Values are those of one spatial axis (``axis=0``, the height, by default), and the
  horizontal line is the input size along that axis. Infinite values are left out of the lines; a layer
  whose ``r_max`` is global gets a triangle at the top edge instead. Critical layers are circled on their
  ``r_min`` (the value the verdict uses). Each unproductive layer gets a shaded column. The feasible band
  spans ``resolution_range`` when both ends exist and ``min <= max``; otherwise a note says why it is
  missing.
- **``which="windows"``** keeps the layers whose kernel or stride exceeds 1 on some axis, plus the border
  layer, so that its marker always has a place.
- **Unit overlay.** The image is centre-cropped to the aspect of the analysed input, then resized to it
  with PIL: one image pixel per input pixel, as the network sees it. The view extends beyond the image to
  show the whole ``r_max`` box; the hatched region behind the image is the padding the boxes reach. Unit
  centres are those of the ``r_max`` path; maps larger than 64 units per axis are subsampled.
- **Lanes.** In topological order, a layer takes the lowest lane among its inputs' lanes that is free at
  its column, otherwise the lowest free lane. A lane stays taken from a layer's column up to the column
  of its last consumer, so parallel branches between a fork and a merge get different lanes, and a
  residual block keeps its identity path in the lower lane. Lanes are assigned on the whole network;
  ``which="windows"`` keeps the lanes of the layers it shows (renumbered without gaps) and draws an edge
  from each shown layer to its nearest shown descendants.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, SupportsFloat

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PatchCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter, Locator

from rf_widgets import _format
from rf_widgets.core.graph import NETWORK_INPUT
from rf_widgets.core.results import STATUS_COLOURS, Analysis, Box, LayerResult
from rf_widgets.errors import RFError

__all__ = [
    "ArchitectureStrip",
    "FieldOverlay",
    "GrowthPlot",
    "axis_centres",
    "describe_unit",
    "draw_effective_field",
    "draw_evidence_curves",
    "draw_unit_field",
    "plot_architecture",
    "plot_growth",
]

Which = Literal["all", "windows"]
Unit = int | tuple[int, ...] | None

BORDER_COLOUR = "#b00000"
CRITICAL_COLOUR = "#d98200"
R_MAX_COLOUR = "#d62728"
R_MIN_COLOUR = "#1f77b4"
GLOBAL_COLOUR = "#4a5a8a"
TICK_SPACING_POINTS = 9  # one 7-point rotated label per 9 points of axis length
MAX_CENTRES_PER_AXIS = 64
CELL_HALF = 0.4


# -- shared helpers -----------------------------------------------------------------------------------


def _axes_or_new(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """``ax`` itself, or the axes of a new pyplot-free figure with an Agg canvas."""
    if ax is not None:
        return ax
    figure = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(figure)
    return figure.add_subplot()


def _is_window(layer: LayerResult) -> bool:
    return any(k > 1 for k in layer.kernel or ()) or any(s > 1 for s in layer.stride or ())


def _shown_layers(result: Analysis, which: str) -> list[LayerResult]:
    """The layers a view draws, in topological order."""
    if which == "all":
        return list(result.layers)
    if which != "windows":
        raise RFError(f"which must be 'all' or 'windows', got {which!r}")
    return [layer for layer in result.layers if _is_window(layer) or layer.name == result.border_layer]


class _LayerTicks(Locator):
    """One tick per layer, thinned at draw time so that the rotated names do not overlap."""

    def __init__(self, ax: Axes, names: Sequence[str]) -> None:
        self.ax = ax
        self.names = list(names)

    def __call__(self) -> list[float]:
        count = len(self.names)
        figure = self.ax.get_figure(root=True)
        points = self.ax.bbox.width * 72 / (figure.dpi if figure is not None else 72.0)
        step = max(1, math.ceil(count / max(1, int(points / TICK_SPACING_POINTS))))
        return list(range(0, count, step))

    def label(self, value: float, _position: int | None = None) -> str:
        index = round(value)
        return self.names[index] if 0 <= index < len(self.names) and index == value else ""


def _set_layer_ticks(ax: Axes, names: Sequence[str]) -> None:
    """Name the layers along x (one per position) and show exactly their columns."""
    ticks = _LayerTicks(ax, names)
    ax.xaxis.set_major_locator(ticks)
    ax.xaxis.set_major_formatter(FuncFormatter(ticks.label))
    ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    ax.set_xlim(-0.5, max(len(names), 1) - 0.5)


def _finite(value: SupportsFloat) -> float:
    return float(value) if value != math.inf else math.nan


def _check_axis(result: Analysis, axis: int) -> None:
    if not 0 <= axis < len(result.input_size):
        raise RFError(f"axis must be between 0 and {len(result.input_size) - 1}, got {axis}")


# -- growth -------------------------------------------------------------------------------------------


class GrowthPlot:
    """``r_min``/``r_max`` per layer with the verdicts; built by :func:`plot_growth`.

    ``artists`` names: ``r_max``, ``r_min``, ``critical``, ``global`` (lines), ``resolution`` (the
    input-size line) and ``resolution_label``, ``band`` (feasible sizes), ``note``, ``unproductive``
    (one shaded column per unproductive layer), ``border`` and ``border_label``, ``legend``.
    """

    def __init__(self, ax: Axes, result: Analysis, *, log: bool, which: Which, axis: int) -> None:
        self.ax = ax
        self.which = which
        self.axis = axis
        self.layer_names: tuple[str, ...] = ()
        self._ylim: tuple[float, float] | None = None  # the y-limits last set (linear scale)
        ax.set_yscale("log" if log else "linear")
        ax.set_ymargin(0.08)
        self.artists: dict[str, Any] = self._build()
        self.update(result)

    def _build(self) -> dict[str, Any]:
        ax = self.ax
        top = ax.get_xaxis_transform()  # x in data, y in axes fraction
        right = ax.get_yaxis_transform()  # x in axes fraction, y in data
        unproductive = PolyCollection(
            [], transform=top, facecolor=STATUS_COLOURS["unproductive"], edgecolor="none", zorder=0.5
        )
        unproductive.set_label("unproductive")
        ax.add_collection(unproductive, autolim=False)
        artists: dict[str, Any] = {
            "unproductive": unproductive,
            "band": ax.axhspan(1, 2, color="#8fd18f", alpha=0.3, lw=0, zorder=0.6, label="feasible size"),
            "resolution": ax.axhline(1, color="black", ls="--", lw=1, zorder=2, label="input size"),
            "resolution_label": ax.text(
                0.995, 1, "", transform=right, ha="right", va="bottom", fontsize=8, zorder=6
            ),
            "r_max": ax.plot([], [], "-", marker=".", color=R_MAX_COLOUR, lw=1.5, zorder=3, label="r_max")[0],
            "r_min": ax.plot([], [], "-", marker=".", color=R_MIN_COLOUR, lw=1.5, zorder=3, label="r_min")[0],
            "critical": ax.plot(
                [], [], "o", mfc="none", mec=CRITICAL_COLOUR, mew=2, ms=9, zorder=4, label="critical layer"
            )[0],
            "global": ax.plot(
                [], [], "^", transform=top, color=GLOBAL_COLOUR, ms=6, zorder=4, label="global (whole input)"
            )[0],
            "border": ax.axvline(0, color=BORDER_COLOUR, lw=1.5, zorder=5),
            "border_label": ax.text(
                0, 0.98, "", transform=top, rotation=90, ha="right", va="top", color=BORDER_COLOUR,
                fontsize=8, fontweight="bold", zorder=6,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1},
            ),
            "note": ax.text(0.99, 0.02, "", transform=ax.transAxes, ha="right", va="bottom", fontsize=8),
        }  # fmt: skip
        handles = [artists[k] for k in ("r_max", "r_min", "critical", "global", "resolution", "band")]
        legend = ax.legend(
            handles=[*handles, unproductive], loc="upper left", bbox_to_anchor=(1.005, 1), fontsize=7
        )
        artists["legend"] = legend
        artists["band_label"] = legend.get_texts()[handles.index(artists["band"])]
        ax.set_xlabel("layer (topological order)")
        ax.set_ylabel(f"receptive field (pixels, axis {self.axis})")
        return artists

    def update(self, result: Analysis) -> None:
        """Show ``result`` (another resolution, or another network) in the same artists."""
        _check_axis(result, self.axis)
        layers = _shown_layers(result, self.which)
        names = tuple(layer.name for layer in layers)
        if names != self.layer_names:
            _set_layer_ticks(self.ax, names)
            self.layer_names = names
        self._set_lines(layers)
        self._set_verdicts(result, layers)
        self._set_resolution(result)
        self.ax.relim(visible_only=True)
        self._settle_ylim()
        size = _format.size(result.input_size)
        self.ax.set_title(f"{result.model}: receptive field growth at {size}", fontsize=10)

    def _settle_ylim(self) -> None:
        """Autoscale y, but keep the limits while the data still fills at least half of them.

        The input-size line is part of the data: where it is the tallest thing drawn (a vision
        transformer's fields are global, or the size is past the last field) every new size would
        rescale the axis, and the Explorer would draw the whole figure again at each step of a drag.
        New limits get a quarter of headroom, so the next steps fit.
        """
        ax = self.ax
        low, high = (float(v) for v in ax.dataLim.intervaly)
        kept = self._ylim
        linear = ax.get_yscale() == "linear"
        if (
            linear
            and kept is not None
            and math.isfinite(low)
            and math.isfinite(high)
            and kept[0] <= low
            and high <= kept[1]
            and high - low >= 0.5 * (kept[1] - kept[0])
        ):
            ax.set_ylim(kept, auto=None)  # autoscaling stays on (a log scale rescales)
            return
        ax.autoscale_view(scalex=False)
        if not linear:
            self._ylim = None
            return
        bottom, top = ax.get_ylim()
        if kept is not None:  # changed after the first view: leave room to grow
            top = bottom + 1.25 * (top - bottom)
            ax.set_ylim(bottom, top, auto=None)
        self._ylim = (bottom, top)

    def _set_lines(self, layers: list[LayerResult]) -> None:
        a = self.axis
        x = np.arange(len(layers), dtype=float)
        self.artists["r_max"].set_data(x, np.array([_finite(layer.r_max[a]) for layer in layers]))
        self.artists["r_min"].set_data(x, np.array([_finite(layer.r_min[a]) for layer in layers]))
        glob = np.array([i for i, layer in enumerate(layers) if layer.r_max[a] == math.inf], dtype=float)
        self.artists["global"].set_data(glob, np.full(len(glob), 0.97))

    def _set_verdicts(self, result: Analysis, layers: list[LayerResult]) -> None:
        a = self.axis
        critical = [(i, layer.r_min[a]) for i, layer in enumerate(layers) if layer.status == "critical"]
        self.artists["critical"].set_data(
            np.array([i for i, _ in critical], dtype=float), np.array([r for _, r in critical], dtype=float)
        )
        columns = [i for i, layer in enumerate(layers) if layer.status == "unproductive"]
        self.artists["unproductive"].set_verts(
            [[(i - 0.5, 0), (i + 0.5, 0), (i + 0.5, 1), (i - 0.5, 1)] for i in columns]
        )
        names = [layer.name for layer in layers]
        line, label = self.artists["border"], self.artists["border_label"]
        border = result.border_layer
        shown = border is not None and border in names
        line.set_visible(shown)
        label.set_visible(shown)
        if border is not None and shown:
            x = names.index(border)
            line.set_xdata(np.array([x, x], dtype=float))
            label.set_position((x - 0.15, 0.98))
            label.set_text(f"border: {border}")

    def _set_resolution(self, result: Analysis) -> None:
        size = result.input_size[self.axis]
        self.artists["resolution"].set_ydata(np.array([size, size], dtype=float))
        self.artists["resolution_label"].set_y(size)
        self.artists["resolution_label"].set_text(f"input {size}")
        low, high = result.resolution_range
        feasible = low is not None and high is not None and low <= high
        band = self.artists["band"]
        band.set_visible(feasible)
        if feasible:
            band.set_y(low)
            band.set_height(high - low)  # type: ignore[operator]
        self.artists["band_label"].set_text(
            f"feasible input size {low}-{high}" if feasible else "feasible input size"
        )
        self.artists["note"].set_text("" if feasible else _no_band_note(low, high))


def _no_band_note(low: int | None, high: int | None) -> str:
    """Why the feasible band is missing."""
    return f"feasible input sizes: {_format.feasible_range(low, high)}"


def plot_growth(
    result: Analysis, ax: Axes | None = None, *, log: bool = False, which: Which = "all", axis: int = 0
) -> GrowthPlot:
    """Plot ``r_min`` and ``r_max`` of every layer in topological order.

    Parameters
    ----------
    result
        The analysis to show.
    ax
        The axes to draw into; a new figure (Agg canvas, no pyplot) when None.
    log
        Logarithmic y axis.
    which
        ``"all"`` layers, or ``"windows"``: only those with a kernel or stride above 1 (plus the border
        layer).
    axis
        The spatial axis whose values are drawn (0 = height).

    Returns
    -------
    GrowthPlot
        ``.artists`` names the artists, ``.update(result)`` shows another analysis in them.

    Examples
    --------
    >>> import rf_widgets as rfw
    >>> stack = rfw.Stack([rfw.conv("c1", 3), rfw.pool("p1", 2), rfw.conv("c2", 3)])
    >>> view = plot_growth(rfw.analyze(stack, 8))
    >>> view.artists["r_max"].get_ydata().tolist()
    [3.0, 4.0, 8.0]
    """
    width = min(16.0, max(6.0, 0.14 * len(_shown_layers(result, which)) + 2.5))
    _check_axis(result, axis)
    return GrowthPlot(_axes_or_new(ax, (width, 4.8)), result, log=log, which=which, axis=axis)


# -- unit field overlay -------------------------------------------------------------------------------


def _as_rgb(image: Any) -> np.ndarray:
    """Any numpy image (HxW, HxWx1/3/4, any dtype) as HxWx3 uint8; alpha is composited on white."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        channels = array
    elif array.ndim == 2:
        channels = array[:, :, None]
    else:
        raise RFError(f"image must have shape HxW or HxWx3/4, got {array.shape}")
    if channels.shape[0] == 0 or channels.shape[1] == 0:
        raise RFError(f"image must not be empty, got shape {array.shape}")
    values = _to_unit_range(channels)
    if values.shape[2] == 4:
        alpha = values[:, :, 3:]
        values = values[:, :, :3] * alpha + (1 - alpha)
    elif values.shape[2] == 1:
        values = np.repeat(values, 3, axis=2)
    return np.round(values * 255).astype(np.uint8)


def _to_unit_range(array: np.ndarray) -> np.ndarray:
    """Floats in [0, 1]: uint8 / 255, floats already in [0, 1] as they are, anything else min-max scaled."""
    if array.dtype == np.uint8:
        return array.astype(np.float64) / 255
    values = np.nan_to_num(array.astype(np.float64))
    low, high = float(values.min()), float(values.max())
    if np.issubdtype(array.dtype, np.floating) and low >= 0 and high <= 1:
        return values
    if (np.issubdtype(array.dtype, np.integer) or array.dtype == bool) and low >= 0 and high <= 255:
        return values / (1 if array.dtype == bool else 255)
    return (values - low) / (high - low) if high > low else np.full_like(values, 0.5)


MAX_PICTURE_SIDE = 1024
"""The largest side of the picture drawn under the boxes; larger inputs are stretched to fit."""


def _fit_image(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre-crop ``rgb`` to the aspect of ``size`` (height, width), then resize it to ``size``."""
    from PIL import Image

    height, width = size
    rows, cols = rgb.shape[:2]
    if rows * width > cols * height:  # too tall for the target aspect
        keep = max(1, round(cols * height / width))
        rgb = rgb[(rows - keep) // 2 : (rows - keep) // 2 + keep]
    elif rows * width < cols * height:
        keep = max(1, round(rows * width / height))
        rgb = rgb[:, (cols - keep) // 2 : (cols - keep) // 2 + keep]
    resized = Image.fromarray(np.ascontiguousarray(rgb)).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized)


def _box_bounds(box: Box) -> tuple[float, float, float, float]:
    """``(x, y, width, height)`` of the rectangle covering the pixels of ``box`` (x = axis 1)."""
    return (
        float(box.start[1]) - 0.5,
        float(box.start[0]) - 0.5,
        float(box.stop[1] - box.start[1] + 1),
        float(box.stop[0] - box.start[0] + 1),
    )


def _indices(n: int) -> np.ndarray:
    """Every unit index up to ``MAX_CENTRES_PER_AXIS`` units, an even subsample of them beyond."""
    if n <= MAX_CENTRES_PER_AXIS:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, MAX_CENTRES_PER_AXIS).round().astype(int))


def _unit_centres(result: Analysis, layer: str) -> np.ndarray:
    """``(x, y)`` input coordinates of the (subsampled) unit centres of ``layer``, one row per unit.

    Centres follow the ``r_max`` path of :meth:`Analysis.unit_box`. Without phases they are unit 0
    plus multiples of its jump; after an upsampling, a transposed convolution or a window the spacing
    depends on each unit's phase, so every shown unit's centre is computed (see :func:`axis_centres`).

    Examples
    --------
    >>> import rf_widgets as rfw
    >>> result = rfw.analyze([rfw.conv("c1", 2, stride=2)], 4)
    >>> _unit_centres(result, "c1").tolist()
    [[0.5, 0.5], [2.5, 0.5], [0.5, 2.5], [2.5, 2.5]]
    """
    rows, cols = (axis_centres(result, layer, axis) for axis in (0, 1))
    x, y = np.meshgrid(cols, rows)
    return np.column_stack([x.ravel(), y.ravel()])


def axis_centres(result: Analysis, layer: str, axis: int, every: bool = False) -> np.ndarray:
    """Centres along ``axis`` of the ``r_max`` boxes of the units of ``layer``.

    Beyond ``MAX_CENTRES_PER_AXIS`` units an even subsample of them, unless ``every`` is set.

    Examples
    --------
    >>> import rf_widgets as rfw
    >>> up = rfw.analyze([rfw.conv("c", 3, stride=2), rfw.conv_transpose("t", 2, stride=2)], 9)
    >>> axis_centres(up, "t", 0).tolist()  # units 2v and 2v + 1 of t both read unit v of c
    [1.0, 1.0, 3.0, 3.0, 5.0, 5.0, 7.0, 7.0]
    """
    from rf_widgets.core.arithmetic import unit_interval

    n = result.layer(layer).feature_map[axis]
    units = np.arange(n) if every else _indices(n)
    classes = result.field.classes[result.stack.index[layer]][axis]
    phased = any(isinstance(key, tuple) and key[1] > 1 for key in classes)
    if not phased and n > 1:
        first, second = (sum(unit_interval(classes, u, "max")) / 2 for u in (0, 1))
        return float(first) + units * float(second - first)
    return np.array([float(sum(unit_interval(classes, int(u), "max")) / 2) for u in units], float)


class FieldOverlay:
    """The input region one unit of one layer sees, on the input image; built by :func:`draw_unit_field`.

    ``artists`` names: ``image``, ``frame`` (the image outline), ``padding`` (hatched region behind the
    image, visible when a box reaches beyond it), ``r_max`` and ``r_min`` (the boxes), ``centres`` (unit
    centres of the layer), ``unit`` (the chosen unit's centre), ``title``, ``legend``.
    """

    def __init__(self, ax: Axes, image: Any) -> None:
        self.ax = ax
        self._source = None if image is None else _as_rgb(image)
        self._size: tuple[int, int] | None = None
        self.layer: str | None = None
        self.unit: Unit = None
        self.artists: dict[str, Any] = self._build()

    def _build(self) -> dict[str, Any]:
        ax = self.ax
        padding = Rectangle(
            (0, 0), 1, 1, facecolor="#efefef", edgecolor="#8a8a8a", hatch="////", lw=0, zorder=0.5,
            label="padding",
        )  # fmt: skip
        artists: dict[str, Any] = {
            "image": ax.imshow(np.zeros((1, 1, 3), np.uint8), interpolation="nearest", zorder=1),
            "padding": ax.add_patch(padding),
            "frame": ax.add_patch(Rectangle((0, 0), 1, 1, fill=False, edgecolor="black", lw=0.8, zorder=2)),
            "r_max": ax.add_patch(
                Rectangle((0, 0), 1, 1, fill=False, edgecolor=R_MAX_COLOUR, lw=2, zorder=3, label="r_max box")
            ),
            "r_min": ax.add_patch(
                Rectangle(
                    (0, 0), 1, 1, fill=False, edgecolor=R_MIN_COLOUR, lw=1.5, ls="--", zorder=3.1,
                    label="r_min box",
                )
            ),
            "centres": ax.scatter(
                np.empty(0), np.empty(0), s=6, c="white", edgecolors="black", linewidths=0.3, zorder=4,
                label="unit centres",
            ),
            "unit": ax.plot(
                [], [], "o", color=R_MAX_COLOUR, mec="white", mew=1.2, ms=8, zorder=5, label="chosen unit"
            )[0],
            "title": ax.title,
        }  # fmt: skip
        keys = ("r_max", "r_min", "padding", "centres", "unit")
        artists["legend"] = ax.legend(
            handles=[artists[k] for k in keys], loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7
        )
        ax.set_xlabel("width (input pixels)")
        ax.set_ylabel("height (input pixels)")
        return artists

    def set_image(self, image: Any) -> None:
        """Show another image (numpy array, any dtype; None = neutral grey) under the same boxes."""
        self._source = None if image is None else _as_rgb(image)
        if self._size is not None:
            self.artists["image"].set_data(self._picture(self._size))

    def _picture(self, size: tuple[int, int]) -> np.ndarray:
        # The image's extent stretches it over the input: a grey pixel is enough for no image, and
        # past MAX_PICTURE_SIDE more pixels than a screen shows would only cost memory (a 10000 px
        # input would otherwise allocate gigabytes).
        if self._source is None:
            return np.full((1, 1, 3), 128, np.uint8)
        scale = min(1.0, MAX_PICTURE_SIDE / max(size))
        return _fit_image(self._source, (max(1, round(size[0] * scale)), max(1, round(size[1] * scale))))

    def _set_size(self, size: tuple[int, int]) -> None:
        height, width = size
        self.artists["image"].set_data(self._picture(size))
        self.artists["image"].set_extent((-0.5, width - 0.5, height - 0.5, -0.5))
        self.artists["frame"].set_bounds(-0.5, -0.5, width, height)
        self._size = size

    def update(self, result: Analysis, layer: str, unit: Unit = None) -> None:
        """Show ``unit`` of ``layer`` (default: the centre unit) of ``result`` in the same artists."""
        if len(result.input_size) != 2:
            raise RFError(f"the unit overlay needs a 2-D input, got input size {result.input_size}")
        size = (result.input_size[0], result.input_size[1])
        if size != self._size:
            self._set_size(size)
        info = result.layer(layer)
        drawn = not info.is_global and 0 not in info.feature_map
        for key in ("r_max", "r_min", "padding", "centres", "unit"):
            self.artists[key].set_visible(drawn)
        hull = (-0.5, -0.5, size[1] - 0.5, size[0] - 0.5)
        if drawn:
            hull = self._set_boxes(result, layer, unit, hull)
        self._set_limits(hull)
        self._set_title(result, info, unit if drawn else None)
        self.layer, self.unit = layer, unit

    def _set_boxes(
        self, result: Analysis, layer: str, unit: Unit, image: tuple[float, float, float, float]
    ) -> tuple[float, float, float, float]:
        """Move the boxes, centres and padding; return the region the view must show."""
        largest = result.unit_box(layer, unit, "max")
        smallest = result.unit_box(layer, unit, "min")
        self.artists["r_max"].set_bounds(*_box_bounds(largest))
        self.artists["r_min"].set_bounds(*_box_bounds(smallest))
        self.artists["centres"].set_offsets(_unit_centres(result, layer))
        self.artists["unit"].set_data(
            np.array([largest.centre[1]], float), np.array([largest.centre[0]], float)
        )
        boxes = [_box_bounds(largest), _box_bounds(smallest)]
        left = min(x for x, _, _, _ in boxes)
        top = min(y for _, y, _, _ in boxes)
        right = max(x + w for x, _, w, _ in boxes)
        bottom = max(y + h for _, y, _, h in boxes)
        padding = self.artists["padding"]
        padding.set_bounds(left, top, right - left, bottom - top)
        padding.set_visible(left < image[0] or top < image[1] or right > image[2] or bottom > image[3])
        return (min(left, image[0]), min(top, image[1]), max(right, image[2]), max(bottom, image[3]))

    def _set_limits(self, region: tuple[float, float, float, float]) -> None:
        # Square limits around the region: with an equal aspect the axes box then keeps its size
        # whatever the input size or the boxes, so the view does not jump between updates.
        left, top, right, bottom = region
        half = 0.53 * max(right - left, bottom - top)
        x, y = (left + right) / 2, (top + bottom) / 2
        self.ax.set_xlim(x - half, x + half)
        self.ax.set_ylim(y + half, y - half)  # row 0 at the top, as images are shown

    def _set_title(self, result: Analysis, info: LayerResult, unit: Unit) -> None:
        self.artists["title"].set_text(describe_unit(result, info.name, unit))
        self.artists["title"].set_fontsize(9)


def describe_unit(result: Analysis, layer: str, unit: Unit = None) -> str:
    """Two lines on what ``unit`` of ``layer`` sees: the verdict, then the fields and the map.

    Examples
    --------
    >>> import rf_widgets as rfw
    >>> print(describe_unit(rfw.analyze([rfw.conv("c1", 3)], 8), "c1", (0, 0)))
    c1 (conv): productive
    r_min 3, r_max 3; map 6x6; unit (0, 0)
    """
    info = result.layer(layer)
    verdict = info.status + (f" ({info.reason})" if info.reason else "")
    if info.name == result.border_layer:
        verdict += ", border layer"
    feature_map = _format.size(info.feature_map)
    if info.is_global:
        detail = f"global: sees the whole input; map {feature_map}"
    else:
        chosen = "centre unit" if unit is None else f"unit {unit}"
        detail = (
            f"r_min {_format.per_axis(info.r_min)}, r_max {_format.per_axis(info.r_max)}; "
            f"map {feature_map}; {chosen}"
        )
    return f"{info.name} ({info.op}): {verdict}\n{detail}"


def draw_effective_field(
    values: np.ndarray | None, ax: Axes | None = None, artist: Any = None, colormap: str = "inferno"
) -> Any:
    """The effective receptive field ``values`` (a 2-D map over the input) as a heat map on ``ax``.

    Stronger pixels are more opaque, so the image stays visible where the unit does not look; the
    extent is in input pixels, like :func:`draw_unit_field`'s image and boxes. Pass the returned
    ``artist`` again to show another map in place; ``values=None`` hides it.
    """
    from matplotlib import colormaps

    if artist is None:
        ax = _axes_or_new(ax, (5, 5))
        artist = ax.imshow(np.zeros((1, 1, 4)), interpolation="nearest", zorder=1.5, visible=False)
    if values is None:
        artist.set_visible(False)
        return artist
    heat = np.abs(np.asarray(values, dtype=float))
    if heat.ndim != 2:
        raise RFError(f"an effective field map must be 2-D, got shape {heat.shape}")
    top = heat.max()
    heat = heat / top if top > 0 else heat
    rgba = colormaps[colormap](heat)
    rgba[..., 3] = 0.85 * np.sqrt(heat)  # square root: the faint tails stay visible
    height, width = heat.shape
    artist.set_data(rgba)
    artist.set_extent((-0.5, width - 0.5, height - 0.5, -0.5))
    artist.set_visible(True)
    return artist


def draw_evidence_curves(
    curves: dict[str, dict[str, float | None]] | None,
    layer_names: Sequence[str],
    ax: Axes | None = None,
    artists: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Saturation and probe accuracy per measured layer on a secondary 0..1 axis beside a growth plot.

    ``curves`` is ``EvidenceResult.curves()`` (None hides the lines); ``layer_names`` are the growth
    plot's x positions: a measured layer is drawn where its name is shown, the others are left out.
    Pass the returned ``artists`` (``axis``, ``saturation``, ``probe``, ``legend``) again to update.
    """
    if artists is None:
        base = _axes_or_new(ax, (8, 4))
        twin = base.twinx()
        twin.set_ylim(0, 1)
        # Tick labels inside the plot: the growth plot's legend sits just right of the axes.
        twin.tick_params(axis="y", direction="in", pad=-22, labelsize=7, colors="#555")
        saturation = twin.plot([], [], "s-", color="#7b3294", ms=3, lw=1, zorder=3.5, label="saturation")[0]
        probe = twin.plot([], [], "D-", color="#008837", ms=3, lw=1, zorder=3.5, label="probe accuracy")[0]
        legend = twin.legend(
            handles=[saturation, probe], loc="center left", fontsize=7, title="right axis, 0..1"
        )
        legend.get_title().set_fontsize(7)
        artists = {"axis": twin, "saturation": saturation, "probe": probe, "legend": legend}
    names = list(layer_names)
    for key in ("saturation", "probe"):
        points = sorted(
            (float(names.index(name)), float(value))
            for name, values in (curves or {}).items()
            if name in names and (value := values.get(key)) is not None
        )
        x = np.array([p[0] for p in points], dtype=float)
        y = np.array([p[1] for p in points], dtype=float)
        artists[key].set_data(x, y)
    shown = curves is not None
    for key in ("saturation", "probe", "legend"):
        artists[key].set_visible(shown)
    artists["axis"].yaxis.set_visible(shown)
    return artists


def draw_unit_field(
    result: Analysis, layer: str, unit: Unit = None, image: Any = None, ax: Axes | None = None
) -> FieldOverlay:
    """Draw the input region one unit of ``layer`` sees, on ``image`` resized to the analysed input size.

    Parameters
    ----------
    result
        A 2-D analysis.
    layer
        The layer name.
    unit
        ``(row, column)`` of the unit in the layer's feature map (an int means the same on both axes);
        None = the centre unit.
    image
        A numpy image HxW or HxWx3/4 of any dtype; None = neutral grey.
    ax
        The axes to draw into; a new figure (Agg canvas, no pyplot) when None.

    Returns
    -------
    FieldOverlay
        ``.artists`` names the artists; ``.update(result, layer, unit)`` and ``.set_image(image)`` move
        them in place.

    Examples
    --------
    >>> import rf_widgets as rfw
    >>> result = rfw.analyze([rfw.conv("c1", 3, padding=1), rfw.conv("c2", 3, padding=1)], 8)
    >>> view = draw_unit_field(result, "c2", (0, 0))
    >>> box = view.artists["r_max"]
    >>> box.get_x(), box.get_y(), box.get_width(), box.get_height()
    (-2.5, -2.5, 5.0, 5.0)
    """
    view = FieldOverlay(_axes_or_new(ax, (6.5, 5.0)), image)
    view.update(result, layer, unit)
    return view


# -- architecture strip -------------------------------------------------------------------------------


def _shown_inputs(result: Analysis, shown: list[int]) -> list[list[int]]:
    """For each shown layer, the positions (in ``shown``) of its nearest shown ancestors."""
    stack = result.stack
    position = {index: k for k, index in enumerate(shown)}
    reach: list[list[int]] = []
    for sources in stack.input_indices:
        found: list[int] = []
        for j in sources:
            if j == NETWORK_INPUT:
                continue
            for k in [position[j]] if j in position else reach[j]:
                if k not in found:
                    found.append(k)
        reach.append(found)
    return [reach[i] for i in shown]


def _assign_lanes(inputs: Sequence[Sequence[int]]) -> list[int]:
    """A lane (row) per layer, given each layer's input positions in topological order.

    A layer takes the lowest of its inputs' lanes that is free at its position, otherwise the lowest
    free lane; a lane is taken from a layer's position up to the position of its last consumer.

    Examples
    --------
    >>> _assign_lanes([[], [0], [1], [2, 0]])  # a residual block: the identity path stays in lane 0
    [0, 1, 1, 0]
    """
    last_use = list(range(len(inputs)))
    for k, sources in enumerate(inputs):
        for s in sources:
            last_use[s] = max(last_use[s], k)
    busy_until: list[int] = []
    lanes: list[int] = []
    for k, sources in enumerate(inputs):
        mine = sorted({lanes[s] for s in sources if busy_until[lanes[s]] <= k})
        free = [lane for lane, until in enumerate(busy_until) if until < k]
        lane = mine[0] if mine else (free[0] if free else len(busy_until))
        if lane == len(busy_until):
            busy_until.append(k)
        busy_until[lane] = last_use[k]
        lanes.append(lane)
    return lanes


def _network_lanes(result: Analysis) -> list[int]:
    """The lane of every layer of the whole network (hidden layers included)."""
    inputs = [[j for j in sources if j != NETWORK_INPUT] for sources in result.stack.input_indices]
    return _assign_lanes(inputs)


def _compact(lanes: list[int]) -> list[int]:
    """Renumber lanes 0, 1, ... keeping their order, so that lanes used only by hidden layers vanish."""
    rank = {lane: k for k, lane in enumerate(sorted(set(lanes)))}
    return [rank[lane] for lane in lanes]


class ArchitectureStrip:
    """The network as cells coloured by status, branches in lanes; built by :func:`plot_architecture`.

    ``cells`` maps layer names to their :class:`~matplotlib.patches.Rectangle` (geometry and colours),
    ``lanes`` to their lane. ``artists`` names: ``cells`` (that dict), ``cell_patches`` (the
    PatchCollection that draws them), ``labels`` (kernel/stride text per window cell), ``edges`` (a
    LineCollection), ``border_label``, ``legend``.
    """

    def __init__(self, ax: Axes, result: Analysis, which: Which) -> None:
        self.ax = ax
        self.which = which
        self.cells: dict[str, Rectangle] = {}
        self.lanes: dict[str, int] = {}
        self._grid: dict[tuple[int, int], str] = {}
        self._key: tuple[object, tuple[str, ...]] | None = None
        self._coloured: tuple[tuple[str, ...], str | None] | None = None  # statuses and border shown
        handles = [Patch(facecolor=c, edgecolor="#555", label=s) for s, c in STATUS_COLOURS.items()]
        handles.append(Patch(facecolor="white", edgecolor=BORDER_COLOUR, lw=2.5, label="border layer"))
        self.artists: dict[str, Any] = {
            "cells": self.cells,
            "cell_patches": None,
            "labels": {},
            "edges": None,
            "border_label": ax.text(
                0, 0, "", ha="center", va="bottom", color=BORDER_COLOUR, fontsize=8, fontweight="bold",
                zorder=6,
            ),
            "legend": ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1), fontsize=7),
        }  # fmt: skip
        ax.set_yticks([])
        ax.set_ylabel("branch")
        self.update(result)

    def update(self, result: Analysis) -> None:
        """Recolour the cells for ``result``; lay them out again only when the layer list changed."""
        layers = _shown_layers(result, self.which)
        key = (result.stack, tuple(layer.name for layer in layers))
        if key != self._key:
            self._layout(result, layers)
            self._key = key
            self._coloured = None
        for layer in layers:
            if layer.name in self.artists["labels"]:
                self.artists["labels"][layer.name].set_text(_cell_text(layer))
        colours = (tuple(layer.status for layer in layers), result.border_layer)
        if colours != self._coloured:
            # Recolouring hundreds of cells costs more than drawing them: only when a verdict moved.
            for layer in layers:
                cell = self.cells[layer.name]
                cell.set_facecolor(STATUS_COLOURS[layer.status])
                cell.set_edgecolor("#555555")
                cell.set_linewidth(0.6)
            self._mark_border(result.border_layer)
            self._sync_patches()
            self._coloured = colours
        size = _format.size(result.input_size)
        counts = result.counts
        self.ax.set_title(
            f"{result.model} at {size}: {counts['unproductive']} unproductive, "
            f"{counts['critical']} critical of {len(result.layers)} layers",
            fontsize=10,
        )

    def _mark_border(self, border: str | None) -> None:
        label = self.artists["border_label"]
        label.set_visible(border in self.cells)
        if border is None or border not in self.cells:
            return
        cell = self.cells[border]
        cell.set_edgecolor(BORDER_COLOUR)
        cell.set_linewidth(2.5)
        lane = self.lanes[border]
        label.set_position((cell.get_x() + CELL_HALF, lane - CELL_HALF - 0.08))
        label.set_text(f"border: {border}")

    def _sync_patches(self) -> None:
        """Copy the cells' colours to the collection that draws them."""
        cells = list(self.cells.values())
        patches = self.artists["cell_patches"]
        patches.set_facecolor([cell.get_facecolor() for cell in cells])
        patches.set_edgecolor([cell.get_edgecolor() for cell in cells])
        patches.set_linewidth([cell.get_linewidth() for cell in cells])

    def _layout(self, result: Analysis, layers: list[LayerResult]) -> None:
        """Place one cell per shown layer (removing any previous ones) and the edges between them."""
        for artist in self.artists["labels"].values():
            artist.remove()
        for key in ("edges", "cell_patches"):
            if self.artists[key] is not None:
                self.artists[key].remove()
        self.cells.clear()
        self.artists["labels"] = {}
        self._grid = {}
        shown = [result.stack.index[layer.name] for layer in layers]
        inputs = _shown_inputs(result, shown)
        network_lanes = _network_lanes(result)
        lanes = _compact([network_lanes[i] for i in shown])
        self.lanes = {layer.name: lane for layer, lane in zip(layers, lanes, strict=True)}
        for x, (layer, lane) in enumerate(zip(layers, lanes, strict=True)):
            self._add_cell(layer, x, lane)
        # One collection draws every cell in a single pass (a DenseNet has hundreds); the rectangles
        # in ``cells`` keep each layer's geometry and colours for lookups.
        self.artists["cell_patches"] = self.ax.add_collection(
            PatchCollection(list(self.cells.values()), match_original=True, zorder=2), autolim=False
        )
        self.artists["edges"] = self.ax.add_collection(
            LineCollection(_edge_paths(inputs, lanes), colors="#9a9a9a", linewidths=0.8, zorder=1),
            autolim=False,
        )
        _set_layer_ticks(self.ax, [layer.name for layer in layers])
        self.ax.set_ylim(max(lanes, default=0) + 0.6, -1.3)  # lane 0 on top, room for the border label

    def _add_cell(self, layer: LayerResult, x: int, lane: int) -> None:
        cell = Rectangle((x - CELL_HALF, lane - CELL_HALF), 2 * CELL_HALF, 2 * CELL_HALF, zorder=2)
        self.cells[layer.name] = cell
        if _is_window(layer):  # elementwise cells stay blank: no text artist to pay for
            self.artists["labels"][layer.name] = self.ax.text(
                x, lane, "", ha="center", va="center", fontsize=6, rotation=90, zorder=3
            )
        self._grid[(x, lane)] = layer.name

    def layer_at(self, x: float | None, y: float | None) -> str | None:
        """The name of the layer whose cell contains the data point ``(x, y)``, or None.

        ``x``/``y`` may be None (a click outside the axes), which gives None.
        """
        if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            return None
        column, lane = round(x), round(y)
        if abs(x - column) > CELL_HALF or abs(y - lane) > CELL_HALF:
            return None
        return self._grid.get((column, lane))


def _cell_text(layer: LayerResult) -> str:
    """``3`` for a 3x3 window, ``3/2`` with stride 2; nothing for elementwise layers."""
    if not _is_window(layer):
        return ""
    kernel, stride = _format.per_axis(layer.kernel), _format.per_axis(layer.stride)
    return kernel if stride == "1" else f"{kernel}/{stride}"


def _edge_paths(inputs: Sequence[Sequence[int]], lanes: Sequence[int]) -> list[list[tuple[float, float]]]:
    """Each edge runs along its source's lane (kept free up to its last consumer), then steps across."""
    paths = []
    for target, sources in enumerate(inputs):
        for source in sources:
            points = [(source + CELL_HALF, float(lanes[source]))]
            if target - 1 > source:
                points.append((target - 1 + CELL_HALF, float(lanes[source])))
            points.append((target - CELL_HALF, float(lanes[target])))
            paths.append(points)
    return paths


def plot_architecture(result: Analysis, ax: Axes | None = None, *, which: Which = "all") -> ArchitectureStrip:
    """Draw the network as a strip of cells coloured by status, parallel branches in separate lanes.

    Parameters
    ----------
    result
        The analysis to show.
    ax
        The axes to draw into; a new figure (Agg canvas, no pyplot) when None.
    which
        ``"all"`` layers, or ``"windows"``: only those with a kernel or stride above 1 (plus the border
        layer).

    Returns
    -------
    ArchitectureStrip
        ``.cells`` maps layer names to rectangles, ``.layer_at(x, y)`` finds the layer under a click,
        ``.update(result)`` recolours the cells.

    Examples
    --------
    >>> import rf_widgets as rfw
    >>> stack = rfw.Stack([rfw.conv("a", 3), rfw.conv("b", 3), rfw.add("sum", ["b", "a"])])
    >>> strip = plot_architecture(rfw.analyze(stack, 16))
    >>> strip.lanes
    {'a': 0, 'b': 1, 'sum': 0}
    >>> strip.layer_at(1.1, 0.9)
    'b'
    """
    layers = _shown_layers(result, which)
    network_lanes = _network_lanes(result)
    lanes = len({network_lanes[result.stack.index[layer.name]] for layer in layers})
    figsize = (min(18.0, max(6.0, 0.16 * len(layers) + 3.0)), min(12.0, 2.6 + 0.3 * lanes))
    return ArchitectureStrip(_axes_or_new(ax, figsize), result, which)
