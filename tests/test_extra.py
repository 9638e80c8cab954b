"""Initializers beyond torch.nn.init (fastinit.initializers), and the parts of the
mirror that go beyond torch (orthogonal_ in float16/bfloat16, sparse_ honouring generator=).

Distribution tests compare against float64 references from scipy.stats, with sample sizes and
thresholds (KS p-value 1e-4, 6 standard errors) at which a correct implementation fails with
negligible probability. Outputs are poisoned with NaN first."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize, special, stats

import fastinit
from conftest import poisoned

torch = pytest.importorskip("torch")

P_MIN = 1e-4
TORCH_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
UNIT_ROUNDOFF = {torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8, torch.float32: 2.0**-24,
                 torch.float64: 2.0**-53}
JAX_TRUNCATED_NORMAL_STD = 0.87962566103423978  # the literal in jax.nn.initializers


def seed_of(rng) -> int:
    return int(rng.integers(0, 2**62))


def ks_pvalue(values, dist) -> float:
    return stats.kstest(np.asarray(values, dtype=np.float64).ravel(), dist.cdf).pvalue


def assert_variance(values, dist):
    """Sample variance within 6 standard errors of the reference distribution's variance."""
    x = np.asarray(values, dtype=np.float64).ravel()
    var, excess_kurtosis = (float(v) for v in dist.stats(moments="vk"))
    se = var * math.sqrt((excess_kurtosis + 2.0) / x.size)  # std error of the sample variance
    assert abs(x.var() - var) < 6 * se, (x.var(), var, se)


def to_f64(t) -> np.ndarray:
    if isinstance(t, np.ndarray):
        return t.astype(np.float64)
    return t.detach().to(torch.float64).cpu().numpy()


# --- the 0.8796... constant -------------------------------------------------------------------

def test_truncated_normal_std_constant(rng):
    assert fastinit.TRUNCATED_NORMAL_STD == pytest.approx(stats.truncnorm(-2, 2).std(), rel=1e-14)
    assert fastinit.TRUNCATED_NORMAL_STD == pytest.approx(JAX_TRUNCATED_NORMAL_STD, rel=1e-15)
    from fastinit.initializers.variance_scaling import truncated_standard_normal_std
    for c in rng.uniform(0.2, 6.0, size=5):
        assert truncated_standard_normal_std(c) == pytest.approx(stats.truncnorm(-c, c).std(),
                                                                 rel=1e-12)


# --- layouts and fans -------------------------------------------------------------------------

@pytest.mark.parametrize("shape, layout, fans", [
    ((7, 3), "torch", (3, 7)),
    ((7, 3), "oi", (3, 7)),
    ((3, 7), "io", (3, 7)),
    ((3, 7), "jax", (3, 7)),
    ((3, 7), "keras", (3, 7)),
    ((7, 3, 5, 2), "torch", (30, 70)),
    ((7, 3, 5, 2), "oihw", (30, 70)),
    ((7, 3, 5, 2), "OIHW", (30, 70)),
    ((5, 2, 3, 7), "hwio", (30, 70)),
    ((5, 2, 3, 7), "HWIO", (30, 70)),
    ((5, 2, 3, 7), "jax", (30, 70)),
    ((5, 2, 3, 7), "...io", (30, 70)),
    ((3, 7, 5, 2), "io...", (30, 70)),      # torch ConvTranspose2d weight (in, out, kh, kw)
    ((7, 5, 2, 3), "ohwi", (30, 70)),
    ((4, 5, 2, 3, 7), "dhwio", (120, 280)),
    ((11, 3, 7), "wio", (33, 77)),
    ((7, 3, 2, 2, 2, 2), "oi...", (48, 112)),
])
def test_fans_hand_computed(shape, layout, fans):
    assert fastinit.calculate_fans(shape, layout) == fans
    assert fastinit.calculate_fans(np.empty(shape, np.float32), layout=layout) == fans


def test_fans_torch_layout_matches_torch(rng):
    for _ in range(20):
        shape = tuple(int(n) for n in rng.integers(1, 6, size=int(rng.integers(2, 6))))
        t = torch.empty(shape)
        expected = torch.nn.init._calculate_fan_in_and_fan_out(t)
        assert fastinit.calculate_fans(t) == expected
        assert fastinit.calculate_fans(t, "oi...") == expected
        # any storage order, described by the matching pattern, gives the same fans
        letters = "oi" + "abcdefg"[:len(shape) - 2]
        perm = rng.permutation(len(shape))
        pattern = "".join(letters[p] for p in perm)
        assert fastinit.calculate_fans(tuple(shape[p] for p in perm), pattern) == expected


@pytest.mark.parametrize("shape, layout", [
    ((3, 4), "oo"), ((3, 4), "ii"), ((3, 4), "ab"), ((3, 4), ""), ((3, 4, 5), "oih"[:2]),
    ((3, 4, 5, 6), "oi"), ((3, 4, 5, 6), "io"), ((3, 4, 5), "oihw"), ((3, 4), "o...i..."),
    ((3, 4), "oi.."), ((3, 4, 5), "ohh"), ((3, 4), "oihw..."), ((3, 4), "o1"),
    ((5,), "torch"), ((), "torch"),
])
def test_bad_layouts_raise(shape, layout):
    with pytest.raises(ValueError):
        fastinit.calculate_fans(shape, layout)


