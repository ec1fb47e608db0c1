"""Package-level promises: a light import, a small public surface, the display formats."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import rf_widgets as rfw


def test_import_loads_no_heavy_dependency():
    code = (
        "import sys\n"
        "import rf_widgets\n"
        "heavy = [m for m in ('torch', 'numpy', 'matplotlib', 'ipywidgets') if m in sys.modules]\n"
        "print('loaded:', *heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["loaded:"]


def test_public_surface_is_explicit():
    assert "analyze" in rfw.__all__
    for name in rfw.__all__:
        assert hasattr(rfw, name), name


def _sample() -> rfw.Analysis:
    stack = rfw.Stack(
        [
            rfw.conv("c1", 3, stride=2),
            rfw.conv("c2", 3),
            rfw.conv("c3", 3),
            rfw.global_pool("gap"),
        ],
        name="sample",
    )
    return rfw.analyze(stack, 9)


def test_text_report():
    result = _sample()
    text = repr(result)
    header = text.splitlines()[0].split()
    assert header == ["layer", "op", "kernel", "stride", "r_min", "r_max", "jump", "map", "status"]
    # c3 sees c2's 2x2 map with a 3x3 kernel (rule B); c2 (r 7 < 9, a 4x4 input) is productive
    assert "sample at 9x9: border layer c3" in text
    assert "unproductive: 1 of 3 convolutions and pools (1 of 4 layers)" in text
    assert "unproductive (feature-map-covered) [border]" in text
    assert "global" in text


def test_html_report_is_colour_coded():
    result = _sample()
    html = result._repr_html_()
    assert html.count("<tr") == len(result.layers) + 1
    assert 'data-status="unproductive"' in html
    assert "#f4c7c3" in html  # the unproductive colour
    assert "border layer c3" in html


def test_to_dict_is_json():
    document = json.loads(json.dumps(_sample().to_dict()))
    assert document["layers"][-1]["r_max"] == "inf"
    assert document["schema_version"] == 2
    assert document["border_layer"] == "c3"


def test_to_pandas():
    pd = pytest.importorskip("pandas")
    frame = _sample().to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == ["c1", "c2", "c3", "gap"]
    assert frame.loc["c3", "status"] == "unproductive"
    assert frame["spatial"].tolist() == [True, True, True, False]
