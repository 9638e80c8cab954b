"""The one path every random fill takes: check the target, draw a key, run a backend."""
from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import _backend
from ._dtypes import FloatFormat, bf16_bits_to_float32, float32_to_bf16_bits
from ._generators import GeneratorLike, next_key
from ._numpy_stream import values_at, values_range
from ._stream_params import OP_CONSTANT, OpCall
from ._target import Target, as_target, torch_module

PURPOSE_VALUES = 0  # counter word 2 for the values of an init call
PURPOSE_AUX = 1     # for auxiliary draws of the same call (sparse_'s zero pattern)

# fastinit.init_ plans all its fills before writing any (bad input leaves everything
# untouched): while a list is set here, random_fill records (target, call) instead of drawing a
# key and writing. See model.py.
capture_fills: ContextVar[Optional[list]] = ContextVar("fastinit_capture_fills", default=None)


def row_major_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= max(int(n), 1)
    return tuple(reversed(strides))


_ROW_MAJOR: dict = {}
_ROW_MAJOR_LOGICAL: dict = {}


def _row_major_cached(shape: tuple) -> tuple[int, ...]:
    strides = _ROW_MAJOR.get(shape)
    if strides is None:
        if len(_ROW_MAJOR) > 4096:
            _ROW_MAJOR.clear()
        strides = _ROW_MAJOR[shape] = row_major_strides(shape)
    return strides


class Logical:
    """Which stream elements a target holds: element m (a multi-index) is stream element
    base + sum(m[d] * strides[d]). The default is the target's own row-major order."""

    def __init__(self, strides: Sequence[int], base: int = 0) -> None:
        self.strides = tuple(int(s) for s in strides)
        self.base = int(base)

    @staticmethod
    def of(shape: Sequence[int]) -> "Logical":
        return Logical(row_major_strides(shape), 0)

    @staticmethod
    def row_major(shape: tuple) -> "Logical":
        """Logical.of(shape), shared per shape (a Logical is never changed)."""
        logical = _ROW_MAJOR_LOGICAL.get(shape)
        if logical is None:
            if len(_ROW_MAJOR_LOGICAL) > 4096:
                _ROW_MAJOR_LOGICAL.clear()
            logical = _ROW_MAJOR_LOGICAL[shape] = Logical(_row_major_cached(shape), 0)
        return logical

    def is_default_for(self, shape: Sequence[int]) -> bool:
        return self.base == 0 and self.strides == row_major_strides(shape)

    def indices(self, shape: Sequence[int]) -> np.ndarray:
        idx = np.full(tuple(shape), self.base, dtype=np.uint64)
        for d, (n, s) in enumerate(zip(shape, self.strides)):
            view = [1] * len(shape)
            view[d] = n
            idx += (np.arange(n, dtype=np.uint64) * np.uint64(s)).reshape(view)
        return idx


def random_fill(x: Any, call: OpCall, generator: GeneratorLike, fn_name: str,
                logical: Optional[Logical] = None, target: Optional[Target] = None) -> Any:
    """Fill x in place with stream values of `call`, drawing one key from `generator`.
    target: as_target(x), when the caller has it already."""
    if target is None:
        target = as_target(x, fn_name)
    if target.skip:
        return x
    plan = capture_fills.get()
    if plan is not None:
        plan.append((target, call, logical))
        return x
    key = next_key(generator)
    write_values(target, call, key, PURPOSE_VALUES, logical)
    return x


def write_values(target: Target, call: OpCall, key: int, purpose: int,
                 logical: Optional[Logical] = None) -> None:
    if target.numel == 0:  # e.g. an empty local shard of a non-empty DTensor
        return
    if logical is None:
        if target.logical_strides is not None:  # a DTensor's local shard
            logical = Logical(target.logical_strides, target.logical_base)
        else:
            logical = Logical.row_major(target.shape)
    if call.constant is not None:
        write_constant(target, call.constant)
        return
    if call.op == OP_CONSTANT:  # from FillBatch: the core's constant op is torch's fill_
        write_constant(target, call.params[0])
        return
    if _backend.get_backend() == "native" and target.strides is not None:
        if target.device == "cpu":
            _native_fill(target, call, key, purpose, logical, target.data_ptr, target.strides)
            _bump_version(target)
            return
        if target.device == "cuda" and _cuda_ready(target):
            _native_fill_cuda(target, call, key, purpose, logical)
            _bump_version(target)
            return
        if target.is_torch:  # a device without a kernel: generate on the CPU, then copy
            torch = torch_module()
            staging = torch.empty(target.shape, dtype=target.obj.dtype)
            _native_fill(target, call, key, purpose, logical, staging.data_ptr(),
                         row_major_strides(target.shape))
            with torch.no_grad():
                target.obj.copy_(staging)
            return
    values = numpy_values(target, call, key, purpose, logical)
    _write_array(target, values)


def numpy_values(target: Target, call: OpCall, key: int, purpose: int,
                 logical: Logical) -> np.ndarray:
    """The values for the target computed by the NumPy stream, rounded, in its shape: float32
    (16-bit formats as float32 holding exactly representable values), or float64."""
    fmt = target.fmt
    if logical.is_default_for(target.shape):
        flat = values_range(call.op, call.params, key, purpose, 0, target.numel, fmt.family)
    else:
        flat = values_at(call.op, call.params, key, purpose, logical.indices(target.shape), fmt.family)
    return round_compute(flat, call, fmt).reshape(target.shape)


