"""Never hang, never crash, never write a wrong value (issue 11): fork, tensor subclasses,
tracing modes, odd memory, torch's argument rules, the core's own checks.

Fork and interrupt scenarios run in a subprocess with a timeout, so a hang fails the test
instead of hanging the suite.
"""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

import fastinit
from fastinit.dispatch import backend as _backend

torch = pytest.importorskip("torch")
CORE = _backend.core()
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


def run_script(code: str, timeout: float = 120, env: dict | None = None) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=timeout, env=env or ENV)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def generator_state():
    return torch.default_generator.get_state().clone()


# ------------------------------------------------------------------------------------ fork

@pytest.mark.parametrize("with_torch", [False, True])
def test_forked_children_fill_in_parallel_without_hanging(with_torch, backend):
    """The parent runs parallel fills and statistics (the pool's threads exist), then a fork
    pool's workers do the same: no deadlock, and the values are bit for bit the parent's."""
    out = run_script(f"""
        import multiprocessing as mp, numpy as np
        {"import torch" if with_torch else ""}
        import fastinit
        fastinit.set_backend({backend!r})

        def work(seed):
            x = np.empty(3_000_000, np.float32)
            fastinit.normal_(x, generator=seed)
            s = fastinit.stats([x, x[::3]], bins=16, range=(-4.0, 4.0))
            return x[:4].tolist() + x[-4:].tolist(), [r.std for r in s], [int(r.hist.sum()) for r in s]

        if __name__ == "__main__":
            parent = [work(s) for s in range(3)]
            with mp.get_context("fork").Pool(2) as pool:
                children = pool.map(work, range(3))
            assert children == parent, (children, parent)
            print("ok")
        """, timeout=180)
    assert out.strip().endswith("ok")


def test_dataloader_fork_workers_initialize_without_hanging():
    out = run_script("""
        import torch, fastinit
        from torch.utils.data import DataLoader, Dataset

        class Weights(Dataset):
            def __len__(self): return 4
            def __getitem__(self, i):
                torch.set_num_threads(2)  # workers that keep more than one thread
                w = torch.empty(1024, 1024)
                fastinit.trunc_normal_(w, std=0.02, generator=i)
                return fastinit.stats(w).std

        if __name__ == "__main__":
            fastinit.normal_(torch.empty(4_000_000))  # the parent's pool is running
            loader = DataLoader(Weights(), num_workers=2, multiprocessing_context="fork")
            got = [float(s) for s in loader]
            want = [float(Weights()[i]) for i in range(4)]
            assert got == want, (got, want)
            print("ok")
        """, timeout=180)
    assert out.strip().endswith("ok")


@pytest.mark.backends("native")
def test_thread_count_follows_torch():
    """torch.set_num_threads bounds fastinit's threads too; the values never depend on it."""
    out = run_script("""
        import hashlib, torch, fastinit
        digests = set()
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            w = fastinit.normal_(torch.empty(3_000_000), generator=5)
            digests.add(hashlib.sha256(w.numpy().tobytes()).hexdigest())
        assert len(digests) == 1
        print("ok")
        """)
    assert out.strip() == "ok"


@pytest.mark.backends("native")
def test_a_long_fill_stops_at_ctrl_c():
    """A fill of gigabytes runs in chunks between which a pending Ctrl-C stops it."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, numpy as np, fastinit
        x = np.empty(1 << 28, np.float32)   # 1 GiB
        print("ready", flush=True)
        try:
            for i in range(1000):
                fastinit.normal_(x, generator=i)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(0)
        print("finished", flush=True)
        """)], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        waited = time.monotonic() - sent
    finally:
        proc.kill()
    assert out.strip() == "interrupted"
    assert waited < 10, f"Ctrl-C took {waited:.1f} s to stop the fill"


# ------------------------------------------------------------------------ subclasses, modes

INIT_FNS = {
    "uniform_": lambda t, g: fastinit.uniform_(t, -0.5, 0.5, generator=g),
    "normal_": lambda t, g: fastinit.normal_(t, 0.0, 0.1, generator=g),
    "trunc_normal_": lambda t, g: fastinit.trunc_normal_(t, std=0.02, generator=g),
    "kaiming_uniform_": lambda t, g: fastinit.kaiming_uniform_(t, a=math.sqrt(5), generator=g),
    "xavier_normal_": lambda t, g: fastinit.xavier_normal_(t, generator=g),
}


