"""fastinit.stats against a float64 NumPy reference, on fresh random data, on every backend.

The reference takes the values exactly converted to float64: moments over the finite values
with math.fsum (correctly rounded sums), counts by comparison, histograms by numpy.histogram on
the float64 values.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import fastinit
from fastinit.dispatch import backend as _backend
from fastinit.stats import numpy_stats as ns
from fastinit.stats import DeferredStats, Stats, stats_async

from conftest import has_cuda

TORCH_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
NUMPY_DTYPES = [np.float16, np.float32, np.float64]


# ------------------------------------------------------------------------------- reference

def reference(values, bins=0, range=None):
    """Every field of Stats from float64 values (any shape)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    fin = v[np.isfinite(v)]
    n = fin.size
    ref = dict(count=v.size, zeros=int(np.count_nonzero(v == 0)), nans=int(np.isnan(v).sum()),
               infs=int(np.isinf(v).sum()))
    if n:
        mean = math.fsum(fin) / n
        var = math.fsum((fin - mean) ** 2) / n
        ref.update(mean=mean, var=var, std=math.sqrt(var), min=fin.min(), max=fin.max(),
                   abs_mean=math.fsum(np.abs(fin)) / n, rms=math.sqrt(math.fsum(fin * fin) / n),
                   norm=math.sqrt(math.fsum(fin * fin)))
    else:
        ref.update({k: math.nan for k in ("mean", "var", "std", "min", "max", "abs_mean", "rms")})
        ref["norm"] = 0.0
    if bins:
        if range is None:
            range = (fin.min(), fin.max()) if n else (0.0, 1.0)
        ref["hist"], ref["edges"] = np.histogram(fin, bins, range=range)
    return ref


def assert_matches(s: Stats, ref: dict, rtol=1e-12):
    assert isinstance(s, Stats)
    for k in ("count", "zeros", "nans", "infs"):
        assert getattr(s, k) == ref[k], k
    if ref["count"] - ref["nans"] - ref["infs"] == 0:
        for k in ("mean", "var", "std", "min", "max", "abs_mean", "rms"):
            assert math.isnan(getattr(s, k)), k
        assert s.norm == 0.0
    else:
        assert s.min == ref["min"] and s.max == ref["max"]
        spread = ref["std"] + abs(ref["mean"]) * 1e-4
        assert abs(s.mean - ref["mean"]) <= rtol * spread + 4 * np.spacing(abs(ref["mean"])), (s.mean, ref["mean"])
        for k in ("var", "std", "abs_mean", "rms", "norm"):
            assert getattr(s, k) == pytest.approx(ref[k], rel=rtol, abs=1e-300), k
    if "hist" in ref:
        np.testing.assert_array_equal(s.hist, ref["hist"])
        np.testing.assert_array_equal(s.edges, ref["edges"])
        assert s.hist.dtype == np.int64 and s.edges.dtype == np.float64
    else:
        assert s.hist is None and s.edges is None


