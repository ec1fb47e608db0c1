"""The Explorer's picture: three views in one matplotlib figure, sent as JPEG bytes or an ipympl canvas.

The parts no control changes (axes, ticks, legends, edges) are drawn once into a cached background;
an update restores the region of each changed view and draws only its changing artists on top
(blitting), so moving a unit does not redraw the whole network.
"""

from __future__ import annotations

import io
import math
from typing import Any

import ipywidgets as widgets
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from rf_widgets.core.results import Analysis
from rf_widgets.errors import RFError
from rf_widgets.plotting import (
    axis_centres,
    describe_unit,
    draw_effective_field,
    draw_evidence_curves,
    draw_unit_field,
    plot_architecture,
    plot_growth,
)

__all__ = ["ALL_VIEWS", "Renderer", "same_key"]

MAX_LABELLED_CELLS = 60
ALL_VIEWS = ("growth", "strip", "overlay")


def _ipympl_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ipympl") is not None


def _interactive_canvas(figure: Figure) -> Any:
    """An ipympl canvas widget for ``figure`` (no pyplot, no global figure registry)."""
    from ipympl.backend_nbagg import Canvas, FigureManager

    canvas = Canvas(figure)
    FigureManager(canvas, 0)
    canvas.header_visible = False
    return canvas


