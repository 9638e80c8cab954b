"""fastinit.init_: one method over many tensors, each with its own fan and keyword values,
planned and checked first, then written in batched core calls (model/plan.py)."""
from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable, Mapping, Optional, Union

import numpy as np

from .. import init as _init
from .. import initializers as _initializers
from ..dispatch.fill import capture_fills
from ..dispatch.sharding import is_dtensor
from ..dispatch.target import as_target, is_tensor, torch_module
from ..stream.keys import GeneratorLike, next_key
from .plan import (
    _CALL_MEMO,
    _PLANS,
    _Fill,
    _kwargs_key,
    _needs_full,
    _run_planned,
    _signatures,
)

Tensor = Any  # a torch.Tensor (also a DTensor or a Parameter) or a numpy.ndarray


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
        if fn is None and name in _initializers.__all__:  # initializers beyond torch.nn.init
            fn = getattr(_initializers, name)
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
    if not steps:  # nothing to write (meta, fake, empty tensors): no key drawn, as in torch
        return items
    call_key = next_key(generator)
    if len(steps) != len(items):  # some skipped (meta, empty): not reused (a warning each time)
        signatures = None
    _run_planned(plan_key, steps, items, signatures, call_key, progress, "fastinit.init_")
    return items


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
