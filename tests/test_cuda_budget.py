"""scripts/cuda_budget.py: its SASS analysis on hand-written SASS (always), and on the real
kernels when nvcc and cuobjdump are here (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm); no GPU needed."""
from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("cuda_budget", ROOT / "scripts" / "cuda_budget.py")
cb = importlib.util.module_from_spec(_spec)
sys.modules["cuda_budget"] = cb
_spec.loader.exec_module(cb)

# A grid-stride loop of one Philox block (10 multiplies by M0 stand for the generator), an IEEE
# sqrt whose slow path is a CALL, and a vector store; then a lane-by-lane loop of scalar stores.
SASS = """
        Function : _ZN8fastinit4cuda3gpu22fill_contiguous_kernelINS0_8NormalOpIfEEfEEvT_
        /*0000*/                   S2R R0, SR_TID.X ;
        /*0010*/                   ISETP.GE.AND P0, PT, R0, 0x10, PT ;
        /*0020*/               @P0 EXIT ;
""" + "".join(f"        /*{0x30 + 16 * i:04x}*/                   IMAD.WIDE.U32 R2, R3, -0x2daee0ad, RZ ;\n"
              for i in range(10)) + """
        /*00d0*/                   MUFU.RSQ R5, R4 ;
        /*00e0*/              @!P1 BRA 0x110 ;
        /*00f0*/                   CALL.REL.NOINC 0x230 ;
        /*0100*/                   BRA 0x120 ;
        /*0110*/                   FFMA R5, R4, R5, R4 ;
        /*0120*/                   STG.E.128 desc[UR4][R6.64], R8 ;
        /*0130*/                   IADD3 R0, R0, 0x100, RZ ;
        /*0140*/               @!P0 BRA 0x30 ;
""" + "".join(f"        /*{0x150 + 16 * i:04x}*/                   IMAD.WIDE.U32 R2, R3, -0x2daee0ad, RZ ;\n"
              for i in range(10)) + """
        /*01f0*/                   STG.E desc[UR4][R6.64], R8 ;
        /*0200*/               @!P0 BRA 0x150 ;
        /*0210*/                   EXIT ;
        /*0220*/                   BRA 0x220 ;
        /*0230*/                   RET.REL.NODEC R6 0x0 ;
"""


def test_hot_loop_takes_the_fast_path_and_the_vector_store():
    ins = cb.parse_sass(SASS)
    (name, code), = ins.items()
    assert cb.describe(name)["op"] == "normal+clamp" and cb.describe(name)["dtype"] == "f32"
    assert [(code[h].addr, code[l].addr) for h, l in cb.loops(code)] == [(0x150, 0x200), (0x30, 0x140)]
    hot = cb.fill_hot_loop(code, 4)
    # 10 multiplies + MUFU + BRA + FFMA + STG + IADD3 + BRA: the CALL side is avoided
    assert (hot.instructions, hot.units, hot.stores) == (16, 1.0, [128])


def test_occupancy_on_sm90():
    assert cb.occupancy(32, 0) == (8, 1.0)
    assert cb.occupancy(40, 0) == (6, 0.75)
    assert cb.occupancy(128, 0) == (2, 0.25)
    assert cb.occupancy(16, 48 * 1024) == (4, 0.5)


def test_describe_names_every_kernel_kind():
    d = cb.describe("_ZN8fastinit4cuda3gpu16fill_many_kernelINS1_17UnclampedNormalOpIfEENS0_8BFloat16ENS1_10BatchTable"
                    "IS4_Lm4096EEEEvT1_")
    assert (d["kind"], d["op"], d["dtype"]) == ("fill_many4k", "normal", "bf16")
    d = cb.describe("_ZN8fastinit4cuda3gpu20fill_elements_kernelINS0_13TruncNormalOpIdLb1ELb0EEEdEEvT_")
    assert (d["kind"], d["op"], d["dtype"]) == ("fill_elements", "trunc_normal_far", "f64")
    assert cb.describe("_Z6other_kernelv") is None


