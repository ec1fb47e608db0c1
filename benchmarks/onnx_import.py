"""ONNX import + analysis of torchvision's ResNet-50 against the torch import + analysis, in the same run.

    python benchmarks/onnx_import.py [--model resnet50] [--repeat 7] [--cache /tmp/rfw_onnx_cache]

The model is exported once with ``torch.onnx.export(model.eval(), (x,), path, dynamo=True)`` (reused
from the cache folder when present; the export itself is not timed). Timed: ``rfw.analyze(path, 224)``
(read the file without its weights, shape inference, rules, analysis) and ``rfw.analyze(model, 224)``
(torch.fx trace, rules, analysis), best and median of ``--repeat`` runs each. Target: ONNX within 2x of
torch.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path


def timed(fn, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--cache", default="/tmp/rfw_onnx_cache")
    args = parser.parse_args()

    import torch
    import torchvision

    import rf_widgets as rfw

    model = torchvision.models.get_model(args.model, weights=None).eval()
    path = Path(args.cache) / f"{args.model}.onnx"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        dim = torch.export.Dim.AUTO
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (torch.randn(1, 3, 224, 224),),
                str(path),
                dynamo=True,
                dynamic_shapes=({2: dim, 3: dim},),
            )
    rfw.analyze(str(path), 224)  # first calls import onnx and torch.fx: not part of the comparison
    rfw.analyze(model, 224)
    onnx_times = timed(lambda: rfw.analyze(str(path), 224), args.repeat)
    torch_times = timed(lambda: rfw.analyze(model, 224), args.repeat)
    for label, values in (("onnx ", onnx_times), ("torch", torch_times)):
        print(
            f"{label} import + analysis of {args.model} at 224: best {min(values) * 1000:.1f} ms, "
            f"median {statistics.median(values) * 1000:.1f} ms ({args.repeat} runs)"
        )
    ratio = statistics.median(onnx_times) / statistics.median(torch_times)
    print(f"onnx / torch (medians): {ratio:.2f}x (target: at most 2x)")


if __name__ == "__main__":
    main()
