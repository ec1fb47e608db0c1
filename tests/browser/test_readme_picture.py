"""``docs/make_screenshot.py``, which draws the README's picture of the Explorer, still works."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "make_screenshot.py"


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("rf_widgets_make_screenshot", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_readme_picture_script_photographs_the_explorer(chromium: Any, tmp_path: Path) -> None:
    from PIL import Image

    out = _script().make_screenshot(tmp_path / "explorer.png", browser=chromium)
    with Image.open(out) as picture:
        width, height = picture.size
    # Cropped to the Explorer down to its picture: about the window's width, not the whole page.
    assert 800 <= width <= 1000
    assert 700 <= height <= 1300
    assert out.stat().st_size < 400_000
