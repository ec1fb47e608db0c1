"""Kernel-side time of one Explorer update: analysis + every redraw + the new JPEG bytes.

    .venv/bin/python benchmarks/widget_update.py [--model resnet50] [--image checkerboard] [--repeat 30]
    .venv/bin/python benchmarks/widget_update.py --model all --repeat 10   # every torchvision classifier

Drives the controls from Python exactly as the front end does (setting ``.value``) and times each
change until the picture bytes are replaced: a new input size, a new layer, a new unit. ``--model``
takes one name, a comma-separated list, or ``all`` (``torchvision.models.list_models(module=
torchvision.models)``); with several models one line per model, then the worst median of each kind by
name. Target (issue 20): median under 50 ms for every classifier at 224 with the 512-px sample image on
a 2-core machine.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's rf_widgets

import ipywidgets
import torch
import torchvision

import rf_widgets as rfw

KINDS = ("resolution", "layer", "unit")


def timed(action: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and CPU milliseconds of ``action`` (the CPU time of this process is what a busy
    machine changes least: on a shared machine wall time grows with the load)."""
    start, cpu = time.perf_counter(), time.process_time()
    action()
    return (time.perf_counter() - start) * 1000, (time.process_time() - cpu) * 1000


def measure(name: str, image: str, repeat: int) -> dict[str, list[tuple[float, float]]]:
    """Times of ``repeat`` size changes, layer picks and unit picks for one torchvision model."""
    with torch.no_grad():
        model = torchvision.models.get_model(name)
    explorer = rfw.explore(model, image=image, input_size=224)
    controls = explorer.controls
    sizes = [224 - 8 * (i % 20) for i in range(1, repeat + 1)]
    resolution = [timed(lambda s=s: setattr(controls["resolution"], "value", s)) for s in sizes]
    controls["resolution"].value = 224
    local = [name for name in explorer.stack.names if not explorer.result.layer(name).is_global]
    step = max(1, len(local) // repeat)
    layer = [timed(lambda n=n: setattr(controls["layer"], "value", n)) for n in local[::step][:repeat]]
    unit = [
        timed(lambda u=u: setattr(controls["unit_0"], "value", u % (controls["unit_0"].max + 1)))
        for u in range(repeat)
    ]
    explorer.close()
    ipywidgets.Widget.close_all()  # the widget registry would keep every model alive
    return {"resolution": resolution, "layer": layer, "unit": unit}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet50", help="a name, names with commas, or 'all'")
    parser.add_argument("--image", default="checkerboard")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    names = (
        torchvision.models.list_models(module=torchvision.models)
        if args.model == "all"
        else args.model.split(",")
    )
    medians: dict[str, dict[str, float]] = {}
    print(f"image {args.image}, input 224, {args.repeat} changes of each kind; median wall (p90) / CPU, ms")
    print(f"{'model':22s} " + " ".join(f"{kind:>22s}" for kind in KINDS))
    for name in names:
        times = measure(name, args.image, args.repeat)
        gc.collect()
        cells = []
        for kind in KINDS:
            wall = sorted(w for w, _ in times[kind])
            cpu = statistics.median(c for _, c in times[kind])
            medians.setdefault(name, {})[kind] = statistics.median(wall)
            medians[name][kind + " cpu"] = cpu
            p90 = wall[min(len(wall) - 1, int(0.9 * len(wall)))]
            cells.append(f"{statistics.median(wall):6.1f} ({p90:6.1f}) / {cpu:5.1f}")
        print(f"{name:22s} " + " ".join(cells), flush=True)
    if len(names) > 1:
        for kind in (*KINDS, *(k + " cpu" for k in KINDS)):
            worst = max(medians, key=lambda n: medians[n][kind])
            over = sum(m[kind] >= 50 for m in medians.values())
            print(
                f"worst median {kind}: {worst} {medians[worst][kind]:.1f} ms ({over} of {len(names)} >= 50)"
            )


if __name__ == "__main__":
    main()