@pytest.mark.parametrize("name", sorted(INIT_FNS))
def test_wrapper_subclass_is_filled_through_its_own_dispatch(name, backend):
    """TwoTensor (a wrapper subclass, data_ptr 0): copy_ runs its __torch_dispatch__, so both
    inner tensors get the values a plain tensor gets."""
    from torch.testing._internal.two_tensor import TwoTensor
    fn = INIT_FNS[name]
    t = TwoTensor(torch.full((6, 5), float("nan")), torch.full((6, 5), float("nan")))
    assert fn(t, 7) is t
    plain = fn(torch.empty(6, 5), 7)
    assert torch.equal(t.a, plain) and torch.equal(t.b, plain)


def test_fake_tensors_are_a_no_op_that_draws_no_key():
    from torch._subclasses.fake_tensor import FakeTensorMode
    before = generator_state()
    with FakeTensorMode():
        f = torch.empty(16, 8)
        for fn in INIT_FNS.values():
            assert fn(f, None) is f
        fastinit.init_([f], "normal")
        with pytest.raises(RuntimeError, match="fake tensor"):
            fastinit.stats(f)
    assert torch.equal(generator_state(), before)
    with FakeTensorMode():  # a model built under the mode: reset in place, no crash
        linear = torch.nn.Linear(8, 16)
        fastinit.reset_parameters(linear)
        assert fastinit.dispatch.target.is_fake(linear.weight)


def test_functionalized_fills_equal_eager_ones(backend):
    def program(x):
        fastinit.normal_(x, generator=3)
        fastinit.uniform_(x[:2], generator=4)
        return x * 2, fastinit.stats(x).mean

    eager = program(torch.zeros(5))
    functional = torch.func.functionalize(program)(torch.zeros(5))
    assert torch.equal(functional[0], eager[0]) and functional[1] == eager[1]


def test_local_tensor_mode_fills_every_rank():
    lt = pytest.importorskip("torch.distributed._local_tensor")
    dist = pytest.importorskip("torch.distributed")
    fake_pg = pytest.importorskip("torch.testing._internal.distributed.fake_pg")
    if not dist.is_initialized():
        dist.init_process_group("fake", rank=0, world_size=2, store=fake_pg.FakeStore())
    try:
        with lt.LocalTensorMode(2):
            t = torch.empty(4, 3)
            fastinit.normal_(t, generator=9)
            fastinit.init_([t], "uniform")
            ranks = [t._local_tensors[r] for r in sorted(t._local_tensors)]
        assert all(torch.isfinite(r).all() for r in ranks)
        assert all(torch.equal(r, ranks[0]) for r in ranks)
    finally:
        dist.destroy_process_group()


def test_torch_function_overrides_see_the_fastinit_function():
    seen = []

    class Logged(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            seen.append(getattr(func, "__name__", str(func)))
            return super().__torch_function__(func, types, args, kwargs or {})

    t = torch.zeros(4, 6).as_subclass(Logged)
    fastinit.uniform_(t, generator=1)
    fastinit.normal_(t, generator=1)
    fastinit.constant_(t, 2.0)
    fastinit.kaiming_uniform_(t, generator=1)
    assert seen[:1] == ["uniform_"] and "normal_" in seen and "constant_" in seen
    assert "kaiming_uniform_" in seen
    assert type(t) is Logged and bool((t.as_subclass(torch.Tensor) != 2.0).all())


# ------------------------------------------------------------------------------- odd memory

def test_negative_view_gets_values_in_range(backend):
    n = torch._neg_view(torch.zeros(1000))
    fastinit.uniform_(n, 0.25, 0.75, generator=1)
    values = n.resolve_neg()
    assert bool((values >= 0.25).all() and (values < 0.75).all())
    assert torch.equal(values, fastinit.uniform_(torch.empty(1000), 0.25, 0.75, generator=1))


def test_inference_tensor_outside_inference_mode_is_refused_untouched():
    with torch.inference_mode():
        t = torch.full((5,), 3.0)
    before = generator_state()
    with pytest.raises(RuntimeError, match="Inplace update to inference tensor outside InferenceMode"):
        fastinit.uniform_(t)
    assert torch.equal(t, torch.full((5,), 3.0)) and torch.equal(generator_state(), before)
    with torch.inference_mode():
        fastinit.uniform_(t, generator=1)
    assert not bool((t == 3.0).any())


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">f2", "<f4"])
def test_byte_order_of_numpy_arrays_is_honoured(dtype, backend):
    swapped = np.full(1001, np.nan, dtype=dtype)
    fastinit.normal_(swapped, generator=11)
    native = fastinit.normal_(np.empty(1001, dtype=np.dtype(dtype).newbyteorder("=")), generator=11)
    np.testing.assert_array_equal(swapped.astype(np.float64), native.astype(np.float64))


