"""Fused per-tensor statistics: one pass gives the moments, extremes, norms, special-value counts
and a histogram of a tensor, or of a whole list of tensors at once.

>>> import torch, fastinit
>>> s = fastinit.stats(torch.randn(1024, 1024), bins=64, range=(-4.0, 4.0))
>>> s.mean, s.std, s.min, s.max, s.zeros, s.nans
>>> s.hist.sum(), s.edges[0], s.edges[-1]          # numpy.histogram's counts and edges
(1048576, -4.0, 4.0)
>>> rows = fastinit.stats(list(model.parameters()))  # a list: one CUDA launch per dtype, one record each
>>> [r.std for r in rows]

Semantics (every backend: the compiled CPU core, CUDA, NumPy, torch ops on other devices):

- ``count`` is the number of elements; ``nans`` and ``infs`` (±Inf) are counted, and every other
  statistic is over the *finite* values: ``mean``, ``var`` and ``std`` (population, ddof=0, as in
  NumPy), ``min``, ``max``, ``abs_mean = Σ|x| / n``, ``rms = sqrt(Σx² / n)``, ``norm = sqrt(Σx²)``
  with n = count − nans − infs (``Stats.finite``). ``zeros`` counts exact zeros (±0).
- Accumulation is in float64 (Welford/Chan: chunks summarised by the corrected two-pass formula,
  merged by Chan's formula in an order fixed by the layout), so the variance is exact to float64
  rounding even with a large offset and a tiny spread, and so is the mean unless the values
  cancel (a mean tiny next to max|x|: then its error is a few ulps of max|x|); results do not
  depend on the thread count or the launch shape.
- Overflow: with values so large that their squares overflow float64 (|x| above ~1e154),
  ``norm`` and ``rms`` are inf and ``var``/``std`` are not meaningful (inf or NaN), as the true
  values are not doubles; the mean stays right (a chunk whose plain sum overflows is centred on
  its midrange instead), and min, max, the counts and the histogram are always exact.
- No finite value (an empty tensor, or all NaN/Inf): ``mean, var, std, min, max, abs_mean, rms``
  are NaN (no warning), ``norm`` is 0.0, the counts are what they are.
- The histogram (``bins > 0``) is numpy.histogram's on the float64 values: ``edges`` is
  ``numpy.linspace(lo, hi, bins + 1)``, the last bin is closed, values outside the range, NaN
  and ±Inf are not counted, and a value on an edge goes where numpy puts it. ``range=None``
  takes numpy's default range, (min, max) of the finite values ((0, 1) without any, widened by
  ±0.5 when min == max); finding it costs a second pass over the data, so pass ``range=`` when
  speed matters. A supplied range is checked as numpy does (``ValueError``).
- Any float dtype (float16, bfloat16, float32, float64) is read in place, in any layout (views,
  transposes, column slices, negative NumPy strides); integer and bool inputs are converted to
  float64 first (a copy). Complex tensors: ``NotImplementedError``. Meta tensors have no values:
  ``RuntimeError``. ``requires_grad`` tensors are read without autograd.
- CUDA tensors are reduced on their device, on the current stream; :func:`stats` waits for the
  result (reading it is the only synchronisation); :func:`stats_async` does not wait.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from ..dispatch import backend as _backend
from ..dispatch.fill import outside_dispatch_modes
from ..dispatch.target import is_fake
from ..stream.dtypes import (
    BFLOAT16,
    FLOAT16,
    FLOAT32,
    FLOAT64,
    FloatFormat,
    bf16_bits_to_float32,
)
from . import numpy_stats as ns
from .deferred import DeferredStats, _Part
from .record import Stats
from .torch_stats import device_records

_MAX_BINS = 1 << 26
Range = Optional[Tuple[float, float]]


def stats(x: Any, *, bins: int = 0, range: Range = None) -> Union[Stats, List[Stats]]:
    """Statistics of a tensor or array: a :class:`Stats`; of a list (or any iterable) of them:
    a list of :class:`Stats`, reduced together (one launch per CUDA device).

    bins: 0 for no histogram, else the number of equal-width bins over ``range`` (numpy's
    default range when None: a second pass). Waits for CUDA results.

    >>> fastinit.stats(torch.randn(256, 256)).std
    >>> [r.norm for r in fastinit.stats(list(model.parameters()))]
    >>> fastinit.stats(relu_out, bins=50, range=(0.0, 5.0)).hist
    """
    return stats_async(x, bins=bins, range=range).result()


def stats_async(x: Any, *, bins: int = 0, range: Range = None) -> "DeferredStats":
    """Start :func:`stats` without waiting: the raw accumulators of CUDA tensors stay on their
    device (a float64 tensor, filled on the current stream) until read; other inputs are reduced
    at once. Reading (``.records()``, ``.result()``, ``.raw()``) is the only synchronisation.

    >>> pending = fastinit.stats_async(activations, bins=32, range=(-3.0, 3.0))
    >>> ...                                   # the GPU works on; the host goes on
    >>> total = total.merge(pending) if total else pending   # on the device, no sync
    >>> rows = total.records()                # list of Stats, one per tensor
    """
    items, single = _as_list(x)
    bins = _check_bins(bins)
    if bins * len(items) > _MAX_BINS:
        raise ValueError(
            f"fastinit.stats: {len(items)} histograms of {bins} bins need "
            f"{len(items) * bins * 16 / 2**30:.1f} GiB of counters; at most {_MAX_BINS} bins in "
            "all (fewer bins, or fewer tensors per call)")
    lo_hi = _check_range(range, bins)
    torch = _torch()
    with outside_dispatch_modes(torch) if torch is not None else contextlib.nullcontext():
        # the statistics read memory: a dispatch mode (fake, functional, ...) has no say in it
        sources = [_describe(t) for t in items]
        parts = _reduce(sources, bins, lo_hi)
    return DeferredStats(parts, len(items), single, bins, lo_hi)


# ------------------------------------------------------------------------------ input checks

def _torch():
    return sys.modules.get("torch")


def _is_tensor(x: Any) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def _as_list(x: Any) -> Tuple[List[Any], bool]:
    if _is_tensor(x) or isinstance(x, (np.ndarray, np.generic)):
        return [x], True
    if isinstance(x, (str, bytes, dict)) or not hasattr(x, "__iter__"):
        raise TypeError("fastinit.stats: expected a torch.Tensor, a numpy.ndarray or a list of "
                        f"them, got {type(x).__name__}")
    items = list(x)
    for t in items:
        if not (_is_tensor(t) or isinstance(t, (np.ndarray, np.generic))):
            raise TypeError("fastinit.stats: expected a list of torch.Tensor or numpy.ndarray, "
                            f"got an element of type {type(t).__name__}")
    return items, False


def _check_bins(bins: Any) -> int:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)):
        raise TypeError(f"fastinit.stats: bins must be an int, got {type(bins).__name__}")
    bins = int(bins)
    if bins < 0:
        raise ValueError(f"fastinit.stats: bins must be >= 0 (0: no histogram), got {bins}")
    if bins > _MAX_BINS:
        raise ValueError(f"fastinit.stats: at most {_MAX_BINS} bins, got {bins}")
    return bins


def _check_range(range: Any, bins: int) -> Range:
    if range is None:
        return None
    if bins == 0:
        raise ValueError("fastinit.stats: range= is the histogram's range and needs bins > 0")
    try:
        lo, hi = range
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        raise TypeError(f"fastinit.stats: range must be a pair of numbers (lo, hi), got {range!r}") from None
    return ns.check_range(lo, hi, bins)


class _Source:
    """One input, ready to reduce: the object to read (a converted copy for dtypes the kernels
    do not read) and its format, pointer and strides in elements (None: read via NumPy)."""

    def __init__(self, obj: Any, fmt: FloatFormat, is_torch: bool, device: str,
                 strides: Optional[Tuple[int, ...]]) -> None:
        self.obj = obj
        self.fmt = fmt
        self.is_torch = is_torch
        self.device = device
        self.shape = tuple(obj.shape)
        self.strides = strides


def _describe(x: Any) -> _Source:
    if _is_tensor(x):
        return _describe_tensor(x)
    return _describe_array(np.asarray(x))


def _describe_tensor(x: Any) -> _Source:
    torch = _torch()
    mod = sys.modules.get("torch.distributed.tensor")
    dtensor = getattr(mod, "DTensor", None) if mod is not None else None
    if dtensor is not None and isinstance(x, dtensor):
        raise NotImplementedError("fastinit.stats: DTensor is not supported; pass x.to_local() "
                                  "for the statistics of the local shard")
    if x.layout != torch.strided:
        raise NotImplementedError(f"fastinit.stats: {x.layout} tensors are not supported; pass "
                                  "a dense tensor (x.to_dense())")
    if x.device.type == "meta":
        raise RuntimeError("fastinit.stats: a meta tensor has no values to reduce (it holds a "
                           "shape and a dtype only); materialise it first (e.g. to_empty + init)")
    if is_fake(x):
        raise RuntimeError("fastinit.stats: a fake tensor (FakeTensorMode) has no values to "
                           "reduce; call fastinit.stats outside the fake mode, on real tensors")
    if torch._is_functional_tensor(x):  # torch.func.functionalize: read the tensor it wraps
        torch._sync(x)
        x = torch._from_functional_tensor(x)
    if x.is_complex():
        raise NotImplementedError(f"fastinit.stats: statistics of complex tensors ({x.dtype}) "
                                  "are not supported; reduce x.real and x.imag")
    t = x.detach()
    if t.numel() > 0 and t.data_ptr() == 0:
        raise NotImplementedError(
            f"fastinit.stats: a {type(x).__name__} has no memory of its own to read (a wrapper "
            "tensor subclass); pass the plain tensor(s) it wraps")
    fmt = {torch.float32: FLOAT32, torch.float64: FLOAT64, torch.float16: FLOAT16,
           torch.bfloat16: BFLOAT16}.get(t.dtype)
    if fmt is None:  # integers, bool, float8: float64 values
        t, fmt = t.to(torch.float64), FLOAT64
    return _Source(t, fmt, True, t.device.type, tuple(t.stride()))


_NUMPY_FORMATS = {"float32": FLOAT32, "float64": FLOAT64, "float16": FLOAT16, "bfloat16": BFLOAT16}


def _describe_array(a: np.ndarray) -> _Source:
    kind = a.dtype.kind
    if kind == "c":
        raise NotImplementedError(f"fastinit.stats: statistics of complex arrays ({a.dtype}) are "
                                  "not supported; reduce a.real and a.imag")
    fmt = _NUMPY_FORMATS.get(a.dtype.name)
    if fmt is None or (kind not in "fV"):
        if kind not in "biuf":
            raise TypeError(f"fastinit.stats: expected real numbers, got an array of dtype {a.dtype}")
        a, fmt = a.astype(np.float64), FLOAT64  # integers, bool, long double
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    item = a.itemsize
    if not a.flags.aligned or any(s % item for s in a.strides):
        a = np.ascontiguousarray(a)
    return _Source(a, fmt, False, "cpu", tuple(s // item for s in a.strides))


# -------------------------------------------------------------------------------- reduction

def _reduce(sources: List[_Source], bins: int, lo_hi: Range) -> List[_Part]:
    core = _backend.core()
    native = core is not None and _backend.get_backend() == "native"
    cuda_kernels = native and getattr(core, "cuda_compiled", lambda: False)()
    groups: Dict[Tuple[str, str], List[int]] = {}
    for i, s in enumerate(sources):
        if s.device == "cpu":
            key = ("cpu", "") if native else ("numpy", "")
        elif s.device == "cuda" and cuda_kernels:
            key = ("cuda", str(s.obj.device))
        else:
            key = ("torch", str(s.obj.device))
        groups.setdefault(key, []).append(i)
    parts = []
    for (kind, _), idx in groups.items():
        group = [sources[i] for i in idx]
        if kind == "cpu":
            parts.append(_Part(idx, _cpu_records(group, bins, lo_hi)))
        elif kind == "numpy":
            parts.append(_Part(idx, np.stack([ns.reduce_array(_numpy_values(s), bins, lo_hi)
                                              for s in group])))
        elif kind == "cuda":
            parts.append(_cuda_part(idx, group, bins, lo_hi))
        else:
            parts.append(_torch_part(idx, group, bins, lo_hi))
    return parts


def _cpu_records(group: List[_Source], bins: int, lo_hi: Range, threads: int = 0) -> np.ndarray:
    """The compiled CPU core: every tensor of the group in one parallel pass."""
    ptrs = [s.obj.data_ptr() if s.is_torch else s.obj.ctypes.data for s in group]
    ranges = [] if lo_hi is None else [lo_hi[0], lo_hi[1]] * len(group)
    flat = _backend.core().stats_cpu([s.fmt.code for s in group], ptrs, [list(s.shape) for s in group],
                                     [list(s.strides) for s in group], bins, ranges, threads)
    return np.asarray(flat, dtype=np.float64).reshape(len(group), ns.HEAD + bins)


def _numpy_values(s: _Source) -> np.ndarray:
    """The values of a CPU input as a NumPy array (16-bit formats widened to float32)."""
    if not s.is_torch:
        a = s.obj
        if s.fmt is BFLOAT16:
            return bf16_bits_to_float32(a.view(np.uint16)).reshape(a.shape) if a.size else a.astype(np.float32)
        return a
    torch = _torch()
    if s.fmt is BFLOAT16:
        bits = s.obj.view(torch.int16).numpy().view(np.uint16)
        return bf16_bits_to_float32(np.ascontiguousarray(bits)).reshape(s.shape)
    return s.obj.numpy()


def _dense(t: Any) -> bool:
    """Non-overlapping and dense in some memory order (one run for the CUDA kernel)."""
    if t.numel() == 0:
        return True
    expected = 1
    for stride, size in sorted((st, sz) for st, sz in zip(t.stride(), t.shape) if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _cuda_part(idx: List[int], group: List[_Source], bins: int, lo_hi: Range) -> _Part:
    """The compiled CUDA kernel: one launch for the group (one device), no synchronisation."""
    torch = _torch()
    tensors = [s.obj if _dense(s.obj) else s.obj.contiguous() for s in group]
    device = tensors[0].device
    core = _backend.core()
    numels = [t.numel() for t in tensors]
    ranges = [] if lo_hi is None else [lo_hi[0], lo_hi[1]] * len(tensors)
    work_bytes = core.stats_cuda_workspace_bytes(numels, bins, lo_hi is None)
    with torch.cuda.device(device):
        stream = torch.cuda.current_stream(device)
        out = torch.empty((len(tensors), ns.HEAD + bins), dtype=torch.float64, device=device)
        work = torch.empty(max(work_bytes, 1), dtype=torch.uint8, device=device)
        core.stats_cuda([s.fmt.code for s in group], [t.data_ptr() for t in tensors],
                        [list(t.shape) for t in tensors], [list(t.stride()) for t in tensors],
                        bins, ranges, out.data_ptr(), work.data_ptr(), work_bytes,
                        device.index, stream.cuda_stream)
        event = torch.cuda.Event()
        event.record(stream)
    return _Part(idx, out, event)


def _torch_part(idx: List[int], group: List[_Source], bins: int, lo_hi: Range) -> _Part:
    """torch operations on the tensors' device (no compiled kernel for it)."""
    torch = _torch()
    with torch.no_grad():
        raw = device_records([s.obj for s in group], bins, lo_hi)
    event = None
    if raw.device.type == "cuda":
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(raw.device))
    return _Part(idx, raw, event)
