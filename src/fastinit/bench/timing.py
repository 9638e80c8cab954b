"""Timing helpers shared by the benchmarks: alternating runs, medians, one table format."""
from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Optional, Sequence


def median_times(contenders: dict[str, Callable[[], object]], repeats: int = 7, warmup: int = 1,
                 sync: Optional[Callable[[], None]] = None) -> dict[str, float]:
    """Median wall time (seconds) of each callable, timed in alternation (A B C A B C ...) so
    that drifts of clock speed or machine load hit every contender alike."""
    sync = sync or (lambda: None)
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    sync()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def cuda_median_times(contenders: dict[str, Callable[[], object]], repeats: int = 20,
                      warmup: int = 3) -> dict[str, float]:
    """Like median_times with CUDA events on the current stream (seconds)."""
    import torch
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    torch.cuda.synchronize()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            times[name].append(start.elapsed_time(stop) / 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


@dataclass
class Row:
    section: str
    case: str
    dtype: str
    elements: int
    bytes_moved: int
    seconds: dict[str, float] = field(default_factory=dict)  # contender -> median seconds
    ours: str = "fastinit"
    baseline: str = "torch"
    reference: Optional[str] = None  # a bandwidth reference (fill_, read) among the contenders

    def gbps(self, name: str) -> float:
        return self.bytes_moved / self.seconds[name] / 1e9

    def cells(self) -> list[str]:
        ours, base = self.seconds[self.ours], self.seconds.get(self.baseline)
        cells = [self.section, self.case, self.dtype, f"{self.elements:,}",
                 f"{ours * 1e3:.3f}", f"{self.gbps(self.ours):.2f}"]
        cells += [f"{base * 1e3:.3f}", f"{self.gbps(self.baseline):.2f}", f"{base / ours:.2f}x"] if base else ["-"] * 3
        if self.reference and self.reference in self.seconds:
            ref = self.seconds[self.reference]
            cells += [f"{self.gbps(self.reference):.2f}", f"{ref / ours:.0%}"]
        else:
            cells += ["-", "-"]
        return cells


HEADER = ["section", "case", "dtype", "elements", "fastinit ms", "fastinit GB/s", "torch ms",
          "torch GB/s", "speed-up", "ref GB/s", "of ref bw"]


def format_table(rows: Sequence[Row], markdown: bool = False) -> str:
    table = [HEADER] + [r.cells() for r in rows]
    if markdown:
        lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
        lines += ["| " + " | ".join(r) + " |" for r in table[1:]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in table)


def machine_description() -> str:
    parts = [platform.processor() or platform.machine(), f"python {platform.python_version()}"]
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    parts[0] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import os
    parts.append(f"{os.cpu_count()} CPUs")
    try:
        import torch
        parts.append(f"torch {torch.__version__}")
        if torch.cuda.is_available():
            parts.append(torch.cuda.get_device_name(0))
    except ImportError:
        pass
    return ", ".join(parts)


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
