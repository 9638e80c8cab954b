"""fastinit.reset_parameters: every module's torch ``reset_parameters()``, fused, on fastinit's
stream: the model walked children first, each known module planned by its handler
(model/handlers.py), the rest by its own ``reset_parameters()``, then all written at once; never
a tensor silently left unwritten, and atomic (model/written.py)."""
from __future__ import annotations

import sys
from typing import Any, Callable, Optional

from ..dispatch.target import torch_module
from ..stream.keys import GeneratorLike, next_key
from ..stream.ops import normal_params, uniform_params
from .handlers import Fallback, registry
from .plan import _PLANS, _execute, _Fill, _frozen, _run_planned, _signature, _stream_fill
from .written import (RngSnapshot, Staging, check_missing, model_tensors, module_tensors,
                      report)


class _Entry:
    """A planned write of one tensor: spec ("uniform", bound) | ("normal", std) | ("const",
    value), an optional post step, and its tensor index (for its key)."""

    __slots__ = ("tensor", "spec", "post", "index")

    def __init__(self, tensor: Any, spec: tuple, post: Optional[Callable], index: int) -> None:
        self.tensor, self.spec, self.post, self.index = tensor, spec, post, index


class _Own:
    """A module's own reset_parameters() (or _reset_parameters()), run in its place."""

    __slots__ = ("module", "fn")

    def __init__(self, module: Any, fn: Callable) -> None:
        self.module, self.fn = module, fn


class ModelPlan:
    def __init__(self, index_of: dict[int, int]) -> None:
        self.index_of = index_of
        self.steps: list = []  # _Entry and _Own, in the order construction would run them
        self.pending: dict[int, tuple] = {}  # id(tensor) -> (tensor, spec, post)
        self.staged: list = []  # one module's entries, committed when its handler succeeds
        self.owns = 0  # modules whose own reset runs

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

    def fallback(self, module: Any, fn: Optional[Callable] = None) -> None:
        self.flush()
        self.steps.append(_Own(module, fn if fn is not None else module.reset_parameters))
        self.owns += 1

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
        """Pending entries become steps; a tensor that is not a parameter gets the next index."""
        for t, spec, post in self.pending.values():
            index = -1
            if spec[0] != "const":
                index = self.index_of.get(id(t))
                if index is None:
                    index = self.index_of[id(t)] = len(self.index_of)
            self.steps.append(_Entry(t, spec, post, index))
        self.pending = {}


def _compile(entry: _Entry) -> Optional[_Fill]:
    """The fill of an entry, described from the tensor's current data (None: nothing to write)."""
    t, spec = entry.tensor, entry.spec
    kind = spec[0]
    if kind == "const":
        item = _Fill(t, -1, "const")
        item.value = spec[1]
        return item
    fn = "uniform_" if kind == "uniform" else "normal_"
    item = _stream_fill(t, entry.index, fn, lambda fmt: _reset_call(kind, spec[1], fmt))
    if item is not None:
        item.post = entry.post
    return item


def _compiled(steps: list) -> list:
    out = []
    for step in steps:
        if isinstance(step, _Own):
            out.append(step.fn)
        else:
            item = _compile(step)
            if item is not None:
                out.append(item)
    return out


def _reset_call(kind: str, scale: float, fmt: Any) -> Any:
    """U(-scale, scale) or N(0, scale^2) in fmt (uniform_params caches its calls)."""
    return uniform_params(-scale, scale, fmt) if kind == "uniform" else normal_params(0.0, scale, fmt)


def _plan_module(m: Any, plan: ModelPlan, public: dict, private: dict) -> None:
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
    except Fallback:
        plan.staged = []
        plan.fallback(m, m.reset_parameters if reset is not None else m._reset_parameters)


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


_HINT = ("Their modules have no fastinit handler and no reset_parameters() of their own, or "
         "their own reset does not write them. Pass missing='warn' or missing='ignore' to keep "
         "their current values (a model built eagerly), or use fastinit.materialize(model, "
         "scheme='library'), which also runs the model library's own init and recomputes "
         "buffers.")


