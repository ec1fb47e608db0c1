"""The matplotlib views: artist geometry against hand-computed numbers, updates in place, rendering."""

from __future__ import annotations

import dataclasses
import io
import math
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.colors import to_rgba

import rf_widgets as rfw
from rf_widgets.core.results import STATUS_COLOURS
from rf_widgets.plotting import (
    BORDER_COLOUR,
    _assign_lanes,
    draw_unit_field,
    plot_architecture,
    plot_growth,
)


def _bounds(rect) -> tuple[float, float, float, float]:
    return (rect.get_x(), rect.get_y(), rect.get_width(), rect.get_height())


@pytest.fixture
def sequential() -> rfw.Analysis:
    stack = rfw.Stack([rfw.conv("c1", 3, padding=1), rfw.pool("p1", 2), rfw.conv("c2", 3, padding=1)])
    return rfw.analyze(stack, 8)


@pytest.fixture
def branchy() -> rfw.Analysis:
    # a: r 3, P 1, J 1.  b (5x5, pad 2) after a: r 3 + 4 = 7, P 1 + 2 = 3.  s = b + a: r_max 7, r_min 3.
    stack = rfw.Stack(
        [rfw.conv("a", 3, padding=1), rfw.conv("b", 5, padding=2), rfw.add("s", ["b", "a"])], name="branchy"
    )
    return rfw.analyze(stack, 16)


@pytest.fixture
def small() -> rfw.Stack:
    # r: c1 3, p1 4 (J 2), c2 8, p2 10 (J 4), c3 18, gap global.
    return rfw.Stack(
        [
            rfw.conv("c1", 3, padding=1),
            rfw.pool("p1", 2),
            rfw.conv("c2", 3, padding=1),
            rfw.pool("p2", 2),
            rfw.conv("c3", 3, padding=1),
            rfw.global_pool("gap"),
        ],
        name="small",
    )


@pytest.fixture(scope="module")
def resnet18() -> rfw.Analysis:
    torchvision = pytest.importorskip("torchvision")
    return rfw.analyze(torchvision.models.resnet18(), 32)


# -- unit field overlay -------------------------------------------------------------------------------


def test_r_max_box_of_a_unit_is_where_the_hand_computation_puts_it(sequential):
    # SPEC section 2, from r = 1, J = 1, P = 0:
    #   c1 (k 3, s 1, p 1): r = 1 + 2*1 = 3, P = 0 + 1*1 = 1, J = 1
    #   p1 (k 2, s 2, p 0): r = 3 + 1*1 = 4, P = 1,           J = 2
    #   c2 (k 3, s 1, p 1): r = 4 + 2*2 = 8, P = 1 + 1*2 = 3, J = 2
    # Unit (1, 2) of c2 sees rows [1*2 - 3, -1 + 8 - 1] = [-1, 6] and columns [2*2 - 3, 1 + 7] = [1, 8].
    # As a rectangle over pixels: x from 1 - 0.5 = 0.5, y from -1 - 0.5 = -1.5, 8 x 8 pixels.
    view = draw_unit_field(sequential, "c2", (1, 2))
    assert _bounds(view.artists["r_max"]) == (0.5, -1.5, 8.0, 8.0)
    # One path only: the r_min box is the same box.
    assert _bounds(view.artists["r_min"]) == (0.5, -1.5, 8.0, 8.0)
    # The chosen unit's centre: column 1 + 3.5 = 4.5, row -1 + 3.5 = 2.5.
    assert view.artists["unit"].get_xdata().tolist() == [4.5]
    assert view.artists["unit"].get_ydata().tolist() == [2.5]


def test_image_covers_one_cell_per_input_pixel(sequential):
    view = draw_unit_field(sequential, "c2", image=np.zeros((5, 5), dtype=np.uint8))
    image = view.artists["image"]
    assert tuple(image.get_extent()) == (-0.5, 7.5, 7.5, -0.5)
    assert image.get_array().shape == (8, 8, 3)
    assert _bounds(view.artists["frame"]) == (-0.5, -0.5, 8.0, 8.0)


def test_unit_centres_cover_the_feature_map(sequential):
    # c2 has a 4x4 map; centre of unit u = u*2 - 3 + (8 - 1)/2 = 2u + 0.5 on both axes.
    view = draw_unit_field(sequential, "c2")
    offsets = np.asarray(view.artists["centres"].get_offsets())
    assert offsets.shape == (16, 2)
    assert sorted(set(offsets[:, 0].tolist())) == [0.5, 2.5, 4.5, 6.5]
    assert sorted(set(offsets[:, 1].tolist())) == [0.5, 2.5, 4.5, 6.5]


