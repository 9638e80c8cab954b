"""CUDA init kernels: fastinit against torch and the write-bandwidth limit (``fill_``).

For each case, dtype and size, fastinit, torch and ``fill_`` (a write-only pass over the same
tensor: the memory-bandwidth floor) are timed in the same run, in alternation (A B C A B C ...),
with CUDA events; the table shows medians, TB/s (bytes written per second) and ratios, and the
issue's goals are checked at the end (measured, never asserted in a test):

- 268 M elements (16384 x 16384) and 4096 x 4096, float32 and bfloat16;
- float32: uniform-based >= 95% of fill_, normal-based >= 80% of fill_;
- bfloat16: normal-based >= 1.5x torch, uniform-based >= 1.45x torch;
- trunc_normal_ >= 8x torch in float32, >= 5x in bfloat16;
- 4096 x 4096: fastinit's time within 1.3x of fill_'s.

Timing: before each timed call the stream is given a short GPU sleep, so that the host has
enqueued the call before the GPU reaches it: the events then bracket the kernels alone (the
Python overhead of a call is reported separately, as "call us": wall time of back-to-back calls).
Tensors of 4096 x 4096 rotate among three buffers so that the L2 cache does not hold them.

    python benchmarks/bench_cuda.py                      # full table
    python benchmarks/bench_cuda.py --quick              # 4096 x 4096 only, fewer repeats
    python benchmarks/bench_cuda.py --markdown out.md    # also markdown rows with the machine

``run(quick, repeats)`` returns rows for ``python -m fastinit bench`` (fastinit.bench.timing.Row).
"""
from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from typing import Callable, Optional

import torch
import torch.nn.init as ti

import fastinit as fi

from .timing import Row

GAIN_TANH = 5.0 / 3.0

# (case, family, fastinit call, torch call); family decides which goal applies.
CASES: list[tuple[str, str, Callable, Callable]] = [
    ("uniform_", "uniform", lambda t: fi.uniform_(t, -1.0, 1.0), lambda t: ti.uniform_(t, -1.0, 1.0)),
    ("kaiming_uniform_", "uniform", lambda t: fi.kaiming_uniform_(t, a=math.sqrt(5)),
     lambda t: ti.kaiming_uniform_(t, a=math.sqrt(5))),
    ("xavier_uniform_", "uniform", lambda t: fi.xavier_uniform_(t, gain=GAIN_TANH),
     lambda t: ti.xavier_uniform_(t, gain=GAIN_TANH)),
    ("normal_", "normal", lambda t: fi.normal_(t, 0.0, 0.02), lambda t: ti.normal_(t, 0.0, 0.02)),
    ("kaiming_normal_", "normal", lambda t: fi.kaiming_normal_(t, nonlinearity="relu"),
     lambda t: ti.kaiming_normal_(t, nonlinearity="relu")),
    ("xavier_normal_", "normal", lambda t: fi.xavier_normal_(t), lambda t: ti.xavier_normal_(t)),
    ("trunc_normal_(std=0.02)", "trunc", lambda t: fi.trunc_normal_(t, std=0.02, a=-0.04, b=0.04),
     lambda t: ti.trunc_normal_(t, std=0.02, a=-0.04, b=0.04)),
    ("trunc_normal_()", "trunc", lambda t: fi.trunc_normal_(t), lambda t: ti.trunc_normal_(t)),
]
# Views: the strided paths of the kernels (not part of the goals).
VIEW_CASES: list[tuple[str, Callable]] = [
    ("normal_ transposed view", lambda t: t.t()),
    ("normal_ column slice [:, 1:-1]", lambda t: t[:, 1:-1]),
]

SIZES = {"268M": (16384, 16384), "4096x4096": (4096, 4096)}


def _sleep_gpu(us: float) -> None:
    """Keep the GPU busy for about `us` microseconds, so the host gets ahead of it."""
    sleep = getattr(torch.cuda, "_sleep", None)
    if sleep is not None:
        sleep(int(us * 1.8e3))  # cycles at ~1.8 GHz


def event_medians(contenders: dict[str, Callable[[], object]], repeats: int, warmup: int = 2,
                  lead_us: float = 300.0) -> dict[str, float]:
    """Median GPU seconds of each contender, timed in alternation with CUDA events."""
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    torch.cuda.synchronize()
    events = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            _sleep_gpu(lead_us)
            start.record()
            fn()
            stop.record()
            events[name].append((start, stop))
    torch.cuda.synchronize()
    return {name: statistics.median(s.elapsed_time(e) / 1e3 for s, e in pairs)
            for name, pairs in events.items()}


def call_overhead_us(fn: Callable[[], object], calls: int = 50) -> float:
    """Wall time of one call, back to back, synchronised at the end (host overhead included)."""
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / calls * 1e6


