"""Model-scale initialization: whole models, many tensors, sharded models, data-driven init.

- :func:`reset_parameters` re-initializes every parameter and buffer of a model with exactly the
  distribution its module's own ``reset_parameters()`` gives in torch, on fastinit's stream.
- :func:`init_` applies one method to many tensors in one call (per-tensor fans, per-tensor
  keyword values such as depth-scaled stds).
- :func:`lsuv_` is layer-sequential unit-variance init (Mishkin & Matas, 2016).

Keys. One call draws ONE 64-bit key ``k`` from its generator (``None``: torch's default
generator, so ``torch.manual_seed`` makes it reproducible). Tensor ``i`` then gets the key that
``fastinit.Generator(k)`` hands out ``i + 1``-th, i.e. ``splitmix64(k + (i + 1) * golden)`` with
golden = 0x9E3779B97F4A7C15: every tensor differs, and each is reproducible alone. In :func:`init_`, ``i`` is the tensor's
position in the list; in :func:`reset_parameters`, the parameter's position in
``model.parameters()`` -- so a sharded model (FSDP2, tensor parallel) gets, slice for slice, the
values of the unsharded model.

Writes. Every write is planned and checked first; then the stream and constant fills of all
tensors on a device are made in one batched core call (fastinit._fill.FillBatch), and a call
whose tensors are unchanged since a previous call reuses that call's prepared core call
(_BatchPlan: only the key is new).

>>> torch.manual_seed(0)
>>> fastinit.reset_parameters(model)                        # like every module's reset_parameters()
>>> fastinit.init_(model.parameters(), "trunc_normal", std=0.02)
"""
from __future__ import annotations

import inspect
import math
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from . import _backend, _dtypes, _stream_params
from . import init as _init
from ._fill import PURPOSE_VALUES, FillBatch, capture_fills, write_values
from ._generators import _GOLDEN, _MASK64, Generator, GeneratorLike, next_key, splitmix64
from ._stream_params import constant_params, normal_params, uniform_params
from ._target import _torch_format, as_target, is_tensor, torch_module
from .fans import calculate_fan_in_and_fan_out, calculate_gain
from .sharding import fill_via_full, is_dtensor, local_tensor, shard_layout

__all__ = ["reset_parameters", "init_", "lsuv_", "LSUVRow", "tensor_key"]

Tensor = Any  # a torch.Tensor (also a DTensor or a Parameter) or a numpy.ndarray

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
# planned writes: everything is checked before anything is written or any key is drawn


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
# progress


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
    (one per device, fastinit._fill.FillBatch); any other step first makes the queued writes,
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
# init_: one method over many tensors

_STREAM_METHODS = ("uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "xavier_normal_",
                   "kaiming_uniform_", "kaiming_normal_")
_CONSTANT_METHODS = {"constant_": None, "zeros_": 0.0, "ones_": 1.0}
# Need the whole tensor: on a DTensor, generated whole on each rank, the local part kept.
_WHOLE_TENSOR_METHODS = ("orthogonal_", "sparse_", "eye_", "dirac_", "delta_orthogonal_", "identity_")


def _resolve_method(method: Union[str, Callable]) -> tuple[str, Callable]:
    """(name, function) for a method name ("normal", "normal_", ...) or an init function."""
    if isinstance(method, str):
        name = method if method.endswith("_") else method + "_"
        fn = getattr(_init, name, None)
        if fn is None and name not in __all__:  # initializers beyond torch.nn.init
            fn = getattr(sys.modules["fastinit"], name, None)
        if not callable(fn):
            known = ", ".join(n.rstrip("_") for n in _init.__all__ if n.endswith("_"))
            raise ValueError(f"fastinit.init_: unknown method {method!r} (known: {known}, or "
                             "pass an init function)")
        return name, fn
    if not callable(method):
        raise TypeError(f"fastinit.init_: method must be a name or a callable, got "
                        f"{type(method).__name__}")
    name = getattr(method, "__name__", "")
    if getattr(_init, name, None) is method:
        return name, method
    return "", method


def _single_fill(name: str, fn: Callable) -> bool:
    """Functions known to make exactly one random_fill and no other write: planned by capture.
    (Other fastinit functions may opt in with a ``_fastinit_single_fill = True`` attribute.)"""
    return (name in _STREAM_METHODS and getattr(_init, name, None) is fn) or bool(
        getattr(fn, "_fastinit_single_fill", False))