def test_layout_must_be_a_string():
    with pytest.raises(TypeError, match="layout"):
        fastinit.calculate_fans((3, 4), layout=None)


# --- variance_scaling_ ------------------------------------------------------------------------

def reference_law(scale, n, distribution):
    """The float64 law of variance_scaling_, written from JAX's definition."""
    if distribution == "truncated_normal":
        s = math.sqrt(scale / n) / stats.truncnorm(-2, 2).std()
        return stats.truncnorm(-2, 2, scale=s), 2 * s
    if distribution == "normal":
        return stats.norm(scale=math.sqrt(scale / n)), None
    limit = math.sqrt(3 * scale / n)
    return stats.uniform(-limit, 2 * limit), limit


@pytest.mark.parametrize("distribution", ["truncated_normal", "normal", "uniform"])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg", "fan_geo_avg"])
def test_variance_scaling_distribution(rng, mode, distribution):
    out_ch, in_ch = int(rng.integers(32, 65)), int(rng.integers(16, 33))
    kh, kw = 5, 5
    scale = float(rng.uniform(0.5, 3.0))
    fan_in, fan_out = in_ch * kh * kw, out_ch * kh * kw
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2,
         "fan_geo_avg": math.sqrt(fan_in * fan_out)}[mode]
    law, bound = reference_law(scale, n, distribution)
    layout = ["torch", "hwio"][int(rng.integers(2))]
    shape = (out_ch, in_ch, kh, kw) if layout == "torch" else (kh, kw, in_ch, out_ch)
    dtype = [np.float32, np.float64][int(rng.integers(2))]
    w = poisoned(shape, dtype)
    out = fastinit.variance_scaling_(w, scale, mode, distribution, layout=layout,
                                     generator=seed_of(rng))
    assert out is w
    assert np.isfinite(w).all()
    assert ks_pvalue(w, law) > P_MIN
    assert_variance(w, law)
    if bound is not None:
        assert np.abs(w).max() <= bound


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_variance_scaling_dtypes(rng, dtype):
    out_ch, in_ch = int(rng.integers(200, 300)), int(rng.integers(100, 160))
    seed = seed_of(rng)
    w = poisoned((out_ch, in_ch), dtype, "torch")
    fastinit.he_normal_(w, generator=seed)
    law, bound = reference_law(2.0, in_ch, "truncated_normal")
    x = to_f64(w)
    assert np.isfinite(x).all() and np.abs(x).max() <= bound
    assert ks_pvalue(x, law) > P_MIN
    if dtype in (torch.float16, torch.bfloat16):
        # computed in float32 and rounded once: equal to the float32 values rounded, except
        # where rounding crossed the bound and the value was clamped inside
        w32 = fastinit.he_normal_(torch.empty(out_ch, in_ch), generator=seed)
        rounded = to_f64(w32.to(dtype))
        differ = rounded != x
        assert (np.abs(rounded[differ]) > bound).all()


@pytest.mark.parametrize("distribution", ["truncated_normal", "normal", "uniform"])
def test_variance_scaling_is_one_fused_draw(rng, distribution):
    """The same key and stream as the torch-mirror fills with the equivalent parameters."""
    shape = (int(rng.integers(10, 40)), int(rng.integers(10, 40)), 3)
    scale, seed = float(rng.uniform(0.1, 4.0)), seed_of(rng)
    n = shape[1] * 3
    w = fastinit.variance_scaling_(poisoned(shape, np.float32), scale, "fan_in", distribution,
                                   generator=seed)
    ref = poisoned(shape, np.float32)
    if distribution == "truncated_normal":
        s = math.sqrt(scale / n) / fastinit.TRUNCATED_NORMAL_STD
        fastinit.trunc_normal_(ref, 0.0, s, -2 * s, 2 * s, generator=seed)
    elif distribution == "normal":
        fastinit.normal_(ref, 0.0, math.sqrt(scale / n), generator=seed)
    else:
        limit = math.sqrt(3 * scale / n)
        fastinit.uniform_(ref, -limit, limit, generator=seed)
    np.testing.assert_array_equal(w, ref)


@pytest.mark.parametrize("preset, scale, mode, distribution", [
    (fastinit.lecun_normal_, 1.0, "fan_in", "truncated_normal"),
    (fastinit.lecun_uniform_, 1.0, "fan_in", "uniform"),
    (fastinit.glorot_normal_, 1.0, "fan_avg", "truncated_normal"),
    (fastinit.glorot_uniform_, 1.0, "fan_avg", "uniform"),
    (fastinit.he_normal_, 2.0, "fan_in", "truncated_normal"),
    (fastinit.he_uniform_, 2.0, "fan_in", "uniform"),
])
def test_presets(rng, preset, scale, mode, distribution):
    seed = seed_of(rng)
    for shape, layout in [((int(rng.integers(5, 50)), int(rng.integers(5, 50))), "torch"),
                          ((3, 3, int(rng.integers(2, 20)), int(rng.integers(20, 40))), "hwio")]:
        a = preset(poisoned(shape, np.float32), layout=layout, generator=seed)
        b = fastinit.variance_scaling_(poisoned(shape, np.float32), scale, mode, distribution,
                                       layout=layout, generator=seed)
        np.testing.assert_array_equal(a, b)
    # the law, on a weight large enough to tell the presets apart
    out_ch, in_ch = int(rng.integers(30, 60)), int(rng.integers(60, 100))
    w = preset(poisoned((3, 3, in_ch, out_ch), np.float64), layout="jax", generator=seed)
    fan_in, fan_out = 9 * in_ch, 9 * out_ch
    n = fan_in if mode == "fan_in" else (fan_in + fan_out) / 2
    assert ks_pvalue(w, reference_law(scale, n, distribution)[0]) > P_MIN


