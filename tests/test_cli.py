"""The command line, run as a user runs it: in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rf_widgets", *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_table_and_summary_for_resnet18_at_32():
    pytest.importorskip("torchvision")
    done = run("torchvision:resnet18", "--resolution", "32")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "border layer layer3.0.conv2" in out
    assert "unproductive: 7 of 18 convolutions and pools (17 of 69 layers)" in out
    assert "feasible input resolutions: 97 to 435" in out
    assert "layer3.0.conv2" in out
    assert "feature-map-covered" in out


def test_json_document():
    pytest.importorskip("torchvision")
    done = run("torchvision:resnet18", "--input-size", "32", "64", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["schema_version"] == 2
    assert document["model"] == "torchvision:resnet18"
    assert document["input_size"] == [32, 64]
    assert document["resolution_range"] == {"min": 97, "max": 435}
    conv1 = document["layers"][0]
    assert conv1["feature_map"] == [16, 32]


def test_factory_spec():
    pytest.importorskip("torchvision")
    done = run("torchvision.models:alexnet", "--summary", "-r", "224")
    assert done.returncode == 0, done.stderr
    assert "feasible input resolutions: 164 to 195" in done.stdout


def test_timm_spec():
    pytest.importorskip("timm")
    done = run("timm:resnet18", "--summary")
    assert done.returncode == 0, done.stderr
    assert "timm:resnet18 at 224x224" in done.stdout


def test_stack_file(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(
        json.dumps(
            {
                "name": "tiny",
                "layers": [
                    {"name": "c1", "type": "conv", "kernel": 3, "stride": 2},
                    {"name": "c2", "type": "conv", "kernel": 3},
                    {"name": "gap", "type": "global_pool"},
                ],
            }
        )
    )
    done = run(str(path), "--resolution", "5", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["border_layer"] == "c2"  # the 3x3 kernel covers c1's 2x2 map
    assert document["unproductive_layers"] == ["c2"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("torchvision:resnet81",), "torchvision has no model 'resnet81'"),
        (("missing.json",), "cannot read stack file 'missing.json'"),
        (("no_such_package_xyz:factory",), "cannot import 'no_such_package_xyz'"),
        (("gibberish",), "cannot understand the model spec 'gibberish'"),
    ],
)
def test_bad_specs_give_one_line(args, message):
    done = run(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("rf_widgets: error: ")
    assert message in lines[0]
    assert "Traceback" not in done.stderr


def test_invalid_stack_file_gives_one_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"layers": [{"name": "c1", "type": "conv", "kernel": 0}]}))
    done = run(str(path))
    assert done.returncode == 2
    assert "layer 'c1', key 'kernel': must be between 1 and 1,000,000" in done.stderr
    assert "Traceback" not in done.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    done = run(str(broken))
    assert done.returncode == 2
    assert "is not valid JSON" in done.stderr


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("rf_widgets: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--resolution", "abc", "x.json"), "invalid int value: 'abc'"),
        ((), "the following arguments are required: model"),
        (("x.json", "--frobnicate"), "unrecognized arguments: --frobnicate"),
        (("x.json", "-r", "0"), "input size must be a positive integer"),
        (("x.json", "--input-size", "8", "8", "8"), "one value per spatial axis"),
    ],
)
def test_argument_errors_give_one_line(tmp_path, args, message):
    (tmp_path / "x.json").write_text('{"layers": [{"name": "c", "type": "conv", "kernel": 3}]}')
    done = subprocess.run(
        [sys.executable, "-m", "rf_widgets", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert message in _one_line_error(done)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"layers": [{"name": "caf\xe9", "type": "conv", "kernel": 3}]}', "is not UTF-8 text"),
        (b'{"layers": [{"name": "a", "type": "conv", "kernel": 3, "op": 5}]}', "key 'op': must be a string"),
    ],
)
def test_hostile_files_give_one_line(tmp_path, content, message):
    path = tmp_path / "hostile.json"
    path.write_bytes(content)
    assert message in _one_line_error(run(str(path)))


def test_a_closed_pipe_gives_one_line_and_status_2(tmp_path):
    import os

    path = tmp_path / "tiny.json"
    path.write_text('{"layers": [{"name": "c", "type": "conv", "kernel": 3}]}')
    # The reader has gone before anything is written, as `| head -1` is after its line (pipe buffers
    # differ between machines, so the test closes the read end first instead of relying on their size).
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "rf_widgets", str(path), "-r", "8", "--json"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        os.close(write)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "rf_widgets: error: the output pipe was closed before everything was written"
    ]
