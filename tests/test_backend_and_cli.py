"""Backend selection (FASTINIT_BACKEND, FASTINIT_CPU_ISA, the fallback warning), the build's
no-compiler path, and the command line: one clear line and a non-zero status for every error."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastinit
from fastinit.dispatch import backend as _backend

ROOT = Path(__file__).resolve().parents[1]
HAS_NATIVE = "native" in fastinit.available_backends()
ENV_KEYS = ("FASTINIT_BACKEND", "FASTINIT_CPU_ISA", "FASTINIT_NUM_THREADS")


def run_python(code: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code, *args], env=full_env, capture_output=True,
                          text=True)


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    full_env.update(env)
    return subprocess.run([sys.executable, "-m", "fastinit", *args], env=full_env,
                          capture_output=True, text=True)


def one_error_line(out: subprocess.CompletedProcess, prog: str = "python -m fastinit") -> str:
    """The single stderr line of a failed command, checked to be one clear line."""
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith(f"{prog}") and ": error: " in lines[0], lines[0]
    return lines[0]


# --- The backend and the environment ---------------------------------------------------------

@pytest.mark.backends("numpy")
def test_environment_selects_the_backend():
    for requested, expected in (("numpy", "numpy"), ("NumPy", "numpy"),
                                ("auto", "native" if HAS_NATIVE else "numpy")):
        out = run_python("import fastinit; print(fastinit.get_backend())", FASTINIT_BACKEND=requested)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == expected


@pytest.mark.backends("numpy")
def test_unknown_environment_values_are_named_and_ignored_by_the_library():
    """As torch does with its own variables: a warning that names the variable and the value,
    and the default in its place; import never fails on a typo."""
    out = run_python("import fastinit; print(fastinit.get_backend())", FASTINIT_BACKEND="gpu",
                     FASTINIT_CPU_ISA="avx512", FASTINIT_NUM_THREADS="many")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("native" if HAS_NATIVE else "numpy")
    assert "FASTINIT_BACKEND='gpu' is not one of: auto, native, numpy (ignored: auto is used)" in out.stderr
    assert "FASTINIT_CPU_ISA='avx512' is not one of: auto, generic, avx2" in out.stderr
    assert "FASTINIT_NUM_THREADS='many' is not a positive integer" in out.stderr
    fine = run_python("import fastinit", FASTINIT_NUM_THREADS="3", FASTINIT_CPU_ISA="auto")
    assert fine.returncode == 0 and fine.stderr == "", fine.stderr
    # the warning points at the user's import, not inside fastinit
    assert re.search(r"^<string>:1: RuntimeWarning: fastinit: FASTINIT_BACKEND", out.stderr, re.M)


@pytest.mark.backends("numpy")
@pytest.mark.skipif(not HAS_NATIVE, reason="needs the compiled core")
def test_cpu_isa_generic_forces_the_portable_kernels():
    out = run_python("from fastinit.dispatch import backend; print(backend.core().cpu_isa())",
                     FASTINIT_CPU_ISA="generic")
    assert out.returncode == 0 and out.stdout.strip() == "generic", out.stderr
    out = run_python("from fastinit.dispatch import backend; print(backend.core().cpu_isa())",
                     FASTINIT_CPU_ISA="avx2")
    if out.stdout.strip() == "avx2":
        assert out.stderr == ""
    else:
        assert "FASTINIT_CPU_ISA='avx2', but the AVX2 kernels cannot run here" in out.stderr


@pytest.mark.backends("numpy")
def test_missing_core_falls_back_to_numpy_with_one_warning():
    code = ("import sys, warnings; sys.modules['fastinit._core'] = None\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            "    import fastinit, numpy as np\n"
            "    fastinit.normal_(np.empty(10)); fastinit.normal_(np.empty(10))\n"
            "print(fastinit.get_backend(), sum('compiled core not available' in str(w.message) for w in caught))\n"
            "print(caught[0].message)")
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    backend, count, message = out.stdout.split(maxsplit=2)
    assert (backend, count) == ("numpy", "1")
    assert "partially initialized" not in message and "Fix: " in message  # cause and fix, in words
    forced = run_python("import sys; sys.modules['fastinit._core'] = None; import fastinit",
                        FASTINIT_BACKEND="native")
    assert forced.returncode != 0
    assert "FASTINIT_BACKEND=native, but the compiled core of fastinit is not available" in forced.stderr


def test_set_backend_validates():
    with pytest.raises(ValueError, match="backend must be one of"):
        fastinit.set_backend("cuda")


@pytest.mark.backends("numpy")
def test_missing_core_cause_and_fix(monkeypatch):
    """The words of the fallback for each way the core can be missing."""
    class Built:
        COMPILED_CORE = False
        NO_CORE_REASON = "no working C++ compiler was found (CXX=/nope)"
        NO_CORE_FIX = "install one (g++ or clang++)"

    monkeypatch.setattr(_backend, "_build_info", Built)
    cause, fix = _backend._missing_core()
    assert cause == "it was installed without one: no working C++ compiler was found (CXX=/nope) when it was built"
    assert fix.startswith("install one (g++ or clang++), then reinstall: pip install --force-reinstall")
    monkeypatch.setattr(_backend, "_build_info", None)
    monkeypatch.setattr(_backend, "_core_exception", ModuleNotFoundError("x", name="fastinit._core"))
    assert "a source checkout that was not built?" in _backend._missing_core()[0]
    monkeypatch.setattr(_backend, "_core_exception", ImportError("undefined symbol: foo"))
    cause, fix = _backend._missing_core()
    assert cause == "it failed to load (ImportError: undefined symbol: foo)" and "reinstall" in fix


@pytest.mark.backends("numpy")
def test_native_core_present_where_required():
    """CI sets FASTINIT_REQUIRE_NATIVE=1: a build that silently lost its compiled core (or its
    AVX2 kernels on an AVX2 machine) must fail there, not pass on the NumPy fallback."""
    if os.environ.get("FASTINIT_REQUIRE_NATIVE") != "1":
        pytest.skip("FASTINIT_REQUIRE_NATIVE is not set")
    assert _backend.core() is not None, _backend.core_error()
    with open("/proc/cpuinfo") as f:
        flags = f.read()
    if " avx2 " in flags and " fma " in flags:
        assert _backend.core().cpu_isa() == "avx2"


# --- The build without a compiler --------------------------------------------------------------

@pytest.mark.backends("numpy")
@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake on PATH")
def test_build_without_a_compiler_installs_the_numpy_package_and_says_why(tmp_path):
    """CMake's configure with no working C++ compiler (CXX names none) succeeds with one line
    saying so, installs only fastinit/_build_info.py; the package with it and without a core
    imports on NumPy and its warning names the cause and the fix."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS + ("CC",)}
    env.update(CXX=str(tmp_path / "no-such-c++"), FASTINIT_BUILD_QUIET="1")
    build, prefix = tmp_path / "build", tmp_path / "prefix"
    out = subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build)], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    said = [line for line in out.stdout.splitlines() if "fastinit:" in line]
    assert said == [f"-- fastinit: no working C++ compiler was found (CXX={env['CXX']}): installing "
                    "the pure-NumPy package (same values, slower). For the compiled core, install "
                    "one (g++ or clang++, or on macOS: xcode-select --install) and reinstall."]
    subprocess.run(["cmake", "--build", str(build)], env=env, check=True, capture_output=True)
    subprocess.run(["cmake", "--install", str(build), "--prefix", str(prefix)], env=env,
                   check=True, capture_output=True)
    installed = sorted(p.relative_to(prefix).as_posix() for p in prefix.rglob("*") if p.is_file())
    assert installed == ["fastinit/_build_info.py"]
    required = subprocess.run(["cmake", "-S", str(ROOT), "-B", str(tmp_path / "b2"),
                               "-DFASTINIT_REQUIRE_NATIVE=1"], env=env, capture_output=True, text=True)
    assert required.returncode != 0 and "FASTINIT_REQUIRE_NATIVE is set" in required.stderr

    # The package as pip would install it from that build: the sources and _build_info.py.
    shutil.copytree(ROOT / "src" / "fastinit", prefix / "fastinit", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("_core*.so", "_core*.pyd", "__pycache__"))
    env.pop("CXX")
    env["PYTHONPATH"] = str(prefix)
    out = subprocess.run([sys.executable, "-c", "import fastinit; print(fastinit.get_backend())"],
                         env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "numpy", out.stderr
    assert ("compiled core not available: it was installed without one: no working C++ compiler "
            "was found") in out.stderr
    assert "Fix: install one (g++ or clang++, or on macOS: xcode-select --install), then reinstall" in out.stderr


@pytest.mark.backends("numpy")
@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake on PATH")
def test_kept_build_is_started_afresh_when_its_compiler_is_not_todays(tmp_path):
    """Under pip (SKBUILD set) the project is configured nested in <build>/core, which pip's
    next install keeps; a compiler that CXX no longer names must not be reused from its cache.
    Configure steps only (nothing is compiled)."""
    pybind11 = pytest.importorskip("pybind11")
    build = tmp_path / "build"
    build.mkdir()
    (build / "CMakeInit.txt").write_text(
        f'set(Python_EXECUTABLE [===[{sys.executable}]===] CACHE PATH "" FORCE)\n'
        f'set(CMAKE_PREFIX_PATH [===[{pybind11.get_cmake_dir()}]===] CACHE PATH "" FORCE)\n')
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS + ("CC", "CXX")}
    env["FASTINIT_BUILD_QUIET"] = "1"

    def configure(**extra: str) -> list[str]:
        out = subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), "-DSKBUILD=2",
                              "-DFASTINIT_CUDA=OFF"], env={**env, **extra}, capture_output=True,
                             text=True)
        assert out.returncode == 0, out.stdout + out.stderr
        return [line for line in out.stdout.splitlines() if "fastinit:" in line]

    first = configure()
    assert "compiling the C++ core" in first[0] and (build / "core" / "CMakeCache.txt").exists()
    again = configure()
    assert "reusing what is unchanged in" in again[0] or "about" in again[0]
    assert not any("afresh" in line for line in again)
    gone = configure(CXX=str(tmp_path / "no-such-c++"))
    assert "afresh: CXX=" in gone[0] and "no working C++ compiler was found" in gone[1]
    back = configure()  # the "not found" is looked up again: the compiler is back
    assert "compiling the C++ core" in back[0]


