"""The random-stream contract: one key per call, element i a pure function of (key, i)."""
from __future__ import annotations

import math
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import fastinit
from fastinit.dispatch.fill import write_values
from fastinit.stream.logical import Logical
from fastinit.stream.ops import normal_params, trunc_normal_params, uniform_params
from fastinit.dispatch.target import as_target

torch = pytest.importorskip("torch")


def fresh(shape=(37, 29), dtype=np.float32):
    return np.full(shape, np.nan, dtype=dtype)


def test_int_seed_is_a_fixed_key(rng):
    seed = int(rng.integers(0, 2**62))
    a, b = fastinit.normal_(fresh(), generator=seed), fastinit.normal_(fresh(), generator=seed)
    np.testing.assert_array_equal(a, b)
    c = fastinit.normal_(fresh(), generator=seed + 1)
    assert np.count_nonzero(a == c) < 5
    # generator=s is a fresh fastinit.Generator(s) for one call
    np.testing.assert_array_equal(fastinit.normal_(fresh(), generator=fastinit.Generator(seed)), a)


def test_fastinit_generator_advances_and_reseeds(rng):
    seed = int(rng.integers(0, 2**62))
    g = fastinit.Generator(seed)
    first, second = fastinit.uniform_(fresh(), generator=g), fastinit.uniform_(fresh(), generator=g)
    assert np.count_nonzero(first == second) < 5
    g.manual_seed(seed)
    np.testing.assert_array_equal(fastinit.uniform_(fresh(), generator=g), first)


def test_torch_manual_seed_governs_default_key_source(rng):
    seed = int(rng.integers(0, 2**31))
    torch.manual_seed(seed)
    a = fastinit.trunc_normal_(torch.empty(50, 40), std=0.02)
    b = fastinit.trunc_normal_(torch.empty(50, 40), std=0.02)
    assert not torch.equal(a, b)  # the default generator advanced
    torch.manual_seed(seed)
    torch.testing.assert_close(fastinit.trunc_normal_(torch.empty(50, 40), std=0.02), a, rtol=0, atol=0)
    # fastinit.manual_seed seeds the same source
    fastinit.manual_seed(seed)
    torch.testing.assert_close(fastinit.trunc_normal_(torch.empty(50, 40), std=0.02), a, rtol=0, atol=0)


def test_torch_key_is_the_same_under_device_and_inference_contexts_and_threads(rng):
    """The key words are drawn into a reused CPU buffer: a default-device context, inference
    mode or another thread must neither move it nor change the key."""
    import threading

    seed = int(rng.integers(0, 2**31))
    torch.manual_seed(seed)
    expected = fastinit.normal_(torch.empty(20, 10))
    results = []

    def draw() -> None:
        torch.manual_seed(seed)
        results.append(fastinit.normal_(torch.empty(20, 10, device="cpu")))

    with torch.device("meta"):
        draw()
    with torch.inference_mode():
        draw()
    thread = threading.Thread(target=draw)
    thread.start()
    thread.join()
    draw()  # back outside: the buffer made under inference mode still works
    assert len(results) == 4
    for r in results:
        assert torch.equal(r, expected)


def test_torch_generator_advances_and_reproduces(rng):
    seed = int(rng.integers(0, 2**31))
    g = torch.Generator().manual_seed(seed)
    a = fastinit.kaiming_uniform_(torch.empty(64, 32), generator=g)
    b = fastinit.kaiming_uniform_(torch.empty(64, 32), generator=g)
    assert not torch.equal(a, b)
    g.manual_seed(seed)
    assert torch.equal(fastinit.kaiming_uniform_(torch.empty(64, 32), generator=g), a)


def test_numpy_generators(rng):
    seed = int(rng.integers(0, 2**31))
    a = fastinit.normal_(fresh(), generator=np.random.default_rng(seed))
    np.testing.assert_array_equal(fastinit.normal_(fresh(), generator=np.random.default_rng(seed)), a)
    g = np.random.default_rng(seed)
    fastinit.normal_(fresh(), generator=g)
    assert np.count_nonzero(fastinit.normal_(fresh(), generator=g) == a) < 5
    r1 = fastinit.normal_(fresh(), generator=np.random.RandomState(seed))
    np.testing.assert_array_equal(fastinit.normal_(fresh(), generator=np.random.RandomState(seed)), r1)


def test_bad_generator_is_a_type_error():
    x = fresh()
    with pytest.raises(TypeError, match="generator must be"):
        fastinit.normal_(x, generator="seed")
    assert np.isnan(x).all()


