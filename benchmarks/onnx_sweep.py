"""Every torchvision classifier through torch's ONNX exporter, then the ONNX import against the torch import.

Run once (it takes a long time: each export runs in its own process, 5-60 s each on two cores):

    python benchmarks/onnx_sweep.py --cache /tmp/rfw_onnx_cache

Phase 1 exports every model of ``torchvision.models.list_models(module=torchvision.models)`` with
``torch.onnx.export(model.eval(), (x,), path, dynamo=True)`` and dynamic height and width
(``Dim.AUTO``), falling back to a fixed-size export; files already in the cache are reused.
``--exporter torchscript`` uses the older exporter instead (``dynamo=False``, opset 17, dynamic
height and width; give it its own ``--cache``). Phase 2 imports
each file with rf_widgets' ONNX importer and compares it with the torch import at 32, 64 and 224 (see
``tests/onnx_parity.py`` for what is compared and how layers are matched). It prints one line per model:
how it exported, and whether the analyses agree (or the first difference).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

EXPORT = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import torch, torchvision
name, path, exporter = sys.argv[1], sys.argv[2], sys.argv[3]
size = 299 if name == "inception_v3" else 224
model = torchvision.models.get_model(name, weights=None).eval()
x = torch.randn(1, 3, size, size)
start = time.perf_counter()
Dim = torch.export.Dim
if exporter == "torchscript":
    torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17, input_names=["x"],
                      dynamic_axes={"x": {2: "height", 3: "width"}})
    print("RESULT " + json.dumps({"how": "dynamic", "seconds": round(time.perf_counter() - start, 1)}))
    sys.exit(0)
try:
    torch.onnx.export(model, (x,), path, dynamo=True, dynamic_shapes=({2: Dim.AUTO, 3: Dim.AUTO},))
    how = "dynamic"
except Exception as err:
    first = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:160]}"
    torch.onnx.export(model, (x,), path, dynamo=True)
    how = "fixed (dynamic export failed: " + first + ")"
print("RESULT " + json.dumps({"how": how, "seconds": round(time.perf_counter() - start, 1)}))
"""

SIZES = (32, 64, 224)

FIRST = (
    "resnet18", "vgg11", "mobilenet_v2", "efficientnet_b0", "densenet121", "inception_v3", "convnext_tiny",
    "regnet_y_400mf", "squeezenet1_0", "shufflenet_v2_x0_5", "alexnet", "googlenet", "mobilenet_v3_small",
    "mobilenet_v3_large", "mnasnet0_5", "squeezenet1_1", "regnet_x_400mf", "resnet50", "resnext50_32x4d",
    "wide_resnet50_2", "vgg16", "vgg11_bn", "efficientnet_v2_s", "swin_t", "swin_v2_t", "maxvit_t",
    "vit_b_16", "shufflenet_v2_x1_0", "mnasnet1_0", "resnet34",
)  # fmt: skip
"""Exported first (one or two of every family, small ones): the sweep is slow on two shared cores."""


def export_all(names: list[str], cache: Path, timeout: float, exporter: str = "dynamo") -> dict[str, dict]:
    cache.mkdir(parents=True, exist_ok=True)
    status_file = cache / "export_status.json"
    status: dict[str, dict] = json.loads(status_file.read_text()) if status_file.exists() else {}
    for name in names:
        path = cache / f"{name}.onnx"
        if name in status and (path.exists() or not status[name].get("ok")):
            continue
        start = time.perf_counter()
        try:
            done = subprocess.run(
                [sys.executable, "-c", EXPORT, name, str(path), exporter],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
            if done.returncode == 0 and lines:
                status[name] = {"ok": True, **json.loads(lines[-1][7:])}
            else:
                lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
                errors = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception)\b", ln)]
                why = (errors or lines or [f"exit {done.returncode}"])[-1]
                status[name] = {"ok": False, "why": why[:300]}
        except subprocess.TimeoutExpired:
            status[name] = {"ok": False, "why": f"export took more than {timeout:.0f} s"}
        status[name]["wall"] = round(time.perf_counter() - start, 1)
        print(f"export {name}: {status[name]}", flush=True)
        status_file.write_text(json.dumps(status, indent=1))
    return status


def compare_all(names: list[str], cache: Path, status: dict[str, dict]) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import torchvision
    from onnx_parity import compare  # tests/onnx_parity.py

    agree, differ, failed = [], [], []
    for name in names:
        info = status.get(name, {})
        if not info.get("ok"):
            failed.append((name, info.get("why", "not exported")))
            print(f"{name:28s} does not export: {info.get('why', 'not exported')}", flush=True)
            continue
        model = torchvision.models.get_model(name, weights=None).eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                problems = compare(model, str(cache / f"{name}.onnx"), SIZES)
            except Exception as err:  # a failure here is a finding to print, not a reason to stop
                problems = [f"{type(err).__name__}: {err}"]
        how = info["how"].split(" (")[0]
        if problems:
            differ.append((name, problems))
            print(f"{name:28s} {how:8s} DIFFERS: {problems[0]}", flush=True)
        else:
            agree.append(name)
            print(f"{name:28s} {how:8s} agrees at {', '.join(map(str, SIZES))}", flush=True)
    print(f"\n{len(names)} models: {len(agree)} agree, {len(differ)} differ, {len(failed)} do not export")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="/tmp/rfw_onnx_cache", help="where the .onnx files go")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per export")
    parser.add_argument("--export-only", action="store_true")
    parser.add_argument("--compare-only", action="store_true", help="compare what is in the cache")
    parser.add_argument(
        "--exporter",
        choices=("dynamo", "torchscript"),
        default="dynamo",
        help="dynamo=True (the default, the recipe in TESTING.md) or the older TorchScript exporter "
        "(dynamo=False, opset 17, dynamic height and width): a second source of ONNX files, much faster",
    )
    parser.add_argument("models", nargs="*", help="torchvision names (default: every classifier)")
    args = parser.parse_args()
    import torchvision

    every = torchvision.models.list_models(module=torchvision.models)
    names = args.models or [*[n for n in FIRST if n in every], *[n for n in every if n not in FIRST]]
    cache = Path(args.cache)
    if args.compare_only:
        status = json.loads((cache / "export_status.json").read_text())
        names = [n for n in names if n in status]
    else:
        status = export_all(names, cache, args.timeout, args.exporter)
    if not args.export_only:
        compare_all(names, cache, status)


if __name__ == "__main__":
    main()
