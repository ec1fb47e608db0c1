"""How fast the budgeted design search predicts candidates, and how long a full ``suggest()`` takes.

Run from the repository root with the project venv::

    .venv/bin/python benchmarks/search.py                   # resnet50 at 16, 32 and 64 px, budget 8
    .venv/bin/python benchmarks/search.py --models resnet18,resnet50 --sizes 16 --repeat 5

Two figures per model and size, each the median of ``--repeat`` runs after one untimed warm-up run:

* **candidates/s**: predictions only. The model is imported once (as the Explorer does when it opens);
  the timed part enumerates every combination of edits and predicts its parameters, multiply-adds and
  verdicts (:func:`search_source`). Target: at least 1,000 candidates per second on ResNet-50.
* **suggest()**: everything a user waits for, from the model object to the six suggestions with the
  three picks' full analyses: import, one forward pass for the head's channel counts, the old
  strategies, the search. Target: under 2 s on ResNet-50.

The machine's load is printed with the figures: on a shared 2-core machine wall times grow with it,
so the CPU time of this process is printed too (torch runs on 2 threads: its CPU time can exceed the
wall time of a forward pass).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torchvision

import rf_widgets as rfw
from rf_widgets.strategies.budget import search_source
from rf_widgets.strategies.surgery import TorchSource

TARGET_RATE = 1000.0
TARGET_SUGGEST = 2.0


def median_s(call: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Median wall time and median CPU time of this process (seconds), and the last result."""
    result = call()  # warm-up
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = call()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50")
    parser.add_argument("--sizes", default="16,32,64")
    parser.add_argument("--budget", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, load {os.getloadavg()[0]:.1f}")
    print(f"median of {args.repeat} runs after one warm-up run; budget {args.budget:g}x")
    header = (
        f"{'model':<10} {'size':>4} {'candidates':>10} {'search s':>9} {'cand./s':>8} {'x target':>8} "
        f"{'cpu cand./s':>11} {'suggest s':>9} {'suggest cpu s':>13} {'target/suggest':>14}"
    )
    print(header)
    print("-" * len(header))
    for name in args.models.split(","):
        model = getattr(torchvision.models, name)().eval()
        for size in (int(s) for s in args.sizes.split(",")):
            source = TorchSource(model, name)
            seconds, cpu, front = median_s(
                lambda source=source, size=size: search_source(source, size, args.budget), args.repeat
            )
            rate = len(front) / seconds
            full, full_cpu, _ = median_s(
                lambda model=model, size=size: rfw.suggest(model, size, budget=args.budget), args.repeat
            )
            print(
                f"{name:<10} {size:>4} {len(front):>10} {seconds:>9.3f} {rate:>8.0f} "
                f"{rate / TARGET_RATE:>7.2f}x {len(front) / cpu:>11.0f} {full:>9.2f} {full_cpu:>13.2f} "
                f"{TARGET_SUGGEST / full:>13.2f}x"
            )


if __name__ == "__main__":
    main()
