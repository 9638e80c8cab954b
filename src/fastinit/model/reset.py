"""fastinit.reset_parameters: every module's torch ``reset_parameters()``, fused, on fastinit's
stream: the model walked children first, each known module planned by its handler
(model/handlers.py), the rest by its own ``reset_parameters()``, then all written at once."""
from __future__ import annotations

import sys
from typing import Any, Callable, Optional

from ..dispatch.target import torch_module
from ..stream.keys import GeneratorLike, next_key
from ..stream.ops import normal_params, uniform_params
from .handlers import Fallback, registry
from .plan import _PLANS, _Fill, _frozen, _run_planned, _signature, _stream_fill


class ModelPlan:
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
    public, private = registry()
    modules, index_of = _walk(model)
    plan = ModelPlan(index_of)
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
