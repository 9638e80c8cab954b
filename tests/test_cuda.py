"""The CUDA backend: bit-identical to the CPU core and the NumPy path, on the caller's stream.

GPU tests (marked ``cuda``) skip cleanly without torch, without a CUDA device or with a core
built without CUDA. The first tests run everywhere: the compiled module imports and answers
``cuda_device_count()`` without a GPU or a driver.
"""
from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys

import pytest

import fastinit
from fastinit.dispatch import backend as _backend

from conftest import capture_cuda_graph, has_cuda

try:
    import torch
except ImportError:  # the CPU-only tests below still run
    torch = None

pytestmark = pytest.mark.backends("native")  # the compiled core; NumPy is the reference here

CORE = _backend.core()
CUDA_BUILD = CORE is not None and CORE.cuda_compiled()
GPU = has_cuda() and CUDA_BUILD
needs_gpu = [
    pytest.mark.cuda,
    pytest.mark.skipif(not has_cuda(), reason="needs torch with a CUDA GPU"),
    pytest.mark.skipif(has_cuda() and not CUDA_BUILD, reason="fastinit was built without CUDA"),
]


def gpu_test(fn):
    for mark in reversed(needs_gpu):
        fn = mark(fn)
    return fn


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True,
                          text=True, timeout=120)


# --------------------------------------------------------------------------- everywhere

def test_core_reports_its_cuda_build_and_devices():
    assert CORE is not None
    assert isinstance(CORE.cuda_compiled(), bool)
    count = CORE.cuda_device_count()
    assert isinstance(count, int) and count >= 0
    if not CORE.cuda_compiled():
        assert count == 0
    elif torch is not None and torch.cuda.is_available():
        assert count == torch.cuda.device_count()


def test_cuda_device_count_is_zero_and_never_raises_without_a_visible_gpu():
    out = run_python("import fastinit._core as c; print(c.cuda_compiled(), c.cuda_device_count())",
                     CUDA_VISIBLE_DEVICES="")
    assert out.returncode == 0, out.stderr
    compiled, count = out.stdout.split()
    assert count == "0"
    assert compiled == str(CUDA_BUILD)


def test_fill_cuda_without_a_device_is_a_runtime_error():
    """No abort, no silent success: a Python RuntimeError (naming the CUDA call that failed in a
    CUDA build, saying there is no CUDA in the others). Run in a process that sees no GPU, so
    that the made-up pointer is never written."""
    code = ("import fastinit._core as c\n"
            "try:\n"
            "    c.fill_cuda(1, 0, 4096, [8], [1], [1], 0, 1, 2, 0, [0.0, 1.0], 0, 0)\n"
            "except RuntimeError as e:\n"
            "    print('RuntimeError:', e)\n"
            "else:\n"
            "    print('no error')\n"
            # zero elements: nothing to launch, so no CUDA call at all in a CUDA build
            "try:\n"
            "    c.fill_cuda(1, 0, 4096, [0, 5], [5, 1], [5, 1], 0, 1, 2, 0, [0.0, 1.0], 0, 0)\n"
            "    print('empty ok')\n"
            "except RuntimeError as e:\n"
            "    print('empty RuntimeError:', e)\n")
    out = run_python(code, CUDA_VISIBLE_DEVICES="")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("RuntimeError:"), out.stdout
    if CUDA_BUILD:
        assert "fastinit CUDA error in cudaGetDevice" in lines[0], lines[0]
        assert lines[1] == "empty ok"
    else:
        assert "without CUDA" in lines[0]


# --------------------------------------------------------------------------- GPU helpers

DTYPES = ["float32", "float64", "float16", "bfloat16"]


def tdtype(name):
    return getattr(torch, name)


def int_view(t):
    width = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()]
    return t.contiguous().view(width)