def as_f64(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to(torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def random_values(rng, shape, scale=1.0, offset=0.0, zeros=0.1):
    v = rng.standard_normal(shape) * scale + offset
    v[rng.random(shape) < zeros] = 0.0  # exact zeros, as a ReLU makes
    return v


# -------------------------------------------------------------------------------- fields

@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=str)
@pytest.mark.parametrize("view", ["contiguous", "column_slice", "transpose", "strided_3d"])
def test_every_field_torch(rng, dtype, view):
    base = torch.from_numpy(random_values(rng, (97, 261), scale=rng.uniform(0.1, 3),
                                          offset=rng.uniform(-2, 2))).to(dtype)
    x = {"contiguous": base, "column_slice": base[:, 3:200], "transpose": base.t(),
         "strided_3d": base.reshape(97, 9, 29)[::2, 1::3].permute(2, 0, 1)}[view]
    bins = int(rng.integers(1, 80))
    assert_matches(fastinit.stats(x), reference(as_f64(x)))
    assert_matches(fastinit.stats(x, bins=bins), reference(as_f64(x), bins))
    lo, hi = sorted(rng.uniform(-3, 3, 2))
    assert_matches(fastinit.stats(x, bins=bins, range=(lo, hi)), reference(as_f64(x), bins, (lo, hi)))


@pytest.mark.parametrize("dtype", NUMPY_DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_field_numpy_views(rng, dtype):
    base = random_values(rng, (64, 150), scale=2.0, offset=1.0).astype(dtype)
    for x in (base, base[:, ::3], base.T, base[::-1, ::-2], base[5:6, 7], base[3, 4]):
        assert_matches(fastinit.stats(x, bins=16), reference(as_f64(x), 16))


def test_large_tensor_many_work_items(rng):
    x = torch.from_numpy(random_values(rng, (1_100_003,), scale=0.02, offset=0.5)).float()
    assert_matches(fastinit.stats(x, bins=64, range=(0.4, 0.6)), reference(as_f64(x), 64, (0.4, 0.6)))


def test_adversarial_offset_exact_to_float64_rounding(rng):
    # offset 1e4, spread 1e-2: the naive Σx² − n·mean² loses every digit of the variance
    for dtype in (torch.float32, torch.float64):
        x = torch.from_numpy(rng.standard_normal(300_001) * 1e-2 + 1e4).to(dtype)
        ref = reference(as_f64(x))
        s = fastinit.stats(x)
        assert abs(s.mean - ref["mean"]) <= 2 * np.spacing(ref["mean"])
        assert s.var == pytest.approx(ref["var"], rel=4e-15)  # a few ulps, not ulp(1e4) / 1e-4
        assert s.std == pytest.approx(ref["std"], rel=4e-15)


def test_values_near_the_largest_double(rng):
    # the plain sum overflows: the chunk's shift falls back to the midrange, so the mean stays
    # right (one ulp here is 2e292: any spread makes the squares overflow, the variance is not
    # a double and is not checked)
    v = 1.5e308 + rng.standard_normal(5000) * 1e300
    ref_mean = math.fsum(v * 2.0**-20) / v.size * 2.0**20  # exact scaling by a power of two
    for x in (v, np.concatenate([v, [np.nan, -np.inf]])):
        s = fastinit.stats(x)
        assert s.mean == pytest.approx(ref_mean, rel=1e-14)
        assert (s.min, s.max, s.count, s.norm) == (v.min(), v.max(), x.size, math.inf)
    # a spread of 1e308: the variance is not a double; the exact fields still are
    w = rng.uniform(-0.8, 0.8, 5000) * 1e308
    s = fastinit.stats(w, bins=4)
    assert (s.min, s.max, s.count, s.nans) == (w.min(), w.max(), w.size, 0)
    np.testing.assert_array_equal(s.hist, np.histogram(w, 4)[0])


def test_nan_inf_and_signed_zeros_are_counted(rng):
    v = random_values(rng, 50_000, zeros=0.0)
    marks = rng.integers(0, 5, v.size)
    v[marks == 0] = np.nan
    v[marks == 1] = np.inf
    v[(marks == 2) & (rng.random(v.size) < 0.5)] = -np.inf
    v[(marks == 3) & (rng.random(v.size) < 0.3)] = -0.0
    v[(marks == 3) & (rng.random(v.size) < 0.3)] = 0.0
    for x in (v, torch.from_numpy(v).float(), torch.from_numpy(v).half()):
        assert_matches(fastinit.stats(x, bins=10), reference(as_f64(x), 10))
        assert_matches(fastinit.stats(x, bins=10, range=(-1, 1)), reference(as_f64(x), 10, (-1, 1)))


def test_empty_and_all_non_finite():
    for x in (torch.empty(0), np.empty((0, 3), np.float32), torch.empty(4, 0, dtype=torch.bfloat16)):
        s = fastinit.stats(x, bins=4)
        assert_matches(s, reference(as_f64(x), 4))
        np.testing.assert_array_equal(s.edges, np.linspace(0, 1, 5))
    s = fastinit.stats(np.full(7, np.nan), bins=2, range=(-1.0, 1.0))
    assert (s.count, s.nans, s.finite, s.norm) == (7, 7, 0, 0.0) and math.isnan(s.std)
    assert s.hist.tolist() == [0, 0]


def test_constant_tensor_widens_the_default_range():
    s = fastinit.stats(torch.full((5, 5), 3.0), bins=4)
    ref = np.histogram(np.full(25, 3.0), 4)
    np.testing.assert_array_equal(s.edges, ref[1])
    np.testing.assert_array_equal(s.hist, ref[0])
    assert s.var == 0.0 and s.std == 0.0


def test_scalar_and_zero_stride_views(rng):
    assert_matches(fastinit.stats(torch.tensor(-2.5)), reference(np.array(-2.5)))
    col = torch.from_numpy(rng.standard_normal((7, 1)))
    x = col.expand(7, 1000)  # every value 1000 times
    assert_matches(fastinit.stats(x, bins=5), reference(x.numpy(), 5))
    assert fastinit.stats(x).count == 7000


def test_integer_and_bool_inputs_are_read_as_float64(rng):
    a = rng.integers(-50, 50, (30, 40))
    assert_matches(fastinit.stats(a, bins=7), reference(a, 7))
    assert_matches(fastinit.stats(torch.from_numpy(a).int()), reference(a))
    assert fastinit.stats(torch.tensor([True, False, True])).mean == pytest.approx(2 / 3)


def test_requires_grad_tensor_is_read_without_autograd(rng):
    w = torch.from_numpy(rng.standard_normal((40, 30))).float().requires_grad_()
    s = fastinit.stats(w, bins=3)
    assert_matches(s, reference(as_f64(w), 3))
    assert w.grad is None


def test_odd_numpy_memory(rng):
    v = rng.standard_normal(1001)
    big_endian = v.astype(">f4")
    unaligned = np.frombuffer(b"\0" + v.astype(np.float32).tobytes(), dtype=np.float32, offset=1)
    packed = np.zeros(1001, dtype=[("a", np.int8), ("x", np.float32)])["x"]  # 5-byte strides
    packed[...] = v
    for x in (big_endian, unaligned, packed, v.astype(np.float32)[::-7]):
        assert_matches(fastinit.stats(x, bins=9), reference(as_f64(x), 9))
    readonly = v.copy()
    readonly.flags.writeable = False
    assert_matches(fastinit.stats(readonly), reference(v))


# ----------------------------------------------------------------------------- histograms

@pytest.mark.parametrize("bins", [1, 3, 7, 10, 64, 1000])
def test_values_on_edges_go_where_numpy_puts_them(rng, bins):
    lo = float(rng.uniform(-5, 0))
    hi = lo + float(rng.choice([1e-3, 0.1, 1.0, 7.3, 1e3]))
    edges = np.linspace(lo, hi, bins + 1)
    near = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)])
    f32 = near.astype(np.float32).astype(np.float64)  # edges rounded to float32, both ways
    v = np.concatenate([near, f32, rng.uniform(lo - 1, hi + 1, 5000), [lo - 1e-300, hi + 1e-9]])
    rng.shuffle(v)
    want, want_edges = np.histogram(v, bins, range=(lo, hi))
    s = fastinit.stats(v, bins=bins, range=(lo, hi))
    np.testing.assert_array_equal(s.hist, want)
    np.testing.assert_array_equal(s.edges, want_edges)
    # float32 data is binned as its float64 values
    x32 = v.astype(np.float32)
    s32 = fastinit.stats(torch.from_numpy(x32), bins=bins, range=(lo, hi))
    np.testing.assert_array_equal(s32.hist, np.histogram(x32.astype(np.float64), bins, range=(lo, hi))[0])


