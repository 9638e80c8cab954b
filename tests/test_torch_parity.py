"""fastinit mirrors torch.nn.init: names, signatures, defaults, fans, gains, returns, errors."""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

import fastinit
from fastinit import init as fi_init

torch = pytest.importorskip("torch")
tinit = torch.nn.init

PUBLIC = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_",
          "eye_", "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
          "kaiming_normal_", "orthogonal_", "sparse_"]
DEPRECATED = ["uniform", "normal", "constant", "eye", "dirac", "xavier_uniform", "xavier_normal",
              "kaiming_uniform", "kaiming_normal", "orthogonal", "sparse"]


@pytest.mark.backends("numpy")
def test_every_public_function_of_torch_nn_init_is_mirrored():
    assert set(tinit.__all__) == set(PUBLIC + DEPRECATED)
    for name in tinit.__all__:
        assert callable(getattr(fastinit, name)) and callable(getattr(fi_init, name))


@pytest.mark.backends("numpy")
@pytest.mark.parametrize("name", PUBLIC)
def test_signatures_match(name):
    ours = inspect.signature(getattr(fastinit, name)).parameters
    theirs = inspect.signature(getattr(tinit, name)).parameters
    assert list(ours) == list(theirs)
    for p in theirs:
        assert ours[p].kind == theirs[p].kind, p
        assert ours[p].default == theirs[p].default, p


@pytest.mark.backends("numpy")
@pytest.mark.parametrize("args", [
    ("linear",), ("conv1d",), ("conv2d",), ("conv3d",), ("conv_transpose1d",), ("conv_transpose2d",),
    ("conv_transpose3d",), ("sigmoid",), ("tanh",), ("relu",), ("leaky_relu",), ("leaky_relu", 0.2),
    ("leaky_relu", 3), ("selu",),
])
def test_gains_match(args):
    assert fastinit.calculate_gain(*args) == tinit.calculate_gain(*args)
    assert type(fastinit.calculate_gain(*args)) is type(tinit.calculate_gain(*args))


@pytest.mark.backends("numpy")
@pytest.mark.parametrize("args", [("gelu",), ("leaky_relu", True), ("leaky_relu", "0.1")])
def test_gain_errors_match(args):
    with pytest.raises(ValueError) as theirs:
        tinit.calculate_gain(*args)
    with pytest.raises(ValueError) as ours:
        fastinit.calculate_gain(*args)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.backends("numpy")
@pytest.mark.parametrize("shape", [(5, 3), (7, 4, 3), (8, 2, 3, 5), (2, 3, 1, 4, 2), (0, 3), (3, 0, 2)])
def test_fans_match(shape):
    t = torch.empty(shape)
    assert fastinit.calculate_fan_in_and_fan_out(t) == tinit._calculate_fan_in_and_fan_out(t)
    assert fi_init._calculate_fan_in_and_fan_out(np.empty(shape)) == tinit._calculate_fan_in_and_fan_out(t)


def _raises_like_torch(call, tensor_factory):
    """Both raise the same exception type, and ours leaves the tensor untouched."""
    t_theirs, t_ours = tensor_factory(), tensor_factory()
    before = t_ours.clone()
    with pytest.raises(Exception) as theirs:
        call(tinit, t_theirs)
    with pytest.raises(type(theirs.value)) as ours:
        call(fastinit, t_ours)
    assert str(ours.value)  # a message naming the problem
    assert torch.equal(t_ours.isnan(), before.isnan()) and torch.equal(t_ours.nan_to_num(), before.nan_to_num())
    return ours.value


