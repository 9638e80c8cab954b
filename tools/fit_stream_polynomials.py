"""Fit the polynomials of random-stream format v1 and write them out.

The coefficients are part of the stream format: changing one changes users' weights. This script
documents where they come from and regenerates them bit for bit (it is deterministic); it needs
mpmath and is not part of the package. Run from the repository root:

    python tools/fit_stream_polynomials.py            # print the error report
    python tools/fit_stream_polynomials.py --write    # rewrite the two coefficient files

Each approximant is a polynomial in a shifted variable, fitted by Lawson's iteratively
reweighted least squares for minimax relative error (mpmath, 50 digits) on Chebyshev-spaced
points, then rounded to the working precision. The report gives the maximum relative error of
the rounded polynomial evaluated in exact arithmetic (the rounding of the Horner steps adds at most
a few units in the last place; tests/test_transforms.py measures the end-to-end error).
"""
from __future__ import annotations

import argparse
import struct
from dataclasses import dataclass
from typing import Callable

import mpmath as mp

mp.mp.dps = 50


@dataclass(frozen=True)
class Approximant:
    name: str          # identifier used in C++ and Python
    doc: str           # what the polynomial approximates
    f: Callable        # target function of the raw variable
    lo: float          # fitted range of the raw variable
    hi: float
    shift: float       # Horner runs in (raw - shift); shift is exactly representable
    degree: int
    precision: str     # "f32" or "f64"


def _g_central(w):
    """erfinv(x)/x with x = sqrt(1 - exp(-w)); sqrt(2) folded in, so x*g = -Phi^-1(t)."""
    if w == 0:
        return mp.sqrt(2) * mp.sqrt(mp.pi) / 2
    x = mp.sqrt(-mp.expm1(-w))
    return mp.sqrt(2) * mp.erfinv(x) / x


def _zmag_from_w(w):
    """-Phi^-1(t) where 4t(1-t) = exp(-w), solved in log space (valid for huge w)."""
    e = mp.exp(-w)
    log_t = -w - mp.log(2 * (1 + mp.sqrt(1 - e)))
    return mp.findroot(lambda z: mp.log(mp.erfc(z / mp.sqrt(2)) / 2) - log_t, mp.sqrt(2 * w))


def _g_tail(sw):
    w = sw * sw
    x = mp.sqrt(-mp.expm1(-w))
    return _zmag_from_w(w) / x if w > 40 else _g_central(w)


def _h_extended(y):
    """g(w) * y with y = 1/sqrt(w): tends to sqrt(2) as w grows."""
    return _g_tail(1 / y) * y


def _log1p_f32_tail(f):
    return (mp.log1p(f) - f) / (f * f) if f != 0 else mp.mpf(-0.5)


def _atanh_series(y):
    """Q(y) with 2*atanh(s) = 2s + s^3 Q(s^2)."""
    if y == 0:
        return mp.mpf(2) / 3
    s = mp.sqrt(y)
    return (2 * mp.atanh(s) - 2 * s) / (s * y)


def _sin2pi(y):
    if y == 0:
        return 2 * mp.pi
    v = mp.sqrt(y)
    return mp.sin(2 * mp.pi * v) / v


def _cos2pi(y):
    return mp.cos(2 * mp.pi * mp.sqrt(y))


SQRT_HALF = mp.sqrt(mp.mpf(0.5))

