"""Model-scale init: fastinit.reset_parameters and fastinit.init_ against torch's loops.

A transformer stack of ``blocks`` blocks (LayerNorm, qkv Linear, out Linear, LayerNorm, two MLP
Linears; 12 tensors a block; d=1024: 12.6 M parameters a block):

- CPU: 4 blocks, 50 M parameters (48 tensors);
- CUDA (when present): 24 blocks, 302 M parameters (288 tensors), as in issue #5.

fastinit writes all tensors of a call in one batched core call (one parallel loop on the CPU,
one launch per (operation, dtype) group on CUDA) and reuses a call's plan while the tensors are
the same (fastinit/model/). Rows (medians of alternating runs, A B A B ...):

- reset: torch's module loop (``m.reset_parameters()`` for every module that has one) vs
  ``fastinit.reset_parameters(model)``;
- trunc_normal: a per-tensor ``torch.nn.init.trunc_normal_(p, std=0.02)`` loop vs
  ``fastinit.init_(params, "trunc_normal", std=0.02)``;
- "first call": the same with fastinit's plans and memoised calls forgotten before each run;
- overhead: the same calls on a 24-block stack at d=8 (288 tensors of 8 to 256 elements), so
  that the time is the per-call Python and launch cost, given in microseconds per tensor;
- write pass: ``p.zero_()`` over all parameters, the floor one pass of writes sets.

Run: ``python benchmarks/bench_model.py [--runs N] [--cpu-blocks B] [--cuda-blocks B]``.
``rows()`` returns the table rows for ``python -m fastinit bench``.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
import torch.nn as nn

import fastinit

from .timing import Row


class Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)


def make_model(blocks: int, d: int = 1024, device: str = "cpu") -> nn.Module:
    with torch.device("meta"):
        model = nn.Sequential(*[Block(d) for _ in range(blocks)])
    return model.to_empty(device=device)


def torch_module_loop(model: nn.Module) -> None:
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()


def torch_trunc_normal_loop(params: list) -> None:
    for p in params:
        nn.init.trunc_normal_(p, std=0.02)


def _timer(device: str) -> Callable[[Callable[[], None]], float]:
    def run(fn: Callable[[], None]) -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0
    return run


def compare(fns: dict[str, Callable[[], None]], runs: int, device: str) -> dict[str, float]:
    """Median seconds of each function, run alternately after one warm-up each."""
    timer = _timer(device)
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for k, fn in fns.items():
            times[k].append(timer(fn))
    return {k: statistics.median(v) for k, v in times.items()}


def first_call(fn: Callable[[], None]) -> Callable[[], None]:
    """fn as a first call: fastinit's reused plans and memoised calls forgotten before it."""
    from fastinit.model.plan import _clear_caches

    def run() -> None:
        _clear_caches()
        fn()
    return run


def _cases(model: nn.Module, params: list) -> list[tuple[str, Callable, Callable]]:
    """(case, torch's loop, fastinit's call) for a model and its parameters."""
    reset = lambda: fastinit.reset_parameters(model)  # noqa: E731
    trunc = lambda: fastinit.init_(params, "trunc_normal", std=0.02)  # noqa: E731
    return [("reset_parameters", lambda: torch_module_loop(model), reset),
            ("reset_parameters, first call", lambda: torch_module_loop(model), first_call(reset)),
            ("trunc_normal 0.02", lambda: torch_trunc_normal_loop(params), trunc),
            ("trunc_normal 0.02, first call", lambda: torch_trunc_normal_loop(params),
             first_call(trunc))]


def rows(runs: int = 7, cpu_blocks: int = 4, cuda_blocks: int = 24,
         overhead_blocks: int = 24) -> list[dict]:
    """One dict per row: device, case, torch_ms, fastinit_ms, speedup, write_ms, params,
    tensors, and us_per_tensor (fastinit's time per tensor) on the overhead rows."""
    out = []
    devices = [("cpu", cpu_blocks)]
    if torch.cuda.is_available():
        devices.append(("cuda", cuda_blocks))
    for device, blocks in devices:
        for d, nblocks, overhead in ((1024, blocks, False), (8, overhead_blocks, True)):
            model = make_model(nblocks, d=d, device=device)
            params = list(model.parameters())
            n = sum(p.numel() for p in params)
            write = compare({"w": lambda: [p.data.zero_() for p in params]}, runs, device)["w"]
            for case, theirs, ours in _cases(model, params):
                with torch.no_grad():  # overhead rows: milliseconds, more runs for a stable median
                    t = compare({"torch": theirs, "fastinit": ours}, 3 * runs if overhead else runs, device)
                row = {"device": device, "case": case, "params": n, "tensors": len(params),
                       "torch_ms": t["torch"] * 1e3, "fastinit_ms": t["fastinit"] * 1e3,
                       "speedup": t["torch"] / t["fastinit"], "write_ms": write * 1e3}
                if overhead:
                    row["case"] = f"{case}, overhead (d={d})"
                    row["us_per_tensor"] = t["fastinit"] / len(params) * 1e6
                    row["torch_us_per_tensor"] = t["torch"] / len(params) * 1e6
                out.append(row)
            del model, params
    return out


def run(quick: bool = False, repeats: int = 7) -> list:
    """Rows for ``python -m fastinit bench`` (fastinit.bench.timing.Row): fastinit vs torch, with the
    write pass over all parameters as the bandwidth reference; the overhead rows give
    fastinit's microseconds per tensor in the case."""
    out = []
    for r in rows(3 if quick else repeats, cpu_blocks=1 if quick else 4, cuda_blocks=2 if quick else 24,
                  overhead_blocks=2 if quick else 24):
        seconds = {"fastinit": r["fastinit_ms"] / 1e3, "torch": r["torch_ms"] / 1e3,
                   "write pass": r["write_ms"] / 1e3}
        case = f"{r['case']} ({r['tensors']} tensors"
        case += f", {r['us_per_tensor']:.1f} us/tensor)" if "us_per_tensor" in r else ")"
        out.append(Row(f"model-{r['device']}", case, "float32", r["params"], r["params"] * 4, seconds,
                       reference="write pass"))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--cpu-blocks", type=int, default=4)
    ap.add_argument("--cuda-blocks", type=int, default=24)
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, fastinit backend {fastinit.get_backend()}, "
          f"{torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    header = (f"{'device':6} {'case':42} {'params':>8} {'tensors':>7} {'torch ms':>9} "
              f"{'fastinit ms':>11} {'speedup':>7} {'write ms':>8} {'us/tensor':>9}")
    print(header)
    print("-" * len(header))
    for r in rows(args.runs, args.cpu_blocks, args.cuda_blocks):
        per = f"{r['us_per_tensor']:9.1f}" if "us_per_tensor" in r else f"{'':9}"
        print(f"{r['device']:6} {r['case']:42} {r['params'] / 1e6:7.2f}M {r['tensors']:7d} "
              f"{r['torch_ms']:9.2f} {r['fastinit_ms']:11.2f} {r['speedup']:6.1f}x "
              f"{r['write_ms']:8.2f} {per}")


if __name__ == "__main__":
    main()