# --- The command line ------------------------------------------------------------------------

@pytest.mark.backends("numpy")
def test_cli_info_version_and_example():
    out = run_cli("info")
    assert out.returncode == 0, out.stderr
    assert "fastinit" in out.stdout and fastinit.__version__ in out.stdout
    assert "backends available" in out.stdout and "backend in use" in out.stdout
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith(f"fastinit {fastinit.__version__} (")
    ex = run_cli("example")
    assert ex.returncode == 0, ex.stderr
    assert "same bits on the" in ex.stdout and ex.stdout.strip().endswith("True")


@pytest.mark.backends("numpy")
def test_cli_help_is_plain_text_and_names_the_program():
    for args in (["--help"], ["bench", "--help"]):
        out = run_cli(*args)
        assert out.returncode == 0, out.stderr
        assert "``" not in out.stdout and ":mod:" not in out.stdout and ":func:" not in out.stdout
        assert out.stdout.startswith("usage: python -m fastinit")
        assert "--repeats N" in out.stdout or args == ["--help"]
    # The console script's own name, as the `fastinit` entry point calls main():
    code = "import sys; from fastinit.cli import main; sys.exit(main(sys.argv[1:]))"
    for args in (["--help"], ["bench", "--help"]):
        out = run_python(code, *args)
        assert out.returncode == 0 and out.stdout.startswith("usage: fastinit"), out.stdout
    script = shutil.which("fastinit")
    if script and Path(script).parent == Path(sys.executable).parent:  # installed in this env
        out = subprocess.run([script, "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout.startswith("usage: fastinit")


@pytest.mark.backends("numpy")
def test_cli_stops_quietly_when_the_reader_goes_away():
    """`fastinit info | head -3`: no BrokenPipeError, the exit status of a program killed by
    SIGPIPE (141)."""
    proc = subprocess.Popen([sys.executable, "-m", "fastinit", "info"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={k: v for k, v in os.environ.items()
                                                         if k not in ENV_KEYS})
    proc.stdout.close()  # the reader is gone before anything is written
    stderr = proc.stderr.read().decode()
    assert proc.wait() == 141 and stderr == ""


@pytest.mark.backends("numpy")
def test_cli_refuses_bad_environment_values_and_arguments_in_one_line():
    out = run_cli("info", FASTINIT_BACKEND="foo")
    assert out.returncode == 2 and out.stdout == ""
    assert one_error_line(out) == ("python -m fastinit: error: FASTINIT_BACKEND='foo' is not one "
                                   "of: auto, native, numpy")
    out = run_cli("example", FASTINIT_CPU_ISA="avx512")
    assert out.returncode == 2
    assert one_error_line(out) == ("python -m fastinit: error: FASTINIT_CPU_ISA='avx512' is not one "
                                   "of: auto, generic, avx2")
    for args, text in ((["info", "--bogus"], "unrecognized arguments: --bogus"),
                       ([], "the following arguments are required: <command>"),
                       (["bench", "--repeats", "x"], "argument --repeats: invalid int value: 'x'")):
        out = run_cli(*args)
        prog = "python -m fastinit" + (" bench" if args[:1] == ["bench"] else "")
        assert out.returncode == 2 and text in one_error_line(out, prog)


@pytest.mark.backends("numpy")
def test_bench_errors_are_one_line(capsys):
    """Checked before anything is timed (in this process: main() returns the status)."""
    pytest.importorskip("torch")
    import torch

    from fastinit.bench.cli import main
    cases = [(["--sections", "gpu"], 2, "unknown section 'gpu' (choose from: cpu, busy, stats, model, models, cuda)"),
             (["--sections", "cpu,foo,bar"], 2, "unknown sections 'foo', 'bar'"),
             (["--repeats", "0"], 2, "--repeats must be at least 1 (got 0)"),
             (["--markdown", "/nonexistent-dir/x.md"], 2, "the folder /nonexistent-dir does not exist")]
    if not torch.cuda.is_available():
        cases.append((["--sections", "cuda"], 1, "section 'cuda' needs a CUDA GPU, and torch sees none"))
    for args, status, text in cases:
        assert main(args, prog="fastinit bench") == status
        out = capsys.readouterr()
        assert out.out == "" and out.err.count("\n") == 1, out.err
        assert out.err.startswith("fastinit bench: error: ") and text in out.err


@pytest.mark.backends("numpy")
def test_bench_without_torch_says_how_to_install_it():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from fastinit.cli import main; sys.exit(main(['bench', '--quick'], prog='fastinit'))")
    out = run_python(code)
    assert out.returncode == 1
    line = one_error_line(out, "fastinit bench")
    assert "torch is needed" in line
    assert line.endswith("pip install torch --index-url https://download.pytorch.org/whl/cpu")


@pytest.mark.backends("native")
def test_cpu_benchmark_times_every_contender_on_the_cases_it_lists():
    """fastinit bench (CPU section, small sizes): each row times fastinit, torch and fill_
    (positive medians), float64 and the per-call rows included. Times are not asserted."""
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


@pytest.mark.backends("numpy")
def test_bench_rows_print_as_they_finish_in_a_narrow_table():
    from fastinit.bench.timing import Row, format_table, narrow_lines, on_row

    seen = []
    with on_row(seen.append):
        row = Row("model-cpu", "reset_parameters, first call, overhead (d=8) (288 tensors, "
                  "11.0 us/tensor)", "float32", 302_000_000, 1_208_000_000,
                  {"fastinit": 0.5, "torch": 3.0, "write pass": 0.6}, reference="write pass")
    Row("cpu", "after the block", "float32", 1, 4, {"fastinit": 1.0})
    assert seen == [row]
    lines = format_table([row]).splitlines()
    assert max(len(line) for line in lines) <= 100
    first = narrow_lines(row)[0].split()
    assert first[-6:] == ["302M", "500.000", "3000.000", "6.00x", "2.42", "120%"]
