"""The paper's figure: per spatial layer, the prediction (r_min, border layer, unproductive layers) beside
the measurements (saturation, linear-probe accuracy, the model's test accuracy).

Drawing choices: layers are the measured ones in order, numbered from 1 on the x axis with their names
as tick labels. Saturation and probe accuracy share the left axis (0 to 1), with the model's test
accuracy as a dashed horizontal line; ``r_min`` (height axis) is drawn on a logarithmic right axis with
the input size as a dotted line. Unproductive layers get a shaded column, the border layer a vertical
line (before the first measured layer after it when the border itself is not measured). Rank-limited
saturation values (fewer observations than channels) are drawn hollow. An optional ``baseline`` (the
same network untrained) is drawn in grey.
"""

from __future__ import annotations

from typing import Any

from rf_widgets.evidence.results import EvidenceResult

__all__ = ["EvidencePlot", "plot_evidence"]

SATURATION = "#1f77b4"
PROBE = "#d62728"
RF = "#2ca02c"
SHADE = "#f4c7c3"  # the unproductive colour of the analysis views


class EvidencePlot:
    """The figure's axes and named artists (``.artists``), so a caller can restyle or test them."""

    def __init__(self, ax: Any, ax_rf: Any, artists: dict[str, Any]) -> None:
        self.ax = ax
        self.ax_rf = ax_rf
        self.artists = artists

    @property
    def figure(self) -> Any:
        return self.ax.figure


def plot_evidence(
    result: EvidenceResult,
    ax: Any = None,
    *,
    baseline: EvidenceResult | None = None,
    title: str | None = None,
    legend: bool = True,
) -> EvidencePlot:
    """Draw the paper's figure for a measured result.

    Parameters
    ----------
    result
        From :func:`~rf_widgets.evidence.measure` or :meth:`EvidenceResult.from_json`.
    ax
        Matplotlib axes to draw into; by default a new pyplot-free figure with an Agg canvas.
    baseline
        The same network measured untrained: its saturation and probe accuracy in grey.
    title
        Axes title (default: model, input size and test accuracy).

    Returns
    -------
    EvidencePlot
        ``.ax`` (left axis), ``.ax_rf`` (the r_min axis), ``.figure`` and ``.artists``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    if ax is None:
        figure = Figure(figsize=(max(6.0, 0.45 * len(result.layers) + 2), 4.6), layout="constrained")
        FigureCanvasAgg(figure)
        ax = figure.add_subplot()
    names = [layer.name for layer in result.layers]
    xs = list(range(1, len(names) + 1))
    artists: dict[str, Any] = {}

    shades = []
    for x, layer in zip(xs, result.layers, strict=True):
        if layer.status == "unproductive" or layer.name in result.unproductive_layers:
            shades.append(ax.axvspan(x - 0.5, x + 0.5, color=SHADE, alpha=0.6, lw=0, zorder=0))
    artists["unproductive"] = shades
    bx = _border_position(result, names)
    if bx is not None:
        artists["border"] = ax.axvline(
            bx - 0.5, color="black", lw=1.5, zorder=3, label=f"border layer {result.border_layer}"
        )

    def series(values: list[float | None]) -> list[float]:
        return [float("nan") if v is None else v for v in values]

    if baseline is not None:
        base = {layer.name: layer for layer in baseline.layers}
        artists["baseline_saturation"] = ax.plot(
            xs,
            series([base[n].saturation if n in base else None for n in names]),
            color="0.6",
            ls="--",
            marker=".",
            label="saturation, untrained",
        )[0]
        artists["baseline_probe"] = ax.plot(
            xs,
            series([base[n].probe_test if n in base else None for n in names]),
            color="0.6",
            ls=":",
            marker=".",
            label="probe accuracy, untrained",
        )[0]
    saturation = series([layer.saturation for layer in result.layers])
    artists["saturation"] = ax.plot(xs, saturation, color=SATURATION, marker="o", label="saturation")[0]
    limited = [x for x, layer in zip(xs, result.layers, strict=True) if layer.rank_limited]
    if limited:
        artists["rank_limited"] = ax.scatter(
            limited,
            [saturation[x - 1] for x in limited],
            s=60,
            facecolors="white",
            edgecolors=SATURATION,
            zorder=4,
            label="saturation (fewer observations than channels)",
        )
    artists["probe"] = ax.plot(
        xs,
        series([layer.probe_test for layer in result.layers]),
        color=PROBE,
        marker="s",
        label="probe accuracy",
    )[0]
    if result.model_accuracy is not None:
        artists["accuracy"] = ax.axhline(
            result.model_accuracy,
            color=PROBE,
            ls="--",
            lw=1,
            label=f"model accuracy {result.model_accuracy:.3f}",
        )
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0.5, len(xs) + 0.5)
    ax.set_xticks(xs)
    ax.set_xticklabels(names, rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("saturation, accuracy")

    ax_rf = ax.twinx()
    r_min = [layer.r_min[0] if isinstance(layer.r_min, tuple) else float("nan") for layer in result.layers]
    artists["r_min"] = ax_rf.plot(xs, r_min, color=RF, marker="^", ms=4, lw=1, label="r_min")[0]
    artists["input_size"] = ax_rf.axhline(result.input_size[0], color=RF, ls=":", lw=1, label="input size")
    ax_rf.set_yscale("log")
    # plain numbers on the log axis (10, 20, 50, 100 rather than 2 x 10^1 or mixed minor labels)
    ax_rf.yaxis.set_major_formatter(ScalarFormatter())
    ax_rf.yaxis.set_minor_formatter(NullFormatter())
    ax_rf.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax_rf.set_ylabel("r_min (pixels)", color=RF)
    size = "x".join(map(str, result.input_size))
    accuracy = f", test accuracy {result.model_accuracy:.3f}" if result.model_accuracy is not None else ""
    pad = 6.0
    if legend:
        # Above the axes, not over them: every corner of the plot holds data (the first layers' low
        # probe accuracy, the tail's low saturation, the deep layers' large r_min).
        handles = list(ax.get_legend_handles_labels()[0]) + ax_rf.get_legend_handles_labels()[0]
        columns = 3
        artists["legend"] = ax.legend(
            handles=handles,
            fontsize=7,
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
            ncols=columns,
            frameon=False,
            borderaxespad=0.2,
        )
        pad += 11.5 * -(-len(handles) // columns)  # the title goes above the legend's rows
    ax.set_title(title if title is not None else f"{result.model} at {size}{accuracy}", fontsize=10, pad=pad)
    return EvidencePlot(ax, ax_rf, artists)


def _border_position(result: EvidenceResult, names: list[str]) -> int | None:
    """1-based x of the first measured layer at or after the border layer (None without a border).

    The border layer need not be a measured one (a pointwise border under older verdict rules): the line
    then goes before the first measured layer that follows it in the analysis's layer order.
    """
    border = result.border_layer
    if border is None:
        return None
    if border in names:
        return names.index(border) + 1
    order = [layer["name"] for layer in (result.analysis or {}).get("layers", [])]
    if border not in order:
        return None
    position = {name: i for i, name in enumerate(order)}
    after = [i for i, name in enumerate(names) if position.get(name, -1) > position[border]]
    return after[0] + 1 if after else None
