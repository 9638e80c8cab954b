"""Statistics records computed with torch operations on the tensor's own device.

The fallback for devices without a compiled kernel (CUDA when fastinit was built without it, MPS,
XPU, ...): the same raw record as the kernels (fastinit/stats/numpy_stats.py describes it), computed
with the same formulas (the whole tensor is one chunk), left on the device, with no host
synchronisation. Slower than the fused kernel: it reads the tensor several times.

>>> rec = device_records([torch.randn(100, device="mps")], bins=8, lo_hi=(-3.0, 3.0))
>>> rec.shape        # (tensors, HEAD + bins), float64, on the device
torch.Size([1, 21])
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple

from . import numpy_stats as ns


def device_records(tensors: Sequence[Any], bins: int, lo_hi: Optional[Tuple[float, float]]) -> Any:
    """Raw records (float64 tensor of shape (len(tensors), HEAD + bins)) on the tensors' device
    (all tensors on one device). lo_hi: a checked range, or None for numpy's default range."""
    import torch
    return torch.stack([_record(t, bins, lo_hi) for t in tensors])


def _record(x: Any, bins: int, lo_hi: Optional[Tuple[float, float]]) -> Any:
    import torch
    f64 = torch.float64
    device = x.device
    v = x.detach().reshape(-1).to(f64)
    if v.numel() == 0:
        rec = torch.from_numpy(ns.empty_records(1, bins)[0]).to(device)
        if bins and lo_hi is not None:
            rec[ns.HIST_LO], rec[ns.HIST_HI] = lo_hi
        return rec
    fin = torch.isfinite(v)
    n = fin.sum(dtype=f64)
    safe_n = torch.clamp_min(n, 1.0)
    xf = torch.where(fin, v, 0.0)
    mn = torch.where(fin, v, math.inf).amin()
    mx = torch.where(fin, v, -math.inf).amax()
    plain = xf.sum() / safe_n
    midrange = torch.where(n > 0, 0.5 * mn + 0.5 * mx, 0.0)
    shift = torch.where(n > 0, torch.where(torch.isfinite(plain), plain, midrange), 0.0)
    d = torch.where(fin, v - shift, 0.0)
    c, q = d.sum(), (d * d).sum()
    mean = torch.where(n > 0, c / safe_n, 0.0)  # relative to the shift
    m2 = torch.where(n > 0, torch.clamp_min(q - c * (c / safe_n), 0.0), 0.0)
    nans = torch.isnan(v).sum(dtype=f64)
    head = [n, shift, mean, m2, mn, mx, xf.abs().sum(), (xf * xf).sum(), (v == 0).sum(dtype=f64), nans,
            v.numel() - n - nans]
    if not bins:
        zero = torch.zeros((), dtype=f64, device=device)
        return torch.stack(head + [zero, zero + 1.0])
    if lo_hi is None:
        lo, hi = ns.default_range(n, mn, mx, ns.TORCH_OPS)
    else:
        lo = torch.tensor(lo_hi[0], dtype=f64, device=device)
        hi = torch.tensor(lo_hi[1], dtype=f64, device=device)
    idx = ns.bin_index(v, lo, hi, bins, ns.TORCH_OPS)
    idx = torch.where(idx < 0, bins, idx)  # a spare counter for the values not counted
    counts = torch.zeros(bins + 1, dtype=f64, device=device)
    counts.index_add_(0, idx, torch.ones((), dtype=f64, device=device).expand(idx.shape))
    return torch.cat([torch.stack(head + [lo, hi]), counts[:bins]])
