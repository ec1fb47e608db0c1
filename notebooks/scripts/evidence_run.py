"""Regenerate the measured results that notebook 05 shows (notebooks/data/evidence_*.json).

Full run (the two resolutions as two single-threaded processes side by side):

    nice -n 5 python notebooks/scripts/evidence_run.py --sizes 32 &
    nice -n 5 python notebooks/scripts/evidence_run.py --sizes 64

For each resolution it generates the procedural shape-pair data, measures an untrained torchvision
ResNet18 (the baseline), trains it with Adam (batch 64, learning rate 1e-3), measures it again and writes
``evidence_<size>px.json`` holding both results, the training history and the recipe.

``--quick`` trains a tiny version (well under a minute) and writes nothing unless ``--out`` is given: it
checks the pipeline, as notebook 05 does in CI. ``--reanalyse`` only re-joins the saved measurements with
the current analysis (after the verdict rules changed), without training.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torchvision

import rf_widgets as rfw
from rf_widgets.evidence import EvidenceResult, measure, shape_pairs, train_classifier

DATA = Path(__file__).resolve().parents[1] / "data"

# Recipes: at 64 px every image costs four times as much, so fewer images and epochs fit the budget.
FULL = {
    32: {"train": 4000, "test": 1500, "probe_train": 1500, "epochs": 6},
    64: {"train": 2000, "test": 800, "probe_train": 1200, "epochs": 5},
}
# Quick: enough to run every step for real (training, saturation, probes, the border) and no more. The
# probes (a fixed number of LBFGS steps per layer) dominate, so a quick run measures five convolutions:
# the first, the border layer with the two before it, and the last.
QUICK = {
    32: {"train": 200, "test": 100, "probe_train": 200, "epochs": 1, "layers": 5},
    64: {"train": 100, "test": 60, "probe_train": 100, "epochs": 1, "layers": 5},
}


def around_the_border(model: torch.nn.Module, size: int) -> list[str]:
    """The first convolution, the border layer with the two before it, and the last (for a quick run)."""
    analysis = rfw.analyze(model, size)
    convs = [
        name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and max(m.kernel_size) > 1
    ]
    border = convs.index(analysis.border_layer) if analysis.border_layer in convs else len(convs) - 1
    picked = {0, max(border - 2, 0), max(border - 1, 0), border, len(convs) - 1}
    return [convs[i] for i in sorted(picked)]


def run(size: int, recipe: dict[str, int], seed: int = 0, log=print) -> dict:
    started = time.perf_counter()
    data = shape_pairs(recipe["train"] + recipe["test"], size, seed=seed + size)
    train, test = data.split(recipe["train"])
    probe_train, _ = train.split(recipe["probe_train"])
    log(
        f"{size} px: {len(train)} training and {len(test)} test images "
        f"({time.perf_counter() - started:.1f} s to generate)"
    )
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(num_classes=10)
    layers = around_the_border(model, size) if recipe.get("layers") else None
    meta = {"data": "rf_widgets.evidence.shape_pairs", "seed": seed + size, **recipe}
    t = time.perf_counter()
    untrained = measure(model, probe_train, test, size, layers=layers, name="resnet18 (untrained)", meta=meta)
    log(f"untrained measured in {time.perf_counter() - t:.1f} s: accuracy {untrained.model_accuracy:.3f}")
    history = train_classifier(model, train, recipe["epochs"], batch_size=64, lr=1e-3, seed=seed, log=log)
    t = time.perf_counter()
    trained = measure(
        model,
        probe_train,
        test,
        size,
        layers=layers,
        name="resnet18",
        meta={**meta, "optimiser": "Adam", "lr": 1e-3, "batch_size": 64, "history": history},
    )
    log(f"trained measured in {time.perf_counter() - t:.1f} s: accuracy {trained.model_accuracy:.3f}")
    return {
        "trained": trained,
        "untrained": untrained,
        "seconds": time.perf_counter() - started,
    }


def save(size: int, outcome: dict, out: Path, command: str) -> Path:
    path = out / f"evidence_{size}px.json"
    torch_version = torch.__version__.split("+")[0]
    doc = {
        "command": command,
        "seconds": round(outcome["seconds"], 1),
        # no build tag (+cu130) and, in the command, no folder of the machine that ran it
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch_version}",
        "trained": outcome["trained"].to_dict(),
        "untrained": outcome["untrained"].to_dict(),
    }
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def reanalyse(out: Path) -> None:
    for path in sorted(out.glob("evidence_*px.json")):
        doc = json.loads(path.read_text())
        for key in ("trained", "untrained"):
            result = EvidenceResult.from_dict(doc[key])
            model = torchvision.models.resnet18(num_classes=10)
            analysis = rfw.analyze(model, result.input_size, name=result.model)
            doc[key] = result.with_analysis(analysis).to_dict()
        path.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"{path}: border layer {doc['trained']['border_layer']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run that checks the pipeline")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--out", type=Path, default=None, help=f"where to write (default {DATA} when full)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: on a shared machine more were slower)"
    )
    parser.add_argument("--reanalyse", action="store_true", help="re-join saved results with the analysis")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = args.out if args.out is not None else (None if args.quick else DATA)
    if args.reanalyse:
        reanalyse(out or DATA)
        return
    recipes = QUICK if args.quick else FULL
    given = list(argv if argv is not None else sys.argv[1:])
    if "--out" in given[:-1]:  # the folder is a path of this machine: keep only its name
        given[given.index("--out") + 1] = Path(given[given.index("--out") + 1]).name
    command = "python notebooks/scripts/evidence_run.py " + " ".join(given)
    total = time.perf_counter()
    for size in args.sizes:
        outcome = run(size, recipes[size])
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            print(f"wrote {save(size, outcome, out, command)}")
    print(f"total {time.perf_counter() - total:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