def test_histogram_all_in_one_bin_and_relu_like(rng):
    zeros = torch.zeros(200_000)
    s = fastinit.stats(zeros, bins=64, range=(0.0, 4.0))
    assert s.hist[0] == 200_000 and s.hist[1:].sum() == 0 and s.zeros == 200_000
    relu = torch.relu(torch.from_numpy(rng.standard_normal(300_000)).float())
    assert_matches(fastinit.stats(relu, bins=64, range=(0.0, 4.0)), reference(as_f64(relu), 64, (0.0, 4.0)))


def test_many_bins_and_tiny_ranges(rng):
    v = rng.uniform(-1, 1, 20_000)
    for bins in (70_000, 2):
        assert_matches(fastinit.stats(v, bins=bins, range=(-1, 1)), reference(v, bins, (-1, 1)))
    tiny = np.array([0.0, 2e-311, 5e-311, 7e-311, 1e-310])  # a subnormal width
    np.testing.assert_array_equal(fastinit.stats(tiny, bins=3, range=(0.0, 1e-310)).hist,
                                  np.histogram(tiny, 3, range=(0.0, 1e-310))[0])
    same = np.array([1.0, 1.0])  # equal ends: widened by ±0.5 as numpy does
    np.testing.assert_array_equal(fastinit.stats(same, bins=3, range=(1.0, 1.0)).edges,
                                  np.histogram(same, 3, range=(1.0, 1.0))[1])


def test_bad_histogram_arguments():
    x = np.ones(4)
    with pytest.raises(ValueError, match="max must be larger than min"):
        fastinit.stats(x, bins=3, range=(1.0, 0.0))
    with pytest.raises(ValueError, match="not finite"):
        fastinit.stats(x, bins=3, range=(0.0, np.inf))
    with pytest.raises(ValueError, match="Too many bins"):
        fastinit.stats(x, bins=100, range=(1.0, np.nextafter(1.0, 2.0)))
    with pytest.raises(ValueError, match="bins must be >= 0"):
        fastinit.stats(x, bins=-1)
    with pytest.raises(TypeError, match="bins must be an int"):
        fastinit.stats(x, bins=2.0)
    with pytest.raises(ValueError, match="needs bins > 0"):
        fastinit.stats(x, range=(0.0, 1.0))
    with pytest.raises(TypeError, match="pair of numbers"):
        fastinit.stats(x, bins=2, range=(0.0,))


