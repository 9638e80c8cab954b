"""The NumPy path's float32 fused multiply-add is exactly rounded (checked with fractions)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from fastinit.stream.numpy_stream import fma32


def exact_fma32(a: np.float32, b: np.float32, c: np.float32) -> np.float32:
    """Round a*b + c (exact rational) to float32, nearest, ties to even."""
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    lo = np.float32(float(exact))  # within an ulp; pick the nearest of its neighbours
    candidates = [np.nextafter(lo, np.float32(-np.inf)), lo, np.nextafter(lo, np.float32(np.inf))]
    best = min(candidates, key=lambda v: (abs(Fraction(float(v)) - exact),
                                          int(np.array(v, dtype=np.float32).view(np.uint32)) & 1))
    return np.float32(best)


def test_fma32_random_inputs(rng):
    a = rng.standard_normal(3000).astype(np.float32)
    b = rng.standard_normal(3000).astype(np.float32) * np.float32(1e3)
    c = rng.standard_normal(3000).astype(np.float32) * np.float32(1e-2)
    got = fma32(a, b, c)
    expected = np.array([exact_fma32(x, y, z) for x, y, z in zip(a, b, c)], dtype=np.float32)
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))


def test_fma32_halfway_cases_where_double_rounding_would_fail(rng):
    """a*b exactly halfway between two float32 values, c far below it: the exact sum is just
    off the halfway point, float64 arithmetic lands on it exactly (c is lost), and the cast to
    float32 then breaks the tie the wrong way for about half of the cases."""
    i = 2 * rng.integers(1, 1 << 9, 400) + 1  # odd: a*b has its last bit at 2^-24, p in [1, 2)
    j = 2 * rng.integers(1, 1 << 9, 400) + 1
    a = (1 + i * 2.0**-12).astype(np.float32)
    b = (1 + j * 2.0**-12).astype(np.float32)
    c = (rng.choice([-1.0, 1.0], 400) * 2.0**-60).astype(np.float32)
    expected = np.array([exact_fma32(x, y, z) for x, y, z in zip(a, b, c)], dtype=np.float32)
    naive = (a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)).astype(np.float32)
    assert np.count_nonzero(naive != expected) > 100  # the trap is really exercised
    np.testing.assert_array_equal(fma32(a, b, c).view(np.uint32), expected.view(np.uint32))
