"""Which implementation runs the kernels: the compiled core ("native") or NumPy ("numpy").

Chosen at import from FASTINIT_BACKEND=auto|native|numpy (default auto: the compiled core when
it imports, else NumPy with one warning that names the cause and the fix);
``fastinit.set_backend`` switches at run time. Both give the same bits.

Environment values are checked here, as torch checks its own: an unknown FASTINIT_BACKEND,
FASTINIT_CPU_ISA or FASTINIT_NUM_THREADS is named in a warning and ignored (the default is used), so a typo never makes
``import fastinit`` fail. FASTINIT_BACKEND=native is a requirement: without the compiled core,
import raises ImportError. Under fastinit's own command line these messages are not warned at
import but handed to the CLI (:func:`import_messages`), which prints each as one line and
refuses to run on a bad value.
"""
from __future__ import annotations

import importlib
import os
import re
import sys
import warnings
from types import ModuleType
from typing import Any, Optional

BACKENDS = ("native", "numpy")
CPU_ISAS = ("auto", "generic", "avx2")  # FASTINIT_CPU_ISA; the core forces only "generic"

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_REINSTALL = ("pip install --force-reinstall --no-deps --no-cache-dir fastinit "
              "(or the source directory in place of fastinit)")


def _import_artifact(name: str) -> tuple[Optional[ModuleType], Optional[ImportError]]:
    """A module the build writes into the package (the core, the build facts): imported by name,
    as the compiled core always was, so that the package's layering does not count them."""
    try:
        return importlib.import_module(f"fastinit.{name}"), None
    except ImportError as exc:
        return None, exc


_core: Optional[ModuleType]
_core, _core_exception = _import_artifact("_core")
_build_info, _ = _import_artifact("_build_info")


def _missing_core() -> tuple[str, str]:
    """(cause, fix) of a compiled core that did not import, in words for the user."""
    exc = _core_exception
    built = _build_info
    if built is not None and not getattr(built, "COMPILED_CORE", True):
        return (f"it was installed without one: {built.NO_CORE_REASON} when it was built",
                f"{built.NO_CORE_FIX}, then reinstall: {_REINSTALL}")
    if isinstance(exc, ModuleNotFoundError) and exc.name == "fastinit._core":
        if built is not None:
            return (f"the installed package has no fastinit/_core*.so in {_PACKAGE_DIR} though it "
                    "was built with one (a damaged installation)", f"reinstall: {_REINSTALL}")
        return (f"no fastinit/_core*.so in {_PACKAGE_DIR} (a source checkout that was not built?)",
                "install it with pip install . from the checkout, or import the installed package")
    return (f"it failed to load ({type(exc).__name__}: {exc})",
            f"reinstall fastinit in this environment: {_REINSTALL}")


_core_error: Optional[str] = None
_core_fix: Optional[str] = None
if _core is None:
    _core_error, _core_fix = _missing_core()


def core() -> Optional[ModuleType]:
    """The compiled module, or None when it could not be imported."""
    return _core


def core_error() -> Optional[str]:
    """Why the compiled core is not available (None when it is)."""
    return _core_error


def core_fix() -> Optional[str]:
    """What makes the compiled core available (None when it is)."""
    return _core_fix


def build_info() -> dict[str, Any]:
    """How this installation was built (compiler, CPU kernels, SIMD pragmas, CUDA), as the build
    recorded it in fastinit/_build_info.py; empty when the package was not built by pip (a
    source checkout)."""
    if _build_info is None:
        return {}
    return {k.lower(): v for k, v in vars(_build_info).items() if k.isupper()}


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
        raise ImportError(f"the compiled core of fastinit is not available: {_core_error}. "
                          f"Fix: {_core_fix}; or use the NumPy backend (same values, slower)")
    _active = name


# --- What the environment asks for, checked once at import -----------------------------------

_active = "numpy"
_messages: list[tuple[str, str]] = []  # (kind, text): kind is "error" or "warning"


def import_messages() -> tuple[tuple[str, str], ...]:
    """The problems found at import, as (kind, text): "error" for an environment value that is
    not valid or cannot be honoured, "warning" for the NumPy fallback. In library use they were
    warned at import; under fastinit's command line they are the CLI's to print."""
    return tuple(_messages)


