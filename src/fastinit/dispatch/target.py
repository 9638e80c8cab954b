"""What an init function writes into: a torch tensor or a NumPy array, checked and described.

The checks happen before any key is drawn or any element written, so bad input leaves the
tensor and the generator untouched. A target is written one of three ways:

- **direct**: through its pointer by the compiled core (or the NumPy stream), for plain dense
  strided tensors and arrays whose elements are distinct memory locations;
- **staged**: the values are made in a plain temporary (outside any torch dispatch mode) and
  copied in with ``copy_`` / an assignment, so that the tensor's own semantics run: wrapper
  subclasses (their ``__torch_dispatch__``), functional tensors (``torch.func.functionalize``),
  tensors under a dispatch mode, negative or conjugate views, byte-swapped NumPy arrays,
  devices without kernels, views of more than 16 non-mergeable dims;
- **skipped**: meta tensors, fake tensors (``FakeTensorMode``: a no-op, as in torch) and empty
  tensors: nothing written, and no key drawn.

A DTensor's target is its local shard, with the stream layout of that shard in the global
tensor (:mod:`.sharding`).
"""
from __future__ import annotations

import sys
from typing import Any, Optional, Sequence

import numpy as np

from ..stream.dtypes import BFLOAT16, FLOAT16, FLOAT32, FLOAT64, FORMATS, FloatFormat
from ..stream.logical import row_major_strides, row_major_strides_cached
from .sharding import is_dtensor, local_tensor, shard_layout

# The core collapses a view to at most this many dims (csrc/common/layout.h kMaxDims).
_CORE_MAX_DIMS = 16
# Views whose elements are proved distinct by listing their offsets, at most (fill_batch.h).
_OVERLAP_LIST_LIMIT = 1 << 26

_OVERLAP_MESSAGE = ("unsupported operation: more than one element of the written-to tensor "
                    "refers to a single memory location. Please clone() the tensor before "
                    "performing the operation.")
_INFERENCE_MESSAGE = ("Inplace update to inference tensor outside InferenceMode is not allowed."
                      "You can make a clone to get a normal tensor before doing inplace update."
                      "See https://github.com/pytorch/rfcs/pull/17 for more details.")


class OverlapError(RuntimeError):
    """A write to a view whose elements share memory (torch raises a RuntimeError with the same
    message). Its own type so that callers can order it after argument checks, as torch does
    where its ops write overlapping views and fail later on an argument."""


def torch_module():
    """torch if the caller has imported it (a tensor can only come from an imported torch)."""
    return sys.modules.get("torch")


def is_tensor(x: Any) -> bool:
    torch = torch_module()
    return torch is not None and isinstance(x, torch.Tensor)


def is_array(x: Any) -> bool:
    return isinstance(x, np.ndarray)


class Target:
    """A checked description of what to write. ``strides`` are in elements (None: a NumPy array
    whose byte strides are not whole elements, written through a copy); ``contiguous``: row-major
    dense, so element i of the stream is memory element i."""

    __slots__ = ("obj", "is_torch", "fmt", "shape", "strides", "data_ptr", "device", "numel",
                 "contiguous", "staged", "fake", "flat_cpu", "skip", "logical_strides",
                 "logical_base", "global_numel")

    def __init__(self, obj: Any, is_torch: bool, fmt: FloatFormat, shape: tuple, strides: Any,
                 data_ptr: int, device: str, numel: int, contiguous: bool = False,
                 staged: bool = False) -> None:
        self.obj = obj                    # the tensor or array, returned to the caller
        self.is_torch = is_torch
        self.fmt = fmt
        self.shape = shape
        self.strides = strides
        self.data_ptr = data_ptr
        self.device = device              # "cpu", "cuda", "meta", ...
        self.numel = numel
        self.contiguous = contiguous
        self.staged = staged              # written through a plain temporary and a copy
        self.fake = False                 # a FakeTensor: nothing to write
        # a whole contiguous CPU target: the core's contiguous fill writes it (fill.py)
        self.flat_cpu = contiguous and device == "cpu" and not staged
        # Nothing to write: meta, fake and zero-element tensors are a no-op, as in torch. (A
        # DTensor whose local shard is empty still draws its key, as the other ranks do.)
        self.skip = device == "meta" or numel == 0
        # A DTensor's local shard (sharding.py): the stream layout of the local tensor in the
        # global one, and the global element count. None/0/None for an ordinary tensor.
        self.logical_strides: Optional[tuple] = None
        self.logical_base = 0
        self.global_numel: Optional[int] = None


_TORCH_FORMATS: dict = {}


def _torch_format(dtype) -> Optional[FloatFormat]:
    if not _TORCH_FORMATS:
        torch = torch_module()
        _TORCH_FORMATS.update({torch.float32: FLOAT32, torch.float64: FLOAT64,
                               torch.float16: FLOAT16, torch.bfloat16: BFLOAT16})
    return _TORCH_FORMATS.get(dtype)