def measure(sizes: list[str], dtypes: list[str], repeats: int, views: bool = True) -> list[dict]:
    rows = []
    for size_name in sizes:
        shape = SIZES[size_name]
        for dtype_name in dtypes:
            dtype = getattr(torch, dtype_name)
            n_buffers = 3 if size_name == "4096x4096" else 1
            buffers = [torch.randn(shape, device="cuda").to(dtype) for _ in range(n_buffers)]
            turn = {"i": 0}

            def nxt():
                turn["i"] = (turn["i"] + 1) % n_buffers
                return buffers[turn["i"]]

            cases = [(c, fam, ours, theirs, None) for c, fam, ours, theirs in CASES]
            if views and size_name == "4096x4096":
                cases += [(c, "view", CASES[3][2], CASES[3][3], v) for c, v in VIEW_CASES]
            for case, family, ours, theirs, view in cases:
                pick = (lambda: view(nxt())) if view else nxt
                probe = pick()
                vbytes = probe.numel() * probe.element_size()
                reps = max(5, repeats // 2) if family == "trunc" and size_name == "268M" else repeats
                seconds = event_medians({"fastinit": lambda: ours(pick()),
                                         "torch": lambda: theirs(pick()),
                                         "fill_": lambda: pick().fill_(0.5)}, reps)
                row = {"size": size_name, "case": case, "family": family, "dtype": dtype_name,
                       "elements": probe.numel(), "bytes": vbytes, "seconds": seconds}
                if size_name == "4096x4096":
                    row["call_us"] = call_overhead_us(lambda: ours(pick()))
                rows.append(row)
                print(format_row(row), flush=True)
            del buffers
            torch.cuda.empty_cache()
    return rows


def tbps(row: dict, who: str) -> float:
    return row["bytes"] / row["seconds"][who] / 1e12


def goal(row: dict) -> tuple[str, bool]:
    """The issue's goal for this row and whether the measurement meets it."""
    s, fam, dt = row["seconds"], row["family"], row["dtype"]
    ours, torch_t, fill = s["fastinit"], s["torch"], s["fill_"]
    if fam == "view":
        return "-", True
    if row["size"] == "4096x4096":
        return "<= 1.3x fill_ time", ours <= 1.3 * fill
    if fam == "trunc":
        need = 8.0 if dt == "float32" else 5.0
        return f">= {need:g}x torch", torch_t / ours >= need
    if dt == "float32":
        need = 0.95 if fam == "uniform" else 0.80
        return f">= {need:.0%} of fill_", fill / ours >= need
    need = 1.45 if fam == "uniform" else 1.5
    return f">= {need:g}x torch", torch_t / ours >= need


HEADER = ["size", "case", "dtype", "fastinit ms", "TB/s", "torch ms", "TB/s", "fill_ ms", "TB/s",
          "vs torch", "of fill_", "call us", "goal", "met"]


def cells(row: dict) -> list[str]:
    s = row["seconds"]
    g, ok = goal(row)
    return [row["size"], row["case"], row["dtype"],
            f"{s['fastinit'] * 1e3:.3f}", f"{tbps(row, 'fastinit'):.2f}",
            f"{s['torch'] * 1e3:.3f}", f"{tbps(row, 'torch'):.2f}",
            f"{s['fill_'] * 1e3:.3f}", f"{tbps(row, 'fill_'):.2f}",
            f"{s['torch'] / s['fastinit']:.2f}x", f"{s['fill_'] / s['fastinit']:.0%}",
            f"{row['call_us']:.0f}" if "call_us" in row else "-", g, "-" if g == "-" else ("yes" if ok else "NO")]


def format_row(row: dict) -> str:
    return "  ".join(cells(row))


def format_table(rows: list[dict], markdown: bool = False) -> str:
    table = [HEADER] + [cells(r) for r in rows]
    if markdown:
        out = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
        return "\n".join(out + ["| " + " | ".join(r) + " |" for r in table[1:]])
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in table)


def _nvidia_smi(query: str) -> str:
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "?"
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


def machine() -> dict[str, str]:
    props = torch.cuda.get_device_properties(0)
    return {
        "device": torch.cuda.get_device_name(0),
        "SMs": str(props.multi_processor_count),
        "driver": _nvidia_smi("driver_version"),
        "SM clock now / max": f"{_nvidia_smi('clocks.sm')} / {_nvidia_smi('clocks.max.sm')}",
        "torch": torch.__version__,
        "CUDA (torch)": str(torch.version.cuda),
        "fastinit": getattr(fi, "__version__", "?"),
        "fastinit CUDA kernels": str(_cuda_kernels()),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _cuda_kernels() -> bool:
    from ..dispatch import backend as _backend
    core = _backend.core()
    return bool(core is not None and core.cuda_compiled())


def run(quick: bool = False, repeats: int = 15) -> list:
    """Rows for ``python -m fastinit bench`` (fastinit.bench.timing.Row), when a GPU is there."""
    if not torch.cuda.is_available():
        return []
    rows = measure(["4096x4096"] if quick else ["268M", "4096x4096"], ["float32", "bfloat16"],
                   3 if quick else repeats, views=False)
    return [Row("cuda", f"{r['case']} {r['size']}", r["dtype"], r["elements"], r["bytes"],
                dict(r["seconds"]), reference="fill_") for r in rows]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4096 x 4096 only, 5 repeats")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--sizes", default=None, help="comma list of: " + ", ".join(SIZES))
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--markdown", metavar="PATH", help="write the table as markdown rows")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_cuda: no CUDA GPU; nothing to time")
        return 0
    if not _cuda_kernels():
        print("bench_cuda: WARNING: fastinit was built without CUDA kernels; its CUDA times are "
              "those of the CPU-and-copy fallback", file=sys.stderr)
    facts = machine()
    print("; ".join(f"{k}: {v}" for k, v in facts.items()), flush=True)
    sizes = args.sizes.split(",") if args.sizes else (["4096x4096"] if args.quick else list(SIZES))
    repeats = 5 if args.quick else args.repeats
    rows = measure(sizes, args.dtypes.split(","), repeats)
    print()
    print(format_table(rows))
    met = [goal(r)[1] for r in rows if goal(r)[0] != "-"]
    print(f"\ngoals met: {sum(met)} of {len(met)}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("### CUDA init kernels\n\n")
            f.write("  \n".join(f"{k}: {v}" for k, v in facts.items()) + "\n\n")
            f.write(format_table(rows, markdown=True) + "\n\n")
            f.write(f"Goals met: {sum(met)} of {len(met)}. Medians of {repeats} alternating runs, "
                    "CUDA events, GPU time only; TB/s = bytes written / time.\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
