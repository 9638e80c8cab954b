"""``python -m fastinit bench``: fastinit against torch and the memory-bandwidth limit.

Every row times fastinit, torch and a bandwidth reference (``fill_``: a write-only pass over the
same tensor) in the same run, in alternation, and reports medians, GB/s and ratios. Sections:
CPU init, and CUDA, statistics and model-level init where those modules and a GPU exist.

    python -m fastinit bench                    # the default sizes
    python -m fastinit bench --quick            # small sizes, a smoke test
    python -m fastinit bench --markdown out.md  # also write a markdown table with the machine
"""
from __future__ import annotations

import argparse
import importlib
from typing import Optional, Sequence

from ..info import info
from .cpu import FLOAT64_CASES, bench_cpu_init, bench_cpu_small
from .timing import Row, format_table, machine_description, now_utc

OPTIONAL_SECTIONS = ("busy", "cuda", "stats", "model")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastinit bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sections", default="all",
                        help="comma list: cpu, busy, cuda, stats, model (default all available)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the table as markdown")
    args = parser.parse_args(argv)
    shape = (512, 512) if args.quick else (4096, 4096)
    repeats = 3 if args.quick else args.repeats
    wanted = None if args.sections == "all" else set(args.sections.split(","))

    facts = info()
    print(f"fastinit {facts['fastinit']} on {machine_description()}; {now_utc()}")
    print(f"backend {facts['backend in use']}, CPU kernels {facts.get('CPU kernels', '-')}, "
          f"OpenMP {facts.get('OpenMP', '-')}")
    rows: list[Row] = []
    if wanted is None or "cpu" in wanted:
        rows += bench_cpu_init(shape, ["float32", "bfloat16"], repeats)
        rows += bench_cpu_init(shape, ["float64"], repeats, cases=FLOAT64_CASES)
        rows += bench_cpu_small(repeats)
    for name in OPTIONAL_SECTIONS:
        if wanted is not None and name not in wanted:
            continue
        try:
            section = importlib.import_module(f"fastinit.bench.{name}")
        except ImportError:
            continue
        rows += section.run(quick=args.quick, repeats=repeats)
    print(format_table(rows))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"Machine: {machine_description()}  \nDate: {now_utc()}\n\n")
            f.write(format_table(rows, markdown=True) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
