"""The polynomial constants of the stream exist once per language and must agree exactly."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from fastinit.stream.coefficients import COEFFICIENTS

HEADER = Path(__file__).resolve().parent.parent / "csrc" / "common" / "stream_v1_polynomials.h"


def header_polynomials():
    text = HEADER.read_text()
    polys = {}
    for match in re.finditer(r"FI_HD (float|double) (\w+)\((?:float|double) x\) \{(.*?)\n\}", text, re.S):
        _, name, body = match.groups()
        shift = re.search(r"const \w+ d = x(?: - (-?0x[0-9a-f.]+p[-+]\d+)f?)?;", body).group(1)
        literals = re.findall(r"(-?0x[0-9a-f.]+p[-+]\d+)f?", body.split(";", 1)[1])
        polys[name] = (float.fromhex(shift) if shift else 0.0, [float.fromhex(c) for c in literals])
    return polys


@pytest.mark.backends("numpy")
def test_header_and_python_tables_agree():
    polys = header_polynomials()
    assert set(polys) == set(COEFFICIENTS)
    for name, (shift_hex, coefs_hex) in COEFFICIENTS.items():
        shift, horner_order = polys[name]
        assert shift == float.fromhex(shift_hex), name
        # the header lists the highest coefficient first (Horner), Python lowest first
        assert horner_order[::-1] == [float.fromhex(c) for c in coefs_hex], name


@pytest.mark.backends("numpy")
def test_float32_tables_hold_float32_values():
    import numpy as np
    for name, (_, coefs_hex) in COEFFICIENTS.items():
        if name.endswith("_f32"):
            for c in coefs_hex:
                v = float.fromhex(c)
                assert float(np.float32(v)) == v, name
