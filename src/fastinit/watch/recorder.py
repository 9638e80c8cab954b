"""The hooks of a watch: which modules are watched, and how their outputs, output gradients and
parameters become deferred statistics in a :class:`~.records.History` (batched per step and kind,
in-place writes caught, memory bounded)."""
from __future__ import annotations

import builtins
import fnmatch
import sys
import warnings
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from ..stats.reduce import stats_async
from .records import GRAD_LOG, History, Range, Site

ModuleFilter = Union[None, Callable[[str, Any], bool], Sequence[Union[str, type]]]
# A held tensor: (site index, tensor, its version when held, step).
Held = Tuple[int, Any, Optional[int], int]


def _float_tensors(obj: Any, out: List[Any], depth: int = 0) -> List[Any]:
    """The floating-point tensors in a module's output (tensors, tuples, lists, dicts)."""
    torch = sys.modules["torch"]
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() and obj.layout == torch.strided and obj.device.type != "meta":
            out.append(obj)
    elif depth < 4 and isinstance(obj, (tuple, list)):
        for o in obj:
            _float_tensors(o, out, depth + 1)
    elif depth < 4 and isinstance(obj, dict):
        for o in obj.values():
            _float_tensors(o, out, depth + 1)
    return out


def _version(t: Any) -> Optional[int]:
    """The tensor's version counter (None for inference tensors, which have none)."""
    try:
        return t._version
    except (RuntimeError, AttributeError):
        return None


def _storage_key(t: Any) -> Tuple[str, int]:
    try:
        return (str(t.device), t.untyped_storage().data_ptr())
    except (RuntimeError, AttributeError, NotImplementedError):
        return (str(t.device), t.data_ptr())


def select_modules(model: Any, modules: ModuleFilter) -> List[Tuple[str, Any]]:
    """The (name, module) pairs a ``modules`` filter picks: None for every leaf module, a callable
    ``(name, module) -> bool``, or a list of module types and names (glob patterns)."""
    named = list(model.named_modules())
    if modules is None:
        return [(n, m) for n, m in named if next(iter(m.children()), None) is None]
    if callable(modules) and not isinstance(modules, type):
        return [(n, m) for n, m in named if modules(n, m)]
    if isinstance(modules, (str, type)):
        modules = [modules]
    try:
        wanted = list(modules)
    except TypeError:
        raise TypeError("fastinit.watch: modules must be None, a callable (name, module) -> "
                        f"bool, or a list of module types and names, got {modules!r}") from None
    types = tuple(w for w in wanted if isinstance(w, type))
    names = [w for w in wanted if isinstance(w, str)]
    bad = [w for w in wanted if not isinstance(w, (str, type))]
    if bad:
        raise TypeError("fastinit.watch: modules must list module types or names "
                        f"(glob patterns allowed), got {bad[0]!r}")
    known = {n for n, _ in named}
    for pat in names:
        if not any(fnmatch.fnmatchcase(n, pat) for n in known):
            raise ValueError(f"fastinit.watch: no module of the model is named {pat!r} "
                             f"(names look like {sorted(known - {''})[:5]})")
    return [(n, m) for n, m in named
            if (types and isinstance(m, types))
            or any(fnmatch.fnmatchcase(n, p) for p in names)]