def assert_same_bits(actual, expected, what=""):
    """Bitwise equality (so -0.0 != 0.0 and every unwritten NaN is caught)."""
    a, e = actual.detach().cpu(), expected.detach().cpu()
    assert a.shape == e.shape and a.dtype == e.dtype, (a.shape, e.shape, a.dtype, e.dtype)
    ai, ei = int_view(a).flatten(), int_view(e).flatten()
    if not torch.equal(ai, ei):
        bad = (ai != ei).nonzero().flatten()
        first = bad[:5].tolist()
        af, ef = a.contiguous().flatten(), e.contiguous().flatten()
        raise AssertionError(
            f"{what}: {bad.numel()} of {a.numel()} elements differ; first at flat indices {first}: "
            f"got {[af[i].item() for i in first]}, expected {[ef[i].item() for i in first]}")


def assert_same_or_both_nan(actual, expected, what=""):
    """Equal bits where finite or infinite; NaN where the other is NaN (the bits of a NaN made
    from an infinite parameter are the hardware's own and differ between CPU and GPU)."""
    a, e = actual.detach().cpu().float(), expected.detach().cpu().float()
    nan_a, nan_e = torch.isnan(a), torch.isnan(e)
    assert torch.equal(nan_a, nan_e), what
    assert_same_bits(actual.detach().cpu()[~nan_a], expected.detach().cpu()[~nan_e], what)


@contextlib.contextmanager
def using_backend(name):
    previous = fastinit.get_backend()
    fastinit.set_backend(name)
    try:
        yield
    finally:
        fastinit.set_backend(previous)


# Each op fills a tensor in place with a fixed int seed (one fixed key per seed).
SHAPE_OPS = {
    "uniform": lambda t, g: fastinit.uniform_(t, -0.7, 1.3, generator=g),
    "normal": lambda t, g: fastinit.normal_(t, 0.25, 2.0, generator=g),
    "trunc_normal": lambda t, g: fastinit.trunc_normal_(t, generator=g),
    "trunc_normal_std002": lambda t, g: fastinit.trunc_normal_(t, std=0.02, a=-0.04, b=0.04, generator=g),
    "trunc_normal_far_tail": lambda t, g: fastinit.trunc_normal_(t, mean=1.0, std=2.0, a=17.0, b=19.0,
                                                                  generator=g),
    "trunc_normal_far_lower": lambda t, g: fastinit.trunc_normal_(t, a=-float("inf"), b=-9.0, generator=g),
    "trunc_normal_one_sided": lambda t, g: fastinit.trunc_normal_(t, a=0.5, b=float("inf"), generator=g),
}
FAN_OPS = {
    "kaiming_uniform": lambda t, g: fastinit.kaiming_uniform_(t, a=math.sqrt(5), generator=g),
    "kaiming_normal": lambda t, g: fastinit.kaiming_normal_(t, mode="fan_out", nonlinearity="relu",
                                                            generator=g),
    "xavier_uniform": lambda t, g: fastinit.xavier_uniform_(t, gain=5.0 / 3.0, generator=g),
    "xavier_normal": lambda t, g: fastinit.xavier_normal_(t, generator=g),
}
ALL_OPS = {**SHAPE_OPS, **FAN_OPS}
TRUNC_BOUNDS = {"trunc_normal": (-2.0, 2.0), "trunc_normal_std002": (-0.04, 0.04),
                "trunc_normal_far_tail": (17.0, 19.0), "trunc_normal_far_lower": (-math.inf, -9.0),
                "trunc_normal_one_sided": (0.5, math.inf)}


def cpu_reference(op, shape, dtype, seed, numpy_too):
    """The values the CPU core gives a fresh tensor of this shape (and the NumPy path, if
    asked: it must give the same bits)."""
    expected = ALL_OPS[op](torch.empty(shape, dtype=dtype), seed)
    if numpy_too:
        with using_backend("numpy"):
            via_numpy = ALL_OPS[op](torch.empty(shape, dtype=dtype), seed)
        assert_same_bits(via_numpy, expected, f"{op}: NumPy path vs CPU core")
    return expected


def poisoned_cuda(shape, dtype, device="cuda"):
    return torch.full(shape, float("nan"), dtype=dtype, device=device)


# --------------------------------------------------------------------------- bit identity

SIZES = [1, 3, 4, 4097, 2**20 + 3]