def test_layout_sets_only_the_scale(rng):
    """A HWIO kernel read as HWIO and as torch's layout: the same stream, scaled by the ratio
    of the stds (so the layout picks the fans and nothing else)."""
    kh, in_ch, out_ch = 3, int(rng.integers(4, 16)), int(rng.integers(16, 64))
    shape, seed = (kh, kh, in_ch, out_ch), seed_of(rng)
    as_hwio = fastinit.variance_scaling_(poisoned(shape, np.float64), 1.0, "fan_in", "normal",
                                         layout="hwio", generator=seed)
    for alias in ("jax", "...io", "HWIO", "keras"):
        same = fastinit.variance_scaling_(poisoned(shape, np.float64), 1.0, "fan_in", "normal",
                                          layout=alias, generator=seed)
        np.testing.assert_array_equal(same, as_hwio)
    as_torch = fastinit.variance_scaling_(poisoned(shape, np.float64), 1.0, "fan_in", "normal",
                                          generator=seed)
    ratio = math.sqrt((kh * in_ch * out_ch) / (kh * kh * in_ch))  # torch: fan_in = 3*in*out
    np.testing.assert_allclose(as_hwio / as_torch, ratio, rtol=1e-13)


# --- trunc_normal_std_ ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_trunc_normal_std_distribution(rng, dtype):
    mean, std = float(rng.normal(0, 2)), float(rng.uniform(0.01, 3.0))
    a = float(rng.uniform(-3.0, 1.5))
    b = a + float(rng.uniform(0.3, 4.0))
    w = fastinit.trunc_normal_std_(poisoned((150, 160), dtype), mean, std, a, b,
                                   generator=seed_of(rng))
    law = stats.truncnorm(a, b, loc=mean, scale=std)
    x = w.astype(np.float64)
    assert np.isfinite(x).all()
    lo, hi = mean + a * std, mean + b * std
    assert x.min() >= lo and x.max() <= hi           # also after rounding to float32
    assert ks_pvalue(x, law) > P_MIN
    assert_variance(x, law)


def test_trunc_normal_std_is_trunc_normal_in_std_units(rng):
    mean, std, seed = float(rng.normal()), float(rng.uniform(0.1, 2.0)), seed_of(rng)
    a, b = float(rng.uniform(-3, 0)), float(rng.uniform(0.5, 3))
    x = fastinit.trunc_normal_std_(poisoned((64, 33), np.float32), mean, std, a, b,
                                   generator=seed)
    y = fastinit.trunc_normal_(poisoned((64, 33), np.float32), mean, std, mean + a * std,
                               mean + b * std, generator=seed)
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_trunc_normal_std_low_precision_bounds(rng, dtype):
    """timm's transformer init (std 0.02, ±2 std) and an interval far in a tail: every value
    inside the bounds after rounding, and the right law."""
    w = fastinit.trunc_normal_std_(poisoned((256, 200), dtype, "torch"), std=0.02,
                                   generator=seed_of(rng))
    x = to_f64(w)
    assert np.abs(x).max() <= 0.04 and np.isfinite(x).all()
    assert ks_pvalue(x, stats.truncnorm(-2, 2, scale=0.02)) > P_MIN
    # |mean| < 0.25: bfloat16's spacing there (<= 2^-9) leaves values in the 0.005-wide interval
    # (near 1.0 the spacing is 2^-7 and no bfloat16 value may lie in it: a clear RuntimeError)
    mean = float(rng.uniform(-0.25, 0.25))
    t = fastinit.trunc_normal_std_(poisoned((4096,), dtype, "torch"), mean, 0.01, 3.0, 3.5,
                                   generator=seed_of(rng))
    x = to_f64(t)
    assert x.min() >= mean + 0.03 and x.max() <= mean + 0.035


def test_trunc_normal_std_degenerate_and_infinite(rng):
    mean = float(rng.normal())
    w = fastinit.trunc_normal_std_(poisoned((5, 7), np.float64), mean, 0.0, -2.0, 2.0, generator=1)
    assert (w == mean).all()
    w = fastinit.trunc_normal_std_(poisoned((5, 7), np.float64), mean, 0.5, 1.5, 1.5, generator=1)
    assert (w == mean + 0.75).all()
    w = fastinit.trunc_normal_std_(poisoned((200, 100), np.float64), mean, 2.0, -np.inf, np.inf,
                                   generator=seed_of(rng))
    assert ks_pvalue(w, stats.norm(mean, 2.0)) > P_MIN
    w = fastinit.trunc_normal_std_(poisoned((200, 100), np.float64), mean, 2.0, 0.5, np.inf,
                                   generator=seed_of(rng))
    assert ks_pvalue(w, stats.truncnorm(0.5, np.inf, loc=mean, scale=2.0)) > P_MIN


# --- delta_orthogonal_ ------------------------------------------------------------------------

