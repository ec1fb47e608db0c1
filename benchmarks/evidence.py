"""Speed of the evidence measurements (issue 13 targets, 2 cores).

    .venv/bin/python benchmarks/evidence.py [--threads 2] [--repeat 3]

- saturation of all 17 spatial convolutions of torchvision ResNet18 on 2,000 images at 32 px: under 5 s;
- effective field of one unit of torchvision resnet50 at 224 (layer3.0.conv2, one input): under 1 s.
  Timed in float64 (the default, exact support) and float32 (what ``erf_map`` uses for pictures), the
  first call (tracing the analysis, copying the model) apart from repeated calls on the cached copy.
- for reference, linear probes of the 17 layers (2,000 train / 1,000 test images) and one forward pass.

Prints medians and the ratio to the target. Timings on a machine shared with other jobs are higher;
the machine's load average is printed beside them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torchvision

from rf_widgets.evidence import effective_field, probes, saturation, shape_pairs


def timed(action, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        out.append(time.perf_counter() - start)
    return out


def report(label: str, seconds: list[float], target: float | None = None) -> None:
    median = statistics.median(seconds)
    ratio = f", {median / target:.2f} of the {target:g} s target" if target else ""
    print(f"{label}: median {median:.2f} s (min {min(seconds):.2f}, {len(seconds)} runs){ratio}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads (1 is faster on a loaded machine)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, load average {os.getloadavg()[0]:.1f}")

    torch.manual_seed(0)
    resnet18 = torchvision.models.resnet18(num_classes=10).eval()
    data = shape_pairs(3000, 32, seed=0)
    train, test = data.split(2000)
    images = torch.from_numpy(train.images)
    with torch.no_grad():
        report("forward pass of 2,000 images (reference)", timed(lambda: resnet18(images), args.repeat))
    report(
        "saturation, 17 convolutions, 2,000 images at 32 px",
        timed(lambda: saturation(resnet18, train), args.repeat),
        5.0,
    )
    report("linear probes, 17 layers, 2,000/1,000 images", timed(lambda: probes(resnet18, train, test), 1))

    resnet50 = torchvision.models.resnet50().eval()
    for dtype in (torch.float64, torch.float32):
        name = str(dtype).replace("torch.", "")
        first = timed(
            lambda dtype=dtype: effective_field(
                resnet50, "layer3.0.conv2", input_size=224, samples=1, dtype=dtype
            ),
            1,
        )
        report(f"ERF resnet50 layer3.0.conv2 at 224, {name}, first call (trace + copy)", first)
        again = timed(
            lambda dtype=dtype: effective_field(
                resnet50, "layer3.0.conv2", input_size=224, samples=1, dtype=dtype
            ),
            args.repeat,
        )
        report(f"ERF resnet50 layer3.0.conv2 at 224, {name}, repeated", again, 1.0)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
