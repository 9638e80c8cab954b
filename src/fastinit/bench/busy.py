"""The busy-machine section of ``python -m fastinit bench``: fills while other processes keep
every core busy (a training job's data loaders, a neighbour's job), against torch, with the
median and the 90th percentile (where load hurts, the tail is what users feel).

Load: one process per CPU this process may run on, each spinning in a Python loop, started
before the timed runs and stopped after them. The same fills are timed on the quiet machine
first, in the same run.

    python -m fastinit bench --sections busy
    python -m fastinit.bench.busy [--repeats 15]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from typing import Callable, Iterator, Optional, Sequence

from .timing import Row

SHAPES = {"65536": (65536,), "512x512": (512, 512), "4096x4096": (4096, 4096)}


@contextlib.contextmanager
def busy_cores(count: Optional[int] = None) -> Iterator[list]:
    """count spinning processes (default: one per CPU this process may run on), stopped when
    the block ends; yields them."""
    if count is None:
        count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(count)]
    try:
        time.sleep(0.5)  # let them take the cores
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def percentiles(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple]:
    """(median, 90th percentile) of each callable's wall time, timed in alternation."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    out = {}
    for name, ts in times.items():
        ts = sorted(ts)
        out[name] = (statistics.median(ts), ts[min(len(ts) - 1, int(round(0.9 * (len(ts) - 1))))])
    return out


def measure(shapes: Sequence[str], repeats: int) -> list[dict]:
    import torch
    import torch.nn.init as ti

    import fastinit as fi
    rows = []
    for load in ("quiet", "busy"):
        with busy_cores() if load == "busy" else contextlib.nullcontext([]) as spinning:
            procs = len(spinning)
            for size in shapes:
                t = torch.empty(SHAPES[size])
                reps = repeats if t.numel() < 1 << 20 else max(5, repeats // 3)
                for case, ours, theirs in (
                        ("normal_", lambda: fi.normal_(t), lambda: ti.normal_(t)),
                        ("uniform_", lambda: fi.uniform_(t), lambda: ti.uniform_(t))):
                    p = percentiles({"fastinit": ours, "torch": theirs}, reps)
                    rows.append({"load": load, "procs": procs, "size": size, "case": case,
                                 "elements": t.numel(), "fastinit": p["fastinit"], "torch": p["torch"]})
    return rows


def run(quick: bool = False, repeats: int = 15) -> list[Row]:
    """Rows for ``python -m fastinit bench``: the medians, with the 90th percentiles in the case."""
    out = []
    for r in measure(["65536", "512x512"] if quick else list(SHAPES), 7 if quick else max(repeats, 15)):
        (fm, f90), (tm, t90) = r["fastinit"], r["torch"]
        case = (f"{r['case']} {r['size']}, {r['load']}" + (f" ({r['procs']} spinning)" if r["procs"] else "")
                + f"; p90 {f90 * 1e3:.2f} / {t90 * 1e3:.2f} ms")
        out.append(Row("cpu-busy" if r["load"] == "busy" else "cpu-quiet", case, "float32",
                       r["elements"], r["elements"] * 4, {"fastinit": fm, "torch": tm}))
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fastinit.bench.busy",
                                 description="fills on a quiet and on a busy machine, against torch")
    ap.add_argument("--repeats", type=int, default=15, help="timed runs per contender (default 15)")
    args = ap.parse_args(argv)
    print(f"{'load':6} {'case':9} {'size':10} {'fastinit median':>16} {'p90':>9} "
          f"{'torch median':>13} {'p90':>9} {'speedup':>8}")
    for r in measure(list(SHAPES), args.repeats):
        (fm, f90), (tm, t90) = r["fastinit"], r["torch"]
        print(f"{r['load']:6} {r['case']:9} {r['size']:10} {fm * 1e3:13.3f} ms {f90 * 1e3:6.3f} ms "
              f"{tm * 1e3:10.3f} ms {t90 * 1e3:6.3f} ms {tm / fm:7.2f}x", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