def assert_orthonormal_columns(m: np.ndarray, gain: float, u: float):
    """M^T M = gain^2 I up to rounding each entry of an exactly orthonormal matrix to unit
    roundoff u (|entry error| <= 2u + u^2 by Cauchy-Schwarz) and the float32 QR."""
    gram = m.T @ m / (gain * gain)
    err = np.abs(gram - np.eye(m.shape[1])).max()
    assert err <= 2.0 * u + u * u + 2e-5, err


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
@pytest.mark.parametrize("layout", ["torch", "hwio"])
def test_delta_orthogonal(rng, dtype, layout):
    in_ch = int(rng.integers(2, 24))
    out_ch = in_ch + int(rng.integers(0, 16))
    kernel = tuple(int(k) for k in rng.integers(1, 6, size=int(rng.integers(1, 4))))
    if layout == "hwio":
        kernel = kernel[:2] if len(kernel) > 2 else kernel
        shape = kernel + (in_ch, out_ch)
    else:
        shape = (out_ch, in_ch) + kernel
    gain, seed = float(rng.uniform(0.5, 2.0)), seed_of(rng)
    w = poisoned(shape, dtype, "torch")
    pattern = "...io" if layout == "hwio" else layout  # any number of kernel dims
    assert fastinit.delta_orthogonal_(w, gain, seed, layout=pattern) is w
    x = to_f64(w)
    canon = x if layout == "torch" else np.moveaxis(x, (-1, -2), (0, 1))
    centre = (slice(None), slice(None)) + tuple(k // 2 for k in kernel)
    mask = np.zeros(canon.shape, dtype=bool)
    mask[centre] = True
    assert (canon[~mask] == 0).all()             # every other tap exactly zero (no NaN left)
    assert_orthonormal_columns(canon[centre], gain, UNIT_ROUNDOFF[dtype])
    # the centre is orthogonal_ of an (out, in) matrix with the same key
    ref = fastinit.orthogonal_(torch.empty(out_ch, in_ch, dtype=dtype), gain, seed)
    np.testing.assert_array_equal(canon[centre], to_f64(ref))


def test_delta_orthogonal_convolution_is_an_isometry(rng):
    in_ch = int(rng.integers(3, 10))
    out_ch, gain = in_ch + int(rng.integers(0, 6)), float(rng.uniform(0.5, 2.0))
    w = fastinit.delta_orthogonal_(poisoned((out_ch, in_ch, 3, 5), torch.float64, "torch"), gain,
                                   generator=seed_of(rng))
    x = torch.from_numpy(rng.normal(size=(2, in_ch, 9, 11)))
    y = torch.nn.functional.conv2d(x, w, padding=(1, 2))
    assert float(y.norm()) == pytest.approx(gain * float(x.norm()), rel=1e-12)


def test_delta_orthogonal_numpy(rng):
    in_ch = int(rng.integers(2, 12))
    out_ch = in_ch + int(rng.integers(0, 5))
    seed = seed_of(rng)
    for dtype in (np.float16, np.float32, np.float64):
        w = fastinit.delta_orthogonal_(poisoned((3, 3, in_ch, out_ch), dtype), 1.0, seed,
                                       layout="hwio")
        assert (np.delete(w.reshape(9, in_ch, out_ch), 4, axis=0) == 0).all()
        u = {np.float16: 2.0**-11, np.float32: 2.0**-24, np.float64: 2.0**-53}[dtype]
        assert_orthonormal_columns(w[1, 1].T.astype(np.float64), 1.0, u)


def test_delta_orthogonal_errors():
    w = poisoned((8, 16, 3, 3), torch.float32, "torch")
    with pytest.raises(ValueError, match="out_channels >= in_channels"):
        fastinit.delta_orthogonal_(w)
    with pytest.raises(ValueError, match="out_channels >= in_channels"):
        fastinit.delta_orthogonal_(poisoned((3, 3, 16, 8), np.float32), layout="hwio")
    with pytest.raises(ValueError, match="3 or more dimensions"):
        fastinit.delta_orthogonal_(poisoned((16, 8), torch.float32, "torch"))
    assert torch.isnan(w).all()


# --- identity_ --------------------------------------------------------------------------------

def test_identity_2d_is_scaled_eye(rng):
    for _ in range(3):
        rows, cols = (int(n) for n in rng.integers(1, 20, size=2))
        gain = float(rng.uniform(-2, 2))
        w = fastinit.identity_(poisoned((rows, cols), torch.float32, "torch"), gain)
        assert torch.equal(w, gain * torch.eye(rows, cols))
        a = fastinit.identity_(poisoned((rows, cols), np.float64), gain, layout="io")
        np.testing.assert_array_equal(a, gain * np.eye(cols, rows).T)   # (in, out) storage


@pytest.mark.parametrize("ndim", [3, 4, 5])
def test_identity_conv_is_scaled_dirac(rng, ndim):
    groups = int(rng.integers(1, 4))
    shape = (groups * int(rng.integers(1, 6)), int(rng.integers(1, 6))) + tuple(
        int(k) for k in rng.integers(1, 5, size=ndim - 2))
    gain = float(rng.uniform(0.1, 3.0))
    w = fastinit.identity_(poisoned(shape, torch.float64, "torch"), gain, groups)
    ref = torch.nn.init.dirac_(torch.empty(shape, dtype=torch.float64), groups) * gain
    assert torch.equal(w, ref)
    # the same weight stored HWIO-style
    hw = fastinit.identity_(poisoned(shape[2:] + shape[1::-1], np.float64), gain, groups,
                            layout="...io")
    np.testing.assert_array_equal(np.moveaxis(hw, (-1, -2), (0, 1)), ref.numpy())


def test_identity_convolution_passes_input_through(rng):
    ch, gain = int(rng.integers(1, 8)), float(rng.uniform(0.5, 2.0))
    w = fastinit.identity_(poisoned((ch, ch, 3, 5), torch.float64, "torch"), gain)
    x = torch.from_numpy(rng.normal(size=(2, ch, 7, 6)))
    y = torch.nn.functional.conv2d(x, w, padding=(1, 2))
    assert torch.equal(y, gain * x)


def test_identity_any_dtype_and_errors():
    w = fastinit.identity_(torch.full((4, 4, 3), 7, dtype=torch.int32), 2)
    assert torch.equal(w, 2 * torch.nn.init.dirac_(torch.empty(4, 4, 3, dtype=torch.int32)))
    with pytest.raises(ValueError, match="divisible by groups"):
        fastinit.identity_(torch.empty(6, 2, 3), groups=4)
    with pytest.raises(ValueError, match="groups"):
        fastinit.identity_(torch.empty(6, 2, 3), groups=0)
    with pytest.raises(ValueError, match="2 or more dimensions"):
        fastinit.identity_(torch.empty(6))
    ro = np.zeros((3, 3))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fastinit.identity_(ro)


# --- the common contract: generators, views, dtypes, meta, empty, grads, errors ---------------

RANDOM_FNS = {
    "variance_scaling_": lambda w, g: fastinit.variance_scaling_(w, 0.7, "fan_avg", "uniform",
                                                                 generator=g),
    "lecun_normal_": lambda w, g: fastinit.lecun_normal_(w, generator=g),
    "he_uniform_": lambda w, g: fastinit.he_uniform_(w, generator=g),
    "glorot_normal_": lambda w, g: fastinit.glorot_normal_(w, generator=g),
    "trunc_normal_std_": lambda w, g: fastinit.trunc_normal_std_(w, 0.1, 0.5, -1.0, 3.0, g),
    "delta_orthogonal_": lambda w, g: fastinit.delta_orthogonal_(w, 1.3, g),
}


def generator_pairs(seed: int):
    """(make, make_other): factories of equal generators, and of one with another seed."""
    return {
        "int": (lambda: seed, lambda: seed + 1),
        "fastinit": (lambda: fastinit.Generator(seed), lambda: fastinit.Generator(seed + 1)),
        "numpy": (lambda: np.random.default_rng(seed), lambda: np.random.default_rng(seed + 1)),
        "torch": (lambda: torch.Generator().manual_seed(seed),
                  lambda: torch.Generator().manual_seed(seed + 1)),
    }


@pytest.mark.parametrize("name", sorted(RANDOM_FNS))
def test_generators(rng, name):
    fn = RANDOM_FNS[name]
    shape = (12, 10, 3)
    seed = seed_of(rng) % 2**31
    for kind, (make, make_other) in generator_pairs(seed).items():
        a = fn(poisoned(shape, torch.float32, "torch"), make())
        b = fn(poisoned(shape, torch.float32, "torch"), make())
        c = fn(poisoned(shape, torch.float32, "torch"), make_other())
        assert torch.equal(a, b), kind
        assert not torch.equal(a, c), kind
        assert not torch.isnan(a).any()
    # generator=None: torch's default generator, so torch.manual_seed governs it
    torch.manual_seed(seed)
    a = fn(poisoned(shape, torch.float32, "torch"), None)
    torch.manual_seed(seed)
    b = fn(poisoned(shape, torch.float32, "torch"), None)
    c = fn(poisoned(shape, torch.float32, "torch"), None)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # a fastinit.Generator advances: two calls, two different draws
    g = fastinit.Generator(seed)
    assert not torch.equal(fn(torch.empty(shape), g), fn(torch.empty(shape), g))


@pytest.mark.parametrize("name", sorted(RANDOM_FNS) + ["identity_"])
def test_views_and_noncontiguous(rng, name):
    fn = RANDOM_FNS.get(name, lambda w, g: fastinit.identity_(w, 1.5))
    seed = seed_of(rng)
    base = poisoned((16, 24, 5), torch.float32, "torch")
    view = base[1::2, ::3].transpose(0, 1)           # (8, 8, 5), strided and transposed
    assert not view.is_contiguous()
    fn(view, seed)
    written = torch.zeros(base.shape, dtype=torch.bool)
    written[1::2, ::3] = True
    assert torch.isnan(base[~written]).all()           # nothing outside the view touched
    ref = fn(poisoned(tuple(view.shape), torch.float32, "torch"), seed)
    assert torch.equal(view, ref)                     # same values as a contiguous tensor
    arr = poisoned((24, 16, 5), np.float32)
    arr_view = arr[::3, 1::2].transpose(1, 0, 2)
    fn(arr_view, seed)
    if name == "delta_orthogonal_":  # the same Gaussian matrix; NumPy's QR, not torch's
        np.testing.assert_allclose(arr_view, ref.numpy(), rtol=0, atol=1e-5)
    else:
        np.testing.assert_array_equal(arr_view, ref.numpy())
    untouched = np.ones(arr.shape, dtype=bool)
    untouched[::3, 1::2] = False
    assert np.isnan(arr[untouched]).all()


@pytest.mark.parametrize("name", sorted(RANDOM_FNS) + ["identity_"])
def test_meta_empty_and_grad_leaves(name):
    fn = RANDOM_FNS.get(name, lambda w, g: fastinit.identity_(w, 1.5))
    meta = torch.empty(8, 6, 3, device="meta")
    assert fn(meta, 1) is meta
    g = fastinit.Generator(5)
    state = g.get_state()
    for shape in [(0, 0, 3), (8, 0, 3), (8, 6, 0)]:
        empty = torch.empty(shape)
        assert fn(empty, g) is empty
        assert fn(np.empty(shape, np.float32), g).shape == shape
    assert g.get_state() == state                     # no key drawn for nothing to write
    p = torch.nn.Parameter(torch.full((8, 6, 3), float("nan")))
    assert fn(p, 3) is p
    assert p.is_leaf and p.requires_grad and p.grad_fn is None
    assert not torch.isnan(p).any()
    (p * 2).sum().backward()                           # still a usable leaf
    assert torch.equal(p.grad, torch.full_like(p, 2.0))


@pytest.mark.parametrize("name", sorted(RANDOM_FNS))
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.complex64, torch.bool])
def test_integer_and_complex_dtypes_raise(name, dtype):
    w = torch.zeros(8, 6, 3, dtype=dtype)
    with pytest.raises(NotImplementedError, match="not supported"):
        RANDOM_FNS[name](w, 1)
    with pytest.raises(NotImplementedError, match="not supported"):
        RANDOM_FNS[name](np.zeros((8, 6, 3), dtype=np.int32), 1)


