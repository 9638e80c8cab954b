#!/usr/bin/env bash
# Everything issues #3, #4 and #5 need from a GPU, in one call of at most ~10 minutes on the device
# machine (H100 or H200: python3 with torch 2.11, nvcc 13, cuobjdump, ncu; no network):
#
#   1. build and install fastinit with its CUDA kernels: pip install --no-build-isolation .
#   2. run the CUDA tests (tests/test_cuda.py and tests/test_fill_many.py, then every other test
#      marked cuda)
#   3. run the benchmarks: benchmarks/bench_cuda.py (fastinit vs torch vs fill_), then
#      benchmarks/bench_model.py (model init, batched: the issue #5 goals; into log.txt), then
#      benchmarks/bench_stats.py and bench_watch.py on the GPU (the issue #4 goals), as time allows
#   4. dump the SASS of the fill kernels and count instructions per element (static), and
#      measure them (ncu: executed instructions per element, pipes, time, DRAM bytes)
#
# Usage (device tool):  bash scripts/gpu_check.sh            with timeout_s 600
#        here, no GPU:  bash scripts/gpu_check.sh --sass-only path/to/fill_cuda.cu.o
# Options: --skip-tests, --skip-bench, --skip-ncu, --quick-bench.
#
# What comes back (at most 8 files under $OUT, see .library/device/README.md):
#   log.txt             the summary of every step (also the end of the reply)
#   build.log           pip / CMake / nvcc output
#   pytest.txt          the CUDA tests, verbose failures
#   bench_cuda.md       the benchmark table with device, driver, torch version and date
#   instructions.txt    static SASS counts per kernel, hot-loop estimate per element, and the
#                       dynamic counts measured by ncu
#   ncu.csv             raw ncu metrics of the fill kernels
#   resource_usage.txt  registers / stack / local memory per kernel (cuobjdump)
#   sass_sm90.txt.gz    the full sm_90 SASS of the extension
# The same files are copied into benchmarks/gpu_check/ when the script runs outside the device
# tool (no $OUT).
set -u -o pipefail

