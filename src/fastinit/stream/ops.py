"""Per-call constants of the stream operations, computed once on the host in float64.

Both backends (the compiled core and the NumPy path) receive exactly these numbers, so the
host-side arithmetic is defined once. Layouts (the `params` of a fill request):

    uniform:       [step, start, lo, hi]   (clamp after rounding: the dtype's values in [a, b))
    normal:        [mean, std, lo, hi]   (clamp after rounding; infinite for normal_)
    trunc_normal:  [c_lo, m_lo, c_hi, m_hi, t0, log_t0, mean, std, lo, hi, far, central_only]
    constant:      [value]   (not a stream op: the core writes a constant in a batched call)

See docs/stream-format.md for the meaning of each constant.
"""
from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .dtypes import FloatFormat

OP_UNIFORM = 0
OP_NORMAL = 1
OP_TRUNC_NORMAL = 2
OP_CONSTANT = 3

# Bits of resolution of the uniform draw per family, and of the truncated normal's draw.
_UNIFORM_BITS = {"f32": 24, "f64": 52}
_OPEN_UNIFORM_MIN = {"f32": 2.0**-24, "f64": 2.0**-53}
# The tail polynomial covers sqrt(w) up to this; beyond, the far piece is needed.
_FAR_SW = {"f32": 4.0, "f64": 6.0}


@dataclass(frozen=True)
class OpCall:
    op: int
    params: tuple[float, ...]
    constant: float | None = None  # set when the call degenerates to a constant fill
    # whether the core draws stream values for it (not a constant fill)
    stream: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stream", self.constant is None and self.op != OP_CONSTANT)


_CALLS: dict = {}


def _memoized(make: Callable[..., OpCall]) -> Callable[..., OpCall]:
    """make(*numbers, fmt), cached: a pure function of its arguments, and OpCall is frozen.
    Zeros are told apart by sign (0.0 == -0.0, but their calls can differ in a sign bit); an
    argument that is not a float, or is NaN, is not cached. (Two numbers, the common case of
    the per-call path, without building a sign tuple.)"""
    copysign = math.copysign

    def store(key: tuple, args: tuple) -> OpCall:
        for v in args[:-1]:
            if type(v) is not float or v != v:
                return make(*args)
        call = make(*args)
        if len(_CALLS) >= 4096:
            _CALLS.clear()
        _CALLS[key] = call
        return call

    @functools.wraps(make)
    def cached2(a: Any, b: Any, fmt: FloatFormat) -> OpCall:
        key = (make, a, b, fmt, a == 0.0 and copysign(1.0, a), b == 0.0 and copysign(1.0, b))
        call = _CALLS.get(key)
        return call if call is not None else store(key, (a, b, fmt))

    @functools.wraps(make)
    def cached(*args: Any) -> OpCall:
        key = (make, args, tuple([v == 0.0 and copysign(1.0, v) for v in args[:-1]]))
        call = _CALLS.get(key)
        return call if call is not None else store(key, args)

    if len(inspect.signature(make).parameters) == 3:
        return cached2
    return cached


@_memoized
def uniform_params(a: float, b: float, fmt: FloatFormat) -> OpCall:
    """a + (k + 1/2) (b - a) / 2^bits for a uniform integer k of `bits` bits, rounded to fmt and
    clamped to fmt's values in [a, b), torch's range for uniform_ (none when no value of fmt lies
    there: the values are then the nearest ones, as rounding gives them). a == b: the constant
    a, rounded."""
    if a == b:
        return OpCall(OP_UNIFORM, (), constant=float(fmt.round([a])[0]))
    bits = _UNIFORM_BITS[fmt.family]
    step = (b - a) * 2.0**-bits
    lo, hi = fmt.inside(a, b)
    if hi == b:  # b itself is excluded
        hi = fmt.next_down(b)
    if lo > hi:
        lo, hi = -math.inf, math.inf
    return OpCall(OP_UNIFORM, (step, a + 0.5 * step, lo, hi))


def constant_params(value: Any, fmt: FloatFormat) -> Optional[OpCall]:
    """The core's constant op for torch's ``fill_(value)`` on a tensor of format fmt, or None
    where the core would not give torch's result: torch rounds the value to float32 first, then
    to a 16-bit format (so does the core), raises for a finite value beyond the format's range,
    converts large ints without the float64 step, and has its own NaN bits."""
    if type(value) is int or type(value) is bool:
        if abs(value) > 2**53:
            return None
        value = float(value)
    elif type(value) is not float:
        return None
    if math.isnan(value) or (math.isfinite(value) and abs(value) > fmt.max_finite):
        return None
    return OpCall(OP_CONSTANT, (value,))