def _invoked_as_cli() -> bool:
    """Whether this process is fastinit's command line: the ``fastinit`` console script, or
    ``python -m fastinit``. (The package is imported before the CLI's code runs, so only the
    command line itself can tell.)"""
    script = re.sub(r"(-script\.pyw?|\.exe)$", "", os.path.basename(sys.argv[0] if sys.argv else ""))
    if script == "fastinit":
        return True
    orig = list(getattr(sys, "orig_argv", []))
    for i, arg in enumerate(orig[:-1]):
        if arg == "-m" and orig[i + 1] in ("fastinit", "fastinit.cli"):
            return True
    return any(arg in ("-mfastinit", "-mfastinit.cli") for arg in orig)


def _user_stacklevel() -> int:
    """The stacklevel of the first frame outside fastinit and the import machinery: the user's
    ``import fastinit`` line, where a warning is useful. (warnings.warn itself does not count
    importlib's frames.)"""
    frame, level = sys._getframe(1), 1
    while frame is not None:
        path = frame.f_code.co_filename
        internal = "importlib" in path and "_bootstrap" in path
        if not internal and not path.startswith(_PACKAGE_DIR):
            return level
        frame, level = frame.f_back, level + (0 if internal else 1)
    return 1


def _report(kind: str, text: str, when_warned: str = "") -> None:
    """Record a problem; in library use also warn it, with what fastinit does instead."""
    _messages.append((kind, text))
    if not _AS_CLI:
        warnings.warn(f"fastinit: {text}{when_warned}", RuntimeWarning, stacklevel=_user_stacklevel())


def _requested_backend() -> str:
    raw = os.environ.get("FASTINIT_BACKEND")
    value = (raw or "").strip().lower() or "auto"
    if value not in ("auto",) + BACKENDS:
        _report("error", f"FASTINIT_BACKEND={raw!r} is not one of: auto, native, numpy",
                " (ignored: auto is used)")
        return "auto"
    return value


def _check_cpu_isa() -> None:
    """FASTINIT_CPU_ISA is read by the compiled core, which forces the portable kernels on
    "generic" and otherwise runs the best kernels the processor has; values are checked here."""
    raw = os.environ.get("FASTINIT_CPU_ISA")
    if raw is None or raw == "":
        return
    if raw not in CPU_ISAS:
        _report("error", f"FASTINIT_CPU_ISA={raw!r} is not one of: auto, generic, avx2",
                " (ignored: the best CPU kernels of this processor are used)")
    elif raw == "avx2" and _core is not None and _core.cpu_isa() != "avx2":
        _report("error", "FASTINIT_CPU_ISA='avx2', but the AVX2 kernels cannot run here (not "
                         "compiled in, or the processor lacks AVX2 and FMA)",
                " (the portable kernels are used)")


def _check_num_threads() -> None:
    """FASTINIT_NUM_THREADS is read by the compiled core's thread pool, which takes the leading
    positive integer ("4", or "4,2" as OMP_NUM_THREADS may read) and otherwise ignores it."""
    raw = os.environ.get("FASTINIT_NUM_THREADS")
    if raw is None or raw == "":
        return
    m = re.match(r"\s*\+?(\d+)", raw)
    if m is None or int(m.group(1)) < 1:
        _report("error", f"FASTINIT_NUM_THREADS={raw!r} is not a positive integer",
                " (ignored: OMP_NUM_THREADS, else every CPU, sets the threads)")


def _init_from_environment() -> None:
    requested = _requested_backend()
    _check_cpu_isa()
    _check_num_threads()
    if _core is None and requested == "native":
        text = (f"FASTINIT_BACKEND=native, but the compiled core of fastinit is not available: "
                f"{_core_error}. Fix: {_core_fix}; or unset FASTINIT_BACKEND for the NumPy fallback")
        if not _AS_CLI:
            raise ImportError(text)
        _messages.append(("error", text))
        requested = "numpy"
    elif _core is None and requested == "auto":
        _report("warning", f"compiled core not available: {_core_error}. Using the NumPy backend "
                           f"(same values, slower). Fix: {_core_fix}; or set FASTINIT_BACKEND=numpy "
                           "to choose NumPy without this warning")
    set_backend(requested)


_AS_CLI = _invoked_as_cli()
_init_from_environment()
