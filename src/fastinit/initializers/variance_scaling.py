"""Variance scaling (JAX's ``jax.nn.initializers``, Keras' ``VarianceScaling``) with its presets,
and the truncated normal with bounds in units of std (timm's ``trunc_normal_tf_``, JAX's
``truncated_normal``).

>>> w = fastinit.lecun_normal_(torch.empty(256, 128))              # torch (out, in) weight
>>> k = fastinit.he_uniform_(numpy.empty((3, 3, 64, 128), numpy.float32), layout="hwio")
"""
from __future__ import annotations

import math
from typing import Any

from .. import init as _init
from ..dispatch.arguments import finite, real
from ..dispatch.fill import random_fill
from ..dispatch.target import as_target
from ..stream.keys import GeneratorLike
from ..stream.ops import (
    OP_TRUNC_NORMAL,
    OpCall,
    normal_params,
    trunc_normal_params,
    uniform_params,
)
from .layouts import fans_of_shape, shape_of

Tensor = Any  # a torch.Tensor or a numpy.ndarray


def truncated_standard_normal_std(c: float) -> float:
    """The standard deviation of N(0, 1) truncated to [-c, c]:
    sqrt(1 - 2 c pdf(c) / (Phi(c) - Phi(-c)))."""
    mass = math.erf(c / math.sqrt(2.0))
    pdf = math.exp(-0.5 * c * c) / math.sqrt(2.0 * math.pi)
    return math.sqrt(1.0 - 2.0 * c * pdf / mass)


#: The std of a standard normal truncated to [-2, 2] (0.87962566103423978...): JAX and Keras
#: divide the std by it so that the truncated normal of ``variance_scaling_`` has the requested
#: variance.
TRUNCATED_NORMAL_STD = truncated_standard_normal_std(2.0)


# --- variance scaling (JAX / Keras) -------------------------------------------------------------

_MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
_DISTRIBUTIONS = {"truncated_normal": "truncated_normal", "normal": "normal",
                  "untruncated_normal": "normal", "uniform": "uniform"}


def _variance_scaling(tensor: Tensor, scale: float, mode: str, distribution: str, layout: str,
                      generator: GeneratorLike, fn: str) -> Tensor:
    mode_key = mode.lower() if isinstance(mode, str) else mode
    if mode_key not in _MODES:
        raise ValueError(f"{fn}: mode {mode!r} not supported, please use one of {list(_MODES)}")
    dist_key = distribution.lower() if isinstance(distribution, str) else distribution
    if dist_key not in _DISTRIBUTIONS:
        raise ValueError(f"{fn}: distribution {distribution!r} not supported, please use one of "
                         f"{list(_DISTRIBUTIONS)}")
    scale = real(fn, "scale", scale)
    if not (scale > 0.0 and math.isfinite(scale)):
        raise RuntimeError(f"{fn} expects a finite scale > 0, but found scale={scale:g}")
    target = as_target(tensor, fn)
    # the fans of the whole weight: a DTensor's shape is global, its target the local shard's
    fan_in, fan_out = fans_of_shape(shape_of(tensor), layout, fn)
    if target.skip:
        return tensor
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": 0.5 * (fan_in + fan_out),
         "fan_geo_avg": math.sqrt(fan_in) * math.sqrt(fan_out)}[mode_key]
    std = math.sqrt(scale / n)
    fmt = target.fmt
    kind = _DISTRIBUTIONS[dist_key]
    if kind == "truncated_normal":
        std /= TRUNCATED_NORMAL_STD
        bound = 2.0 * std
        call = trunc_normal_params(0.0, std, -bound, bound, fmt)
    elif kind == "normal":
        bound = std
        call = normal_params(0.0, std, fmt)
    else:
        bound = math.sqrt(3.0) * std
        call = uniform_params(-bound, bound, fmt)
    if not bound <= fmt.max_finite:
        raise RuntimeError(f"{fn}: scale={scale:g} over n={n:g} gives a {kind} of scale "
                           f"{bound:g}, out of range for {fmt.name}")
    return random_fill(tensor, call, generator, fn, target=target)


