"""The CPU section of ``python -m fastinit bench``: each init function on a large tensor, and the
per-call cost on small ones, fastinit against torch and ``fill_`` (a write-only pass over the
same tensor: the memory-bandwidth reference), timed in the same run, in alternation."""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

from .timing import Row, median_times

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
SMALL_CALLS = 200  # calls per timed run in the per-call rows
SMALL_SIZES = (64, 1024, 4096, 65536)  # elements: a bias, small and medium weights


def bench_cpu_small(repeats: int, sizes: Sequence[int] = SMALL_SIZES) -> list[Row]:
    """Per-call cost on small and medium tensors (biases, small weights: most tensors of a
    model), where Python and call overhead, not bandwidth, decide: SMALL_CALLS calls per timed
    run (fewer for the larger sizes), uniform_, normal_ and kaiming_uniform_."""
    import torch
    import torch.nn.init as ti

    import fastinit as fi
    rows = []
    for n in sizes:
        t = torch.empty(n)
        w = torch.empty(n // 64, 64) if n >= 64 else torch.empty(1, n)
        calls = SMALL_CALLS if n <= 4096 else max(10, SMALL_CALLS // 10)
        for case, ours, theirs, x in (
                ("uniform_", lambda: fi.uniform_(t, -0.1, 0.1), lambda: ti.uniform_(t, -0.1, 0.1), t),
                ("normal_", lambda: fi.normal_(t, 0.0, 0.02), lambda: ti.normal_(t, 0.0, 0.02), t),
                ("kaiming_uniform_", lambda: fi.kaiming_uniform_(w), lambda: ti.kaiming_uniform_(w), w)):

            def repeat(fn, count=calls):
                def run():
                    for _ in range(count):
                        fn()
                return run

            seconds = median_times({"fastinit": repeat(ours), "torch": repeat(theirs),
                                    "fill_": repeat(lambda: x.fill_(0.5))}, repeats=repeats)
            total = x.numel() * calls
            rows.append(Row("cpu-small", f"{case} {x.numel()} el. x{calls} calls", "float32", total,
                            total * x.element_size(), seconds, reference="fill_"))
    return rows
