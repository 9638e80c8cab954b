#!/usr/bin/env python3
"""The CUDA kernels' instruction and resource budgets, checked from the compiler's output alone.

No GPU is needed: the script compiles csrc/cuda/*.cu for sm_90 with nvcc (the flags of
CMakeLists.txt) or reads a built module (--module), disassembles it with cuobjdump (on PATH, in
$CUOBJDUMP, or from the `nvidia-cuda-cuobjdump` wheel with `nvidia-cuda-nvdisasm` beside it: both
are in the test extras) and prints, per kernel and dtype: registers, stack and spill bytes,
occupancy on an sm_90 SM, the store width of the hot loop and its SASS instructions per Philox
block (fill kernels) or per value (statistics). Then it checks the budgets of issue 14 and exits
with 1 on a violation (0: all met, 2: a tool is missing or the build failed).

    python scripts/cuda_budget.py                      # compile and check
    python scripts/cuda_budget.py --markdown           # the table as markdown
    python scripts/cuda_budget.py --module build/_core.cpython-311-x86_64-linux-gnu.so

How the hot loop is found (static analysis, so a model of the run, not a measurement):
  * the SASS of each kernel is cut into a graph of instructions (fall-through and branch edges);
    every backward branch closes a loop [target, branch];
  * a loop's expected path is the shortest path from its first instruction to its backward
    branch, inside the loop, that avoids CALLs (the slow paths of IEEE sqrt and division):
    the vector store rather than the lane-by-lane one, the sqrt fast path, no early exit;
  * fill kernels: the Philox multiplies by M0 = 0xD2511F53 on the path (10 per block) give the
    blocks it computes; the hot loop is the loop with the fewest instructions per block;
  * statistics: the hot loop is the innermost loop with 16-byte global loads that has the fewest
    instructions per value loaded (values per iteration: its loaded bytes over the dtype's
    size); the expected path of the item loop outside it (the shift's sample, the CTA
    reduction) is added, amortised over the values a thread reads per item.
"""
from __future__ import annotations

import argparse
import dataclasses
import heapq
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = ["csrc/cuda/fill_cuda.cu", "csrc/cuda/fill_many_cuda.cu", "csrc/cuda/stats_cuda.cu"]
# The CUDA flags of CMakeLists.txt (tests/test_cuda_budget.py checks that they are still there).
NVCC_FLAGS = ["--fmad=false", "--prec-div=true", "--prec-sqrt=true", "--ftz=false", "-O3"]
NVCC_COMMON = ["-std=c++17", "-DFASTINIT_ISA=cuda", "-I", str(REPO / "csrc")]

# sm_90 (Hopper) per-SM limits, for the occupancy of a CTA of THREADS threads.
SM90 = dict(regs=65536, reg_unit=256, max_warps=64, max_ctas=32, smem=233472, smem_reserved=1024,
            smem_unit=128)
THREADS = 256  # every kernel's CTA (kThreads in fill_device.cuh and stats_cuda.cu)

PHILOX_M0 = ("-0x2daee0ad", "0xd2511f53")  # the multiplier of counter word 0: 10 per block
CALL_PENALTY = 10 ** 6
DTYPE_BYTES = {"f32": 4, "f64": 8, "f16": 2, "bf16": 2}

# Budgets of issue 14.
NORMAL_F32_MAX = 165
UNIFORM_F32_MAX = 70
BATCHED_SLACK = 1.05
STATS_PER_VALUE_MAX = 30


# ------------------------------------------------------------------------------ tools

def find_cuobjdump(explicit: str | None = None) -> str | None:
    for cand in (explicit, os.environ.get("CUOBJDUMP"), shutil.which("cuobjdump")):
        if cand and Path(cand).is_file():
            return cand
    try:  # the nvidia-cuda-cuobjdump wheel: nvidia/cu13/bin/cuobjdump (cu12: nvidia/cuda_cuobjdump/bin)
        import nvidia  # type: ignore
        for base in getattr(nvidia, "__path__", []):
            for hit in sorted(Path(base).glob("*/bin/cuobjdump")):
                return str(hit)
    except ImportError:
        pass
    return None