ERROR_CASES = {
    "normal negative std": lambda m, t: m.normal_(t, 0.0, -1.0),
    "uniform reversed": lambda m, t: m.uniform_(t, 1.0, 0.0),
    "uniform inf bound": lambda m, t: m.uniform_(t, 0.0, math.inf),
    "trunc std zero": lambda m, t: m.trunc_normal_(t, 0.0, 0.0),
    "trunc reversed bounds": lambda m, t: m.trunc_normal_(t, 0.0, 1.0, 2.0, 1.0),
    "kaiming bad mode": lambda m, t: m.kaiming_normal_(t, mode="fan_avg"),
    "kaiming bad nonlinearity": lambda m, t: m.kaiming_uniform_(t, nonlinearity="gelu"),
    "xavier on 1-d": lambda m, t: m.xavier_normal_(t[0]),
    "eye on 3-d": lambda m, t: m.eye_(t.unsqueeze(0)),
    "dirac on 2-d": lambda m, t: m.dirac_(t),
    "orthogonal on 1-d": lambda m, t: m.orthogonal_(t[0]),
    "sparse on 3-d": lambda m, t: m.sparse_(t.unsqueeze(0), 0.1),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_errors_match_torch_and_leave_the_tensor_alone(case):
    _raises_like_torch(ERROR_CASES[case], lambda: torch.full((6, 4), float("nan")))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.uint8])
@pytest.mark.parametrize("fn", ["uniform_", "normal_", "trunc_normal_", "kaiming_uniform_",
                                "xavier_normal_"])
def test_integer_tensors_rejected_like_torch(fn, dtype):
    err = _raises_like_torch(lambda m, t: getattr(m, fn)(t), lambda: torch.full((4, 3), 3).to(dtype))
    assert isinstance(err, NotImplementedError)


@pytest.mark.parametrize("fn", ["uniform_", "normal_", "trunc_normal_"])
def test_complex_tensors_rejected_untouched(fn):
    t = torch.full((4, 3), 1 + 2j, dtype=torch.complex64)
    with pytest.raises(NotImplementedError, match="complex64"):
        getattr(fastinit, fn)(t)
    assert torch.all(t == 1 + 2j)


@pytest.mark.parametrize("fn,args", [
    ("uniform_", ()), ("normal_", ()), ("trunc_normal_", ()), ("constant_", (0.5,)), ("ones_", ()),
    ("zeros_", ()), ("eye_", ()), ("xavier_uniform_", ()), ("xavier_normal_", ()),
    ("kaiming_uniform_", ()), ("kaiming_normal_", ()), ("orthogonal_", ()), ("sparse_", (0.3,)),
])
def test_returns_the_tensor_it_was_given(fn, args):
    t = torch.nn.Parameter(torch.empty(8, 5))
    assert getattr(fastinit, fn)(t, *args) is t
    assert t.requires_grad and t.grad_fn is None and t.is_leaf
    a = np.full((8, 5), np.nan, dtype=np.float32)
    assert getattr(fastinit, fn)(a, *args) is a
    assert not np.isnan(a).any()


@pytest.mark.parametrize("fn", ["kaiming_uniform_", "kaiming_normal_"])
def test_zero_element_warning_like_torch(fn):
    with pytest.warns(UserWarning, match="zero-element"):
        getattr(fastinit, fn)(torch.empty(0, 3))


