"""The one path every random fill takes: check the target, draw a key, run a backend."""
from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Optional, Sequence

import numpy as np

from . import _backend
from ._dtypes import FloatFormat, bf16_bits_to_float32, float32_to_bf16_bits
from ._generators import GeneratorLike, next_key
from ._numpy_stream import values_at, values_range
from ._stream_params import OpCall
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


class Logical:
    """Which stream elements a target holds: element m (a multi-index) is stream element
    base + sum(m[d] * strides[d]). The default is the target's own row-major order."""

    def __init__(self, strides: Sequence[int], base: int = 0) -> None:
        self.strides = tuple(int(s) for s in strides)
        self.base = int(base)

    @staticmethod
    def of(shape: Sequence[int]) -> "Logical":
        return Logical(row_major_strides(shape), 0)

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
                logical: Optional[Logical] = None) -> Any:
    """Fill x in place with stream values of `call`, drawing one key from `generator`."""
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
    if logical is None and target.logical_strides is not None:  # a DTensor's local shard
        logical = Logical(target.logical_strides, target.logical_base)
    logical = logical or Logical.of(target.shape)
    if target.numel == 0:  # e.g. an empty local shard of a non-empty DTensor
        return
    if call.constant is not None:
        write_constant(target, call.constant)
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
        torch = torch_module()
        bump = getattr(getattr(torch.autograd, "graph", None), "increment_version", None)
        if bump is not None:
            bump(target.obj)
