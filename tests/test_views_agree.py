"""One analysis, every view: the text report, the HTML table, JSON, the Explorer's summary and its plots.

Each view formats the verdicts on its own (text, HTML, JSON, matplotlib artists); this checks that they
all show the same border layer, the same status per layer and the same counts.
"""

from __future__ import annotations

import html
import json
import re

import pytest
from matplotlib.colors import to_rgba

import rf_widgets as rfw
from rf_widgets import _format
from rf_widgets.core import results
from rf_widgets.plotting import BORDER_COLOUR

torchvision = pytest.importorskip("torchvision")


@pytest.fixture(scope="module")
def explorer():
    return rfw.explore(torchvision.models.resnet18(), input_size=32, name="resnet18")


@pytest.mark.parametrize("size", [32, 64, 96, 224])
def test_every_view_agrees(explorer, size):
    explorer.controls["resolution"].value = size
    result = explorer.result
    assert result.input_size == (size, size)
    border = result.border_layer
    statuses = [layer.status for layer in result.layers]

    # text report
    text = repr(result)
    assert f"resnet18 at {size}x{size}: border layer {border or 'none'}" in text
    assert f"unproductive: {results.spatial_line(result)}" in text
    tagged = [line.split()[0] for line in text.splitlines() if line.endswith("[border]")]
    assert tagged == ([border] if border else [])

    # HTML table: one row per layer, coloured by status, the border row outlined
    page = result._repr_html_()
    assert re.findall(r'data-status="(\w+)"', page) == statuses
    bold = re.findall(r'<tr style="[^"]*font-weight:bold[^"]*"[^>]*><td>([^<]+)</td>', page)
    assert bold == ([border] if border else [])
    assert html.escape(f"border layer {border or 'none'}") in page

    # JSON
    document = json.loads(result.to_json())
    assert document["border_layer"] == border
    assert [layer["status"] for layer in document["layers"]] == statuses
    assert document["unproductive_layers"] == [
        n for n, s in zip(result.stack.names, statuses, strict=True) if s == "unproductive"
    ]
    assert document["resolution_range"] == dict(zip(("min", "max"), result.resolution_range, strict=True))

    # the Explorer's summary and its HTML table
    summary = html.unescape(explorer.summary.value)
    assert f"<td>{border or 'none'}</td>" in summary
    assert results.spatial_line(result) in summary
    assert _format.feasible_range(*result.resolution_range) in summary
    assert re.findall(r'data-status="(\w+)"', explorer.table.value) == statuses

    # the strip marks the border cell and the growth plot draws its line there
    strip = explorer.renderer.strip
    label = strip.artists["border_label"]
    assert (label.get_text() if label.get_visible() else "") == (f"border: {border}" if border else "")
    outlined = [name for name, cell in strip.cells.items() if cell.get_edgecolor() == to_rgba(BORDER_COLOUR)]
    assert outlined == ([border] if border else [])
    growth = explorer.renderer.growth
    line = growth.artists["border"]
    if border:
        assert line.get_visible()
        assert growth.layer_names[int(line.get_xdata()[0])] == border
    else:
        assert not line.get_visible()
