"""How long ``suggest()`` and ``Suggestion.apply()`` take on ResNet-50 and DenseNet-121.

Run from the repository root with the project venv::

    .venv/bin/python benchmarks/strategies.py               # resnet50, densenet121 at 32, 64, 224 px
    .venv/bin/python benchmarks/strategies.py --repeat 5 --models resnet50 --sizes 64

Every figure is the median of ``--repeat`` runs in one process after one untimed warm-up run of the
same call. For scale the script also times one forward pass of the unmodified model at the same size
(batch 1, eval mode, no grad): there is no other tool that plans these edits to compare with.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torchvision

import rf_widgets as rfw


def median_ms(call: Callable[[], Any], repeat: int) -> float:
    call()  # warm-up: first-call costs (allocator, oneDNN kernels) are not what we measure
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def forward(model: torch.nn.Module, size: int) -> Callable[[], Any]:
    x = torch.zeros(1, 3, size, size)

    def run() -> Any:
        with torch.no_grad():
            return model(x)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,densenet121")
    parser.add_argument("--sizes", default="32,64,224")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(
        f"torch {torch.__version__}, torchvision {torchvision.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"median of {args.repeat} runs after one warm-up run, milliseconds")
    header = f"{'model':<12} {'size':>4} {'forward':>8} {'suggest':>8}  apply per strategy"
    print(header)
    print("-" * len(header))
    for name in args.models.split(","):
        model = getattr(torchvision.models, name)().eval()
        for size in (int(s) for s in args.sizes.split(",")):
            plan = rfw.suggest(model, size)
            suggest_ms = median_ms(lambda m=model, s=size: rfw.suggest(m, s), args.repeat)
            applied = []
            for suggestion in plan:
                if suggestion.applicable:
                    ms = median_ms(suggestion.apply, args.repeat)
                    applied.append(f"{suggestion.kind} {ms:.0f}")
                else:
                    applied.append(f"{suggestion.kind} n/a")
            forward_ms = median_ms(forward(model, size), args.repeat)
            print(f"{name:<12} {size:>4} {forward_ms:>8.0f} {suggest_ms:>8.0f}  {', '.join(applied)}")


if __name__ == "__main__":
    main()
