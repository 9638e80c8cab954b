"""The CUDA statistics kernels and their host plan, run on the CPU by tests/cuda_emu (one
coroutine per CUDA thread), against the float64 reference of test_stats.py.

This checks what needs no GPU: the kernels' indexing (items, 16-byte and element-by-element
loads, tails, misaligned and permuted tensors), their synchronisation (a lane or thread missing a
shuffle or __syncthreads is reported as a deadlock), the accumulator's arithmetic (the same
float64 source; IEEE on the host, without contraction as nvcc builds it with --fmad=false),
the histogram's warp aggregation and flushes, the per-dtype batches and both passes of numpy's
default range, and that results do not depend on the grid size. What it cannot check is the
GPU's own instructions (hardware conversions, min/max) and memory model: tests/test_stats.py's
CUDA tests do, on a GPU.
"""
from __future__ import annotations

import math
import platform
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_stats import as_f64, assert_matches, random_values, reference

from fastinit.stats import Stats

pytestmark = pytest.mark.backends("numpy")  # the emulator is its own backend: run once

ROOT = Path(__file__).resolve().parents[1]
HEAD = 13
CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("needs a C++ compiler")
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("tests/cuda_emu switches coroutines with glibc's ucontext and _longjmp")
    exe = tmp_path_factory.mktemp("cuda_emu") / "stats_emu"
    # -U_FORTIFY_SOURCE: _longjmp between coroutine stacks is what cuda_emu.h does on purpose
    subprocess.run([cxx, "-std=c++17", "-O2", "-ffp-contract=off", "-U_FORTIFY_SOURCE", "-DFASTINIT_ISA=host_emu",
                    "-I", str(ROOT / "csrc"), "-I", str(ROOT / "tests" / "cuda_emu"), "-o", str(exe),
                    str(ROOT / "tests" / "cuda_emu" / "stats_emu.cpp")], check=True, timeout=300)
    return exe


def raw_bytes(x: torch.Tensor) -> bytes:
    st = x.untyped_storage()
    buf = torch.empty(st.nbytes(), dtype=torch.uint8)
    buf.untyped_storage().copy_(st)
    return buf.numpy().tobytes()


def run(exe, xs, bins=0, range=None, grid_cap=3, misalign=0, tmp=None) -> np.ndarray:
    """The raw records of xs (torch CPU tensors) as the CUDA kernels compute them."""
    blob = bytearray(struct.pack("<3i", len(xs), bins, range is not None))
    for x in xs:
        data = raw_bytes(x)
        item = x.element_size()
        pad = misalign * item  # move the tensor off 16-byte alignment by whole elements
        blob += struct.pack("<2i", CODES[x.dtype], x.dim())
        blob += struct.pack(f"<{x.dim()}q", *x.shape) + struct.pack(f"<{x.dim()}q", *x.stride())
        blob += struct.pack("<2q", x.storage_offset() * item + pad, len(data) + pad)
        blob += b"\xee" * pad + data
    if range is not None:
        blob += struct.pack(f"<{2 * len(xs)}d", *[v for _ in xs for v in range])
    src, dst = tmp / "in.bin", tmp / "out.bin"
    src.write_bytes(bytes(blob))
    res = subprocess.run([str(exe), str(src), str(dst), str(grid_cap)], capture_output=True, text=True,
                         timeout=300, check=False)  # a hang fails here (deadlocks exit 3)
    assert res.returncode == 0, res.stderr
    return np.frombuffer(dst.read_bytes(), dtype=np.float64).reshape(len(xs), HEAD + bins)


def check(exe, xs, tmp, bins=0, range=None, **kw):
    raw = run(exe, xs, bins, range, tmp=tmp, **kw)
    for x, row in zip(xs, raw):
        assert_matches(Stats.from_raw(row, bins), reference(as_f64(x), bins, range))
    return raw


def tensors(rng, sizes, dtypes=tuple(CODES)):
    return [torch.from_numpy(random_values(rng, n, scale=float(rng.uniform(0.01, 3)),
                                           offset=float(rng.uniform(-2, 2)))).to(dtypes[i % len(dtypes)])
            for i, n in enumerate(sizes)]


