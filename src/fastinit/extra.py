"""Initializers beyond torch.nn.init: those of JAX, Keras and timm, and a few from papers.

Everything here is an addition: the torch.nn.init mirror (``fastinit.init``) keeps torch's
semantics. The random functions take the same path as the mirror (one key drawn from
``generator``, one fused pass, the same values on every backend, device and thread count) and the
same inputs (torch tensors on any device, views, ``requires_grad`` parameters, meta tensors,
NumPy arrays; float16, bfloat16, float32, float64).

- :func:`variance_scaling_` and its presets :func:`lecun_normal_`, :func:`lecun_uniform_`,
  :func:`glorot_normal_`, :func:`glorot_uniform_`, :func:`he_normal_`, :func:`he_uniform_`:
  JAX's ``jax.nn.initializers`` / Keras' ``VarianceScaling`` family, with a ``layout`` so weights
  stored as (in, out) or HWIO get the right fans (:mod:`fastinit.layouts`).
- :func:`trunc_normal_std_`: the truncated normal with bounds in units of std (timm's
  ``trunc_normal_tf_``, JAX's ``truncated_normal``), beside torch's absolute-bound
  ``trunc_normal_``.
- :func:`delta_orthogonal_` (Xiao et al. 2018) and :func:`identity_`.
- :func:`critical_gain` / :func:`critical_point`: the edge-of-chaos weight scale of an
  elementwise activation (Poole et al. 2016, Schoenholz et al. 2017).

>>> import fastinit
>>> w = fastinit.lecun_normal_(torch.empty(256, 128))              # torch (out, in) weight
>>> k = fastinit.he_uniform_(numpy.empty((3, 3, 64, 128), numpy.float32), layout="hwio")
>>> fastinit.variance_scaling_(w, scale=fastinit.critical_gain("tanh", 0.05) ** 2)

See docs/initializers.md for the formulas.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional, Union

import numpy as np

from . import init as _init
from ._fill import random_fill
from ._generators import GeneratorLike
from ._stream_params import (
    OP_TRUNC_NORMAL,
    OpCall,
    normal_params,
    trunc_normal_params,
    uniform_params,
)
from ._target import as_target, is_tensor, torch_module
from .layouts import LAYOUT_NAMES, calculate_fans, fans_of_shape, resolve_layout, shape_of

__all__ = [
    "variance_scaling_", "lecun_normal_", "lecun_uniform_", "glorot_normal_", "glorot_uniform_",
    "he_normal_", "he_uniform_", "trunc_normal_std_", "delta_orthogonal_", "identity_",
    "critical_gain", "critical_point", "CriticalPoint", "calculate_fans", "LAYOUT_NAMES",
    "TRUNCATED_NORMAL_STD",
]

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


# --- argument checks (all before any key is drawn) --------------------------------------------

def _real(fn: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        try:
            value = float(value)  # 0-d tensors and arrays
        except (TypeError, ValueError):
            raise TypeError(f"{fn}: {name} must be a real number, got "
                            f"{type(value).__name__}") from None
    value = float(value)
    if math.isnan(value):
        raise RuntimeError(f"{fn} expects {name} to be a number, but found {name}=nan")
    return value


def _finite(fn: str, name: str, value: Any) -> float:
    value = _real(fn, name, value)
    if not math.isfinite(value):
        raise RuntimeError(f"{fn} expects a finite {name}, but found {name}={value}")
    return value


def _whole_dtensor(tensor: Tensor, fill: Callable[[Any], Any]) -> bool:
    """Whole-tensor initializers fill a DTensor by computing the whole tensor on every rank and
    keeping the local part (fastinit.sharding.fill_via_full); True when it did so."""
    from .sharding import fill_via_full, is_dtensor
    if not is_dtensor(tensor):
        return False
    fill_via_full(tensor, fill)
    return True


def _permuted(tensor: Tensor, order: tuple[int, ...]) -> Tensor:
    """A view of the tensor with its dimensions in `order` (writes go through)."""
    if is_tensor(tensor):
        return tensor.permute(*order)
    return np.transpose(tensor, order)


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
    scale = _real(fn, "scale", scale)
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


# Each makes exactly one random_fill and no other write: fastinit.init_ may plan them (model.py).
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
    mean = _finite(fn, "mean", mean)
    std = _real(fn, "std", std)
    a = _real(fn, "a", a)
    b = _real(fn, "b", b)
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


# --- structured initializers: delta-orthogonal and identity -----------------------------------

def delta_orthogonal_(tensor: Tensor, gain: float = 1.0, generator: GeneratorLike = None, *,
                      layout: str = "torch") -> Tensor:
    """Delta-orthogonal initialization of a convolution (Xiao et al. 2018): every kernel tap is
    zero except the spatial centre (index ``k // 2`` of each kernel dimension), which holds an
    (out, in) matrix with orthonormal columns times ``gain``.

    A convolution with this weight maps each pixel's channel vector through the same isometry,
    so it preserves norms exactly (times gain): the initialization that lets CNNs of 10,000
    layers train without skip connections or normalization. Needs out_channels >= in_channels.
    The centre matrix is ``orthogonal_(torch.empty(out, in), gain, generator)``: the same values,
    float32 QR for float16/bfloat16. ``layout`` says where out, in and the kernel are
    (``"hwio"`` for a JAX/Keras convolution kernel).

    >>> fastinit.delta_orthogonal_(torch.empty(64, 32, 3, 3), gain=fastinit.calculate_gain("tanh"))
    >>> fastinit.delta_orthogonal_(numpy.empty((3, 3, 32, 64)), layout="hwio", generator=7)
    """
    fn = "delta_orthogonal_"
    shape = shape_of(tensor)
    if len(shape) < 3:
        raise ValueError(f"{fn}: only tensors with 3 or more dimensions (a convolution weight) "
                         "are supported; use orthogonal_ for a 2-D weight")
    axes = resolve_layout(layout, len(shape), fn)
    out_ch, in_ch = shape[axes.out_axis], shape[axes.in_axis]
    if out_ch < in_ch:
        raise ValueError(f"{fn}: needs out_channels >= in_channels (an orthogonal centre with "
                         f"orthonormal columns), got out={out_ch}, in={in_ch}")
    gain = _finite(fn, "gain", gain)
    if _whole_dtensor(tensor, lambda full: delta_orthogonal_(full, gain, generator, layout=layout)):
        return tensor
    target = as_target(tensor, fn)
    if target.skip:
        return tensor
    view = _permuted(tensor, axes.to_torch_order)  # (out, in, *kernel)
    centre = (slice(None), slice(None)) + tuple(int(n) // 2 for n in view.shape[2:])
    if target.is_torch:
        torch = torch_module()
        centre_matrix = torch.empty((out_ch, in_ch), dtype=tensor.dtype, device=tensor.device)
        _init.orthogonal_(centre_matrix, gain, generator)
        with torch.no_grad():
            view.zero_()
            view[centre] = centre_matrix
        return tensor
    centre_matrix = np.empty((out_ch, in_ch), dtype=tensor.dtype)
    _init.orthogonal_(centre_matrix, gain, generator)
    view[...] = 0
    view[centre] = centre_matrix
    return tensor


def identity_(tensor: Tensor, gain: float = 1.0, groups: int = 1, *,
              layout: str = "torch") -> Tensor:
    """Fill a 2-D or convolution weight with the identity map times ``gain``.

    With the weight read as (out, in, *kernel) (see ``layout``), every element is zero except
    ``W[g * out_per_group + d, d, *centre] = gain`` for each group g and d < min(out_per_group,
    in), where out_per_group = out / groups and centre is ``k // 2`` in each kernel dimension.
    Hence a 2-D weight gets ``gain * eye(out, in)`` (torch's ``eye_``) and a 3-D, 4-D, 5-D (or
    higher) weight the Dirac delta of torch's ``dirac_(tensor, groups)``: a linear layer or a
    ('same'-padded, odd-kernel) convolution that passes its input through, scaled by gain, as in
    identity-initialized RNNs (Le et al. 2015) and residual-free deep nets. Any dtype, as torch's
    ``eye_`` and ``dirac_``; no randomness.

    >>> fastinit.identity_(torch.empty(256, 256))                  # eye
    >>> fastinit.identity_(torch.empty(64, 16, 3, 3), groups=4)    # dirac_, 4 groups
    >>> fastinit.identity_(numpy.empty((3, 3, 32, 32)), gain=0.5, layout="hwio")
    """
    fn = "identity_"
    shape = shape_of(tensor)
    if len(shape) < 2:
        raise ValueError(f"{fn}: only tensors with 2 or more dimensions are supported")
    axes = resolve_layout(layout, len(shape), fn)
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive integer, got {groups!r}")
    out_ch, in_ch = shape[axes.out_axis], shape[axes.in_axis]
    if out_ch % groups != 0:
        raise ValueError(f"{fn}: the out dimension (dim {axes.out_axis}, size {out_ch}) must be "
                         f"divisible by groups={groups}")
    gain = _finite(fn, "gain", gain)
    if _whole_dtensor(tensor, lambda full: identity_(full, gain, groups, layout=layout)):
        return tensor
    torch = torch_module() if is_tensor(tensor) else None
    if torch is None:
        _init._writable_array(tensor, fn)
    elif tensor.is_meta:
        return tensor
    if math.prod(shape) == 0:
        return tensor
    per_group = out_ch // int(groups)
    diag = min(per_group, in_ch)
    rows = (np.arange(int(groups))[:, None] * per_group + np.arange(diag)[None, :]).ravel()
    cols = np.tile(np.arange(diag), int(groups))
    view = _permuted(tensor, axes.to_torch_order)
    centre = tuple(int(n) // 2 for n in view.shape[2:])
    if torch is not None:
        with torch.no_grad():
            view.zero_()
            if rows.size:
                index = (torch.from_numpy(rows).to(tensor.device),
                         torch.from_numpy(cols).to(tensor.device)) + centre
                view[index] = gain
        return tensor
    view[...] = 0
    if rows.size:
        view[(rows, cols) + centre] = gain
    return tensor


# --- critical gain: the edge of chaos (mean-field theory of deep networks) --------------------

class CriticalPoint(NamedTuple):
    """The edge-of-chaos point of an activation: the weight scale ``sigma_w`` (weights of
    variance sigma_w^2 / fan_in) and the fixed point ``q_star`` of the pre-activation variance.
    ``q_star`` is 0.0 when the point is the limit q* -> 0 (odd activations such as tanh at
    sigma_b = 0) and nan when every q is a fixed point (relu, linear at sigma_b = 0)."""

    sigma_w: float
    q_star: float


ActivationLike = Union[str, Callable[[np.ndarray], np.ndarray]]

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SELU_LAMBDA = 1.0507009873554804934193349852946
_SELU_ALPHA = 1.6732632423543772848170429916717
_erf_ufunc = np.frompyfunc(math.erf, 1, 1)
_erfc_ufunc = np.frompyfunc(math.erfc, 1, 1)


def _erf(x: np.ndarray) -> np.ndarray:
    return np.asarray(_erf_ufunc(x), dtype=np.float64)


def _ndtr(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.asarray(_erfc_ufunc(-x * math.sqrt(0.5)), dtype=np.float64)


def _sech2(x: np.ndarray) -> np.ndarray:
    """sech(x)^2 = 1 - tanh(x)^2, without cancellation or overflow."""
    e = np.exp(-2.0 * np.abs(x))
    return 4.0 * e / (1.0 + e) ** 2


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _leaky(slope: float) -> tuple[Callable, Callable]:
    return (lambda x: np.where(x > 0, x, slope * x),
            lambda x: np.where(x > 0, 1.0, slope))


def _elu(alpha: float, lam: float = 1.0) -> tuple[Callable, Callable]:
    return (lambda x: lam * np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0))),
            lambda x: lam * np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0))))


def _gelu_tanh() -> tuple[Callable, Callable]:
    c = 0.044715

    def phi(x):
        return 0.5 * x * (1.0 + np.tanh(_SQRT_2_OVER_PI * (x + c * x**3)))

    def dphi(x):
        u = _SQRT_2_OVER_PI * (x + c * x**3)
        return (0.5 * (1.0 + np.tanh(u))
                + 0.5 * x * _sech2(u) * _SQRT_2_OVER_PI * (1.0 + 3.0 * c * x * x))
    return phi, dphi


def _activation_param(name: str, param: Any) -> float:
    if isinstance(param, bool) or not isinstance(param, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(param)):
        raise ValueError(f"critical_gain: {name} {param!r} not a valid number")
    return float(param)


_LINEAR_NAMES = ("linear", "identity", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                 "conv_transpose2d", "conv_transpose3d")


def _named_activation(name: str, param: Optional[float]) -> tuple[Callable, Callable]:
    if name in _LINEAR_NAMES:
        return (lambda x: x), (lambda x: np.ones_like(x))
    if name == "relu":
        return _leaky(0.0)
    if name == "leaky_relu":
        slope = 0.01 if param is None else _activation_param("negative_slope", param)
        return _leaky(slope)
    if name == "tanh":
        return np.tanh, _sech2
    if name == "sigmoid":
        return _sigmoid, (lambda x: 0.25 * _sech2(0.5 * x))
    if name == "erf":
        return _erf, (lambda x: (2.0 / math.sqrt(math.pi)) * np.exp(-x * x))
    if name == "selu":
        return _elu(_SELU_ALPHA, _SELU_LAMBDA)
    if name == "elu":
        return _elu(1.0 if param is None else _activation_param("alpha", param))
    if name == "gelu":
        return ((lambda x: x * _ndtr(x)),
                (lambda x: _ndtr(x) + x * _INV_SQRT_2PI * np.exp(-0.5 * x * x)))
    if name == "gelu_tanh":
        return _gelu_tanh()
    if name in ("silu", "swish"):
        return ((lambda x: x * _sigmoid(x)),
                (lambda x: _sigmoid(x) + x * 0.25 * _sech2(0.5 * x)))
    if name == "softplus":
        return (lambda x: np.logaddexp(0.0, x)), _sigmoid
    raise ValueError(f"critical_gain: unsupported activation {name!r}; use one of "
                     f"{sorted(_ACTIVATION_NAMES)} or pass a NumPy-vectorised function")


_ACTIVATION_NAMES = set(_LINEAR_NAMES) | {"relu", "leaky_relu", "tanh", "sigmoid", "erf", "selu",
                                          "elu", "gelu", "gelu_tanh", "silu", "swish",
                                          "softplus"}


def _as_numpy_function(f: Callable, what: str) -> Callable[[np.ndarray], np.ndarray]:
    """f as a float64 NumPy function; functions of torch tensors (torch.tanh, nn.GELU()) are
    wrapped."""
    probe = np.linspace(-1.0, 1.0, 5)

    def direct(x):
        return np.asarray(f(x), dtype=np.float64)

    def via_torch(x):
        torch = torch_module()
        with torch.no_grad():
            y = f(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)))
        return np.asarray(y.detach().cpu().numpy(), dtype=np.float64)

    try:
        candidate, result = direct, direct(probe)
    except Exception as exc:  # noqa: BLE001 - maybe a function of torch tensors
        if torch_module() is None:
            raise TypeError(f"critical_gain: the {what} failed on a NumPy array: {exc}") from exc
        try:
            candidate, result = via_torch, via_torch(probe)
        except Exception:  # noqa: BLE001
            raise TypeError(f"critical_gain: the {what} failed on a NumPy array and on a torch "
                            f"tensor: {exc}") from exc
    if np.shape(result) != probe.shape:
        raise TypeError(f"critical_gain: the {what} must be elementwise (an array of the "
                        f"input's shape), got shape {np.shape(result)} for shape (5,)")
    return candidate


def _numeric_derivative(phi: Callable[[np.ndarray], np.ndarray]) -> Callable:
    """phi' by the 5-point central difference; the stencil never crosses 0, so activations
    with a kink at 0 (relu, selu, ...) get their one-sided derivatives exactly."""
    def dphi(x):
        ax = np.abs(x)
        h = 1e-3 * np.maximum(ax, 1.0)
        h = np.where(ax > 2.0 * h, h, np.where(ax > 0, 0.25 * ax, h))
        return (phi(x - 2 * h) - 8.0 * phi(x - h) + 8.0 * phi(x + h) - phi(x + 2 * h)) / (12.0 * h)
    return dphi


_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(12)
_Q_GRID = np.logspace(-12.0, 8.0, 161)  # the fixed points searched: q* in [1e-12, 1e8]
_Q_ZERO = 1e-24                          # "q -> 0"
_TOL = 1e-9                              # |q - f/g| below _TOL * q counts as zero


def _gaussian_rule(q: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes x and weights w with sum(w h(x)) = E[h(X)], X ~ N(0, q), for h smooth on each
    side of 0: composite 12-point Gauss-Legendre on [-10 s, 10 s] (s = sqrt(q)), panels at most
    s/4 wide (resolving the Gaussian) and at most max(1/4, |x|/4) (resolving an activation's
    features at |x| ~ 1), one breakpoint at 0 (the kink of relu-like activations). Accurate to
    rounding for q from 1e-24 to 1e8, where Gauss-Hermite loses digits at kinks and at large q."""
    s = math.sqrt(q)
    edge, breaks = 10.0 * s, [0.0]
    while breaks[-1] < edge:
        b = breaks[-1]
        breaks.append(min(b + min(0.25 * s, max(0.25, 0.25 * b)), edge))
    half_line = np.asarray(breaks)
    b = np.concatenate([-half_line[:0:-1], half_line])
    mid, half = 0.5 * (b[1:] + b[:-1]), 0.5 * (b[1:] - b[:-1])
    x = (mid[:, None] + half[:, None] * _GL_NODES).ravel()
    density = np.exp(-0.5 * x * x / q) / math.sqrt(2.0 * math.pi * q)
    w = (half[:, None] * _GL_WEIGHTS).ravel() * density
    return x, w


class _Moments:
    """f(q) = E[phi(sqrt(q) z)^2] and g(q) = E[phi'(sqrt(q) z)^2], z ~ N(0, 1)."""

    def __init__(self, phi: Callable, dphi: Callable, label: str) -> None:
        self.phi, self.dphi, self.label = phi, dphi, label

    def __call__(self, qs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rules = [_gaussian_rule(float(q)) for q in qs]
        x = np.concatenate([r[0] for r in rules])
        w = np.concatenate([r[1] for r in rules])
        seg = np.repeat(np.arange(len(qs)), [len(r[0]) for r in rules])
        with np.errstate(over="ignore", invalid="ignore"):
            p, d = self.phi(x), self.dphi(x)
        bad = ~(np.isfinite(p) & np.isfinite(d))
        if bad.any():
            raise ValueError(f"critical_gain: {self.label} or its derivative is not finite at "
                             f"x={float(x[bad][0]):g} (the search covers |x| up to 1e5)")
        f = np.bincount(seg, weights=w * p * p, minlength=len(qs))
        g = np.bincount(seg, weights=w * d * d, minlength=len(qs))
        return f, g


def _residual(moments: _Moments, qs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """H(q) = q - f(q) / g(q): at chi_1 = 1 (sigma_w^2 = 1 / g) the fixed-point equation
    reads H(q) = sigma_b^2. Returns (H, g)."""
    f, g = moments(qs)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(g > 0, qs - f / np.where(g > 0, g, 1.0), -np.inf)
    return h, g


def critical_point(activation: ActivationLike, sigma_b: float = 0.0, *,
                   param: Optional[float] = None,
                   derivative: Optional[Callable[[np.ndarray], np.ndarray]] = None
                   ) -> CriticalPoint:
    r"""The edge-of-chaos point (sigma_w, q*) of an elementwise activation phi.

    In a deep network with weights of variance sigma_w^2 / fan_in and biases of variance
    sigma_b^2, the pre-activation variance converges to a fixed point
    q* = sigma_w^2 E[phi(sqrt(q*) z)^2] + sigma_b^2 (z ~ N(0, 1)), and signals and gradients
    neither vanish nor explode exactly when chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2] = 1
    (Poole et al. 2016; Schoenholz et al. 2017). This solves both equations: with
    f(q) = E[phi^2], g(q) = E[phi'^2], it finds the smallest root of q - f(q)/g(q) = sigma_b^2
    for q in [1e-12, 1e8] (scan, then bisection), and sigma_w = 1 / sqrt(g(q*)). Expectations
    are computed to rounding by Gaussian quadrature (see ``_gaussian_rule``).

    Special cases: when q - f/g vanishes for every q (positively homogeneous phi: linear, relu,
    leaky_relu) the critical point exists only for sigma_b = 0, at every q (``q_star`` nan);
    when sigma_b = 0, phi(0) = 0 and there is no root (tanh, erf), the critical point is the
    limit q* -> 0, sigma_w = 1 / |phi'(0)| (``q_star`` 0.0). Otherwise, without a root, a
    ValueError says that no critical point exists.

    ``activation``: a name (``"linear"``, ``"relu"``, ``"leaky_relu"`` (``param`` = negative
    slope, default 0.01), ``"tanh"``, ``"sigmoid"``, ``"erf"``, ``"selu"``, ``"elu"``
    (``param`` = alpha, default 1), ``"gelu"`` (exact), ``"gelu_tanh"``, ``"silu"``/``"swish"``,
    ``"softplus"``) or an elementwise function of a float64 NumPy array (a function of torch
    tensors, e.g. ``torch.nn.functional.gelu``, is wrapped). For a function, phi' is
    ``derivative`` if given, else a 5-point central difference (exact one-sided derivatives at
    a kink at 0; a kink elsewhere costs accuracy, so pass ``derivative`` then). ``param`` is
    ignored by activations without one, as in :func:`calculate_gain`.

    >>> fastinit.critical_point("tanh", sigma_b=0.3)
    CriticalPoint(sigma_w=1.39558397515490..., q_star=0.76347476691046...)
    >>> fastinit.critical_point("relu")         # He et al.: any q* at sigma_b = 0
    CriticalPoint(sigma_w=1.41421356237309..., q_star=nan)
    """
    try:
        sigma_b = float(sigma_b)
    except (TypeError, ValueError):
        raise TypeError("critical_gain: sigma_b must be a real number, got "
                        f"{type(sigma_b).__name__}") from None
    if not (sigma_b >= 0.0 and math.isfinite(sigma_b)):
        raise ValueError(f"critical_gain: sigma_b must be finite and >= 0, got {sigma_b}")
    if isinstance(activation, str):
        name = activation.lower()
        phi, dphi = _named_activation(name, param)
        label = repr(activation)
    elif callable(activation):
        phi = _as_numpy_function(activation, "activation")
        dphi = (_numeric_derivative(phi) if derivative is None
                else _as_numpy_function(derivative, "derivative"))
        label = getattr(activation, "__name__", type(activation).__name__)
    else:
        raise TypeError("critical_gain: activation must be a name or a function, got "
                        f"{type(activation).__name__}")
    moments = _Moments(phi, dphi, label)
    qs = _Q_GRID
    h, g = _residual(moments, qs)
    if np.all(np.abs(h) <= _TOL * qs):
        if sigma_b == 0.0:
            return CriticalPoint(float(1.0 / np.sqrt(np.median(g))), math.nan)
        raise ValueError(
            f"critical_gain: {label} is positively homogeneous: at chi_1 = 1 every q is a fixed "
            f"point without bias and none with sigma_b={sigma_b:g} > 0; its only critical point "
            "is sigma_b = 0")
    residual = h - sigma_b * sigma_b
    sign = np.where(np.abs(residual) <= _TOL * qs, 0, np.sign(residual))
    known = np.nonzero(sign)[0]
    changes = np.nonzero(sign[known[:-1]] != sign[known[1:]])[0]
    if changes.size:
        lo, hi = known[changes[0]], known[changes[0] + 1]
        q_star = _bisect_log(moments, sigma_b, qs[lo], qs[hi], sign[lo])
        _, g_star = moments(np.array([q_star]))
        return CriticalPoint(float(1.0 / math.sqrt(g_star[0])), float(q_star))
    scale = math.sqrt(max(float(moments(np.array([1.0]))[0][0]), 1e-300))
    phi0 = float(np.asarray(phi(np.zeros(1)), dtype=np.float64)[0])
    if sigma_b == 0.0 and abs(phi0) <= 1e-12 * scale:
        _, g0 = moments(np.array([_Q_ZERO]))
        if g0[0] > 0:
            return CriticalPoint(float(1.0 / math.sqrt(g0[0])), 0.0)
    where = ""
    if known.size:
        where = (f": at chi_1 = 1, q - E[phi^2]/E[phi'^2] - sigma_b^2 keeps the sign "
                 f"{'+' if sign[known[0]] > 0 else '-'} for q in [1e-12, 1e8], so no fixed point "
                 "q* lies there")
    raise ValueError(f"critical_gain: {label} has no edge-of-chaos point with "
                     f"sigma_b={sigma_b:g}{where}")


def _bisect_log(moments: _Moments, sigma_b: float, q_lo: float, q_hi: float,
                sign_lo: float) -> float:
    """The root of q - f/g - sigma_b^2 in [q_lo, q_hi] (opposite signs), by bisection on
    log q to a relative width of 1e-15."""
    lo, hi = math.log(q_lo), math.log(q_hi)
    for _ in range(100):
        if hi - lo <= 1e-15 * max(1.0, abs(lo)):
            break
        mid = 0.5 * (lo + hi)
        h, _ = _residual(moments, np.array([math.exp(mid)]))
        if np.sign(h[0] - sigma_b * sigma_b) == sign_lo:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


def critical_gain(activation: ActivationLike, sigma_b: float = 0.0, *,
                  param: Optional[float] = None,
                  derivative: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> float:
    """The edge-of-chaos weight scale sigma_w of an activation (mean-field chi_1 = 1,
    Schoenholz et al. 2017): :func:`critical_point` ``(...).sigma_w``.

    Weights of std sigma_w / sqrt(fan_in) (and biases of std sigma_b) put a deep network at the
    order-chaos transition, where signals and gradients propagate furthest. Use it as the gain
    of a fan-in initializer or of an orthogonal one:

    >>> g = fastinit.critical_gain("tanh", sigma_b=0.05)           # 1.12253900476957...
    >>> fastinit.variance_scaling_(w, scale=g ** 2, distribution="normal")  # std g/sqrt(fan_in)
    >>> fastinit.orthogonal_(w, gain=g)
    >>> fastinit.delta_orthogonal_(conv.weight, gain=g)
    >>> fastinit.critical_gain("tanh")      # 1.0: the limit q* -> 0
    """
    return critical_point(activation, sigma_b, param=param, derivative=derivative).sigma_w