@pytest.mark.parametrize("call, error, match", [
    (lambda w, g: fastinit.variance_scaling_(w, 1.0, "fan_sum", generator=g), ValueError, "mode"),
    (lambda w, g: fastinit.variance_scaling_(w, 1.0, "fan_in", "gamma", generator=g), ValueError,
     "distribution"),
    (lambda w, g: fastinit.variance_scaling_(w, -1.0, generator=g), RuntimeError, "scale"),
    (lambda w, g: fastinit.variance_scaling_(w, 0.0, generator=g), RuntimeError, "scale"),
    (lambda w, g: fastinit.variance_scaling_(w, math.nan, generator=g), RuntimeError, "scale"),
    (lambda w, g: fastinit.variance_scaling_(w, math.inf, generator=g), RuntimeError, "scale"),
    (lambda w, g: fastinit.he_normal_(w, layout="oi", generator=g), ValueError, "layout"),
    (lambda w, g: fastinit.he_normal_(w, layout="oiwh", generator=g), ValueError, "layout"),
    (lambda w, g: fastinit.lecun_uniform_(w, layout="xyz", generator=g), ValueError, "layout"),
    (lambda w, g: fastinit.glorot_uniform_(w[0, 0], generator=g), ValueError, "fewer than 2"),
    (lambda w, g: fastinit.trunc_normal_std_(w, 0.0, 1.0, 2.0, 1.0, g), RuntimeError, "a <= b"),
    (lambda w, g: fastinit.trunc_normal_std_(w, 0.0, -1.0, generator=g), RuntimeError, "std"),
    (lambda w, g: fastinit.trunc_normal_std_(w, 0.0, math.nan, generator=g), RuntimeError, "std"),
    (lambda w, g: fastinit.trunc_normal_std_(w, math.inf, 1.0, generator=g), RuntimeError, "mean"),
    (lambda w, g: fastinit.trunc_normal_std_(w, 0.0, 1.0, math.nan, generator=g), RuntimeError,
     "a=nan"),
    (lambda w, g: fastinit.delta_orthogonal_(w.swapaxes(0, 1), 1.0, g), ValueError, "out_ch"),
    (lambda w, g: fastinit.delta_orthogonal_(w, math.nan, g), RuntimeError, "gain"),
    (lambda w, g: fastinit.delta_orthogonal_(w, 1.0, g, layout="io"), ValueError, "layout"),
    (lambda w, g: fastinit.identity_(w, 1.0, 5), ValueError, "groups"),
])
def test_bad_input_raises_before_writing(call, error, match):
    g = fastinit.Generator(11)
    state = g.get_state()
    for w in (poisoned((8, 6, 3), torch.float32, "torch"), poisoned((8, 6, 3), np.float32)):
        with pytest.raises(error, match=match):
            call(w, g)
        assert np.isnan(to_f64(w)).all()               # nothing half-written
        assert g.get_state() == state                  # no key drawn


