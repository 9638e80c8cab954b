"""Philox4x32-10 against the Random123 known answers, on every implementation of it."""
from __future__ import annotations

import math

from pathlib import Path

import numpy as np
import pytest

from fastinit.dispatch import backend as _backend
from fastinit.stream.numpy_stream import philox4x32_10, stream_words

KAT = Path(__file__).parent / "data" / "philox4x32-10-kat.txt"


def known_answers():
    rows = []
    for line in KAT.read_text().splitlines():
        if line.startswith("philox4x32 10 "):
            words = [int(w, 16) for w in line.split()[2:]]
            rows.append((words[0:4], words[4:6], words[6:10]))
    assert len(rows) == 3
    return rows


@pytest.mark.parametrize("ctr,key,expected", known_answers())
def test_numpy_philox_matches_known_answers(ctr, key, expected):
    out = philox4x32_10(*[np.array([c], dtype=np.uint32) for c in ctr], key[0], key[1])
    assert [int(w[0]) for w in out] == expected


@pytest.mark.backends("native")
@pytest.mark.parametrize("ctr,key,expected", known_answers())
def test_core_philox_matches_known_answers(ctr, key, expected):
    core = _backend.core()
    assert list(core.philox4x32_10(*ctr, *key)) == expected


def uniform_words_via_core(isa: str, key: int, first_element: int, n: int) -> np.ndarray:
    """Top 24 bits of each stream word, read back through the uniform op (step 1, start 0)."""
    out = np.full(n, np.nan, dtype=np.float32)
    _backend.core().fill(0, 0, out.ctypes.data, [n], [1], [1], first_element, key & 0xFFFFFFFF,
                         key >> 32, 0, [1.0, 0.0, -math.inf, math.inf], isa)
    return out.astype(np.uint32)


@pytest.mark.backends("native")
@pytest.mark.parametrize("first_block", [0, 5, (1 << 32) - 37, (1 << 40) + 11])
def test_vectorised_philox_builds_equal_the_scalar_function(first_block, rng):
    """The AVX2 Philox (8 blocks per vector) and the portable build give the scalar function's
    words, also where the low counter word wraps into the high one."""
    core = _backend.core()
    key = int(rng.integers(0, 1 << 63))
    n = 4 * 203 + 3  # several vector groups, partial blocks at the end
    blocks = np.arange(first_block, first_block + (n + 3) // 4, dtype=np.uint64)
    expected = (np.stack(stream_words(key, 0, blocks), axis=1).ravel()[:n] >> np.uint32(8))
    isas = ["generic"] + (["avx2"] if core.cpu_isa() == "avx2" else [])
    for isa in isas:
        got = uniform_words_via_core(isa, key, 4 * first_block, n)
        np.testing.assert_array_equal(got, expected, err_msg=isa)