def test_big_maps_are_subsampled_to_64_per_axis():
    result = rfw.analyze([rfw.conv("c", 1)], 100)
    offsets = np.asarray(draw_unit_field(result, "c").artists["centres"].get_offsets())
    assert offsets.shape == (64 * 64, 2)
    assert offsets[:, 0].min() == 0
    assert offsets[:, 0].max() == 99


def test_r_min_box_differs_on_a_branchy_stack(branchy):
    # Unit (4, 6) of s.  r_max path (through b): rows 4 - 3 = 1 .. 7, columns 6 - 3 = 3 .. 9.
    # r_min path (a only): rows 4 - 1 = 3 .. 5, columns 5 .. 7.  Both centred on (row 4, column 6).
    view = draw_unit_field(branchy, "s", (4, 6))
    assert _bounds(view.artists["r_max"]) == (2.5, 0.5, 7.0, 7.0)
    assert _bounds(view.artists["r_min"]) == (4.5, 2.5, 3.0, 3.0)
    assert not view.artists["padding"].get_visible()


def test_padding_is_drawn_where_the_box_leaves_the_image(sequential):
    view = draw_unit_field(sequential, "c2", (1, 2))
    padding = view.artists["padding"]
    # The box reaches row -1 and column 8 of an 8x8 image: the padding region spans the box.
    assert padding.get_visible()
    assert _bounds(padding) == (0.5, -1.5, 8.0, 8.0)
    assert padding.get_hatch()
    # The view shows the whole box, not only the image.
    left, right = view.ax.get_xlim()
    bottom, top = view.ax.get_ylim()
    assert left <= -0.5
    assert right >= 8.5
    assert top <= -1.5
    assert bottom >= 7.5


def test_update_moves_the_same_artists(sequential):
    view = draw_unit_field(sequential, "c2", (1, 2))
    rect, padding, centres = view.artists["r_max"], view.artists["padding"], view.artists["centres"]
    view.update(sequential, "c2", (0, 0))
    # Unit (0, 0): rows and columns [-3, 4].
    assert view.artists["r_max"] is rect
    assert _bounds(rect) == (-3.5, -3.5, 8.0, 8.0)
    # At 16 px the centre unit of the 8x8 map of c2 is (3, 3): [3*2 - 3, 3 + 7] = [3, 10], all inside.
    view.update(sequential.at(16), "c2")
    assert view.artists["r_max"] is rect
    assert view.artists["padding"] is padding
    assert view.artists["centres"] is centres
    assert _bounds(rect) == (2.5, 2.5, 8.0, 8.0)
    assert not padding.get_visible()
    assert tuple(view.artists["image"].get_extent()) == (-0.5, 15.5, 15.5, -0.5)
    assert len(np.asarray(centres.get_offsets())) == 64


def test_set_image_replaces_the_picture_in_place():
    result = rfw.analyze([rfw.conv("c", 3)], 8)
    view = draw_unit_field(result, "c")
    image = view.artists["image"]
    assert np.all(np.asarray(image.get_array()) == 128)  # neutral grey
    # A wide image is centre-cropped to the square input: only the green middle survives.
    wide = np.zeros((10, 20, 3), dtype=np.uint8)
    wide[:, :5, 0] = 255
    wide[:, 5:15, 1] = 255
    wide[:, 15:, 2] = 255
    view.set_image(wide)
    assert view.artists["image"] is image
    shown = np.asarray(image.get_array())
    assert shown.shape == (8, 8, 3)
    assert np.all(shown == [0, 255, 0])
    view.set_image(np.linspace(0.0, 1.0, 64).reshape(8, 8))  # float greyscale in [0, 1]
    shown = np.asarray(image.get_array())
    assert shown.dtype == np.uint8
    assert shown[0, 0, 0] == 0
    assert shown[-1, -1, 0] == 255


def test_global_layer_has_no_box(small):
    view = draw_unit_field(rfw.analyze(small, 8), "gap")
    assert "global: sees the whole input" in view.artists["title"].get_text()
    assert not view.artists["r_max"].get_visible()
    assert not view.artists["centres"].get_visible()
    view.update(rfw.analyze(small, 8), "c1")
    assert view.artists["r_max"].get_visible()
    title = view.artists["title"].get_text()
    assert "c1" in title
    assert "r_max 3" in title
    assert "map 8x8" in title
    assert "productive" in title


def test_title_names_status_and_border(small):
    view = draw_unit_field(rfw.analyze(small, 9), "p2")
    assert "critical" in view.artists["title"].get_text()
    assert "border layer" in view.artists["title"].get_text()


