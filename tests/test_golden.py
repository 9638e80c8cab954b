"""Stream format v1 is pinned: fixed seeds give these exact bits in every dtype, on every
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

GOLDEN = json.loads((Path(__file__).parent / "data" / "golden_v1.json").read_text())


def test_golden_file_describes_this_format():
    assert GOLDEN["format"] == fastinit.STREAM_FORMAT_VERSION == 1
    assert GOLDEN["n"] == N
    assert len(GOLDEN["values"]) == len(CASES) * len(DTYPES) * len(SEEDS)


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
