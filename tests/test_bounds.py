"""Every value inside the range a function promises, after rounding to the output dtype: [a, b)
for the uniforms, as torch's uniform_.

The extreme draws of a uniform (k = 0 and the largest k, and their neighbours) are fed to the
operation directly (the core's transform_words, and the NumPy mirror), for many bounds in every
dtype: the values nearest the bounds are checked exhaustively, not hoped for in a sample. Then
whole tensors of the public functions are checked against their bounds.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import fastinit
from fastinit.dispatch import backend as _backend
from fastinit.dispatch.fill import round_compute
from fastinit.stream.dtypes import FORMATS
from fastinit.stream.numpy_stream import block_values
from fastinit.stream.ops import OP_UNIFORM, uniform_params

torch = pytest.importorskip("torch")
CORE = _backend.core()
DTYPES = ["float32", "float64", "float16", "bfloat16"]
TORCH = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
         "bfloat16": torch.bfloat16}


def extreme_words(family: str) -> np.ndarray:
    """Blocks (rows of 4 words) whose draws are the smallest and largest k and their
    neighbours: k = w >> 8 (24 bits) in the float32 family, the joined pair >> 12 (52 bits) in
    float64."""
    if family == "f32":
        ks = [0, 1, 2, (1 << 24) - 2, (1 << 24) - 1]
        words = [(k << 8) | low for k in ks for low in (0, 0xFF)]
        words += [0] * (-len(words) % 4)
        return np.array(words, dtype=np.uint64).reshape(-1, 4)
    ks = [0, 1, (1 << 52) - 2, (1 << 52) - 1]
    pairs = [((k << 12) | low) for k in ks for low in (0, 0xFFF)]
    words = [w for v in pairs for w in (v >> 32, v & 0xFFFFFFFF)]
    words += [0] * (-len(words) % 4)
    return np.array(words, dtype=np.uint64).reshape(-1, 4)


def bound_pairs(rng) -> list[tuple[float, float]]:
    """Bounds that are hard for rounding: unit ranges, tiny and huge spans, bounds just off the
    16-bit grid, torch's default Linear bound (kaiming_uniform_(a=sqrt(5)))."""
    fixed = [(0.0, 1.0), (-1.0, 1.0), (0.1, 0.3), (-0.03162278, 0.03162278), (1.0, 1.0 + 2**-20),
             (-1e-3, 1e-3), (-60000.0, 65000.0), (1e-8, 3e-8), (-2.0, -1.9999), (0.5, 0.5 + 1e-7)]
    randoms = []
    for _ in range(40):
        centre = float(rng.normal(0.0, 10.0 ** rng.uniform(-3, 3)))
        half = float(10.0 ** rng.uniform(-6, 2))
        randoms.append((centre - half, centre + half))
    return fixed + randoms


@pytest.mark.parametrize("dtype_name", DTYPES)
def test_extreme_uniform_draws_stay_inside_the_bounds(dtype_name, rng):
    fmt = FORMATS[dtype_name]
    words = extreme_words(fmt.family)
    for a, b in bound_pairs(rng):
        call = uniform_params(a, b, fmt)
        lo, hi = fmt.inside(a, b)
        values = round_compute(block_values(OP_UNIFORM, call.params, words.T.astype(np.uint32),
                                            fmt.family).ravel(), call, fmt).astype(np.float64)
        if lo < hi or (lo == hi and hi < b):  # some value of the dtype lies in [a, b)
            assert values.min() >= a and values.max() < b, (dtype_name, a, b, values.min(), values.max())
        if CORE is not None:
            native = np.array(CORE.transform_words(OP_UNIFORM, fmt.code, list(call.params),
                                                   [int(w) for w in words.ravel()]))
            np.testing.assert_array_equal(native, values)


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
def test_16bit_uniform_unit_range_never_reaches_one(dtype_name):
    """U(0, 1) in a 16-bit dtype: the float32 values just below 1 round to 1.0; they are kept
    at the largest value below 1 (torch never gives 1.0: its range is [from, to))."""
    fmt = FORMATS[dtype_name]
    call = uniform_params(0.0, 1.0, fmt)
    values = round_compute(block_values(OP_UNIFORM, call.params,
                                        extreme_words("f32").T.astype(np.uint32), "f32").ravel(),
                           call, fmt)
    assert values.max() == fmt.next_down(1.0) < 1.0


@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("fn,bound", [
    (lambda t, g: fastinit.uniform_(t, 0.1, 0.3, generator=g), (0.1, 0.3)),
    (lambda t, g: fastinit.uniform_(t, 0.0, 1.0, generator=g), (0.0, 1.0)),
    (lambda t, g: fastinit.kaiming_uniform_(t, a=math.sqrt(5), generator=g), "kaiming"),
    (lambda t, g: fastinit.xavier_uniform_(t, generator=g), "xavier"),
    (lambda t, g: fastinit.he_uniform_(t, generator=g), "he"),
    (lambda t, g: fastinit.lecun_uniform_(t, generator=g), "lecun"),
    (lambda t, g: fastinit.variance_scaling_(t, 2.0, distribution="uniform", generator=g), "he"),
], ids=["uniform(0.1,0.3)", "uniform(0,1)", "kaiming_uniform", "xavier_uniform", "he_uniform",
        "lecun_uniform", "variance_scaling_uniform"])
def test_uniform_initializers_stay_inside_their_bound(fn, bound, dtype_name, rng):
    t = torch.full((400, 1000), float("nan"), dtype=TORCH[dtype_name])
    fn(t, int(rng.integers(0, 2**62)))
    fan_in, fan_out = 1000, 400
    if bound == "kaiming":
        b = math.sqrt(3.0) * fastinit.calculate_gain("leaky_relu", math.sqrt(5)) / math.sqrt(fan_in)
        lo, hi = -b, b
    elif bound == "xavier":
        b = math.sqrt(6.0 / (fan_in + fan_out))
        lo, hi = -b, b
    elif bound == "he":
        lo, hi = -math.sqrt(6.0 / fan_in), math.sqrt(6.0 / fan_in)
    elif bound == "lecun":
        lo, hi = -math.sqrt(3.0 / fan_in), math.sqrt(3.0 / fan_in)
    else:
        lo, hi = bound
    values = t.double()
    assert not values.isnan().any()
    # float64 rounding of the computed bound itself may differ by an ulp: allow that much
    slack = 2 * math.ulp(max(abs(lo), abs(hi)))
    assert values.min().item() >= lo - slack and values.max().item() < hi + slack


def test_uniform_with_equal_bounds_is_the_rounded_constant():
    for name, dt in TORCH.items():
        t = fastinit.uniform_(torch.empty(10, dtype=dt), 0.1, 0.1, generator=3)
        assert torch.equal(t, torch.full((10,), 0.1, dtype=dt)), name


def test_uniform_without_a_representable_value_in_its_range_rounds_to_the_nearest():
    """[1.0001, 1.0002] holds no bfloat16 value: the values are the rounded ones (1.0 here),
    as torch gives, not a value clamped outside the other bound."""
    t = fastinit.uniform_(torch.empty(1000, dtype=torch.bfloat16), 1.0001, 1.0002, generator=1)
    assert set(t.float().unique().tolist()) <= {1.0, 1.0078125}
