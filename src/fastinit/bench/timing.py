"""Timing helpers shared by the benchmarks: alternating runs, medians, one table format, and
rows reported as they are made (for progress)."""
from __future__ import annotations

import platform
import statistics
import textwrap
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterator, Optional, Sequence


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


# Listeners called with every Row as it is made: a section makes a row when its timing is done,
# so the command line prints each row as it finishes (see :func:`on_row`).
_ROW_LISTENERS: list[Callable[["Row"], None]] = []


@contextmanager
def on_row(listener: Callable[["Row"], None]) -> Iterator[None]:
    """Call ``listener(row)`` for every Row made inside the ``with`` block."""
    _ROW_LISTENERS.append(listener)
    try:
        yield
    finally:
        _ROW_LISTENERS.remove(listener)


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

    def __post_init__(self) -> None:
        for listener in list(_ROW_LISTENERS):
            listener(self)

    def gbps(self, name: str) -> float:
        return self.bytes_moved / self.seconds[name] / 1e9

    def cells(self) -> list[str]:
        """The full row (markdown): every contender's time and bandwidth."""
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

    def short_cells(self) -> list[str]:
        """The narrow row (terminal), in the order of NARROW: dtype, size, the two times, the
        speed-up, fastinit's GB/s and its share of the reference's bandwidth."""
        ours, base = self.seconds[self.ours], self.seconds.get(self.baseline)
        ref = self.seconds.get(self.reference) if self.reference else None
        return [self.dtype, _short_count(self.elements), f"{ours * 1e3:.3f}",
                f"{base * 1e3:.3f}" if base else "-", f"{base / ours:.2f}x" if base else "-",
                f"{self.gbps(self.ours):.2f}", f"{ref / ours:.0%}" if ref else "-"]


HEADER = ["section", "case", "dtype", "elements", "fastinit ms", "fastinit GB/s", "torch ms",
          "torch GB/s", "speed-up", "ref GB/s", "of ref bw"]
# The terminal table: (header, width); the case column wraps. 98 columns in all.
NARROW = [("case", 30), ("dtype", 8), ("size", 6), ("fastinit ms", 11), ("torch ms", 9),
          ("speed-up", 8), ("GB/s", 6), ("of ref", 6)]


def _short_count(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


def narrow_header() -> str:
    return "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(NARROW))


def narrow_lines(row: Row) -> list[str]:
    """A row of the terminal table: the case wrapped to its column, the numbers on its first
    line."""
    width = NARROW[0][1]
    case = textwrap.wrap(row.case, width, break_on_hyphens=False) or [""]
    cells = [c.rjust(w) for c, (_, w) in zip(row.short_cells(), NARROW[1:])]
    return ["  ".join([case[0].ljust(width)] + cells).rstrip()] + [line for line in case[1:]]


def section_title(row: Row) -> str:
    """What a section's rows compare, printed above them."""
    ref = f"; of ref: share of {row.reference}'s bandwidth" if row.reference else ""
    return f"[{row.section}] fastinit vs {row.baseline}, medians{ref}"


def format_table(rows: Sequence[Row], markdown: bool = False) -> str:
    """All rows at once: markdown with every column, or the narrow terminal table."""
    if markdown:
        table = [HEADER] + [r.cells() for r in rows]
        lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
        lines += ["| " + " | ".join(r) + " |" for r in table[1:]]
        return "\n".join(lines)
    lines: list[str] = []
    section = None
    for r in rows:
        if r.section != section:
            section = r.section
            lines += [section_title(r), narrow_header()]
        lines += narrow_lines(r)
    return "\n".join(lines)


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
