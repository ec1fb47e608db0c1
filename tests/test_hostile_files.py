"""Hostile specs, stack files and values (issue 24): nothing named by data runs, every size is bounded
before the work, and every refusal is one line of rf_widgets' errors naming the culprit.

Each case here failed before its fix (it ran a standard-library function, hung, took minutes, crashed
with a raw exception, or read a value wrongly).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import pytest

import rf_widgets as rfw
from rf_widgets.core.graph import Stack
from rf_widgets.core.layers import MAX_RESAMPLE_PERIOD
from rf_widgets.errors import GraphError, LayerSpecError, ModelImportError, ResolutionError, StackFileError
from rf_widgets.specs import load_model_spec
from rf_widgets.stackfile import stack_from_dict


def _one_line(err: pytest.ExceptionInfo[BaseException], *names: str) -> str:
    text = str(err.value)
    assert "\n" not in text
    assert len(text) < 600
    for name in names:
        assert name in text, text
    return text


# -- specs resolve the final object -----------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        "torch.hub:tempfile.mkdtemp",
        "torch.serialization:tempfile.mkstemp",
        "matplotlib:tempfile.mkdtemp",
        "rf_widgets.specs:importlib.import_module",
        "rf_widgets.specs:sys.exit",
        "rf_widgets.specs:inspect.os.getcwd",
    ],
)
def test_a_spec_reaching_the_standard_library_through_another_module_is_refused(
    spec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip(spec.split(".")[0].split(":")[0])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(ModelImportError) as err:
        load_model_spec(spec, allow_code=True)
    _one_line(err, spec, "standard library")
    assert list(tmp_path.iterdir()) == []  # mkdtemp/mkstemp did not run


def test_a_spec_of_5000_characters_is_one_line() -> None:
    for spec in ("a" * 5000, "b" * 5000 + ".json"):
        with pytest.raises(ModelImportError) as err:
            rfw.analyze(spec, 32)
        _one_line(err, "characters", spec[:5])


# -- files ------------------------------------------------------------------------------------------


def _stack_json(tmp_path: Path) -> Path:
    path = tmp_path / "stack.json"
    path.write_text('{"layers": [{"name": "c", "type": "conv", "kernel": 3}]}')
    return path


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_path_object_is_accepted_for_a_stack_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"stack{suffix}"
    path.write_text('{"layers": [{"name": "c", "type": "conv", "kernel": 3}]}')  # JSON is YAML too
    assert rfw.analyze(path, 32).layer("c").r_max == (3, 3)


def test_a_fifo_stack_file_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "stack.json"
    os.mkfifo(fifo)
    code = (
        "import sys, rf_widgets as rfw\n"
        "for call in (rfw.load_stack, lambda p: rfw.analyze(p, 32)):\n"
        "    try: call(sys.argv[1])\n"
        "    except rfw.RFError as e: print(e)\n"
    )
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=60)
    cli = subprocess.run(
        [sys.executable, "-m", "rf_widgets", str(fifo), "-r", "32"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.perf_counter() - start < 30
    assert done.stdout.count("not a regular file") == 2, done.stdout + done.stderr
    assert cli.returncode == 2
    assert len(cli.stderr.strip().splitlines()) == 1
    assert "not a regular file" in cli.stderr


# -- YAML 1.2 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["017", "1_000", "1:30", "0x10", "!!int 017", "3 <<: {kernel: 5}"])
def test_yaml_numbers_are_read_as_yaml_1_2(tmp_path: Path, text: str) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / "stack.yaml"
    if "<<" in text:
        document = "layers:\n  - name: c\n    type: conv\n    kernel: 3\n    <<: {kernel: 5}\n"
    else:
        document = f"layers:\n  - name: c\n    type: conv\n    kernel: {text}\n"
    path.write_text(document)
    with pytest.raises(StackFileError) as err:
        rfw.load_stack(path)
    _one_line(err, str(path))


def test_yaml_1_2_numbers_still_read(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / "stack.yaml"
    path.write_text("layers:\n  - {name: c, type: conv, kernel: 17, stride: +2, padding: 0}\n")
    layer = rfw.load_stack(path).layers[0]
    assert (layer.kernel, layer.stride, layer.padding) == ((17, 17), (2, 2), ((0, 0), (0, 0)))


# -- sizes from data, bounded before the work ---------------------------------------------------------


@pytest.mark.parametrize(
    ("resize", "key"),
    [({"scale": 1000000}, "scale"), ({"scale": "9999999/1"}, "scale"), ({"scale": [2, 5000]}, "scale")],
)
def test_an_upsample_scale_beyond_the_limit_is_refused_by_the_reader(resize: dict, key: str) -> None:
    document = {"layers": [{"name": "up", "type": "upsample", "mode": "nearest", **resize}]}
    start = time.perf_counter()
    with pytest.raises(StackFileError) as err:
        stack_from_dict(document, "up.json")
    assert time.perf_counter() - start < 1
    _one_line(err, "up.json", "'up'", key, str(MAX_RESAMPLE_PERIOD))


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_an_upsample_size_whose_period_is_too_long_is_refused_before_the_work(mode: str) -> None:
    document = {
        "layers": [
            {"name": "c", "type": "conv", "kernel": 3},
            {"name": "up", "type": "upsample", "mode": mode, "size": 1000000},
            {"name": "d", "type": "conv", "kernel": 3},
        ]
    }
    stack = stack_from_dict(document, "up.json")
    start = time.perf_counter()
    with pytest.raises(LayerSpecError) as err:
        rfw.analyze(stack, 32)
    assert time.perf_counter() - start < 1
    _one_line(err, "'up'", "30 positions to 1000000", str(MAX_RESAMPLE_PERIOD))


def test_an_upsample_within_the_limit_is_still_analysed() -> None:
    up = rfw.upsample("up", scale=Fraction(3, 2))
    result = rfw.analyze([rfw.conv("c", 3), up, rfw.conv("d", 3)], 32)
    assert result.layer("d").feature_map == (43, 43)  # floor(30 * 3/2) - 2


# -- huge integers and wrong types ------------------------------------------------------------------


def test_huge_integers_are_refused_in_one_line() -> None:
    with pytest.raises(ResolutionError) as err:
        rfw.analyze([rfw.conv("c", 3)], 10**5000)
    _one_line(err, "5001 digits")
    with pytest.raises(LayerSpecError) as err:
        rfw.conv("a", 10**400)
    _one_line(err, "'a'", "401 digits")
    with pytest.raises(LayerSpecError) as err:
        rfw.conv("a", 3, padding=10**400)
    _one_line(err, "'a'")


def test_budget_beyond_any_ratio_is_refused() -> None:
    pytest.importorskip("torch")
    from rf_widgets.strategies import search, suggest

    stack = [rfw.conv("c1", 3, stride=2, padding=1), rfw.conv("c2", 3, padding=1)]
    for call in (lambda: search(stack, 8, budget=10**400), lambda: suggest(stack, 8, budget=10**5000)):
        with pytest.raises(rfw.RFError) as err:
            call()
        _one_line(err, "budget", "digits")


def test_values_are_type_checked_as_the_stack_file_reader_does() -> None:
    with pytest.raises(LayerSpecError) as err:
        rfw.pool("p", 2, ceil_mode="no")  # type: ignore[arg-type]
    _one_line(err, "ceil_mode", "'no'", "'p'")
    with pytest.raises(LayerSpecError) as err:
        rfw.conv("c", 3, op=5)  # type: ignore[arg-type]
    _one_line(err, "op", "'c'")
    for ndim in (True, 2.0, 10**400):
        with pytest.raises(GraphError) as err:
            Stack([rfw.conv("c", 3)], ndim=ndim)  # type: ignore[arg-type]
        _one_line(err, "ndim")
    with pytest.raises(StackFileError) as err:
        stack_from_dict({"layers": [{"name": "a", "type": "conv", "kernel": 3, "op": 5}]}, "op.json")
    _one_line(err, "op.json", "'a'", "op")


# -- the command line's own output --------------------------------------------------------------------


def _cli(stack: Path, stdout: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rf_widgets", str(stack), "-r", "32"],
        stdout=stdout,  # type: ignore[arg-type]
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def accented(tmp_path: Path) -> Path:
    path = tmp_path / "stack.json"
    path.write_text('{"layers": [{"name": "caf\\u00e9", "type": "conv", "kernel": 3}]}')
    return path


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_the_cli_on_a_full_output_exits_2_with_one_line(accented: Path) -> None:
    with open("/dev/full", "w") as full:
        done = _cli(accented, full)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "rf_widgets: error: cannot write the output: No space left on device"
    ]


def test_the_cli_with_its_output_closed_exits_2_with_one_line(accented: Path) -> None:
    code = (
        "import os, runpy, sys; os.close(1); sys.stdout = None; sys.argv = sys.argv[1:]; "
        "runpy.run_module('rf_widgets', run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "rf_widgets", str(accented), "-r", "32"],
        stdout=None,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "standard output is closed" in done.stderr


def test_the_cli_escapes_what_an_ascii_terminal_cannot_show(accented: Path) -> None:
    done = _cli(accented, subprocess.PIPE, {"PYTHONIOENCODING": "ascii"})
    assert done.returncode == 0, done.stderr
    assert "caf\\xe9" in done.stdout