def _numpy_format(dtype: np.dtype) -> Optional[FloatFormat]:
    if dtype.name in FORMATS and dtype.kind in "fV":
        return FORMATS[dtype.name]
    return None


def _unsupported_dtype(fn_name: str, dtype_name: str) -> NotImplementedError:
    return NotImplementedError(
        f"fastinit.{fn_name}: dtype {dtype_name} is not supported; random initialization "
        "fills floating-point tensors (float16, bfloat16, float32, float64)")


_PLAIN = [None, None]  # torch.Tensor and torch.nn.Parameter, once torch is imported
_DISPATCH_STACK: list = []  # torch._C._len_torch_dispatch_stack


def plain_cpu_format(x: Any) -> Optional[FloatFormat]:
    """The format of x when it is the common case, found in a few cheap calls: a plain
    (Tensor or Parameter) dense CPU float tensor with memory of its own, no view bits, not an
    inference tensor, no dispatch mode active; else None (as_target then describes it)."""
    kind = type(x)
    if (kind is _PLAIN[0] or kind is _PLAIN[1]) and x.is_cpu and not _DISPATCH_STACK[0]() \
            and x.is_contiguous() and not (x.is_inference() or x.is_neg()) and x.data_ptr():
        return _TORCH_FORMATS.get(x.dtype)  # (data_ptr 0: e.g. a functional tensor)
    return None


def as_target(x: Any, fn_name: str) -> Target:
    """Describe x for a random fill, or raise the error torch would raise for it."""
    kind = type(x)
    if kind is _PLAIN[0] or kind is _PLAIN[1]:
        fmt = plain_cpu_format(x)
        if fmt is not None:
            shape = x.shape
            return Target(x, True, fmt, shape, row_major_strides_cached(shape), x.data_ptr(), "cpu", x.numel(), True)
        return _tensor_target(sys.modules["torch"], x, fn_name)
    torch = torch_module()
    if torch is not None and isinstance(x, torch.Tensor):
        if _PLAIN[0] is None:
            _PLAIN[:] = [torch.Tensor, torch.nn.Parameter]
            _DISPATCH_STACK.append(torch._C._len_torch_dispatch_stack)
            _torch_format(torch.float32)  # fills _TORCH_FORMATS
        return as_target(x, fn_name) if kind in _PLAIN else _tensor_target(torch, x, fn_name)
    if isinstance(x, np.ndarray):
        return _array_target(x, fn_name)
    raise TypeError(f"fastinit.{fn_name}: expected a torch.Tensor or a numpy.ndarray, "
                    f"got {type(x).__name__}")


def _tensor_target(torch: Any, x: Any, fn_name: str) -> Target:
    if is_dtensor(x):  # fill the local shard with the global tensor's values there
        return dtensor_target(x, fn_name)
    fmt = _torch_format(x.dtype)
    if fmt is None:
        if x.numel() == 0 and not x.is_complex():  # torch runs no kernel: no error, no write
            empty = Target(x, True, FLOAT32, tuple(x.shape), None, 0, "meta", 0)
            return empty
        raise _unsupported_dtype(fn_name, str(x.dtype).replace("torch.", ""))
    if x.layout != torch.strided:
        raise NotImplementedError(f"fastinit.{fn_name}: {x.layout} tensors are not supported; "
                                  "initialize a dense tensor (as torch, which has no kernel for them)")
    shape = tuple(x.shape)
    numel = x.numel()
    device = "cpu" if x.is_cpu else "cuda" if x.is_cuda else x.device.type
    if is_fake(x):
        target = Target(x, True, fmt, shape, None, 0, device, numel)
        target.fake = target.skip = True
        return target
    if device == "meta":
        return Target(x, True, fmt, shape, tuple(x.stride()), 0, device, numel)
    if x.is_inference() and not torch.is_inference_mode_enabled():
        raise RuntimeError(_INFERENCE_MESSAGE)
    if _needs_staging(torch, x):
        return Target(x, True, fmt, shape, None, 0, device, numel, staged=True)
    strides = tuple(x.stride())
    if numel > 1 and not x.is_contiguous():
        if torch._debug_has_internal_overlap(x) == 1 or not strides_are_disjoint(shape, strides):
            raise OverlapError(f"fastinit.{fn_name}: {_OVERLAP_MESSAGE}")
    ptr = x.data_ptr()
    if ptr == 0 and numel > 0:  # a tensor without addressable storage of its own
        return Target(x, True, fmt, shape, None, 0, device, numel, staged=True)
    if len(shape) > _CORE_MAX_DIMS and _core_dims(shape, strides) > _CORE_MAX_DIMS:
        return Target(x, True, fmt, shape, None, 0, device, numel, staged=True)
    contiguous = x.is_contiguous()
    return Target(x, True, fmt, shape, strides, ptr, device, numel, contiguous)


