"""Kernel-side time of one Explorer update: analysis + every redraw + the new JPEG bytes.

    .venv/bin/python benchmarks/widget_update.py [--model resnet50] [--image checkerboard] [--repeat 30]

Drives the controls from Python exactly as the front end does (setting ``.value``) and times each
change until the picture bytes are replaced. Target (issue 3): median at most 50 ms for torchvision
resnet50 at 224 with a 512-px sample image on a 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torchvision

import rf_widgets as rfw


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--image", default="checkerboard")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    explorer = rfw.explore(torchvision.models.get_model(args.model), image=args.image, input_size=224)
    picture = explorer.state.image
    print(f"{args.model}, image {args.image} {picture.shape[1]}x{picture.shape[0]}")
    controls = explorer.controls
    sizes = [224 - 8 * (i % 20) for i in range(1, args.repeat + 1)]
    resolution = [timed(lambda s=s: setattr(controls["resolution"], "value", s)) for s in sizes]
    controls["resolution"].value = 224
    layers = [name for name in explorer.stack.names if not explorer.result.layer(name).is_global][::7]
    layer = [timed(lambda n=n: setattr(controls["layer"], "value", n)) for n in layers[: args.repeat]]
    unit = [
        timed(lambda u=u: setattr(controls["unit_0"], "value", u % (controls["unit_0"].max + 1)))
        for u in range(args.repeat)
    ]
    for label, values in (("resolution", resolution), ("layer", layer), ("unit", unit)):
        p90 = sorted(values)[int(0.9 * len(values))]
        median = statistics.median(values)
        print(f"{label:11s} median {median:6.1f} ms   p90 {p90:6.1f} ms   ({len(values)} changes)")


if __name__ == "__main__":
    main()