def test_backends_agree_bitwise(rng):
    """Every random initializer gives the same bits on the compiled core and on NumPy."""
    backends = fastinit.available_backends()
    if len(backends) < 2:
        pytest.skip("only one backend available")
    seed = seed_of(rng)
    previous = fastinit.get_backend()
    try:
        for name, fn in RANDOM_FNS.items():
            for dtype in (torch.float32, torch.bfloat16, torch.float64):
                results = []
                for backend in backends:
                    fastinit.set_backend(backend)
                    results.append(fn(poisoned((20, 12, 3), dtype, "torch"), seed))
                assert all(torch.equal(results[0], r) for r in results[1:]), (name, dtype)
    finally:
        fastinit.set_backend(previous)


# --- orthogonal_ in low precision and sparse_ with generator= (torch-mirror extensions) --------

@pytest.mark.parametrize("dtype", TORCH_DTYPES)
@pytest.mark.parametrize("shape", [(40, 24), (24, 40), (16, 8, 3, 3), (30, 30)])
def test_orthogonal_low_precision(rng, dtype, shape):
    gain, seed = float(rng.uniform(0.5, 2.0)), seed_of(rng)
    w = fastinit.orthogonal_(poisoned(shape, dtype, "torch"), gain, seed)
    assert w.dtype == dtype
    m = to_f64(w).reshape(shape[0], -1)
    assert_orthonormal_columns(m if m.shape[0] >= m.shape[1] else m.T, gain, UNIT_ROUNDOFF[dtype])
    if dtype in (torch.float16, torch.bfloat16):    # float32 QR, then rounded once
        w32 = fastinit.orthogonal_(torch.empty(shape), gain, seed)
        assert torch.equal(w, w32.to(dtype))
    a = fastinit.orthogonal_(poisoned(shape, np.float16), gain, seed)
    m = a.astype(np.float64).reshape(shape[0], -1)
    assert_orthonormal_columns(m if m.shape[0] >= m.shape[1] else m.T, gain, 2.0**-11)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sparse_honours_generator(rng, dtype):
    rows, cols = int(rng.integers(20, 60)), int(rng.integers(5, 30))
    sparsity, seed = float(rng.uniform(0.05, 0.95)), seed_of(rng) % 2**31
    zeros = math.ceil(sparsity * rows)

    def fill(generator):
        return fastinit.sparse_(poisoned((rows, cols), dtype, "torch"), sparsity, 0.5, generator)

    torch.manual_seed(seed + 7)
    global_state = torch.get_rng_state()
    patterns = {}
    for kind, (make, make_other) in generator_pairs(seed).items():
        a, b, c = fill(make()), fill(make()), fill(make_other())
        for w in (a, b, c):
            assert not torch.isnan(w).any()
            assert ((w == 0).sum(dim=0) == zeros).all()   # exactly ceil(sparsity*rows) zeros
        assert torch.equal(a, b), kind
        assert not torch.equal(a == 0, c == 0), kind        # another key, another zero pattern
        patterns[kind] = a == 0
    assert torch.equal(torch.get_rng_state(), global_state)  # the global RNG is not used
    # generator=None: torch.manual_seed governs values and zero pattern alike
    torch.manual_seed(seed)
    a = fill(None)
    torch.manual_seed(seed)
    assert torch.equal(a, fill(None))