def test_bad_image_shape_is_a_clear_error(sequential):
    with pytest.raises(rfw.RFError, match="shape"):
        draw_unit_field(sequential, "c2", image=np.zeros((4, 4, 2)))


# -- growth plot --------------------------------------------------------------------------------------


def test_growth_lines_resolution_border_and_shading(small):
    result = rfw.analyze(small, 9)
    view = plot_growth(result)
    x = view.artists["r_max"].get_xdata().tolist()
    assert x == [0, 1, 2, 3, 4, 5]
    r_max = view.artists["r_max"].get_ydata().tolist()
    assert r_max[:5] == [3, 4, 8, 10, 18]
    assert math.isnan(r_max[5])
    assert view.artists["r_min"].get_ydata().tolist()[:5] == [3, 4, 8, 10, 18]
    assert view.artists["global"].get_xdata().tolist() == [5]
    assert view.artists["resolution"].get_ydata().tolist() == [9, 9]
    # At 9 px: p2 (index 3) is critical with an unproductive successor c3 -> border layer p2.
    assert view.artists["border"].get_xdata().tolist() == [3, 3]
    assert view.artists["border_label"].get_text() == "border: p2"
    assert view.artists["critical"].get_xdata().tolist() == [3]
    assert view.artists["critical"].get_ydata().tolist() == [10]
    assert len(view.artists["unproductive"].get_paths()) == 1
    # Feasible input sizes 16 to 18.
    band = view.artists["band"]
    assert band.get_visible()
    assert (band.get_y(), band.get_height()) == (16, 2)
    assert view.ax.get_xlim() == (-0.5, 5.5)


def test_growth_update_keeps_artists(small):
    view = plot_growth(rfw.analyze(small, 9))
    line, border, shading = view.artists["r_max"], view.artists["border"], view.artists["unproductive"]
    view.update(rfw.analyze(small, 8))
    # At 8 px c2 (r 8) is productive; p2 (r 10, input r 8 >= 8) and c3 are unproductive: the tail
    # starts at p2.
    assert view.artists["r_max"] is line
    assert view.artists["border"] is border
    assert border.get_xdata().tolist() == [3, 3]
    assert view.artists["unproductive"] is shading
    assert len(shading.get_paths()) == 2
    assert view.artists["resolution"].get_ydata().tolist() == [8, 8]
    view.update(rfw.analyze(small, 32))
    assert not border.get_visible()
    assert len(shading.get_paths()) == 0


def test_growth_windows_only_and_log(small):
    view = plot_growth(rfw.analyze(small, 32), which="windows", log=True)
    assert view.layer_names == ("c1", "p1", "c2", "p2", "c3")
    assert view.ax.get_yscale() == "log"
    assert [t.get_text() for t in view.ax.get_xticklabels()] == ["c1", "p1", "c2", "p2", "c3"]
    with pytest.raises(rfw.RFError, match="which"):
        plot_growth(rfw.analyze(small, 32), which="convs")  # type: ignore[arg-type]


def test_growth_notes_an_empty_feasible_range(small):
    result = dataclasses.replace(rfw.analyze(small, 9), resolution_range=(300, 200))
    view = plot_growth(result)
    assert not view.artists["band"].get_visible()
    assert "smallest size without unproductive layers (300) exceeds the largest field (200)" in (
        view.artists["note"].get_text()
    )


def test_growth_resnet18(resnet18):
    view = plot_growth(resnet18)
    names = [layer.name for layer in resnet18.layers]
    border = names.index("layer3.0.conv2")
    assert view.artists["border"].get_xdata().tolist() == [border, border]
    assert len(view.artists["unproductive"].get_paths()) == len(resnet18.unproductive_layers) == 17
    r_max = view.artists["r_max"].get_ydata()
    assert r_max[names.index("layer4.1.conv2")] == 435
    assert view.artists["r_min"].get_ydata()[names.index("layer2.0.conv2")] == 35
    assert view.artists["resolution"].get_ydata().tolist() == [32, 32]
    band = view.artists["band"]
    assert (band.get_y(), band.get_y() + band.get_height()) == (97, 435)


# -- architecture strip -------------------------------------------------------------------------------


def test_cells_are_coloured_by_status_and_border_outlined(small):
    result = rfw.analyze(small, 9)
    strip = plot_architecture(result)
    assert list(strip.cells) == ["c1", "p1", "c2", "p2", "c3", "gap"]
    for layer in result.layers:
        assert strip.cells[layer.name].get_facecolor() == to_rgba(STATUS_COLOURS[layer.status])
    assert strip.cells["p2"].get_edgecolor() == to_rgba(BORDER_COLOUR)
    assert strip.artists["border_label"].get_text() == "border: p2"
    assert set(strip.lanes.values()) == {0}  # a chain stays in one lane


