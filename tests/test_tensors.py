"""Tensors and arrays as users hold them: views, odd strides, 0-d, many dims, read-only,
overlapping memory, autograd leaves, meta and CUDA tensors."""
from __future__ import annotations

import numpy as np
import pytest

import fastinit

from conftest import has_cuda

torch = pytest.importorskip("torch")


def test_numpy_negative_strides_and_steps(rng):
    seed = int(rng.integers(0, 2**62))
    base = np.full((20, 31), -5.0, dtype=np.float32)
    view = base[::-2, 30:2:-3]
    fastinit.normal_(view, generator=seed)
    np.testing.assert_array_equal(view, fastinit.normal_(np.empty(view.shape, np.float32), generator=seed))
    untouched = np.ones(base.shape, bool)
    untouched[::-2, 30:2:-3] = False
    assert np.all(base[untouched] == -5.0)


def test_numpy_strides_that_are_not_whole_elements(rng):
    """A float32 field of a packed structured array: its byte stride (6) is no multiple of 4."""
    rec = np.zeros(57, dtype=[("w", "<f4"), ("tag", "<i2")])
    rec["tag"] = 123
    seed = int(rng.integers(0, 2**62))
    fastinit.uniform_(rec["w"], -1, 1, generator=seed)
    np.testing.assert_array_equal(rec["w"], fastinit.uniform_(np.empty(57, np.float32), -1, 1, generator=seed))
    assert np.all(rec["tag"] == 123)


def test_zero_dim_and_many_dims(rng):
    seed = int(rng.integers(0, 2**62))
    scalar = torch.tensor(float("nan"))
    fastinit.normal_(scalar, generator=seed)
    assert scalar.item() == fastinit.normal_(torch.empty(1), generator=seed).item()
    shape = (2, 1, 3, 1, 2, 2, 1, 3, 2, 1, 2, 1, 1, 2, 3, 1, 2, 1, 1, 2)  # 20 dims
    t = torch.full(shape, float("nan")).permute(*reversed(range(20)))  # and non-contiguous
    fastinit.trunc_normal_(t, generator=seed)
    assert torch.equal(t, fastinit.trunc_normal_(torch.empty(t.shape), generator=seed))


def test_read_only_array_rejected_untouched():
    a = np.full((3, 4), 2.0)
    a.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fastinit.normal_(a)
    assert np.all(a == 2.0)


def test_overlapping_memory_rejected_untouched():
    t = torch.full((3,), 4.0).expand(5, 3)
    with pytest.raises(RuntimeError, match="single memory location"):
        fastinit.uniform_(t)
    assert torch.all(t == 4.0)
    b = np.broadcast_to(np.full(3, 4.0), (5, 3)).copy()
    b_view = np.lib.stride_tricks.as_strided(b, shape=(5, 3), strides=(0, 8))
    with pytest.raises(RuntimeError, match="single memory location"):
        fastinit.uniform_(b_view)


def test_requires_grad_parameter_no_autograd_record_but_version_bumped():
    p = torch.nn.Parameter(torch.empty(10, 7))
    version = p._version
    out = fastinit.xavier_uniform_(p)
    assert out is p and p.grad_fn is None and p.requires_grad and p.is_leaf
    assert p._version > version  # autograd sees that the tensor changed
    # a saved tensor modified in place after use must be detected, as with torch's own init
    y = (p * p).sum()  # saves p for the backward pass
    fastinit.normal_(p)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_non_tensor_input_is_a_type_error():
    with pytest.raises(TypeError, match="torch.Tensor or a numpy.ndarray"):
        fastinit.normal_([1.0, 2.0])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_numpy_dtypes_and_poisoned_outputs(dtype, rng):
    a = np.full((33, 65), np.nan, dtype=dtype)
    fastinit.trunc_normal_(a, std=0.5, generator=int(rng.integers(0, 2**62)))
    assert not np.isnan(a).any() and a.dtype == dtype
    assert np.all(np.abs(a) <= 2.0)


def test_integer_numpy_array_rejected():
    a = np.arange(6)
    with pytest.raises(NotImplementedError, match="int64"):
        fastinit.normal_(a)
    np.testing.assert_array_equal(a, np.arange(6))


@pytest.mark.cuda
@pytest.mark.skipif(not has_cuda(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_tensors_get_the_cpu_values(dtype, rng):
    seed = int(rng.integers(0, 2**62))
    t = torch.full((129, 65), float("nan"), dtype=dtype, device="cuda")[:, 1:]
    fastinit.normal_(t, generator=seed)
    assert torch.equal(t.cpu(), fastinit.normal_(torch.empty(t.shape, dtype=dtype), generator=seed))
