"""Which tensors of a model a call wrote, and what becomes of the others (never garbage).

- :func:`model_tensors`: the tensors of a model that hold values to write (parameters and
  buffers, each once; not meta, lazy or empty ones).
- :class:`Staging`: a module's own ``reset_parameters()`` run on copies of its tensors, so that
  a failure leaves the real tensors untouched and the copies tell exactly what was written.
- :class:`RngSnapshot`: the state of the generators a call may advance, to put them back when
  the call fails.
- :func:`report`: the tensors left unwritten, as an :class:`UninitializedTensorsError` or an
  :class:`UninitializedTensorsWarning` that names them.
"""
from __future__ import annotations

import warnings
from typing import Any, Iterable, Optional, Sequence

from ..dispatch.sharding import is_dtensor, local_tensor
from ..dispatch.target import torch_module
from ..stream.keys import Generator

MISSING_CHOICES = ("raise", "warn", "ignore")
_LISTED = 12  # names in a message; the rest are counted


class UninitializedTensorsError(RuntimeError):
    """Some tensors of a model would be (or were) left with values nobody wrote. ``names``
    lists them (``"h.0.attn.c_attn.weight (Conv1D)"``)."""

    def __init__(self, message: str, names: Sequence[str]) -> None:
        super().__init__(message)
        self.names = list(names)


class UninitializedTensorsWarning(UserWarning):
    """The warning form of :class:`UninitializedTensorsError` (``missing="warn"``)."""


def check_missing(missing: str, who: str) -> None:
    if missing not in MISSING_CHOICES:
        raise ValueError(f"{who}: missing must be one of {MISSING_CHOICES}, got {missing!r}")


def holds_values(t: Any) -> bool:
    """A tensor with memory to write: not meta, not a lazy module's uninitialized parameter,
    not empty."""
    torch = torch_module()
    if isinstance(t, torch.nn.parameter.UninitializedTensorMixin):
        return False
    local = local_tensor(t) if is_dtensor(t) else t
    return local.device.type != "meta" and t.numel() > 0


def module_tensors(m: Any) -> Iterable[Any]:
    """A module's own (direct) parameters and buffers."""
    for t in m._parameters.values():
        if t is not None:
            yield t
    for t in m._buffers.values():
        if t is not None:
            yield t


def model_tensors(modules: Iterable[Any]) -> list:
    """The tensors with values to write of these modules, each once, in module order."""
    out: list = []
    seen: set = set()
    for m in modules:
        for t in module_tensors(m):
            if id(t) not in seen:
                seen.add(id(t))
                if holds_values(t):
                    out.append(t)
    return out


def subtree_tensors(module: Any) -> list:
    """Every tensor under a module (its own and its descendants'), each once."""
    return model_tensors(module.modules())


def tensor_names(model: Any, tensors: Iterable[Any]) -> list[str]:
    """"name (OwnerClass)" for each tensor (tied tensors: every name), in model order."""
    wanted = {id(t) for t in tensors}
    names: dict[int, list[str]] = {}
    for prefix, m in model.named_modules(remove_duplicate=False):
        for name, t in list(m._parameters.items()) + list(m._buffers.items()):
            if t is not None and id(t) in wanted:
                full = f"{prefix}.{name}" if prefix else name
                names.setdefault(id(t), []).append(f"{full} ({type(m).__name__})")
    out = []
    for t in tensors:
        out.append(" = ".join(dict.fromkeys(names.get(id(t), ["<unnamed tensor>"]))))
    return out


def report(model: Any, unwritten: Sequence[Any], missing: str, who: str, what: str,
           hint: str) -> None:
    """Raise (missing="raise") or warn ("warn") naming the unwritten tensors; "ignore" passes.
    ``what`` says what became of them; ``hint`` what the user can do."""
    if not unwritten or missing == "ignore":
        return
    names = tensor_names(model, unwritten)
    listed = ", ".join(names[:_LISTED])
    if len(names) > _LISTED:
        listed += f", and {len(names) - _LISTED} more"
    message = f"{who}: {len(names)} tensor(s) {what}: {listed}. {hint}"
    if missing == "raise":
        raise UninitializedTensorsError(message, names)
    warnings.warn(message, UninitializedTensorsWarning, stacklevel=3)


# ----------------------------------------------------------------------------------------------
# staged runs of modules' own resets


def _stageable(t: Any) -> bool:
    torch = torch_module()
    return type(t) in (torch.Tensor, torch.nn.Parameter)


_INT_VIEWS: dict = {}


