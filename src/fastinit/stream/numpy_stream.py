"""The random-stream format in NumPy: the fallback backend and the reference for the compiled core.

Operation for operation the same as csrc/common (philox.h, stream_math.h, distributions.h): the
float32 family in float32 arithmetic with its fused multiply-adds emulated exactly (fma32), the
float64 family in plain float64 arithmetic. The results are bit-identical to the compiled core.
"""
from __future__ import annotations

import numpy as np

from .coefficients import COEFFICIENTS
from .ops import OP_NORMAL, OP_TRUNC_NORMAL, OP_UNIFORM

F32, F64 = np.float32, np.float64
U32, U64, I32, I64 = np.uint32, np.uint64, np.int32, np.int64

PER_BLOCK = {"f32": 4, "f64": 2}

# ---------------------------------------------------------------------------- Philox4x32-10

_M0, _M1 = U64(0xD2511F53), U64(0xCD9E8D57)
_W0, _W1 = 0x9E3779B9, 0xBB67AE85


def philox4x32_10(c0, c1, c2, c3, k0: int, k1: int):
    """Philox4x32-10 on uint32 arrays (broadcast together); returns the four output words."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=U32) for c in (c0, c1, c2, c3))
    c0, c1, c2, c3 = np.broadcast_arrays(c0, c1, c2, c3)
    for _ in range(10):
        p0 = c0.astype(U64) * _M0
        p1 = c2.astype(U64) * _M1
        hi0, lo0 = (p0 >> U64(32)).astype(U32), p0.astype(U32)
        hi1, lo1 = (p1 >> U64(32)).astype(U32), p1.astype(U32)
        c0, c1, c2, c3 = hi1 ^ c1 ^ U32(k0), lo1, hi0 ^ c3 ^ U32(k1), lo0
        k0 = (k0 + _W0) & 0xFFFFFFFF
        k1 = (k1 + _W1) & 0xFFFFFFFF
    return c0, c1, c2, c3


def stream_words(key: int, purpose: int, blocks: np.ndarray):
    """The four words of each block (a uint64 array of block indices)."""
    blocks = np.asarray(blocks, dtype=U64)
    lo = (blocks & U64(0xFFFFFFFF)).astype(U32)
    hi = (blocks >> U64(32)).astype(U32)
    return philox4x32_10(lo, hi, U32(purpose), U32(0), key & 0xFFFFFFFF, (key >> 32) & 0xFFFFFFFF)

# ---------------------------------------------------------------------------- exact arithmetic


def fma32(a, b, c) -> np.ndarray:
    """float32 fused multiply-add, exactly rounded: the float64 product is exact, the float64
    sum is made round-to-odd (TwoSum error term), so the final rounding to float32 is correct."""
    p = np.asarray(a, F32).astype(F64) * np.asarray(b, F32).astype(F64)
    c64 = np.asarray(c, F32).astype(F64)
    s = p + c64
    bp = s - p
    err = (p - (s - bp)) + (c64 - bp)
    bits = np.ascontiguousarray(s).view(U64)
    fix = (err != 0) & ((bits & U64(1)) == U64(0))
    if np.any(fix):
        away = (err > 0) == (s > 0)  # moving away from zero increases the bit pattern
        nudged = np.where(away, bits + U64(1), bits - U64(1))
        s = np.where(fix, nudged.view(F64), s)
    return s.astype(F32)


def madd(a, b, c, family: str):
    if family == "f32":
        return fma32(a, b, c)
    return np.asarray(a, F64) * np.asarray(b, F64) + np.asarray(c, F64)


def _poly(name: str, x: np.ndarray, family: str) -> np.ndarray:
    shift_hex, coefs_hex = COEFFICIENTS[name]
    dtype = F32 if family == "f32" else F64
    shift = dtype(float.fromhex(shift_hex))
    d = x - shift if shift != 0 else x
    coefs = [dtype(float.fromhex(c)) for c in coefs_hex]
    p = np.full_like(d, coefs[-1])
    for c in reversed(coefs[:-1]):
        p = madd(p, d, c, family)
    return p


def u52_to_f64(k) -> np.ndarray:
    return np.asarray(k, U64).astype(F64)  # exact below 2^52


def s51_to_f64(r) -> np.ndarray:
    return np.asarray(r, I64).astype(F64)  # exact below 2^51 in magnitude

# ---------------------------------------------------------------------------- elementary functions


def stream_log(x: np.ndarray, family: str) -> np.ndarray:
    if family == "f32":
        x = np.asarray(x, F32)
        bits = x.view(U32)
        e = (bits - U32(0x3F3504F3)).view(I32) >> I32(23)
        m = (bits - (e.view(U32) << U32(23))).view(F32)
        f = m - F32(1.0)
        log_m = fma32(f * f, _poly("log1p_f32", f, family), f)
        ef = e.astype(F32)
        return fma32(ef, F32(float.fromhex("0x1.62e4p-1")),
                     fma32(ef, F32(float.fromhex("0x1.7f7d1cp-20")), log_m))
    x = np.asarray(x, F64)
    bits = x.view(U64)
    e = (bits - U64(0x3FE6A09E667F3BCD)).view(I64) >> I64(52)
    m = (bits - (e.view(U64) << U64(52))).view(F64)
    f = m - 1.0
    s = f / (2.0 + f)
    y = s * s
    log_m = (s * y) * _poly("atanh_f64", y, family) + 2.0 * s
    ed = s51_to_f64(e)
    return ed * float.fromhex("0x1.62e42fefa4000p-1") + (
        ed * float.fromhex("-0x1.8432a1b0e2634p-43") + log_m)


def stream_sincos_2pi(v: np.ndarray, family: str):
    y = v * v
    suffix = "f32" if family == "f32" else "f64"
    return v * _poly("sin2pi_" + suffix, y, family), _poly("cos2pi_" + suffix, y, family)


def quarter_turns(quadrant: np.ndarray, s, c):
    swap = (quadrant & 1) != 0
    cs = np.where(swap, s, c)
    sn = np.where(swap, c, s)
    cos_t = np.where(((quadrant + 1) & 2) != 0, -cs, cs)
    sin_t = np.where((quadrant & 2) != 0, -sn, sn)
    return cos_t, sin_t


_CENTRAL_W = {"f32": 5.0, "f64": 6.25}
_FAR_SW = {"f32": 4.0, "f64": 6.0}


def quantile_factor(w: np.ndarray, family: str, far: bool) -> np.ndarray:
    sw = np.sqrt(w)  # NaN where w < 0: those lanes take the central piece
    central = w < _CENTRAL_W[family]
    with np.errstate(invalid="ignore", divide="ignore"):
        if family == "f32":
            g = np.where(central, _poly("ndtri_central_f32", w, family), _poly("ndtri_tail_f32", sw, family))
            if far:
                g = np.where(sw >= F32(_FAR_SW[family]), sw * _poly("ndtri_far_f32", F32(1.0) / sw, family), g)
        else:
            tail = np.where(sw < 4.0, _poly("ndtri_tail_f64", sw, family), _poly("ndtri_tail2_f64", sw, family))
            g = np.where(central, _poly("ndtri_central_f64", w, family), tail)
            if far:
                g = np.where(sw >= _FAR_SW[family], sw * _poly("ndtri_far_f64", 1.0 / sw, family), g)
    return g

# ---------------------------------------------------------------------------- operations


def _join(hi, lo):
    return (hi.astype(U64) << U64(32)) | lo.astype(U64)


def block_values(op: int, params, words, family: str) -> np.ndarray:
    """Values of whole blocks: shape (blocks, K), in the family's compute type."""
    w = words
    if family == "f32":
        if op == OP_UNIFORM:
            step, start = F32(params[0]), F32(params[1])  # clamped after rounding (fill.py)
            return np.stack([fma32((x >> U32(8)).astype(I32).astype(F32), step, start) for x in w], axis=1)
        if op == OP_NORMAL:
            mean, std = F32(params[0]), F32(params[1])
            out = []
            for a, b in ((w[0], w[1]), (w[2], w[3])):
                u1 = fma32((a >> U32(1)).astype(I32).astype(F32), F32(2.0**-31), F32(2.0**-32))
                k = (b >> U32(8)).astype(I32)
                q = (k + I32(1 << 21)) >> I32(22)
                v = (k - (q << I32(22))).astype(F32) * F32(2.0**-24)
                z0, z1 = _box_muller(u1, q, v, family)
                out += [fma32(z0, std, mean), fma32(z1, std, mean)]
            return np.stack(out, axis=1)
        if op == OP_TRUNC_NORMAL:
            u = [(((x >> U32(9)) << U32(1)) | U32(1)).astype(I32).astype(F32) * F32(2.0**-24) for x in w]
            return np.stack([_trunc_from_uniform(ui, params, family) for ui in u], axis=1)
    else:
        if op == OP_UNIFORM:
            step, start = params[:2]  # clamped after rounding (fill.py)
            return np.stack([u52_to_f64(_join(w[2 * j], w[2 * j + 1]) >> U64(12)) * step + start
                             for j in range(2)], axis=1)
        if op == OP_NORMAL:
            mean, std = params[0], params[1]
            u1 = u52_to_f64(_join(w[0], w[1]) >> U64(12)) * 2.0**-52 + 2.0**-53
            k = (_join(w[2], w[3]) >> U64(11)).astype(I64)
            q = (k + I64(1 << 50)) >> I64(51)
            v = s51_to_f64(k - (q << I64(51))) * 2.0**-53
            z0, z1 = _box_muller(u1, q, v, family)
            return np.stack([z0 * std + mean, z1 * std + mean], axis=1)
        if op == OP_TRUNC_NORMAL:
            u = [u52_to_f64(_join(w[2 * j], w[2 * j + 1]) >> U64(12)) * 2.0**-52 + 2.0**-53 for j in range(2)]
            return np.stack([_trunc_from_uniform(ui, params, family) for ui in u], axis=1)
    raise ValueError(f"unknown op {op}")


