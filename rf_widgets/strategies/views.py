"""A picture of a design search: compute against waste, the Pareto front and the three picks.

:func:`plot_front` draws a :class:`~rf_widgets.strategies.Front` (from :func:`~rf_widgets.strategies.search`
or ``suggest(..., budget=...)``): every candidate as a faint dot at its multiply-adds (horizontal, log
scale; a ratio of the original's by default) and its *unproductive share* (vertical: the share of the
multiply-adds spent in unproductive layers, or of the parameters). The candidates of the Pareto front are
joined in order of compute, the original and the picks are marked and labelled, and the budget is a
vertical line. Candidates over the budget are drawn as small crosses.

The front is taken over four objectives (compute, waste, parameters and productive depth), so its
points need not form a staircase in these two coordinates: a front candidate may sit above a cheaper
one because it is deeper.

matplotlib is imported when a plot is made, not when this module is imported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from rf_widgets.errors import RFError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from rf_widgets.strategies.budget import Candidate, Front

__all__ = ["FrontPlot", "plot_front"]

Share = Literal["macs", "params"]

PICK_STYLE = {  # marker, colour
    "efficiency": ("v", "#1b7837"),
    "performance": ("^", "#b2182b"),
    "hybrid": ("D", "#5e3c99"),
}
ORIGINAL_COLOUR = "#222222"
FRONT_COLOUR = "#2166ac"
FAINT_COLOUR = "#9e9e9e"
BUDGET_COLOUR = "#d98200"
SELECTED_COLOUR = "#ff7f00"


class FrontPlot:
    """The axes and named artists of :func:`plot_front`.

    ``artists`` names: ``candidates`` (every candidate within the budget, faint), ``refused`` (those over
    it), ``pareto`` (the front, joined), ``original`` and ``original_label``, one ``pick_<name>`` marker
    and ``pick_<name>_label`` per pick that exists, ``budget`` and ``budget_label``, ``note`` (how many
    candidates far over the budget lie beyond the right edge, which stops at four times the budget),
    ``legend``, ``selected`` (a ring around the candidate given to :meth:`select`, hidden when none).
    :attr:`hidden` is the number of candidates beyond the right edge.

    Attributes
    ----------
    front
        The front drawn.
    relative
        Whether the horizontal axis shows ratios of the original multiply-adds.
    share
        ``"macs"`` or ``"params"``: which unproductive share is on the vertical axis.
    """

    def __init__(self, ax: Axes, front: Front, *, relative: bool, share: Share) -> None:
        self.ax = ax
        self.front = front
        self.relative = relative
        self.share = share
        self.artists: dict[str, Any] = {}
        self.hidden = 0
        self._draw()

    @property
    def figure(self) -> Any:
        return self.ax.figure

    # -- coordinates ----------------------------------------------------------------------------------

    def x(self, candidate: Candidate) -> float:
        """The horizontal position of ``candidate``: its multiply-adds, or their ratio to the original's."""
        return float(candidate.macs_ratio if self.relative else candidate.macs)

    def y(self, candidate: Candidate) -> float:
        """The vertical position of ``candidate``: its unproductive share, in percent."""
        value = (
            candidate.unproductive_macs_share if self.share == "macs" else candidate.unproductive_params_share
        )
        return 100.0 * float(value)

    def _points(self, candidates: Sequence[Candidate]) -> tuple[list[float], list[float]]:
        return [self.x(c) for c in candidates], [self.y(c) for c in candidates]

    # -- drawing --------------------------------------------------------------------------------------

    def _draw(self) -> None:
        ax, front, artists = self.ax, self.front, self.artists
        ax.set_xscale("log")
        allowed = [c for c in front if not c.refused]
        refused = [c for c in front if c.refused]
        xs, ys = self._points(allowed)
        artists["candidates"] = ax.scatter(
            xs, ys, s=14, color=FAINT_COLOUR, alpha=0.35, linewidths=0, zorder=2, label="candidates"
        )
        xs, ys = self._points(refused)
        artists["refused"] = ax.scatter(
            xs, ys, s=12, marker="x", color=FAINT_COLOUR, alpha=0.35, linewidths=0.8, zorder=2,
            label="over the budget",
        )  # fmt: skip
        pareto = sorted(front.pareto, key=lambda c: (self.x(c), self.y(c)))
        xs, ys = self._points(pareto)
        artists["pareto"] = ax.plot(
            xs, ys, "o-", color=FRONT_COLOUR, ms=4, lw=1.2, zorder=3, label="Pareto front"
        )[0]
        original = front.original
        artists["original"] = ax.plot(
            [self.x(original)], [self.y(original)], "*", color=ORIGINAL_COLOUR, ms=13, zorder=5,
            label="original",
        )[0]  # fmt: skip
        artists["original_label"] = self._label(original, "original", ORIGINAL_COLOUR, 0)
        labelled = [original]
        for name, (marker, colour) in PICK_STYLE.items():
            pick = front.picks.get(name)
            if pick is None:
                continue
            artists[f"pick_{name}"] = ax.plot(
                [self.x(pick)], [self.y(pick)], marker, color=colour, ms=10, mec="white", mew=0.8,
                zorder=6, label=name,
            )[0]  # fmt: skip
            slot = sum(1 for c in labelled if (self.x(c), self.y(c)) == (self.x(pick), self.y(pick)))
            artists[f"pick_{name}_label"] = self._label(pick, name, colour, slot)
            labelled.append(pick)
        budget = front.budget if self.relative else front.budget * front.original.macs
        artists["budget"] = ax.axvline(budget, color=BUDGET_COLOUR, ls="--", lw=1, zorder=1)
        artists["budget_label"] = ax.annotate(
            f"budget {front.budget:g}x",
            (budget, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(-3, -3),
            textcoords="offset points",
            ha="right",
            va="top",
            rotation=90,
            fontsize=8,
            color=BUDGET_COLOUR,
        )
        artists["selected"] = ax.plot(
            [], [], "o", ms=16, mfc="none", mec=SELECTED_COLOUR, mew=2, zorder=7, label="shown"
        )[0]
        artists["selected"].set_visible(False)
        self._limits()
        unit = "ratio of the original" if self.relative else "absolute"
        ax.set_xlabel(f"multiply-adds at the target size ({unit}, log scale)")
        what = "multiply-adds" if self.share == "macs" else "parameters"
        ax.set_ylabel(f"share of the {what} in unproductive layers (%)")
        size = "x".join(map(str, original.input_size))
        ax.set_title(
            f"{front.model_name} at {size}: {len(front)} candidates, {len(front.pareto)} on the front"
        )
        ax.grid(True, which="both", color="#eeeeee", lw=0.6, zorder=0)
        handles = [artists[k] for k in ("candidates", "refused", "pareto", "original") if self._shown(k)]
        handles += [artists[f"pick_{name}"] for name in PICK_STYLE if f"pick_{name}" in artists]
        artists["legend"] = ax.legend(
            handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0)
        )

    def _shown(self, key: str) -> bool:
        artist = self.artists[key]
        return bool(len(artist.get_offsets())) if hasattr(artist, "get_offsets") else True

    def _label(self, candidate: Candidate, text: str, colour: str, slot: int) -> Any:
        # The picks often coincide (or sit on the original): stack their labels instead of overlapping.
        return self.ax.annotate(
            text,
            (self.x(candidate), self.y(candidate)),
            xytext=(8, 6 + 11 * slot),
            textcoords="offset points",
            fontsize=8,
            color=colour,
            fontweight="bold",
            zorder=8,
        )

    def _limits(self) -> None:
        """Show every candidate within the budget; those far over it may fall off the right edge."""
        budget = self.front.budget if self.relative else self.front.budget * self.front.original.macs
        xs = [self.x(c) for c in self.front if not c.refused] + [budget]
        xs = [x for x in xs if x > 0 and math.isfinite(x)]
        low, high = min(xs) / 1.6, max(xs) * 4
        self.ax.set_xlim(low, high)
        self.ax.set_ylim(-4, 104)
        beyond = sum(1 for c in self.front if self.x(c) > high)
        self.artists["note"] = self.ax.annotate(
            f"{beyond} more over the budget, beyond the right edge" if beyond else "",
            (0.0, 1.0),
            xycoords="axes fraction",
            xytext=(4, -4),
            textcoords="offset points",
            ha="left",
            va="top",
            fontsize=7,
            color=FAINT_COLOUR,
        )
        self.hidden = beyond

    # -- interaction ----------------------------------------------------------------------------------

    def select(self, candidate: Candidate | None) -> None:
        """Ring ``candidate`` (one of the front's), or hide the ring (None)."""
        ring = self.artists["selected"]
        if candidate is None:
            ring.set_data([], [])
            ring.set_visible(False)
            return
        if not any(c is candidate for c in self.front):
            raise RFError(f"the candidate '{candidate.label}' is not one of this search's")
        ring.set_data([self.x(candidate)], [self.y(candidate)])
        ring.set_visible(True)

    def nearest(self, xdata: float, ydata: float, *, within: float = 12.0) -> Candidate | None:
        """The candidate drawn nearest to the data point ``(xdata, ydata)``, if within ``within`` pixels.

        For a click handler (``event.xdata``, ``event.ydata``); candidates over the budget count too.
        """
        transform = self.ax.transData
        target = transform.transform((xdata, ydata))
        best, distance = None, within
        for candidate in self.front:
            px, py = transform.transform((self.x(candidate), self.y(candidate)))
            d = math.hypot(px - target[0], py - target[1])
            if d <= distance:
                best, distance = candidate, d
        return best


