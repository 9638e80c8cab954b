"""Benchmark: fastinit.stats against torch's separate reductions, torch.histc, and one read.

    python benchmarks/bench_stats.py                      # CPU (+ CUDA rows when a GPU is present)
    python benchmarks/bench_stats.py --numel 268435456 --devices cuda --reps 11

Every row reads the same tensor; the runs of all rows alternate (row 1, row 2, ..., row 1, ...)
and each row reports its median, so drifting clocks and caches affect every row alike.

Rows (GB/s counts the bytes of the tensor read once, whatever the method does):
  one read            the fastest single-pass torch reduction of the tensor (sum or amax):
                      the read-bandwidth reference
  torch reductions    var_mean, aminmax, vector_norm, (x == 0).sum(), x.abs().mean(): what a
                      per-layer statistics hook usually does (float32 accumulation)
  torch + histc       the same plus histc(bins=64)
  fastinit            fastinit.stats(x): the full record, float64 accumulation
  fastinit 64 bins    fastinit.stats(x, bins=64, range=...)
  fastinit auto range fastinit.stats(x, bins=64): numpy's default range, two passes
  ReLU, 64 bins       fastinit on max(x, 0) (half the values in one bin)
  list: fastinit      fastinit.stats(params) for the 288 tensors of a 24-block transformer
  list: torch loop    torch reductions, tensor by tensor
"""
from __future__ import annotations

import argparse
from typing import Callable, Dict, List, Tuple

import torch

import fastinit

from .timing import Row, median_times


def transformer_params(d: int, blocks: int, device: str, dtype: torch.dtype) -> List[torch.Tensor]:
    """12 tensors per block: q, k, v, o weights, two MLP weights and their biases, two
    LayerNorms (weight, bias). d=1024, 24 blocks: 288 tensors, 302 M parameters."""
    shapes = []
    for _ in range(blocks):
        shapes += [(d, d)] * 4 + [(4 * d, d), (4 * d,), (d, 4 * d), (d,)] + [(d,)] * 4
    return [torch.randn(s, device=device, dtype=dtype) * 0.02 for s in shapes]


def torch_reductions(x: torch.Tensor) -> Tuple:
    return (torch.var_mean(x, correction=0), torch.aminmax(x), torch.linalg.vector_norm(x),
            (x == 0).sum(), x.abs().mean())


def bench(rows: Dict[str, Callable[[], object]], reps: int, sync: Callable[[], None]) -> Dict[str, float]:
    """Median seconds per row, runs alternating between rows."""
    return median_times(rows, repeats=reps, warmup=1, sync=sync)


def measure_device(device: str, numel: int, dtype: torch.dtype, reps: int, d_model: int):
    """Median seconds of every row (single tensor, list of tensors) and the sizes involved."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    x = torch.randn(numel, device=device, dtype=dtype)
    relu = torch.relu(x)
    lo, hi = -4.0, 4.0
    params = transformer_params(d_model, 24, device, dtype)
    nbytes = x.numel() * x.element_size()
    pbytes = sum(p.numel() * p.element_size() for p in params)

    def wait(s):  # the records are read: that is the synchronisation
        return s

    rows = {
        "one read (torch.sum)": lambda: x.sum(),
        "one read (torch.amax)": lambda: x.amax(),
        "torch reductions": lambda: torch_reductions(x),
        "torch reductions + histc": lambda: (torch_reductions(x), torch.histc(x, 64, lo, hi)),
        "fastinit": lambda: wait(fastinit.stats(x)),
        "fastinit 64 bins": lambda: wait(fastinit.stats(x, bins=64, range=(lo, hi))),
        "fastinit 64 bins auto range": lambda: wait(fastinit.stats(x, bins=64)),
        "fastinit ReLU 64 bins": lambda: wait(fastinit.stats(relu, bins=64, range=(0.0, hi))),
    }
    t = bench(rows, reps, sync)
    list_rows = {
        "list: fastinit": lambda: wait(fastinit.stats(params)),
        "list: fastinit 64 bins": lambda: wait(fastinit.stats(params, bins=64, range=(-0.1, 0.1))),
        "list: torch loop": lambda: [torch_reductions(p) for p in params],
    }
    tl = bench(list_rows, reps, sync)
    return t, tl, nbytes, pbytes, len(params)


def run_device(device: str, numel: int, dtype: torch.dtype, reps: int, d_model: int) -> None:
    t, tl, nbytes, pbytes, n_params = measure_device(device, numel, dtype, reps, d_model)
    read = min(t["one read (torch.sum)"], t["one read (torch.amax)"])
    base, base_h = t["torch reductions"], t["torch reductions + histc"]
    print(f"\n{device}: {numel:,} x {str(dtype).replace('torch.', '')} ({nbytes / 1e9:.2f} GB), "
          f"backend {fastinit.get_backend()}, median of {reps} alternating runs"
          + (f", {torch.get_num_threads()} threads" if device == "cpu" else
             f", {torch.cuda.get_device_name()}"))
    print(f"{'row':32s} {'ms':>9s} {'GB/s':>8s} {'% read':>7s} {'vs torch':>9s}")
    for name, sec in t.items():
        ref = base_h if "bins" in name or "histc" in name else base
        print(f"{name:32s} {sec * 1e3:9.2f} {nbytes / sec / 1e9:8.2f} {100 * read / sec:6.0f}% "
              f"{ref / sec:8.2f}x")
    print(f"\n{n_params} tensors of a 24-block transformer (d={d_model}), {pbytes / 1e9:.3f} GB")
    for name, sec in tl.items():
        print(f"{name:32s} {sec * 1e3:9.2f} {pbytes / sec / 1e9:8.2f} {'':7s} "
              f"{tl['list: torch loop'] / sec:8.2f}x")


def run(quick: bool = False, repeats: int = 7) -> list:
    """Rows for ``python -m fastinit bench`` (fastinit.bench.timing.Row)."""
    out = []
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        numel = (1 << 20) if quick else ((1 << 26) if device == "cpu" else (1 << 28))
        d_model = 64 if quick else (256 if device == "cpu" else 1024)
        t, tl, nbytes, pbytes, n = measure_device(device, numel, torch.float32,
                                                  3 if quick else repeats, d_model)
        read = {"one read": min(t["one read (torch.sum)"], t["one read (torch.amax)"])}
        out.append(Row(f"stats-{device}", "full record vs separate reductions", "float32", numel,
                       nbytes, {"fastinit": t["fastinit"], "torch": t["torch reductions"], **read},
                       reference="one read"))
        out.append(Row(f"stats-{device}", "64-bin histogram vs reductions + histc", "float32",
                       numel, nbytes, {"fastinit": t["fastinit 64 bins"],
                                       "torch": t["torch reductions + histc"], **read},
                       reference="one read"))
        out.append(Row(f"stats-{device}", f"list of {n} tensors vs per-tensor loop", "float32",
                       pbytes // 4, pbytes, {"fastinit": tl["list: fastinit"],
                                             "torch": tl["list: torch loop"]}))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numel", type=int, default=None,
                        help="elements (default: 2**26 on CPU, 2**28 on CUDA)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16", "float64"])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    parser.add_argument("--d-model", type=int, default=None,
                        help="transformer width (default: 256 on CPU, 1024 on CUDA)")
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    for device in args.devices:
        numel = args.numel or (1 << 26 if device == "cpu" else 1 << 28)
        d_model = args.d_model or (256 if device == "cpu" else 1024)
        run_device(device, numel, dtype, args.reps, d_model)


if __name__ == "__main__":
    main()
