"""How long ``rf_widgets.zoo.table()`` takes for a whole model zoo, fresh and from the cache, and its memory.

Run from the repository root with the project venv::

    .venv/bin/python benchmarks/zoo.py                       # torchvision, 80 classifiers at 64 px
    .venv/bin/python benchmarks/zoo.py --source timm --resolution 224

The fresh run computes every row into an empty temporary cache folder (targets: under 60 s for the
torchvision table on two cores, peak resident memory under 2 GB). The cached run is a second call in
the same process (target: under 1 s), and once more in a new process, where the time includes starting
Python and importing pandas. The CPU time of the fresh run is printed beside its wall time: on a machine
shared with other jobs the wall time grows, the CPU time much less (the work is single-threaded).
The script prints the models that failed and those with unknown operations, with their reasons.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--source", default="torchvision", choices=("torchvision", "timm", "both"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["RF_WIDGETS_CACHE_DIR"] = folder
        start = time.perf_counter()
        import torch  # the import is part of what a user waits for on the first call

        from rf_widgets import zoo

        imported = time.perf_counter() - start
        start, cpu = time.perf_counter(), cpu_seconds()
        frame = zoo.table(args.resolution, args.source, progress=False)
        fresh, fresh_cpu = time.perf_counter() - start, cpu_seconds() - cpu
        rss = peak_rss_mb()
        start = time.perf_counter()
        again = zoo.table(args.resolution, args.source, progress=False)
        cached = time.perf_counter() - start
        code = (
            "import time; s = time.perf_counter(); from rf_widgets import zoo; "
            f"zoo.table({args.resolution}, {args.source!r}, progress=False); "
            "print(time.perf_counter() - s)"
        )
        start = time.perf_counter()
        inner = float(
            subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        )
        process = time.perf_counter() - start
    assert again.equals(frame), "the cached table differs from the fresh one"
    status = frame["status"].value_counts().to_dict()
    print(
        f"zoo.table({args.resolution}, {args.source!r}) on {os.cpu_count()} cores, torch {torch.__version__}"
    )
    print(f"models: {len(frame)}  status: {status}  fit at {args.resolution}: {int(frame['fits'].sum())}")
    print(f"builds: {frame['build'].value_counts(dropna=False).to_dict()}")
    print(f"macs from: {frame['macs_source'].value_counts(dropna=False).to_dict()}")
    print(f"import torch + rf_widgets.zoo: {imported:.2f} s")
    print(
        f"fresh:  {fresh:.1f} s wall, {fresh_cpu:.1f} s CPU "
        f"({fresh / len(frame) * 1000:.0f} ms per model; target < 60 s)"
    )
    print(f"cached, same process: {cached * 1000:.0f} ms  (target < 1 s; {fresh / cached:.0f}x faster)")
    print(f"cached, new process: {inner * 1000:.0f} ms in table(), {process:.2f} s with Python start-up")
    print(f"peak resident memory of the fresh run: {rss:.0f} MB (target < 2048 MB)")
    for _, row in frame[frame["status"] != "ok"].iterrows():
        print(f"  {row['status']:11}  {row['model']}: {row['note']}")


if __name__ == "__main__":
    main()
