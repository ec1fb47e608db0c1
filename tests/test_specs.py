"""The trust model of spec strings: what may be imported and called, and from where."""

from __future__ import annotations

import subprocess
import sys

import pytest

import rf_widgets as rfw
from rf_widgets.errors import ModelImportError
from rf_widgets.specs import load_model_spec

EVIL = """
import pathlib
pathlib.Path("imported.marker").write_text("evilmod was imported")

def make():
    import torch.nn as nn
    pathlib.Path("called.marker").write_text("make() ran")
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
"""


def _cli(*args: str, cwd=None, env=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rf_widgets", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
        env=env,
    )


@pytest.fixture
def evil_dir(tmp_path, monkeypatch):
    (tmp_path / "evilmod.py").write_text(EVIL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("evilmod", None)


def test_a_magic_line_never_imports_code_from_the_working_directory(evil_dir):
    from rf_widgets.widgets.magic import rfa

    with pytest.raises(ModelImportError, match="would import and run Python code"):
        rfa("evilmod:make --resolution 16", {})
    assert not (evil_dir / "imported.marker").exists()
    assert "evilmod" not in sys.modules


def test_a_magic_line_may_opt_in(evil_dir):
    pytest.importorskip("torch")
    from rf_widgets.widgets.magic import rfa

    shown = rfa("evilmod:make --resolution 16 --allow-code", {})
    assert shown.result.input_size == (16, 16)
    assert (evil_dir / "called.marker").exists()


def test_the_python_api_imports_factories(evil_dir):
    pytest.importorskip("torch")
    result = rfw.analyze("evilmod:make", 16)
    assert result.layer("0").r_max == (3, 3)


@pytest.mark.parametrize("spec", ["os:abort", "tempfile:mkdtemp", "shutil:rmtree", "builtins:exit"])
def test_the_standard_library_is_refused_before_anything_runs(spec):
    with pytest.raises(ModelImportError, match="standard library"):
        load_model_spec(spec)


@pytest.mark.parametrize("spec", ["torchvision:resnet18", "timm:resnet18", "stack.json"])
def test_safe_specs_pass_the_gate_without_opting_in(spec, tmp_path, monkeypatch):
    if spec == "stack.json":
        monkeypatch.chdir(tmp_path)
        (tmp_path / spec).write_text('{"layers": [{"name": "c", "type": "conv", "kernel": 3}]}')
    else:
        pytest.importorskip(spec.split(":")[0])
    assert load_model_spec(spec, allow_code=False) is not None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("numpy:zeros", "not a class or a Python function"),
        ("numpy:ndarray", "not a torch.nn.Module subclass"),
        ("torchvision.models:get_model", "needs the arguments name"),
        ("numpy:__version__", "not a class or a Python function"),
        ("rf_widgets.data:sample_image", "needs the arguments name"),
        ("rf_widgets:__getattr__", "needs the arguments name"),
        ("pkg/../x:y", "dotted Python names"),
    ],
)
def test_things_that_are_not_model_factories_are_refused_before_they_run(spec, message):
    pytest.importorskip("torchvision")
    with pytest.raises(ModelImportError, match=message):
        load_model_spec(spec)


def test_a_factory_that_returns_no_model_is_reported(tmp_path, monkeypatch):
    (tmp_path / "notamodel.py").write_text("def make():\n    return 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(ModelImportError, match=r"'notamodel:make\(\)' returned int"):
            load_model_spec("notamodel:make")
    finally:
        sys.modules.pop("notamodel", None)


def test_the_cli_refuses_os_abort_and_tempfile_with_one_line(tmp_path):
    import os

    env = {**os.environ, "TMPDIR": str(tmp_path)}
    for spec in ("os:abort", "tempfile:mkdtemp"):
        done = _cli(spec, env=env)
        assert done.returncode == 2, done.stderr  # not killed by SIGABRT
        assert done.stderr.count("\n") == 1
        assert "standard library" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_cli_imports_a_factory_from_the_working_directory(evil_dir):
    pytest.importorskip("torch")
    done = _cli("evilmod:make", "-r", "16", "--summary", cwd=evil_dir)
    assert done.returncode == 0, done.stderr
    assert "evilmod:make at 16x16" in done.stdout
