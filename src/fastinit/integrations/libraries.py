"""The model libraries' own init, found on a model: what ``materialize(scheme="library")`` runs
after torch's per-module defaults (the order construction runs them in).

Found, outermost module first (a module inside one already found is left to it):

- a function registered for the module's class (or a base class) with
  :func:`register_library_init`;
- Hugging Face transformers: a ``PreTrainedModel`` runs ``initialize_weights()`` (its
  ``_init_weights`` on every submodule, nested models by their own), after the
  ``_is_hf_initialized`` flags are cleared, then ``tie_weights()``, as its ``init_weights()``;
- timm: a model of ``timm.models`` runs what its constructor runs, with default arguments:
  ``init_weights()``; else its ``_init_weights`` method applied to every module; else its
  file's ``_init_weights`` through ``named_apply``; else (EfficientNet, MobileNetV3) timm's
  ``efficientnet_init_weights``. A timm model with none of these raises
  :class:`LibraryInitUnknown`. Statements a constructor runs beside these (a ``mul_`` of the
  head after ``apply``) are not replayed;
- the root model's own ``init_weights()`` when it takes no required argument (torchtitan's
  convention).

A model with none of these gets torch's defaults only, which is what constructing it gives
unless its ``__init__`` runs init code of its own (that code cannot be replayed: pass
``library_init=`` to :func:`fastinit.materialize`, or register it).
"""
from __future__ import annotations

import inspect
import sys
from typing import Any, Callable, Optional

_REGISTRY: dict = {}


class LibraryInitUnknown(ValueError):
    """A model of a known library whose own init fastinit cannot find."""


def register_library_init(cls: type, fn: Callable[[Any], Any]) -> None:
    """Make ``materialize(scheme="library")`` run ``fn(module)`` for every outermost module of
    class ``cls`` (or a subclass), after torch's defaults, as the library's construction does.

    >>> fastinit.integrations.register_library_init(MyNet, lambda m: m.apply(m._init_weights))
    """
    _REGISTRY[cls] = fn


def _registered(m: Any) -> Optional[Callable]:
    for cls in type(m).__mro__:
        fn = _REGISTRY.get(cls)
        if fn is not None:
            return lambda: fn(m)
    return None


def _forget_hf_flags(model: Any) -> None:
    """Drop transformers' ``_is_hf_initialized`` marks, which make its init skip a module or a
    tensor (materialize writes them all)."""
    for m in model.modules():
        m.__dict__.pop("_is_hf_initialized", None)
        for t in list(m._parameters.values()) + list(m._buffers.values()):
            if t is not None and "_is_hf_initialized" in getattr(t, "__dict__", {}):
                del t._is_hf_initialized


def _hf(m: Any) -> Optional[Callable]:
    modeling = sys.modules.get("transformers.modeling_utils")
    base = getattr(modeling, "PreTrainedModel", None)
    if base is None or not isinstance(m, base):
        return None

    def run() -> None:
        _forget_hf_flags(m)
        m.initialize_weights()
        tie = getattr(m, "tie_weights", None)
        if callable(tie):  # as init_weights() does after it (to_empty unties)
            tie()
    return run


def _timm_efficientnet_init() -> Optional[Callable]:
    for name in ("timm.models._efficientnet_builder", "timm.models.efficientnet_builder"):
        module = sys.modules.get(name)
        fn = getattr(module, "efficientnet_init_weights", None)
        if fn is not None:
            return fn
    return None


def _timm(m: Any, root: bool) -> Optional[Callable]:
    """A timm model (the root, or a module with timm's pretrained_cfg); not its blocks. What
    its constructor runs, with default arguments: ``init_weights()``; else the
    ``_init_weights`` method applied to every module; else its file's module-level
    ``_init_weights`` through timm's ``named_apply``; else (EfficientNet, MobileNetV3) timm's
    ``efficientnet_init_weights``."""
    module_name = type(m).__module__ or ""
    if not module_name.startswith("timm.models."):
        return None
    if not (root or hasattr(m, "pretrained_cfg") or hasattr(m, "default_cfg")):
        return None
    if callable(getattr(m, "init_weights", None)):
        return m.init_weights
    if callable(getattr(m, "_init_weights", None)):
        return lambda: m.apply(m._init_weights)
    file_init = getattr(sys.modules.get(module_name), "_init_weights", None)
    named_apply = getattr(sys.modules.get("timm.models"), "named_apply", None)
    if callable(file_init) and named_apply is not None:
        return lambda: named_apply(file_init, m)
    efficientnet = _timm_efficientnet_init()
    if efficientnet is not None and module_name in ("timm.models.efficientnet",
                                                     "timm.models.mobilenetv3"):
        return lambda: efficientnet(m)
    raise LibraryInitUnknown(
        f"fastinit.materialize: {type(m).__name__} ({module_name}) has no init function "
        "fastinit knows; pass library_init=..., register one with "
        "fastinit.integrations.register_library_init, or use scheme='torch'")


def buffer_inits(model: Any) -> list[Callable[[], Any]]:
    """The modules' own ``init_non_persistent_buffers()`` (timm's convention for modules built
    on the meta device), innermost first."""
    out = []
    for m in model.modules():
        fn = getattr(m, "init_non_persistent_buffers", None)
        if callable(fn):
            out.append(fn)
    return out[::-1]


def _root_convention(m: Any) -> Optional[Callable]:
    fn = getattr(m, "init_weights", None)
    if not callable(fn):
        return None
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD,
                                               p.KEYWORD_ONLY) for p in params):
        return None
    return fn


def library_inits(model: Any) -> list[tuple[str, Callable[[], Any]]]:
    """[(where, run)] of the library inits found on the model, outermost first."""
    found: list = []
    covered: set = set()
    for name, m in model.named_modules():
        if id(m) in covered:
            continue
        run = _registered(m) or _hf(m) or _timm(m, m is model)
        if run is None and m is model:
            run = _root_convention(m)
        if run is not None:
            found.append((name or type(m).__name__, run))
            covered.update(id(x) for x in m.modules())
    return found
