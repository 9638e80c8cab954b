"""Goodness of fit of every generator in every dtype, against exact float64 references.

Thresholds: KS p-values above 1e-6 and moments within 6 standard errors, so a correct
generator fails with negligible probability while a wrong scale, shift or shape shows clearly
at these sample sizes."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import fastinit
from fastinit.stream.dtypes import FORMATS
from fastinit.stream.ops import uniform_params

N = 200_003
P_MIN = 1e-6

torch = pytest.importorskip("torch")
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
                "bfloat16": torch.bfloat16}


def draw(fn, dtype_name="float32", n=N, seed=None, rng=None, **kwargs):
    seed = int(rng.integers(0, 2**62)) if seed is None else seed
    t = torch.full((n,), float("nan"), dtype=TORCH_DTYPES[dtype_name])
    fn(t, generator=seed, **kwargs)
    assert not torch.isnan(t).any()
    return t.double().numpy(), seed


def assert_ks(sample, cdf):
    p = stats.kstest(sample, cdf).pvalue
    assert p > P_MIN, f"KS p-value {p:.2e}"


def assert_moments(sample, mean, var):
    n = len(sample)
    assert abs(sample.mean() - mean) < 6 * math.sqrt(var / n) + 1e-12
    # variance standard error for a light-tailed distribution: var * sqrt(2/n) (generous x2)
    assert abs(sample.var() - var) < 12 * var * math.sqrt(2 / n) + 1e-12


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_uniform_fits(dtype_name, rng):
    a, b = sorted(rng.uniform(-3, 3, 2))
    x, _ = draw(fastinit.uniform_, dtype_name, rng=rng, a=a, b=b)
    assert x.min() > a and x.max() < b
    assert_ks(x, stats.uniform(a, b - a).cdf)
    assert_moments(x, (a + b) / 2, (b - a) ** 2 / 12)


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_normal_fits_with_tails(dtype_name, rng):
    mean, std = rng.uniform(-2, 2), rng.uniform(0.1, 3)
    x, _ = draw(fastinit.normal_, dtype_name, n=1_000_003, rng=rng, mean=mean, std=std)
    z = (x - mean) / std
    assert_ks(z, stats.norm.cdf)
    assert_moments(z, 0.0, 1.0)
    for k in (2.0, 3.0, 4.0):  # two-sided tail mass beyond k sigma
        p = 2 * stats.norm.sf(k)
        observed = np.mean(np.abs(z) > k)
        assert abs(observed - p) < 6 * math.sqrt(p * (1 - p) / len(z)), (k, observed, p)
    assert np.abs(z).max() <= (6.67 if dtype_name == "float32" else 8.58)
    # excess kurtosis of a normal is 0 (std error sqrt(24/n))
    assert abs(stats.kurtosis(z)) < 6 * math.sqrt(24 / len(z))


TRUNC_CASES = [
    dict(mean=0.0, std=1.0, a=-2.0, b=2.0),          # torch's defaults
    dict(mean=0.0, std=0.02, a=-2.0, b=2.0),         # transformer init: bounds at +-100 sigma
    dict(mean=0.0, std=0.02, a=-0.04, b=0.04),       # timm style: +-2 sigma
    dict(mean=0.3, std=0.5, a=0.0, b=4.0),           # asymmetric, mean inside
    dict(mean=0.0, std=1.0, a=2.5, b=3.5),           # upper side only
    dict(mean=0.0, std=1.0, a=-6.0, b=-5.0),         # lower tail, beyond the central piece
    dict(mean=0.0, std=1.0, a=7.0, b=9.0),           # far tail: the far piece (float32)
    dict(mean=1.0, std=0.1, a=-1.0, b=float("inf")),  # one bound infinite, the other at -20 sigma
]


def truncnorm(case):
    alpha = (case["a"] - case["mean"]) / case["std"]
    beta = (case["b"] - case["mean"]) / case["std"]
    return stats.truncnorm(alpha, beta, loc=case["mean"], scale=case["std"])


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
@pytest.mark.parametrize("case", TRUNC_CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_trunc_normal_fits(case, dtype_name, rng):
    x, _ = draw(fastinit.trunc_normal_, dtype_name, rng=rng, **case)
    assert x.min() >= case["a"] and x.max() <= case["b"]
    ref = truncnorm(case)
    assert_ks(x, ref.cdf)
    assert_moments(x, ref.mean(), ref.var())


@pytest.mark.parametrize("alpha", [9.0, 12.0, 20.0, 40.0])
def test_trunc_normal_far_in_one_tail_float64(alpha, rng):
    """Intervals beyond the float64 tail polynomial (about 8.6 sigma) use the far piece."""
    case = dict(mean=0.0, std=1.0, a=alpha, b=alpha + 0.5)
    x, _ = draw(fastinit.trunc_normal_, "float64", n=50_003, rng=rng, **case)
    assert x.min() >= case["a"] and x.max() <= case["b"]
    # Beyond ~9 sigma scipy's truncnorm loses accuracy; compare in the exponential-tail form:
    # P(Z > alpha + s | Z > alpha) = Phi_c(alpha + s) / Phi_c(alpha), via log survival.
    s = np.sort(x) - alpha
    logsf = stats.norm.logsf(alpha + s) - stats.norm.logsf(alpha)
    cdf_expected = -np.expm1(logsf)  # truncated at b too, but its mass is negligible here
    upper = stats.norm.logsf(alpha + 0.5) - stats.norm.logsf(alpha)
    cdf_expected = cdf_expected / -np.expm1(upper)
    empirical = np.arange(1, len(s) + 1) / len(s)
    assert np.max(np.abs(cdf_expected - empirical)) < 7 / math.sqrt(len(s))


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
@pytest.mark.parametrize("fn,kwargs", [
    (fastinit.uniform_, dict(a=-0.3, b=0.7)),
    (fastinit.normal_, dict(mean=0.1, std=0.02)),
    (fastinit.kaiming_normal_, {}),
])
def test_16bit_values_are_the_float32_stream_rounded_once(fn, kwargs, dtype_name, rng):
    """A 16-bit tensor is the float32 tensor of the same seed rounded once (RNE, as torch's cast),
    and for the uniform then kept inside [a, b): a value that rounds past a bound is that bound's
    nearest value inside (issue 11)."""
    seed = int(rng.integers(0, 2**62))
    shape = (257, 129)
    low = fn(torch.full(shape, float("nan"), dtype=TORCH_DTYPES[dtype_name]), generator=seed, **kwargs)
    full = fn(torch.full(shape, float("nan")), generator=seed, **kwargs)
    expected = full.to(TORCH_DTYPES[dtype_name])  # torch's cast rounds RNE too
    if fn is fastinit.uniform_:
        lo, hi = uniform_params(kwargs["a"], kwargs["b"], FORMATS[dtype_name]).params[2:4]
        expected = expected.clamp(lo, hi)
    assert torch.equal(low, expected)


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("case", [
    dict(mean=0.0, std=0.02, a=-0.04, b=0.04),
    dict(mean=0.0, std=1e-3, a=-0.03, b=0.05),          # small std, bounds far away
    dict(mean=1.0, std=0.01, a=0.98, b=1.02),           # bounds not representable in bfloat16
    dict(mean=0.0, std=1.0, a=-2.0, b=2.0),
], ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_trunc_normal_low_precision_bounds_and_no_pile_up(case, dtype_name, rng):
    """Values stay inside [a, b] after rounding, and the representable values at the ends hold
    only the probability of their rounding cells: no pile-up, no outliers."""
    x, _ = draw(fastinit.trunc_normal_, dtype_name, rng=rng, **case)
    a, b = case["a"], case["b"]
    assert x.min() >= a and x.max() <= b
    fmt = FORMATS[dtype_name]
    lo, hi = fmt.inside(a, b)
    ref = truncnorm(case)
    # the cell that rounds to lo (plus what lies below it inside [a, b], moved up by the clamp)
    cell_lo_top = (lo + fmt.next_up(lo)) / 2
    cell_hi_bottom = (hi + fmt.next_down(hi)) / 2
    for value, mass in ((lo, ref.cdf(cell_lo_top)), (hi, ref.sf(cell_hi_bottom))):
        observed = np.mean(x == value)
        assert abs(observed - mass) < 6 * math.sqrt(max(mass, 1 / N) / N) + 2 / N, (value, observed, mass)
    # and the whole rounded distribution fits: compare the histogram over representable values
    values, counts = np.unique(x, return_counts=True)
    assert values.min() >= lo and values.max() <= hi


@pytest.mark.parametrize("fn,std_of", [
    (fastinit.kaiming_normal_, lambda fan_in, fan_out: math.sqrt(2.0 / (1 + 0.0)) / math.sqrt(fan_in)),
    (fastinit.xavier_normal_, lambda fan_in, fan_out: math.sqrt(2.0 / (fan_in + fan_out))),
])
def test_fan_scaled_normals(fn, std_of, rng):
    shape = (384, 96, 3, 3)
    x, _ = draw(lambda t, **kw: fn(t.view(shape), **kw), n=int(np.prod(shape)), rng=rng)
    std = std_of(96 * 9, 384 * 9)
    assert_moments(x, 0.0, std**2)
    assert_ks(x / std, stats.norm.cdf)


@pytest.mark.parametrize("fn,bound_of", [
    (lambda t, **kw: fastinit.kaiming_uniform_(t, a=math.sqrt(5), **kw),
     lambda fan_in, fan_out: math.sqrt(3.0) * math.sqrt(2.0 / 6.0) / math.sqrt(fan_in)),
    (fastinit.xavier_uniform_, lambda fan_in, fan_out: math.sqrt(6.0 / (fan_in + fan_out))),
])
def test_fan_scaled_uniforms(fn, bound_of, rng):
    shape = (512, 300)
    x, _ = draw(lambda t, **kw: fn(t.view(shape), **kw), n=512 * 300, rng=rng)
    bound = bound_of(300, 512)
    assert x.min() > -bound and x.max() < bound
    assert x.max() > bound * (1 - 1e-3) and x.min() < -bound * (1 - 1e-3)
    assert_ks(x, stats.uniform(-bound, 2 * bound).cdf)
