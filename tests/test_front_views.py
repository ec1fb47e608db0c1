"""The picture of a design search: every mark where its candidate's numbers put it, labels present."""

from __future__ import annotations

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from small_nets import small_cnn  # noqa: E402

from rf_widgets.errors import RFError  # noqa: E402
from rf_widgets.strategies import PICKS, search  # noqa: E402
from rf_widgets.strategies.views import plot_front  # noqa: E402


@pytest.fixture(scope="module")
def front():
    found = search(small_cnn(), 16, budget=4.0)
    # the premises of the checks below: some candidates over the budget, all three picks, a real front
    assert found.refused
    assert all(found.picks[name] is not None for name in PICKS)
    assert len(found.pareto) > 2
    return found


def _points(offsets) -> set[tuple[float, float]]:
    return {(round(float(x), 9), round(float(y), 9)) for x, y in offsets}


def test_every_candidate_is_drawn_at_its_compute_ratio_and_waste(front):
    view = plot_front(front)
    within = [c for c in front if not c.refused]
    over = [c for c in front if c.refused]
    expected = {(round(c.macs_ratio, 9), round(100 * c.unproductive_macs_share, 9)) for c in within}
    assert _points(view.artists["candidates"].get_offsets()) == expected
    expected = {(round(c.macs_ratio, 9), round(100 * c.unproductive_macs_share, 9)) for c in over}
    assert _points(view.artists["refused"].get_offsets()) == expected
    assert view.ax.get_xscale() == "log"


def test_the_front_is_joined_in_order_of_compute(front):
    line = plot_front(front).artists["pareto"]
    xs, ys = list(line.get_xdata()), list(line.get_ydata())
    assert xs == sorted(xs)
    assert sorted(zip(xs, ys, strict=True)) == sorted(
        (c.macs_ratio, 100 * c.unproductive_macs_share) for c in front.pareto
    )


def test_original_and_picks_are_marked_and_labelled(front):
    view = plot_front(front)
    original = view.artists["original"]
    assert list(original.get_xdata()) == [1.0]  # the original's ratio is 1 by definition
    assert list(original.get_ydata()) == [100 * front.original.unproductive_macs_share]
    assert view.artists["original_label"].get_text() == "original"
    for name in PICKS:
        pick = front.picks[name]
        marker, label = view.artists[f"pick_{name}"], view.artists[f"pick_{name}_label"]
        assert (marker.get_xdata()[0], marker.get_ydata()[0]) == (
            pick.macs_ratio,
            100 * pick.unproductive_macs_share,
        )
        assert label.get_text() == name
        assert label.xy == (pick.macs_ratio, 100 * pick.unproductive_macs_share)
    legend = [t.get_text() for t in view.artists["legend"].get_texts()]
    assert {"original", "Pareto front", *PICKS} <= set(legend)


def test_budget_line_and_absolute_compute(front):
    view = plot_front(front)
    assert list(view.artists["budget"].get_xdata()) == [4.0, 4.0]
    assert view.artists["budget_label"].get_text() == "budget 4x"
    absolute = plot_front(front, relative=False)
    assert list(absolute.artists["original"].get_xdata()) == [front.original.macs]
    assert list(absolute.artists["budget"].get_xdata()) == [4.0 * front.original.macs] * 2
    pick = front["efficiency"]
    assert absolute.artists["pick_efficiency"].get_xdata()[0] == pick.macs
    assert "absolute" in absolute.ax.get_xlabel()


def test_share_of_parameters(front):
    view = plot_front(front, share="params")
    pick = front["hybrid"]
    assert view.artists["pick_hybrid"].get_ydata()[0] == 100 * pick.unproductive_params_share
    assert "parameters" in view.ax.get_ylabel()
    with pytest.raises(RFError, match="share must be"):
        plot_front(front, share="flops")  # type: ignore[arg-type]


def test_select_rings_a_candidate_and_nearest_finds_it(front):
    pick = front["performance"]
    view = plot_front(front, selected=pick)
    ring = view.artists["selected"]
    assert ring.get_visible()
    assert (ring.get_xdata()[0], ring.get_ydata()[0]) == (pick.macs_ratio, 100 * pick.unproductive_macs_share)
    view.figure.canvas.draw()
    found = view.nearest(pick.macs_ratio, 100 * pick.unproductive_macs_share)
    assert found is not None
    assert (found.macs_ratio, found.unproductive_macs_share) == (
        pick.macs_ratio,
        pick.unproductive_macs_share,
    )
    assert view.nearest(1e-9, -50.0) is None  # far from every mark
    view.select(None)
    assert not ring.get_visible()
    other = search(small_cnn(), 16, budget=2.0)
    with pytest.raises(RFError, match="not one of this search"):
        view.select(other.original)


def test_candidates_far_over_the_budget_are_counted_not_hidden_silently(front):
    view = plot_front(front)
    high = view.ax.get_xlim()[1]
    beyond = sum(1 for c in front if c.macs_ratio > high)
    assert view.hidden == beyond
    assert (
        (str(beyond) in view.artists["note"].get_text()) if beyond else view.artists["note"].get_text() == ""
    )


def test_draws_into_given_axes_and_renders(front, tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure()
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    view = plot_front(front, ax)
    assert view.ax is ax
    figure.savefig(tmp_path / "front.png")
    assert (tmp_path / "front.png").stat().st_size > 1000


def test_importing_the_views_does_not_import_matplotlib():
    code = "import sys, rf_widgets.strategies.views; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