@_memoized
def normal_params(mean: float, std: float, fmt: FloatFormat) -> OpCall:
    return OpCall(OP_NORMAL, (float(mean), float(std), -math.inf, math.inf))


# The largest |z| the normal op can produce (radius of its smallest u1): 6.66 (f32), 8.57 (f64).
NORMAL_REACH = {"f32": math.sqrt(-2.0 * math.log(2.0**-32)), "f64": math.sqrt(-2.0 * math.log(2.0**-53))}
# Where the central piece of the quantile ends, less a margin for rounding of w in the kernel.
_CENTRAL_ONLY_W = {"f32": 5.0 - 1e-3, "f64": 6.25 - 1e-6}


_SQRT_HALF = math.sqrt(0.5)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def ndtr(x: float) -> float:
    """Standard normal CDF, accurate in relative terms for x <= 0."""
    return 0.5 * math.erfc(-x * _SQRT_HALF)


def log_ndtr_upper(x: float) -> float:
    """log(1 - Phi(x)) for x >= 0, without underflow for large x."""
    if x < 30.0:
        return math.log(0.5 * math.erfc(x * _SQRT_HALF))
    inv2 = 1.0 / (x * x)
    series = 1.0 - inv2 * (1.0 - 3.0 * inv2 * (1.0 - 5.0 * inv2 * (1.0 - 7.0 * inv2)))
    return -0.5 * x * x - math.log(x) - _HALF_LOG_2PI + math.log(series)


@_memoized
def trunc_normal_params(mean: float, std: float, a: float, b: float, fmt: FloatFormat) -> OpCall:
    """Constants of the inverse-CDF truncated normal (csrc/common/distributions.h)."""
    lo, hi = fmt.inside(a, b)
    if a == b:
        return OpCall(OP_TRUNC_NORMAL, (), constant=float(fmt.round([a])[0]))
    alpha, beta = (a - mean) / std, (b - mean) / std
    if min(-alpha, beta) > NORMAL_REACH[fmt.family]:
        # Both bounds beyond any value the normal op can produce: the truncation removes no
        # reachable value, so the values are the normal op's (rounded, then clamped).
        return OpCall(OP_NORMAL, (float(mean), float(std), lo, hi))
    never = 2.0  # a side whose tail mass is never the smaller one
    if alpha >= 0.0:  # upper side only: t = Phi_c(z) from Phi_c(alpha) down to Phi_c(beta)
        log_t0 = log_ndtr_upper(alpha)
        rho = math.exp(log_ndtr_upper(beta) - log_t0) if math.isfinite(beta) else 0.0
        c_lo, m_lo, c_hi, m_hi = never, 0.0, rho, 1.0 - rho
    elif beta <= 0.0:  # lower side only, the mirror image
        log_t0 = log_ndtr_upper(-beta)
        rho = math.exp(log_ndtr_upper(-alpha) - log_t0) if math.isfinite(alpha) else 0.0
        c_lo, m_lo, c_hi, m_hi = rho, 1.0 - rho, never, 0.0
    else:  # the interval contains the mean: both sides, T0 = 1
        log_t0 = 0.0
        p_lo, q_hi = ndtr(alpha), ndtr(-beta)
        mass = 1.0 - p_lo - q_hi
        c_lo, m_lo, c_hi, m_hi = p_lo, mass, q_hi, mass
    t0 = math.exp(log_t0)
    # Smallest tail mass any draw can reach, to decide whether the far piece is needed.
    u_min = _OPEN_UNIFORM_MIN[fmt.family]
    g_min = min(c_lo + u_min * m_lo, c_hi + u_min * m_hi)
    t_min = t0 * g_min
    w_max = -(log_t0 + math.log(4.0 * g_min * (1.0 - t_min)))
    far = 1.0 if math.sqrt(max(w_max, 0.0)) > _FAR_SW[fmt.family] else 0.0
    # An implementation hint, not part of the format: no draw leaves the central piece.
    central_only = 1.0 if w_max < _CENTRAL_ONLY_W[fmt.family] else 0.0
    return OpCall(OP_TRUNC_NORMAL, (c_lo, m_lo, c_hi, m_hi, t0, log_t0, float(mean), float(std),
                                    lo, hi, far, central_only))
