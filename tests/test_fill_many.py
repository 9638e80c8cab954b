"""Batched fills: the core's fill_many / fill_cuda_many and fastinit.dispatch.batch.write_many.

The stream contract makes a batched fill a pure rearrangement of work: every byte must equal
what the per-tensor fills give (applied in order, also where requests write the same memory),
whatever the thread count, the instruction set or the device. Buffers are poisoned bytes, so a
missed element or a write outside a view shows as a byte that differs from the reference.
"""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

import fastinit
from fastinit.dispatch import backend as _backend
from fastinit.model import plan as fmodel
from fastinit.stream.dtypes import FORMATS
from fastinit.dispatch.batch import write_many
from fastinit.dispatch.fill import write_values
from fastinit.stream.logical import Logical
from fastinit.stream.ops import (OP_CONSTANT, constant_params, normal_params, trunc_normal_params,
                                     uniform_params)
from fastinit.dispatch.target import as_target

from conftest import capture_cuda_graph, has_cuda

try:
    import torch
except ImportError:  # the core tests below need no torch
    torch = None

CORE = _backend.core()
needs_core = pytest.mark.skipif(CORE is None, reason="needs the compiled core")
FILL_PARAMS = 16
POISON = 0xA5

GPU = has_cuda() and CORE is not None and CORE.cuda_compiled()
gpu_test = [pytest.mark.cuda,
            pytest.mark.skipif(not has_cuda(), reason="needs torch with a CUDA GPU"),
            pytest.mark.skipif(has_cuda() and not GPU, reason="fastinit was built without CUDA")]


def on_gpu(fn):
    for mark in reversed(gpu_test):
        fn = mark(fn)
    return fn


# ------------------------------------------------------------------------------------ requests

def random_call(rng, fmt, extreme=True):
    """(op, params) of a random operation in fmt: every op and trunc_normal variant (extreme:
    also a std that overflows the compute type)."""
    k = int(rng.integers(0, 9 if extreme else 8))
    if k == 0:
        call = uniform_params(-0.7, 1.3, fmt)
    elif k == 1:
        call = normal_params(0.25, 2.0, fmt)
    elif k == 2:
        call = trunc_normal_params(0.0, 1.0, -2.0, 2.0, fmt)
    elif k == 3:
        call = trunc_normal_params(1.0, 2.0, 17.0, 19.0, fmt)          # far mode
    elif k == 4:
        call = trunc_normal_params(0.0, 0.02, -0.04, 0.04, fmt)        # central only
    elif k == 5:
        call = trunc_normal_params(0.0, 1.0, 0.5, math.inf, fmt)       # one-sided
    elif k == 6:
        call = trunc_normal_params(0.0, 0.02, -2.0, 2.0, fmt)          # the clamped normal op
    elif k == 7:
        return OP_CONSTANT, [float(rng.choice([0.0, -0.0, 1.0, 0.1, -3.5, 1e-30]))]
    else:
        call = normal_params(0.0, 1e39 if fmt.family == "f32" else 1.0, fmt)  # inf/NaN values
    assert call.constant is None
    return call.op, list(call.params)


