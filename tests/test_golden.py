"""The stream format is pinned: fixed seeds give these exact bits in every dtype, on every
backend. A failure here means users' weights would silently change (see docs/stream-format.md)."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import fastinit  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from make_golden_values import CASES, DTYPES, N, SEEDS, bits  # noqa: E402

GOLDEN = json.loads((Path(__file__).parent / "data" / "golden_v2.json").read_text())
GOLDEN_V1 = json.loads((Path(__file__).parent / "data" / "golden_v1.json").read_text())


def test_golden_file_describes_this_format():
    assert GOLDEN["format"] == fastinit.STREAM_FORMAT_VERSION == 2
    assert GOLDEN["n"] == N
    assert len(GOLDEN["values"]) == len(CASES) * len(DTYPES) * len(SEEDS)


def test_v2_changed_only_16bit_uniform_values():
    """Format v2 clamps the uniform after rounding, to [a, b) (docs/stream-format.md,
    Versions): every other case is bit for bit v1's; of the uniform in float32 and float64 too
    (no value of these seeds was b)."""
    assert GOLDEN_V1["format"] == 1 and GOLDEN_V1.keys() == GOLDEN.keys()
    changed = {k for k, v in GOLDEN_V1["values"].items() if GOLDEN["values"][k] != v}
    assert changed and all(k.startswith("uniform_") and ("|float16|" in k or "|bfloat16|" in k)
                           for k in changed), changed


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype_name", sorted(DTYPES))
def test_golden_values(case, dtype_name):
    fn, kwargs = CASES[case]
    for seed in SEEDS:
        expected = GOLDEN["values"][f"{case}|{dtype_name}|{seed}"]
        t = torch.full((N,), float("nan"), dtype=DTYPES[dtype_name])
        fn(t, generator=seed, **kwargs)
        assert [float(v) for v in t[:8].double()] == expected["first"]
        assert hashlib.sha256(bits(t)).hexdigest() == expected["sha256"]