def _box_muller(u1, quadrant, v, family: str):
    two = F32(-2.0) if family == "f32" else -2.0
    radius = np.sqrt(two * stream_log(u1, family))
    s, c = stream_sincos_2pi(v, family)
    cos_t, sin_t = quarter_turns(quadrant, s, c)
    return radius * cos_t, radius * sin_t


def _trunc_from_uniform(u, params, family: str):
    dtype = F32 if family == "f32" else F64
    c_lo, m_lo, c_hi, m_hi, t0, log_t0, mean, std = (dtype(p) for p in params[:8])
    far = params[10] != 0.0
    one, two, four = dtype(1), dtype(2), dtype(4)
    t_lo = madd(u, m_lo, c_lo, family)
    t_hi = madd(one - u, m_hi, c_hi, family)
    lower = t_lo < t_hi
    g = np.where(lower, t_lo, t_hi)
    t = g * t0
    x = one - two * t
    w = -log_t0 - stream_log((four * g) * (one - t), family)
    magnitude = x * quantile_factor(w, family, far)
    return madd(np.where(lower, -magnitude, magnitude), std, mean, family)


def values_at(op: int, params, key: int, purpose: int, indices: np.ndarray, family: str) -> np.ndarray:
    """Stream values (compute type, before rounding) at arbitrary logical indices."""
    k = PER_BLOCK[family]
    indices = np.asarray(indices, dtype=U64).ravel()
    blocks, lanes = indices // U64(k), (indices % U64(k)).astype(np.intp)
    vals = block_values(op, params, stream_words(key, purpose, blocks), family)
    return vals[np.arange(len(indices)), lanes]


def values_range(op: int, params, key: int, purpose: int, first: int, count: int, family: str,
                 chunk_blocks: int = 1 << 18) -> np.ndarray:
    """Stream values for the logical indices first .. first + count - 1, in bounded memory."""
    k = PER_BLOCK[family]
    out = np.empty(count, dtype=F32 if family == "f32" else F64)
    if count == 0:
        return out
    b0, b1 = first // k, (first + count - 1) // k + 1
    pos = 0
    for start in range(b0, b1, chunk_blocks):
        stop = min(b1, start + chunk_blocks)
        vals = block_values(op, params, stream_words(key, purpose, np.arange(start, stop, dtype=U64)),
                            family).ravel()
        lo = max(first - start * k, 0)
        hi = min(first + count - start * k, (stop - start) * k)
        out[pos:pos + hi - lo] = vals[lo:hi]
        pos += hi - lo
    return out
