"""Import + analysis time of dense models beside ResNet-50, and classifiers against an older commit.

Run from the repository root with the project venv::

    .venv/bin/python benchmarks/import_dense.py                        # this checkout only
    git worktree add /tmp/rfw-old main                                  # once: the code to compare with
    .venv/bin/python benchmarks/import_dense.py --old /tmp/rfw-old     # old and new in one run

Each figure is the median of ``--repeat`` calls of ``rf_widgets.analyze(model, size)`` (trace, rule
table, sizes, fields, verdicts and the feasible range) on a model built once, after one untimed
warm-up call. Old and new code run in separate subprocesses that import rf_widgets from their own
checkout (PYTHONPATH), alternating model by model so that machine load hits both alike. The
classifier comparison reports, per model, new / old, and the median of those ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

DENSE = {
    "resnet50": 224,
    "fcn_resnet50": 224,
    "deeplabv3_resnet50": 224,
    "lraspp_mobilenet_v3_large": 224,
    "fasterrcnn_resnet50_fpn.backbone": 640,
    "swin_t": 224,
    "r3d_18": (16, 112, 112),
}
CLASSIFIERS = (
    "alexnet", "vgg16", "resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2", "densenet121",
    "googlenet", "inception_v3", "mobilenet_v2", "mobilenet_v3_large", "shufflenet_v2_x1_0",
    "squeezenet1_0", "mnasnet1_0", "efficientnet_b0", "efficientnet_v2_s", "regnet_y_800mf",
    "convnext_tiny", "vit_b_16", "maxvit_t",
)  # fmt: skip

WORKER = r"""
import json, statistics, sys, time, warnings
warnings.simplefilter("ignore")
import torch, torchvision
import rf_widgets as rfw
assert rfw.__file__.startswith(sys.argv[4]), rfw.__file__
torch.set_num_threads(1)
name, size, repeat = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
if name.endswith(".backbone"):
    from torchvision.models import detection
    model = detection.__dict__[name.removesuffix(".backbone")](weights=None, weights_backbone=None).backbone
else:
    builder = torchvision.models.get_model_builder(name)
    options = {"weights": None}
    if "segmentation" in builder.__module__:
        options["weights_backbone"] = None
    model = builder(**options)
size = tuple(size) if isinstance(size, list) else size
try:
    rfw.analyze(model, size)
except Exception as err:
    print(json.dumps({"error": f"{type(err).__name__}: {str(err)[:120]}"}))
    sys.exit(0)
samples = []
for _ in range(repeat):
    start = time.perf_counter()
    result = rfw.analyze(model, size)
    samples.append((time.perf_counter() - start) * 1000)
unknown = sum(layer.status == "unknown" for layer in result.layers)
print(json.dumps({"ms": statistics.median(samples), "layers": len(result.layers), "unknown": unknown}))
"""


def run(checkout: Path, name: str, size: object, repeat: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    out = subprocess.run(
        [sys.executable, "-c", WORKER, name, json.dumps(size), str(repeat), str(checkout)],
        env=env,
        cwd=checkout,  # "python -c" puts the working directory first on sys.path
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-dense", action="store_true")
    args = parser.parse_args()
    versions = {"new": HERE, **({"old": args.old.resolve()} if args.old else {})}

    if not args.skip_dense:
        print(f"import + analysis, median of {args.repeat} (ms; unknown layers in brackets)")
        print(f"{'model':36}" + "".join(f"{v:>16}" for v in versions))
        for name, size in DENSE.items():
            cells = []
            for checkout in versions.values():
                got = run(checkout, name, size, args.repeat)
                cells.append("error" if "error" in got else f"{got['ms']:.0f} [{got['unknown']}]")
            print(f"{name:36}" + "".join(f"{c:>16}" for c in cells))

    if args.old:
        print(f"\nclassifiers at 224, median of {args.repeat} (ms)")
        ratios = []
        for name in CLASSIFIERS:
            new = run(versions["new"], name, 224, args.repeat)
            old = run(versions["old"], name, 224, args.repeat)
            ratio = new["ms"] / old["ms"]
            ratios.append(ratio)
            print(f"{name:24} old {old['ms']:8.1f}  new {new['ms']:8.1f}  new/old {ratio:5.2f}")
        print(f"median new/old over {len(ratios)} classifiers: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
