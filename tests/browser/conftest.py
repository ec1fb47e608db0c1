"""Servers and a headless Chromium for the real-browser tests.

Each server runs from a temporary directory with its own Jupyter config, data and runtime dirs (so a
developer's ``~/.jupyter`` cannot change what the test sees), on a free port, with a token, and is always
stopped in teardown. Missing pieces (``/usr/bin/chromium``, playwright, jupyterlab, voila) skip the tests,
except under ``CI=true``, where they fail: CI must really run them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
NOTEBOOK = HERE / "explorer_resnet18.ipynb"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path(os.environ.get("RF_WIDGETS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_TIMEOUT = 90.0
SERVER_STOP_TIMEOUT = 30.0
WIDGETS_LAB_EXTENSION = "@jupyter-widgets/jupyterlab-manager"

# The fixture notebook is data for the browser tests, never a notebook test of its own (nbval).
collect_ignore_glob = ["*.ipynb"]


def _missing_pieces() -> list[str]:
    missing = []
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"{CHROMIUM} (apt-get install -y chromium fonts-dejavu-core)")
    for module in ("playwright", "jupyterlab", "voila", "notebook"):
        if importlib.util.find_spec(module) is None:
            missing.append(f"the Python package {module} (pip install -e '.[browser]')")
    return missing


@pytest.fixture(scope="session")
def browser_stack() -> None:
    """Skip (or, under CI=true, fail) when the browser test stack is not installed."""
    missing = _missing_pieces()
    if missing:
        reason = "real-browser tests need " + "; ".join(missing)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " (CI=true: these tests must run)", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium(browser_stack: None) -> Iterator[Any]:
    """One headless Chromium for the session; every test opens its own context."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1400, "height": 1300})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """``test-artifacts/`` at the repository root (git-ignored): screenshots kept for CI."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@dataclass
class Server:
    url: str
    token: str
    root: Path
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


def _voila_command(notebook: Path, port: int, token: str) -> list[str]:
    """Voila serving ``notebook`` on 127.0.0.1:``port`` behind ``token``, without opening a browser."""
    return [
        sys.executable,
        "-m",
        "voila",
        str(notebook),
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
        f"--token={token}",
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _isolated_env(base: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        folder = base / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        env[name] = str(folder)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the server shuts its kernels down), then SIGKILL the process group if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=SERVER_STOP_TIMEOUT)
    # Kernels left behind by a server that had to be killed share its process group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _wait_until_ready(process: subprocess.Popen[bytes], probe: str, server: Server, any_status: bool) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{server.log_tail()}", pytrace=False)
        try:
            with urllib.request.urlopen(probe, timeout=5) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError:
            if any_status:  # the server answers: it is up
                return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"the server did not answer {probe} in {SERVER_START_TIMEOUT:.0f} s:\n{server.log_tail()}")


@contextlib.contextmanager
def _serve(
    command: list[str], env: dict[str, str], server: Server, probe: str, any_status: bool = False
) -> Iterator[Server]:
    with server.log.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=server.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_ready(process, probe, server, any_status)
        yield server
    finally:
        _stop(process)


def _lab(
    base: Path, widgets_enabled: bool = True, app: str = "jupyterlab"
) -> contextlib.AbstractContextManager[Server]:
    """JupyterLab (``app="jupyterlab"``) or Notebook 7 (``app="notebook"``, built on the same front end
    and server) on a free port, with isolated settings and the app object exposed as
    ``window.jupyterapp``."""
    root, workspaces, settings = base / "root", base / "workspaces", base / "settings"
    for folder in (root, workspaces, settings):
        folder.mkdir(parents=True)
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = _isolated_env(base / "jupyter")
    if not widgets_enabled:
        # What `jupyter labextension disable` writes, in the isolated config dir only.
        labconfig = Path(env["JUPYTER_CONFIG_DIR"]) / "labconfig"
        labconfig.mkdir(parents=True)
        (labconfig / "page_config.json").write_text(
            json.dumps({"disabledExtensions": {WIDGETS_LAB_EXTENSION: True}})
        )
    port, token = _free_port(), secrets.token_hex(16)
    server = Server(f"http://127.0.0.1:{port}", token, root, base / f"{app}.log")
    config = {"jupyterlab": "LabApp", "notebook": "JupyterNotebookApp"}[app]
    command = [
        sys.executable,
        "-m",
        app,
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        "--allow-root",
        f"--ServerApp.root_dir={root}",
        f"--{config}.workspaces_dir={workspaces}",
        f"--{config}.user_settings_dir={settings}",
        f"--{config}.expose_app_in_browser=True",
    ]
    return _serve(command, env, server, f"{server.url}/api/status?token={token}")


@pytest.fixture
def lab(browser_stack: None, tmp_path: Path) -> Iterator[Server]:
    """JupyterLab serving a copy of the fixture notebook."""
    with _lab(tmp_path) as server:
        yield server


@pytest.fixture
def notebook7(browser_stack: None, tmp_path: Path) -> Iterator[Server]:
    """Notebook 7 (the classic notebook's successor) serving a copy of the fixture notebook."""
    with _lab(tmp_path, app="notebook") as server:
        yield server


@pytest.fixture
def lab_without_widgets(browser_stack: None, tmp_path: Path) -> Iterator[Server]:
    """JupyterLab with the ipywidgets front end (the widget manager extension) disabled."""
    with _lab(tmp_path, widgets_enabled=False) as server:
        yield server


@pytest.fixture
def voila(browser_stack: None, tmp_path: Path) -> Iterator[Server]:
    """Voila serving a copy of the fixture notebook as an app at ``/``."""
    root = tmp_path / "root"
    root.mkdir()
    notebook = root / NOTEBOOK.name
    shutil.copy(NOTEBOOK, notebook)
    env = _isolated_env(tmp_path / "jupyter")
    port, token = _free_port(), secrets.token_hex(16)
    server = Server(f"http://127.0.0.1:{port}", token, root, tmp_path / "voila.log")
    command = _voila_command(notebook, port, token)
    # Any answer from a static path means the server is up; probing `/` would execute the notebook.
    with _serve(command, env, server, f"{server.url}/voila/static/", any_status=True) as running:
        yield running
