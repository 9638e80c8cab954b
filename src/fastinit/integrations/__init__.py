"""Other libraries' models, initialized by fastinit: patch() and materialize().

- :func:`patch` (:mod:`.patching`, :mod:`.routes`): while active, ``torch.nn.init``,
  ``transformers.initialization`` and timm's init helpers -- and every module attribute bound
  to them -- run fastinit's functions, with the semantics of the functions they replace.
- :func:`materialize` (:mod:`.materialize`, :mod:`.libraries`, :mod:`.rebuild`): a model built
  on the meta device, allocated and initialized as its library would (``scheme="library"``) or
  with torch's per-module defaults (``scheme="torch"``); every tensor written, or named in an
  error.

Imports: the model package (reset_parameters and what it wrote), fastinit.init,
initializers, fans, dispatch and stream; torch, and transformers / timm only when the user has
imported them. Nothing below it imports this package; the public API re-exports it.
"""
from .libraries import LibraryInitUnknown, register_library_init
from .materialize import materialize
from .patching import Patch, is_patched, patch

__all__ = ["patch", "Patch", "is_patched", "materialize", "register_library_init",
           "LibraryInitUnknown"]