def run(cmd: list[str]) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return res.stdout + res.stderr


def compile_cubins(nvcc: str, arch: str, outdir: Path, sources: list[str]) -> tuple[list[Path], dict]:
    """Each source to a cubin; returns the cubins and ptxas' spill bytes per kernel."""
    cubins, spills = [], {}
    for src in sources:
        out = outdir / (Path(src).stem + ".cubin")
        log = run([nvcc, f"-arch={arch}", "-cubin", *NVCC_FLAGS, *NVCC_COMMON, "-Xptxas", "-v",
                   "-o", str(out), str(REPO / src)])
        spills.update(parse_ptxas(log))
        cubins.append(out)
    return cubins, spills


def parse_ptxas(log: str) -> dict:
    """ptxas -v: {kernel: (spill store bytes, spill load bytes)}."""
    out, name = {}, None
    for line in log.splitlines():
        m = re.search(r"Function properties for (\S+)", line)
        if m:
            name = m.group(1)
        m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and name:
            out[name] = (int(m.group(1)), int(m.group(2)))
    return out


# ------------------------------------------------------------------------------ SASS

@dataclasses.dataclass
class Ins:
    addr: int
    pred: str
    op: str
    args: str


def parse_sass(text: str) -> dict[str, list[Ins]]:
    kernels: dict[str, list[Ins]] = {}
    name = None
    for line in text.splitlines():
        m = re.search(r"Function : (\S+)", line)
        if m:
            name = m.group(1)
            kernels[name] = []
            continue
        m = re.match(r"\s+/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)\s*([^;]*);", line)
        if m and name is not None:
            kernels[name].append(Ins(int(m.group(1), 16), (m.group(2) or "").strip(), m.group(3), m.group(4)))
    return kernels


def parse_resources(text: str) -> dict[str, dict]:
    """cuobjdump --dump-resource-usage: {kernel: {REG, STACK, SHARED, LOCAL}}."""
    out, name = {}, None
    for line in text.splitlines():
        m = re.search(r"Function (\S+):", line)
        if m:
            name = m.group(1)
            continue
        if name and "REG:" in line:
            out[name] = {k: int(v) for k, v in re.findall(r"(\w+):(\d+)", line) if k in ("REG", "STACK", "SHARED", "LOCAL")}
            name = None
    return out


def branch_target(ins: Ins) -> int | None:
    m = re.search(r"0x([0-9a-f]+)\s*$", ins.args.strip())
    return int(m.group(1), 16) if m else None


def successors(ins: list[Ins], i: int, index: dict[int, int]) -> list[int]:
    x = ins[i]
    nxt = [i + 1] if i + 1 < len(ins) else []
    conditional = bool(x.pred) and x.pred != "@PT"
    if x.op.startswith("BRA") or x.op.startswith("JMP"):
        t = branch_target(x)
        conditional = conditional or x.op.startswith("BRA.DIV") or re.match(r"!?U?P\d", x.args.strip()) is not None
        targets = [index[t]] if t is not None and t in index else []
        return targets + (nxt if conditional else [])
    if x.op.startswith(("EXIT", "RET", "BRX", "JMX")):
        return nxt if conditional and x.op.startswith("EXIT") else []
    return nxt


def shortest_path(ins: list[Ins], start: int, end: int, allowed: range | set[int]) -> list[int] | None:
    """Instructions (indices) of the cheapest path start -> end inside `allowed` (CALLs avoided)."""
    index = {x.addr: k for k, x in enumerate(ins)}
    cost = lambda k: CALL_PENALTY if ins[k].op.startswith("CALL") else 1  # noqa: E731
    dist, prev = {start: cost(start)}, {}
    heap = [(dist[start], start)]
    while heap:
        d, k = heapq.heappop(heap)
        if k == end:
            path = [k]
            while path[-1] != start:
                path.append(prev[path[-1]])
            return path[::-1]
        if d > dist.get(k, 1 << 62):
            continue
        for s in successors(ins, k, index):
            if s not in allowed or (s == start and k != end):
                continue
            nd = d + cost(s)
            if nd < dist.get(s, 1 << 62):
                dist[s], prev[s] = nd, k
                heapq.heappush(heap, (nd, s))
    return None


