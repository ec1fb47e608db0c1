"""Write ``docs/images/explorer.png``, the README's picture of the Explorer.

    .venv/bin/python docs/make_screenshot.py            # or: --out some/other.png

Voila serves a one-cell notebook (ResNet18 on the Grace Hopper photograph at 96x96, one unit of
``layer3.0.conv2`` picked) and headless Chromium photographs the Explorer from its summary down to the
end of its picture; the layer table below is left out. The servers and the browser are set up exactly
as in the real-browser tests (``tests/browser/conftest.py``), which also run this script once
(``tests/browser/test_readme_picture.py``). Needs ``/usr/bin/chromium`` and the ``browser`` extra.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import secrets
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "images" / "explorer.png"
WIDTH = 1000  # CSS pixels of the browser window: the picture is about this wide
MARKER = "rfw-readme-picture"  # a class on the Explorer, to find it on the page
SOURCE = f"""\
import torchvision

import rf_widgets as rfw

explorer = rfw.explore(torchvision.models.resnet18(), image="grace_hopper", input_size=96)
explorer.controls["layer"].value = "layer3.0.conv2"
explorer.controls["unit_0"].value = 2
explorer.controls["unit_1"].value = 3
explorer.add_class("{MARKER}")
explorer
"""
RENDER_TIMEOUT = 120_000  # ms: kernel start, torch import, tracing and the first picture


def _browser_helpers() -> ModuleType:
    """The server and browser helpers of the real-browser tests, loaded from their file."""
    path = REPO / "tests" / "browser" / "conftest.py"
    spec = importlib.util.spec_from_file_location("rf_widgets_browser_helpers", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def _notebook() -> dict[str, object]:
    return {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": "readme-picture",
                "metadata": {},
                "outputs": [],
                "source": SOURCE.splitlines(keepends=True),
            }
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _shrink(png: bytes) -> bytes:
    """Quantize to 256 colours: a third of the bytes, no visible change on a picture of flat plots."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        out = io.BytesIO()
        small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def make_screenshot(out: Path = DEFAULT_OUT, browser: Any = None) -> Path:
    """Serve the notebook with Voila, photograph the Explorer, write the PNG to ``out``.

    ``browser`` is a running playwright Chromium (the browser tests pass theirs: one sync playwright
    per process); without it one is launched and closed here.
    """
    helpers = _browser_helpers()
    with tempfile.TemporaryDirectory(prefix="rfw-readme-picture-") as tmp:
        base = Path(tmp)
        root = base / "root"
        root.mkdir()
        notebook = root / "explorer.ipynb"
        notebook.write_text(json.dumps(_notebook(), indent=1))
        port, token = helpers._free_port(), secrets.token_hex(16)
        server = helpers.Server(f"http://127.0.0.1:{port}", token, root, base / "voila.log")
        command = helpers._voila_command(notebook, port, token)
        env = helpers._isolated_env(base / "jupyter")
        probe = f"{server.url}/voila/static/"
        with helpers._serve(command, env, server, probe, any_status=True):
            if browser is not None:
                png = _photograph(browser, f"{server.url}/?token={token}")
            else:
                from playwright.sync_api import sync_playwright

                with sync_playwright() as playwright:
                    own = playwright.chromium.launch(
                        executable_path=str(helpers.CHROMIUM), headless=True, args=helpers.CHROMIUM_ARGS
                    )
                    try:
                        png = _photograph(own, f"{server.url}/?token={token}")
                    finally:
                        own.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(_shrink(png))
    return out


def _photograph(browser: Any, url: str) -> bytes:
    """The Explorer on the page at ``url``, from its summary to the bottom of its picture, as PNG."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": WIDTH, "height": 1400}, device_scale_factor=1)
    try:
        page = context.new_page()
        page.goto(url, wait_until="commit", timeout=RENDER_TIMEOUT)  # Voila runs the notebook first
        explorer = page.locator(f".{MARKER}")
        expect(explorer.locator(".rfw-summary")).to_contain_text("layer", timeout=RENDER_TIMEOUT)
        picture = explorer.locator("img").last
        expect(picture).to_be_visible()
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=picture.element_handle())
        page.wait_for_timeout(500)  # the picture's layout settles after the bytes arrive
        top, bottom = explorer.bounding_box(), picture.bounding_box()
        assert top is not None
        assert bottom is not None
        clip = {
            "x": top["x"],
            "y": top["y"],
            "width": top["width"],
            "height": bottom["y"] + bottom["height"] - top["y"] + 8,
        }
        return bytes(page.screenshot(clip=clip, full_page=True))
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    args = parser.parse_args()
    path = make_screenshot(args.out)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