APPROXIMANTS = [
    # float32 family (float32, float16, bfloat16 outputs)
    Approximant("LOG1P_F32", "(log1p(f) - f) / f^2, f = m - 1, m in [sqrt(1/2), sqrt(2))",
                _log1p_f32_tail, SQRT_HALF - 1, mp.sqrt(2) - 1, 0.0, 7, "f32"),
    Approximant("SIN2PI_F32", "sin(2 pi v) / v as a polynomial in y = v^2, |v| <= 1/8",
                _sin2pi, 0.0, 1 / 64, 0.0, 3, "f32"),
    Approximant("COS2PI_F32", "cos(2 pi v) as a polynomial in y = v^2, |v| <= 1/8",
                _cos2pi, 0.0, 1 / 64, 0.0, 4, "f32"),
    Approximant("NDTRI_CENTRAL_F32", "sqrt(2) erfinv(x)/x in w = -log(1 - x^2), w < 5",
                _g_central, 0.0, 5.0, 2.5, 9, "f32"),
    Approximant("NDTRI_TAIL_F32", "sqrt(2) erfinv(x)/x in sw = sqrt(w), sqrt(5) <= sw <= 4.05",
                _g_tail, mp.sqrt(5), 4.05, 3.0, 9, "f32"),
    Approximant("NDTRI_FAR_F32", "sqrt(2) erfinv(x)/(x sw) in y = 1/sw, 4 <= sw <= 40",
                _h_extended, 1 / mp.mpf(40), 0.25, 0.0, 8, "f32"),
    # float64 family
    Approximant("ATANH_F64", "(2 atanh(s) - 2s) / s^3 in y = s^2, |s| <= 3 - 2 sqrt(2)",
                _atanh_series, 0.0, (3 - 2 * mp.sqrt(2)) ** 2, 0.0, 9, "f64"),
    Approximant("SIN2PI_F64", "sin(2 pi v) / v as a polynomial in y = v^2, |v| <= 1/8",
                _sin2pi, 0.0, 1 / 64, 0.0, 7, "f64"),
    Approximant("COS2PI_F64", "cos(2 pi v) as a polynomial in y = v^2, |v| <= 1/8",
                _cos2pi, 0.0, 1 / 64, 0.0, 8, "f64"),
    Approximant("NDTRI_CENTRAL_F64", "sqrt(2) erfinv(x)/x in w = -log(1 - x^2), w < 6.25",
                _g_central, 0.0, 6.25, 3.125, 23, "f64"),
    Approximant("NDTRI_TAIL_F64", "sqrt(2) erfinv(x)/x in sw = sqrt(w), 2.5 <= sw <= 4",
                _g_tail, 2.5, 4.0, 3.25, 18, "f64"),
    Approximant("NDTRI_TAIL2_F64", "sqrt(2) erfinv(x)/x in sw = sqrt(w), 4 <= sw <= 6.1",
                _g_tail, 4.0, 6.1, 5.0, 17, "f64"),
    Approximant("NDTRI_FAR_F64", "sqrt(2) erfinv(x)/(x sw) in y = 1/sw, 6 <= sw <= 40",
                _h_extended, 1 / mp.mpf(40), 1 / mp.mpf(6), 0.09375, 20, "f64"),
]


def _round(x, precision: str) -> float:
    v = float(x)
    if precision == "f32":
        v = struct.unpack("<f", struct.pack("<f", v))[0]
    return v


def fit(ap: Approximant, iters: int = 30):
    """Lawson IRLS in the Chebyshev basis on [lo, hi]; returns monomial coefficients in
    (x - shift), lowest degree first, as mpf."""
    lo, hi = mp.mpf(ap.lo), mp.mpf(ap.hi)
    n = 3 * ap.degree + 40
    xs = [lo + (hi - lo) * (1 - mp.cos(mp.pi * (i + mp.mpf(0.5)) / n)) / 2 for i in range(n)]
    fs = [ap.f(x) for x in xs]
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    basis = [mp.chebyt(j, (x - mid) / half) for x in xs for j in range(ap.degree + 1)]
    d1 = ap.degree + 1
    weights = [mp.mpf(1)] * n
    best = None
    for _ in range(iters):
        normal = mp.matrix(d1, d1)
        rhs = mp.matrix(d1, 1)
        for i in range(n):
            s = weights[i] / (fs[i] * fs[i])
            row = basis[i * d1:(i + 1) * d1]
            for j in range(d1):
                rhs[j] += row[j] * fs[i] * s
                for k in range(d1):
                    normal[j, k] += row[j] * row[k] * s
        cheb = mp.lu_solve(normal, rhs)
        errs = [abs(sum(cheb[j] * basis[i * d1 + j] for j in range(d1)) - fs[i]) / abs(fs[i])
                for i in range(n)]
        worst = max(errs)
        if best is None or worst < best[0]:
            best = (worst, cheb)
        total = sum(w * e for w, e in zip(weights, errs))
        weights = [w * e / total for w, e in zip(weights, errs)]
    cheb = best[1]
    # Chebyshev series in u = (x - mid)/half  ->  monomials in d = x - shift.
    shift = mp.mpf(ap.shift)
    mono = [mp.mpf(0)] * d1
    for j in range(d1):
        tcoef = mp.taylor(lambda d: mp.chebyt(j, (d + shift - mid) / half), 0, ap.degree)
        for k in range(d1):
            mono[k] += cheb[j] * tcoef[k]
    return mono


def max_error(ap: Approximant, coefs) -> float:
    lo, hi = mp.mpf(ap.lo), mp.mpf(ap.hi)
    worst = mp.mpf(0)
    for i in range(400):
        x = lo + (hi - lo) * i / 399
        d = x - mp.mpf(ap.shift)
        p = mp.mpf(0)
        for c in reversed(coefs):
            p = p * d + c
        worst = max(worst, abs(p / ap.f(x) - 1))
    return float(worst)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the coefficient files")
    args = parser.parse_args()
    tables = []
    for ap in APPROXIMANTS:
        mono = fit(ap)
        rounded = [_round(c, ap.precision) for c in mono]
        err = max_error(ap, rounded)
        print(f"{ap.name:20s} degree {ap.degree:2d}  max rel error {err:.3e}")
        tables.append((ap, rounded, err))
    if args.write:
        from stream_coefficient_files import write_files  # noqa: E402 (tools/ helper)
        write_files(tables)


if __name__ == "__main__":
    main()