def test_overlapping_views_are_refused_before_any_draw(backend):
    base = torch.zeros(20)
    before = generator_state()
    for view in (base.as_strided((3, 3), (2, 1)), base[:1].expand(4), base.as_strided((4, 4), (0, 1))):
        with pytest.raises(RuntimeError, match="more than one element"):
            fastinit.uniform_(view)
    assert torch.equal(base, torch.zeros(20)) and torch.equal(generator_state(), before)
    with pytest.raises(RuntimeError, match="more than one element"):
        fastinit.normal_(np.lib.stride_tricks.as_strided(np.zeros(10), (3, 3), (16, 8)))


def test_orthogonal_checks_its_gain_before_refusing_an_overlapping_view(backend):
    # torch's orthogonal_ writes a view whose overlap torch cannot prove (copy_), then rejects a
    # bad gain in mul_(gain): a TypeError, as here; with a good gain torch writes in a racy order
    # and fastinit refuses the view. Nothing is written either way. (Found by tests/test_fuzz.py.)
    base = torch.zeros(20)
    view = base.as_strided((2, 3), (2, 1))
    with pytest.raises(TypeError):
        torch.nn.init.orthogonal_(view.clone().as_strided((2, 3), (2, 1)), gain="0.5")
    with pytest.raises(TypeError, match="gain"):
        fastinit.orthogonal_(view, gain="0.5")
    with pytest.raises(RuntimeError, match="more than one element"):
        fastinit.orthogonal_(view, gain=0.5)
    # an expanded view: torch's copy_ proves the overlap and refuses it before the gain
    expanded = base[:4].expand(3, 4)
    with pytest.raises(RuntimeError, match="more than one element"):
        torch.nn.init.orthogonal_(expanded, gain=None)
    with pytest.raises(RuntimeError, match="more than one element"):
        fastinit.orthogonal_(expanded, gain=None)
    assert torch.equal(base, torch.zeros(20))


def test_interleaved_views_that_do_not_overlap_are_filled(backend):
    """Strides (2, 1) over shape (3, 2) interleave but touch each location once: written, with
    the values of the same shape made contiguously (row-major order of the view)."""
    base = torch.full((6,), float("nan"))
    view = base.as_strided((3, 2), (2, 1))
    fastinit.normal_(view, generator=5)
    assert torch.equal(view, fastinit.normal_(torch.empty(3, 2), generator=5))
    strided = torch.full((40,), float("nan")).as_strided((2, 3), (4, 3))  # 0 3 6 / 4 7 10
    fastinit.uniform_(strided, generator=6)
    assert torch.equal(strided, fastinit.uniform_(torch.empty(2, 3), generator=6))


def test_views_of_more_dims_than_the_core_merges_are_filled_like_torch(backend):
    """17 non-mergeable dims: the core keeps 16, so the fill goes through a contiguous
    temporary; the values are those of the same shape filled contiguously."""
    base = torch.full((2,) * 18, float("nan"))
    view = base[(slice(None),) * 17 + (0,)].permute(*reversed(range(17)))
    before = generator_state()
    fastinit.normal_(view, generator=4)
    assert torch.equal(view, fastinit.normal_(torch.empty(view.shape), generator=4))
    assert torch.equal(generator_state(), before)  # an int generator: the default untouched


# --------------------------------------------------------------------- torch's argument rules

def test_scalar_arguments_follow_torchs_parser():
    t = torch.empty(4)
    for fn in (fastinit.uniform_, torch.nn.init.uniform_):
        with pytest.raises(TypeError, match="must be float, not str"):
            fn(t, "0.5", 1.0)
        with pytest.raises(TypeError):
            fn(t, None, 1.0)
        fn(t, torch.tensor(0.25), np.float32(0.5))   # 0-d tensors and NumPy scalars are floats
        fn(t, True, 2**70)                           # bools and big ints too
    with pytest.raises(OverflowError):
        torch.nn.init.constant_(torch.empty(3), 2**70)
    with pytest.raises(OverflowError):
        fastinit.constant_(torch.empty(3), 2**70)
    with pytest.raises(OverflowError):
        fastinit.constant_(np.empty(3), 2**70)
    with pytest.raises(TypeError):
        fastinit.constant_(np.empty(3), "0.5")


