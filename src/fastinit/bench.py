"""``python -m fastinit bench``: fastinit against torch and the memory-bandwidth limit.

Every row times fastinit, torch and a bandwidth reference (``fill_``: a write-only pass over the
same tensor) in the same run, in alternation, and reports medians, GB/s and ratios. Sections:
CPU init (here), and CUDA, statistics and model-level init where those modules and a GPU exist.

    python -m fastinit bench                    # the default sizes
    python -m fastinit bench --quick            # small sizes, a smoke test
    python -m fastinit bench --markdown out.md  # also write a markdown table with the machine
"""
from __future__ import annotations

import argparse
import importlib
import math
from typing import Callable, Optional, Sequence

from ._timing import Row, format_table, machine_description, median_times, now_utc

# (case, fastinit call, torch call) on a weight tensor t; g is a fresh torch.Generator.
INIT_CASES: list[tuple[str, Callable, Callable]] = [
    ("normal_", lambda fi, t: fi.normal_(t), lambda ti, t: ti.normal_(t)),
    ("uniform_", lambda fi, t: fi.uniform_(t), lambda ti, t: ti.uniform_(t)),
    ("kaiming_normal_", lambda fi, t: fi.kaiming_normal_(t), lambda ti, t: ti.kaiming_normal_(t)),
    ("kaiming_uniform_", lambda fi, t: fi.kaiming_uniform_(t, a=math.sqrt(5)),
     lambda ti, t: ti.kaiming_uniform_(t, a=math.sqrt(5))),
    ("xavier_normal_", lambda fi, t: fi.xavier_normal_(t), lambda ti, t: ti.xavier_normal_(t)),
    ("xavier_uniform_", lambda fi, t: fi.xavier_uniform_(t), lambda ti, t: ti.xavier_uniform_(t)),
    ("trunc_normal_(std=0.02)", lambda fi, t: fi.trunc_normal_(t, std=0.02),
     lambda ti, t: ti.trunc_normal_(t, std=0.02)),
    ("trunc_normal_()", lambda fi, t: fi.trunc_normal_(t), lambda ti, t: ti.trunc_normal_(t)),
]


def bench_cpu_init(shape: Sequence[int], dtypes: Sequence[str], repeats: int,
                   cases: Optional[Sequence[str]] = None) -> list[Row]:
    import torch
    import torch.nn.init as ti

    import fastinit as fi
    rows = []
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        t = torch.empty(*shape, dtype=dtype)
        for case, ours, theirs in INIT_CASES:
            if cases and case not in cases:
                continue
            # torch's trunc_normal_ at its defaults is a slow rejection loop: fewer repeats
            reps = max(3, repeats // 3) if case == "trunc_normal_()" else repeats
            seconds = median_times({"fastinit": lambda: ours(fi, t), "torch": lambda: theirs(ti, t),
                                    "fill_": lambda: t.fill_(0.5)}, repeats=reps)
            rows.append(Row("cpu", case, dtype_name, t.numel(), t.numel() * t.element_size(),
                            seconds, reference="fill_"))
    return rows


# float64 (NumPy's default dtype): the cases whose kernels differ from float32's.
FLOAT64_CASES = ("normal_", "uniform_", "trunc_normal_(std=0.02)")
SMALL_CALLS = 200  # calls per timed run in the small-tensor (per-call overhead) rows


def bench_cpu_small(repeats: int) -> list[Row]:
    """Per-call cost on small tensors (a layer's bias, a small weight), where Python and call
    overhead, not bandwidth, decide: SMALL_CALLS calls per timed run."""
    import torch
    import torch.nn.init as ti

    import fastinit as fi
    rows = []
    for shape in ((64,), (64, 64)):
        t = torch.empty(*shape)
        ours, theirs = ((lambda: fi.uniform_(t, -0.1, 0.1), lambda: ti.uniform_(t, -0.1, 0.1))
                        if len(shape) == 1 else
                        (lambda: fi.kaiming_uniform_(t), lambda: ti.kaiming_uniform_(t)))
        case = ("uniform_" if len(shape) == 1 else "kaiming_uniform_") + f" x{SMALL_CALLS} calls"

        def calls(fn):
            def run():
                for _ in range(SMALL_CALLS):
                    fn()
            return run

        def fill():
            for _ in range(SMALL_CALLS):
                t.fill_(0.5)

        seconds = median_times({"fastinit": calls(ours), "torch": calls(theirs), "fill_": fill},
                               repeats=repeats)
        n = t.numel() * SMALL_CALLS
        rows.append(Row("cpu-small", case, "float32", n, n * t.element_size(), seconds,
                        reference="fill_"))
    return rows


OPTIONAL_SECTIONS = ("_bench_cuda", "_bench_stats", "_bench_model")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastinit bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sections", default="all",
                        help="comma list: cpu, cuda, stats, model (default all available)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the table as markdown")
    args = parser.parse_args(argv)
    shape = (512, 512) if args.quick else (4096, 4096)
    repeats = 3 if args.quick else args.repeats
    wanted = None if args.sections == "all" else set(args.sections.split(","))

    from ._info import info
    facts = info()
    print(f"fastinit {facts['fastinit']} on {machine_description()}; {now_utc()}")
    print(f"backend {facts['backend in use']}, CPU kernels {facts.get('CPU kernels', '-')}, "
          f"OpenMP {facts.get('OpenMP', '-')}")
    rows: list[Row] = []
    if wanted is None or "cpu" in wanted:
        rows += bench_cpu_init(shape, ["float32", "bfloat16"], repeats)
        rows += bench_cpu_init(shape, ["float64"], repeats, cases=FLOAT64_CASES)
        rows += bench_cpu_small(repeats)
    for module in OPTIONAL_SECTIONS:
        name = module.replace("_bench_", "")
        if wanted is not None and name not in wanted:
            continue
        try:
            section = importlib.import_module(f"fastinit.{module}")
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