class Recorder:
    """Hooks on a model that reduce what the watched modules produce into ``history``.

    A step is one call of ``model(...)``; steps 0, every, 2 * every, ... are recorded. Outputs
    are held (with their version counters) and reduced together when the model's forward returns;
    gradients when the backward pass ends; weights at the start of a step.
    """

    def __init__(self, model: Any, modules: List[Tuple[str, Any]], history: History, *,
                 activations: bool, gradients: bool, weights: bool, every: int, bins: int,
                 act_range: Range, grad_range: Range, per_call: bool, buffer_bytes: int) -> None:
        torch = sys.modules["torch"]
        self.model = model
        self.modules = modules
        self.history = history
        self.activations = activations
        self.gradients = gradients
        self.weights = weights
        self.every = every
        self.bins = bins
        self.act_range = act_range
        self.grad_range = grad_range
        self.per_call = per_call
        self.buffer_bytes = buffer_bytes

        self.sites: List[Site] = []
        self._site_of: Dict[Tuple[int, int], int] = {}   # (module index, call) -> site
        self.param_sites: List[Site] = []
        self.params: List[Any] = []
        for name, m in modules:
            for pname, p in m.named_parameters(recurse=False):
                full = f"{name}.{pname}" if name else pname
                self.param_sites.append(Site(len(self.param_sites), full, type(m).__name__, True))
                self.params.append(p)
        self.step = -1
        self._active = False
        self._calls: Dict[int, int] = {}
        self._pending: Dict[str, List[Held]] = {"activations": [], "gradients": []}
        self._pending_bytes = {"activations": 0, "gradients": 0}
        self._pending_storage: Dict[Tuple[str, int], int] = {}
        self._callback_queued = False
        self._warned: set = set()
        self._handles: List[Any] = []
        self.closed = False
        self._tensor_type = torch.Tensor
        self._strided = torch.strided
        self._grad_enabled = torch.is_grad_enabled
        self._attach()

    def sites_of(self, kind: str) -> List[Site]:
        return self.param_sites if kind == "weights" else self.sites

    # ------------------------------------------------------------------------------ setup

    def _attach(self) -> None:
        model = self.model
        self._handles.append(model.register_forward_pre_hook(self._on_step_start))
        self._handles.append(model.register_forward_hook(self._on_step_end))
        if self.activations or self.gradients:
            for mi, (_, m) in enumerate(self.modules):
                self._handles.append(m.register_forward_hook(partial(self._on_output, mi)))
        self._track_storage = False  # are there in-place modules that could rewrite outputs?
        if self.activations:
            for m in model.modules():
                if getattr(m, "inplace", False) is True:
                    self._track_storage = True
                    self._handles.append(m.register_forward_pre_hook(self._before_inplace))

    def remove(self) -> None:
        """Reduce what is held and remove the hooks."""
        if self.closed:
            return
        self.flush_all()
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self.closed = True

    def clear(self) -> None:
        """Drop what is held (not yet reduced)."""
        self._pending = {"activations": [], "gradients": []}
        self._pending_bytes = {"activations": 0, "gradients": 0}
        self._pending_storage.clear()

    # ------------------------------------------------------------------------------ hooks

    def _site(self, mi: int) -> Site:
        call = 0
        if self.per_call:
            call = self._calls.get(mi, 0)
            self._calls[mi] = call + 1
        key = (mi, call)
        si = self._site_of.get(key)
        if si is None:
            name, m = self.modules[mi]
            label = name or type(m).__name__
            if call:  # a later call of a shared module: placed after its earlier calls
                label = f"{label}#{call}"
            si = len(self.sites)
            self.sites.append(Site(si, label, type(m).__name__,
                                   next(iter(m.parameters(recurse=False)), None) is not None))
            self._site_of[key] = si
        return self.sites[si]

    def _on_step_start(self, module: Any, inputs: Any) -> None:
        self.flush_all()
        self.step += 1
        self._active = self.step % self.every == 0
        self._calls.clear()
        if not self._active:
            return
        rec = self.history.record(self.step)
        if self.weights and self.params:
            rec.add("weights", list(builtins.range(len(self.params))), stats_async(self.params))

    def _on_step_end(self, module: Any, inputs: Any, output: Any) -> None:
        self.flush("activations")

    def _on_output(self, mi: int, module: Any, inputs: Any, output: Any) -> None:
        if not self._active:
            return
        if type(output) is self._tensor_type:  # the common case, without the recursion
            if not (output.is_floating_point() and output.layout is self._strided
                    and output.device.type != "meta"):
                return
            tensors = [output]
        else:
            tensors = _float_tensors(output, [])
        if not tensors:
            return
        site = self._site(mi)
        step = self.step
        if self.activations:
            for t in tensors:
                version = _version(t)
                if site.eager or version is None:
                    self._reduce("activations", [(site.index, t, version, step)])
                else:
                    self._hold("activations", (site.index, t, version, step))
        if self.gradients and self._grad_enabled():
            for t in tensors:
                if t.requires_grad:
                    t.register_hook(partial(self._on_grad, site.index, step))

    def _on_grad(self, si: int, step: int, grad: Any) -> None:
        if grad is None:
            return
        if not self._callback_queued:
            self._callback_queued = True
            try:
                from torch.autograd import Variable
                Variable._execution_engine.queue_callback(self._on_backward_end)
            except Exception:  # no engine callback: reduced at the next step or read
                pass
        version = _version(grad)
        if self.sites[si].eager or version is None:
            self._reduce("gradients", [(si, grad, version, step)])
        else:
            self._hold("gradients", (si, grad, version, step))

    def _on_backward_end(self) -> None:
        self._callback_queued = False
        self.flush("gradients")

    def _before_inplace(self, module: Any, inputs: Any) -> None:
        if not self._pending_storage:
            return
        for t in inputs:
            if isinstance(t, self._tensor_type) and _storage_key(t) in self._pending_storage:
                self.flush("activations")
                return

    # --------------------------------------------------------------------------- reducing

    def _hold(self, kind: str, item: Held) -> None:
        t = item[1]
        self._pending[kind].append(item)
        if kind == "activations" and self._track_storage:
            key = _storage_key(t)
            self._pending_storage[key] = self._pending_storage.get(key, 0) + 1
        self._pending_bytes[kind] += t.numel() * t.element_size()
        if self._pending_bytes[kind] > self.buffer_bytes:
            self.flush(kind)

    def flush_all(self) -> None:
        self.flush("activations")
        self.flush("gradients")

    def flush(self, kind: str) -> None:
        """Reduce the held tensors of a kind (those modified in place since are dropped)."""
        items = self._pending[kind]
        if not items:
            return
        self._pending[kind] = []
        self._pending_bytes[kind] = 0
        if kind == "activations":
            self._pending_storage.clear()
        fresh = []
        for item in items:
            si, t, version, _ = item
            if _version(t) != version:
                self._stale(kind, si)
            else:
                fresh.append(item)
        if fresh:
            self._reduce(kind, fresh)

    def _stale(self, kind: str, si: int) -> None:
        site = self.sites[si]
        site.eager = True
        if (kind, si) not in self._warned:
            self._warned.add((kind, si))
            what = "output" if kind == "activations" else "output gradient"
            warnings.warn(
                f"fastinit.watch: the {what} of layer {site.name!r} was modified in place after "
                "its hook (by an in-place operation outside a module with inplace=True); this "
                "step's record of it is dropped, and from now on it is reduced at its hook",
                RuntimeWarning, stacklevel=3)

    def _reduce(self, kind: str, items: List[Held]) -> None:
        by_step: Dict[int, List[Tuple[int, Any]]] = {}
        for si, t, _, step in items:
            by_step.setdefault(step, []).append((si, t))
        for step, group in by_step.items():
            sites = [si for si, _ in group]
            tensors = [t for _, t in group]
            rec = self.history.record(step)
            if kind == "activations":
                rec.add(kind, sites, stats_async(tensors, bins=self.bins, range=self.act_range))
            else:
                rec.add(kind, sites, stats_async(tensors))
                if self.bins:
                    torch = sys.modules["torch"]
                    with torch.no_grad():
                        logs = [t.detach().abs().log10_() for t in tensors]
                    rec.add(GRAD_LOG, sites, stats_async(logs, bins=self.bins, range=self.grad_range))