def loops(ins: list[Ins]) -> list[tuple[int, int]]:
    """(header, latch) index pairs of the backward branches, innermost first."""
    index = {x.addr: k for k, x in enumerate(ins)}
    out = []
    for k, x in enumerate(ins):
        if x.op.startswith("BRA"):
            t = branch_target(x)
            if t is not None and t < x.addr and t in index:  # (a branch to itself ends the code)
                out.append((index[t], k))
    return sorted(out, key=lambda hl: hl[1] - hl[0])


def counted(x: Ins) -> bool:
    return x.op != "NOP"


def is_philox_m0(x: Ins) -> bool:
    return "IMAD" in x.op and (".WIDE.U32" in x.op or ".HI.U32" in x.op) and any(m in x.args for m in PHILOX_M0)


def store_bits(x: Ins) -> int | None:
    if not x.op.startswith("STG"):
        return None
    for suffix, bits in ((".128", 128), (".64", 64), (".U16", 16), (".S16", 16), (".U8", 8), (".S8", 8)):
        if suffix in x.op:
            return bits
    return 32


def is_global_load(x: Ins) -> bool:
    return x.op.startswith("LDG")


def load_bytes(x: Ins) -> int:
    for suffix, b in ((".128", 16), (".64", 8), (".U16", 2), (".S16", 2), (".U8", 1)):
        if suffix in x.op:
            return b
    return 4


@dataclasses.dataclass
class Hot:
    instructions: int = 0     # on the expected path
    units: float = 0.0        # Philox blocks or values on it
    per_unit: float = 0.0
    stores: list = dataclasses.field(default_factory=list)  # widths (bits) of the global stores on it
    overhead: float = 0.0     # statistics: per-item work outside the hot loop, per value


def fill_hot_loop(ins: list[Ins], dtype_bytes: int) -> Hot | None:
    """The loop with the fewest instructions per element it stores along its expected path: the
    contiguous loop (K elements per Philox block) rather than the strided one (one element)."""
    best, best_cost = None, None
    for h, l in loops(ins):
        path = shortest_path(ins, h, l, range(h, l + 1))
        if not path:
            continue
        xs = [ins[k] for k in path if counted(ins[k])]
        stores = [b for b in (store_bits(x) for x in xs) if b is not None]
        elements = sum(stores) / (8 * dtype_bytes)
        if not stores:
            continue
        blocks = sum(is_philox_m0(x) for x in xs) / 10.0
        if blocks == 0:  # a constant fill: no generator, one store per unit
            blocks = float(len(stores))
        cost = len(xs) / elements
        if best_cost is None or cost < best_cost:
            best, best_cost = Hot(len(xs), blocks, len(xs) / blocks, stores), cost
    return best


def stats_hot_loop(ins: list[Ins], dtype_bytes: int, values_per_item: int) -> Hot | None:
    """The innermost loop with 16-byte global loads (else with any) that has the fewest
    instructions per value loaded on its expected path (the vector loop, not the element-by-
    element tail nor float64's rare rescaled pass), plus the enclosing item loop's expected
    path outside it, amortised over the values a thread reads per item."""
    all_loops = loops(ins)
    with_loads = [(h, l) for h, l in all_loops if any(is_global_load(ins[k]) for k in range(h, l + 1))]
    # the 16-byte-load loop when there is one (not the tail's or a rare path's scalar loads)
    vector = [(h, l) for h, l in with_loads if any(is_global_load(ins[k]) and load_bytes(ins[k]) == 16
                                                   for k in range(h, l + 1))]
    best = None
    for h, l in vector or with_loads:
        body = range(h, l + 1)
        if any(oh >= h and ol <= l and (oh, ol) != (h, l) for oh, ol in with_loads):
            continue  # an enclosing loop (the item loop): its path would skip the inner back edge
        path = shortest_path(ins, h, l, body)
        if not path:
            continue
        xs = [ins[k] for k in path if counted(ins[k])]
        values = sum(load_bytes(x) for x in xs if is_global_load(x)) / dtype_bytes
        if values == 0:
            continue
        hot = Hot(len(xs), values, len(xs) / values, [])
        if best is None or hot.per_unit < best[0].per_unit:
            best = (hot, h, l)
    if best is None:
        return None
    hot, h, l = best
    outer = [(oh, ol) for oh, ol in all_loops if oh <= h and ol >= l and (oh, ol) != (h, l)]
    if outer:  # head of the item loop -> hot loop -> its latch, never re-entering the hot loop
        oh, ol = outer[0]
        allowed = {k for k in range(oh, ol + 1) if not h <= k <= l}
        before = shortest_path(ins, oh, h, allowed | {h})
        after = shortest_path(ins, l, ol, allowed | {l})
        if before and after:
            rest = [k for k in before[:-1] + after[1:] if counted(ins[k])]
            hot.overhead = len(rest) / values_per_item
    return hot


