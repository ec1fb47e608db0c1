"""tasks.py: what each command installs and runs, the CPU-torch fallback, and a demo that stops at Ctrl-C.

The commands ``tasks.py`` would run are recorded instead of run (installing takes minutes); the server
stop is real: a child process in its own session, and one SIGINT to ``tasks.py`` as a terminal's Ctrl-C.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def tasks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """tasks.py with its ``.venv`` in a temporary folder and ``run`` recording the commands."""
    spec = importlib.util.spec_from_file_location("tasks_under_test", REPO / "tasks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    venv = tmp_path / ".venv"
    monkeypatch.setattr(module, "VENV", venv)
    monkeypatch.setattr(module, "PYTHON", venv / "bin" / "python")
    monkeypatch.setattr(module, "STAMP", venv / ".rf_widgets-installed")
    module.ran = []
    monkeypatch.setattr(module, "run", lambda *args: module.ran.append([str(a) for a in args]))
    monkeypatch.setenv("RF_WIDGETS_QUICK", "1")
    return module


def _pytest_command(ran: list[list[str]]) -> list[str]:
    (command,) = [c for c in ran if c[1:3] == ["-m", "pytest"]]
    return command


def test_the_whole_suite_runs_notebooks_and_slow_tests_and_prints_the_25_slowest(tasks, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    tasks.test()
    tools = [c[2] for c in tasks.ran]
    assert tools == ["ruff", "ruff", "mypy", "pytest"]
    command = _pytest_command(tasks.ran)
    assert "--durations=25" in command
    assert "-m" not in command[3:]  # no marker selection: the slow tests run
    assert command[command.index("tests") :][:2] == ["tests", "notebooks"]
    assert {"--nbval-lax", "--nbval-current-env"} <= set(command)
    # two workers on two cores; a notebook's cells share a kernel: each file stays on one worker
    assert command[command.index("-n") : command.index("-n") + 4] == ["-n", "2", "--dist", "loadfile"]


def test_one_core_runs_in_one_process(tasks, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    tasks.test()
    assert "-n" not in _pytest_command(tasks.ran)


def test_quick_leaves_out_the_slow_marker_and_the_notebooks(tasks):
    tasks.test("--quick", "-x")
    command = _pytest_command(tasks.ran)
    assert command[command.index("-m", 3) + 1] == "not slow"
    assert "notebooks" not in command
    assert "--nbval-lax" not in command
    assert "--quick" not in command
    assert command[-1] == "-x"  # other options go on to pytest
    assert "--durations=25" in command


def _setup(tasks, monkeypatch, command: str, reachable: bool) -> list[list[str]]:
    tasks.VENV.mkdir()
    tasks.PYTHON.parent.mkdir()
    tasks.PYTHON.write_text("")  # an existing venv: nothing is created
    monkeypatch.setattr(tasks, "_reachable", lambda url, timeout=10.0: reachable)
    tasks.setup(command)
    return tasks.ran


def test_torch_comes_from_the_cpu_index_when_it_answers(tasks, monkeypatch, capsys):
    ran = _setup(tasks, monkeypatch, "demo", reachable=True)
    torch = [c for c in ran if "torch" in c]
    assert torch == [
        [str(tasks.PYTHON), "-m", "pip", "install", "--quiet", "--index-url", tasks.TORCH_CPU_INDEX]
        + ["torch", "torchvision"]
    ]
    assert tasks.TORCH_CPU_INDEX == "https://download.pytorch.org/whl/cpu"
    assert ran[-1][-1] == ".[demo]"  # after torch: torch is then already there
    printed = capsys.readouterr().out
    assert "cannot be reached" not in printed
    assert "set-up done in " in printed
    assert " GB" in printed


def test_an_unreachable_cpu_index_falls_back_to_the_default_index_with_one_line(tasks, monkeypatch, capsys):
    ran = _setup(tasks, monkeypatch, "test", reachable=False)
    assert not any("--index-url" in c for c in ran)
    assert ran[-1][-1] == ".[dev]"
    lines = [line for line in capsys.readouterr().out.splitlines() if "cannot be reached" in line]
    assert lines == [
        "the PyTorch CPU index https://download.pytorch.org/whl/cpu cannot be reached: torch comes from "
        "the default index (on Linux the CUDA build, several GB)"
    ]


def test_the_cpu_index_is_really_probed(tasks):
    # here the index is not reachable (no network but the package registries); a refused port stands in
    assert not tasks._reachable("http://127.0.0.1:9/whl/cpu/torch/", timeout=5)
    assert not tasks._reachable("https://download.invalid/whl/cpu/torch/", timeout=5)


def test_a_test_set_up_serves_the_demo_too_and_a_changed_pyproject_reinstalls(tasks, monkeypatch):
    assert not tasks.is_set_up("demo")
    _setup(tasks, monkeypatch, "test", reachable=False)
    assert tasks.is_set_up("test")
    assert tasks.is_set_up("demo")  # dev contains demo
    stamp = json.loads(tasks.STAMP.read_text())
    assert stamp["extras"] == ["dev"]
    tasks.STAMP.write_text(json.dumps({**stamp, "pyproject": "0" * 64}))
    assert not tasks.is_set_up("demo")
    tasks.STAMP.write_text(json.dumps({**stamp, "extras": ["demo"]}))
    assert not tasks.is_set_up("test")


def test_the_demo_extra_is_in_the_dev_extra():
    text = (REPO / "pyproject.toml").read_text()
    assert 'dev = ["rf-widgets[test,browser,demo]"' in text
    assert "\ndemo = [" in text


SERVER = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
print("up", "and", "serving", flush=True)  # not the text tasks.py echoes with the command
time.sleep(600)
"""


def test_one_ctrl_c_stops_the_server(tmp_path):
    """tasks.serve in a process group of its own, as in a terminal; one SIGINT to that group stops all."""
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import tasks; "
        "tasks.serve(sys.executable, '-c', sys.argv[2])"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(REPO), SERVER],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        while process.stdout.readline() != "up and serving\n":
            assert process.poll() is None
        children = subprocess.run(
            ["pgrep", "-P", str(process.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        assert len(children) == 1
        os.killpg(process.pid, signal.SIGINT)  # the terminal's Ctrl-C: the foreground group
        start = time.monotonic()
        process.wait(timeout=30)
        assert time.monotonic() - start < 25
        assert process.returncode == 0
        assert "stopping the server" in process.stdout.read()
        time.sleep(0.2)
        with pytest.raises(ProcessLookupError):
            os.kill(int(children[0]), 0)  # the server is gone too
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
