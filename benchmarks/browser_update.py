"""In the browser: from a size typed into the Explorer's number box to the new picture on the screen.

    .venv/bin/python benchmarks/browser_update.py [--models resnet18,resnet50] [--repeat 20]

For each model, Voila serves a notebook with ``rfw.explore(model, image="checkerboard",
input_size=224)`` (this checkout's rf_widgets) and headless Chromium (``/usr/bin/chromium``) opens it.
Each sample types a size into the number box beside the slider and presses Enter; the time runs in the
page from that key press until the picture's ``<img>`` has a new source, decoded and painted (the next
animation frame). It covers the message to the kernel, the analysis, the redraw, the JPEG, the message
back and the decode. Also printed: the first page render (from the request to the first picture).
Target (issue 20): median under 150 ms for ResNet18 and ResNet50 on an idle 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("RF_WIDGETS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NUMBER_BOX = ".widget-hbox:has(> .rfw-resolution) input[type='number']"
ARM = """() => {
    const input = document.querySelector(arguments_selector);
    const img = document.querySelector('img.rfw-picture');
    let start = null;
    window.__rfwDone = new Promise((resolve) => {
        const onKey = (event) => { if (event.key === 'Enter') start = performance.now(); };
        input.addEventListener('keydown', onKey, { capture: true, once: true });
        const observer = new MutationObserver(() => {
            observer.disconnect();
            img.decode().then(() => requestAnimationFrame(() => resolve(performance.now() - start)));
        });
        observer.observe(img, { attributes: true, attributeFilter: ['src'] });
    });
}""".replace("arguments_selector", json.dumps(NUMBER_BOX))


def _notebook(folder: Path, model: str) -> Path:
    source = (
        "import torchvision\n\nimport rf_widgets as rfw\n\n"
        f'rfw.explore(torchvision.models.get_model("{model}"), image="checkerboard", input_size=224)'
    )
    cell = {"cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None}
    notebook = {
        "cells": [cell],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = folder / f"{model}.ipynb"
    path.write_text(json.dumps(notebook))
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(notebook: Path, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Voila on a free local port, with this checkout first on the kernel's path."""
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        (folder / name.lower()).mkdir(exist_ok=True)
        env[name] = str(folder / name.lower())
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    command = [sys.executable, "-m", "voila", str(notebook), "--no-browser", f"--port={port}"]
    command += ["--Voila.ip=127.0.0.1", f"--token={token}"]
    log = (folder / "voila.log").open("wb")
    process = subprocess.Popen(
        command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/voila/static/", timeout=5)
            break
        except urllib.error.HTTPError:
            break  # it answers
        except OSError:
            time.sleep(0.3)
    else:
        raise SystemExit(f"voila did not start: see {folder / 'voila.log'}")
    return process, f"{url}/?token={token}"


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def measure(browser: object, model: str, repeat: int) -> tuple[float, list[float]]:
    """First render (s) and the times (ms) from Enter in the size box to the new picture painted."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        process, url = _serve(_notebook(folder, model), folder)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})  # type: ignore[attr-defined]
            start = time.perf_counter()
            page.goto(url, wait_until="commit", timeout=180_000)
            page.wait_for_selector("img.rfw-picture[src]", timeout=180_000)
            first = time.perf_counter() - start
            box = page.locator(NUMBER_BOX)
            page.wait_for_timeout(1000)
            times = []
            for i in range(repeat):
                size = 224 - 8 * (i % 20 + 1)
                page.evaluate(ARM)
                box.fill(str(size))
                box.press("Enter")
                times.append(float(page.evaluate("window.__rfwDone")))
                page.wait_for_timeout(300)  # idle between samples: no update still on its way
            page.close()
            return first, times
        finally:
            _stop(process)


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="resnet18,resnet50")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"typed size -> new picture painted, Voila + headless Chromium, {args.repeat} sizes per model")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            for model in args.models.split(","):
                first, times = measure(browser, model, args.repeat)
                ordered = sorted(times)
                p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
                print(
                    f"{model:12s} median {statistics.median(times):6.1f} ms  p90 {p90:6.1f} ms  "
                    f"max {ordered[-1]:6.1f} ms   first page render {first:5.1f} s",
                    flush=True,
                )
        finally:
            browser.close()


if __name__ == "__main__":
    main()