@pytest.mark.parametrize("fn", ["uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "orthogonal_"])
def test_zero_element_and_meta_tensors_are_a_no_op(fn):
    for t in (torch.empty(0, 3), torch.empty(3, 0), torch.empty(5, 4, device="meta")):
        g = torch.Generator().manual_seed(1)
        state = g.get_state()
        assert getattr(fastinit, fn)(t, generator=g) is t
        assert torch.equal(g.get_state(), state)  # no key drawn


def test_deprecated_aliases_warn_like_torch():
    with pytest.warns(FutureWarning, match="deprecated in favor of `nn.init.normal_`"):
        fastinit.normal(torch.empty(3, 4))


def test_dirac_and_eye_match_torch_exactly():
    for shape, groups in [((6, 4, 3), 1), ((6, 4, 3, 5), 2), ((4, 8, 3, 3, 3), 1), ((9, 2, 5), 3)]:
        assert torch.equal(fastinit.dirac_(torch.full(shape, 7.0), groups), tinit.dirac_(torch.empty(shape), groups))
        a = np.full(shape, 7.0, dtype=np.float32)
        np.testing.assert_array_equal(fastinit.dirac_(a, groups), tinit.dirac_(torch.empty(shape), groups).numpy())
    for shape in [(3, 5), (5, 3), (4, 4)]:
        assert torch.equal(fastinit.eye_(torch.full(shape, 7.0)), tinit.eye_(torch.empty(shape)))
        np.testing.assert_array_equal(fastinit.eye_(np.full(shape, 7.0)), np.eye(*shape))
    t = torch.full((3, 5), 7, dtype=torch.int64)
    assert torch.equal(fastinit.eye_(t), torch.eye(3, 5, dtype=torch.int64))


def test_constants_match_torch_on_any_dtype():
    for dtype in (torch.float32, torch.bfloat16, torch.int32, torch.float64):
        t = torch.full((4, 3), 9).to(dtype)
        assert torch.equal(fastinit.constant_(t, 2.5), tinit.constant_(torch.empty(4, 3, dtype=dtype), 2.5))
        assert torch.equal(fastinit.zeros_(t), torch.zeros(4, 3, dtype=dtype))
        assert torch.equal(fastinit.ones_(t), torch.ones(4, 3, dtype=dtype))


@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (16, 8, 3, 3), (5, 7)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_orthogonal(shape, dtype, rng):
    t = torch.full(shape, float("nan"), dtype=dtype)
    gain = 1.7
    fastinit.orthogonal_(t, gain=gain, generator=int(rng.integers(0, 2**62)))
    m = t.reshape(shape[0], -1).double()
    rows, cols = m.shape
    gram = m @ m.T if rows <= cols else m.T @ m
    tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 5e-2}[dtype]
    torch.testing.assert_close(gram / gain**2, torch.eye(min(rows, cols), dtype=torch.float64),
                               atol=tol * min(rows, cols) ** 0.5, rtol=0)


def test_orthogonal_is_haar_distributed(rng):
    """The sign fix of QR makes Q Haar-distributed: e.g. an entry of a random 8x8 orthogonal
    matrix, times sqrt(8), is close to N(0,1) for many draws, and its mean is 0 (no sign bias)."""
    g = fastinit.Generator(int(rng.integers(0, 2**62)))
    first = np.array([fastinit.orthogonal_(np.empty((8, 8)), generator=g)[0, 0] for _ in range(3000)])
    assert abs(first.mean()) < 6 * math.sqrt(1 / 8 / 3000)
    assert abs((first**2).mean() - 1 / 8) < 6 * math.sqrt(2 / 64 / 3000)


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.99, 1.0])
def test_sparse_zeros_exactly_ceil_sparsity_rows_per_column(sparsity, rng):
    rows, cols = 37, 23
    t = torch.full((rows, cols), float("nan"))
    g = int(rng.integers(0, 2**62))
    fastinit.sparse_(t, sparsity, std=0.05, generator=g)
    zeros_per_column = (t == 0).sum(0)
    assert torch.all(zeros_per_column == math.ceil(sparsity * rows))
    again = fastinit.sparse_(torch.empty(rows, cols), sparsity, std=0.05, generator=g)
    assert torch.equal(t, again)  # the zero pattern follows the generator too
    nonzero = t[t != 0]
    if nonzero.numel() > 200:
        assert abs(nonzero.std().item() - 0.05) < 0.01
    # a sparsity above 1 zeroes every row, as torch's sparse_ does (issue 11: it used to raise)
    assert bool((fastinit.sparse_(t, 1.5) == 0).all())
    assert bool((torch.nn.init.sparse_(torch.empty(rows, cols), 1.5) == 0).all())


def test_torch_semantics_of_kaiming_defaults():
    """kaiming_uniform_ defaults (a=0, leaky_relu, fan_in): bound = sqrt(2) * sqrt(3 / fan_in)."""
    t = fastinit.kaiming_uniform_(torch.empty(4000, 250), generator=3)
    bound = math.sqrt(2.0) * math.sqrt(3.0 / 250) / math.sqrt(1 + 0.0)
    gain = math.sqrt(2.0 / (1 + 0.0**2))
    assert abs(bound - gain * math.sqrt(3.0 / 250)) < 1e-15
    assert t.abs().max().item() <= bound and t.abs().max().item() > 0.999 * bound


