"""Every timm architecture through ``rfw.analyze``: which are fully known, which are not, which fail.

    python benchmarks/timm_sweep.py                      # every name of timm.list_models(), 60 s limit each
    python benchmarks/timm_sweep.py --stride 10          # every tenth name: a quick look
    python benchmarks/timm_sweep.py --table docs/timm_sweep.md --results /tmp/sweep.json
    python benchmarks/timm_sweep.py 'halonet*' caformer_s18   # these names (fnmatch patterns) only

Each model is built as the zoo builds it (random initialisation, ``pretrained=False``, on the meta device,
falling back to the CPU when it cannot be built or analysed there) and analysed at the input size of its
default pretrained configuration. The work runs in worker processes that are killed and replaced when one
model exceeds the time limit, so a model that hangs costs the limit and no more.

Each model ends in one of four states:

``ok``       analysed, no unknown layer;
``unknown``  analysed, with unknown layers (the first one and its operation are recorded);
``error``    the analysis raised (the exception's first line is recorded);
``slow``     not finished within the limit.

The printed summary gives the counts and shares; ``--table`` writes a Markdown table grouped by family (the
timm module that defines the model). ``--results`` keeps every row as JSON, and a later run with the same
file skips the names it already has (``--fresh`` to start over).
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

STATES = ("ok", "unknown", "error", "slow")


# -- the worker: one model per request ---------------------------------------------------------------------


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:240]}" if lines else type(err).__name__


def _analyse(name: str) -> dict[str, object]:
    import warnings

    import timm
    import torch

    import rf_widgets as rfw

    row: dict[str, object] = {"model": name, "family": timm.models.model_entrypoint(name).__module__}
    start = time.perf_counter()
    failures = []
    for device in ("meta", "cpu"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with torch.device(device):
                    model = timm.create_model(name, pretrained=False).eval()
            size = tuple(model.pretrained_cfg.get("input_size", (3, 224, 224))[1:])
            with warnings.catch_warnings(), torch.device(device):
                warnings.simplefilter("ignore")
                result = rfw.analyze(model, size)
        except Exception as err:
            failures.append(f"{device}: {_one_line(err)}")
            continue
        layers = result.stack.layers
        unknown = [layer for layer in layers if layer.kind == "unknown"]
        row.update(
            input_size=list(size),
            build=device,
            layers=len(layers),
            unknown_layers=len(unknown),
            state="unknown" if unknown else "ok",
        )
        if unknown:
            first = unknown[0]
            row.update(first_unknown=first.name, op=first.op, reason=(first.note or "")[:240])
        row["seconds"] = round(time.perf_counter() - start, 2)
        return row
    row.update(state="error", reason="; ".join(failures), seconds=round(time.perf_counter() - start, 2))
    return row


MEMORY_LIMIT = 6 << 30
"""Bytes of data a worker may allocate: a CPU build of a billion-parameter model fails instead of swapping."""


def worker() -> None:
    """Read model names from stdin, answer each with one JSON line on stdout."""
    import resource

    resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_LIMIT, MEMORY_LIMIT))
    # the checkout this script belongs to, not whichever rf_widgets the environment has installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    out = sys.stdout
    sys.stdout = sys.stderr  # anything a constructor prints must not corrupt the protocol
    # Imported before the first deadline: a fresh worker's start-up is not the model's time.
    import timm  # noqa: F401
    import torch

    import rf_widgets  # noqa: F401

    # one model at a time on one core: a second intra-op thread mostly waits for a busy core
    torch.set_num_threads(1)

    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        name = line.strip()
        try:
            row = _analyse(name)
        except BaseException as err:  # the worker must answer for every name
            row = {"model": name, "state": "error", "reason": f"worker: {_one_line(err)}"}
        out.write(json.dumps(row) + "\n")
        out.flush()


# -- the driver --------------------------------------------------------------------------------------------


class Worker:
    """A worker process with a deadline per request."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self.name: str | None = None
        self.started = 0.0
        assert self.process.stdout is not None
        self.process.stdout.readline()  # "ready": torch, timm and rf_widgets imported

    def send(self, name: str) -> None:
        assert self.process.stdin is not None
        self.name, self.started = name, time.monotonic()
        self.process.stdin.write(name + "\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def sweep(names: list[str], limit: float, jobs: int, done: dict[str, dict], save) -> dict[str, dict]:
    todo = [n for n in names if n not in done]
    selector = selectors.DefaultSelector()
    workers = [Worker() for _ in range(min(jobs, len(todo)) or 1)]
    idle = list(workers)
    total, finished, saved = len(todo), 0, 0
    while todo or len(idle) < len(workers):
        while todo and idle:
            w = idle.pop()
            w.send(todo.pop(0))
            selector.register(w.process.stdout, selectors.EVENT_READ, w)
        events = selector.select(timeout=1.0)
        now = time.monotonic()
        for key, _ in events:
            w = key.data
            line = w.process.stdout.readline()
            selector.unregister(w.process.stdout)
            row = json.loads(line) if line else {"model": w.name, "state": "error", "reason": "worker died"}
            if not line:
                w.kill()
                workers[workers.index(w)] = w = Worker()
            done[row["model"]] = row
            idle.append(w)
            finished += 1
            _progress(finished, total, row)
        for w in [w for w in workers if w not in idle]:
            if now - w.started > limit:
                selector.unregister(w.process.stdout)
                w.kill()
                row = {"model": w.name, "state": "slow", "reason": f"over {limit:g} s", "seconds": limit}
                done[w.name] = row
                fresh = Worker()
                workers[workers.index(w)] = fresh
                idle.append(fresh)
                finished += 1
                _progress(finished, total, row)
        if finished - saved >= 20:
            save(done)
            saved = finished
    for w in workers:
        w.kill()
    save(done)
    return done


def _progress(finished: int, total: int, row: dict) -> None:
    detail = row.get("op") or row.get("reason") or ""
    print(f"[{finished}/{total}] {row['state']:8} {row['model']}  {str(detail)[:100]}", flush=True)


def summary(rows: list[dict]) -> str:
    counts = Counter(r["state"] for r in rows)
    n = len(rows)
    lines = [f"{n} models: " + ", ".join(f"{counts[s]} {s} ({100 * counts[s] / n:.1f}%)" for s in STATES)]
    families: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        families[r.get("family") or "?"].append(r)
    known = sum(1 for fam in families.values() if all(r["state"] == "ok" for r in fam))
    lines.append(f"{len(families)} families, {known} fully known")
    ops = Counter(r.get("op") for r in rows if r["state"] == "unknown")
    lines.append(
        "first unknown operation, most common: " + ", ".join(f"{op} {k}" for op, k in ops.most_common(12))
    )
    return "\n".join(lines)


def table(rows: list[dict], header: str) -> str:
    families: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        families[(r.get("family") or "?").removeprefix("timm.models.")].append(r)
    out = [header, "", "```", summary(rows), "```", ""]
    out += ["| family | models | ok | unknown | error | slow | what stops the others |"]
    out += ["|---|---:|---:|---:|---:|---:|---|"]
    for fam in sorted(families):
        members = families[fam]
        counts = Counter(r["state"] for r in members)
        why = Counter(
            f"{r['state']}: {r.get('op') or (r.get('reason') or '')[:80]}"
            for r in members
            if r["state"] != "ok"
        )
        reasons = "; ".join(f"{text} ({k})" for text, k in why.most_common(3)).replace("|", "\\|")
        cells = [fam, str(len(members))] + [str(counts[s]) for s in STATES] + [reasons]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "## Models not fully known", ""]
    out += ["| model | state | first unknown layer | op or reason |", "|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["model"]):
        if r["state"] != "ok":
            detail = (r.get("op") or r.get("reason") or "").replace("|", "\\|")[:120]
            out.append(f"| {r['model']} | {r['state']} | {r.get('first_unknown', '')} | {detail} |")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "patterns", nargs="*", help="model names or fnmatch patterns ('halonet*'); default: every name"
    )
    parser.add_argument("--stride", type=int, default=1, help="take every STRIDE-th name (default 1: all)")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds per model (default 60)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--results", type=Path, help="JSON file of rows, reused across runs")
    parser.add_argument("--fresh", action="store_true", help="ignore rows already in --results")
    parser.add_argument(
        "--retry", nargs="+", choices=STATES, default=[], help="run again the rows in these states"
    )
    parser.add_argument("--table", type=Path, help="write the Markdown table grouped by family here")
    parser.add_argument(
        "--report-only", action="store_true", help="sweep nothing: summarise the rows already in --results"
    )
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    import timm

    names = timm.list_models()
    if args.patterns:
        from fnmatch import fnmatchcase

        names = [n for n in names if any(fnmatchcase(n, p) for p in args.patterns)]
    names = names[:: args.stride]
    done: dict[str, dict] = {}
    if args.results and args.results.exists() and not args.fresh:
        rows = json.loads(args.results.read_text())
        done = {r["model"]: r for r in rows if r["model"] in names and r["state"] not in args.retry}

    def save(rows: dict[str, dict]) -> None:
        if args.results:
            args.results.write_text(json.dumps(list(rows.values()), indent=1))

    start, known = time.perf_counter(), len(done)
    rows = done if args.report_only else sweep(names, args.limit, args.jobs, done, save)
    elapsed = time.perf_counter() - start
    ordered = [rows[n] for n in names if n in rows]
    print(summary(ordered))
    if not args.report_only:
        print(f"{elapsed:.0f} s for {len(names) - known} new models, {os.cpu_count()} cores")
    if args.table:
        import torch

        import rf_widgets

        header = (
            f"# timm sweep: {len(ordered)} of {len(names)} architectures "
            f"(stride {args.stride}, {args.limit:g} s limit)\n\n"
            f"timm {timm.__version__}, torch {torch.__version__.split('+')[0]}, rf_widgets "
            f"{rf_widgets.__version__}; written by "
            f"`python benchmarks/timm_sweep.py --stride {args.stride}`."
        )
        args.table.write_text(table(ordered, header))
        print(f"table written to {args.table}")


if __name__ == "__main__":
    main()
