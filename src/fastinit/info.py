"""What this installation of fastinit has: version, backends, threads, CUDA."""
from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np

from ._version import STREAM_FORMAT_VERSION, __version__
from .dispatch import backend as _backend


def info() -> dict[str, Any]:
    """A dictionary describing the installation (printed by ``python -m fastinit info``)."""
    core = _backend.core()
    facts: dict[str, Any] = {
        "fastinit": __version__,
        "stream format": STREAM_FORMAT_VERSION,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "backends available": ", ".join(_backend.available_backends()),
        "backend in use": _backend.get_backend(),
        "FASTINIT_BACKEND": os.environ.get("FASTINIT_BACKEND", "(unset: auto)"),
    }
    if core is None:
        facts["compiled core"] = f"not available ({_backend.core_error()})"
    else:
        facts["compiled core"] = "yes"
        facts["CPU kernels"] = core.cpu_isa()
        facts["CPU threads"] = (f"{core.cpu_threads()} (fastinit's pool; FASTINIT_NUM_THREADS or "
                                "OMP_NUM_THREADS sets it)")
        facts["CUDA compiled in"] = "yes" if core.cuda_compiled() else "no"
        facts["CUDA devices visible to the core"] = core.cuda_device_count()
    try:
        import torch
        facts["torch"] = torch.__version__
        facts["torch CUDA available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            facts["GPU"] = torch.cuda.get_device_name(0)
    except ImportError:
        facts["torch"] = "not installed (optional)"
    return facts


def format_info(facts: dict[str, Any]) -> str:
    width = max(len(k) for k in facts)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in facts.items())