class Renderer:
    """The growth plot, the unit's field on the image and the network strip, kept up to date.

    Parameters
    ----------
    result, layer, image
        What to draw first.
    interactive
        Show an ipympl canvas (zoom, pan, clicks) instead of JPEG bytes in an ``Image`` widget.
    """

    def __init__(self, result: Analysis, layer: str, image: Any, interactive: bool = False) -> None:
        if interactive and not _ipympl_available():
            raise RFError("interactive=True needs ipympl: pip install ipympl")
        self.interactive = interactive
        self.figure = Figure(figsize=(11, 7), dpi=80, layout="constrained")
        canvas = _interactive_canvas(self.figure) if interactive else FigureCanvasAgg(self.figure)
        self.canvas = canvas
        grid = self.figure.add_gridspec(2, 2, height_ratios=(3, 1.2), width_ratios=(1.3, 1))
        self.growth = plot_growth(result, ax=self.figure.add_subplot(grid[0, 0]))
        self.overlay = draw_unit_field(result, layer, None, image, ax=self.figure.add_subplot(grid[0, 1]))
        self.strip = plot_architecture(result, ax=self.figure.add_subplot(grid[1, :]))
        # The overlay's limits follow the input size and the boxes; without ticks, and with square
        # limits (the plotting module keeps them square), its frame stays the same in the background.
        self.overlay.ax.xaxis.set_major_locator(NullLocator())
        self.overlay.ax.yaxis.set_major_locator(NullLocator())
        # The titles change with every control; as HTML above the picture they cost nothing to draw
        # (a line of text is the most expensive artist to render on each update).
        for view in (self.growth, self.overlay, self.strip):
            view.ax.title.set_visible(False)
        self.caption = widgets.HTML().add_class("rfw-caption")
        self.picture = (
            canvas
            if interactive
            else widgets.Image(format="jpeg", layout=widgets.Layout(width="100%")).add_class("rfw-picture")
        )
        self.overlay_image = image
        self.erf = draw_effective_field(None, ax=self.overlay.ax)
        self.evidence: dict[str, Any] | None = None  # the secondary axis, once a result is shown
        self.curves: dict[str, dict[str, float | None]] | None = None
        self.background: Any = None
        self._background_key: tuple[Any, ...] = ()
        self._regions: dict[str, tuple[int, int, int, int]] = {}

    def show(
        self,
        result: Analysis,
        layer: str,
        unit: tuple[int, ...],
        image: Any,
        views: tuple[str, ...],
        erf: Any = None,
    ) -> None:
        """Bring ``views`` up to date with the state and draw them (the overlay is always redrawn).

        ``erf`` is the selected unit's effective field (an ``EffectiveField``) to draw as a heat map, or
        None for none.
        """
        if "growth" in views:
            self.growth.update(result)
            if self.evidence is not None:
                draw_evidence_curves(self.curves, self.growth.layer_names, artists=self.evidence)
        if "strip" in views:
            self.strip.update(result)
        if image is not self.overlay_image:
            self.overlay.set_image(image)
            self.overlay_image = image
        field = result.layer(layer)
        shown = None if field.is_global or 0 in field.feature_map else unit
        self.overlay.update(result, layer, shown)
        draw_effective_field(None if erf is None else erf.map, artist=self.erf)
        caption = "<b>Field of one unit:</b> " + _escape(describe_unit(result, layer, shown))
        if erf is not None:
            caption += "<br>" + _escape(describe_erf(erf, result, layer))
        self.caption.value = caption
        self.render(views if "overlay" in views else (*views, "overlay"))

    def set_curves(self, curves: dict[str, dict[str, float | None]] | None) -> None:
        """Show measured saturation and probe accuracy per layer name on the growth plot (None: remove)."""
        self.curves = curves
        if self.evidence is None and curves is None:
            return
        if self.evidence is None:
            self.evidence = draw_evidence_curves(curves, self.growth.layer_names, ax=self.growth.ax)
            # The layout was solved on the first draw and then fixed: the new axis takes the growth
            # plot's place, and the cached background is drawn again with it.
            self.evidence["axis"].set_position(self.growth.ax.get_position(), which="both")
            self.background = None
        else:
            draw_evidence_curves(curves, self.growth.layer_names, artists=self.evidence)
        self.render(("growth",))

    def _dynamic_artists(self) -> dict[str, list[Any]]:
        """Per view, the artists an update may change; the rest is drawn once into a background."""
        growth = self.growth.artists
        names = (
            *("unproductive", "band", "resolution", "resolution_label", "r_max", "r_min"),
            *("critical", "global", "border", "border_label", "note"),
        )
        strip = self.strip
        labels = list(strip.artists["labels"].values())
        if len(strip.cells) > MAX_LABELLED_CELLS:
            # Cell labels of a big network are unreadable at this size and cost a glyph pass each.
            for label in labels:
                label.set_visible(False)
        overlay = self.overlay.artists
        evidence = [] if self.evidence is None else [self.evidence[k] for k in ("saturation", "probe")]
        found = {
            "growth": [*(growth[k] for k in names), *evidence, self.growth.ax.title],
            "strip": [strip.artists["cell_patches"], *labels, strip.artists["border_label"], strip.ax.title],
            "overlay": [
                *(overlay[k] for k in ("padding", "image", "frame", "r_max", "r_min", "centres", "unit")),
                self.erf,
                overlay["title"],
            ],
        }
        return {view: sorted(artists, key=lambda a: a.get_zorder()) for view, artists in found.items()}

    def _static_key(self) -> tuple[Any, ...]:
        """What the cached background shows; when it changes the whole figure is drawn again."""
        growth, strip = self.growth.ax, self.strip.ax
        return (
            growth.get_xlim(),
            growth.get_ylim(),
            growth.get_yscale(),
            strip.get_xlim(),
            strip.get_ylim(),
            self.growth.layer_names,
            self.growth.artists["band_label"].get_text(),
            tuple(len(v) for v in self._dynamic_artists().values()),
        )

    def render(self, views: tuple[str, ...] = ALL_VIEWS) -> None:
        """Draw the changed views and send the figure as JPEG (steady in the browser, small on the wire)."""
        from PIL import Image

        canvas = self.figure.canvas
        if self.interactive:
            canvas.draw_idle()  # ipympl draws and sends the whole frame itself
            return
        dynamic = self._dynamic_artists()
        key = self._static_key()
        if self.background is None or not same_key(key, self._background_key):
            for artist in (a for artists in dynamic.values() for a in artists):
                artist.set_animated(True)
            canvas.draw()
            if self.figure.get_layout_engine() is not None:
                # Laid out on the first draw, then kept: solving the layout again on every update
                # would cost more than drawing, and a fixed layout does not jump while dragging.
                self.figure.set_layout_engine("none")
            self.background = canvas.copy_from_bbox(self.figure.bbox)  # type: ignore[attr-defined]
            self._background_key = self._static_key()
            self._regions = self._view_regions(canvas.get_renderer())  # type: ignore[attr-defined]
            views = ALL_VIEWS
        for region in {self._regions[view] for view in views}:
            # xy places the saved figure-sized region itself, so its origin restores it in place.
            canvas.restore_region(self.background, bbox=region, xy=(0, 0))  # type: ignore[attr-defined]
        for view in views:
            for artist in dynamic[view]:
                artist.set_animated(True)
                if artist.get_visible():
                    self.figure.draw_artist(artist)
        width, height = canvas.get_width_height()
        frame = Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)  # type: ignore[attr-defined]
        buffer = io.BytesIO()
        frame.convert("RGB").save(buffer, format="JPEG", quality=85)
        picture = self.picture
        assert isinstance(picture, widgets.Image)  # the non-interactive picture
        picture.value = buffer.getvalue()

    def _view_regions(self, renderer: Any) -> dict[str, tuple[int, int, int, int]]:
        """The pixel box of each view, in Agg's buffer coordinates (origin top left).

        The figure is cut halfway between the top row and the strip, and the top row halfway between
        the growth plot's legend and the overlay. The overlay's title is clipped to its box, so each
        view's changing artists stay inside its own box.
        """
        from matplotlib.transforms import Bbox

        width, height = self.figure.canvas.get_width_height()
        growth = self.growth.ax.get_tightbbox(renderer)
        overlay, strip = (ax.get_window_extent(renderer) for ax in (self.overlay.ax, self.strip.ax))
        legend = self.growth.artists["legend"].get_window_extent(renderer)
        ylabel = self.overlay.ax.yaxis.label.get_window_extent(renderer)
        split_x = int((max(legend.x1, growth.x1 if growth is not None else 0) + ylabel.x0) / 2)
        split_y = int((strip.y1 + min(self.growth.ax.get_window_extent(renderer).y0, overlay.y0)) / 2)
        title = self.overlay.artists["title"]
        title.set_clip_box(Bbox.from_extents(split_x, split_y, width, height))  # display coordinates
        title.set_clip_on(True)
        top = height - split_y
        return {
            "growth": (0, 0, split_x, top),
            "overlay": (split_x, 0, width, top),
            "strip": (0, top, width, height),
        }

    def view_at(self, x: float, y: float) -> tuple[str, float, float] | None:
        """The view under a point of the picture and the point in its data coordinates.

        ``x`` and ``y`` are fractions of the picture's width and height from its top left corner
        (where a browser event lands on the shown image, whatever its size on screen). Only the
        overlay and the strip answer clicks; None elsewhere.
        """
        if not (math.isfinite(x) and math.isfinite(y)):
            return None
        width, height = self.figure.canvas.get_width_height()
        point = (x * width, (1.0 - y) * height)  # matplotlib's display coordinates start bottom left
        for name, ax in (("overlay", self.overlay.ax), ("strip", self.strip.ax)):
            if ax.bbox.contains(*point):
                xdata, ydata = ax.transData.inverted().transform(point)
                return name, float(xdata), float(ydata)
        return None

    def unit_at(self, result: Analysis, layer: str, x: float, y: float) -> tuple[int, ...] | None:
        """The unit of ``layer`` whose field is centred nearest to the image point ``(x, y)``."""
        field = result.layer(layer)
        if field.is_global or 0 in field.feature_map:
            return None
        # The centres of a layer after an upsampling or a window follow each unit's phase: the
        # nearest one is looked up, not computed from a jump.
        return tuple(
            int(np.argmin(np.abs(axis_centres(result, layer, axis, every=True) - position)))
            for axis, position in enumerate((y, x))
        )


def same_key(a: Any, b: Any, rel_tol: float = 1e-9) -> bool:
    """Whether two cache keys show the same thing: floats within ``rel_tol``, everything else equal.

    Axis limits come from computation: autoscaling the same data after another input size gives
    limits that differ in the 14th digit, which no pixel shows. Compared exactly, every size change
    would draw the whole figure again.
    """
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same_key(x, y, rel_tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, (float, np.floating)) and isinstance(b, (float, np.floating, int, np.integer)):
        return math.isclose(a, b, rel_tol=rel_tol, abs_tol=rel_tol)
    return bool(a == b)


def describe_erf(erf: Any, result: Analysis, layer: str) -> str:
    """One line: the effective field's 2-sigma size beside the theoretical r_max of the unit."""
    r_max = "x".join(str(r) for r in result.layer(layer).r_max)
    return (
        f"effective field (gradient, {erf.samples} random inputs, weights {erf.weights}): "
        f"2-sigma size {erf.size:.1f} px beside the theoretical r_max {r_max} px"
    )


def _escape(text: str) -> str:
    import html

    return html.escape(text).replace("\n", "; ")
