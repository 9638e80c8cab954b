"""The hooks of a watch: which modules are watched, and how their outputs, output gradients and
parameters become deferred statistics in a :class:`~.records.History` (batched per step and kind,
in-place writes caught, memory bounded)."""
from __future__ import annotations

import builtins
import sys
import warnings
from functools import partial
from typing import Any, Dict, List, Optional, Tuple

from ..stats.reduce import stats_async
from .records import CENTERED, GRAD_LOG, History, Range, Site
from .select import ModuleFilter, is_weight_layer, select_modules  # noqa: F401 (re-exported)
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


def _in_backward() -> bool:
    """Whether the autograd engine is running a backward pass on this thread (a forward that
    runs now is a recomputation: activation checkpointing)."""
    torch = sys.modules["torch"]
    try:
        return torch._C._current_graph_task_id() != -1
    except (AttributeError, RuntimeError):  # pragma: no cover - older torch
        return False


def _centered(t: Any) -> Any:
    """``t`` minus its mean over the batch (dim 0): what varies from example to example."""
    torch = sys.modules["torch"]
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return t - t.mean(0, keepdim=True)


def _storage_key(t: Any) -> Tuple[str, int]:
    try:
        return (str(t.device), t.untyped_storage().data_ptr())
    except (RuntimeError, AttributeError, NotImplementedError):
        return (str(t.device), t.data_ptr())


class Recorder:
    """Hooks on a model that reduce what the watched modules produce into ``history``.

    A step is one call of ``model(...)``; steps 0, every, 2 * every, ... are recorded. Outputs
    are held (with their version counters) and reduced together when the model's forward returns;
    gradients when the backward pass ends; weights at the start of a step.
    """

    def __init__(self, model: Any, modules: List[Tuple[str, Any]], history: History, *,
                 activations: bool, gradients: bool, weights: bool, every: int, bins: int,
                 act_range: Range, grad_range: Range, per_call: bool, buffer_bytes: int,
                 batch_stats: bool = False) -> None:
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
        self.batch_stats = batch_stats

        self.sites: List[Site] = []
        self._site_of: Dict[Tuple[int, int], int] = {}   # (module index, call) -> site
        self.param_sites: List[Site] = []
        self.params: List[Any] = []
        for name, m in modules:
            for pname, p in m.named_parameters(recurse=False):
                full = f"{name}.{pname}" if name else pname
                self.param_sites.append(Site(len(self.param_sites), full, type(m).__name__, True,
                                             module=m, module_name=name))
                self.params.append(p)
        self.step = -1
        self._active = False
        self._grad_hooked: set = set()  # sites whose output has a gradient hook this step
        self._calls: Dict[Any, int] = {}  # module index (or ("recompute", index)) -> calls
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
                                   next(iter(m.parameters(recurse=False)), None) is not None,
                                   module=m, module_name=name, has_weight=is_weight_layer(m)))
            self._site_of[key] = si
        return self.sites[si]

    def _on_step_start(self, module: Any, inputs: Any) -> None:
        if _in_backward():  # the whole model recomputed by a checkpoint: not a new step
            return
        self.flush_all()
        self.step += 1
        self._active = self.step % self.every == 0
        self._calls.clear()
        self._grad_hooked.clear()
        if not self._active:
            return
        rec = self.history.record(self.step)
        if self.weights and self.params:
            rec.add("weights", list(builtins.range(len(self.params))), stats_async(self.params))

    def _on_step_end(self, module: Any, inputs: Any, output: Any) -> None:
        if _in_backward():
            return
        self.flush("activations")

    def _on_output(self, mi: int, module: Any, inputs: Any, output: Any) -> None:
        if not self._active:
            return
        # A forward that runs during backward is a recomputation (activation checkpointing):
        # its outputs were recorded when the step ran; only a gradient hook the first run could
        # not place (a reentrant checkpoint runs it under no_grad) is placed now.
        recompute = _in_backward()
        if recompute and not self.gradients:
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
        if recompute:
            site = self._recomputed_site(mi)
            if site is None or site.index in self._grad_hooked:
                return
        else:
            site = self._site(mi)
        step = self.step
        if self.activations and not recompute:
            for t in tensors:
                version = _version(t)
                if site.eager or version is None:
                    self._reduce("activations", [(site.index, t, version, step)])
                else:
                    self._hold("activations", (site.index, t, version, step))
        if self.gradients and self._grad_enabled():
            hooked = False
            for t in tensors:
                if t.requires_grad:
                    t.register_hook(partial(self._on_grad, site.index, step))
                    hooked = True
            if hooked:
                self._grad_hooked.add(site.index)

    def _recomputed_site(self, mi: int) -> Optional[Site]:
        """The site of a module run again by a checkpoint: its first call's (a recomputation
        repeats the calls of the step; with per_call, they are matched in order)."""
        if not self.per_call:
            return self.sites[self._site_of[(mi, 0)]] if (mi, 0) in self._site_of else None
        key = ("recompute", mi)
        call = self._calls.get(key, 0)
        self._calls[key] = call + 1
        si = self._site_of.get((mi, call))
        return self.sites[si] if si is not None else None

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
                if self.batch_stats:
                    torch = sys.modules["torch"]
                    keep = [(si, t) for si, t in zip(sites, tensors) if t.dim() >= 1 and t.shape[0] > 1]
                    if keep:
                        with torch.no_grad():
                            centered = [_centered(t.detach()) for _, t in keep]
                        rec.add(CENTERED, [si for si, _ in keep], stats_async(centered))
            else:
                rec.add(kind, sites, stats_async(tensors))
                if self.bins:
                    torch = sys.modules["torch"]
                    with torch.no_grad():
                        logs = [t.detach().abs().log10_() for t in tensors]
                    rec.add(GRAD_LOG, sites, stats_async(logs, bins=self.bins, range=self.grad_range))
