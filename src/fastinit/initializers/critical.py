"""The edge of chaos: the weight scale at which a deep network of an elementwise activation sits at
the order-chaos transition (mean-field theory: Poole et al. 2016, Schoenholz et al. 2017).

>>> g = fastinit.critical_gain("tanh", sigma_b=0.05)           # 1.12253900476957...
>>> fastinit.variance_scaling_(w, scale=g ** 2, distribution="normal")
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional, Union

import numpy as np

from ..dispatch.target import torch_module


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