@gpu_test
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(ALL_OPS))
def test_contiguous_matches_cpu_and_numpy(op, dtype, n, rng):
    seed = int(rng.integers(0, 2**62))
    shape = (n,) if op in SHAPE_OPS else (n, 1)  # fan-based inits need two dims
    dt = tdtype(dtype)
    t = poisoned_cuda(shape, dt)
    out = ALL_OPS[op](t, seed)
    assert out is t and t.device.type == "cuda"
    expected = cpu_reference(op, shape, dt, seed, numpy_too=n <= 4097)
    assert_same_bits(t, expected, f"{op} {dtype} n={n}")
    if op in TRUNC_BOUNDS:
        lo, hi = TRUNC_BOUNDS[op]
        values = t.double()
        assert bool((values >= lo).all()) and bool((values <= hi).all())


# name -> (base shape, view of the base). Each takes a different path of the kernel launcher:
# row slices stay contiguous, column slices and a middle-dim permute are runs along the last
# dim, narrow columns, transposes and a full permute are per-element with reordered dims, a
# 1-element offset breaks the vector alignment, a step of 2 is a strided run.
VIEWS = {
    "row_slice": ((50, 64), lambda b: b[5:17]),
    "column_slice": ((257, 131), lambda b: b[:, 3:120]),
    "narrow_columns": ((300, 50), lambda b: b[:, 7:10]),
    "transpose": ((96, 130), lambda b: b.t()),
    "permute_3d": ((6, 40, 33), lambda b: b.permute(2, 0, 1)),
    "permute_keep_last": ((6, 40, 33), lambda b: b.permute(1, 0, 2)),
    "offset_by_one": ((4099,), lambda b: b[1:]),
    "step_two": ((2001,), lambda b: b[::2]),
    "column": ((77, 9), lambda b: b[:, 4]),
    "scalar": ((3, 5), lambda b: b[1, 2]),
    "slice_of_transpose": ((64, 100), lambda b: b.t()[10:90, 3:61]),
}


@gpu_test
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("view", list(VIEWS))
@pytest.mark.parametrize("op", list(ALL_OPS))
def test_views_match_cpu_and_leave_the_rest_untouched(op, view, dtype, rng):
    base_shape, make = VIEWS[view]
    v_probe = make(torch.empty(base_shape))
    if op in FAN_OPS and v_probe.dim() < 2:
        pytest.skip("fan-based inits need two dims")
    seed = int(rng.integers(0, 2**62))
    dt = tdtype(dtype)
    base = poisoned_cuda(base_shape, dt)
    v = make(base)
    ALL_OPS[op](v, seed)
    expected = cpu_reference(op, tuple(v.shape), dt, seed, numpy_too=True)
    assert_same_bits(v, expected, f"{op} {dtype} {view}")
    mask = torch.zeros(base_shape, dtype=torch.bool)
    make(mask).fill_(True)
    outside = base.cpu()[~mask]
    assert bool(torch.isnan(outside.float()).all()), f"{view}: wrote outside the view"


@gpu_test
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("first", [0, 1, 2, 3, 5, 4095])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 4097])
def test_shards_with_a_logical_offset_equal_the_slice_of_the_whole(first, n, dtype, rng):
    """A piece of a tensor generated alone (logical indices first .. first + n - 1) equals that
    slice of the whole: the partial Philox blocks at both ends of the contiguous kernel."""
    from fastinit.dispatch.fill import write_values
    from fastinit.stream.logical import Logical
    from fastinit.stream.ops import normal_params, trunc_normal_params, uniform_params
    from fastinit.dispatch.target import as_target
    key = int(rng.integers(0, 2**63))
    dt = tdtype(dtype)
    whole = torch.empty(first + n + 9, dtype=dt)
    fmt = as_target(whole, "test").fmt
    for call in (uniform_params(-1.0, 2.0, fmt), normal_params(0.5, 3.0, fmt),
                 trunc_normal_params(0.0, 1.0, -1.5, 2.5, fmt)):
        write_values(as_target(whole, "test"), call, key, 0)
        piece = poisoned_cuda((n,), dt)
        write_values(as_target(piece, "test"), call, key, 0, Logical((1,), first))
        assert_same_bits(piece, whole[first:first + n], f"op {call.op} first={first} n={n}")


