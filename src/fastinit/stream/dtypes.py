"""The float dtypes fastinit fills, their codes in the compiled core, and their value grids."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_INSIDE: dict = {}  # FloatFormat.inside, cached (a pure function of the format and bounds)


@dataclass(frozen=True, eq=False)  # one object per format: identity is equality, and a fast hash
class FloatFormat:
    name: str         # "float32", "float64", "float16", "bfloat16"
    code: int         # DtypeCode in csrc/common/out_types.h
    itemsize: int
    family: str       # "f32" (computed in float32, rounded once) or "f64"
    max_finite: float

    def round(self, x: np.ndarray) -> np.ndarray:
        """Round float64/float32 values to this format (RNE), returned as float64."""
        x32 = np.asarray(x, dtype=np.float64)
        if self.name == "float64":
            return x32
        if self.name == "float32":
            return x32.astype(np.float32).astype(np.float64)
        if self.name == "float16":
            return x32.astype(np.float16).astype(np.float64)
        return bf16_bits_to_float32(float32_to_bf16_bits(x32.astype(np.float32))).astype(np.float64)

    def next_up(self, x: float) -> float:
        """The smallest value of this format greater than x (x representable)."""
        return float(self._step(x, +1))

    def next_down(self, x: float) -> float:
        return float(self._step(x, -1))

    def _step(self, x: float, direction: int) -> float:
        if self.name == "float64":
            return np.nextafter(x, direction * np.inf)
        if self.name == "float32":
            return float(np.nextafter(np.float32(x), np.float32(direction * np.inf)))
        if self.name == "float16":
            return float(np.nextafter(np.float16(x), np.float16(direction * np.inf)))
        # bfloat16: step the 16-bit pattern
        bits = int(float32_to_bf16_bits(np.array([x], dtype=np.float32))[0])
        if x == 0:
            bits = 0x0001 if direction > 0 else 0x8001
        elif (x > 0) == (direction > 0):
            bits += 1
        else:
            bits -= 1
        return float(bf16_bits_to_float32(np.array([bits], dtype=np.uint16))[0])

    def inside(self, a: float, b: float) -> tuple[float, float]:
        """The representable values nearest to [a, b] from inside: (lo, hi), lo > hi if none."""
        if type(a) is not float or type(b) is not float or a != a or b != b:
            return self._inside(a, b)
        key = (self.code, a, b, math.copysign(1.0, a), math.copysign(1.0, b))
        found = _INSIDE.get(key)
        if found is None:
            if len(_INSIDE) >= 4096:
                _INSIDE.clear()
            found = _INSIDE[key] = self._inside(a, b)
        return found

    def _inside(self, a: float, b: float) -> tuple[float, float]:
        lo = float(self.round(np.array([a]))[0])
        if lo < a:
            lo = self.next_up(lo)
        hi = float(self.round(np.array([b]))[0])
        if hi > b:
            hi = self.next_down(hi)
        return lo, hi


FLOAT32 = FloatFormat("float32", 0, 4, "f32", float(np.finfo(np.float32).max))
FLOAT64 = FloatFormat("float64", 1, 8, "f64", float(np.finfo(np.float64).max))
FLOAT16 = FloatFormat("float16", 2, 2, "f32", 65504.0)
BFLOAT16 = FloatFormat("bfloat16", 3, 2, "f32", 3.3895313892515355e38)

FORMATS = {f.name: f for f in (FLOAT32, FLOAT64, FLOAT16, BFLOAT16)}


def float32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round float32 to bfloat16 bit patterns: nearest, ties to even (as csrc/common/fp_ops.h)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))
    nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    rounded = np.where(nan, (u >> np.uint32(16)) | np.uint32(0x40), rounded)
    return rounded.astype(np.uint16)


def bf16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)