def random_view(rng, base_shape):
    """(shape, strides, offset) in elements of a random view of a row-major base: slices,
    transposes, steps, negative steps, a column, a scalar, an empty slice."""
    idx = np.arange(math.prod(base_shape)).reshape(base_shape)
    nd = len(base_shape)
    k = int(rng.integers(0, 10))
    if k == 1 and nd >= 1:
        v = idx[1:]
    elif k == 2 and nd >= 2:
        v = idx[:, 1:-1]
    elif k == 3 and nd >= 2:
        v = idx.T
    elif k == 4 and nd >= 1:
        v = idx[::2]
    elif k == 5 and nd >= 1:
        v = idx[::-1]
    elif k == 6 and nd >= 2 and base_shape[1] > 2:
        v = idx[:, 2]
    elif k == 7 and nd >= 3:
        v = idx.transpose(2, 0, 1)
    elif k == 8 and nd >= 1:
        v = idx[(0,) * nd]
    elif k == 9 and nd >= 1:
        v = idx[..., :0]
    else:
        v = idx
    v = np.asarray(v)
    offset = int(v.flat[0]) if v.size else 0
    return tuple(v.shape), tuple(s // idx.itemsize for s in v.strides), offset


def row_major(shape):
    out, acc = [], 1
    for n in reversed(shape):
        out.append(acc)
        acc *= max(n, 1)
    return tuple(reversed(out))


class Request:
    """One fill request into its own poisoned byte buffer (or into another request's)."""

    def __init__(self, rng, buffers, big=False):
        name = ["float32", "float64", "float16", "bfloat16"][int(rng.integers(0, 4))]
        self.fmt = FORMATS[name]
        if buffers and rng.random() < 0.15:  # write a buffer another request writes too
            self.buffer, base_shape, self.fmt = buffers[int(rng.integers(0, len(buffers)))]
        else:
            nd = int(rng.integers(0, 4))
            base_shape = tuple(int(rng.integers(1, 60000 if big and nd == 1 else 30)) for _ in range(nd))
            self.buffer = len(buffers)
            buffers.append((self.buffer, base_shape, self.fmt))
        self.shape, self.strides, self.offset = random_view(rng, base_shape)
        if rng.random() < 0.2 and self.shape:  # a shard: stream strides of a larger whole
            self.logical = row_major([n + int(rng.integers(0, 4)) for n in self.shape])
            self.base = int(rng.integers(0, 9))
        else:
            self.logical, self.base = row_major(self.shape), 0
        self.op, self.params = random_call(rng, self.fmt)
        self.key = int(rng.integers(0, 2**64, dtype=np.uint64))
        self.purpose = int(rng.integers(0, 2))


def make_batch(rng, n, big=False):
    buffers: list = []
    reqs = [Request(rng, buffers, big) for _ in range(n)]
    return reqs, buffers


def alloc(buffers, device=None):
    """Poisoned byte buffers (numpy, or torch on `device`), 8 spare bytes at both ends."""
    out = []
    for _, shape, fmt in buffers:
        nbytes = math.prod(shape) * fmt.itemsize + 16
        if device is None:
            out.append(np.full(nbytes, POISON, dtype=np.uint8))
        else:
            out.append(torch.full((nbytes,), POISON, dtype=torch.uint8, device=device))
    return out


def address(buf, req):
    ptr = buf.ctypes.data if isinstance(buf, np.ndarray) else buf.data_ptr()
    return ptr + 8 + req.offset * req.fmt.itemsize


def batch_args(reqs, mem):
    """The flat lists of fill_many / fill_cuda_many (one parameter record per request)."""
    params = []
    for r in reqs:
        params += r.params + [0.0] * (FILL_PARAMS - len(r.params))
    return ([r.op for r in reqs], [r.fmt.code for r in reqs], [address(mem[r.buffer], r) for r in reqs],
            [len(r.shape) for r in reqs], [n for r in reqs for n in r.shape],
            [s for r in reqs for s in r.strides], [s for r in reqs for s in r.logical],
            [r.base for r in reqs], [r.key for r in reqs], [r.purpose for r in reqs],
            list(range(len(reqs))), params)


def per_tensor(reqs, buffers, isa="auto"):
    """The reference: one core.fill per request, in order."""
    mem = alloc(buffers)
    for r in reqs:
        CORE.fill(r.op, r.fmt.code, address(mem[r.buffer], r), list(r.shape), list(r.strides),
                  list(r.logical), r.base, r.key & 0xFFFFFFFF, r.key >> 32, r.purpose, r.params, isa)
    return mem


def batched(reqs, buffers, threads=0, isa="auto"):
    mem = alloc(buffers)
    CORE.fill_many(*batch_args(reqs, mem), threads, isa)
    return mem


def assert_same(got, want, what):
    for i, (a, b) in enumerate(zip(got, want)):
        a = a.cpu().numpy() if not isinstance(a, np.ndarray) else a
        if not np.array_equal(a, b):
            bad = np.flatnonzero(a != b)
            raise AssertionError(f"{what}: buffer {i}: {bad.size} bytes differ, first at byte {bad[0] - 8}")


# ------------------------------------------------------------------------------------ CPU core

@needs_core
@pytest.mark.backends("native")
@pytest.mark.parametrize("size", [1, 7, 40])
def test_fill_many_equals_per_tensor_fills(size, rng):
    for _ in range(4):
        reqs, buffers = make_batch(rng, size)
        assert_same(batched(reqs, buffers), per_tensor(reqs, buffers), f"batch of {size}")


@needs_core
@pytest.mark.backends("native")
def test_fill_many_large_and_small_tensors_mixed(rng):
    """Tensors of many tiles next to tensors of a few elements, in one parallel region."""
    reqs, buffers = make_batch(rng, 30, big=True)
    want = per_tensor(reqs, buffers)
    for threads in (1, 2, 3, 7):
        assert_same(batched(reqs, buffers, threads=threads), want, f"{threads} threads")


@needs_core
@pytest.mark.backends("native")
def test_fill_many_every_build_gives_the_same_bytes(rng):
    reqs, buffers = make_batch(rng, 25, big=True)
    want = per_tensor(reqs, buffers, isa="generic")
    assert_same(batched(reqs, buffers, isa="generic"), want, "generic")
    assert_same(batched(reqs, buffers), want, "auto")
    if CORE.cpu_isa() == "avx2":
        assert_same(batched(reqs, buffers, isa="avx2"), want, "avx2")


def _whole(fmt, n, key, op_params, logical_base=0):
    """One request: n elements of buffer 0 (contiguous), with the given key and call."""
    r = Request.__new__(Request)
    r.fmt, r.buffer, r.shape, r.strides, r.offset = fmt, 0, (n,), (1,), 0
    r.logical, r.base = (1,), logical_base
    r.op, r.params = op_params
    r.key, r.purpose = key, 0
    return r


@needs_core
@pytest.mark.backends("native")
def test_requests_that_write_the_same_memory_apply_in_order(rng):
    """The later request wins, element by element, whatever the ops (which on CUDA run in
    different launches) and however the tiles are scheduled."""
    fmt = FORMATS["float32"]
    n = 300_000  # many tiles: a race between two requests would show
    normal = (1, list(normal_params(0.0, 1.0, fmt).params))
    uniform = (0, list(uniform_params(-1.0, 1.0, fmt).params))
    a, b = _whole(fmt, n, 11, normal), _whole(fmt, n, 22, uniform)
    row = _whole(fmt, 1000, 33, (OP_CONSTANT, [7.0]))
    row.offset = 5000
    buffers = [(0, (n,), fmt)]
    for order in ([a, b], [b, a], [a, row, b], [a, b, row], [row, a, row, b, row]):
        for threads in (1, 2, 5):
            assert_same(batched(order, buffers, threads=threads), per_tensor(order, buffers),
                        f"order {[r.key for r in order]}")


@needs_core
@pytest.mark.backends("native")
def test_empty_batches_and_empty_tensors():
    CORE.fill_many([], [], [], [], [], [], [], [], [], [], [], [])
    fmt = FORMATS["float32"]
    call = list(normal_params(0.0, 1.0, fmt).params) + [0.0] * 12
    # zero elements: no write at all (a null address is never touched)
    CORE.fill_many([1, 1], [0, 0], [0, 0], [2, 1], [0, 5, 0], [5, 1, 1], [5, 1, 1], [0, 0], [1, 2],
                   [0, 0], [0, 0], call)


@needs_core
@pytest.mark.backends("native")
def test_bad_requests_are_rejected_before_anything_is_written():
    fmt = FORMATS["float32"]
    call = list(normal_params(0.0, 1.0, fmt).params) + [0.0] * 12
    good = np.full(64, np.nan, dtype=np.float32)
    other = np.full(64, np.nan, dtype=np.float32)

    def args(**change):
        a = dict(ops=[1, 1], dtypes=[0, 0], datas=[good.ctypes.data, other.ctypes.data], ndims=[1, 1],
                 shapes=[64, 64], mem_strides=[1, 1], logical_strides=[1, 1], logical_bases=[0, 0],
                 keys=[1, 2], purposes=[0, 0], param_index=[0, 0], params=call)
        a.update(change)
        return a

    bad = [
        (dict(ops=[1, 9]), "op code"),
        (dict(dtypes=[0, 7]), "dtype"),
        (dict(param_index=[0, 1]), "parameter record"),
        (dict(param_index=[0, -1]), "parameter record"),
        (dict(shapes=[64, -3]), "negative"),
        (dict(ndims=[1, 2]), "dims"),
        (dict(ndims=[1, 65], shapes=[64] + [1] * 65, mem_strides=[1] * 66, logical_strides=[1] * 66), "dims"),
        (dict(ndims=[1, 17], shapes=[64] + [2] * 17, mem_strides=[1] + [3 ** k for k in range(17)],
              logical_strides=[1] + [2 ** (16 - k) for k in range(17)]), "16 non-mergeable"),
        (dict(keys=[1]), "differ in length"),
        (dict(mem_strides=[1]), "differ in length"),
        (dict(params=call[:10]), "whole records"),
    ]
    for change, match in bad:
        with pytest.raises(ValueError, match=match):
            CORE.fill_many(**args(**change))
        assert np.isnan(good).all() and np.isnan(other).all(), change
    CORE.fill_many(**args())
    assert not np.isnan(good).any() and not np.isnan(other).any()


@needs_core
@pytest.mark.backends("native")
def test_fill_many_without_cuda_reports_it():
    if CORE.cuda_compiled():
        pytest.skip("a CUDA build: see test_fill_cuda_many_without_a_device")
    with pytest.raises(RuntimeError, match="without CUDA"):
        CORE.fill_cuda_many([], [], [], [], [], [], [], [], [], [], [], [], 0, 0)


def test_fill_cuda_many_without_a_device():
    """No GPU visible: a RuntimeError naming the CUDA call (a CUDA build) or saying there is
    no CUDA; an all-empty batch makes no CUDA call at all. In a process that sees no GPU, so
    the made-up address is never written."""
    if CORE is None:
        pytest.skip("needs the compiled core")
    code = ("import fastinit._core as c\n"
            "p = [0.0, 1.0] + [0.0] * 14\n"
            "def go(shape):\n"
            "    try:\n"
            "        c.fill_cuda_many([1], [0], [4096], [1], shape, [1], [1], [0], [1], [0], [0], p, 0, 0)\n"
            "        print('ok')\n"
            "    except RuntimeError as e:\n"
            "        print('RuntimeError:', e)\n"
            "go([8])\n"
            "go([0])\n")
    env = dict(__import__("os").environ, CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("RuntimeError:"), out.stdout
    if CORE.cuda_compiled():
        assert "fastinit CUDA error in cudaGetDevice" in lines[0]
        assert lines[1] == "ok"
    else:
        assert "without CUDA" in lines[0]


@needs_core
@pytest.mark.backends("native")
def test_constant_op_rounds_as_torch_fill():
    """op 3 writes torch's fill_(value): to float32 first, then to the 16-bit format."""
    if torch is None:
        pytest.skip("needs torch")
    values = [0.0, -0.0, 1.0, 0.1, -3.5, 1e-30, 1e-8, 65504.0, 3.0e38, math.inf, -math.inf,
              1.0000000596046448, 0.30000001192092896, 2.0 ** -24 * 1.5, 2**53 - 1]
    for name in ("float32", "float64", "float16", "bfloat16"):
        dt = getattr(torch, name)
        fmt = FORMATS[name]
        for v in values:
            call = constant_params(v, fmt)
            if call is None:
                continue
            want = torch.full((5,), float("nan"), dtype=dt).fill_(v)
            got = torch.full((5,), float("nan"), dtype=dt)
            CORE.fill_many([OP_CONSTANT], [fmt.code], [got.data_ptr()], [1], [5], [1], [1], [0], [0], [0],
                           [0], [float(call.params[0])] + [0.0] * 15)
            assert torch.equal(got.view(torch.uint8), want.view(torch.uint8)), (name, v)
    # what the core would round otherwise is left to torch
    assert constant_params(float("nan"), FORMATS["float32"]) is None
    assert constant_params(70000.0, FORMATS["float16"]) is None
    assert constant_params(2**60 + 1, FORMATS["float32"]) is None
    assert constant_params(1 + 2j, FORMATS["float32"]) is None


# ------------------------------------------------------------------------------------ write_many

def tensors_and_calls(rng, xp):
    """Targets of every kind write_many meets, with calls and keys."""
    shapes = [(30, 20), (7,), (), (0, 5), (40, 3, 2), (1000,)]
    out = []
    for i, shape in enumerate(shapes):
        name = ["float32", "float64", "float16", "bfloat16"][i % 4]
        if xp == "numpy" and name == "bfloat16":
            name = "float32"
        if xp == "numpy":
            base = np.full(shape, np.nan, dtype=name)
        else:
            base = torch.full(shape, float("nan"), dtype=getattr(torch, name))
        out.append(base)
    views = [out[0].T, out[0][2:9, 1:], out[4][:, 1], out[5][::3]]
    if xp == "numpy":
        views.append(np.full((6, 5), np.nan, np.float32)[:, ::-1])
        odd = np.zeros(48, np.uint8)[1:41].view(np.float32)  # byte strides: not whole elements
        odd[:] = np.nan
        views.append(odd)
    items = out + views
    targets = [as_target(t, "test") for t in items]
    calls = []
    for t in targets:
        op, params = random_call(rng, t.fmt, extreme=False)
        calls.append(constant_params(params[0], t.fmt) if op == OP_CONSTANT
                     else type(normal_params(0, 1, t.fmt))(op, tuple(params)))
    keys = [int(k) for k in rng.integers(0, 2**63, size=len(items))]
    return items, targets, calls, keys


def snapshot(items):
    out = []
    for t in items:
        if isinstance(t, np.ndarray):
            out.append(np.ascontiguousarray(t).view(np.uint8).copy())
        else:
            out.append(t.reshape(-1).contiguous().view(torch.uint8).clone().numpy())
    return out


@pytest.mark.parametrize("xp", ["numpy", "torch"])
def test_write_many_equals_write_values_in_order(xp, rng, backend):
    if xp == "torch" and torch is None:
        pytest.skip("needs torch")
    items, targets, calls, keys = tensors_and_calls(rng, xp)
    logicals = [None] * len(items)
    logicals[1] = Logical((3,), 5)  # a shard of a larger whole
    write_many(targets, calls, keys, 0, logicals)
    got = snapshot(items)
    items2, targets2, _, _ = tensors_and_calls(np.random.default_rng(0), xp)
    for t, c, k, lg in zip(targets2, calls, keys, logicals):
        write_values(t, c, k, 0, lg)
    for i, (a, b) in enumerate(zip(got, snapshot(items2))):
        assert np.array_equal(a, b), f"target {i}"


def test_write_many_keeps_the_order_of_overlapping_writes(backend):
    """Later writes win, also when one of them is not written by the core (byte strides)."""
    fmt = FORMATS["float32"]
    normal, uniform, two = normal_params(0.0, 1.0, fmt), uniform_params(0.0, 1.0, fmt), constant_params(2.0, fmt)

    def arrays():
        raw = np.zeros(4 * 1000 + 1, np.uint8)
        a = np.full(1000, np.nan, np.float32)
        odd = raw[1:].view(np.float32)  # not element-aligned: written one by one
        return raw, [(a, normal, 1), (odd, uniform, 2), (a[::2], uniform, 3), (a[100:200], two, 0),
                     (odd[:10], normal, 5), (a[150:], normal, 4)]

    raw, seq = arrays()
    write_many([as_target(t, "t") for t, _, _ in seq], [c for _, c, _ in seq], [k for _, _, k in seq])
    raw2, seq2 = arrays()
    for t, c, k in seq2:
        write_values(as_target(t, "t"), c, k, 0)
    assert np.array_equal(seq[0][0].view(np.uint32), seq2[0][0].view(np.uint32))
    assert np.array_equal(raw, raw2)


# ------------------------------------------------------------------------------------ model plans

def test_tensor_keys_vectorised_equal_tensor_key(rng):
    for call_key in [0, 1, 2**64 - 1, int(rng.integers(0, 2**64, dtype=np.uint64))]:
        idx = [0, 1, 2, 7, 8, 1000, 2**31, 2**40] + [int(i) for i in rng.integers(0, 2**20, 50)]
        assert fmodel._tensor_keys(call_key, idx) == [fmodel.tensor_key(call_key, i) for i in idx]


def _model():
    nn = torch.nn
    return nn.Sequential(nn.Linear(30, 40), nn.LayerNorm(40), nn.Linear(40, 50, bias=False),
                         nn.BatchNorm1d(50), nn.Embedding(20, 8), nn.Conv1d(3, 4, 3))


@pytest.mark.skipif(torch is None, reason="needs torch")
def test_reused_plans_give_the_values_of_fresh_plans(rng):
    """init_ and reset_parameters reuse a call's plan while the tensors are the same; the
    values equal those of a plan made afresh, for the same keys."""
    model = _model()
    params = list(model.parameters())
    seed = int(rng.integers(0, 2**63))
    for _ in range(2):  # the second call reuses the first's plans
        fastinit.reset_parameters(model, generator=seed)
        reset = {k: v.clone() for k, v in model.state_dict().items()}
        fastinit.init_(params, "trunc_normal", std=[0.02 * (i + 1) for i in range(len(params))],
                       generator=seed)
        trunc = [p.detach().clone() for p in params]
        fastinit.init_(params, "zeros")
        assert all(bool((p == 0).all()) for p in params)
    assert any(k[0] == "reset_parameters" for k in fmodel._PLANS)
    fmodel._clear_caches()
    fastinit.reset_parameters(model, generator=seed)
    for k, v in model.state_dict().items():
        assert torch.equal(v, reset[k]), k
    fastinit.init_(params, "trunc_normal", std=[0.02 * (i + 1) for i in range(len(params))], generator=seed)
    for p, want in zip(params, trunc):
        assert torch.equal(p.detach(), want)


@pytest.mark.skipif(torch is None, reason="needs torch")
def test_a_changed_tensor_is_planned_again(rng):
    """A parameter given new storage, shape, strides or dtype between two calls: the old plan
    is not reused (it would write the old address or layout)."""
    model = _model()
    seed = int(rng.integers(0, 2**63))
    fastinit.reset_parameters(model, generator=seed)
    lin = model[0]
    changes = [lambda: setattr(lin, "weight", torch.nn.Parameter(torch.empty(40, 30))),  # new storage
               lambda: lin.weight.data.resize_(40, 20),                                     # new shape
               lambda: setattr(lin.weight, "data", torch.empty(30, 40).t()),                # new strides
               lambda: setattr(lin.weight, "data", torch.empty(40, 30, dtype=torch.float64))]
    for change in changes:
        change()
        lin.in_features = lin.weight.shape[1]
        fastinit.reset_parameters(model, generator=seed)
        got = lin.weight.detach().clone()
        fresh = _model()
        fresh[0].weight = torch.nn.Parameter(torch.empty_like(lin.weight))
        fmodel._clear_caches()
        fastinit.reset_parameters(fresh, generator=seed)
        assert torch.equal(got, fresh[0].weight.detach())
        assert not torch.isnan(got).any()
    ts = [torch.empty(10, 10), torch.empty(5)]
    fastinit.init_(ts, "normal", generator=seed)
    ts[1].data = torch.empty(7)
    fastinit.init_(ts, "normal", generator=seed)
    g = fastinit.Generator(fastinit.Generator(seed).next_key())
    assert torch.equal(ts[0], fastinit.normal_(torch.empty(10, 10), generator=g))
    assert torch.equal(ts[1], fastinit.normal_(torch.empty(7), generator=g))


@pytest.mark.skipif(torch is None, reason="needs torch")
def test_init_constants_and_integer_buffers_in_one_batch():
    model = _model()
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            t.fill_(7)
    for _ in range(2):
        fastinit.reset_parameters(model, generator=1)
        bn = model[3]
        assert int(bn.num_batches_tracked) == 0
        assert torch.equal(bn.running_var, torch.ones(50)) and torch.equal(bn.running_mean, torch.zeros(50))
        assert torch.equal(model[1].weight.detach(), torch.ones(40))
        with torch.no_grad():
            bn.num_batches_tracked.fill_(5)
            bn.running_var.fill_(3)


# ------------------------------------------------------------------------------------ CUDA

def cuda_batched(reqs, buffers, stream=None):
    mem = alloc(buffers, device="cuda")
    handle = (stream or torch.cuda.current_stream()).cuda_stream
    CORE.fill_cuda_many(*batch_args(reqs, mem), torch.cuda.current_device(), handle)
    return mem


@on_gpu
@pytest.mark.backends("native")
@pytest.mark.parametrize("size", [1, 9, 60])
def test_fill_cuda_many_equals_the_cpu(size, rng):
    for big in (False, True):
        reqs, buffers = make_batch(rng, size, big=big)
        got = cuda_batched(reqs, buffers)
        torch.cuda.synchronize()
        assert_same(got, per_tensor(reqs, buffers), f"batch of {size}, big={big}")


@on_gpu
@pytest.mark.backends("native")
def test_fill_cuda_many_with_more_requests_than_one_launch_holds(rng):
    """Thousands of small tensors: a group of one (op, dtype) takes several launches (a
    launch's table holds a few hundred requests, and the dims of up to 96 strided ones)."""
    reqs, buffers = make_batch(rng, 1000)
    reqs += same_kind(rng, buffers, 1200, "float32", strided=False)  # one group, several tables
    reqs += same_kind(rng, buffers, 400, "float16", strided=True)    # the dims pool runs out first
    order = rng.permutation(len(reqs))
    reqs = [reqs[i] for i in order]
    got = cuda_batched(reqs, buffers)
    torch.cuda.synchronize()
    assert_same(got, per_tensor(reqs, buffers), f"{len(reqs)} requests")


def same_kind(rng, buffers, n, name, strided):
    """n normal fills of 5 x 7 float tensors of their own (transposed views when strided)."""
    fmt = FORMATS[name]
    out = []
    for _ in range(n):
        r = Request.__new__(Request)
        r.fmt, r.buffer = fmt, len(buffers)
        buffers.append((r.buffer, (5, 7), fmt))
        r.shape, r.strides, r.offset = ((7, 5), (1, 7), 0) if strided else ((5, 7), (7, 1), 0)
        r.logical, r.base = row_major(r.shape), 0
        r.op, r.params = 1, list(normal_params(0.0, 1.0, fmt).params)
        r.key, r.purpose = int(rng.integers(0, 2**63)), 0
        out.append(r)
    return out


@on_gpu
@pytest.mark.backends("native")
def test_fill_cuda_many_rejects_bad_requests_before_launching(rng):
    reqs, buffers = make_batch(rng, 5)
    mem = alloc(buffers, device="cuda")
    args = list(batch_args(reqs, mem))
    args[0] = args[0][:-1] + [9]  # the last request's op
    with pytest.raises(ValueError, match="op code"):
        CORE.fill_cuda_many(*args, 0, torch.cuda.current_stream().cuda_stream)
    torch.cuda.synchronize()
    assert all(bool((m == POISON).all()) for m in mem)


@on_gpu
@pytest.mark.backends("native")
def test_fill_cuda_many_runs_on_the_given_side_stream(rng):
    """Enqueued on the stream it is given: after the work queued before it there."""
    reqs, buffers = make_batch(rng, 20, big=True)
    side = torch.cuda.Stream()
    torch.cuda.synchronize()
    with torch.cuda.stream(side):
        mem = alloc(buffers, device="cuda")
        sleep = getattr(torch.cuda, "_sleep", None)
        if sleep is not None:
            sleep(200_000_000)  # ~0.1 s of GPU time before the next work on this stream
        for m in mem:
            m.fill_(POISON)
        CORE.fill_cuda_many(*batch_args(reqs, mem), torch.cuda.current_device(), side.cuda_stream)
    side.synchronize()
    assert_same(mem, per_tensor(reqs, buffers), "side stream")


@on_gpu
@pytest.mark.backends("native")
def test_batched_fills_under_graph_capture_replay_the_captured_keys(rng):
    """init_, reset_parameters and fill_cuda_many make no host synchronisation (capture would
    fail) and their captured launches replay the values of the keys drawn at capture."""
    reqs, buffers = make_batch(rng, 12)
    mem = alloc(buffers, device="cuda")
    params = [torch.full(s, float("nan"), device="cuda", dtype=dt)
              for s, dt in [((300, 200), torch.float32), ((77,), torch.bfloat16), ((5, 6, 7), torch.float16)]]
    model = _model().cuda()
    seed = int(rng.integers(0, 2**62))

    def work():
        CORE.fill_cuda_many(*batch_args(reqs, mem), torch.cuda.current_device(),
                            torch.cuda.current_stream().cuda_stream)
        fastinit.init_(params, "trunc_normal", std=0.02, generator=seed)
        fastinit.reset_parameters(model, generator=seed)

    graph = capture_cuda_graph(work)
    cpu_params = [torch.empty(p.shape, dtype=p.dtype) for p in params]
    fastinit.init_(cpu_params, "trunc_normal", std=0.02, generator=seed)
    cpu_model = _model()
    fastinit.reset_parameters(cpu_model, generator=seed)
    for _ in range(2):
        for m in mem:
            m.fill_(POISON)
        for p in params + list(model.parameters()):
            p.data.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        assert_same(mem, per_tensor(reqs, buffers), "graph replay")
        for p, want in zip(params, cpu_params):
            assert torch.equal(p.cpu(), want)
        for (k, v), want in zip(model.state_dict().items(), cpu_model.state_dict().values()):
            assert torch.equal(v.cpu(), want), k


@on_gpu
def test_model_init_on_cuda_equals_the_cpu(rng, backend):
    seed = int(rng.integers(0, 2**62))
    cpu, gpu = _model(), _model().cuda()
    for _ in range(2):  # a new plan, then a reused one
        fastinit.reset_parameters(cpu, generator=seed)
        fastinit.reset_parameters(gpu, generator=seed)
        for (k, v), want in zip(gpu.state_dict().items(), cpu.state_dict().values()):
            assert torch.equal(v.cpu(), want), k
        fastinit.init_(list(cpu.parameters()), "normal", std=0.3, generator=seed)
        fastinit.init_(list(gpu.parameters()), "normal", std=0.3, generator=seed)
        for a, b in zip(gpu.parameters(), cpu.parameters()):
            assert torch.equal(a.detach().cpu(), b.detach())


@pytest.mark.skipif(torch is None, reason="needs torch")
def test_plans_are_not_reused_for_arguments_that_can_change_in_place():
    """A tensor given as an argument (std) may change between calls: no reuse, no memo."""
    ts = [torch.empty(50, 40), torch.empty(30)]
    std = torch.tensor(1.0)
    fastinit.init_(ts, "normal", std=std, generator=3)
    std.fill_(100.0)
    fastinit.init_(ts, "normal", std=std, generator=3)
    g = fastinit.Generator(fastinit.Generator(3).next_key())
    assert torch.equal(ts[0], fastinit.normal_(torch.empty(50, 40), std=100.0, generator=g))
    assert fmodel._kwargs_key({"std": std}) is None
    assert fmodel._kwargs_key({"std": -0.0}) != fmodel._kwargs_key({"std": 0.0})
    assert fmodel._kwargs_key({"std": [0.1, -0.0]}) != fmodel._kwargs_key({"std": [0.1, 0.0]})


@pytest.mark.skipif(torch is None, reason="needs torch")
def test_a_second_call_reuses_the_plan(monkeypatch, backend):
    """Planned once, then only keys and one core call (native backend); the NumPy backend and
    a progress bar always take the planned path."""
    built = []
    original = fmodel._BatchPlan.of
    monkeypatch.setattr(fmodel._BatchPlan, "of", staticmethod(lambda *a: built.append(1) or original(*a)))
    fmodel._clear_caches()
    ts = [torch.empty(20, 10), torch.empty(10)]
    for seed in (1, 2, 3):
        fastinit.init_(ts, "uniform", a=-0.5, b=0.5, generator=seed)
        g = fastinit.Generator(fastinit.Generator(seed).next_key())
        assert torch.equal(ts[0], fastinit.uniform_(torch.empty(20, 10), -0.5, 0.5, generator=g))
        assert torch.equal(ts[1], fastinit.uniform_(torch.empty(10), -0.5, 0.5, generator=g))
    assert len(built) == (1 if backend == "native" else 3)
    if backend == "native":
        assert CORE.FILL_PARAMS == 16
