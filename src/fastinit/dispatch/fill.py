"""The one path every random fill takes: check the target, draw a key, run a backend.

A fill of one target goes to the compiled core (CPU kernels; CUDA kernels on the caller's
stream) or to the NumPy stream; writes of many targets in one core call are in :mod:`.batch`.
Imports: the stream package, and this package's backend and target."""
from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Optional, Sequence

import numpy as np

from ..stream.dtypes import FloatFormat, bf16_bits_to_float32, float32_to_bf16_bits
from ..stream.keys import GeneratorLike, next_key
from ..stream.logical import Logical, row_major_strides
from ..stream.numpy_stream import values_at, values_range
from ..stream.ops import OP_CONSTANT, OpCall
from . import backend as _backend
from .target import Target, as_target, torch_module

PURPOSE_VALUES = 0  # counter word 2 for the values of an init call
PURPOSE_AUX = 1     # for auxiliary draws of the same call (sparse_'s zero pattern)

# fastinit.init_ plans all its fills before writing any (bad input leaves everything
# untouched): while a list is set here, random_fill records (target, call) instead of drawing a
# key and writing. See model/plan.py.
capture_fills: ContextVar[Optional[list]] = ContextVar("fastinit_capture_fills", default=None)


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
