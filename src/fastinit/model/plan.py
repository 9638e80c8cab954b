"""Planned writes of many tensors: everything is checked before anything is written or any key
is drawn; then the writes run in batched core calls (fastinit.dispatch.batch), and a plan whose
tensors are unchanged since a previous call is reused (only the keys are new).

Keys. One call draws ONE 64-bit key ``k`` from its generator; tensor ``i`` then gets the key
that ``fastinit.Generator(k)`` hands out ``i + 1``-th (:func:`tensor_key`).

Used by :func:`fastinit.init_` (model/init_many.py) and :func:`fastinit.reset_parameters`
(model/reset.py).
"""
from __future__ import annotations

import math
import sys
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..dispatch import backend as _backend
from ..dispatch.batch import FillBatch
from ..dispatch.fill import PURPOSE_VALUES, write_values
from ..dispatch.sharding import fill_via_full, is_dtensor, local_tensor
from ..dispatch.target import _torch_format, as_target, is_tensor, torch_module
from ..stream import dtypes as _dtypes
from ..stream import ops as _ops
from ..stream.keys import _GOLDEN, _MASK64, Generator, splitmix64
from ..stream.ops import constant_params

#: CPU inits with more elements than this show a progress bar (when tqdm is importable).
PROGRESS_THRESHOLD = 1_000_000_000


# ----------------------------------------------------------------------------------------------
# keys


def tensor_key(call_key: int, index: int) -> int:
    """The key of tensor ``index`` of a many-tensor call whose one draw was ``call_key``: the
    ``index + 1``-th key of ``fastinit.Generator(call_key)``.

    >>> g = fastinit.Generator(call_key)
    >>> [g.next_key() for _ in range(2)] == [tensor_key(call_key, 0), tensor_key(call_key, 1)]
    True
    """
    return splitmix64((int(call_key) + (int(index) + 1) * _GOLDEN) & _MASK64)


def _tensor_generator(call_key: int, index: int) -> Generator:
    """A fastinit.Generator whose next key is tensor_key(call_key, index)."""
    g = Generator(0)
    g.set_state((int(call_key) + int(index) * _GOLDEN) & _MASK64)
    return g


# ----------------------------------------------------------------------------------------------
# planned writes


class _Fill:
    """One tensor's planned write."""

    __slots__ = ("tensor", "index", "kind", "target", "call", "logical", "value", "fn", "post",
                 "via_full", "key")

    def __init__(self, tensor: Any, index: int, kind: str) -> None:
        self.tensor = tensor
        self.index = index
        self.kind = kind          # "stream" | "const" | "call"
        self.target = None        # stream: the checked target (a DTensor's local shard)
        self.call = None          # stream: the OpCall
        self.logical = None
        self.value = None         # const
        self.fn = None            # call: fn(tensor, generator)
        self.post = None          # after the write: post(tensor with global indices)
        self.via_full = False     # a DTensor filled by generating its whole tensor per rank
        self.key = 0              # stream: tensor_key(call key, index), set before execution

    def size_and_cpu(self) -> tuple[int, bool]:
        if self.target is not None:
            return self.target.numel, self.target.device == "cpu"
        return _size_and_cpu(self.tensor)

    def queue(self, batch: FillBatch) -> bool:
        """Queue the write in a batch of core calls (FillBatch) if it is one the core makes."""
        if self.kind == "stream" and not self.via_full:
            batch.add(self.target, self.call, self.key, PURPOSE_VALUES, self.logical)
            return True
        if self.kind == "const":
            request = _constant_request(self.tensor, self.value)
            if request is not None:
                batch.add(request[0], request[1], 0)
                return True
        return False

    def run(self, call_key: int) -> None:
        if self.kind == "const":
            _fill_constant(self.tensor, self.value)
        elif self.kind == "stream":
            key = self.key
            if self.via_full:
                call, post = self.call, self.post

                def whole(full: Any) -> None:
                    write_values(as_target(full, "init_"), call, key, PURPOSE_VALUES)
                    if post is not None:
                        post(full)
                fill_via_full(self.tensor, whole)
            else:
                write_values(self.target, self.call, key, PURPOSE_VALUES, self.logical)
                if self.post is not None:
                    self.post(self.tensor)
        else:
            gen = _tensor_generator(call_key, self.index)
            if self.via_full:
                fill_via_full(self.tensor, lambda full: self.fn(full, gen))
            else:
                self.fn(self.tensor, gen)