def test_sparse_nonzeros_are_normal(rng):
    rows, cols, std = 400, 100, float(rng.uniform(0.01, 1.0))
    w = fastinit.sparse_(poisoned((rows, cols), np.float64), 0.25, std, seed_of(rng))
    assert ((w == 0).sum(axis=0) == 100).all()
    assert ks_pvalue(w[w != 0], stats.norm(scale=std)) > P_MIN


# --- critical_gain ----------------------------------------------------------------------------

def gaussian_expectation(h, q):
    """E[h(sqrt(q) z)], z ~ N(0, 1), by adaptive quadrature (split at the kink at 0)."""
    s = math.sqrt(q)

    def integrand(z):
        return h(s * z) * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    return sum(integrate.quad(integrand, lo, hi, epsabs=0, epsrel=1e-12, limit=200)[0]
               for lo, hi in ((-np.inf, 0.0), (0.0, np.inf)))


def test_critical_gain_known_answers():
    assert fastinit.critical_gain("relu") == pytest.approx(math.sqrt(2), rel=1e-12)
    assert math.isnan(fastinit.critical_point("relu").q_star)           # any q* at sigma_b=0
    assert fastinit.critical_gain("linear") == pytest.approx(1.0, rel=1e-12)
    assert fastinit.critical_point("tanh") == pytest.approx((1.0, 0.0), abs=1e-10)  # q* -> 0
    assert fastinit.critical_gain("erf") == pytest.approx(math.sqrt(math.pi) / 2, rel=1e-10)
    for slope in (0.01, 0.2, 0.5):
        assert fastinit.critical_gain("leaky_relu", param=slope) == pytest.approx(
            fastinit.calculate_gain("leaky_relu", slope), rel=1e-12)
    assert fastinit.critical_gain("leaky_relu") == pytest.approx(
        fastinit.calculate_gain("leaky_relu"), rel=1e-12)


def test_critical_gain_tanh_brute_force(rng):
    """tanh with a bias: the float64 brute force (adaptive quadrature + Brent's root)."""
    sigma_b = float(rng.uniform(0.05, 2.0))

    def residual(q):
        return (q - gaussian_expectation(lambda x: math.tanh(x) ** 2, q)
                / gaussian_expectation(lambda x: (1 - math.tanh(x) ** 2) ** 2, q) - sigma_b ** 2)

    q_star = optimize.brentq(residual, 1e-6, 1e3, xtol=1e-14, rtol=1e-13)
    sigma_w = 1 / math.sqrt(gaussian_expectation(lambda x: (1 - math.tanh(x) ** 2) ** 2, q_star))
    point = fastinit.critical_point("tanh", sigma_b)
    assert point.q_star == pytest.approx(q_star, rel=1e-9)
    assert point.sigma_w == pytest.approx(sigma_w, rel=1e-9)
    assert fastinit.critical_gain("tanh", sigma_b) == point.sigma_w