def test_update_recolours_the_same_cells(small):
    strip = plot_architecture(rfw.analyze(small, 9))
    cell = strip.cells["p2"]
    assert cell.get_edgecolor() == to_rgba(BORDER_COLOUR)
    result = rfw.analyze(small, 16)  # c3 is critical at 16, nothing is unproductive: no border
    strip.update(result)
    assert strip.cells["p2"] is cell
    for layer in result.layers:
        assert strip.cells[layer.name].get_facecolor() == to_rgba(STATUS_COLOURS[layer.status])
    assert result.layer("c3").status == "critical"
    assert all(c.get_edgecolor() != to_rgba(BORDER_COLOUR) for c in strip.cells.values())


def test_parallel_branches_get_their_own_lanes_and_layer_at_round_trips():
    stacks = rfw.Stack(
        [
            rfw.conv("stem", 3),
            rfw.conv("left", 3, inputs="stem"),
            rfw.conv("middle", 1, inputs="stem"),
            rfw.conv("right", 5, inputs="stem"),
            rfw.concat("join", ["left", "middle", "right"]),
            rfw.conv("head", 1),
        ]
    )
    strip = plot_architecture(rfw.analyze(stacks, 32))
    lanes = strip.lanes
    assert len({lanes["left"], lanes["middle"], lanes["right"]}) == 3
    assert lanes["stem"] == lanes["join"] == lanes["head"] == 0
    for name, cell in strip.cells.items():
        x = cell.get_x() + cell.get_width() / 2
        y = cell.get_y() + cell.get_height() / 2
        assert strip.layer_at(x, y) == name
        assert strip.layer_at(x + 0.3, y - 0.3) == name
    assert strip.layer_at(0.5, 0) is None  # the gap between two cells
    assert strip.layer_at(None, None) is None
    assert len(strip.artists["edges"].get_paths()) == 7


def test_lane_rule():
    # A residual block: the identity path keeps lane 0, the convolutions take lane 1.
    assert _assign_lanes([[], [0], [1], [2, 0], [3]]) == [0, 1, 1, 0, 0]
    # A lane becomes free again once its last consumer is placed.
    assert _assign_lanes([[], [0], [0], [1, 2], [3], [3], [4, 5]]) == [0, 1, 0, 0, 1, 0, 0]


def test_architecture_rebuilds_when_the_layer_list_changes(small):
    strip = plot_architecture(rfw.analyze(small, 9))
    old = list(strip.cells.values())
    strip.update(rfw.analyze([rfw.conv("x", 3), rfw.conv("y", 3)], 9))
    assert list(strip.cells) == ["x", "y"]
    patches = strip.artists["cell_patches"]
    assert patches in strip.ax.get_children()
    assert len(patches.get_paths()) == 2
    assert not any(cell in strip.cells.values() for cell in old)


def test_architecture_resnet18(resnet18):
    strip = plot_architecture(resnet18)
    assert len(strip.cells) == len(resnet18.layers)
    assert strip.cells["layer3.0.conv2"].get_edgecolor() == to_rgba(BORDER_COLOUR)
    for layer in resnet18.layers:
        assert strip.cells[layer.name].get_facecolor() == to_rgba(STATUS_COLOURS[layer.status])
    lanes = strip.lanes
    assert lanes["layer1.0.conv1"] != lanes["maxpool"]
    assert lanes["layer2.0.conv1"] != lanes["layer2.0.downsample.0"]
    windows = plot_architecture(resnet18, which="windows")
    assert "layer2.0.bn1" not in windows.cells
    assert "layer2.0.downsample.0" in windows.cells
    assert windows.lanes["layer2.0.conv1"] != windows.lanes["layer2.0.downsample.0"]


# -- rendering and dependencies -----------------------------------------------------------------------


def test_every_view_renders_to_png(small):
    result = rfw.analyze(small, 9)
    views = [
        plot_growth(result),
        plot_growth(result, log=True, which="windows"),
        draw_unit_field(result, "c2", image=np.random.default_rng(0).random((20, 30, 3))),
        draw_unit_field(result, "gap"),
        plot_architecture(result),
    ]
    for view in views:
        buffer = io.BytesIO()
        view.ax.figure.savefig(buffer, format="png")
        assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plotting_imports_neither_pyplot_torch_nor_ipywidgets():
    code = (
        "import sys, rf_widgets as rfw, rf_widgets.plotting as p\n"
        "p.plot_growth(rfw.analyze([rfw.conv('c', 3)], 8))\n"
        "print(','.join(m for m in ('matplotlib.pyplot', 'torch', 'ipywidgets') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
