"""Which implementation runs the kernels: the compiled core ("native") or NumPy ("numpy").

Chosen at import from FASTINIT_BACKEND=auto|native|numpy (default auto: the compiled core when
it imports, else NumPy with one warning); ``fastinit.set_backend`` switches at run time. Both give
the same bits.
"""
from __future__ import annotations

import os
import warnings
from types import ModuleType
from typing import Optional

_core: Optional[ModuleType]
_core_error: Optional[str] = None
try:
    from .. import _core  # type: ignore[attr-defined]
except ImportError as exc:  # no compiler at install time, or a broken build
    _core = None
    _core_error = f"{type(exc).__name__}: {exc}"

BACKENDS = ("native", "numpy")
_active = "numpy"


def core() -> Optional[ModuleType]:
    """The compiled module, or None when it could not be imported."""
    return _core


def core_error() -> Optional[str]:
    return _core_error


def available_backends() -> tuple[str, ...]:
    return BACKENDS if _core is not None else ("numpy",)


def get_backend() -> str:
    """The active backend: "native" or "numpy"."""
    return _active


def set_backend(name: str) -> None:
    """Switch backend: "native", "numpy" or "auto" (native when compiled, else numpy).

    >>> fastinit.set_backend("numpy")   # pure NumPy: same values, slower
    """
    global _active
    if name == "auto":
        name = "native" if _core is not None else "numpy"
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of 'auto', 'native', 'numpy', got {name!r}")
    if name == "native" and _core is None:
        raise ImportError(f"the compiled core of fastinit is not available ({_core_error}); "
                          "reinstall with a C++ compiler present, or use FASTINIT_BACKEND=numpy")
    _active = name


def _init_from_environment() -> None:
    requested = os.environ.get("FASTINIT_BACKEND", "auto").strip().lower() or "auto"
    if requested == "auto" and _core is None:
        warnings.warn(f"fastinit: compiled core not available ({_core_error}); using the NumPy "
                      "backend (same values, slower)", RuntimeWarning, stacklevel=3)
    set_backend(requested)


_init_from_environment()