def reset_parameters(model: Any, *, generator: GeneratorLike = None,
                     progress: Optional[bool] = None, missing: str = "raise",
                     atomic: bool = True) -> Any:
    """Re-initialize every parameter and buffer of ``model`` in place, each with exactly the
    distribution its module's own ``reset_parameters()`` gives in torch.

    Known modules -- Linear, Bilinear, Conv*/ConvTranspose* (and their Lazy forms), Embedding,
    EmbeddingBag, LayerNorm, GroupNorm, RMSNorm, BatchNorm*/InstanceNorm*/SyncBatchNorm (running
    statistics reset), MultiheadAttention, Transformer, RNN/LSTM/GRU and their cells, PReLU,
    AdaptiveLogSoftmaxWithLoss -- are planned as fastinit fills (one fused pass per tensor, all
    tensors of a device in one batched core call; docs/model-init.md); any other module with a
    ``reset_parameters()`` method (also a subclass of a known module that overrides it) falls
    back to calling it. Modules are visited children first, parent last, as construction runs
    them, so a parent's init (MultiheadAttention's zero ``out_proj.bias``, Transformer's xavier
    weights) overrides its children's. Parameters keep their storage.

    Never garbage: a tensor that no handler and no module's own reset writes (a module with
    neither, such as GPT-2's ``Conv1D``, ``LlamaRMSNorm``, a rotary ``inv_freq`` buffer, the
    originals of a parametrization) is reported. ``missing="raise"`` (the default) raises
    :class:`UninitializedTensorsError` naming them, and then nothing has been written;
    ``"warn"`` writes the rest and warns (:class:`UninitializedTensorsWarning`); ``"ignore"``
    writes the rest silently (a model built eagerly keeps those tensors' values).

    Atomic (``atomic=True``, the default): when this call raises -- bad input, unwritten
    tensors under ``missing="raise"``, or a module's own ``reset_parameters()`` raising -- no
    tensor of the model has been written and no generator has advanced (the ``generator``
    argument, torch's default CPU generator and, if initialized, its CUDA generators are put
    back). Modules' own resets run first on copies of the tensors under those modules (theirs
    and their descendants', in the construction order, with the fastinit fills of those
    tensors); the copies are written back only when all of them succeeded. This costs a copy of
    the tensors under modules with their own reset, and nothing for a model made of known
    modules. Not covered: a reset that writes tensors outside its own module, or Python state
    a reset changes (counters). Tensors that cannot be staged (DTensors, inference tensors)
    make the call non-atomic, as does ``atomic=False``: then a reset's failure leaves the
    fills and resets before it written, and unwritten tensors are reported after the writes.

    One key is drawn from ``generator`` (``None``: torch's default generator, so
    ``torch.manual_seed`` makes it reproducible); parameter ``i`` of ``model.parameters()`` gets
    :func:`tensor_key` ``(k, i)``. Fallback modules draw from torch's own generator (under
    :func:`fastinit.patch`, from fastinit's stream). Parameters that are DTensors (FSDP2's
    ``fully_shard``, tensor parallel) are filled shard by shard with the values of the unsharded
    model. Works on a model built on the meta device and materialized with ``to_empty``; on
    the meta device itself it writes nothing. ``progress``: a tqdm bar (None: automatic above a
    billion CPU elements). Returns ``model``.

    >>> with torch.device("meta"):
    ...     model = Transformer(config)
    >>> model.to_empty(device="cuda")
    >>> torch.manual_seed(0)
    >>> fastinit.reset_parameters(model)
    """
    reset_model(model, generator=generator, progress=progress, missing=missing, atomic=atomic)
    return model


class Deferred:
    """Planned fills of known modules not made yet (``reset_model(..., defer=True)``): the
    caller makes those it still needs with :meth:`run`, with the keys they would have had."""

    def __init__(self, entries: list, call_key: int, progress: Optional[bool], who: str) -> None:
        self.entries, self.call_key, self.progress, self.who = entries, call_key, progress, who

    @property
    def tensors(self) -> list:
        return [e.tensor for e in self.entries]

    def run(self, keep: Optional[Callable[[Any], bool]] = None) -> None:
        entries = [e for e in self.entries if keep is None or keep(e.tensor)]
        _execute(_compiled(entries), self.call_key, self.progress, self.who)


class ResetOutcome:
    """What :func:`reset_model` did: ``unwritten`` (tensors nothing wrote) and ``deferred``
    (a :class:`Deferred`, or None)."""

    def __init__(self, unwritten: list, deferred: Optional[Deferred] = None) -> None:
        self.unwritten, self.deferred = unwritten, deferred


def reset_model(model: Any, *, generator: GeneratorLike = None, progress: Optional[bool] = None,
                missing: str = "raise", atomic: bool = True, defer: bool = False,
                who: str = "fastinit.reset_parameters") -> ResetOutcome:
    """:func:`reset_parameters`, telling what it left unwritten (reported as ``missing`` says).
    defer: the fills of known modules that no module's own reset depends on are planned and
    keyed but not made (``outcome.deferred``); those tensors count as written."""
    torch = torch_module()
    if torch is None or not isinstance(model, torch.nn.Module):
        raise TypeError(f"{who}: expected a torch.nn.Module, got {type(model).__name__}")
    check_missing(missing, who)
    public, private = registry()
    modules, index_of = _walk(model)
    plan = ModelPlan(index_of)
    for m in modules:
        _plan_module(m, plan, public, private)
    if not plan.owns:
        return _run_fills(model, modules, plan, generator, progress, missing, defer, who)
    return _run_with_own_resets(model, modules, plan, generator, progress, missing, atomic,
                                defer, who)