def test_every_dtype_item_edges_and_grid_independence(emulator, rng, tmp_path):
    # whole items, tails, one element, empty; every dtype in one list (a launch per dtype)
    xs = tensors(rng, [16384, 16385, 40000, 1, 0, 300, 16383, 5000])
    a = check(emulator, xs, tmp_path, grid_cap=1)
    b = check(emulator, xs, tmp_path, grid_cap=3)
    np.testing.assert_array_equal(a, b)  # the grid size changes no bit


def test_histograms_every_counter_layout_and_default_range(emulator, rng, tmp_path):
    xs = tensors(rng, [20000, 777, 3])
    xs[0][::97] = float("nan")
    xs[1][::5] = 0.0
    check(emulator, xs, tmp_path, bins=7)                      # numpy's default range: two passes
    check(emulator, xs, tmp_path, bins=64, range=(-2.0, 2.0))  # per-warp shared counters
    check(emulator, xs[1:], tmp_path, bins=5000, range=(-1.0, 1.0))   # one copy per CTA
    check(emulator, xs[1:], tmp_path, bins=20000, range=(-1.0, 1.0))  # global atomics


def test_special_values_misaligned_and_permuted(emulator, rng, tmp_path):
    v = random_values(rng, 20000, zeros=0.2)
    marks = rng.integers(0, 6, v.size)
    v[marks == 0] = np.nan
    v[marks == 1] = np.inf
    v[(marks == 2) & (rng.random(v.size) < 0.5)] = -np.inf
    v[marks == 3] = -0.0
    xs = [torch.from_numpy(v).to(d) for d in CODES]
    check(emulator, xs, tmp_path, bins=10)
    check(emulator, xs, tmp_path, misalign=1)  # not 16-byte aligned: element by element
    m = torch.from_numpy(random_values(rng, (150, 130))).float()
    check(emulator, [m.t(), m.flip(0), torch.full((7,), float("nan")), torch.zeros(16384)], tmp_path, bins=3)


def test_offset_and_values_near_the_largest_double(emulator, rng, tmp_path):
    # offset 1e4, spread 1e-2: the shift keeps the variance exact to float64 rounding
    x = torch.from_numpy(rng.standard_normal(40000) * 1e-2 + 1e4)
    raw = run(emulator, [x, x.float()], tmp=tmp_path)
    for t, row in zip((x, x.float()), raw):
        s, ref = Stats.from_raw(row, 0), reference(as_f64(t))
        assert abs(s.mean - ref["mean"]) <= 2 * np.spacing(ref["mean"])
        assert s.var == pytest.approx(ref["var"], rel=4e-15)
    # Σd overflows: the item is summed again from d 2^-16, the mean stays right
    v = 1.5e308 + rng.standard_normal(20000) * 1e300
    w = rng.uniform(-0.8, 0.8, 20000) * 1e308
    raw = run(emulator, [torch.from_numpy(v), torch.from_numpy(w)], bins=4, tmp=tmp_path)
    for arr, row in zip((v, w), raw):
        s = Stats.from_raw(row, 4)
        ref_mean = math.fsum(arr * 2.0**-20) / arr.size * 2.0**20
        assert s.mean == pytest.approx(ref_mean, rel=1e-14, abs=1e-15 * 1e308)
        assert (s.min, s.max, s.count, s.nans, s.norm) == (arr.min(), arr.max(), arr.size, 0, math.inf)
        np.testing.assert_array_equal(s.hist, np.histogram(arr, 4)[0])


def test_outlier_sample_bound(emulator, rng, tmp_path):
    # the worst case of the shift: the sampled values (each thread's first) are the outliers
    v = rng.standard_normal(16384)
    v[::4] += 1e3  # every thread's first value of the item (4 float32 values per 16-byte word)
    x = torch.from_numpy(v).float()
    s, ref = Stats.from_raw(run(emulator, [x], tmp=tmp_path)[0], 0), reference(as_f64(x))
    assert s.var == pytest.approx(ref["var"], rel=1e-12)


def test_more_tensors_than_one_batch(emulator, rng, tmp_path):
    xs = tensors(rng, [int(k) % 37 + 1 for k in range(1300)], dtypes=(torch.float32, torch.bfloat16))
    check(emulator, xs, tmp_path, bins=4, range=(-3.0, 3.0), grid_cap=2)