# ---------------------------------------------------------------------------------- inputs

def test_bad_inputs():
    with pytest.raises(RuntimeError, match="meta tensor"):
        fastinit.stats(torch.empty(3, 4, device="meta"))
    with pytest.raises(NotImplementedError, match="complex"):
        fastinit.stats(torch.zeros(3, dtype=torch.complex64))
    with pytest.raises(NotImplementedError, match="complex"):
        fastinit.stats(np.zeros(3, dtype=np.complex128))
    with pytest.raises(TypeError, match="expected a torch.Tensor"):
        fastinit.stats(3.0)
    with pytest.raises(TypeError, match="element of type float"):
        fastinit.stats([torch.zeros(2), 1.0])
    with pytest.raises(TypeError, match="real numbers"):
        fastinit.stats(np.array(["a", "b"]))
    with pytest.raises(NotImplementedError, match="sparse"):
        fastinit.stats(torch.zeros(3, 3).to_sparse())


def test_list_of_mixed_tensors_equals_one_by_one(rng):
    xs = [torch.from_numpy(random_values(rng, (int(rng.integers(1, 300)), int(rng.integers(1, 70))))).to(d)
          for d in TORCH_DTYPES]
    xs += [torch.empty(0), random_values(rng, (333, 7)).astype(np.float32)[:, 1:],
           torch.from_numpy(random_values(rng, 200_000)).double(), torch.tensor(1.0)]
    for kwargs in ({}, {"bins": 13, "range": (-2.0, 2.0)}, {"bins": 5}):
        rows = fastinit.stats(xs, **kwargs)
        assert isinstance(rows, list) and len(rows) == len(xs)
        for x, row in zip(xs, rows):
            one = fastinit.stats(x, **kwargs)
            assert_matches(row, reference(as_f64(x), kwargs.get("bins", 0), kwargs.get("range")))
            np.testing.assert_equal(row.to_dict(), one.to_dict())  # bit for bit: split per tensor
    assert fastinit.stats([]) == []
    assert len(fastinit.stats(iter(xs[:2]))) == 2


def test_thread_count_does_not_change_a_bit(rng, backend):
    if backend != "native":
        pytest.skip("the threaded kernel is the native backend's")
    core = _backend.core()
    x = torch.from_numpy(random_values(rng, (900_001,), scale=3.0, offset=1e3)).float()
    t = x[::3]
    args = ([0, 0], [x.data_ptr(), t.data_ptr()], [list(x.shape), list(t.shape)],
            [list(x.stride()), list(t.stride())])
    for bins, ranges in ((0, []), (32, []), (32, [990.0, 1010.0] * 2)):
        runs = [core.stats_cpu(*args, bins, ranges, threads) for threads in (1, 2, 3, 7)]
        assert all(r == runs[0] for r in runs[1:])


def test_record_layout_is_shared_with_the_core(backend):
    if backend == "native":
        assert _backend.core().STATS_RECORD_HEAD == ns.HEAD


def test_backends_agree(rng):
    x = torch.from_numpy(random_values(rng, (513, 77), offset=3.0)).float()
    rows = {}
    for name in fastinit.available_backends():
        previous = fastinit.get_backend()
        fastinit.set_backend(name)
        try:
            rows[name] = fastinit.stats(x, bins=20)
        finally:
            fastinit.set_backend(previous)
    for s in rows.values():
        a, b = s.to_dict(), rows["numpy"].to_dict()
        for k in ("count", "zeros", "nans", "infs", "min", "max", "hist", "edges"):
            np.testing.assert_equal(a[k], b[k])
        for k in ("mean", "var", "abs_mean", "norm"):
            assert a[k] == pytest.approx(b[k], rel=1e-13)


# --------------------------------------------------------------------------- deferred form

