"""Overhead of fastinit.watch on a training step, against the same step without it and against
the usual hook-and-``.item()`` instrumentation.

Model: a 50-layer MLP of width 1024 (``Linear(1024, 1024)`` + ``ReLU``, 100 leaf modules).
One step = forward + ``loss.backward()`` on a batch (CPU: 128 rows; CUDA: 1024 rows).

Contenders (medians of alternating runs A B C A B C ..., each on its own copy of the model with
the same weights):

- ``plain``: no hooks;
- ``fastinit.watch``: ``fastinit.watch(model)``, recording every step the statistics of all 100
  outputs, their 100 output gradients and the 100 parameters (one batched reduction per kind);
- ``watch bins=64``: the same with 64-bin histograms (activations by value, gradients by log10|g|);
- ``watch every=10``: recording one step in ten (the other steps pay the hooks' Python checks);
- ``hooks + .item()``: the usual way: a forward hook and a tensor gradient hook per module that
  compute mean, std, min, max, norm and the zero count with torch ops and read each with
  ``.item()`` (on a GPU: a host synchronisation per number).

The table gives milliseconds per step and the ratio to ``plain``. The issue's goal for CUDA is
``fastinit.watch`` <= 1.3x ``plain`` on an H100. The read (``w.table()`` after the run: one
synchronisation) is timed once and printed separately.

Run: ``python benchmarks/bench_watch.py [--repeats 5] [--batch B] [--cpu-only] [--markdown F]``.
"""
from __future__ import annotations

import argparse
import copy
import time
from typing import Callable, Dict, List

import torch
import torch.nn as nn

import fastinit
from fastinit.bench.timing import cuda_median_times, machine_description, median_times, now_utc
from fastinit.watch import watch


def make_model(depth: int = 50, width: int = 1024, device: str = "cpu") -> nn.Module:
    layers: List[nn.Module] = []
    gen = fastinit.Generator(0)
    for _ in range(depth):
        lin = nn.Linear(width, width)
        fastinit.kaiming_normal_(lin.weight, nonlinearity="relu", generator=gen)
        fastinit.zeros_(lin.bias)
        layers += [lin, nn.ReLU()]
    return nn.Sequential(*layers).to(device)


def naive_hooks(model: nn.Module) -> List[float]:
    """Hook-and-.item() statistics of every leaf's output and output gradient."""
    sink: List[float] = []

    def summarize(t: torch.Tensor) -> None:
        t = t.detach()
        sink.extend([t.mean().item(), t.std().item(), t.min().item(), t.max().item(),
                     t.norm().item(), (t == 0).sum().item()])

    def hook(module, inputs, output):
        summarize(output)
        if output.requires_grad:
            output.register_hook(lambda g: summarize(g))

    for m in model.modules():
        if next(iter(m.children()), None) is None:
            m.register_forward_hook(hook)
    return sink


def step_fn(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        model(x).square().mean().backward()
        for p in model.parameters():
            p.grad = None
    return step


def run(device: str, batch: int, repeats: int, depth: int, width: int) -> List[Dict]:
    base = make_model(depth, width, device)
    x = torch.randn(batch, width, device=device)
    models = {name: copy.deepcopy(base) for name in
              ("plain", "fastinit.watch", "watch bins=64", "watch every=10", "hooks + .item()")}
    watches = {
        "fastinit.watch": watch(models["fastinit.watch"], history=4),
        "watch bins=64": watch(models["watch bins=64"], bins=64, history=4),
        "watch every=10": watch(models["watch every=10"], every=10, history=4),
    }
    sink = naive_hooks(models["hooks + .item()"])
    fns = {name: step_fn(m, x) for name, m in models.items()}
    if device == "cuda":
        seconds = cuda_median_times(fns, repeats=repeats, warmup=3)
    else:
        seconds = median_times(fns, repeats=repeats, warmup=1)
    t0 = time.perf_counter()
    rows_read = watches["fastinit.watch"].table()
    read_s = time.perf_counter() - t0
    assert len(rows_read) == 2 * depth and len(sink) > 0
    for w in watches.values():
        w.remove()
    plain = seconds["plain"]
    out = [{"device": device, "case": name, "ms": s * 1e3, "ratio": s / plain}
           for name, s in seconds.items()]
    out.append({"device": device, "case": "read: w.table() (1 sync)", "ms": read_s * 1e3,
                "ratio": float("nan")})
    return out


def format_rows(rows: List[Dict], markdown: bool = False) -> str:
    head = ["device", "case", "ms / step", "x plain"]
    body = [[r["device"], r["case"], f"{r['ms']:.2f}",
             "-" if r["ratio"] != r["ratio"] else f"{r['ratio']:.2f}x"] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(b) + " |" for b in body])
    table = [head] + body
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))) for r in table)


def main() -> int:
    # The module docstring, as plain text (no reStructuredText quotes), is the help.
    p = argparse.ArgumentParser(description=__doc__.replace("``", ""),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5, metavar="N",
                   help="timed steps per contender; the median is shown (default 5; on CUDA at least 20)")
    p.add_argument("--batch", type=int, default=None, metavar="ROWS",
                   help="rows per batch (default: 128 on the CPU, 1024 on CUDA)")
    p.add_argument("--depth", type=int, default=50, help="Linear + ReLU layers (default 50)")
    p.add_argument("--width", type=int, default=1024, help="features per layer (default 1024)")
    p.add_argument("--cpu-only", action="store_true", help="skip the CUDA rows even with a GPU")
    p.add_argument("--markdown", metavar="PATH", help="also write the table as markdown, with the machine")
    args = p.parse_args()
    print(f"fastinit {fastinit.__version__}, backend {fastinit.get_backend()}, on "
          f"{machine_description()}; {now_utc()}")
    print(f"{args.depth}-layer MLP, width {args.width}: forward + backward per step")
    rows = run("cpu", args.batch or 128, args.repeats, args.depth, args.width)
    if not args.cpu_only and torch.cuda.is_available():
        rows += run("cuda", args.batch or 1024, max(args.repeats, 20), args.depth, args.width)
    text = format_rows(rows)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"Machine: {machine_description()}  \nDate: {now_utc()}\n\n")
            f.write(format_rows(rows, markdown=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
