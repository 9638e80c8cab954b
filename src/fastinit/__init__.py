"""fastinit: fast, reproducible weight initialization for PyTorch and NumPy.

A drop-in for ``torch.nn.init`` (same names, signatures and semantics) whose values come from a
counter-based random stream: the same seed gives the same weights on every backend, device,
thread count and shard.

>>> import torch, fastinit as init
>>> torch.manual_seed(0)
>>> w = init.kaiming_normal_(torch.empty(512, 256), nonlinearity="relu")
>>> a = init.trunc_normal_(numpy.empty((768, 768), dtype=numpy.float32), std=0.02, generator=1)
"""
from __future__ import annotations

from ._version import STREAM_FORMAT_VERSION, __version__
from .dispatch.backend import available_backends, get_backend, set_backend
from .fans import calculate_correct_fan, calculate_fan_in_and_fan_out
from .stream.keys import Generator, default_generator, manual_seed
from .init import (
    calculate_gain,
    constant,
    constant_,
    dirac,
    dirac_,
    eye,
    eye_,
    kaiming_normal,
    kaiming_normal_,
    kaiming_uniform,
    kaiming_uniform_,
    normal,
    normal_,
    ones_,
    orthogonal,
    orthogonal_,
    sparse,
    sparse_,
    trunc_normal_,
    uniform,
    uniform_,
    xavier_normal,
    xavier_normal_,
    xavier_uniform,
    xavier_uniform_,
    zeros_,
)
from . import init  # noqa: E402  (``from fastinit import init`` as a module, like torch.nn.init)

# Each of these subpackages lists its public names in its own __all__. stats and watch are
# also the names of functions: ``fastinit.stats`` and ``fastinit.watch`` are the functions (the
# star imports below rebind them); the subpackages are reached by import paths
# (``from fastinit.stats import Stats``, ``from fastinit.watch import Watch``).
from . import initializers as _initializers, model as _model
from . import stats as _stats, watch as _watch  # noqa: E402
from .initializers import *  # noqa: F401,F403  initializers beyond torch.nn.init
from .stats import *  # noqa: F401,F403  fused per-tensor statistics
from .model import *  # noqa: F401,F403  model-level init
from .watch import *  # noqa: F401,F403  per-layer statistics of a model
from .integrations import materialize, patch  # noqa: E402  other libraries' models
from .integrations.patching import start_from_environment as _start_from_environment

# torch's private fan helpers, which model code calls as torch.nn.init._calculate_*
_calculate_fan_in_and_fan_out = calculate_fan_in_and_fan_out
_calculate_correct_fan = calculate_correct_fan

__all__ = [
    "__version__", "STREAM_FORMAT_VERSION",
    "Generator", "manual_seed", "default_generator",
    "get_backend", "set_backend", "available_backends",
    "calculate_gain", "calculate_fan_in_and_fan_out",
    "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
    "sparse_",
    "uniform", "normal", "constant", "eye", "dirac", "xavier_uniform", "xavier_normal",
    "kaiming_uniform", "kaiming_normal", "orthogonal", "sparse",
    "init", "patch", "materialize",
] + list(_initializers.__all__) + list(_stats.__all__) + list(_model.__all__) + list(_watch.__all__)

_start_from_environment()  # FASTINIT_PATCH=1: fastinit.patch() for the whole program