def test_flags_are_those_of_the_build():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    for flag in cb.NVCC_FLAGS:
        assert re.search(rf"(^|\s|>|:){re.escape(flag)}(\s|>|$)", cmake, re.M), flag


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    if shutil.which("nvcc") is None or cb.find_cuobjdump() is None:
        pytest.skip("needs nvcc and cuobjdump (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm)")
    out = tmp_path_factory.mktemp("budget") / "budget.json"
    assert cb.main(["--no-check", "--json", str(out)]) == 0
    import json
    return json.loads(out.read_text())["rows"]


@pytest.mark.backends("numpy")
def test_real_kernels_store_whole_blocks_and_do_not_spill(rows):
    fills = [r for r in rows if r["kind"].startswith(("fill_contiguous", "fill_many", "fill_runs"))]
    assert len(fills) > 40
    for r in fills:
        assert r["stack"] == 0 and not r["spill_stores"] and not r["local_ops"], r["name"]
        want = 64 if r["dtype"] in ("f16", "bf16") else 128
        assert r["stores"] == [want], (r["name"], r["stores"])
    by = {(r["kind"], r["op"], r["dtype"]): r for r in rows}
    assert by[("fill_contiguous", "uniform", "f32")]["per_unit"] <= cb.UNIFORM_F32_MAX


@pytest.mark.backends("numpy")
def test_real_statistics_kernels_meet_their_budget(rows):
    stats = {(r["op"], r["dtype"]): r for r in rows if r["kind"] == "stats_partials"}
    assert sorted(stats) == sorted((op, d) for op in ("bins", "no bins") for d in cb.DTYPE_BYTES)
    for (op, _dtype), r in stats.items():
        assert r["stack"] == 0 and not r["spill_stores"] and not r["local_ops"], r["name"]
        if op == "no bins":
            assert r["occupancy"] == 1.0, (r["name"], r["regs"])
            assert r["per_unit"] + r["overhead"] <= cb.STATS_PER_VALUE_MAX, r["name"]
    assert not [v for v in cb.check(rows) if "stats_" in v]


def test_statistics_hot_loop_is_the_vector_loop():
    # an item loop holding a 16-byte-load loop (4 values, 5 instructions) and an element loop
    # (1 value, 4 instructions): the vector loop is the hot one, the rest of the item loop is
    # overhead per value
    sass = """
        Function : _ZN8fastinit4cuda9gpu_stats21stats_partials_kernelIfLb0EEEvNS1_5BatchEPdPy
        /*0000*/                   S2R R0, SR_TID.X ;
        /*0010*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;
        /*0020*/               @P0 BRA 0x90 ;
        /*0030*/                   LDG.E.128.CONSTANT R4, desc[UR4][R2.64] ;
        /*0040*/                   DADD R8, R8, R4 ;
        /*0050*/                   DADD R8, R8, R5 ;
        /*0060*/                   IADD3 R2, R2, 0x1000, RZ ;
        /*0070*/               @!P1 BRA 0x30 ;
        /*0080*/                   BRA 0xd0 ;
        /*0090*/                   LDG.E R4, desc[UR4][R2.64] ;
        /*00a0*/                   DADD R8, R8, R4 ;
        /*00b0*/                   IADD3 R2, R2, 0x4, RZ ;
        /*00c0*/               @!P1 BRA 0x90 ;
        /*00d0*/                   SHFL.DOWN PT, R10, R8, 0x10, 0x1f ;
        /*00e0*/               @!P2 BRA 0x0 ;
        /*00f0*/                   EXIT ;
"""
    (name, code), = cb.parse_sass(sass).items()
    assert cb.describe(name)["dtype"] == "f32" and cb.describe(name)["op"] == "no bins"
    hot = cb.stats_hot_loop(code, 4, values_per_item=64)
    assert (hot.instructions, hot.units) == (5, 4.0)
    # S2R, BAR, @P0 BRA (falls through) before; BRA 0xd0, SHFL, @!P2 BRA after: 6 / 64
    assert hot.overhead == pytest.approx(6 / 64)