def _size_and_cpu(t: Any) -> tuple[int, bool]:
    if isinstance(t, np.ndarray):
        return int(t.size), True
    if is_dtensor(t):
        loc = local_tensor(t)
        return int(loc.numel()), loc.device.type == "cpu"
    return int(t.numel()), t.device.type == "cpu"


def _tensor_keys(call_key: int, indices: Sequence[int]) -> list[int]:
    """[tensor_key(call_key, i) for i in indices], vectorised (the same uint64 arithmetic)."""
    if len(indices) < 8:
        return [tensor_key(call_key, i) for i in indices]
    z = np.asarray(indices, dtype=np.uint64) + np.uint64(1)
    z = z * np.uint64(_GOLDEN) + np.uint64(int(call_key) & _MASK64)  # wraps mod 2**64
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return (z ^ (z >> np.uint64(31))).tolist()


def _constant_request(t: Any, value: Any) -> Optional[tuple]:
    """(target, call) of a constant fill the core makes as torch's fill_ would, else None
    (NumPy arrays, integer tensors, values the core would round differently)."""
    if isinstance(t, np.ndarray):
        return None
    local = local_tensor(t) if is_dtensor(t) else t
    fmt = _torch_format(local.dtype)
    call = constant_params(value, fmt) if fmt is not None else None
    if call is None or local.is_meta:
        return None
    try:
        target = as_target(local, "init_")
    except RuntimeError:  # an overlapping view: torch's fill_ reports it
        return None
    return target, call


def _needs_full(t: Any) -> bool:
    """A DTensor whose local shard is not one strided block of the whole (_StridedShard)."""
    if not is_dtensor(t):
        return False
    return any(type(p).__name__ == "_StridedShard" for p in t.placements)


def _fill_constant(t: Any, value: float) -> None:
    if isinstance(t, np.ndarray):
        t[...] = value
        return
    torch = torch_module()
    with torch.no_grad():
        (local_tensor(t) if is_dtensor(t) else t).fill_(value)


def _stream_fill(t: Any, index: int, fn_name: str, make_call: Callable) -> Optional[_Fill]:
    """A planned stream fill; make_call(fmt) gives the OpCall. None when there is nothing to
    write (meta or zero elements)."""
    item = _Fill(t, index, "stream")
    if _needs_full(t):
        fmt = _torch_format(t.dtype)
        if fmt is None:
            raise NotImplementedError(f"fastinit.{fn_name}: dtype {t.dtype} is not supported")
        if local_tensor(t).device.type == "meta" or t.numel() == 0:
            return None
        item.call, item.via_full = make_call(fmt), True
        return item
    target = as_target(t, fn_name)
    if target.skip:
        return None
    item.target, item.call = target, make_call(target.fmt)
    return item


# ----------------------------------------------------------------------------------------------
# progress and execution


def _tqdm_class() -> Optional[Any]:
    mod = sys.modules.get("tqdm")
    if mod is None:
        try:
            import tqdm as mod  # type: ignore[no-redef]
        except ImportError:
            return None
    return getattr(mod, "tqdm", None)


def _want_progress(total_cpu_elements: int, progress: Optional[bool]) -> bool:
    """progress=None: a bar when more than PROGRESS_THRESHOLD elements are initialized on the
    CPU and tqdm is importable; True: a bar whenever tqdm is importable; False: never."""
    if progress is False:
        return False
    if progress is None and total_cpu_elements <= PROGRESS_THRESHOLD:
        return False
    return _tqdm_class() is not None


