"""fastinit.patch(): route torch.nn.init, transformers' and timm's init functions to fastinit.

What is patched, while at least one patch is active:

- every public function of ``torch.nn.init`` (also the deprecated aliases), its private fan
  helpers ``_calculate_fan_in_and_fan_out`` / ``_calculate_correct_fan`` and its ``_no_grad_*``
  helpers;
- timm's ``trunc_normal_``, ``trunc_normal_tf_``, ``variance_scaling_``, ``lecun_normal_``
  (``timm.layers.weight_init``; ``timm.models.layers.weight_init`` in old timm);
- wherever those function objects are bound: every module attribute in ``sys.modules`` that
  *is* one of them (``from torch.nn.init import xavier_uniform_`` in torch's own modules,
  ``from timm.layers import trunc_normal_`` in timm's model files and in user code), and the
  values of ``transformers.initialization.TORCH_INIT_FUNCTIONS``, through which every init
  function of ``transformers.initialization`` calls torch (its ``_is_hf_initialized`` guards
  are kept).

Modules imported while a patch is active bind the replacements (they read them from the
patched modules); a library whose init module is first imported during a patch (timm) is
patched as soon as that module has run. Exiting the outermost patch puts every original
object back: it scans ``sys.modules`` (and the containers) for the replacements, so bindings
made during the patch are restored too. To keep enter and exit at a few milliseconds, a
module found without any of the functions is not looked at again while its namespace keeps
the same size: a module that held none of them and, during a patch, rebinds one of its
existing names to a replacement (``mod.f = torch.nn.init.normal_`` over an ``f`` it had)
keeps the replacement after the exit. Imports, new names and the libraries' own swaps
(transformers' ``guard_torch_init_functions``) are all seen. Replacements are made once per
original, so every patch uses the same objects; exits restore on exceptions as on success,
and nested or repeated patches are counted (only the outermost exit restores).

Limits: bindings that are not module attributes (a closure, a default argument, a
``functools.partial``, a class attribute, a list) are not reached. A function whose parameters
differ from those its replacement takes (another version of the library) is left alone.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import inspect
import os
import sys
import threading
from typing import Any, Callable, Optional

from ..stream.keys import Generator, is_generator_like
from . import routes as _routes

#: (module name, {attribute: make(original) -> replacement}) of the libraries' init functions.
SOURCES: tuple = (
    ("torch.nn.init", _routes.torch_routes),
    ("timm.layers.weight_init", _routes.timm_routes),
    ("timm.models.layers.weight_init", _routes.timm_routes),
)
#: Module-level dicts whose values may be the originals: (module name, attribute).
CONTAINERS: tuple = (("transformers.initialization", "TORCH_INIT_FUNCTIONS"),)

_LOCK = threading.RLock()
_ORIGINALS: dict[int, tuple] = {}     # id(original) -> (original, replacement)
_REPLACEMENTS: dict[int, tuple] = {}  # id(replacement) -> (replacement, original)
_CLEAN: dict[str, tuple] = {}         # module name -> (id(module), len(its dict)): no hits
_state = {"depth": 0, "hook": None}


def _register(module_name: str, routes: Callable[[], dict]) -> bool:
    """Make replacements for the originals of one source module, if it is imported. Only
    functions defined there are taken (not something another patcher put in their place)."""
    module = sys.modules.get(module_name)
    if module is None:
        return False
    namespace = vars(module)
    added = False
    made: dict[str, Callable] = {}
    for name, make in routes().items():
        fn = namespace.get(name)
        if fn is None:
            continue
        if id(fn) in _ORIGINALS:
            made[name] = _ORIGINALS[id(fn)][1]
            continue
        if id(fn) in _REPLACEMENTS or getattr(fn, "__module__", None) != module_name:
            continue
        replacement = make(fn)
        if not _same_parameters(fn, replacement):
            continue  # another version of the library: left as it is, not guessed at
        _ORIGINALS[id(fn)] = (fn, replacement)
        _REPLACEMENTS[id(replacement)] = (replacement, fn)
        made[name] = replacement
        added = True
    if module_name == "torch.nn.init":
        for alias, target in _routes.TORCH_DEPRECATED.items():
            fn = namespace.get(alias)
            if (fn is None or target not in made or id(fn) in _ORIGINALS
                    or getattr(fn, "__module__", None) != module_name):
                continue
            replacement = _routes._deprecated(fn, made[target])
            _ORIGINALS[id(fn)] = (fn, replacement)
            _REPLACEMENTS[id(replacement)] = (replacement, fn)
            added = True
    return added


def _same_parameters(original: Callable, replacement: Callable) -> bool:
    """Whether the replacement takes the original's parameters, by name and in order (or
    passes everything on)."""
    code = replacement.__code__
    if code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS):
        return True
    names = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    try:
        params = inspect.signature(original, follow_wrapped=False).parameters.values()
    except (TypeError, ValueError):
        return False
    return tuple(names) == tuple(p.name for p in params
                                 if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


def _register_all() -> None:
    if any([_register(name, routes) for name, routes in SOURCES]):
        _CLEAN.clear()  # new originals: every module must be looked at again


def _swap_namespace(namespace: dict, mapping: dict) -> int:
    if mapping.keys().isdisjoint(map(id, namespace.values())):  # the common case, at C speed
        return 0
    hits = [(k, v) for k, v in namespace.items() if id(v) in mapping and mapping[id(v)][0] is v]
    for k, v in hits:
        namespace[k] = mapping[id(v)][1]
    return len(hits)


def _swap_everywhere(mapping: dict, use_clean: bool = True) -> None:
    """Replace, in every module's namespace and the known containers, each object that is a
    key of mapping ({id(obj): (obj, new)}) by its new object. use_clean: skip the modules that
    held none at the last look and whose namespace has not grown or shrunk since."""
    for name, module in list(sys.modules.items()):
        try:
            namespace = vars(module)
        except TypeError:
            continue
        if not isinstance(namespace, dict):
            continue
        mark = (id(module), len(namespace))
        if use_clean and _CLEAN.get(name) == mark:
            continue
        if _swap_namespace(namespace, mapping):
            _CLEAN.pop(name, None)
        else:
            _CLEAN[name] = mark
    for module_name, attr in CONTAINERS:
        module = sys.modules.get(module_name)
        container = vars(module).get(attr) if module is not None else None
        if isinstance(container, dict):
            _swap_namespace(container, mapping)


def _install() -> None:
    _register_all()
    _swap_everywhere(_ORIGINALS)
    _state["hook"] = _ImportWatcher()
    sys.meta_path.insert(0, _state["hook"])


def _uninstall() -> None:
    hook = _state["hook"]
    if hook is not None and hook in sys.meta_path:
        sys.meta_path.remove(hook)
    _state["hook"] = None
    _swap_everywhere(_REPLACEMENTS)


# ----------------------------------------------------------------------------------------------
# libraries imported during a patch


class _ImportWatcher(importlib.abc.MetaPathFinder):
    """Patches a source module (timm's weight_init) the moment it is first imported during a
    patch, before the modules that re-export its functions bind them."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in _WATCHED or fullname in sys.modules:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _PatchingLoader(spec.loader)
        return spec


_WATCHED = frozenset(name for name, _ in SOURCES)


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        with _LOCK:
            if _state["depth"] > 0:
                _register_all()
                _swap_namespace(vars(module), _ORIGINALS)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


# ----------------------------------------------------------------------------------------------
# the public object


class Patch:
    """The object :func:`patch` returns: a context manager, a decorator, and ``start()`` /
    ``stop()`` for a whole program."""

    def __init__(self, generator: Any = None) -> None:
        if not is_generator_like(generator):
            raise TypeError("fastinit.patch: generator must be None, an int seed, a "
                            "fastinit.Generator, a numpy.random.Generator or a torch.Generator, "
                            f"got {type(generator).__name__}")
        if isinstance(generator, int):  # one seed, successive calls must still differ
            generator = Generator(generator)
        self.generator = generator
        self.active = False

    def start(self) -> "Patch":
        import torch  # noqa: F401  (patching needs torch.nn.init imported)
        with _LOCK:
            if self.active:
                raise RuntimeError("fastinit.patch: this patch is already active")
            if _state["depth"] == 0:
                _install()
            _state["depth"] += 1
            _routes.GENERATORS.append(self)
            self.active = True
        return self

    def stop(self) -> None:
        with _LOCK:
            if not self.active:
                raise RuntimeError("fastinit.patch: this patch is not active")
            self.active = False
            _routes.GENERATORS[:] = [p for p in _routes.GENERATORS if p is not self]
            _state["depth"] -= 1
            if _state["depth"] == 0:
                _uninstall()

    def __enter__(self) -> "Patch":
        return self.start()

    def __exit__(self, *exc: Any) -> bool:
        self.stop()
        return False

    def __call__(self, fn: Callable) -> Callable:
        import functools
        generator = self.generator

        @functools.wraps(fn)
        def patched(*args: Any, **kwargs: Any) -> Any:
            with Patch(generator):
                return fn(*args, **kwargs)
        return patched

    def __repr__(self) -> str:
        return f"fastinit.patch(generator={self.generator!r}, active={self.active})"


def patch(generator: Any = None) -> Patch:
    """Route torch's, transformers' and timm's init functions to fastinit (module docstring).

    >>> with fastinit.patch():
    ...     model = GPT2LMHeadModel(config)       # every init call on fastinit's stream
    >>> fastinit.patch().start()                  # the whole program (or FASTINIT_PATCH=1)

    ``generator``: what routed calls without a ``generator=`` of their own draw their keys from
    (an int seed becomes a ``fastinit.Generator``); None: torch's default generator, so
    ``torch.manual_seed`` governs the values. Each routed function keeps the semantics of the
    one it replaces (arguments, defaults, laws, errors, return value) and hands tensors fastinit
    does not fill to it.
    """
    return Patch(generator)


def is_patched() -> bool:
    """Whether a patch is active."""
    return _state["depth"] > 0


def original(fn: Any) -> Any:
    """The original function a replacement stands for (fn itself if it is none)."""
    entry = _REPLACEMENTS.get(id(fn))
    return entry[1] if entry is not None and entry[0] is fn else fn


_PROGRAM_PATCH: list = []


def start_from_environment() -> Optional[Patch]:
    """FASTINIT_PATCH=1 (true, yes, on): a patch for the whole program, started when fastinit
    is imported. Without torch it only warns."""
    if os.environ.get("FASTINIT_PATCH", "").strip().lower() not in ("1", "true", "yes", "on"):
        return None
    if _PROGRAM_PATCH:
        return _PROGRAM_PATCH[0]
    if importlib.util.find_spec("torch") is None:
        import warnings
        warnings.warn("FASTINIT_PATCH is set but torch is not importable: nothing patched",
                      RuntimeWarning, stacklevel=2)
        return None
    _PROGRAM_PATCH.append(Patch().start())
    return _PROGRAM_PATCH[0]
