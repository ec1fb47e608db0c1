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
    assert "kernel_size must be >= 1" in done.stderr
    assert "'c1'" in done.stderr
    assert "Traceback" not in done.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    done = run(str(broken))
    assert done.returncode == 2
    assert "is not valid JSON" in done.stderr