def test_failed_calls_draw_no_key():
    t = torch.empty(3, 4)
    before = generator_state()
    for bad in (lambda: fastinit.uniform_(t, 1.0, 0.0), lambda: fastinit.normal_(t, std=-1.0),
                lambda: fastinit.trunc_normal_(t, a=2.0, b=1.0), lambda: fastinit.uniform_(t, "a"),
                lambda: fastinit.kaiming_uniform_(t, nonlinearity="nope"),
                lambda: fastinit.uniform_(torch.empty(3, dtype=torch.int64))):
        with pytest.raises((RuntimeError, ValueError, TypeError, NotImplementedError)):
            bad()
    assert torch.equal(generator_state(), before)


def test_init_plans_tell_true_from_one():
    """a=True is an error for kaiming (torch: 'negative_slope True not a valid number'), also
    after a cached plan for a=1."""
    fastinit.init_([torch.empty(3, 4)], "kaiming_uniform", a=1)
    with pytest.raises(ValueError, match="not a valid number"):
        fastinit.init_([torch.empty(3, 4)], "kaiming_uniform", a=True)


def test_trunc_normal_warns_as_torch_when_the_mean_is_far():
    for fn in (torch.nn.init.trunc_normal_, fastinit.trunc_normal_):
        with pytest.warns(UserWarning, match=r"mean is more than 2 std from \[a, b\] in nn.init.trunc_normal_"):
            fn(torch.empty(100), mean=10.0, std=1.0, a=-2.0, b=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastinit.trunc_normal_(torch.empty(100), mean=0.5, std=1.0)


@pytest.mark.parametrize("sparsity", [1.0, 1.5, 0.0, -0.25])
def test_sparse_counts_zeros_as_torch(sparsity):
    rows = 8
    t = fastinit.sparse_(torch.empty(rows, 5), sparsity, generator=2)
    expected = len(range(rows)[:int(math.ceil(sparsity * rows))])
    assert [(t[:, c] == 0).sum().item() for c in range(5)] == [expected] * 5
    ref = torch.nn.init.sparse_(torch.empty(rows, 5), sparsity)
    assert (ref == 0).sum().item() == 5 * expected


def test_private_fan_helpers_at_top_level():
    w = torch.empty(7, 3, 2)
    assert fastinit._calculate_correct_fan(w, "fan_out") == torch.nn.init._calculate_correct_fan(w, "fan_out")
    assert fastinit._calculate_fan_in_and_fan_out(w) == torch.nn.init._calculate_fan_in_and_fan_out(w)


# ------------------------------------------------------------------------- the core's checks

@pytest.mark.backends("native")
def test_the_core_checks_what_it_is_given():
    buf = np.zeros(16, np.float32)
    ptr = buf.ctypes.data
    params = [0.1, 0.05, 0.0, 1.0]
    bad = {
        "null data pointer": dict(data=0, shape=[4], mem=[1]),
        "negative size": dict(data=ptr, shape=[-4], mem=[1]),
        "single memory location": dict(data=ptr, shape=[4, 4], mem=[1, 1]),
        "outside its storage": dict(data=ptr, shape=[4], mem=[8], bounds=[ptr, ptr + 64]),
    }
    for message, a in bad.items():
        with pytest.raises(ValueError, match=message):
            CORE.fill_many([0], [0], [a["data"]], [len(a["shape"])], a["shape"], a["mem"],
                           [1] * len(a["shape"]) if len(a["shape"]) == 1 else [4, 1], [0], [1], [0],
                           [0], params + [0.0] * 12, bounds=a.get("bounds", []))
    assert not buf.any()  # nothing written by any of them
    with pytest.raises(ValueError, match="null data pointer"):
        CORE.fill_contiguous(0, 0, 0, 4, 1, 0, tuple(params))
    with pytest.raises(ValueError, match="negative size"):
        CORE.fill_contiguous(0, 0, ptr, -1, 1, 0, tuple(params))
    with pytest.raises(ValueError, match="null data pointer"):
        CORE.stats_cpu([0], [0], [[4]], [[1]], 0, [])


def test_histogram_memory_is_bounded_with_a_clear_error():
    small = [np.ones(3, np.float32)] * 8
    with pytest.raises(ValueError, match="GiB of counters"):
        fastinit.stats(small, bins=2**26)


def test_stats_of_overflowing_squares_are_inf_or_nan_on_every_backend(backend):
    s = fastinit.stats(np.array([1e200, -1e200, 3e199, 1.0, 2e200]))
    assert math.isinf(s.norm) and math.isinf(s.rms)
    assert not math.isfinite(s.var) and not math.isfinite(s.std)
    assert s.mean == pytest.approx(4.6e199, rel=1e-12)
