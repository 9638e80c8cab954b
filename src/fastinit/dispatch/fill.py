"""The one path every random fill takes: check the target, draw a key, run a backend.

A fill of one target goes to the compiled core (CPU kernels; CUDA kernels on the caller's
stream) or to the NumPy stream; writes of many targets in one core call are in :mod:`.batch`.
Imports: the stream package, and this package's backend and target."""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Any, Optional, Sequence

import numpy as np

from ..stream.dtypes import FloatFormat, bf16_bits_to_float32, float32_to_bf16_bits
from ..stream.keys import GeneratorLike, key_for_core, next_key
from ..stream.logical import Logical
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
    if target.flat_cpu and call.stream and logical is None and _backend._active == "native":
        # The common case in few steps: the key's words go straight from the generator's
        # draw to the core (key_for_core), which writes the whole contiguous tensor.
        key, key_words = key_for_core(generator)
        numel = target.numel
        _backend._core.fill_contiguous(call.op, target.fmt.code, target.data_ptr, numel, key,
                                       PURPOSE_VALUES, call.params,
                                       0 if numel < _PARALLEL_ELEMENTS else cpu_threads(numel),
                                       key_words)
        if target.is_torch:
            _increment_version(target.obj)
        return x
    key = next_key(generator)
    write_values(target, call, key, PURPOSE_VALUES, logical)
    return x


def fill_plain_cpu(tensor: Any, fmt: FloatFormat, call: OpCall, generator: GeneratorLike,
                   fn_name: str) -> Any:
    """random_fill for a tensor plain_cpu_format accepted (fmt is its format), without building a
    Target when the core writes it whole: the per-call path of small tensors."""
    if call.stream and _backend._active == "native" and capture_fills.get() is None:
        key, key_words = key_for_core(generator)
        numel = tensor.numel()
        _backend._core.fill_contiguous(call.op, fmt.code, tensor.data_ptr(), numel, key,
                                       PURPOSE_VALUES, call.params,
                                       0 if numel < _PARALLEL_ELEMENTS else cpu_threads(numel),
                                       key_words)
        _increment_version(tensor)
        return tensor
    return random_fill(tensor, call, generator, fn_name)


def write_values(target: Target, call: OpCall, key: int, purpose: int,
                 logical: Optional[Logical] = None) -> None:
    if target.numel == 0 or target.fake:  # e.g. an empty local shard of a non-empty DTensor
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
    if target.staged or (target.is_torch and target.device not in ("cpu", "cuda")):
        _write_staged(target, call, key, purpose, logical)
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
        if target.is_torch:  # CUDA tensors without CUDA kernels: made on the CPU, copied
            _write_staged(target, call, key, purpose, logical)
            return
    values = numpy_values(target, call, key, purpose, logical)
    _write_array(target, values)


def _write_staged(target: Target, call: OpCall, key: int, purpose: int, logical: Logical) -> None:
    """Make the values in a plain temporary, then copy them in with the target's own write
    (``copy_`` for a tensor: its subclass dispatch, view bits and the active dispatch modes
    run; an assignment for a NumPy array, which swaps bytes as its dtype says)."""
    if not target.is_torch:
        arr = target.obj
        plain = np.empty(target.shape, dtype=arr.dtype.newbyteorder("="))
        write_values(as_target(plain, "fill"), call, key, purpose, logical)
        arr[...] = plain
        return
    torch = torch_module()
    tensor = target.obj
    if _backend.get_backend() != "native":
        plain = _tensor_of_values(torch, numpy_values(target, call, key, purpose, logical), target.fmt)
    else:
        device = tensor.device if _cuda_or_cpu_kernel(target) else torch.device("cpu")
        with outside_dispatch_modes(torch):
            plain = torch.empty(target.shape, dtype=tensor.dtype, device=device)
            # Inside torch.func.functionalize even a new tensor is a functional wrapper: write
            # the real tensor it holds (nothing is pending on a new tensor: the wrapper reads it).
            inner = torch._from_functional_tensor(plain) if torch._is_functional_tensor(plain) else plain
            write_values(as_target(inner, "fill"), call, key, purpose, logical)
    with torch.no_grad():
        tensor.copy_(plain)


def _cuda_or_cpu_kernel(target: Target) -> bool:
    return target.device == "cpu" or (_backend.get_backend() == "native" and _cuda_ready(target))


def outside_dispatch_modes(torch: Any) -> Any:
    """A context without the active torch dispatch modes (FakeTensorMode, functionalization,
    ...): the temporary of a staged write is a real tensor, filled for real."""
    if not torch._C._len_torch_dispatch_stack():
        return contextlib.nullcontext()
    from torch.utils._python_dispatch import _disable_current_modes
    return _disable_current_modes()


def cpu_threads(numel: int) -> int:
    """Threads for a CPU call of numel elements: 0 (the core's default, one thread for small
    calls) or, for calls large enough to run in parallel, torch's intra-op thread count when
    torch is imported (torch.set_num_threads governs both)."""
    if numel < _PARALLEL_ELEMENTS:
        return 0
    torch = torch_module()
    return torch.get_num_threads() if torch is not None else 0


# Below twice the core's parallel grain (kParallelGrain, csrc/cpu/fill_cpu_impl.h) a call runs
# on one thread whatever it is given.
_PARALLEL_ELEMENTS = 1 << 20


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
    """Round compute-type values to fmt (kept in the compute type), then clamp them to the
    call's representable bounds, as the kernels' finish step does."""
    if fmt.name == "float16":
        values = values.astype(np.float16).astype(np.float32)
    elif fmt.name == "bfloat16":
        values = bf16_bits_to_float32(float32_to_bf16_bits(values))
    clamp = {0: (2, 3), 1: (2, 3), 2: (8, 9)}.get(call.op)  # the ops' clamp after rounding
    if clamp is not None:
        lo, hi = call.params[clamp[0]], call.params[clamp[1]]
        values = np.minimum(np.maximum(values, values.dtype.type(lo)), values.dtype.type(hi))
    return values


def _write_array(target: Target, values: np.ndarray) -> None:
    """Copy rounded values into the target (NumPy backend, or devices without a kernel)."""
    if target.is_torch:
        torch = torch_module()
        with torch.no_grad():
            target.obj.copy_(_tensor_of_values(torch, values, target.fmt))
        return
    arr = target.obj
    if target.fmt.name == "bfloat16":
        arr.view(np.uint16)[...] = float32_to_bf16_bits(values).reshape(target.shape)
    else:
        arr[...] = values.astype(arr.dtype)


def _tensor_of_values(torch: Any, values: np.ndarray, fmt: FloatFormat) -> Any:
    """Rounded values (float32 / float64 NumPy) as a CPU tensor of fmt, same shape."""
    if fmt.name == "bfloat16":
        bits = float32_to_bf16_bits(values).view(np.int16).reshape(values.shape)
        return torch.from_numpy(bits).view(torch.bfloat16)
    # (ascontiguousarray makes a 0-d array 1-d: the reshape keeps the shape)
    return torch.from_numpy(np.ascontiguousarray(values).reshape(values.shape)).to(getattr(torch, fmt.name))


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
              list(call.params), "auto", cpu_threads(target.numel))


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
        _increment_version(target.obj)


def _increment_version(tensor: Any) -> None:
    torch = torch_module()
    torch._C._increment_version((tensor,))  # inference tensors: a no-op (they have none)


def _bump_versions(tensors: list) -> None:
    if tensors:
        torch_module()._C._increment_version(tuple(tensors))