def variance_scaling_(tensor: Tensor, scale: float = 1.0, mode: str = "fan_in",
                      distribution: str = "truncated_normal", *, layout: str = "torch",
                      generator: GeneratorLike = None) -> Tensor:
    r"""Fill the tensor with zero-mean values of variance ``scale / n``, as JAX's
    ``variance_scaling`` and Keras' ``VarianceScaling`` do.

    ``n`` depends on ``mode``: ``"fan_in"``, ``"fan_out"``, ``"fan_avg"`` ((fan_in + fan_out) / 2)
    or ``"fan_geo_avg"`` (sqrt(fan_in * fan_out)); the fans are read from the weight according
    to ``layout`` (default ``"torch"``: (out, in, *kernel); ``"io"``, ``"hwio"`` or ``"jax"`` for
    weights stored as JAX, Keras and NumPy code stores them; see :mod:`fastinit.layouts`).

    ``distribution``:

    - ``"truncated_normal"`` (the default, as in JAX and Keras): N(0, s^2) truncated to
      [-2 s, 2 s] with s = sqrt(scale / n) / 0.8796..., the std of a standard normal truncated to
      [-2, 2], so the variance is exactly ``scale / n``. Drawn in one pass by the inverse CDF.
    - ``"normal"`` (also ``"untruncated_normal"``, Keras' name): N(0, scale / n).
    - ``"uniform"``: U(-l, l) with l = sqrt(3 scale / n).

    Unlike TensorFlow 1, ``"normal"`` is not truncated. Zero-element and meta tensors are a no-op.

    >>> w = torch.empty(512, 256)
    >>> fastinit.variance_scaling_(w, 2.0, "fan_in", "truncated_normal")      # He, JAX-style
    >>> k = numpy.empty((3, 3, 64, 128), numpy.float32)                        # HWIO
    >>> fastinit.variance_scaling_(k, 1.0, "fan_avg", "uniform", layout="hwio", generator=0)
    """
    return _variance_scaling(tensor, scale, mode, distribution, layout, generator,
                             "variance_scaling_")


def lecun_normal_(tensor: Tensor, *, layout: str = "torch",
                  generator: GeneratorLike = None) -> Tensor:
    """LeCun normal (JAX ``lecun_normal``, Keras ``LecunNormal``): truncated normal of variance
    1 / fan_in, i.e. ``variance_scaling_(tensor, 1.0, "fan_in", "truncated_normal")``.

    >>> fastinit.lecun_normal_(torch.empty(256, 128))     # for SELU networks
    """
    return _variance_scaling(tensor, 1.0, "fan_in", "truncated_normal", layout, generator,
                             "lecun_normal_")


def lecun_uniform_(tensor: Tensor, *, layout: str = "torch",
                   generator: GeneratorLike = None) -> Tensor:
    """LeCun uniform: U(-l, l), l = sqrt(3 / fan_in), i.e.
    ``variance_scaling_(tensor, 1.0, "fan_in", "uniform")``.

    >>> fastinit.lecun_uniform_(numpy.empty((128, 256), numpy.float32), layout="io")
    """
    return _variance_scaling(tensor, 1.0, "fan_in", "uniform", layout, generator,
                             "lecun_uniform_")


def glorot_normal_(tensor: Tensor, *, layout: str = "torch",
                   generator: GeneratorLike = None) -> Tensor:
    """Glorot normal as JAX and Keras define it: a *truncated* normal of variance
    2 / (fan_in + fan_out), i.e. ``variance_scaling_(tensor, 1.0, "fan_avg",
    "truncated_normal")`` (torch's ``xavier_normal_`` is the untruncated one).

    >>> fastinit.glorot_normal_(torch.empty(256, 128))
    """
    return _variance_scaling(tensor, 1.0, "fan_avg", "truncated_normal", layout, generator,
                             "glorot_normal_")