def _needs_staging(torch: Any, x: Any) -> bool:
    """Tensors whose memory fastinit must not write through a pointer: their own dispatch (or
    a view bit) decides what a write means."""
    if torch._C._len_torch_dispatch_stack():  # a dispatch mode sees every op: let it see a copy_
        return True
    kind = type(x)
    if kind is not torch.Tensor and kind is not torch.nn.Parameter:
        if getattr(kind, "__torch_dispatch__", None) is not torch.Tensor.__torch_dispatch__:
            return True  # a wrapper subclass (TwoTensor, LocalTensor, ...) or a dispatch override
    if x.is_neg() or x.is_conj():
        return True
    if torch._is_functional_tensor(x):
        return True
    functorch = getattr(torch._C, "_functorch", None)
    if functorch is not None and functorch.is_functorch_wrapped_tensor(x):
        return True
    return False


def is_fake(x: Any) -> bool:
    module = sys.modules.get("torch._subclasses.fake_tensor")
    if module is None:  # no FakeTensor exists until its module is imported
        return False
    return bool(module.is_fake(x))


def strides_are_disjoint(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """Whether no two elements of a strided view share a memory location: proved from the
    strides (by increasing |stride|, each at least the span of the dims before it), else by
    listing the offsets. The same rule as the core's check (csrc/fill_batch.h)."""
    dims = sorted((abs(int(s)), int(n)) for n, s in zip(shape, strides) if int(n) != 1)
    span = 0
    for stride, n in dims:
        if n == 0:
            return True
        if stride <= span:
            break
        span += (n - 1) * stride
    else:
        return True
    numel = 1
    for n in shape:
        numel *= int(n)
    if numel > _OVERLAP_LIST_LIMIT:
        raise RuntimeError(f"fastinit: cannot prove that the view's {numel} elements are distinct "
                           "memory locations; clone() it first")
    offsets = np.zeros(1, dtype=np.int64)
    for n, s in zip(shape, strides):
        offsets = (offsets[:, None] + np.arange(int(n), dtype=np.int64)[None, :] * int(s)).ravel()
    return np.unique(offsets).size == offsets.size


def _core_dims(shape: Sequence[int], strides: Sequence[int]) -> int:
    """The dims the core keeps after dropping size-1 dims and merging memory-contiguous
    neighbours (a whole tensor's logical strides are row-major, so they merge alike)."""
    logical = row_major_strides(shape)
    kept: list = []
    for n, s, ls in zip(shape, strides, logical):
        if n == 1:
            continue
        if kept and kept[-1][1] == s * n and kept[-1][2] == ls * n:
            kept[-1] = (kept[-1][0] * n, s, ls)
        else:
            kept.append((n, s, ls))
    return len(kept)


def _array_target(x: np.ndarray, fn_name: str) -> Target:
    fmt = _numpy_format(x.dtype)
    if fmt is None:
        raise _unsupported_dtype(fn_name, x.dtype.name)
    if not x.flags.writeable:
        raise ValueError(f"fastinit.{fn_name}: assignment destination is read-only")
    shape = tuple(x.shape)
    if x.size > 1 and not (x.flags.c_contiguous or x.flags.f_contiguous):
        item = x.itemsize
        if any(s == 0 and n > 1 for s, n in zip(x.strides, x.shape)) or (
                all(s % item == 0 for s in x.strides)
                and not strides_are_disjoint(shape, [s // item for s in x.strides])):
            raise OverlapError(f"fastinit.{fn_name}: unsupported operation: more than one "
                               "element of the written-to array refers to a single memory location")
    if not x.dtype.isnative:  # byte-swapped: values made natively, then assigned (numpy swaps)
        return Target(x, False, fmt, shape, None, 0, "cpu", x.size, staged=True)
    item = x.itemsize
    if any(s % item for s in x.strides):
        strides = None  # byte strides that are not whole elements: written via a copy
    else:
        strides = tuple(s // item for s in x.strides)
        if len(shape) > _CORE_MAX_DIMS and _core_dims(shape, strides) > _CORE_MAX_DIMS:
            strides = None
    return Target(x, False, fmt, shape, strides, x.ctypes.data, "cpu", x.size,
                  bool(x.flags.c_contiguous))


# Init functions that need the whole tensor at once: not element-wise on the stream.
_WHOLE_TENSOR_FNS = ("orthogonal_", "sparse_")


def dtensor_target(dt: Any, fn_name: str) -> Target:
    """The fill target of a DTensor: its local tensor, with the shard's stream layout.

    Every element-wise init function then fills the local shard with the global tensor's values
    for that slice.
    """
    if fn_name in _WHOLE_TENSOR_FNS:
        raise NotImplementedError(
            f"fastinit.{fn_name} needs the whole matrix and does not fill a DTensor shard by "
            f"shard; use fastinit.init_([tensor], \"{fn_name.rstrip('_')}\"), which generates "
            "the whole tensor on each rank and keeps the local part, or distribute_tensor() a "
            "tensor initialized whole")
    layout = shard_layout(dt, fn_name)
    target = as_target(local_tensor(dt), fn_name)
    target.flat_cpu = False
    target.logical_strides = layout.strides
    target.logical_base = layout.base
    target.global_numel = int(dt.numel())
    target.skip = target.device == "meta" or target.fake or target.global_numel == 0
    return target