def plot_front(
    front: Front,
    ax: Axes | None = None,
    *,
    relative: bool = True,
    share: Share = "macs",
    selected: Candidate | None = None,
) -> FrontPlot:
    """Draw a search's candidates, its Pareto front, the original, the picks and the budget.

    Parameters
    ----------
    front
        What :func:`~rf_widgets.strategies.search` returned.
    ax
        The axes to draw into; a new figure (Agg canvas, no pyplot) when None.
    relative
        Multiply-adds as a ratio of the original network's (True) or as counts.
    share
        The vertical axis: the share of the multiply-adds (``"macs"``) or of the parameters
        (``"params"``) in unproductive layers.
    selected
        A candidate to ring (see :meth:`FrontPlot.select`).

    Returns
    -------
    FrontPlot
        ``.artists`` names the artists; ``.select(candidate)`` moves the ring.

    Examples
    --------
    >>> import rf_widgets as rfw
    >>> from rf_widgets.strategies import search
    >>> stack = [rfw.conv("c1", 3, stride=2, padding=1)]
    >>> stack += [rfw.conv(f"c{i}", 3, padding=1) for i in (2, 3, 4)]
    >>> view = plot_front(search(stack, 8, budget=4.0))
    >>> view.artists["original"].get_xdata().tolist()
    [1.0]
    """
    if share not in ("macs", "params"):
        raise RFError(f"share must be 'macs' or 'params', got {share!r}")
    if ax is None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(8.5, 4.6), layout="constrained")
        FigureCanvasAgg(figure)
        ax = figure.add_subplot()
    view = FrontPlot(ax, front, relative=relative, share=share)
    if selected is not None:
        view.select(selected)
    return view