def _accepts_generator(fn: Callable) -> bool:
    module = getattr(fn, "__module__", "") or ""
    if module.startswith("torch"):
        return False  # torch's functions take torch.Generators only: they draw torch's stream
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "generator" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _as_tensor_list(tensors: Any) -> list:
    if is_tensor(tensors) or isinstance(tensors, np.ndarray):
        return [tensors]
    if isinstance(tensors, Mapping):
        return list(tensors.values())
    torch = torch_module()
    if torch is not None and isinstance(tensors, torch.nn.Module):
        raise TypeError("fastinit.init_: pass tensors (e.g. model.parameters()), not a module; "
                        "fastinit.reset_parameters(model) re-initializes a model")
    try:
        out = list(tensors)
    except TypeError:
        raise TypeError(f"fastinit.init_: expected tensors (a tensor, a sequence or an iterable "
                        f"of tensors), got {type(tensors).__name__}") from None
    for i, t in enumerate(out):
        if not (is_tensor(t) or isinstance(t, np.ndarray)):
            raise TypeError(f"fastinit.init_: element {i} is a {type(t).__name__}, expected a "
                            "torch.Tensor or a numpy.ndarray")
    return out


def _per_tensor_kwargs(kwargs: Mapping[str, Any], n: int) -> list[dict]:
    per = []
    for k, v in kwargs.items():
        if isinstance(v, (list, tuple)):
            if len(v) != n:
                raise ValueError(f"fastinit.init_: {k} has {len(v)} values for {n} tensors")
            per.append(k)
    return [{k: (v[i] if k in per else v) for k, v in kwargs.items()} for i in range(n)]


def _meta_dry_run(fn: Callable, t: Any, kw: dict) -> None:
    """Run a fastinit function on a meta tensor of t's (global) shape: its checks, no write."""
    torch = torch_module()
    if torch is None or not is_tensor(t):
        return
    fn(torch.empty(tuple(t.shape), dtype=t.dtype, device="meta"), **kw)


def init_(tensors: Union[Tensor, Iterable[Tensor], Mapping[str, Tensor]],
          method: Union[str, Callable[..., Any]], *, generator: GeneratorLike = None,
          progress: Optional[bool] = None, **kwargs: Any) -> list:
    """Initialize many tensors with one method in one call, each with its own fan.

    ``method`` is a name -- ``"uniform"``, ``"normal"``, ``"trunc_normal"``, ``"xavier_uniform"``,
    ``"xavier_normal"``, ``"kaiming_uniform"``, ``"kaiming_normal"``, ``"orthogonal"``,
    ``"sparse"``, ``"constant"``, ``"zeros"``, ``"ones"``, ``"eye"``, ``"dirac"`` (with or without
    the trailing underscore) -- or an init function. ``kwargs`` are the method's keyword
    arguments; a list or tuple gives one value per tensor (e.g. ``std=[...]``).

    Every tensor is checked before any is written and before the one key is drawn from
    ``generator``; tensor ``i`` gets key :func:`tensor_key` ``(k, i)``, so it equals
    ``method(tensor_i, **kwargs_i, generator=g)`` for ``g = fastinit.Generator(k)`` advanced
    ``i`` times. DTensors are filled shard by shard (``orthogonal``/``sparse`` and
    ``_StridedShard`` placements by generating the whole tensor on each rank). Functions from
    ``torch`` are called as they are (on torch's stream); other callables receive
    ``generator=`` a :class:`fastinit.Generator` if their signature takes it. ``progress``: a
    tqdm bar (None: automatic above a billion CPU elements). Returns the tensors as a list.

    >>> params = [p for n, p in model.named_parameters() if p.ndim == 2]
    >>> fastinit.init_(params, "trunc_normal", std=0.02, a=-0.04, b=0.04)
    >>> # GPT-2 / Megatron: std / sqrt(2 * n_layer) on the residual output projections
    >>> stds = [0.02 / math.sqrt(2 * n_layer) if n.endswith("c_proj.weight") else 0.02
    ...         for n, p in model.named_parameters() if p.ndim == 2]
    >>> fastinit.init_(params, "normal", std=stds)
    """
    items = _as_tensor_list(tensors)
    name, fn = _resolve_method(method)
    kwargs_key = _kwargs_key(kwargs)
    signatures = _signatures(items) if kwargs_key is not None else None
    plan_key = ("init_", fn, kwargs_key, len(items))
    cached = _PLANS.get(plan_key) if signatures is not None else None
    if cached is not None and cached.ready(signatures, progress):
        cached.run(next_key(generator), items)  # the same checks would pass: none to make
        return items
    per_kwargs = _per_tensor_kwargs(kwargs, len(items))
    per_tensor = any(isinstance(v, (list, tuple)) for v in kwargs.values())
    steps: list = []
    for i, (t, kw) in enumerate(zip(items, per_kwargs)):
        step = _plan_init(t, i, name, fn, kw, None if per_tensor else kwargs_key)
        if step is not None:
            steps.append(step)
    call_key = next_key(generator)
    if len(steps) != len(items):  # some skipped (meta, empty): not reused (a warning each time)
        signatures = None
    _run_planned(plan_key, steps, items, signatures, call_key, progress, "fastinit.init_")
    return items


