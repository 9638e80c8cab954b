"""Raw statistics accumulators that stay on their device until read (:class:`DeferredStats`)."""
from __future__ import annotations

import builtins
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import numpy_stats as ns
from .record import Stats

Range = Optional[Tuple[float, float]]


class _Part:
    """Records of some of the inputs: rows of `raw` are the inputs `indices`."""

    def __init__(self, indices: List[int], raw: Any, event: Any = None) -> None:
        self.indices = indices
        self.raw = raw      # numpy array, or a float64 torch tensor on a device
        self.event = event  # torch.cuda.Event recorded after the work, or None

    def on_device(self) -> bool:
        return not isinstance(self.raw, np.ndarray)

    def host(self) -> np.ndarray:
        if not self.on_device():
            return self.raw
        if self.event is not None:
            self.event.synchronize()
        return self.raw.cpu().numpy()


class DeferredStats:
    """Raw statistics accumulators, turned into :class:`Stats` records only when read.

    Made by :func:`stats_async`. For CUDA inputs the accumulators are a float64 tensor of shape
    (tensors, HEAD + bins) on the device, written by kernels enqueued on the current stream; for
    CPU inputs a NumPy array, already complete. The raw row layout is documented in
    fastinit/stats/numpy_stats.py and docs/stats.md.

    - ``records()`` (alias ``to_list()``): a list of :class:`Stats`, one per input, in order
      (waits for the device);
    - ``result()``: what :func:`stats` returns (one record for a single input, else the list);
    - ``raw()``: the accumulators as a NumPy array (waits); ``DeferredStats.raw_many(items)``:
      those of many objects with one device-to-host copy per device;
    - ``ready()``: whether the device work is done (never waits);
    - ``merge(other)``: the statistics of the union of the values (e.g. of one tensor over
      several steps), merged on the device with Chan's formula, without synchronising. Both must
      come from inputs in the same order, with the same ``bins`` and, when ``bins > 0``, the same
      supplied ``range`` (histograms over data-dependent ranges do not add up).

    >>> acc = None
    >>> for batch in loader:
    ...     d = fastinit.stats_async([h.out for h in hooks], bins=64, range=(-4.0, 4.0))
    ...     acc = d if acc is None else acc.merge(d)
    >>> per_layer = acc.records()
    """

    def __init__(self, parts: List[_Part], count: int, single: bool, bins: int, lo_hi: Range) -> None:
        self._parts = parts
        self._count = count
        self._single = single
        self.bins = bins
        self.range = lo_hi  # the checked range, or None for numpy's default range

    def __len__(self) -> int:
        return self._count

    def ready(self) -> bool:
        """True when every record is complete (CUDA work done); never waits."""
        return all(p.event is None or p.event.query() for p in self._parts)

    def raw(self) -> np.ndarray:
        """The raw accumulators, shape (inputs, HEAD + bins), in input order (waits)."""
        out = ns.empty_records(self._count, self.bins)
        for p in self._parts:
            out[p.indices] = p.host()
        return out

    @staticmethod
    def raw_many(items: Sequence["DeferredStats"]) -> List[np.ndarray]:
        """``[d.raw() for d in items]`` with one device-to-host copy per device in all (not
        one per object): what a tool that keeps many deferred records per step reads them with.

        >>> steps = [stats_async(acts, bins=32, range=(-3.0, 3.0)) for acts in per_step]
        >>> tables = DeferredStats.raw_many(steps)   # one synchronisation
        """
        parts = [p for d in items for p in d._parts]
        host: Dict[int, np.ndarray] = {}
        by_device: Dict[Any, List[_Part]] = {}
        for p in parts:
            if p.on_device():
                by_device.setdefault(p.raw.device, []).append(p)
            else:
                host[id(p)] = p.raw
        if by_device:
            import torch
            for device, group in by_device.items():
                if device.type == "cuda":
                    stream = torch.cuda.current_stream(device)
                    for p in group:
                        if p.event is not None:
                            stream.wait_event(p.event)  # on the device; the copy below waits once
                for width in sorted({p.raw.shape[1] for p in group}):
                    same = [p for p in group if p.raw.shape[1] == width]
                    flat = torch.cat([p.raw for p in same]).cpu().numpy()
                    start = 0
                    for p in same:
                        host[id(p)] = flat[start:start + p.raw.shape[0]]
                        start += p.raw.shape[0]
        out = []
        for d in items:
            rec = ns.empty_records(d._count, d.bins)
            for p in d._parts:
                rec[p.indices] = host[id(p)]
            out.append(rec)
        return out

    def records(self) -> List[Stats]:
        """One :class:`Stats` per input, in order (waits for the device)."""
        return [Stats.from_raw(row, self.bins) for row in self.raw()]

    to_list = records

    def result(self) -> Union[Stats, List[Stats]]:
        """A :class:`Stats` for a single input, else the list, as :func:`stats` returns."""
        rows = self.records()
        return rows[0] if self._single else rows

    def merge(self, other: "DeferredStats") -> "DeferredStats":
        """The statistics of both sets of values, input by input (no synchronisation)."""
        if not isinstance(other, DeferredStats):
            raise TypeError(f"can only merge DeferredStats, got {type(other).__name__}")
        if len(other) != len(self) or other.bins != self.bins:
            raise ValueError(f"cannot merge the statistics of {len(self)} inputs with {self.bins} "
                             f"bins and of {len(other)} inputs with {other.bins} bins")
        if self.bins and (self.range is None or self.range != other.range):
            raise ValueError("histograms merge only over the same supplied range: pass range=(lo, hi) "
                             f"(got {self.range} and {other.range})")
        same_shape = len(self._parts) == len(other._parts) and all(
            a.indices == b.indices and a.on_device() == b.on_device()
            and (not a.on_device() or a.raw.device == b.raw.device)
            for a, b in zip(self._parts, other._parts))
        if not same_shape:  # inputs regrouped (e.g. moved between devices): merge on the host
            merged = ns.merge(self.raw(), other.raw())
            part = _Part(list(builtins.range(self._count)), merged)
            return DeferredStats([part], self._count, self._single, self.bins, self.range)
        parts = [_merge_parts(a, b) for a, b in zip(self._parts, other._parts)]
        return DeferredStats(parts, self._count, self._single, self.bins, self.range)


def _merge_parts(a: _Part, b: _Part) -> _Part:
    if not a.on_device():
        return _Part(a.indices, ns.merge(a.raw, b.raw))
    import torch
    event = None
    if a.raw.device.type == "cuda":
        stream = torch.cuda.current_stream(a.raw.device)
        for p in (a, b):
            if p.event is not None:
                stream.wait_event(p.event)  # device-side wait: the host goes on
    merged = ns.merge(a.raw, b.raw, ns.TORCH_OPS)
    if a.raw.device.type == "cuda":
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(a.raw.device))
    return _Part(a.indices, merged, event)