@pytest.mark.backends("native")
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("fn,kwargs", [
    (fastinit.uniform_, dict(a=-3.0, b=0.5)),
    (fastinit.normal_, dict(mean=-1.0, std=0.3)),
    (fastinit.trunc_normal_, dict(std=0.02)),
    (fastinit.trunc_normal_, dict(mean=0.5, std=0.1, a=1.2, b=1.3)),   # far in the upper tail
    (fastinit.trunc_normal_, dict(std=1.0, a=-12.0, b=-11.5)),          # far, lower side
    (fastinit.trunc_normal_, dict(std=2.0, a=-1.0, b=float("inf"))),
])
def test_native_equals_numpy_on_random_shapes(fn, kwargs, dtype, rng):
    for _ in range(3):
        shape = tuple(int(n) for n in rng.integers(1, 40, rng.integers(1, 4)))
        seed = int(rng.integers(0, 2**62))
        native = fn(fresh(shape, dtype), generator=seed, **kwargs)
        fastinit.set_backend("numpy")
        reference = fn(fresh(shape, dtype), generator=seed, **kwargs)
        fastinit.set_backend("native")
        np.testing.assert_array_equal(native.view(np.uint8), reference.view(np.uint8))


def test_views_take_the_values_of_their_own_shape(rng):
    """A view is filled as a tensor of its shape in row-major order, touching nothing else."""
    seed = int(rng.integers(0, 2**62))
    base = torch.full((30, 41), -7.0)
    view = base[3:25, 5:36:3]          # strided both ways
    fastinit.normal_(view, generator=seed)
    expected = fastinit.normal_(torch.empty(view.shape), generator=seed)
    assert torch.equal(view, expected)
    outside = torch.ones_like(base, dtype=torch.bool)
    outside[3:25, 5:36:3] = False
    assert torch.all(base[outside] == -7.0)
    t = torch.full((17, 23), -7.0).t()  # transpose: column-major memory
    fastinit.trunc_normal_(t, generator=seed)
    assert torch.equal(t, fastinit.trunc_normal_(torch.empty(23, 17), generator=seed))


@pytest.mark.parametrize("op", ["uniform", "normal", "trunc"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_shard_equals_the_slice_of_the_whole(op, dtype, rng):
    """Any sub-block of a tensor generated alone (with the global logical strides and offset)
    equals the same slice of the whole tensor."""
    rows, cols = 13, 29
    key = int(rng.integers(0, 2**64, dtype=np.uint64))
    fmt = as_target(np.empty(1, dtype), "test").fmt
    call = {"uniform": uniform_params(-1.0, 2.0, fmt), "normal": normal_params(0.0, 1.0, fmt),
            "trunc": trunc_normal_params(0.0, 1.0, -0.5, 3.0, fmt)}[op]
    whole = fresh((rows, cols), dtype)
    write_values(as_target(whole, "test"), call, key, 0)
    for r0, r1, c0, c1 in [(0, 7, 0, cols), (7, 13, 0, cols), (0, rows, 0, 15), (0, rows, 15, 29),
                           (2, 11, 3, 26)]:
        shard = fresh((r1 - r0, c1 - c0), dtype)
        write_values(as_target(shard, "test"), call, key, 0, Logical((cols, 1), r0 * cols + c0))
        np.testing.assert_array_equal(shard, whole[r0:r1, c0:c1])


@pytest.mark.backends("native")
def test_thread_count_does_not_change_a_bit():
    code = ("import hashlib, numpy as np, fastinit; x = np.empty((1500, 999), np.float32); "
            "fastinit.trunc_normal_(x, std=0.02, generator=7); fastinit.normal_(y := np.empty(70001), generator=8); "
            "print(hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest(), fastinit.dispatch.backend.core().cpu_threads())")
    outputs = {}
    for threads in ("1", "2", "3"):
        env = dict(os.environ, OMP_NUM_THREADS=threads, FASTINIT_BACKEND="native")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        digest, used = out.stdout.split()
        assert used == threads
        outputs[threads] = digest
    assert len(set(outputs.values())) == 1, outputs


def test_cached_stream_calls_equal_fresh_ones(rng):
    """uniform_params / trunc_normal_params and FloatFormat.inside are cached: a cached answer
    must be the fresh one, zeros of either sign told apart."""
    from fastinit.stream.dtypes import FORMATS

    for fmt in FORMATS.values():
        for _ in range(20):
            a, b = sorted(float(v) for v in rng.normal(0.0, 3.0, size=2))
            for lo_end in (a, 0.0, -0.0):
                for call in (uniform_params, lambda x, y, f: trunc_normal_params(0.0, 1.0, x, y, f)):
                    first, again = call(lo_end, b, fmt), call(lo_end, b, fmt)
                    assert first == again
                fresh_uniform = uniform_params.__wrapped__(lo_end, b, fmt)
                assert _bits(uniform_params(lo_end, b, fmt).params) == _bits(fresh_uniform.params)
                fresh_trunc = trunc_normal_params.__wrapped__(0.0, 1.0, lo_end, b, fmt)
                assert (_bits(trunc_normal_params(0.0, 1.0, lo_end, b, fmt).params)
                        == _bits(fresh_trunc.params))
                assert _bits(fmt.inside(lo_end, b)) == _bits(fmt._inside(lo_end, b))
    # -0.0 and 0.0 are different keys: their lower bound keeps its sign
    assert math.copysign(1.0, FORMATS["float32"].inside(-0.0, 1.0)[0]) == -1.0
    assert math.copysign(1.0, FORMATS["float32"].inside(0.0, 1.0)[0]) == 1.0


def _bits(values) -> list:
    return [struct.pack("<d", float(v)) for v in values]