_SELU = (1.0507009873554804934193349852946, 1.6732632423543772848170429916717)
REFERENCE_ACTIVATIONS = {  # scalar float64 phi and phi', written independently of fastinit
    "sigmoid": (special.expit, lambda x: special.expit(x) * special.expit(-x)),
    "erf": (special.erf, lambda x: 2 / math.sqrt(math.pi) * math.exp(-x * x)),
    "selu": (lambda x: _SELU[0] * (x if x > 0 else _SELU[1] * math.expm1(x)),
             lambda x: _SELU[0] * (1.0 if x > 0 else _SELU[1] * math.exp(x))),
    "elu": (lambda x: x if x > 0 else math.expm1(x), lambda x: 1.0 if x > 0 else math.exp(x)),
    "gelu": (lambda x: x * special.ndtr(x),
             lambda x: special.ndtr(x) + x * math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)),
    "silu": (lambda x: x * special.expit(x),
             lambda x: special.expit(x) * (1 + x * special.expit(-x))),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_ACTIVATIONS))
def test_critical_point_solves_both_equations(rng, name):
    """(sigma_w, q*) satisfies q* = sigma_w^2 E[phi^2] + sigma_b^2 and chi_1 = 1, both checked
    by adaptive quadrature."""
    phi, dphi = REFERENCE_ACTIVATIONS[name]
    sigma_b = float(rng.uniform(0.05, 1.0))
    sigma_w, q_star = fastinit.critical_point(name, sigma_b)
    assert q_star > 0
    fixed = sigma_w ** 2 * gaussian_expectation(lambda x: phi(x) ** 2, q_star) + sigma_b ** 2
    chi_1 = sigma_w ** 2 * gaussian_expectation(lambda x: dphi(x) ** 2, q_star)
    assert fixed == pytest.approx(q_star, rel=1e-9)
    assert chi_1 == pytest.approx(1.0, rel=1e-9)


def test_critical_gain_callables(rng):
    sigma_b = float(rng.uniform(0.05, 1.0))
    named = fastinit.critical_point("tanh", sigma_b)
    for f in (np.tanh, torch.tanh, torch.nn.Tanh()):
        assert fastinit.critical_point(f, sigma_b) == pytest.approx(named, rel=1e-8)
    exact = fastinit.critical_point(np.tanh, sigma_b,
                                    derivative=lambda x: 1 / np.cosh(np.clip(x, -300, 300)) ** 2)
    assert exact == pytest.approx(named, rel=1e-12)
    assert fastinit.critical_gain(lambda x: np.maximum(x, 0)) == pytest.approx(math.sqrt(2), 1e-10)
    assert fastinit.critical_gain(torch.nn.functional.gelu, sigma_b) == pytest.approx(
        fastinit.critical_gain("gelu", sigma_b), rel=1e-8)
    assert fastinit.critical_gain(torch.nn.SELU(), sigma_b) == pytest.approx(
        fastinit.critical_gain("selu", sigma_b), rel=1e-8)


def test_critical_gain_errors():
    for name in ("relu", "linear", "leaky_relu"):
        with pytest.raises(ValueError, match="homogeneous"):
            fastinit.critical_gain(name, 0.1)
    with pytest.raises(ValueError, match="no edge-of-chaos point"):
        fastinit.critical_gain("softplus")
    with pytest.raises(ValueError, match="no edge-of-chaos point"):
        fastinit.critical_gain(lambda x: np.full_like(x, 0.5))      # phi' = 0: chi_1 = 0
    with pytest.raises(ValueError, match="unsupported activation"):
        fastinit.critical_gain("tanhh")
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match="sigma_b"):
            fastinit.critical_gain("tanh", bad)
    with pytest.raises(ValueError, match="negative_slope"):
        fastinit.critical_gain("leaky_relu", param=math.nan)
    with pytest.raises(ValueError, match="not finite"):
        fastinit.critical_gain(np.exp)
    with pytest.raises(TypeError, match="elementwise"):
        fastinit.critical_gain(lambda x: np.sum(x))
    with pytest.raises(TypeError, match="name or a function"):
        fastinit.critical_gain(1.5)


def test_public_api():
    for name in fastinit.initializers.__all__:
        assert getattr(fastinit, name) is getattr(fastinit.initializers, name)
        assert name in fastinit.__all__
    for name in ("variance_scaling_", "lecun_normal_", "trunc_normal_std_", "delta_orthogonal_",
                 "identity_", "critical_gain", "calculate_fans"):
        assert ">>>" in getattr(fastinit, name).__doc__


def test_model_level_init_plans_the_stream_initializers(rng):
    """fastinit.init_ runs these initializers over many tensors (one key per call)."""
    if not hasattr(fastinit, "init_"):
        pytest.skip("fastinit.init_ not available")
    seed = seed_of(rng)
    shapes = [(int(rng.integers(20, 60)), int(rng.integers(20, 60))), (16, 8, 3, 3)]
    first = [poisoned(s, torch.float32, "torch") for s in shapes]
    again = [poisoned(s, torch.float32, "torch") for s in shapes]
    fastinit.init_(first, "he_normal", generator=fastinit.Generator(seed))
    fastinit.init_(again, "he_normal", generator=fastinit.Generator(seed))
    for w, v in zip(first, again):
        assert torch.equal(w, v)
        bound = 2 * math.sqrt(2 / fastinit.calculate_fans(w)[0]) / fastinit.TRUNCATED_NORMAL_STD
        assert not torch.isnan(w).any() and float(w.abs().max()) <= bound