def _execute(steps: Sequence[Any], call_key: int, progress: Optional[bool], desc: str) -> None:
    """Run the planned steps in order. Stream and constant fills go into batched core calls
    (one per device, fastinit.dispatch.batch.FillBatch); any other step first makes the queued writes,
    so every step sees the writes planned before it (an integer buffer's constant, which no
    float fill can share memory with, does not need to)."""
    fills = [s for s in steps if isinstance(s, _Fill)]
    stream = [f for f in fills if f.kind == "stream"]
    for f, key in zip(stream, _tensor_keys(call_key, [f.index for f in stream])):
        f.key = key
    bar = None
    chunk = 0
    if progress is not False:
        sizes = [f.size_and_cpu() for f in fills]
        if _want_progress(sum(n for n, cpu in sizes if cpu), progress):
            total = sum(n for n, _ in sizes)
            bar = _tqdm_class()(total=total, unit="el", unit_scale=True, desc=desc)
            chunk = max(total // 100, 1)  # write in pieces so the bar moves
    batch = FillBatch()
    queued: list = []

    def write_queued() -> None:
        batch.flush()
        if bar is not None:
            bar.update(sum(f.size_and_cpu()[0] for f in queued))
        for f in queued:
            if f.post is not None:
                f.post(f.tensor)
        queued.clear()

    try:
        for step in steps:
            if isinstance(step, _Fill):
                if step.queue(batch):
                    queued.append(step)
                    if step.post is not None or (bar is not None and batch.pending >= chunk):
                        write_queued()
                    continue
                if not (step.kind == "const" and _is_integer_tensor(step.tensor)):
                    write_queued()
                step.run(call_key)
                if bar is not None:
                    bar.update(step.size_and_cpu()[0])
            else:
                write_queued()
                step()  # a module's own reset_parameters()
        write_queued()
    finally:
        if bar is not None:
            bar.close()


def _is_integer_tensor(t: Any) -> bool:
    return is_tensor(t) and not (t.is_floating_point() or t.is_complex())


# ----------------------------------------------------------------------------------------------
# reused plans and memoised calls


# Recent plans (of init_ and reset_parameters), reused while their inputs are the same: the
# method and kwargs (init_) or what the module handlers asked for (reset_parameters), and every
# tensor's (type, address, shape, strides, dtype). Every check then passes again and every call
# is the same, so only the keys are new. They hold addresses, never tensors.
_PLANS: dict = {}


def _signature(t: Any) -> Optional[tuple]:
    """What a batched plan depends on of a tensor; None where plans are not reused (NumPy
    arrays, DTensors and other subclasses, meta tensors and tensors without storage)."""
    torch = torch_module()
    kind = type(t)
    if torch is None or (kind is not torch.Tensor and kind is not torch.nn.Parameter):
        return None
    ptr = t.data_ptr()
    return (kind, ptr, t.shape, t.stride(), t.dtype) if ptr != 0 else None


def _signatures(items: Sequence[Any]) -> Optional[list]:
    out = []
    for t in items:
        sig = _signature(t)
        if sig is None:
            return None
        out.append(sig)
    return out


class _BatchPlan:
    """A plan whose steps are all stream and constant fills on one device: one prepared core
    call (fastinit.dispatch.batch.PreparedWrites), plus the constants of integer tensors, by torch."""

    def __init__(self, signatures: list, slots: list, indices: list, torch_consts: list,
                 total_cpu: int, writes: Any) -> None:
        self.signatures = signatures
        self.slots = slots            # positions of the stream fills among the core's requests
        self.indices = indices        # their tensor indices (for the keys)
        self.torch_consts = torch_consts  # (step position, value) written by torch's fill_
        self.total_cpu = total_cpu
        self.writes = writes

    @staticmethod
    def of(steps: Sequence[Any], signatures: list) -> Optional["_BatchPlan"]:
        batch = FillBatch()
        slots: list = []
        indices: list = []
        torch_consts: list = []
        total_cpu = 0
        for pos, s in enumerate(steps):
            if not isinstance(s, _Fill) or s.post is not None or s.via_full:
                return None
            target, call = s.target, s.call
            if s.kind == "const":
                request = _constant_request(s.tensor, s.value)
                if request is None:
                    if not _is_integer_tensor(s.tensor):
                        return None
                    torch_consts.append((pos, s.value))
                    continue
                target, call = request
            elif s.kind != "stream" or s.logical is not None:
                return None
            if not batch.queueable(target):
                return None
            if s.kind == "stream":
                slots.append(batch.count)
                indices.append(s.index)
            batch.add(target, call, 0)
            total_cpu += target.numel if target.device == "cpu" else 0
        writes = batch.prepared()
        if writes is None:
            return None
        return _BatchPlan(signatures, slots, indices, torch_consts, total_cpu, writes)

    def ready(self, signatures: Optional[list], progress: Optional[bool]) -> bool:
        return (signatures == self.signatures and _backend.get_backend() == "native"
                and not _want_progress(self.total_cpu, progress))

    def run(self, call_key: int, tensors: Sequence[Any]) -> None:
        """Write the plan with the keys of call_key into tensors (one per step, as planned)."""
        keys = [0] * self.writes.count
        for slot, key in zip(self.slots, _tensor_keys(call_key, self.indices)):
            keys[slot] = key
        self.writes.run(keys, tensors)
        for pos, value in self.torch_consts:
            _fill_constant(tensors[pos], value)


def _run_planned(cache_key: Any, steps: Sequence[Any], tensors: Sequence[Any],
                 signatures: Optional[list], call_key: int, progress: Optional[bool],
                 desc: str) -> None:
    """Execute steps planned for tensors (one per step); keep the plan for reuse when it is a
    _BatchPlan."""
    plan = _BatchPlan.of(steps, signatures) if signatures is not None else None
    if plan is not None and plan.ready(signatures, progress):
        if len(_PLANS) >= 16:
            _PLANS.clear()
        _PLANS[cache_key] = plan
        plan.run(call_key, tensors)
        return
    _execute(steps, call_key, progress, desc)


# The stream call a single-fill function made for a (function, dtype, shape, kwargs): a pure
# function of these, so a tensor of the same kind needs only its own checks (as_target).
_CALL_MEMO: dict = {}


def _kwargs_key(kw: dict) -> Optional[tuple]:
    """kwargs as a key, or None when a value is not a plain number, string, None or a list or
    tuple of them (a tensor or an array could change in place between two calls). -0.0 is
    told apart from 0.0: equal floats, but the calls they make differ in a sign bit."""
    try:
        return tuple((k, _frozen(v)) for k, v in kw.items())
    except TypeError:
        return None


_PLAIN_VALUES = (int, float, bool, str, type(None))


def _frozen(v: Any) -> Any:
    """v as part of a cache key: its type too (True == 1 == 1.0, but torch treats them apart:
    kaiming's a=True is an error), and the sign of a zero."""
    if type(v) is float and v == 0.0 and math.copysign(1.0, v) < 0:
        return ("-0.0",)
    if type(v) in _PLAIN_VALUES:
        return v if type(v) is float or type(v) is str else (type(v).__name__, v)
    if type(v) in (list, tuple):
        return (type(v).__name__,) + tuple(_frozen(x) for x in v)
    raise TypeError(f"not a plain value: {type(v).__name__}")


# Caches that _clear_caches forgets; other modules of the package add theirs.
CACHES: list = [_PLANS, _CALL_MEMO, _ops._CALLS, _dtypes._INSIDE]


def _clear_caches() -> None:
    """Forget every reused plan and memoised call (benchmarks of first calls, tests)."""
    for cache in CACHES:
        cache.clear()