@gpu_test
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16bit_rounding_edges_match_the_cpu(dtype, rng):
    """The 16-bit outputs are rounded by the GPU's conversion instruction on the fast path: it
    must agree with the CPU's software rounding at overflow, at subnormal results and for
    float32 subnormal inputs, and the NaN-producing (non-finite) parameters take the software
    path."""
    dt = tdtype(dtype)
    big = 65504.0 if dtype == "float16" else 3.3e38
    cases = [
        lambda t, g: fastinit.normal_(t, 0.0, big / 3.0, generator=g),         # overflow to inf
        lambda t, g: fastinit.normal_(t, big * 0.9, big / 20.0, generator=g),   # near the top
        lambda t, g: fastinit.normal_(t, 0.0, 1e-6, generator=g),               # f16 subnormals
        lambda t, g: fastinit.normal_(t, 0.0, 1e-39, generator=g),              # f32 subnormals
        lambda t, g: fastinit.uniform_(t, -big, big, generator=g),
        lambda t, g: fastinit.uniform_(t, -1e-38, 1e-38, generator=g),
        lambda t, g: fastinit.trunc_normal_(t, 0.0, 1e-5, -3e-5, 2e-5, generator=g),
    ]
    for i, fill in enumerate(cases):
        seed = int(rng.integers(0, 2**62))
        t = poisoned_cuda((100_003,), dt)
        fill(t, seed)
        assert_same_bits(t, fill(torch.empty(t.shape, dtype=dt), seed), f"{dtype} case {i}")
    # std beyond float32: infinite in the compute type, so values are +-inf (NaN where z = 0)
    seed = int(rng.integers(0, 2**62))
    t = poisoned_cuda((100_003,), dt)
    fastinit.normal_(t, 0.0, 1e39, generator=seed)
    assert_same_or_both_nan(t, fastinit.normal_(torch.empty(t.shape, dtype=dt), 0.0, 1e39, generator=seed),
                            f"{dtype} infinite std")


@gpu_test
def test_default_generator_draws_from_torch_like_the_cpu():
    torch.manual_seed(1234)
    t = fastinit.kaiming_normal_(poisoned_cuda((300, 200), torch.float32))
    torch.manual_seed(1234)
    assert_same_bits(t, fastinit.kaiming_normal_(torch.empty(300, 200)))


# Every stream initializer of the mirror and of fastinit.initializers: (name, shape, kwargs).
STREAM_INITIALIZERS = [
    ("uniform_", (64, 48), {"a": -0.3, "b": 0.7}),
    ("normal_", (64, 48), {"std": 0.02}),
    ("trunc_normal_", (64, 48), {"std": 0.02, "a": -0.03, "b": 0.05}),
    ("xavier_uniform_", (64, 48), {}),
    ("xavier_normal_", (64, 48), {}),
    ("kaiming_uniform_", (32, 16, 3, 3), {"a": math.sqrt(5)}),
    ("kaiming_normal_", (32, 16, 3, 3), {"mode": "fan_out"}),
    ("variance_scaling_", (48, 64), {"mode": "fan_avg", "layout": "jax"}),
    ("lecun_normal_", (64, 48), {}),
    ("he_uniform_", (3, 3, 16, 32), {"layout": "keras"}),
    ("glorot_normal_", (64, 48), {}),
    ("trunc_normal_std_", (64, 48), {"std": 0.02}),
]


@gpu_test
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16] if torch else [])
@pytest.mark.parametrize("name, shape, kwargs", STREAM_INITIALIZERS)
def test_every_stream_initializer_gives_the_cpu_bits_on_cuda(name, shape, kwargs, dtype, rng):
    seed = int(rng.integers(0, 2**62))
    fn = getattr(fastinit, name)
    t = fn(poisoned_cuda(shape, dtype), generator=seed, **kwargs)
    assert_same_bits(t, fn(torch.empty(shape, dtype=dtype), generator=seed, **kwargs), name)


