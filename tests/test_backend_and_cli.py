"""Backend selection (FASTINIT_BACKEND, fallback warning) and the command line."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import fastinit


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "FASTINIT_BACKEND"}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True)


@pytest.mark.backends("numpy")
def test_environment_selects_the_backend():
    for requested, expected in (("numpy", "numpy"), ("auto", "native" if "native" in fastinit.available_backends() else "numpy")):
        out = run_python("import fastinit; print(fastinit.get_backend())", FASTINIT_BACKEND=requested)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == expected
    bad = run_python("import fastinit", FASTINIT_BACKEND="gpu")
    assert bad.returncode != 0 and "backend must be one of" in bad.stderr


@pytest.mark.backends("numpy")
def test_missing_core_falls_back_to_numpy_with_one_warning():
    code = ("import sys, warnings; sys.modules['fastinit._core'] = None\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    import fastinit, numpy as np\n"
            "    fastinit.normal_(np.empty(10)); fastinit.normal_(np.empty(10))\n"
            "print(fastinit.get_backend(), sum('compiled core not available' in str(w.message) for w in caught))")
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["numpy", "1"]
    forced = run_python("import sys; sys.modules['fastinit._core'] = None; import fastinit", FASTINIT_BACKEND="native")
    assert forced.returncode != 0 and "compiled core of fastinit is not available" in forced.stderr


def test_set_backend_validates():
    with pytest.raises(ValueError, match="backend must be one of"):
        fastinit.set_backend("cuda")


@pytest.mark.backends("numpy")
def test_native_core_present_where_required():
    """CI sets FASTINIT_REQUIRE_NATIVE=1: a build that silently lost its compiled core (or its
    AVX2 kernels on an AVX2 machine) must fail there, not pass on the NumPy fallback."""
    if os.environ.get("FASTINIT_REQUIRE_NATIVE") != "1":
        pytest.skip("FASTINIT_REQUIRE_NATIVE is not set")
    from fastinit.dispatch import backend as _backend
    assert _backend.core() is not None, _backend.core_error()
    with open("/proc/cpuinfo") as f:
        flags = f.read()
    if " avx2 " in flags and " fma " in flags:
        assert _backend.core().cpu_isa() == "avx2"


@pytest.mark.backends("numpy")
def test_cli_info_and_example():
    out = subprocess.run([sys.executable, "-m", "fastinit", "info"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "fastinit" in out.stdout and fastinit.__version__ in out.stdout
    assert "backends available" in out.stdout and "OpenMP" in out.stdout or "compiled core" in out.stdout
    ex = subprocess.run([sys.executable, "-m", "fastinit", "example"], capture_output=True, text=True)
    assert ex.returncode == 0, ex.stderr
    assert "same bits on the" in ex.stdout and ex.stdout.strip().endswith("True")


@pytest.mark.backends("native")
def test_cpu_benchmark_times_every_contender_on_the_cases_it_lists():
    """python -m fastinit bench (CPU section, small sizes): each row times fastinit, torch and
    fill_ (positive medians), float64 and the per-call rows included. Times are not asserted."""
    pytest.importorskip("torch")
    from fastinit.bench import cpu as bench

    rows = bench.bench_cpu_init((64, 32), ["float64"], 1, cases=bench.FLOAT64_CASES)
    rows += bench.bench_cpu_small(1, sizes=(64, 4096))
    assert [(r.section, r.case, r.dtype) for r in rows] == (
        [("cpu", case, "float64") for case in bench.FLOAT64_CASES]
        + [("cpu-small", f"{case} {n} el. x{bench.SMALL_CALLS} calls", "float32")
           for n in (64, 4096) for case in ("uniform_", "normal_", "kaiming_uniform_")])
    for r in rows:
        assert set(r.seconds) == {"fastinit", "torch", "fill_"}
        assert all(s > 0 for s in r.seconds.values())
        assert len(r.cells()) == 11