def _clear_caches() -> None:
    """Forget every reused plan and memoised call (benchmarks of first calls, tests)."""
    for cache in (_PLANS, _CALL_MEMO, _LINEAR_BOUNDS, _stream_params._CALLS, _dtypes._INSIDE):
        cache.clear()


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
    call (fastinit._fill.PreparedWrites), plus the constants of integer tensors, by torch."""

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
    if type(v) is float and v == 0.0 and math.copysign(1.0, v) < 0:
        return ("-0.0",)
    if type(v) in _PLAIN_VALUES:
        return v
    if type(v) in (list, tuple):
        return (type(v).__name__,) + tuple(_frozen(x) for x in v)
    raise TypeError(f"not a plain value: {type(v).__name__}")


def _memo_key(fn: Callable, t: Any, kwargs_key: Optional[tuple]) -> Optional[tuple]:
    """The memo key of fn(t, **kwargs), or None (subclasses, DTensors, unhashable arguments)."""
    kind = type(t)
    if kwargs_key is None or kind not in _plain_types():
        return None
    return (fn, t.dtype, tuple(t.shape), kwargs_key)


def _plain_types() -> tuple:
    torch = torch_module()
    return (np.ndarray,) if torch is None else (np.ndarray, torch.Tensor, torch.nn.Parameter)


def _plan_init(t: Any, i: int, name: str, fn: Callable, kw: dict,
               kwargs_key: Optional[tuple] = None) -> Optional[_Fill]:
    if name in _CONSTANT_METHODS and getattr(_init, name) is fn:
        if name == "constant_":
            try:
                value = inspect.signature(_init.constant_).bind(t, **kw).arguments["val"]
            except TypeError as exc:
                raise TypeError(f"fastinit.init_(method='constant'): {exc}") from None
        else:
            if kw:
                raise TypeError(f"fastinit.init_(method={name[:-1]!r}) takes no keyword "
                                f"arguments, got {sorted(kw)}")
            value = _CONSTANT_METHODS[name]
        if isinstance(t, np.ndarray) and not t.flags.writeable:
            raise ValueError(f"fastinit.init_: tensor {i} is read-only")
        item = _Fill(t, i, "const")
        item.value = value
        return item
    if _single_fill(name, fn) and not _needs_full(t):
        memo = _memo_key(fn, t, kwargs_key if kwargs_key is not None else _kwargs_key(kw))
        call = _CALL_MEMO.get(memo) if memo is not None else None
        if call is not None:  # fn succeeded for this (dtype, shape, kwargs): only t to check
            target = as_target(t, getattr(fn, "__name__", "init_"))
            if not target.skip:
                item = _Fill(t, i, "stream")
                item.target, item.call = target, call
                return item
        plan: list = []
        token = capture_fills.set(plan)
        try:
            fn(t, **kw)
        finally:
            capture_fills.reset(token)
        if not plan:
            return None  # meta, zero elements: nothing to write, as the function itself
        if len(plan) != 1:
            raise RuntimeError(f"fastinit.init_: {name} made {len(plan)} fills, expected one")
        item = _Fill(t, i, "stream")
        item.target, item.call, item.logical = plan[0]
        if memo is not None and item.logical is None:
            if len(_CALL_MEMO) > 4096:
                _CALL_MEMO.clear()
            _CALL_MEMO[memo] = item.call
        return item
    # Anything else: called at execution time with its own generator.
    is_fastinit = getattr(fn, "__module__", "").startswith("fastinit")
    if is_fastinit:
        _meta_dry_run(fn, t, kw)
    pass_generator = _accepts_generator(fn)
    item = _Fill(t, i, "call")
    if pass_generator:
        item.fn = lambda x, g, _kw=kw: fn(x, generator=g, **_kw)
    else:
        item.fn = lambda x, g, _kw=kw: fn(x, **_kw)
    whole = getattr(fn, "__name__", "") in _WHOLE_TENSOR_METHODS
    item.via_full = is_dtensor(t) and (whole or _needs_full(t))
    return item


# ----------------------------------------------------------------------------------------------
# reset_parameters: torch's per-module reset_parameters(), fused, on fastinit's stream


class _Fallback(Exception):
    """A known module whose tensors are not what its handler expects: use its own reset."""


class _ModelPlan:
    def __init__(self, index_of: dict[int, int]) -> None:
        self.index_of = index_of
        self.steps: list = []
        self.pending: dict[int, tuple] = {}  # id(tensor) -> (tensor, spec, post)
        self.staged: list = []  # one module's entries, committed when its handler succeeds

    # specs: ("uniform", bound) for U(-bound, bound); ("normal", std); ("const", value)
    def uniform(self, t: Any, bound: float) -> None:
        self.staged.append((t, ("uniform", float(bound)), None))

    def normal(self, t: Any, std: float, post: Optional[Callable] = None) -> None:
        self.staged.append((t, ("normal", float(std)), post))

    def const(self, t: Any, value: float) -> None:
        self.staged.append((t, ("const", value), None))

    def commit(self) -> None:
        for entry in self.staged:  # a later (parent) entry replaces an earlier one
            self.pending[id(entry[0])] = entry
        self.staged = []

    def fallback(self, module: Any) -> None:
        self.flush()
        self.steps.append(module.reset_parameters)

    def signatures(self) -> Optional[list]:
        """What the pending entries' fills depend on, when they are all the plan has (no
        fallback step yet) and none has a post step: (spec, index, tensor signature) each."""
        if self.steps:
            return None
        out = []
        next_index = len(self.index_of)
        for t, spec, post in self.pending.values():
            sig = _signature(t) if post is None else None
            if sig is None:
                return None
            index = self.index_of.get(id(t))
            if index is None and spec[0] != "const":
                index, next_index = next_index, next_index + 1
            out.append((spec[0], _frozen(spec[1]), index, sig))
        return out

    def flush(self) -> None:
        for t, spec, post in self.pending.values():
            step = self._compile(t, spec, post)
            if step is not None:
                self.steps.append(step)
        self.pending = {}

    def _compile(self, t: Any, spec: tuple, post: Optional[Callable]) -> Optional[_Fill]:
        kind = spec[0]
        if kind == "const":
            item = _Fill(t, -1, "const")
            item.value = spec[1]
            return item
        index = self.index_of.get(id(t))
        if index is None:
            index = self.index_of[id(t)] = len(self.index_of)
        if kind == "uniform":
            item = _stream_fill(t, index, "uniform_", lambda fmt: _reset_call(kind, spec[1], fmt))
        else:
            item = _stream_fill(t, index, "normal_", lambda fmt: _reset_call(kind, spec[1], fmt))
        if item is not None:
            item.post = post
        return item


def _reset_call(kind: str, scale: float, fmt: Any) -> Any:
    """U(-scale, scale) or N(0, scale^2) in fmt (uniform_params caches its calls)."""
    return uniform_params(-scale, scale, fmt) if kind == "uniform" else normal_params(0.0, scale, fmt)


def _param(m: Any, name: str) -> Any:
    """A module's own parameter (or buffer) ``name``, or None; _Fallback when the attribute is a
    computed tensor (a parametrization) that a fill would not reach."""
    if name in m._parameters:
        return m._parameters[name]
    if name in m._buffers:
        return m._buffers[name]
    if getattr(m, name, None) is not None:
        raise _Fallback(name)
    return None


def _numel(t: Any) -> int:
    return int(t.numel())


def _fan_in(w: Any) -> int:
    return calculate_fan_in_and_fan_out(w)[0]


def _kaiming_uniform_bound(w: Any, a: float) -> float:
    # as fastinit.kaiming_uniform_ (and torch) compute it: sqrt(3) * gain / sqrt(fan_in)
    return math.sqrt(3.0) * (calculate_gain("leaky_relu", a) / math.sqrt(_fan_in(w)))


_LINEAR_BOUNDS: dict = {}


def _linear_bounds(w: Any) -> tuple:
    """(weight bound or None for an empty weight, bias bound) of Linear/Conv's reset, per
    weight shape."""
    shape = w.shape
    bounds = _LINEAR_BOUNDS.get(shape)
    if bounds is None:
        weight = _kaiming_uniform_bound(w, math.sqrt(5)) if _numel(w) > 0 else None
        fan_in = _fan_in(w)
        bounds = (weight, 1 / math.sqrt(fan_in) if fan_in > 0 else 0)
        if len(_LINEAR_BOUNDS) > 4096:
            _LINEAR_BOUNDS.clear()
        _LINEAR_BOUNDS[shape] = bounds
    return bounds


def _xavier_std(w: Any) -> float:
    fan_in, fan_out = calculate_fan_in_and_fan_out(w)
    return 1.0 * math.sqrt(2.0 / float(fan_in + fan_out))


def _h_linear(m: Any, plan: _ModelPlan) -> None:
    """Linear and Conv*/ConvTranspose*: kaiming_uniform_(a=sqrt(5)), bias U(+-1/sqrt(fan_in))."""
    w, b = _param(m, "weight"), _param(m, "bias")
    weight_bound, bias_bound = _linear_bounds(w)
    if weight_bound is not None:
        plan.uniform(w, weight_bound)
    if b is not None:
        plan.uniform(b, bias_bound)


def _h_bilinear(m: Any, plan: _ModelPlan) -> None:
    if m.in1_features <= 0:
        raise ValueError(f"in1_features must be > 0, but got (in1_features={m.in1_features})")
    w, b = _param(m, "weight"), _param(m, "bias")
    bound = 1 / math.sqrt(w.size(1))
    plan.uniform(w, bound)
    if b is not None:
        plan.uniform(b, bound)


def _zero_row(t: Any, row: int) -> None:
    """Zero global row ``row`` of t (a DTensor: in the rank holding it)."""
    torch = torch_module()
    with torch.no_grad():
        if is_dtensor(t):
            layout = shard_layout(t, "reset_parameters")
            r = row - layout.global_offset[0]
            if 0 <= r < layout.local_shape[0]:
                local_tensor(t)[r].zero_()
        else:
            t[row].zero_()


def _h_embedding(m: Any, plan: _ModelPlan) -> None:
    """Embedding, EmbeddingBag: N(0, 1), the padding_idx row zero."""
    w = _param(m, "weight")
    pad = m.padding_idx
    plan.normal(w, 1.0, None if pad is None else (lambda t, _p=pad: _zero_row(t, _p)))


def _h_affine(flag: str, weight: str = "weight", bias: str = "bias") -> Callable:
    def handler(m: Any, plan: _ModelPlan) -> None:
        if getattr(m, flag):
            plan.const(_param(m, weight), 1.0)
            b = _param(m, bias)
            if b is not None:
                plan.const(b, 0.0)
    return handler


def _h_norm_base(m: Any, plan: _ModelPlan) -> None:
    """BatchNorm*, InstanceNorm*, SyncBatchNorm: running stats reset, then ones/zeros."""
    if m.track_running_stats:
        for name, value in (("running_mean", 0.0), ("running_var", 1.0),
                            ("num_batches_tracked", 0)):
            t = _param(m, name)
            if t is not None:
                plan.const(t, value)
    _h_affine("affine")(m, plan)


def _h_rnn(m: Any, plan: _ModelPlan) -> None:
    """RNN/LSTM/GRU and their cells: every parameter U(+-1/sqrt(hidden_size))."""
    stdv = 1.0 / math.sqrt(m.hidden_size) if m.hidden_size > 0 else 0
    for p in m.parameters():
        plan.uniform(p, stdv)


def _h_prelu(m: Any, plan: _ModelPlan) -> None:
    plan.const(_param(m, "weight"), float(m.init))


def _h_children_only(m: Any, plan: _ModelPlan) -> None:
    """Modules whose reset_parameters() only resets their children (which are planned)."""


def _h_mha(m: Any, plan: _ModelPlan) -> None:
    """MultiheadAttention._reset_parameters: xavier_uniform_ projections, zero biases,
    xavier_normal_ bias_k/bias_v; out_proj.weight keeps its Linear init."""
    if m._qkv_same_embed_dim:
        names = ("in_proj_weight",)
    else:
        names = ("q_proj_weight", "k_proj_weight", "v_proj_weight")
    for name in names:
        w = _param(m, name)
        plan.uniform(w, math.sqrt(3.0) * _xavier_std(w))
    if _param(m, "in_proj_bias") is not None:
        plan.const(m.in_proj_bias, 0.0)
        plan.const(_param(m.out_proj, "bias"), 0.0)
    for name in ("bias_k", "bias_v"):
        t = _param(m, name)
        if t is not None:
            plan.normal(t, _xavier_std(t))


def _h_transformer(m: Any, plan: _ModelPlan) -> None:
    """nn.Transformer._reset_parameters: xavier_uniform_ on every parameter with dim > 1."""
    for p in m.parameters():
        if p.dim() > 1:
            plan.uniform(p, math.sqrt(3.0) * _xavier_std(p))


def _lazy(handler: Callable, size_attr: str) -> Callable:
    """Lazy modules: nothing until materialized (and nothing for a zero size), as in torch."""
    def lazy_handler(m: Any, plan: _ModelPlan) -> None:
        if m.has_uninitialized_params() or getattr(m, size_attr) == 0:
            return
        handler(m, plan)
    return lazy_handler


_REGISTRY: Optional[tuple[dict, dict]] = None


def _registry() -> tuple[dict, dict]:
    """({reset_parameters function: handler}, {_reset_parameters function: handler})."""
    global _REGISTRY
    if _REGISTRY is not None:
        return _REGISTRY
    import torch.nn as nn
    from torch.nn.modules import batchnorm, conv, rnn

    public: dict = {}

    def add(cls: Any, handler: Callable, attr: str = "reset_parameters") -> None:
        fn = getattr(cls, attr, None)
        if fn is not None:
            public[fn] = handler

    add(nn.Linear, _h_linear)
    add(nn.LazyLinear, _lazy(_h_linear, "in_features"))
    add(conv._ConvNd, _h_linear)
    add(conv._LazyConvXdMixin, _lazy(_h_linear, "in_channels"))
    add(nn.Bilinear, _h_bilinear)
    add(nn.Embedding, _h_embedding)
    add(nn.EmbeddingBag, _h_embedding)
    add(nn.LayerNorm, _h_affine("elementwise_affine"))
    add(nn.GroupNorm, _h_affine("affine"))
    if hasattr(nn, "RMSNorm"):
        add(nn.RMSNorm, _h_affine("elementwise_affine"))
    add(batchnorm._NormBase, _h_norm_base)
    add(batchnorm._LazyNormBase, _lazy(_h_norm_base, "num_features"))
    add(rnn.RNNBase, _h_rnn)
    add(rnn.RNNCellBase, _h_rnn)
    add(nn.PReLU, _h_prelu)
    add(nn.AdaptiveLogSoftmaxWithLoss, _h_children_only)
    private = {nn.MultiheadAttention._reset_parameters: _h_mha,
               nn.Transformer._reset_parameters: _h_transformer}
    _REGISTRY = (public, private)
    return _REGISTRY


def _plan_module(m: Any, plan: _ModelPlan, public: dict, private: dict) -> None:
    cls = type(m)
    reset = getattr(cls, "reset_parameters", None)
    handler = public.get(reset) if reset is not None else None
    if handler is None and reset is None:
        handler = private.get(getattr(cls, "_reset_parameters", None))
    if handler is None:
        if reset is not None and callable(getattr(m, "reset_parameters", None)):
            plan.fallback(m)  # a module fastinit does not know: its own reset_parameters()
        return
    try:
        handler(m, plan)
        plan.commit()
    except _Fallback:
        plan.staged = []
        if reset is not None:
            plan.fallback(m)
        else:
            plan.flush()
            plan.steps.append(m._reset_parameters)


def _post_order(model: Any) -> list:
    seen: set[int] = set()
    order: list = []

    def visit(m: Any) -> None:
        if id(m) in seen:
            return
        seen.add(id(m))
        for child in m.children():
            visit(child)
        order.append(m)
    visit(model)
    return order


def _walk(model: Any) -> tuple[list, dict]:
    """The modules children first (as construction runs their resets), and {id(parameter): its
    index in model.parameters()}, in one pass over the module tree (model.parameters() and
    children() are generators stacked per level: several times slower). Modules that override
    how torch walks the tree are walked by those methods instead."""
    Module = sys.modules["torch"].nn.Module
    defaults = (Module.named_modules, Module.children, Module.named_children)
    if (type(model).parameters is not Module.parameters or
            type(model).named_parameters is not Module.named_parameters or
            type(model)._named_members is not Module._named_members):
        return _post_order(model), {id(p): i for i, p in enumerate(model.parameters())}
    seen: set[int] = set()
    order: list = []
    index_of: dict[int, int] = {}

    def visit(m: Any) -> bool:
        cls = type(m)
        if (cls.named_modules, cls.children, cls.named_children) != defaults:
            return False
        seen.add(id(m))
        for p in m._parameters.values():  # before the children: model.parameters()' order
            if p is not None and id(p) not in index_of:
                index_of[id(p)] = len(index_of)
        for child in m._modules.values():
            if child is not None and id(child) not in seen and not visit(child):
                return False
        order.append(m)
        return True
    if not visit(model):
        return _post_order(model), {id(p): i for i, p in enumerate(model.parameters())}
    return order, index_of


def reset_parameters(model: Any, *, generator: GeneratorLike = None,
                     progress: Optional[bool] = None) -> Any:
    """Re-initialize every parameter and buffer of ``model`` in place, each with exactly the
    distribution its module's own ``reset_parameters()`` gives in torch.

    Known modules -- Linear, Bilinear, Conv*/ConvTranspose* (and their Lazy forms), Embedding,
    EmbeddingBag, LayerNorm, GroupNorm, RMSNorm, BatchNorm*/InstanceNorm*/SyncBatchNorm (running
    statistics reset), MultiheadAttention, Transformer, RNN/LSTM/GRU and their cells, PReLU,
    AdaptiveLogSoftmaxWithLoss -- are planned as fastinit fills (one fused pass per tensor, all
    tensors of a device in one batched core call; docs/model-init.md); any other module with a ``reset_parameters()`` method (also a subclass of a known module that
    overrides it) falls back to calling it. Modules are visited children first, parent last, as
    construction runs them, so a parent's init (MultiheadAttention's zero ``out_proj.bias``,
    Transformer's xavier weights) overrides its children's. Parameters keep their storage.

    One key is drawn from ``generator`` (``None``: torch's default generator, so
    ``torch.manual_seed`` makes it reproducible); parameter ``i`` of ``model.parameters()`` gets
    :func:`tensor_key` ``(k, i)``. Fallback modules draw from torch's own generator. Parameters
    that are DTensors (FSDP2's ``fully_shard``, tensor parallel) are filled shard by shard with
    the values of the unsharded model. Works on a model built on the meta device and
    materialized with ``to_empty``; on the meta device itself it writes nothing.
    ``progress``: a tqdm bar (None: automatic above a billion CPU elements). Returns ``model``.

    >>> with torch.device("meta"):
    ...     model = Transformer(config)
    >>> model.to_empty(device="cuda")
    >>> torch.manual_seed(0)
    >>> fastinit.reset_parameters(model)
    """
    torch = torch_module()
    if torch is None or not isinstance(model, torch.nn.Module):
        raise TypeError(f"fastinit.reset_parameters: expected a torch.nn.Module, got "
                        f"{type(model).__name__}")
    public, private = _registry()
    modules, index_of = _walk(model)
    plan = _ModelPlan(index_of)
    for m in modules:
        _plan_module(m, plan, public, private)
    plan_key = ("reset_parameters", id(model))
    signatures = plan.signatures()  # None after a fallback module's own reset, or a post step
    cached = _PLANS.get(plan_key) if signatures is not None else None
    if cached is not None and cached.ready(signatures, progress):
        cached.run(next_key(generator), [entry[0] for entry in plan.pending.values()])
        return model
    tensors = [entry[0] for entry in plan.pending.values()]
    plan.flush()
    call_key = next_key(generator)
    if signatures is not None and len(plan.steps) != len(tensors):
        signatures = None
    _run_planned(plan_key, plan.steps, tensors, signatures, call_key, progress,
                 "fastinit.reset_parameters")
    return model


# ----------------------------------------------------------------------------------------------
# LSUV


@dataclass(frozen=True)
class LSUVRow:
    """One layer of an LSUV run: its qualified name, the number of rescalings, the variance of
    its output at the end, and whether |variance - 1| < tol was reached."""

    name: str
    iterations: int
    variance: float
    converged: bool


class _StopForward(Exception):
    pass


def _variance(x: Any) -> float:
    """The variance of a layer's output, by fastinit's fused statistics when available."""
    fi = sys.modules.get("fastinit")
    stats = getattr(fi, "stats", None) if fi is not None else None
    if stats is not None:
        s = stats(x.detach())
        return float(s.var) if s.nans == 0 and s.infs == 0 else math.nan
    torch = torch_module()
    var, _ = torch.var_mean(x.detach().float(), unbiased=False)
    return float(var)


def _forward(model: Any, batch: Any) -> Any:
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def lsuv_(model: Any, batch: Any, tol: float = 0.1, max_iters: int = 10,
          orthogonal: bool = True, *, generator: GeneratorLike = None) -> list[LSUVRow]:
    """Layer-sequential unit-variance init (Mishkin & Matas, "All you need is a good init", 2016).

    Optionally pre-initializes every Linear and Conv* weight as a (semi-)orthogonal matrix
    (``orthogonal=True``; keys as in :func:`init_`, one draw from ``generator``), then, layer by
    layer in execution order (found by one forward pass), forwards ``batch`` and divides the
    weight by the standard deviation of the layer's output until ``|var - 1| < tol`` or
    ``max_iters`` rescalings. Biases are left as they are. Forward passes run in eval mode under
    ``torch.no_grad`` (no dropout, no running-statistics updates) and stop right after the layer
    being fitted; every module's training flag is restored. ``batch`` is a tensor, a tuple of
    positional inputs or a dict of keyword inputs. Returns one :class:`LSUVRow` per layer.

    >>> report = fastinit.lsuv_(model, next(iter(loader))[0], tol=0.05)
    >>> for row in report: print(row.name, row.iterations, f"{row.variance:.3f}")
    """
    torch = torch_module()
    if torch is None or not isinstance(model, torch.nn.Module):
        raise TypeError(f"fastinit.lsuv_: expected a torch.nn.Module, got {type(model).__name__}")
    tol = float(tol)
    if not tol > 0:
        raise ValueError(f"fastinit.lsuv_: tol must be positive, got {tol}")
    if isinstance(max_iters, bool) or not isinstance(max_iters, int) or max_iters < 0:
        raise ValueError(f"fastinit.lsuv_: max_iters must be a non-negative int, got {max_iters!r}")
    from torch.nn.modules.conv import _ConvNd
    names = {id(m): n for n, m in model.named_modules()}
    candidates = [m for m in model.modules()
                  if isinstance(m, (torch.nn.Linear, _ConvNd))
                  and isinstance(m._parameters.get("weight"), torch.Tensor)
                  and m.weight.numel() > 0]
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            order: list = []
            hooks = [m.register_forward_hook(
                lambda mod, inp, out: order.append(mod) if mod not in order else None)
                for m in candidates]
            try:
                _forward(model, batch)
            finally:
                for h in hooks:
                    h.remove()
            if orthogonal and order:
                init_([m.weight for m in order], "orthogonal", generator=generator)
            return [_lsuv_layer(model, batch, m, names.get(id(m), ""), tol, max_iters)
                    for m in order]
    finally:
        for m, flag in modes:
            m.training = flag


def _lsuv_layer(model: Any, batch: Any, layer: Any, name: str, tol: float,
                max_iters: int) -> LSUVRow:
    captured: list = []

    def hook(mod: Any, inp: Any, out: Any) -> None:
        captured.append(_variance(out))
        raise _StopForward

    handle = layer.register_forward_hook(hook)
    try:
        def measure() -> float:
            captured.clear()
            try:
                _forward(model, batch)
            except _StopForward:
                pass
            if not captured:
                raise RuntimeError(f"fastinit.lsuv_: layer {name!r} did not run in the forward "
                                   "pass")
            return captured[0]

        var = measure()
        iters = 0
        while abs(var - 1.0) >= tol and iters < max_iters and math.isfinite(var) and var > 0:
            layer.weight.mul_(1.0 / math.sqrt(var))
            iters += 1
            var = measure()
    finally:
        handle.remove()
    return LSUVRow(name, iters, var, abs(var - 1.0) < tol)