@gpu_test
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16] if torch else [])
def test_whole_tensor_initializers_on_cuda(dtype, rng):
    """orthogonal_ / delta_orthogonal_ (QR on the device: equal to the CPU's up to the QR's
    rounding, orthogonal in either case), sparse_ (the CPU's zero pattern and values),
    identity_ (exact)."""
    seed = int(rng.integers(0, 2**62))
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    w = fastinit.orthogonal_(poisoned_cuda((40, 96), dtype), gain=1.5, generator=seed)
    ref = fastinit.orthogonal_(torch.empty(40, 96, dtype=dtype), gain=1.5, generator=seed)
    torch.testing.assert_close(w.cpu().float(), ref.float(), rtol=0, atol=tol * 1.5)
    wf = w.float() / 1.5
    torch.testing.assert_close(wf @ wf.T, torch.eye(40, device="cuda"), rtol=0, atol=tol * 10)
    k = fastinit.delta_orthogonal_(poisoned_cuda((16, 8, 3, 3), dtype), generator=seed)
    assert not torch.isnan(k).any()
    assert torch.count_nonzero(k[:, :, [0, 2], :]) == 0 and torch.count_nonzero(k[:, :, :, [0, 2]]) == 0
    centre = k[:, :, 1, 1].float()
    torch.testing.assert_close(centre.T @ centre, torch.eye(8, device="cuda"), rtol=0, atol=tol * 10)
    s = fastinit.sparse_(poisoned_cuda((50, 30), dtype), sparsity=0.3, std=0.1, generator=seed)
    s_ref = fastinit.sparse_(torch.empty(50, 30, dtype=dtype), sparsity=0.3, std=0.1, generator=seed)
    assert_same_bits(s, s_ref, "sparse_")
    assert ((s == 0).sum(dim=0) == math.ceil(0.3 * 50)).all()
    i = fastinit.identity_(poisoned_cuda((8, 8, 3, 3), dtype), gain=2.0)
    assert_same_bits(i, fastinit.identity_(torch.empty(8, 8, 3, 3, dtype=dtype), gain=2.0), "identity_")


@gpu_test
def test_zero_elements_are_a_no_op():
    for shape in [(0,), (0, 7), (5, 0, 3)]:
        t = torch.empty(shape, device="cuda")
        assert fastinit.normal_(t, generator=1) is t
    torch.cuda.synchronize()


# --------------------------------------------------------------------------- streams, graphs

@gpu_test
def test_work_is_ordered_on_the_callers_side_stream(rng):
    """Enqueued on torch's current stream: the fill runs after the work queued before it on a
    busy side stream, not at once on another stream."""
    seed = int(rng.integers(0, 2**62))
    n = 1 << 22
    side = torch.cuda.Stream()
    x = torch.empty(n, device="cuda")
    torch.cuda.synchronize()
    with torch.cuda.stream(side):
        sleep = getattr(torch.cuda, "_sleep", None)
        if sleep is not None:
            sleep(200_000_000)  # ~0.1 s of GPU time before the next work on this stream
        else:
            a = torch.randn(4096, 4096, device="cuda")
            for _ in range(20):
                a = a @ a / 64
        x.fill_(float("nan"))
        fastinit.normal_(x, generator=seed)
    assert torch.cuda.current_stream() != side
    side.synchronize()
    assert_same_bits(x, fastinit.normal_(torch.empty(n), generator=seed), "side stream")