def _bits(t: Any) -> Any:
    """t's memory as integers of the same width (NaN == NaN, -0.0 != 0.0), or t itself."""
    torch = torch_module()
    if not _INT_VIEWS:
        _INT_VIEWS.update({1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64})
    as_int = _INT_VIEWS.get(t.element_size())
    if as_int is None or t.dtype == as_int:
        return t
    return t.view(as_int)


def same_bits(a: Any, b: Any) -> bool:
    torch = torch_module()
    return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(_bits(a), _bits(b)))


class Staging:
    """Copies standing in for the real tensors while modules' own resets run.

    ``enter`` points every tensor at a clone of its data (``t.data = clone``: the tensor object
    and whatever holds it stay the same); the resets then write the clones. ``written(t)``
    compares a clone with the real data bit for bit (or sees a bumped version counter): a write
    through ``.data`` is seen too. ``commit`` copies the written clones into the real storage
    and points the tensors back at it (same storage, same data_ptr, version counter bumped);
    ``discard`` points them back untouched. Module attributes that a reset replaced with new
    tensor objects are put back by ``discard`` too.
    """

    def __init__(self, tensors: Sequence[Any], modules: Sequence[Any]) -> None:
        self.tensors = list(tensors)
        self.modules = list(modules)
        self.real: list = []
        self.versions: list = []
        self.dicts: list = []

    @staticmethod
    def possible(tensors: Sequence[Any]) -> bool:
        torch = torch_module()
        if torch.is_inference_mode_enabled():
            return False
        return all(_stageable(t) and not t.is_inference() for t in tensors)

    def enter(self) -> None:
        torch = torch_module()
        self.dicts = [(m, dict(m._parameters), dict(m._buffers)) for m in self.modules]
        with torch.no_grad():
            for t in self.tensors:
                real = t.data
                t.data = real.clone()
                self.real.append(real)
                self.versions.append(t._version)

    def written(self) -> list:
        """The staged tensors the resets wrote (or replaced)."""
        out = []
        for t, real, version in zip(self.tensors, self.real, self.versions):
            if t._version != version or not same_bits(t.data, real):
                out.append(t)
        return out

    def replaced(self) -> list:
        """New tensor objects that resets put in place of staged ones."""
        out = []
        for m, params, buffers in self.dicts:
            for old, new in ((params, m._parameters), (buffers, m._buffers)):
                for name, t in new.items():
                    if t is not None and old.get(name) is not t:
                        out.append(t)
        return out

    def commit(self, written: Sequence[Any]) -> None:
        torch = torch_module()
        changed = {id(t) for t in written}
        bumped = []
        with torch.no_grad():
            for t, real in zip(self.tensors, self.real):
                if id(t) in changed:
                    real.copy_(t.data)
                    bumped.append(t)
                t.data = real
        bump = getattr(torch.autograd.graph, "increment_version", None)
        if bump is not None and bumped:
            for t in bumped:
                bump(t)

    def discard(self) -> None:
        torch = torch_module()
        with torch.no_grad():
            for t, real in zip(self.tensors, self.real):
                t.data = real
        for m, params, buffers in self.dicts:
            for old, new in ((params, m._parameters), (buffers, m._buffers)):
                if any(new.get(k) is not v for k, v in old.items()) or len(new) != len(old):
                    new.clear()
                    new.update(old)


class RngSnapshot:
    """The states of the generators a call may advance: the ``generator`` argument, torch's
    default CPU generator (modules' own resets draw from it) and, when CUDA is initialized,
    torch's CUDA generators. ``restore`` puts them back."""

    def __init__(self, generator: Any) -> None:
        import numpy as np
        torch = torch_module()
        self.generator = generator
        self.cpu = torch.random.get_rng_state()
        self.cuda = None
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            self.cuda = torch.cuda.get_rng_state_all()
        self.own: Optional[Any] = None
        if isinstance(generator, Generator):
            self.own = generator.get_state()
        elif isinstance(generator, torch.Generator):
            self.own = generator.get_state()
        elif isinstance(generator, np.random.Generator):
            self.own = generator.bit_generator.state
        elif isinstance(generator, np.random.RandomState):
            self.own = generator.get_state()

    def restore(self) -> None:
        import numpy as np
        torch = torch_module()
        torch.random.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)
        g = self.generator
        if self.own is None:
            return
        if isinstance(g, (Generator, torch.Generator)):
            g.set_state(self.own)
        elif isinstance(g, np.random.Generator):
            g.bit_generator.state = self.own
        elif isinstance(g, np.random.RandomState):
            g.set_state(self.own)