def round_compute(values: np.ndarray, call: OpCall, fmt: FloatFormat) -> np.ndarray:
    """Round compute-type values to fmt (kept in the compute type), clamping the truncated
    normal to its representable bounds, as the kernels' finish step does."""
    if fmt.name == "float16":
        values = values.astype(np.float16).astype(np.float32)
    elif fmt.name == "bfloat16":
        values = bf16_bits_to_float32(float32_to_bf16_bits(values))
    clamp = {1: (2, 3), 2: (8, 9)}.get(call.op)  # normal, truncated normal: clamp after rounding
    if clamp is not None:
        lo, hi = call.params[clamp[0]], call.params[clamp[1]]
        values = np.minimum(np.maximum(values, values.dtype.type(lo)), values.dtype.type(hi))
    return values


def _write_array(target: Target, values: np.ndarray) -> None:
    """Copy rounded values into the target (NumPy backend, or devices without a kernel)."""
    if target.is_torch:
        torch = torch_module()
        if target.fmt.name == "bfloat16":
            src = torch.from_numpy(float32_to_bf16_bits(values).view(np.int16)).view(torch.bfloat16)
        else:
            src = torch.from_numpy(np.ascontiguousarray(values)).to(getattr(torch, target.fmt.name))
        with torch.no_grad():
            target.obj.copy_(src.reshape(target.shape))
        return
    arr = target.obj
    if target.fmt.name == "bfloat16":
        arr.view(np.uint16)[...] = float32_to_bf16_bits(values).reshape(target.shape)
    else:
        arr[...] = values.astype(arr.dtype)


def write_constant(target: Target, value: float) -> None:
    if target.is_torch:
        torch = torch_module()
        with torch.no_grad():
            target.obj.fill_(value)
    else:
        target.obj[...] = value


def _native_fill(target: Target, call: OpCall, key: int, purpose: int, logical: Logical,
                 data_ptr: int, strides: Sequence[int]) -> None:
    core = _backend.core()
    core.fill(call.op, target.fmt.code, data_ptr, list(target.shape), list(strides),
              list(logical.strides), logical.base, key & 0xFFFFFFFF, key >> 32, purpose,
              list(call.params))


def _cuda_ready(target: Target) -> bool:
    core = _backend.core()
    return core is not None and getattr(core, "cuda_compiled", lambda: False)()


def _native_fill_cuda(target: Target, call: OpCall, key: int, purpose: int,
                      logical: Logical) -> None:
    torch = torch_module()
    tensor = target.obj
    with torch.cuda.device(tensor.device):
        stream = torch.cuda.current_stream(tensor.device).cuda_stream
        _backend.core().fill_cuda(call.op, target.fmt.code, target.data_ptr, list(target.shape),
                                  list(target.strides), list(logical.strides), logical.base,
                                  key & 0xFFFFFFFF, key >> 32, purpose, list(call.params),
                                  tensor.device.index, stream)


def _bump_version(target: Target) -> None:
    """Tell autograd the tensor changed (we wrote through its pointer, not a torch op)."""
    if target.is_torch:
        _bump_versions([target.obj])


def _bump_versions(tensors: list) -> None:
    torch = torch_module()
    bump = getattr(getattr(torch.autograd, "graph", None), "increment_version", None)
    if bump is None or not tensors:
        return
    try:
        bump(tensors)  # a list in one call (recent torch)
    except TypeError:
        for t in tensors:
            bump(t)


# ----------------------------------------------------------------------------------------------
# many writes in one core call


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
            strides, base = _row_major_cached(target.shape), 0
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
            core.fill_many(*requests.arrays())
            requests.bump_versions()
        if self._cuda:
            torch = torch_module()
            batches, self._cuda = self._cuda, {}
            for index, requests in batches.items():
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
        self.count = len(requests.rows)

    def run(self, keys: list, tensors: Sequence[Any]) -> None:
        if len(keys) != self.count:
            raise ValueError(f"fastinit: {len(keys)} keys for {self.count} writes")
        arrays = self._arrays[:8] + (keys,) + self._arrays[9:]
        core = _backend.core()
        if self._cuda_index is None:
            core.fill_many(*arrays)
        else:
            stream = torch_module().cuda.current_stream(self._cuda_index).cuda_stream
            core.fill_cuda_many(*arrays, self._cuda_index, stream)
        _bump_versions([t for t in tensors if t is not None])


_PAD = (0.0,) * 16  # FILL_PARAMS: a parameter record of the core


class _Requests:
    """The requests of one batched core call (csrc/fill_request.h, FillBatch): a row per
    request, turned into the core's flat lists at the call."""

    __slots__ = ("rows", "shapes", "mem_strides", "logical_strides", "params", "records",
                 "calls", "tensors")

    def __init__(self) -> None:
        self.rows: list = []  # (op, dtype, data, ndim, logical base, key, purpose, record)
        self.shapes: list = []
        self.mem_strides: list = []
        self.logical_strides: list = []
        self.params: list = []
        self.records: dict = {}  # id(call) -> its parameter record (calls kept alive in .calls)
        self.calls: list = []
        self.tensors: list = []  # torch tensors whose version counter to bump

    def add(self, target: Target, call: OpCall, key: int, purpose: int, strides: Sequence[int],
            base: int) -> None:
        record = self.records.get(id(call))
        if record is None:
            record = self.records[id(call)] = len(self.calls)
            self.calls.append(call)
            self.params.extend(call.params)
            self.params.extend(_PAD[len(call.params):])
        shape = target.shape
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