# ------------------------------------------------------------------------------ kernels

OPS = [("UnclampedUniformOp", "uniform"), ("UnclampedNormalOp", "normal"), ("UniformOp", "uniform+clamp"),
       ("NormalOp", "normal+clamp"), ("TruncNormalOp", "trunc_normal"), ("ConstantOp", "constant")]


def describe(mangled: str) -> dict | None:
    """Kernel kind, op and dtype from a mangled name; None for kernels that are not ours."""
    if "fastinit" not in mangled:
        return None
    m = re.search(r"(fill_contiguous|fill_runs|fill_elements|fill_many|stats_partials|stats_finalize)_kernel", mangled)
    if not m:
        return None
    kind = m.group(1)
    info = dict(kind=kind, op="", dtype="", name=mangled)
    table = re.search(r"BatchTableI\w*?Lm(\d+)E", mangled)  # the batched kernel's table size
    if table:
        kind = info["kind"] = f"fill_many{int(table.group(1)) // 1000}k"
    if kind.startswith("fill"):
        for token, label in OPS:
            mm = re.search(rf"\d+{token}I([fd])(Lb([01])ELb[01])?", mangled)
            if mm:
                info["op"] = label + ("_far" if mm.group(3) == "1" else "")
                compute = mm.group(1)
                break
        else:
            return info
        info["dtype"] = ("bf16" if "BFloat16" in mangled else "f16" if "Float16" in mangled
                         else "f64" if compute == "d" else "f32")
    else:
        mm = re.search(r"kernelI(f|d|NS0_8BFloat16E|NS0_7Float16E)(Lb([01]))?", mangled)
        if mm:
            info["dtype"] = {"f": "f32", "d": "f64", "NS0_8BFloat16E": "bf16", "NS0_7Float16E": "f16"}[mm.group(1)]
            info["op"] = "bins" if mm.group(3) == "1" else "no bins"
    return info