START=$(date +%s)
DEADLINE=${GPU_CHECK_DEADLINE:-560}  # seconds: stay inside the tool's 600 s limit
PY=${PYTHON:-python3}
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$REPO/benchmarks/gpu_check}
mkdir -p "$OUT"
WORK=$(mktemp -d)
LOG=$OUT/log.txt
: >"$LOG"
export PYTHONUNBUFFERED=1
# The CUDA tools where the image keeps them, if they are not on PATH already.
for d in /usr/local/cuda/bin /opt/nvidia/nsight-compute/*; do
  [ -d "$d" ] && case ":$PATH:" in *":$d:"*) ;; *) PATH=$PATH:$d ;; esac
done
export PATH

SKIP_TESTS=0 SKIP_BENCH=0 SKIP_NCU=0 QUICK_BENCH=0 SASS_ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --skip-tests) SKIP_TESTS=1 ;;
    --skip-bench) SKIP_BENCH=1 ;;
    --skip-ncu) SKIP_NCU=1 ;;
    --quick-bench) QUICK_BENCH=1 ;;
    --sass-only) SASS_ONLY=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

say() { echo "[$(($(date +%s) - START))s] $*" | tee -a "$LOG"; }
left() { echo $((DEADLINE - ($(date +%s) - START))); }

# ------------------------------------------------------------------ the SASS analysis (Python)
cat >"$WORK/sass_count.py" <<'PYEOF'
"""Static instruction counts of the fill kernels from `cuobjdump -sass` output.

For each kernel: the total static count by pipe (a rough model of Hopper's issue pipes), and
for the contiguous kernels the hot loop: the body of the grid-stride loop along the expected
path (at an if/else, the side without a CALL - the slow path of an IEEE sqrt - or else the
shorter side: the central piece of the quantile, not the tail). Divided by the values a Philox
block yields (4, or 2 in float64) this is the predicted instructions per element; the Philox
part alone is 20 IMAD.WIDE + 20 LOP3 + the key schedule.
"""
import collections
import os
import re
import sys

PIPE = [
    (r"^IMAD\.WIDE", "imad_wide"), (r"^(IMAD|IMUL)", "imad"),
    (r"^(FFMA|FADD|FMUL|FMNMX|FSETP|FSEL|FSET|FCHK|HFMA2|HADD2|HMUL2)", "fp32"),
    (r"^(DFMA|DADD|DMUL|DSETP|DMNMX)", "fp64"), (r"^MUFU", "mufu"),
    (r"^(F2F|F2I|I2F|F2FP|I2FP|FRND)", "cvt"),
    (r"^(LOP3|IADD3|SHF|ISETP|SEL|LEA|PRMT|IABS|IMNMX|VIADD|VIMNMX|BMSK|FLO|POPC|BREV|LOP|IADD)", "alu"),
    (r"^(MOV|S2R|CS2R)", "mov"), (r"^U", "uniform"),
    (r"^(STG|STS|STL|ST)", "store"), (r"^(LDG|LDS|LDL|LDC|LD)", "load"),
    (r"^(BRA|EXIT|BSSY|BSYNC|CALL|RET|BAR|WARPSYNC|NOP|BPT|YIELD)", "control"),
]
COLS = ["imad_wide", "imad", "fp32", "fp64", "mufu", "cvt", "alu", "uniform", "mov", "store",
        "load", "control", "other"]


def pipe_of(op):
    for rx, name in PIPE:
        if re.match(rx, op):
            return name
    return "other"


def parse(text):
    """{kernel: [(address, predicate, opcode, operands)]}, by scripts/cuda_budget.py's parser."""
    sys.path.insert(0, os.path.join(os.environ["FASTINIT_REPO"], "scripts"))
    from cuda_budget import parse_sass
    return {name: [(x.addr, x.pred, x.op, x.args) for x in ins] for name, ins in parse_sass(text).items()}


def short(name):
    m = re.search(r"gpu\d+(\w+?_kernel)I(.*)", name)
    if not m:
        return name[:60]
    kind, rest = re.sub(r"^\d+", "", m.group(1)), m.group(2)
    op = re.search(r"(UniformOp|NormalOp|TruncNormalOp)I([fd])(Lb([01]))?", rest)
    if not op:
        return kind
    out = "bf16" if "BFloat16" in rest else "f16" if "Float16" in rest else ("f64" if op.group(2) == "d" else "f32")
    opname = op.group(1) + ("_far" if op.group(4) == "1" else "")
    return f"{kind}<{opname},{out}>"


def per_block(name):
    return 2 if re.search(r"Op(I|)d(E|Lb)", name) else 4


def _target(operands):
    m = re.search(r"0x([0-9a-f]+)\s*$", operands.strip())
    return int(m.group(1), 16) if m else None


def hot_loop(ins):
    idx = {a: i for i, (a, *_) in enumerate(ins)}
    back = [i for i, (a, p, op, o) in enumerate(ins)
            if op == "BRA" and _target(o) is not None and _target(o) < a]
    if not back:
        return None
    end = back[-1]
    start = idx.get(_target(ins[end][3]))
    if start is None:
        return None
    path, i = [], start
    while i <= end:
        a, p, op, o = ins[i]
        t = _target(o) if op == "BRA" else None
        if op == "BRA" and p and t is not None and t > a and t in idx:
            j = idx[t]
            prev = ins[j - 1]
            pt = _target(prev[3]) if prev[2] == "BRA" else None
            if prev[2] == "BRA" and not prev[1] and pt is not None and pt > t and pt in idx:
                join = idx[pt]
                then_r, else_r = ins[i + 1:j], ins[j:join]
                cold = lambda r: any(x[2].startswith("CALL") for x in r)  # noqa: E731
                if cold(then_r) != cold(else_r):
                    take = else_r if cold(then_r) else then_r
                else:
                    take = then_r if len(then_r) <= len(else_r) else else_r
                path.append(ins[i])
                path.extend(x for x in take if x is not prev)
                i = join
                continue
        path.append(ins[i])
        i += 1
    return path


def main(path):
    text = open(path).read()
    ks = {n: v for n, v in parse(text).items() if "fastinit" in n and "fill_" in n}
    print("Static SASS instructions per kernel, by pipe")
    print(f"{'kernel':46s} {'total':>6s} " + " ".join(f"{c[:7]:>7s}" for c in COLS))
    for name, ins in sorted(ks.items(), key=lambda kv: short(kv[0])):
        c = collections.Counter(pipe_of(x[2]) for x in ins)
        print(f"{short(name):46s} {len(ins):6d} " + " ".join(f"{c.get(k, 0):7d}" for k in COLS))
    print()
    print("Hot loop of the contiguous kernels (expected path of one Philox block)")
    print(f"{'kernel':46s} {'loop':>5s} {'/elem':>6s} " + " ".join(f"{c[:7]:>7s}" for c in COLS))
    for name, ins in sorted(ks.items(), key=lambda kv: short(kv[0])):
        if "contiguous" not in name:
            continue
        body = hot_loop(ins)
        if body is None:
            continue
        c = collections.Counter(pipe_of(x[2]) for x in body)
        k = per_block(name)
        print(f"{short(name):46s} {len(body):5d} {len(body) / k:6.1f} " +
              " ".join(f"{c.get(col, 0):7d}" for col in COLS))


if __name__ == "__main__":
    main(sys.argv[1])
PYEOF

sass_analysis() {  # $1: an object or shared library with the CUDA kernels
  local obj=$1
  if ! command -v cuobjdump >/dev/null; then say "cuobjdump not found: no SASS analysis"; return; fi
  cuobjdump -sass -arch sm_90 "$obj" >"$WORK/sass_sm90.txt" 2>&1 || { say "cuobjdump -sass failed"; return; }
  gzip -c "$WORK/sass_sm90.txt" >"$OUT/sass_sm90.txt.gz"
  cuobjdump --dump-resource-usage "$obj" 2>&1 | grep -E "Function|REG|arch" >"$OUT/resource_usage.txt" || true
  FASTINIT_REPO=$REPO $PY "$WORK/sass_count.py" "$WORK/sass_sm90.txt" >"$OUT/instructions.txt" 2>&1 || say "SASS count failed"
  say "SASS: $(grep -c 'Function :' "$WORK/sass_sm90.txt") sm_90 kernels; counts in instructions.txt"
  grep -A 20 "^Hot loop" "$OUT/instructions.txt" | tee -a "$LOG"
}

if [ -n "$SASS_ONLY" ]; then
  sass_analysis "$SASS_ONLY"
  exit 0
fi

# ------------------------------------------------------------------ 0. the machine
say "repo $REPO, out $OUT"
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1
  nvcc --version 2>&1 | tail -2
  $PY -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" 2>&1
} | tee -a "$LOG"

# ------------------------------------------------------------------ 1. build and install
say "build: pip install --no-build-isolation . (FASTINIT_CUDA=ON)"
if ! (cd "$REPO" && FASTINIT_CUDA=ON CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
      $PY -m pip install --no-build-isolation --no-deps --no-index -v . >"$OUT/build.log" 2>&1); then
  say "BUILD FAILED (end of build.log follows)"
  tail -40 "$OUT/build.log" | tee -a "$LOG"
  exit 1
fi
grep -E "fastinit: |nvcc|CUDA kernels" "$OUT/build.log" | grep "fastinit:" | tee -a "$LOG"
CORE_SO=$(cd "$WORK" && $PY -c "import fastinit._core as c; print(c.__file__)")
(cd "$WORK" && $PY - <<'PYEOF') 2>&1 | tee -a "$LOG"
import fastinit, fastinit._core as c, torch
assert c.cuda_compiled(), "the extension was built without its CUDA kernels"
print("fastinit", fastinit.__version__, "CUDA kernels:", c.cuda_compiled(), "devices:", c.cuda_device_count())
t = torch.full((1000, 3), float("nan"), device="cuda")
fastinit.normal_(t, generator=1)
ref = fastinit.normal_(torch.empty(1000, 3), generator=1)
print("smoke test: bit-identical to the CPU:", torch.equal(t.cpu(), ref))
ts = [torch.full(s, float("nan"), device="cuda") for s in [(300, 200), (77,), (5, 6, 7)]]
fastinit.init_(ts, "trunc_normal", std=0.02, generator=1)
refs = fastinit.init_([torch.empty(t.shape) for t in ts], "trunc_normal", std=0.02, generator=1)
print("smoke test: batched init_ bit-identical to the CPU:", all(torch.equal(a.cpu(), b) for a, b in zip(ts, refs)))
PYEOF

# ------------------------------------------------------------------ 2. tests
if [ "$SKIP_TESTS" = 0 ]; then
  XDIST=""
  $PY -c "import xdist" 2>/dev/null && XDIST="-n 6"
  budget=$(( $(left) - 200 )); [ $budget -gt 300 ] && budget=300
  say "tests: tests/test_cuda.py tests/test_fill_many.py $XDIST (timeout ${budget}s)"
  (cd "$REPO" && timeout $budget $PY -m pytest tests/test_cuda.py tests/test_fill_many.py -q -rfEs $XDIST \
      -p no:cacheprovider >"$OUT/pytest.txt" 2>&1)
  say "tests/test_cuda.py tests/test_fill_many.py exit $?: $(tail -1 "$OUT/pytest.txt")"
  grep -E "^(FAILED|ERROR)" "$OUT/pytest.txt" | head -30 | tee -a "$LOG"
  budget=$(( $(left) - 200 )); [ $budget -gt 90 ] && budget=90
  if [ $budget -gt 20 ]; then
    (cd "$REPO" && timeout $budget $PY -m pytest tests -m cuda -q -rfE --ignore tests/test_cuda.py \
        --ignore tests/test_fill_many.py -p no:cacheprovider >>"$OUT/pytest.txt" 2>&1)
    say "other tests marked cuda exit $?: $(tail -1 "$OUT/pytest.txt")"
  fi
fi

# ------------------------------------------------------------------ 3. benchmark
if [ "$SKIP_BENCH" = 0 ]; then
  budget=$(( $(left) - 80 )); [ $budget -gt 180 ] && budget=180
  args="--markdown $OUT/bench_cuda.md"
  [ "$QUICK_BENCH" = 1 ] && args="$args --quick"
  say "benchmark (timeout ${budget}s)"
  (cd "$REPO" && timeout $budget $PY benchmarks/bench_cuda.py $args 2>&1 | tail -45) | tee -a "$LOG"
  budget=$(( $(left) - 70 )); [ $budget -gt 90 ] && budget=90
  if [ $budget -gt 20 ]; then
    say "model benchmark (timeout ${budget}s)"
    (cd "$REPO" && timeout $budget $PY benchmarks/bench_model.py --runs 7 --cpu-blocks 1 2>&1 | tail -20) | tee -a "$LOG"
  fi
  budget=$(( $(left) - 60 )); [ $budget -gt 60 ] && budget=60
  if [ $budget -gt 20 ]; then
    say "statistics benchmark on the GPU, issue #4 (timeout ${budget}s)"
    (cd "$REPO" && timeout $budget $PY benchmarks/bench_stats.py --devices cuda --numel 268435456 --reps 11 \
        2>&1 | tail -12) | tee -a "$LOG"
  fi
  budget=$(( $(left) - 55 )); [ $budget -gt 40 ] && budget=40
  if [ $budget -gt 20 ]; then  # RESULTS_CUDA_NOTES predicts bfloat16 issue-bound (~75% of reads)
    say "statistics benchmark on the GPU, bfloat16 (timeout ${budget}s)"
    (cd "$REPO" && timeout $budget $PY benchmarks/bench_stats.py --devices cuda --numel 268435456 --reps 7 \
        --dtype bfloat16 2>&1 | tail -12) | tee -a "$LOG"
  fi
  budget=$(( $(left) - 50 )); [ $budget -gt 45 ] && budget=45
  if [ $budget -gt 20 ]; then
    say "watch overhead on the GPU, issue #4 (timeout ${budget}s)"
    (cd "$REPO" && timeout $budget $PY benchmarks/bench_watch.py --repeats 3 2>&1 | tail -12) | tee -a "$LOG"
  fi
fi

# ------------------------------------------------------------------ 4. SASS and ncu
sass_analysis "$CORE_SO"
if [ "$SKIP_NCU" = 0 ] && command -v ncu >/dev/null && [ "$(left)" -gt 40 ]; then
  cat >"$WORK/ncu_run.py" <<'PYEOF'
"""One call of each fill on 2^24 elements (float32, bfloat16; float64 and float16 for
uniform/normal), plus two views: ncu profiles the fill_ kernels in this order."""
import json, sys
import torch
import fastinit as fi
N = 1 << 24
runs = []
def go(label, dtype, make, fill):
    t = make(dtype)
    fill(t)
    runs.append({"label": label, "dtype": str(dtype).replace("torch.", ""), "numel": t.numel()})
flat = lambda dt: torch.empty(N, dtype=dt, device="cuda")  # noqa: E731
for dt in (torch.float32, torch.bfloat16, torch.float16, torch.float64):
    go("uniform_", dt, flat, lambda t: fi.uniform_(t, -1, 1, generator=1))
    go("normal_", dt, flat, lambda t: fi.normal_(t, 0, 0.02, generator=1))
    if dt in (torch.float32, torch.bfloat16):
        go("trunc_normal_(std=0.02)", dt, flat, lambda t: fi.trunc_normal_(t, std=0.02, a=-0.04, b=0.04, generator=1))
        go("trunc_normal_(far: a=8, b=9)", dt, flat, lambda t: fi.trunc_normal_(t, a=8.0, b=9.0, generator=1))
go("normal_ transposed 4096^2", torch.float32, lambda dt: torch.empty(4096, 4096, dtype=dt, device="cuda").t(),
   lambda t: fi.normal_(t, generator=1))
go("normal_ column slice 4096^2", torch.float32, lambda dt: torch.empty(4096, 4096, dtype=dt, device="cuda")[:, 1:-1],
   lambda t: fi.normal_(t, generator=1))
torch.cuda.synchronize()
json.dump(runs, open(sys.argv[1], "w"))
PYEOF
  cat >"$WORK/ncu_summary.py" <<'PYEOF'
"""Instructions per element and time per launch from the ncu CSV (launch order = runs order)."""
import csv, io, json, sys
runs = json.load(open(sys.argv[2]))
text = open(sys.argv[1]).read()
start = text.find('"ID"')
rows = list(csv.reader(io.StringIO(text[start:]))) if start >= 0 else []
if len(rows) < 3:
    print("ncu: no metrics parsed"); sys.exit(0)
head, data = rows[0], [r for r in rows[2:] if len(r) == len(rows[0])]
col = {h: i for i, h in enumerate(head)}
def val(r, name):
    try:
        return float(r[col[name]].replace(",", ""))
    except (KeyError, ValueError):
        return float("nan")
print("\nMeasured by ncu (one launch each; thread instructions / elements; pipes in warp instructions / element x 32)")
print(f"{'case':34s} {'dtype':9s} {'kernel':24s} {'inst/elem':>9s} {'us':>8s} {'TB/s wr':>8s} {'issue%':>7s} "
      f"{'fma':>6s} {'fmaH':>6s} {'alu':>6s} {'unif':>6s} {'xu':>5s} {'GHz':>5s}")
for run, r in zip(runs, data):
    n = run["numel"]
    t_ns = val(r, "gpu__time_duration.sum")
    wr = val(r, "dram__bytes_write.sum")
    pipe = lambda m: val(r, m) * 32 / n  # noqa: E731
    kname = r[col["Kernel Name"]].split("<")[0].split("(")[0].split("::")[-1] if "Kernel Name" in col else "?"
    print(f"{run['label']:34s} {run['dtype']:9s} {kname[-24:]:24s} "
          f"{val(r, 'smsp__thread_inst_executed.sum') / n:9.1f} {t_ns / 1e3:8.1f} {wr / t_ns / 1e3:8.2f} "
          f"{val(r, 'smsp__issue_active.avg.pct_of_peak_sustained_active'):7.1f} "
          f"{pipe('smsp__inst_executed_pipe_fma.sum'):6.1f} {pipe('smsp__inst_executed_pipe_fmaheavy.sum'):6.1f} "
          f"{pipe('smsp__inst_executed_pipe_alu.sum'):6.1f} {pipe('smsp__inst_executed_pipe_uniform.sum'):6.1f} "
          f"{pipe('smsp__inst_executed_pipe_xu.sum'):5.1f} {val(r, 'sm__cycles_elapsed.avg.per_second') / 1e9:5.2f}")
PYEOF
  METRICS=smsp__thread_inst_executed.sum,smsp__inst_executed.sum,gpu__time_duration.sum,dram__bytes_write.sum,smsp__issue_active.avg.pct_of_peak_sustained_active,smsp__inst_executed_pipe_fma.sum,smsp__inst_executed_pipe_fmaheavy.sum,smsp__inst_executed_pipe_alu.sum,smsp__inst_executed_pipe_uniform.sum,smsp__inst_executed_pipe_xu.sum,sm__cycles_elapsed.avg.per_second
  budget=$(( $(left) - 15 )); [ $budget -gt 150 ] && budget=150
  say "ncu (timeout ${budget}s)"
  (cd "$WORK" && timeout $budget ncu --clock-control none --kernel-name regex:fill_ --csv --page raw \
      --metrics $METRICS $PY "$WORK/ncu_run.py" "$WORK/runs.json" >"$OUT/ncu.csv" 2>&1)
  rc=$?
  if [ $rc -ne 0 ] || ! grep -q '"ID"' "$OUT/ncu.csv"; then
    say "ncu with pipe metrics failed ($rc); again with the basic ones"
    (cd "$WORK" && timeout 60 ncu --clock-control none --kernel-name regex:fill_ --csv --page raw \
        --metrics smsp__thread_inst_executed.sum,gpu__time_duration.sum,dram__bytes_write.sum \
        $PY "$WORK/ncu_run.py" "$WORK/runs.json" >>"$OUT/ncu.csv" 2>&1)
  fi
  [ -f "$WORK/runs.json" ] && $PY "$WORK/ncu_summary.py" "$OUT/ncu.csv" "$WORK/runs.json" 2>&1 \
      | tee -a "$OUT/instructions.txt" | tee -a "$LOG"
fi

if [ "$OUT" != "$REPO/benchmarks/gpu_check" ] && [ -d "$REPO/benchmarks" ]; then
  mkdir -p "$REPO/benchmarks/gpu_check" && cp "$OUT"/* "$REPO/benchmarks/gpu_check/" 2>/dev/null
fi
say "done in $(($(date +%s) - START))s; files: $(ls "$OUT" | tr '\n' ' ')"
