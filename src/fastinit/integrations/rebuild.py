"""Recompute tensors that nothing else writes by constructing their module again on the CPU.

Non-persistent buffers (a rotary ``inv_freq``), parameters set in a module's ``__init__``
(``torch.ones(dim) * init_values``) and modules without any init of their own get, on the
meta device, no values at all; their values are whatever their module's constructor computes.
So the module that owns such a tensor is constructed again -- on the CPU, under
:func:`fastinit.patch` (its init calls on fastinit's stream) with torch's CPU generator forked
and seeded from the call's generator -- and the tensor is copied from the new module.

Honest limits, each reported with its reason instead of guessed:

- the constructor's arguments must be attributes of the module under the same names
  (``LlamaRotaryEmbedding(config)`` keeps ``self.config``; GPT-2's ``Conv1D(nf, nx)`` keeps
  ``self.nf``, ``self.nx``), except ``device`` (the CPU) and ``dtype`` (the value is cast); a
  constructor taking only ``*args``/``**kwargs`` is not called;
- the rebuilt tensor must have the same name and shape;
- a value the constructor leaves uninitialized (``torch.empty`` written by nobody) is caught:
  uninitialized memory is filled with NaN (integers: the maximum) while constructing
  (``torch.utils.deterministic.fill_uninitialized_memory``), and such a tensor is refused;
- a module whose tensors (its own and its descendants') exceed :data:`REBUILD_LIMIT` elements
  is not rebuilt (it would construct that much on the CPU).

Rebuilt values follow the constructor's law; random ones are reproducible under the same seed
and equal on every device (always computed on the CPU), not the per-tensor fastinit keys.
"""
from __future__ import annotations

import inspect
from typing import Any, Sequence

from ..dispatch.sharding import fill_via_full, is_dtensor
from ..dispatch.target import torch_module
from ..model.written import subtree_tensors
from ..stream.keys import Generator, next_key

#: The most elements (over a module's whole subtree) a rebuild may construct.
REBUILD_LIMIT = 1 << 26


class CannotRebuild(Exception):
    pass


def constructor_arguments(m: Any) -> dict:
    cls = type(m)
    try:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    except (TypeError, ValueError) as e:
        raise CannotRebuild(f"its constructor's signature is unknown ({e})") from None
    named = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if not named and params:
        raise CannotRebuild("its constructor takes only *args/**kwargs")
    attrs = vars(m)
    kwargs: dict = {}
    for p in named:
        if p.name == "device":
            kwargs["device"] = "cpu"
        elif p.name == "dtype":
            continue
        elif p.name in attrs and not p.name.startswith("_"):
            kwargs[p.name] = attrs[p.name]
        else:
            raise CannotRebuild(f"its constructor argument {p.name!r} is not an attribute of "
                                "the module")
    positional_only = [p for p in named if p.kind == p.POSITIONAL_ONLY]
    if positional_only:
        raise CannotRebuild("its constructor has positional-only arguments")
    return kwargs


def _construct(cls: type, kwargs: dict, key: int) -> Any:
    torch = torch_module()
    from .patching import Patch
    deterministic = torch.utils.deterministic
    saved = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             deterministic.fill_uninitialized_memory)
    try:
        torch.use_deterministic_algorithms(True, warn_only=True)
        deterministic.fill_uninitialized_memory = True
        with torch.random.fork_rng(devices=[]), torch.device("cpu"), Patch(Generator(key)):
            torch.manual_seed(key & 0x7FFF_FFFF_FFFF_FFFF)
            return cls(**kwargs)
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        deterministic.fill_uninitialized_memory = saved[2]


def _uninitialized(t: Any) -> bool:
    torch = torch_module()
    if t.is_floating_point() or t.is_complex():
        return bool(torch.isnan(t).any())
    if t.dtype == torch.bool:
        return False
    return bool((t == torch.iinfo(t.dtype).max).any())


def _copy_into(old: Any, new: Any) -> None:
    torch = torch_module()
    with torch.no_grad():
        if is_dtensor(old):
            fill_via_full(old, lambda full: full.copy_(new))
        else:
            old.copy_(new)


def _owners(model: Any, tensors: Sequence[Any]) -> list:
    """[(module, [names of its own tensors among them])], each tensor under its first owner."""
    wanted = {id(t) for t in tensors}
    taken: set = set()
    out: dict = {}
    for m in model.modules():
        for name, t in list(m._parameters.items()) + list(m._buffers.items()):
            if t is not None and id(t) in wanted and id(t) not in taken:
                taken.add(id(t))
                out.setdefault(id(m), (m, []))[1].append(name)
    return list(out.values())


def _own(m: Any, name: str) -> Any:
    t = m._parameters.get(name)
    return t if t is not None else m._buffers.get(name)


def rebuild(model: Any, tensors: Sequence[Any], generator: Any) -> tuple[list, dict]:
    """Recompute ``tensors`` from their modules constructed again. Returns (the tensors not
    recomputed, {module class name: why})."""
    failed: list = []
    reasons: dict = {}
    for m, names in _owners(model, tensors):
        key = next_key(generator)
        try:
            kwargs = constructor_arguments(m)
            size = sum(int(t.numel()) for t in subtree_tensors(m))
            if size > REBUILD_LIMIT:
                raise CannotRebuild(f"it holds {size:,} elements (REBUILD_LIMIT is "
                                    f"{REBUILD_LIMIT:,})")
            try:
                fresh = _construct(type(m), kwargs, key)
            except Exception as e:  # the constructor's own error: reported, not raised
                raise CannotRebuild(f"constructing it again raised {type(e).__name__}: {e}")
            pairs = []
            for name in names:
                old, new = _own(m, name), _own(fresh, name)
                if new is None or tuple(new.shape) != tuple(old.shape):
                    got = None if new is None else tuple(new.shape)
                    raise CannotRebuild(f"the rebuilt {name!r} has shape {got}, not "
                                        f"{tuple(old.shape)}")
                if _uninitialized(new):
                    raise CannotRebuild(f"its constructor leaves {name!r} uninitialized")
                pairs.append((old, new))
        except CannotRebuild as e:
            reasons.setdefault(type(m).__name__, str(e))
            failed.extend(_own(m, name) for name in names)
            continue
        for old, new in pairs:
            _copy_into(old, new)
    return failed, reasons