def test_stats_async_records_and_merge(rng):
    a = torch.from_numpy(random_values(rng, (300, 40), offset=5.0)).float()
    b = torch.from_numpy(random_values(rng, (120, 40), offset=-1.0)).float()
    kw = dict(bins=16, range=(-4.0, 9.0))
    d = stats_async([a, b], **kw)
    assert isinstance(d, DeferredStats) and d.ready() and len(d) == 2
    assert d.raw().shape == (2, ns.HEAD + 16)
    np.testing.assert_equal([r.to_dict() for r in d.records()], [r.to_dict() for r in fastinit.stats([a, b], **kw)])
    np.testing.assert_equal(d.to_list()[0].to_dict(), d.records()[0].to_dict())
    # the statistics of the same tensors over two steps = those of the values of both steps
    a2, b2 = a * 0.5 - 1.0, b + 3.0
    merged = d.merge(stats_async([a2, b2], **kw)).records()
    for row, x, y in zip(merged, (a, b), (a2, b2)):
        assert_matches(row, reference(np.concatenate([as_f64(x).ravel(), as_f64(y).ravel()]), 16, kw["range"]))
    single = stats_async(a)
    assert isinstance(single.result(), Stats)
    many = DeferredStats.raw_many([d, single, stats_async([b, a], bins=3)])
    for got, want in zip(many, (d.raw(), single.raw(), stats_async([b, a], bins=3).raw())):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="same supplied range"):
        stats_async(a, bins=4).merge(stats_async(a, bins=4))
    with pytest.raises(ValueError, match="cannot merge"):
        d.merge(stats_async([a], **kw))


def test_merge_formula_against_concatenation(rng):
    parts = [random_values(rng, int(rng.integers(0, 50)), offset=float(rng.uniform(-1e3, 1e3)))
             for _ in range(20)]
    recs = [ns.reduce_array(p, 0, None) for p in parts]
    total = recs[0]
    for r in recs[1:]:
        total = ns.merge(total, r)
    s = Stats.from_raw(total, 0)
    assert_matches(s, reference(np.concatenate(parts)), rtol=1e-11)


def test_torch_ops_fallback_matches_reference(rng):
    # the path for devices without a compiled kernel, run here on CPU tensors
    from fastinit.stats.torch_stats import device_records
    xs = [torch.from_numpy(random_values(rng, (77, 31))).half(), torch.empty(0),
          torch.tensor([np.nan, np.inf, 1.0, 1.0])]
    for bins, rng_ in ((0, None), (8, None), (8, (-1.0, 2.0))):
        raw = device_records(xs, bins, rng_).numpy()
        for x, row in zip(xs, raw):
            assert_matches(Stats.from_raw(row, bins), reference(as_f64(x), bins, rng_))


# ------------------------------------------------------------------------------------ CUDA

@pytest.mark.cuda
@pytest.mark.skipif(not has_cuda(), reason="needs a CUDA GPU")
def test_cuda_matches_reference_and_stays_on_device(rng):
    xs = [torch.from_numpy(random_values(rng, (int(rng.integers(1, 3000)), 129))).to(d).cuda()
          for d in TORCH_DTYPES]
    xs += [torch.empty(0, device="cuda"), torch.randn(5_000_001, device="cuda")[1:],
           torch.randn(64, 48, device="cuda").t(), torch.randn(40, 50, device="cuda")[:, ::2]]
    # 64 bins: per-warp shared histograms; 5000: one per CTA; 20000: global atomics
    for kw in ({}, {"bins": 64, "range": (-3.0, 3.0)}, {"bins": 7}, {"bins": 5000, "range": (-3.0, 3.0)},
               {"bins": 20_000, "range": (-1.0, 1.0)}):
        d = stats_async(xs, **kw)
        assert d._parts[0].raw.device.type == "cuda"
        np.testing.assert_array_equal(DeferredStats.raw_many([d, d])[1], d.raw())
        for x, row in zip(xs, d.records()):
            assert_matches(row, reference(as_f64(x.cpu()), kw.get("bins", 0), kw.get("range")))
    zeros = torch.zeros(10_000_000, device="cuda")
    assert fastinit.stats(zeros, bins=64, range=(0.0, 1.0)).hist[0] == 10_000_000
    a = fastinit.stats(xs[5])  # deterministic: same bits twice
    np.testing.assert_equal(a.to_dict(), fastinit.stats(xs[5]).to_dict())


@pytest.mark.cuda
@pytest.mark.skipif(not has_cuda(), reason="needs a CUDA GPU")
def test_cuda_list_longer_than_one_launch_batch(rng):
    xs = [torch.randn(int(k) % 97 + 1, device="cuda") for k in range(1300)]  # > 600 per launch
    for kw in ({}, {"bins": 8}):
        for x, row in zip(xs, fastinit.stats(xs, **kw)):
            assert_matches(row, reference(as_f64(x.cpu()), kw.get("bins", 0)))