@gpu_test
def test_graph_capture_and_replay(rng):
    """No host synchronisation inside a fill (capture would fail), and a captured fill replays
    the values of the key drawn at capture."""
    s1, s2 = int(rng.integers(0, 2**62)), int(rng.integers(0, 2**62))
    a = poisoned_cuda((1000, 333), torch.float32)
    b = poisoned_cuda((4097,), torch.bfloat16)
    c = poisoned_cuda((257, 131), torch.float16)[:, 3:120]
    fills = lambda: (fastinit.normal_(a, generator=s1),  # noqa: E731
                     fastinit.trunc_normal_(b, std=0.02, a=-0.04, b=0.04, generator=s2),
                     fastinit.uniform_(c, -1.0, 1.0, generator=s1))
    graph = capture_cuda_graph(fills)
    expected = (fastinit.normal_(torch.empty(a.shape), generator=s1),
                fastinit.trunc_normal_(torch.empty(b.shape, dtype=torch.bfloat16), std=0.02, a=-0.04,
                                       b=0.04, generator=s2),
                fastinit.uniform_(torch.empty(c.shape, dtype=torch.float16), -1.0, 1.0, generator=s1))
    for _ in range(2):
        for t in (a, b, c):
            t.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        for t, e in zip((a, b, c), expected):
            assert_same_bits(t, e, "graph replay")


@gpu_test
def test_capture_of_a_kernel_never_launched_before(rng):
    """The first fill of an (op, dtype, layout) ever made is inside the capture: no lazy
    initialisation (occupancy queries, first-launch module loading) may break it."""
    seed = int(rng.integers(0, 2**62))
    x = poisoned_cuda((3, 5, 7), torch.float64)[:, 1:, ::2]  # float64 runs: a fresh kernel
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fastinit.trunc_normal_(x, mean=1.0, std=0.5, a=-3.0, b=-2.5, generator=seed)
    x.fill_(float("nan"))
    graph.replay()
    torch.cuda.synchronize()
    want = fastinit.trunc_normal_(torch.empty(x.shape, dtype=torch.float64), mean=1.0, std=0.5,
                                  a=-3.0, b=-2.5, generator=seed)
    assert_same_bits(x, want, "first launch inside capture")


@gpu_test
def test_a_cuda_generator_inside_capture_is_a_clear_error():
    x = torch.empty(100, device="cuda")
    g = torch.Generator(device="cuda").manual_seed(1)
    graph = torch.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match="CUDA graph capture"):
        with torch.cuda.graph(graph):
            fastinit.normal_(x, generator=g)


# --------------------------------------------------------------------------- errors, devices

@gpu_test
def test_bad_device_index_is_a_runtime_error_naming_the_call():
    t = poisoned_cuda((1000,), torch.float32)
    device_before = torch.cuda.current_device()
    bad = torch.cuda.device_count() + 3
    with pytest.raises(RuntimeError, match=r"fastinit CUDA error in cudaSetDevice.*invalid device ordinal"):
        CORE.fill_cuda(1, 0, t.data_ptr(), [1000], [1], [1], 0, 1, 2, 0, [0.0, 1.0], bad, 0)
    assert torch.cuda.current_device() == device_before
    with pytest.raises(ValueError, match="dtype"):
        CORE.fill_cuda(1, 9, t.data_ptr(), [1000], [1], [1], 0, 1, 2, 0, [0.0, 1.0], 0, 0)
    # the error was reported once and cleared: the next call works
    fastinit.normal_(t, generator=5)
    torch.cuda.synchronize()
    assert_same_bits(t, fastinit.normal_(torch.empty(1000), generator=5), "after an error")


@gpu_test
@pytest.mark.skipif(not (torch is not None and torch.cuda.is_available() and torch.cuda.device_count() >= 2),
                    reason="needs two CUDA GPUs")
def test_tensor_on_another_device_and_current_device_restored(rng):
    seed = int(rng.integers(0, 2**62))
    torch.cuda.set_device(0)
    t = poisoned_cuda((513, 257), torch.bfloat16, device="cuda:1")
    fastinit.xavier_normal_(t, generator=seed)
    assert torch.cuda.current_device() == 0
    torch.cuda.synchronize(1)
    assert_same_bits(t, fastinit.xavier_normal_(torch.empty(t.shape, dtype=torch.bfloat16), generator=seed),
                     "cuda:1")
    with torch.cuda.device(1):  # also on the current stream of device 1 when that is current
        u = poisoned_cuda((1000,), torch.float32, device="cuda:1")
        fastinit.uniform_(u, generator=seed)
    torch.cuda.synchronize(1)
    assert_same_bits(u, fastinit.uniform_(torch.empty(1000), generator=seed), "cuda:1 current")
