"""What an init function writes into: a torch tensor or a NumPy array, checked and described.

The checks happen before any key is drawn or any element written, so bad input leaves the
tensor and the generator untouched. A DTensor's target is its local shard, with the stream
layout of that shard in the global tensor (:mod:`.sharding`).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..stream.dtypes import BFLOAT16, FLOAT16, FLOAT32, FLOAT64, FORMATS, FloatFormat
from .sharding import is_dtensor, local_tensor, shard_layout


def torch_module():
    """torch if the caller has imported it (a tensor can only come from an imported torch)."""
    return sys.modules.get("torch")


def is_tensor(x: Any) -> bool:
    torch = torch_module()
    return torch is not None and isinstance(x, torch.Tensor)


def is_array(x: Any) -> bool:
    return isinstance(x, np.ndarray)


@dataclass
class Target:
    obj: Any                  # the tensor or array, returned to the caller
    is_torch: bool
    fmt: FloatFormat
    shape: tuple[int, ...]
    strides: tuple[int, ...]  # in elements
    data_ptr: int
    device: str               # "cpu", "cuda", "meta", ...
    numel: int
    # A DTensor's local shard (fastinit/sharding.py): the stream layout of the local tensor in
    # the global one, and the global element count. None/0/None for an ordinary tensor.
    logical_strides: Optional[tuple[int, ...]] = None
    logical_base: int = 0
    global_numel: Optional[int] = None

    @property
    def skip(self) -> bool:
        """Nothing to write: meta tensors and zero-element tensors are a no-op, as in torch.
        (A DTensor whose local shard is empty still draws its key, as the other ranks do.)"""
        numel = self.numel if self.global_numel is None else self.global_numel
        return self.device == "meta" or numel == 0


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


def as_target(x: Any, fn_name: str) -> Target:
    """Describe x for a random fill, or raise the error torch would raise for it."""
    if is_tensor(x):
        if is_dtensor(x):  # fill the local shard with the global tensor's values there
            return dtensor_target(x, fn_name)
        fmt = _torch_format(x.dtype)
        if fmt is None:
            raise _unsupported_dtype(fn_name, str(x.dtype).replace("torch.", ""))
        device = "cpu" if x.is_cpu else "cuda" if x.is_cuda else x.device.type
        if device == "meta":
            return Target(x, True, fmt, tuple(x.shape), tuple(x.stride()), 0, device, x.numel())
        numel = x.numel()
        if numel > 1 and not x.is_contiguous() and _has_internal_overlap(x):
            raise RuntimeError(
                f"fastinit.{fn_name}: unsupported operation: more than one element of the "
                "written-to tensor refers to a single memory location. Please clone() the "
                "tensor before performing the operation.")
        return Target(x, True, fmt, tuple(x.shape), tuple(x.stride()), x.data_ptr(), device, numel)
    if is_array(x):
        fmt = _numpy_format(x.dtype)
        if fmt is None:
            raise _unsupported_dtype(fn_name, x.dtype.name)
        if not x.flags.writeable:
            raise ValueError(f"fastinit.{fn_name}: assignment destination is read-only")
        if x.size > 1 and any(s == 0 and n > 1 for s, n in zip(x.strides, x.shape)):
            raise RuntimeError(f"fastinit.{fn_name}: unsupported operation: more than one element "
                               "of the written-to array refers to a single memory location")
        item = x.itemsize
        if any(s % item for s in x.strides):
            strides = None  # byte strides that are not whole elements: written via a copy
        else:
            strides = tuple(s // item for s in x.strides)
        return Target(x, False, fmt, tuple(x.shape), strides, x.ctypes.data, "cpu", x.size)
    raise TypeError(f"fastinit.{fn_name}: expected a torch.Tensor or a numpy.ndarray, "
                    f"got {type(x).__name__}")


def _has_internal_overlap(t) -> bool:
    torch = torch_module()
    check = getattr(torch, "_debug_has_internal_overlap", None)
    if check is not None:
        return check(t) == 1  # 0: no overlap, 1: overlap, 2: too hard to tell
    return any(s == 0 and n > 1 for s, n in zip(t.stride(), t.shape))


# Init functions that need the whole tensor at once: not element-wise on the stream.
_WHOLE_TENSOR_FNS = ("orthogonal_", "sparse_")


def dtensor_target(dt: Any, fn_name: str):
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
    target.logical_strides = layout.strides
    target.logical_base = layout.base
    target.global_numel = int(dt.numel())
    return target
