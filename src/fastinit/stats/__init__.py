"""Fused per-tensor statistics: one pass gives the moments, extremes, norms, special-value counts
and a histogram of a tensor, or of a whole list of tensors at once (docs/stats.md).

- :mod:`.record`: :class:`Stats`, the record of one tensor;
- :mod:`.reduce`: :func:`stats` and :func:`stats_async`: inputs checked, grouped by device and
  reduced (compiled CPU core, CUDA kernel, NumPy, or torch ops on other devices);
- :mod:`.deferred`: :class:`DeferredStats`, raw accumulators kept on the device until read;
- :mod:`.numpy_stats`: the accumulator's row layout and merge, in NumPy (the reference and the
  fallback); :mod:`.torch_stats`: the same with torch ops, for devices without a kernel.

Imports: fastinit.dispatch.backend (which core runs) and fastinit.stream.dtypes; nothing above.
"""
from .deferred import DeferredStats
from .record import Stats
from .reduce import stats, stats_async

__all__ = ["Stats", "stats", "stats_async", "DeferredStats"]
