"""Many writes in one call of the core: the CPU targets in one parallel region, the CUDA targets
of a device in one launch per (operation, dtype) group. Used by fastinit.init_ and
fastinit.reset_parameters (model/), which plan every write first.
Imports: the stream package and this package's fill path."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from ..stream.logical import Logical, row_major_strides_cached
from ..stream.ops import OP_CONSTANT, OpCall
from . import backend as _backend
from .fill import PURPOSE_VALUES, _bump_versions, _cuda_ready, cpu_threads, write_values
from .target import Target, torch_module


def write_many(targets: Sequence[Target], calls: Sequence[OpCall], keys: Sequence[int],
               purposes: Union[int, Sequence[int]] = PURPOSE_VALUES,
               logicals: Optional[Sequence[Optional[Logical]]] = None) -> None:
    """``write_values(targets[i], calls[i], keys[i], purposes[i], logicals[i])`` for every i,
    with the same result (also where targets share memory: later writes win), in one call of
    the core per device: the CPU targets in one parallel region, the CUDA targets of a device in
    one launch per group of (operation, dtype) on the device's current stream. Targets the core
    does not write (NumPy backend, devices without kernels, arrays with byte strides) are
    written one by one, in order."""
    batch = FillBatch()
    for i, target in enumerate(targets):
        purpose = purposes if isinstance(purposes, int) else purposes[i]
        batch.add(target, calls[i], keys[i], purpose, None if logicals is None else logicals[i])
    batch.flush()


class FillBatch:
    """Writes collected for batched core calls (see write_many): ``add`` queues a write, or
    makes it at once (after the queued ones) when the core cannot take it; ``flush`` makes the
    queued writes."""

    def __init__(self) -> None:
        self._cpu: Optional[_Requests] = None
        self._cuda: dict[int, _Requests] = {}
        self._native = _backend.get_backend() == "native"
        self.pending = 0      # elements queued
        self.direct = False   # whether add() has written a target itself
        self.count = 0        # requests queued (over all devices, since created)

    def add(self, target: Target, call: OpCall, key: int, purpose: int = PURPOSE_VALUES,
            logical: Optional[Logical] = None) -> None:
        if target.numel == 0:
            return
        requests = self._requests_for(target) if self._native and target.strides is not None else None
        if requests is None:
            self.flush()  # keep the order of writes
            write_values(target, call, key, purpose, logical)
            self.direct = True
            return
        if call.constant is not None:
            call = OpCall(OP_CONSTANT, (call.constant,))
        if logical is not None:
            strides, base = logical.strides, logical.base
        elif target.logical_strides is not None:  # a DTensor's local shard
            strides, base = target.logical_strides, target.logical_base
        else:
            strides, base = row_major_strides_cached(target.shape), 0
        requests.add(target, call, key, purpose, strides, base)
        self.pending += target.numel
        self.count += 1

    def queueable(self, target: Target) -> bool:
        """Whether add() would queue a write of target (not make it at once, not skip it)."""
        if not (self._native and target.strides is not None and target.numel > 0):
            return False
        return target.device == "cpu" or (target.device == "cuda" and _cuda_ready(target))

    def _requests_for(self, target: Target) -> Optional["_Requests"]:
        if target.device == "cpu":
            if self._cpu is None:
                self._cpu = _Requests()
            return self._cpu
        if target.device == "cuda" and _cuda_ready(target):
            index = target.obj.get_device()
            requests = self._cuda.get(index)
            if requests is None:
                requests = self._cuda[index] = _Requests()
            return requests
        return None

    def prepared(self) -> Optional["PreparedWrites"]:
        """The queued writes as a PreparedWrites (nothing written), when they all go to one
        device; else None."""
        if self.direct:
            return None
        if self._cpu is not None and not self._cuda:
            return PreparedWrites(self._cpu, None)
        if self._cpu is None and len(self._cuda) == 1:
            (index, requests), = self._cuda.items()
            return PreparedWrites(requests, index)
        return None

    def flush(self) -> None:
        core = _backend.core()
        if self._cpu is not None:
            requests, self._cpu = self._cpu, None
            core.fill_many(*requests.arrays(), cpu_threads(requests.numel))
            requests.bump_versions()
        if self._cuda:
            torch = torch_module()
            batches, self._cuda = self._cuda, {}
            for index, requests in batches.items():
                with torch.cuda.device(index):  # the core never makes a context of its own
                    stream = torch.cuda.current_stream(index).cuda_stream
                    core.fill_cuda_many(*requests.arrays(), index, stream)
                requests.bump_versions()
        self.pending = 0


class PreparedWrites:
    """One device's writes of a FillBatch kept for reuse: ``run`` writes them again with new
    keys (one per request, in order). Holds addresses, not tensors: the caller checks that the
    tensors are still the ones described, and passes them for their version counters."""

    def __init__(self, requests: "_Requests", cuda_index: Optional[int]) -> None:
        self._arrays = requests.arrays()
        self._cuda_index = cuda_index
        self._numel = requests.numel
        self.count = len(requests.rows)

    def run(self, keys: list, tensors: Sequence[Any]) -> None:
        if len(keys) != self.count:
            raise ValueError(f"fastinit: {len(keys)} keys for {self.count} writes")
        arrays = self._arrays[:8] + (keys,) + self._arrays[9:]
        core = _backend.core()
        if self._cuda_index is None:
            core.fill_many(*arrays, cpu_threads(self._numel))
        else:
            torch = torch_module()
            with torch.cuda.device(self._cuda_index):  # the core never makes a context of its own
                stream = torch.cuda.current_stream(self._cuda_index).cuda_stream
                core.fill_cuda_many(*arrays, self._cuda_index, stream)
        _bump_versions([t for t in tensors if t is not None])


_PAD = (0.0,) * 16  # FILL_PARAMS: a parameter record of the core


class _Requests:
    """The requests of one batched core call (csrc/fill_request.h, FillBatch): a row per
    request, turned into the core's flat lists at the call."""

    __slots__ = ("rows", "shapes", "mem_strides", "logical_strides", "params", "records",
                 "calls", "tensors", "numel")

    def __init__(self) -> None:
        self.rows: list = []  # (op, dtype, data, ndim, logical base, key, purpose, record)
        self.shapes: list = []
        self.mem_strides: list = []
        self.logical_strides: list = []
        self.params: list = []
        self.records: dict = {}  # id(call) -> its parameter record (calls kept alive in .calls)
        self.calls: list = []
        self.tensors: list = []  # torch tensors whose version counter to bump
        self.numel = 0           # elements in all

    def add(self, target: Target, call: OpCall, key: int, purpose: int, strides: Sequence[int],
            base: int) -> None:
        record = self.records.get(id(call))
        if record is None:
            record = self.records[id(call)] = len(self.calls)
            self.calls.append(call)
            self.params.extend(call.params)
            self.params.extend(_PAD[len(call.params):])
        shape = target.shape
        self.numel += target.numel
        self.rows.append((call.op, target.fmt.code, target.data_ptr, len(shape), base, key, purpose,
                          record))
        self.shapes.extend(shape)
        self.mem_strides.extend(target.strides)
        self.logical_strides.extend(strides)
        if target.is_torch:
            self.tensors.append(target.obj)

    def arrays(self) -> tuple:
        ops, dtypes, datas, ndims, bases, keys, purposes, records = (list(c) for c in zip(*self.rows))
        return (ops, dtypes, datas, ndims, self.shapes, self.mem_strides, self.logical_strides,
                bases, keys, purposes, records, self.params)

    def bump_versions(self) -> None:
        if self.tensors:
            _bump_versions(self.tensors)
