"""How fast, and in how much memory, hostile stack files and sizes are refused.

Each case is written to a temporary file and read with ``rf_widgets.load_stack`` (or analysed, for
sizes); the script prints the error, the wall time and the peak Python memory (tracemalloc). The
targets of issue 14: every refusal under 1 s and under 100 MB.

    python benchmarks/hostile_inputs.py
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

import rf_widgets as rfw


def _alias_bomb() -> str:
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 40)]
    return "\n".join([*lines, "layers:", "  - {name: c, type: conv, kernel: *a39}"]) + "\n"


CASES: dict[str, tuple[str, bytes]] = {
    "YAML alias bomb (5**39 leaves)": ("bomb.yaml", _alias_bomb().encode()),
    "2,000 stride-2 layers": (
        "deep.json",
        json.dumps(
            {"layers": [{"name": f"s{i}", "type": "conv", "kernel": 3, "stride": 2} for i in range(2000)]}
        ).encode(),
    ),
    "ndim 10**9": (
        "ndim.json",
        b'{"ndim": 1000000000, "layers": [{"name": "a", "type": "conv", "kernel": 3}]}',
    ),
    "kernel 10**30": (
        "kernel.json",
        b'{"layers": [{"name": "a", "type": "conv", "kernel": 1' + b"0" * 30 + b"}]}",
    ),
    "nesting 100,000 deep": ("nested.json", b"[" * 100_000 + b"]" * 100_000),
    "20,000 layers": (
        "wide.json",
        json.dumps({"layers": [{"name": f"e{i}", "type": "elementwise"} for i in range(20_000)]}).encode(),
    ),
    "non-UTF-8": ("latin1.json", b'{"layers": [{"name": "caf\xe9", "type": "conv", "kernel": 3}]}'),
    "op: 5": ("op.json", b'{"layers": [{"name": "a", "type": "conv", "kernel": 3, "op": 5}]}'),
    "4 MiB of spaces": ("big.json", b" " * (4 * 2**20 + 1)),
}


def _measure(action):  # type: ignore[no-untyped-def]
    """Outcome, wall time (without tracing) and peak traced memory (a second run) of ``action``."""
    start = time.perf_counter()
    try:
        action()
        outcome = "accepted"
    except rfw.RFError as err:
        outcome = str(err)
    elapsed = time.perf_counter() - start
    tracemalloc.start()
    with contextlib.suppress(rfw.RFError):
        action()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return outcome, elapsed, peak


def main() -> None:
    import yaml  # noqa: F401 - imported once up front, so its import time is not counted

    worst_time = worst_memory = 0.0
    with tempfile.TemporaryDirectory() as folder:
        for label, (name, content) in CASES.items():
            path = Path(folder) / name
            path.write_bytes(content)
            outcome, elapsed, peak = _measure(lambda path=path: rfw.load_stack(str(path)))
            worst_time, worst_memory = max(worst_time, elapsed), max(worst_memory, peak)
            print(f"{label:32s} {elapsed * 1000:8.1f} ms {peak / 2**20:7.1f} MiB  {outcome[-80:]}")
    for size in (10**400, 10**6):
        outcome, elapsed, peak = _measure(lambda size=size: rfw.analyze([rfw.conv("c", 3)], size))
        label = f"analyze at {str(size)[:12]}"
        print(f"{label:32s} {elapsed * 1000:8.1f} ms {peak / 2**20:7.1f} MiB  {outcome[-80:]}")
    worst = f"{worst_time * 1000:.1f} ms, {worst_memory / 2**20:.1f} MiB"
    print(f"worst file refusal: {worst} (targets: 1000 ms, 100 MiB)")


if __name__ == "__main__":
    main()
