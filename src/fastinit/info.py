"""What this installation of fastinit has: version, backends, threads, CUDA, how it was built."""
from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np

from ._version import STREAM_FORMAT_VERSION, __version__
from .dispatch import backend as _backend

# How to install torch wherever fastinit says so (README, docs, messages): the CPU build, as
# torch's own instructions give it for CPU-only machines (torch from PyPI is, on Linux, the
# multi-GB CUDA build). With a GPU, use the index of your CUDA version instead.
TORCH_INSTALL = "pip install torch --index-url https://download.pytorch.org/whl/cpu"


def info() -> dict[str, Any]:
    """A dictionary describing the installation (printed by ``fastinit info``)."""
    core = _backend.core()
    built = _backend.build_info()
    facts: dict[str, Any] = {
        "fastinit": __version__,
        "stream format": STREAM_FORMAT_VERSION,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "backends available": ", ".join(_backend.available_backends()),
        "backend in use": _backend.get_backend(),
    }
    for name, default in (("FASTINIT_BACKEND", "(unset: auto)"), ("FASTINIT_CPU_ISA", "(unset: auto)")):
        facts[name] = os.environ.get(name, default)
    for kind, text in _backend.import_messages():
        if kind == "error":
            facts.setdefault("environment problems", text)
    if core is None:
        facts["compiled core"] = f"not available: {_backend.core_error()}"
        facts["to get it"] = _backend.core_fix()
    else:
        facts["compiled core"] = "yes" + (f", built with {built['cxx']}" if built.get("cxx") else "")
        facts["CPU kernels"] = core.cpu_isa() + (f" (built: {built['cpu_kernels']})"
                                                 if built.get("cpu_kernels") else "")
        facts["CPU threads"] = (f"{core.cpu_threads()} (fastinit's pool; FASTINIT_NUM_THREADS or "
                                "OMP_NUM_THREADS sets it)")
        facts["CUDA compiled in"] = (built["cuda"] if built.get("cuda") and core.cuda_compiled()
                                     else "yes" if core.cuda_compiled() else "no")
        facts["CUDA devices visible to the core"] = core.cuda_device_count()
    try:
        import torch
        facts["torch"] = torch.__version__
        facts["torch CUDA available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            facts["GPU"] = torch.cuda.get_device_name(0)
    except ImportError:
        facts["torch"] = f"not installed (optional: {TORCH_INSTALL})"
    return facts


def version_text() -> str:
    """``fastinit --version``: the version, the stream format and whether the core is there."""
    core = "compiled core" if _backend.core() is not None else "NumPy backend only"
    return f"fastinit {__version__} (stream format {STREAM_FORMAT_VERSION}, {core})"


def import_messages() -> tuple[tuple[str, str], ...]:
    """What the package found wrong at import, for the command line to print (see
    fastinit.dispatch.backend.import_messages)."""
    return _backend.import_messages()


def format_info(facts: dict[str, Any]) -> str:
    width = max(len(k) for k in facts)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in facts.items())
