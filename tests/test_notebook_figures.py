"""The notebooks' figures: legends beside the data, not over it; readable log axes."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "notebooks" / "data"


def _extent(artist, renderer):
    return artist.get_window_extent(renderer)


def test_the_evidence_legend_sits_above_the_axes_under_the_title():
    pytest.importorskip("matplotlib")
    from rf_widgets.evidence import EvidenceResult, plot_evidence

    doc = json.loads((DATA / "evidence_32px.json").read_text())
    trained, untrained = (EvidenceResult.from_dict(doc[key]) for key in ("trained", "untrained"))
    view = plot_evidence(trained, baseline=untrained)
    figure = view.figure
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legend = _extent(view.artists["legend"], renderer)
    axes = view.ax.get_window_extent(renderer)
    title = _extent(view.ax.title, renderer)
    assert legend.y0 >= axes.y1 - 1, "the legend covers the plotting area"
    assert title.y0 >= legend.y1 - 1, "the title overlaps the legend"
    assert legend.x0 >= 0
    assert legend.x1 <= figure.bbox.x1


def test_the_r_min_axis_has_plain_labels_that_do_not_overlap():
    pytest.importorskip("matplotlib")
    from rf_widgets.evidence import EvidenceResult, plot_evidence

    doc = json.loads((DATA / "evidence_64px.json").read_text())
    view = plot_evidence(EvidenceResult.from_dict(doc["trained"]))
    view.figure.canvas.draw()
    renderer = view.figure.canvas.get_renderer()
    axis = view.ax_rf.yaxis
    low, high = view.ax_rf.get_ylim()
    shown = [t for t in axis.get_major_ticks() if low <= t.get_loc() <= high and t.label2.get_text()]
    labels = [t.label2.get_text() for t in shown]
    assert labels, "the r_min axis has labels"
    assert all(label.replace(".", "").isdigit() for label in labels), labels  # 10, 20, 50 (no 2x10^1)
    assert [t.label2.get_text() for t in axis.get_minor_ticks()] == [""] * len(axis.get_minor_ticks())
    boxes = sorted((t.label2.get_window_extent(renderer) for t in shown), key=lambda b: b.y0)
    assert all(a.y1 <= b.y0 for a, b in pairwise(boxes)), "tick labels overlap"