def occupancy(regs: int, smem: int, threads: int = THREADS) -> tuple[int, float]:
    """(resident CTAs per SM, fraction of the SM's warps) on sm_90."""
    warps = (threads + 31) // 32
    per_warp = -(-max(regs, 1) * 32 // SM90["reg_unit"]) * SM90["reg_unit"]
    by_regs = (SM90["regs"] // per_warp) // warps
    smem_cta = -(-(smem + SM90["smem_reserved"]) // SM90["smem_unit"]) * SM90["smem_unit"]
    by_smem = SM90["smem"] // smem_cta
    ctas = min(by_regs, by_smem, SM90["max_warps"] // warps, SM90["max_ctas"])
    return ctas, ctas * warps / SM90["max_warps"]


def analyse(sass: str, resources: dict, spills: dict, stats_values_per_item: int) -> list[dict]:
    rows = []
    for name, ins in parse_sass(sass).items():
        info = describe(name)
        if info is None:
            continue
        res = resources.get(name, {})
        regs = res.get("REG", 0)
        ctas, occ = occupancy(regs, res.get("SHARED", 0))
        spill_st, spill_ld = spills.get(name, (None, None))
        local_ops = sum(x.op.startswith(("STL", "LDL")) for x in ins)
        row = dict(info, regs=regs, stack=res.get("STACK", 0), local=res.get("LOCAL", 0),
                   spill_stores=spill_st, spill_loads=spill_ld, local_ops=local_ops, ctas=ctas,
                   occupancy=occ, sass_total=sum(counted(x) for x in ins))
        hot = None
        if info["kind"].startswith("fill"):
            hot = fill_hot_loop(ins, DTYPE_BYTES[info["dtype"]]) if info["dtype"] else None
        elif info["kind"] == "stats_partials" and info["dtype"]:
            hot = stats_hot_loop(ins, DTYPE_BYTES[info["dtype"]], stats_values_per_item)
        if hot is not None:
            row.update(hot_instructions=hot.instructions, hot_units=hot.units, per_unit=round(hot.per_unit, 2),
                       stores=hot.stores, store_bits=max(hot.stores) if hot.stores else None,
                       overhead=round(hot.overhead, 2))
        rows.append(row)
    kinds = ["fill_contiguous", "fill_many4k", "fill_many32k", "fill_many", "fill_runs", "fill_elements", "stats_partials", "stats_finalize"]
    dtypes = ["f32", "f64", "f16", "bf16", ""]
    rows.sort(key=lambda r: (kinds.index(r["kind"]), r["op"], dtypes.index(r["dtype"])))
    return rows


# ------------------------------------------------------------------------------ budgets

def check(rows: list[dict]) -> list[str]:
    bad = []
    by = {(r["kind"], r["op"], r["dtype"]): r for r in rows}
    label = lambda r: f"{r['kind']}<{r['op']},{r['dtype']}>"  # noqa: E731
    for r in rows:
        if r["stack"] or r["local"] or r["local_ops"] or (r["spill_stores"] or 0) or (r["spill_loads"] or 0):
            bad.append(f"{label(r)}: stack {r['stack']} B, local {r['local']} B, spills "
                       f"{r['spill_stores']}/{r['spill_loads']} B, {r['local_ops']} local loads/stores")
        if r["kind"].startswith(("fill_contiguous", "fill_many", "fill_runs")) and "per_unit" in r:
            want = 64 if r["dtype"] in ("f16", "bf16") else 128
            if r["stores"] != [want] * len(r["stores"]) or len(r["stores"]) != round(r["hot_units"]):
                bad.append(f"{label(r)}: hot-loop stores {r['stores']} bits for {r['hot_units']:g} blocks, "
                           f"want one {want}-bit store per block")
        if r["kind"].startswith("fill_many") and "per_unit" in r:
            ref = by.get(("fill_contiguous", r["op"], r["dtype"]))
            if ref and "per_unit" in ref and r["per_unit"] > BATCHED_SLACK * ref["per_unit"]:
                bad.append(f"{label(r)}: {r['per_unit']} SASS per block, more than {BATCHED_SLACK} x the "
                           f"per-tensor kernel's {ref['per_unit']}")
    for (kind, op, dtype), limit in ((("fill_contiguous", "normal", "f32"), NORMAL_F32_MAX),
                                     (("fill_contiguous", "uniform", "f32"), UNIFORM_F32_MAX)):
        r = by.get((kind, op, dtype))
        if r is None or "per_unit" not in r:
            bad.append(f"{kind}<{op},{dtype}>: kernel or hot loop not found")
        elif r["per_unit"] > limit:
            bad.append(f"{label(r)}: {r['per_unit']} SASS per block > {limit}")
    stats = [r for r in rows if r["kind"] == "stats_partials"]
    nobins = [r for r in stats if r["op"] == "no bins"]
    if sorted(r["dtype"] for r in nobins) != sorted(DTYPE_BYTES):
        bad.append(f"stats_partials: want one no-bins instantiation per dtype, found {[label(r) for r in stats]}")
    for r in nobins:
        if r["occupancy"] < 1.0:
            bad.append(f"{label(r)}: occupancy {r['occupancy']:.0%} ({r['ctas']} CTAs of {THREADS}, {r['regs']} registers)")
        if "per_unit" not in r:
            bad.append(f"{label(r)}: hot loop not found")
        elif r["per_unit"] + r["overhead"] > STATS_PER_VALUE_MAX:
            bad.append(f"{label(r)}: {r['per_unit']} + {r['overhead']} SASS per value > {STATS_PER_VALUE_MAX}")
    return bad


def table(rows: list[dict], markdown: bool) -> str:
    head = ["kernel", "op", "dtype", "regs", "stack", "spill st/ld", "CTAs/SM", "occupancy", "store bits",
            "SASS/unit", "unit", "hot path"]
    lines = []
    for r in rows:
        unit = "value" if r["kind"] == "stats_partials" else "block"
        per = r.get("per_unit")
        per_s = "" if per is None else (f"{per:.1f}" + (f" + {r['overhead']:.1f}" if r.get("overhead") else ""))
        spill = "-" if r["spill_stores"] is None else f"{r['spill_stores']}/{r['spill_loads']}"
        stores = r.get("stores") or []
        store_s = "" if not stores else (f"{stores[0]}" if len(set(stores)) == 1 else "/".join(map(str, stores)))
        if stores and len(stores) > 1:
            store_s += f" x{len(stores)}"
        lines.append([r["kind"], r["op"], r["dtype"], str(r["regs"]), str(r["stack"]), spill, str(r["ctas"]),
                      f"{r['occupancy']:.0%}", store_s, per_s, unit if per is not None else "",
                      "" if per is None else f"{r['hot_instructions']} / {r['hot_units']:g}"])
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(l) + " |" for l in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(l) for l in lines])


def stats_values_per_item() -> int:
    """kItem / kThreads of stats_kernels.cuh: the values one thread reads per item."""
    text = (REPO / "csrc/cuda/stats_kernels.cuh").read_text()
    consts = {k: int(v) for k, v in re.findall(r"constexpr int (k\w+) = (\d+);", text)}
    m = re.search(r"kItem = std::int64_t\{kThreads\} \* (.*?);", text)
    if not m:
        return 64
    per = 1
    for token in re.findall(r"k\w+|\d+", m.group(1)):
        per *= consts.get(token, int(token) if token.isdigit() else 1)
    return per


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--module", action="append", help="read this built module (.so) or cubin instead of "
                    "compiling the sources (may be repeated)")
    ap.add_argument("--nvcc", default=shutil.which("nvcc"), help="nvcc (default: on PATH)")
    ap.add_argument("--cuobjdump", help="cuobjdump (default: $CUOBJDUMP, PATH, the nvidia-cuda-cuobjdump wheel)")
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--keep", help="keep the cubins and SASS in this folder")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown")
    ap.add_argument("--json", help="write the rows and violations to this file")
    ap.add_argument("--no-check", action="store_true", help="print only; exit 0 unless a tool fails")
    args = ap.parse_args(argv)

    cuobjdump = find_cuobjdump(args.cuobjdump)
    if cuobjdump is None:
        print("cuda_budget: no cuobjdump (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm, or set $CUOBJDUMP)", file=sys.stderr)
        return 2
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cuda_budget_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        spills: dict = {}
        if args.module:
            objects = [Path(m) for m in args.module]
        else:
            if not args.nvcc:
                print("cuda_budget: no nvcc on PATH (or give --nvcc)", file=sys.stderr)
                return 2
            objects, spills = compile_cubins(args.nvcc, args.arch, work, SOURCES)
        sass, resources = "", {}
        for obj in objects:
            sass += run([cuobjdump, "-sass", "-arch", args.arch, str(obj)])
            resources.update(parse_resources(run([cuobjdump, "--dump-resource-usage", "-arch", args.arch, str(obj)])))
        if args.keep:
            (work / "kernels.sass").write_text(sass)
    except (RuntimeError, OSError) as e:
        print(f"cuda_budget: {e}", file=sys.stderr)
        return 2
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    rows = analyse(sass, resources, spills, stats_values_per_item())
    print(table(rows, args.markdown))
    bad = check(rows)
    print()
    print(f"{len(rows)} kernels ({args.arch}); budgets: " + ("all met" if not bad else f"{len(bad)} violated"))
    for b in bad:
        print("  VIOLATED " + b)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(rows=rows, violations=bad), indent=1))
    return 0 if args.no_check or not bad else 1


if __name__ == "__main__":
    sys.exit(main())