def glorot_uniform_(tensor: Tensor, *, layout: str = "torch",
                    generator: GeneratorLike = None) -> Tensor:
    """Glorot uniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out)), i.e.
    ``variance_scaling_(tensor, 1.0, "fan_avg", "uniform")`` (the same law as torch's
    ``xavier_uniform_`` with gain 1, from a layout-aware fan).

    >>> fastinit.glorot_uniform_(torch.empty(3, 3, 16, 32), layout="hwio")
    """
    return _variance_scaling(tensor, 1.0, "fan_avg", "uniform", layout, generator,
                             "glorot_uniform_")


def he_normal_(tensor: Tensor, *, layout: str = "torch",
               generator: GeneratorLike = None) -> Tensor:
    """He normal as JAX and Keras define it: a *truncated* normal of variance 2 / fan_in, i.e.
    ``variance_scaling_(tensor, 2.0, "fan_in", "truncated_normal")`` (torch's
    ``kaiming_normal_`` is the untruncated one).

    >>> fastinit.he_normal_(torch.empty(128, 64, 3, 3))
    """
    return _variance_scaling(tensor, 2.0, "fan_in", "truncated_normal", layout, generator,
                             "he_normal_")


def he_uniform_(tensor: Tensor, *, layout: str = "torch",
                generator: GeneratorLike = None) -> Tensor:
    """He uniform: U(-l, l), l = sqrt(6 / fan_in), i.e.
    ``variance_scaling_(tensor, 2.0, "fan_in", "uniform")``.

    >>> fastinit.he_uniform_(torch.empty(128, 64, 3, 3))
    """
    return _variance_scaling(tensor, 2.0, "fan_in", "uniform", layout, generator, "he_uniform_")


# Each makes exactly one random_fill and no other write: fastinit.init_ may plan them (model/).
for _fn in (variance_scaling_, lecun_normal_, lecun_uniform_, glorot_normal_, glorot_uniform_,
            he_normal_, he_uniform_):
    _fn._fastinit_single_fill = True  # type: ignore[attr-defined]
del _fn


# --- truncated normal with bounds in units of std (timm's trunc_normal_tf_, JAX) ---------------

def trunc_normal_std_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                      b: float = 2.0, generator: GeneratorLike = None) -> Tensor:
    r"""Fill the tensor with N(mean, std^2) truncated to [mean + a std, mean + b std].

    The bounds are in units of std, as in timm's ``trunc_normal_tf_`` and JAX's
    ``truncated_normal`` (a standard normal cut to [a, b], then scaled by std and shifted by
    mean); torch's :func:`~fastinit.trunc_normal_` takes absolute bounds instead (its default
    [-2, 2] is ±2 std only when std = 1). The std is that of the untruncated normal; use
    :func:`variance_scaling_` for a truncated normal of a given variance. One pass (inverse
    CDF); every value lies inside the bounds after rounding to the tensor's dtype. ``std=0`` (or
    ``a == b``) fills with the constant ``mean`` (``mean + a std``). ``a`` and ``b`` may be
    infinite.

    >>> w = torch.empty(768, 3072, dtype=torch.bfloat16)
    >>> fastinit.trunc_normal_std_(w, std=0.02)          # values in [-0.04, 0.04]
    """
    fn = "trunc_normal_std_"
    target = as_target(tensor, fn)
    mean = finite(fn, "mean", mean)
    std = real(fn, "std", std)
    a = real(fn, "a", a)
    b = real(fn, "b", b)
    if not (std >= 0.0 and math.isfinite(std)):
        raise RuntimeError(f"{fn} expects a finite std >= 0, but found std={std:g}")
    if a > b:
        raise RuntimeError(f"{fn} expects a <= b, but found a={a:g} > b={b:g}")
    if std == 0.0 or a == b:
        value = mean + (a * std if std > 0.0 else 0.0)
        if not abs(value) <= target.fmt.max_finite:
            raise RuntimeError(f"{fn}: the constant {value:g} (mean + a std) is out of range "
                               f"for {target.fmt.name}")
        call = OpCall(OP_TRUNC_NORMAL, (), constant=value)
    else:
        call = _init._trunc_normal_call(fn, target.fmt, mean, std, mean + a * std, mean + b * std)
    return random_fill(tensor, call, generator, fn, target=target)


trunc_normal_std_._fastinit_single_fill = True  # type: ignore[attr-defined]