def _run_fills(model: Any, modules: list, plan: ModelPlan, generator: GeneratorLike,
               progress: Optional[bool], missing: str, defer: bool, who: str) -> ResetOutcome:
    """A plan of fastinit fills only: what is unwritten is known before anything is written."""
    planned = plan.pending
    unwritten = [t for t in model_tensors(modules) if id(t) not in planned]
    report(model, unwritten, missing, who, "would be left unwritten (nothing was written)",
           _HINT)
    if defer:
        plan.flush()
        return ResetOutcome(unwritten, Deferred(plan.steps, next_key(generator), progress, who))
    plan_key = ("reset_parameters", id(model))
    signatures = plan.signatures()  # None when an entry has a post step
    cached = _PLANS.get(plan_key) if signatures is not None else None
    if cached is not None and cached.ready(signatures, progress):
        cached.run(next_key(generator), [entry[0] for entry in plan.pending.values()])
        return ResetOutcome(unwritten)
    tensors = [entry[0] for entry in plan.pending.values()]
    plan.flush()
    steps = _compiled(plan.steps)
    call_key = next_key(generator)
    if signatures is not None and len(steps) != len(tensors):
        signatures = None
    _run_planned(plan_key, steps, tensors, signatures, call_key, progress, who)
    return ResetOutcome(unwritten)


def _run_with_own_resets(model: Any, modules: list, plan: ModelPlan, generator: GeneratorLike,
                         progress: Optional[bool], missing: str, atomic: bool, defer: bool,
                         who: str) -> ResetOutcome:
    plan.flush()
    entries = [s for s in plan.steps if isinstance(s, _Entry)]
    owns = [s for s in plan.steps if isinstance(s, _Own)]
    planned = {id(e.tensor) for e in entries}
    under_own: dict[int, Any] = {}  # tensors under modules whose own reset runs
    own_modules: dict[int, Any] = {}
    for own in owns:
        for m in own.module.modules():
            own_modules[id(m)] = m
    for t in model_tensors(own_modules.values()):
        under_own[id(t)] = t
    tensors = model_tensors(modules)
    sure = [t for t in tensors if id(t) not in planned and id(t) not in under_own]
    if missing == "raise":
        report(model, sure, missing, who, "would be left unwritten (nothing was written)", _HINT)
    snapshot = RngSnapshot(generator)
    call_key = next_key(generator)
    staged = list(under_own.values())
    deferred = None
    if atomic and Staging.possible(staged):
        staging = Staging(staged, list(own_modules.values()))
        staging.enter()
        try:
            first = [s for s in plan.steps if isinstance(s, _Own) or id(s.tensor) in under_own]
            _execute(_compiled(first), call_key, False, who)
            written = staging.written() + staging.replaced()
        except BaseException:
            staging.discard()
            snapshot.restore()
            raise
        done = planned | {id(t) for t in written}
        unwritten = [t for t in model_tensors(modules) if id(t) not in done]
        if unwritten and missing == "raise":
            staging.discard()
            snapshot.restore()
            report(model, unwritten, missing, who,
                   "would be left unwritten (nothing was written)", _HINT)
        staging.commit(written)
        rest = [e for e in entries if id(e.tensor) not in under_own]
        if defer:
            deferred = Deferred(rest, call_key, progress, who)
        else:
            _execute(_compiled(rest), call_key, progress, who)
    else:
        versions = _versions(staged)
        _execute(_compiled(plan.steps), call_key, progress, who)
        done = set(planned)
        for own in owns:  # credited: a write through .data leaves no trace
            done.update(id(t) for t in module_tensors(own.module))
        done.update(id(t) for t in staged if versions.get(id(t), t._version) != t._version)
        unwritten = [t for t in model_tensors(modules) if id(t) not in done]
    report(model, unwritten, missing, who, "were left unwritten", _HINT)
    return ResetOutcome(unwritten, deferred)


def _versions(tensors: list) -> dict:
    out = {}
    for t in tensors:
        try:
            out[id(t)] = t._version
        except RuntimeError:  # inference tensors have no version counter
            pass
    return out
