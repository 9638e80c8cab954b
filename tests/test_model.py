"""Model-scale init: reset_parameters, init_, lsuv_, the progress bar.

Distribution checks use a Kolmogorov-Smirnov test against the exact CDF torch's own
reset_parameters() draws from, and the same check is applied to torch's own output, so the
expected distribution in each case is checked to be torch's. Thresholds: p < 1e-6 fails.
"""
from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn as nn

import fastinit
from fastinit.model import plan as fmodel

P_FAIL = 1e-6


# ----------------------------------------------------------------------------------------------
# helpers


def values(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).reshape(-1).numpy()


def check_uniform(t: torch.Tensor, bound: float, what: str, strict: bool = True) -> None:
    """U(-bound, bound). strict: every value inside the exact bound (fastinit keeps its values
    inside [a, b]); else inside the bound rounded to the tensor's dtype (torch computes
    a + (b - a) u with a and b rounded to the dtype, so a value can be -fl(bound))."""
    x = values(t)
    assert x.size > 0, what
    if bound == 0:
        assert np.all(x == 0), what
        return
    limit = bound if strict else max(bound, abs(torch.tensor(bound, dtype=t.dtype).item()))
    assert x.min() >= -limit and x.max() <= limit, f"{what}: outside [-{limit}, {limit}]"
    p = scipy.stats.kstest(x, scipy.stats.uniform(loc=-bound, scale=2 * bound).cdf).pvalue
    assert p > P_FAIL, f"{what}: not U(-{bound:g}, {bound:g}) (KS p={p:.2g})"


def check_normal(t: torch.Tensor, std: float, what: str, skip_rows: tuple = ()) -> None:
    x = t.detach().to(torch.float64)
    if skip_rows:
        keep = [i for i in range(x.shape[0]) if i not in skip_rows]
        x = x[keep]
    x = x.reshape(-1).numpy()
    p = scipy.stats.kstest(x, scipy.stats.norm(scale=std).cdf).pvalue
    assert p > P_FAIL, f"{what}: not N(0, {std:g}^2) (KS p={p:.2g})"


def check_const(t: torch.Tensor, value: float, what: str) -> None:
    assert torch.all(t.detach() == value), f"{what}: not all {value}"


def check_spec(module: nn.Module, spec: dict, who: str) -> None:
    tensors = dict(module.named_parameters())
    tensors.update(dict(module.named_buffers()))
    for name, (kind, arg) in spec.items():
        t = tensors[name]
        what = f"{who} {type(module).__name__}.{name}"
        if kind == "uniform":
            check_uniform(t, arg, what, strict=who != "torch")
        elif kind == "normal":
            check_normal(t, arg, what)
        elif kind == "const":
            check_const(t, arg, what)
        elif kind == "normal_pad":
            std, pad = arg
            check_normal(t, std, what, skip_rows=(pad,))
            assert torch.all(t.detach()[pad] == 0), f"{what}: padding row not zero"
        else:  # pragma: no cover
            raise AssertionError(kind)


def poison(module: nn.Module) -> None:
    """Fill every float tensor with NaN (and stats with junk) so an unwritten one is caught."""
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            if t.is_floating_point():
                t.fill_(float("nan"))
            else:
                t.fill_(17)


def torch_reset(module: nn.Module) -> None:
    """torch's own init, as construction runs it: every module's (_)reset_parameters(),
    children first."""
    for child in module.children():
        torch_reset(child)
    reset = getattr(module, "reset_parameters", None) or getattr(module, "_reset_parameters",
                                                                 None)
    if reset is not None:
        reset()


def u(fan_in: int) -> tuple:
    return ("uniform", 1 / math.sqrt(fan_in))


def xavier_u(fan_in: int, fan_out: int) -> tuple:
    return ("uniform", math.sqrt(6.0 / (fan_in + fan_out)))


# Modules and the distributions torch's reset_parameters() gives (torch 2.13 sources):
# Linear/Conv: kaiming_uniform_(a=sqrt(5)) == U(+-1/sqrt(fan_in)), bias U(+-1/sqrt(fan_in)).
def _cases():
    E = 64
    rnn_std = ("uniform", 1 / math.sqrt(48))
    cases = [
        ("linear", lambda: nn.Linear(37, 3000), {"weight": u(37), "bias": u(37)}),
        ("bilinear", lambda: nn.Bilinear(20, 30, 400),
         {"weight": u(20), "bias": u(20)}),
        ("conv1d", lambda: nn.Conv1d(6, 2000, 5), {"weight": u(30), "bias": u(30)}),
        ("conv2d_groups", lambda: nn.Conv2d(8, 2048, 3, groups=4),
         {"weight": u(2 * 9), "bias": u(2 * 9)}),
        ("conv3d", lambda: nn.Conv3d(3, 2000, 2), {"weight": u(24), "bias": u(24)}),
        # transposed: weight (in, out/groups, k): fan_in is computed from dim 1
        ("conv_transpose2d", lambda: nn.ConvTranspose2d(2500, 4, 3),
         {"weight": u(36), "bias": u(36)}),
        ("embedding", lambda: nn.Embedding(500, 40, padding_idx=3),
         {"weight": ("normal_pad", (1.0, 3))}),
        ("embedding_bag", lambda: nn.EmbeddingBag(500, 40),
         {"weight": ("normal", 1.0)}),
        ("layer_norm", lambda: nn.LayerNorm(100), {"weight": ("const", 1.0),
                                                   "bias": ("const", 0.0)}),
        ("group_norm", lambda: nn.GroupNorm(4, 100), {"weight": ("const", 1.0),
                                                      "bias": ("const", 0.0)}),
        ("rms_norm", lambda: nn.RMSNorm(100), {"weight": ("const", 1.0)}),
        ("batch_norm", lambda: nn.BatchNorm2d(50),
         {"weight": ("const", 1.0), "bias": ("const", 0.0), "running_mean": ("const", 0.0),
          "running_var": ("const", 1.0), "num_batches_tracked": ("const", 0)}),
        ("instance_norm", lambda: nn.InstanceNorm1d(50, affine=True, track_running_stats=True),
         {"weight": ("const", 1.0), "bias": ("const", 0.0), "running_mean": ("const", 0.0),
          "running_var": ("const", 1.0)}),
        ("mha", lambda: nn.MultiheadAttention(E, 4, add_bias_kv=True),
         {"in_proj_weight": xavier_u(E, 3 * E), "in_proj_bias": ("const", 0.0),
          "out_proj.weight": u(E), "out_proj.bias": ("const", 0.0),
          "bias_k": ("normal", math.sqrt(2.0 / (2 * E))),
          "bias_v": ("normal", math.sqrt(2.0 / (2 * E)))}),
        ("mha_kv_dims", lambda: nn.MultiheadAttention(E, 4, kdim=40, vdim=24),
         {"q_proj_weight": xavier_u(E, E), "k_proj_weight": xavier_u(40, E),
          "v_proj_weight": xavier_u(24, E), "in_proj_bias": ("const", 0.0),
          "out_proj.weight": u(E), "out_proj.bias": ("const", 0.0)}),
        ("lstm", lambda: nn.LSTM(30, 48, num_layers=2, proj_size=20),
         {"weight_ih_l0": rnn_std, "weight_hh_l0": rnn_std, "bias_ih_l0": rnn_std,
          "bias_hh_l0": rnn_std, "weight_hr_l0": rnn_std, "weight_ih_l1": rnn_std}),
        ("gru", lambda: nn.GRU(30, 48, bidirectional=True),
         {"weight_ih_l0": rnn_std, "weight_hh_l0_reverse": rnn_std, "bias_hh_l0": rnn_std}),
        ("rnn_cell", lambda: nn.RNNCell(30, 48), {"weight_ih": rnn_std, "bias_hh": rnn_std}),
        ("lstm_cell", lambda: nn.LSTMCell(30, 48), {"weight_hh": rnn_std, "bias_ih": rnn_std}),
        ("prelu", lambda: nn.PReLU(10, init=0.3), {"weight": ("const", np.float32(0.3))}),
    ]
    return cases


CASES = _cases()


@pytest.mark.parametrize("name,make,spec", CASES, ids=[c[0] for c in CASES])
def test_reset_matches_torch_distribution(name, make, spec):
    module = make()
    # torch's own reset_parameters gives this distribution (checks the expectations) ...
    poison(module)
    torch_reset(module)
    check_spec(module, spec, "torch")
    # ... and fastinit gives the same one, in the same storage.
    poison(module)
    ptrs = {n: t.data_ptr() for n, t in module.state_dict(keep_vars=True).items()}
    fastinit.reset_parameters(module)
    check_spec(module, spec, "fastinit")
    assert {n: t.data_ptr() for n, t in module.state_dict(keep_vars=True).items()} == ptrs
    for n, p in module.named_parameters():
        assert not torch.isnan(p).any(), f"{name}.{n} not written"


def test_transformer_overrides_children():
    """nn.Transformer: xavier_uniform_ on every dim>1 parameter, after the children's init."""
    model = nn.Transformer(d_model=32, nhead=4, num_encoder_layers=1, num_decoder_layers=1,
                           dim_feedforward=256, batch_first=True)
    poison(model)
    fastinit.reset_parameters(model)
    layer = model.encoder.layers[0]
    check_uniform(layer.linear1.weight, math.sqrt(6 / (32 + 256)), "linear1.weight")
    check_uniform(layer.self_attn.in_proj_weight, math.sqrt(6 / (32 + 96)), "in_proj")
    check_uniform(layer.self_attn.out_proj.weight, math.sqrt(6 / 64), "out_proj.weight")
    check_uniform(layer.linear1.bias, 1 / math.sqrt(32), "linear1.bias")
    check_const(layer.self_attn.out_proj.bias, 0.0, "out_proj.bias")
    check_const(layer.norm1.weight, 1.0, "norm1.weight")


def test_lazy_linear_after_materialization():
    lazy = nn.LazyLinear(3000)
    fastinit.reset_parameters(lazy)  # uninitialized: nothing to do, no error
    lazy(torch.zeros(2, 37))
    poison(lazy)
    fastinit.reset_parameters(lazy)
    check_uniform(lazy.weight, 1 / math.sqrt(37), "lazy weight")
    check_uniform(lazy.bias, 1 / math.sqrt(37), "lazy bias")


def test_reset_exact_values_and_keys(rng):
    """Parameter i of model.parameters() gets key i+1 of fastinit.Generator(k), k the call's
    one draw: the values equal the per-tensor fastinit calls, bit for bit."""
    seed = int(rng.integers(0, 2**63))
    model = nn.Sequential(nn.Linear(13, 7), nn.LayerNorm(7), nn.Conv2d(3, 5, 3, bias=False),
                          nn.Embedding(9, 4, padding_idx=2))
    fastinit.reset_parameters(model, generator=seed)
    call_key = fastinit.Generator(seed).next_key()
    g = fastinit.Generator(call_key)
    w = fastinit.kaiming_uniform_(torch.empty(7, 13), a=math.sqrt(5), generator=g)
    b = fastinit.uniform_(torch.empty(7), -1 / math.sqrt(13), 1 / math.sqrt(13), generator=g)
    g.next_key(), g.next_key()  # the LayerNorm's weight and bias: constants
    c = fastinit.kaiming_uniform_(torch.empty(5, 3, 3, 3), a=math.sqrt(5), generator=g)
    e = fastinit.normal_(torch.empty(9, 4), generator=g)
    e[2] = 0
    assert torch.equal(model[0].weight, w) and torch.equal(model[0].bias, b)
    assert torch.equal(model[2].weight, c) and torch.equal(model[3].weight, e)
    g2 = fastinit.Generator(call_key)
    assert [g2.next_key() for _ in range(3)] == [fmodel.tensor_key(call_key, i) for i in range(3)]


def _small_model():
    return nn.Sequential(nn.Embedding(50, 16), nn.Linear(16, 32), nn.GELU(), nn.LayerNorm(32),
                         nn.MultiheadAttention(32, 4), nn.BatchNorm1d(32), nn.GRU(32, 8),
                         nn.Conv1d(4, 6, 3))


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_reproducible_under_manual_seed(rng):
    seed = int(rng.integers(0, 2**31))
    model = _small_model()
    torch.manual_seed(seed)
    fastinit.reset_parameters(model)
    first = _state(model)
    poison(model)
    torch.manual_seed(seed)
    fastinit.reset_parameters(model)
    second = _state(model)
    assert first.keys() == second.keys()
    for k in first:
        assert torch.equal(first[k], second[k]), k
    torch.manual_seed(seed + 1)
    fastinit.reset_parameters(model)
    assert not torch.equal(model[1].weight, first["1.weight"])
    # each tensor gets its own key: two same-shape tensors differ
    assert not torch.equal(model[4].in_proj_weight[:32], model[4].in_proj_weight[32:64])


def test_meta_model_to_empty_equals_eager_model(rng):
    seed = int(rng.integers(0, 2**31))
    eager = _small_model()
    torch.manual_seed(seed)
    fastinit.reset_parameters(eager)
    with torch.device("meta"):
        lazy = _small_model()
    fastinit.reset_parameters(lazy)  # on meta: nothing is written, nothing fails
    lazy.to_empty(device="cpu")
    torch.manual_seed(seed)
    fastinit.reset_parameters(lazy)
    ref, got = _state(eager), _state(lazy)
    for k in ref:
        assert torch.equal(ref[k], got[k]), k


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_reset_every_float_dtype(dtype):
    model = nn.Sequential(nn.Linear(50, 4000), nn.LayerNorm(4000)).to(dtype)
    poison(model)
    fastinit.reset_parameters(model)
    w = model[0].weight
    assert w.dtype == dtype
    bound = 1 / math.sqrt(50)
    x = values(w)
    assert np.all(np.abs(x) <= bound * (1 + 2**-7))  # rounding to the dtype may reach it
    assert abs(x.std() - bound / math.sqrt(3)) < 0.02 * bound
    check_const(model[1].weight, 1.0, "ln")


def test_version_counter_bumped():
    """An in-place re-init invalidates graphs that saved the old weights, as in torch."""
    lin = nn.Linear(4, 3)
    x = torch.randn(2, 4, requires_grad=True)
    out = (lin(x) ** 2).sum()
    fastinit.reset_parameters(lin)
    with pytest.raises(RuntimeError, match="inplace"):
        out.backward()


class Scaled(nn.Module):
    """A module fastinit does not know: its own reset_parameters() runs, after its children
    (as in construction), so it can override a child's init."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.empty(5))
        self.proj = nn.Linear(8, 4000)
        self.calls = 0
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.calls += 1
        with torch.no_grad():
            self.scale.fill_(7.0)
            self.proj.bias.zero_()  # overrides the Linear's bias init


class MyLinear(nn.Linear):
    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.fill_(3.0)
            if self.bias is not None:
                self.bias.fill_(-1.0)


def test_unknown_modules_fall_back_to_their_reset():
    model = nn.Sequential(Scaled(), MyLinear(3, 2), nn.Linear(8, 3000))
    poison(model)
    calls = model[0].calls
    fastinit.reset_parameters(model)
    assert model[0].calls == calls + 1
    check_const(model[0].scale, 7.0, "scale")
    check_const(model[0].proj.bias, 0.0, "overridden child bias")
    check_uniform(model[0].proj.weight, 1 / math.sqrt(8), "child weight")
    check_const(model[1].weight, 3.0, "subclass override")
    check_const(model[1].bias, -1.0, "subclass override")
    check_uniform(model[2].bias, 1 / math.sqrt(8), "plain Linear")


def test_parametrized_module_falls_back():
    """Its own reset_parameters() runs (the bias is re-drawn); it writes the computed weight,
    not the parametrization's originals, which are therefore reported (never silently kept)."""
    lin = nn.Linear(6, 3000)
    torch.nn.utils.parametrizations.weight_norm(lin)
    with torch.no_grad():
        lin.bias.fill_(float("nan"))
    originals = [p.detach().clone() for p in lin.parametrizations.weight.parameters()]
    with pytest.warns(fastinit.UninitializedTensorsWarning,
                      match=r"parametrizations\.weight\.original0.*original1"):
        fastinit.reset_parameters(lin, missing="warn")
    check_uniform(lin.bias, 1 / math.sqrt(6), "bias")
    for before, after in zip(originals, lin.parametrizations.weight.parameters()):
        assert torch.equal(before, after)


def test_parametrized_module_reported_by_default_and_nothing_written():
    lin = nn.Linear(6, 30)
    torch.nn.utils.parametrizations.weight_norm(lin)
    before = _state(lin)
    cpu_state = torch.random.get_rng_state()
    with pytest.raises(fastinit.UninitializedTensorsError) as info:
        fastinit.reset_parameters(lin)
    assert info.value.names == ["parametrizations.weight.original0 (ParametrizationList)",
                                "parametrizations.weight.original1 (ParametrizationList)"]
    after = _state(lin)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(torch.random.get_rng_state(), cpu_state)


class Failing(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(4))
        self.child = nn.Linear(3, 3)

    def reset_parameters(self) -> None:
        with torch.no_grad():
            torch.nn.init.uniform_(self.w)   # a write, a draw from torch's generator ...
            self.child.weight.fill_(2.0)
        raise RuntimeError("boom")           # ... then a failure


class Writes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.v = nn.Parameter(torch.zeros(5))

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.v.data.normal_()  # through .data: no version bump, still seen as written


def test_reset_parameters_is_atomic_when_an_own_reset_fails():
    model = nn.Sequential(nn.Linear(4, 4), Writes(), nn.LayerNorm(4), Failing(), nn.Linear(4, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ptrs = [p.data_ptr() for p in model.parameters()]
    g = fastinit.Generator(9)
    g_state, cpu_state = g.get_state(), torch.random.get_rng_state()
    with pytest.raises(RuntimeError, match="boom"):
        fastinit.reset_parameters(model, generator=g)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert [p.data_ptr() for p in model.parameters()] == ptrs
    assert g.get_state() == g_state and torch.equal(torch.random.get_rng_state(), cpu_state)
    # without the failing module: the same call writes everything, the .data write included
    ok = nn.Sequential(nn.Linear(4, 4), Writes(), nn.LayerNorm(4))
    poison(ok)
    fastinit.reset_parameters(ok, generator=9)
    assert all(torch.isfinite(t).all() for t in ok.state_dict().values())


def test_reset_rejects_non_module():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        fastinit.reset_parameters([torch.empty(3)])


def test_reset_bad_module_writes_nothing():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 4))
    model[1].weight = nn.Parameter(torch.zeros(4, 4, dtype=torch.int32),  # not a float tensor
                                   requires_grad=False)
    before = _state(model)
    g = fastinit.Generator(5)
    state = g.get_state()
    with pytest.raises(NotImplementedError, match="int32"):
        fastinit.reset_parameters(model, generator=g)
    after = _state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert g.get_state() == state


# ----------------------------------------------------------------------------------------------
# init_

METHODS = [
    ("uniform", lambda r: {"a": -float(r.uniform(0, 2)), "b": float(r.uniform(0, 2))}),
    ("normal", lambda r: {"mean": float(r.normal()), "std": float(r.uniform(0.01, 2))}),
    ("trunc_normal", lambda r: {"std": float(r.uniform(0.01, 1)), "a": -0.5, "b": 1.0}),
    ("xavier_uniform", lambda r: {"gain": float(r.uniform(0.5, 2))}),
    ("xavier_normal", lambda r: {}),
    ("kaiming_uniform", lambda r: {"a": float(r.uniform(0, 1)), "mode": "fan_out"}),
    ("kaiming_normal", lambda r: {"nonlinearity": "relu"}),
    ("orthogonal", lambda r: {"gain": float(r.uniform(0.5, 2))}),
    ("sparse", lambda r: {"sparsity": 0.3}),
]


def _shapes(rng, n, ndim_min=2):
    out = []
    for _ in range(n):
        nd = int(rng.integers(ndim_min, 4)) if ndim_min > 0 else 2
        out.append(tuple(int(s) for s in rng.integers(1, 9, size=nd)))
    return out


@pytest.mark.parametrize("method,make_kwargs", METHODS, ids=[m[0] for m in METHODS])
def test_init_equals_per_tensor_calls(method, make_kwargs, rng):
    n = 4
    shapes = [(int(rng.integers(2, 9)), int(rng.integers(2, 9))) for _ in range(n)]
    if method not in ("orthogonal", "sparse"):
        shapes[1] = shapes[1] + (3,)
    kw = make_kwargs(rng)
    seed = int(rng.integers(0, 2**63))
    tensors = [torch.full(s, float("nan")) for s in shapes]
    out = fastinit.init_(tensors, method, generator=seed, **kw)
    assert out == tensors or all(a is b for a, b in zip(out, tensors))
    g = fastinit.Generator(fastinit.Generator(seed).next_key())
    fn = getattr(fastinit, method + "_")
    for t in tensors:
        ref = fn(torch.empty(t.shape), generator=g, **kw)
        assert torch.equal(t, ref), method


def test_init_per_tensor_lists(rng):
    depth = 6
    shapes = [(300, 200)] * 4
    stds = [0.02, 0.02 / math.sqrt(2 * depth), 0.5, 0.02]
    tensors = [torch.empty(s) for s in shapes]
    seed = int(rng.integers(0, 2**63))
    fastinit.init_(tensors, "normal", std=stds, mean=[0.0, 0.0, 1.0, 0.0], generator=seed)
    g = fastinit.Generator(fastinit.Generator(seed).next_key())
    for t, s, m in zip(tensors, stds, [0.0, 0.0, 1.0, 0.0]):
        assert torch.equal(t, fastinit.normal_(torch.empty(t.shape), m, s, generator=g))
        p = scipy.stats.kstest(values(t), scipy.stats.norm(loc=m, scale=s).cdf).pvalue
        assert p > P_FAIL
    assert not torch.equal(tensors[0], tensors[3])  # same kwargs, own keys


def test_init_keys_ignore_skipped_tensors(rng):
    """A meta or empty tensor in the list does not shift the keys of the others."""
    seed = int(rng.integers(0, 2**63))
    a, b = torch.empty(5, 4), torch.empty(3, 3)
    fastinit.init_([a, torch.empty(2, 3, device="meta"), torch.empty(0, 4), b],
                   "trunc_normal", std=0.1, generator=seed)
    g = fastinit.Generator(fastinit.Generator(seed).next_key())
    ref_a = fastinit.trunc_normal_(torch.empty(5, 4), std=0.1, generator=g)
    g.next_key(), g.next_key()  # the keys of tensors 1 and 2
    ref_b = fastinit.trunc_normal_(torch.empty(3, 3), std=0.1, generator=g)
    assert torch.equal(a, ref_a) and torch.equal(b, ref_b)


def test_init_views_arrays_and_iterables(rng):
    seed = int(rng.integers(0, 2**63))
    base = torch.full((6, 8), float("nan"))
    view = base.t()[:, ::2]              # non-contiguous view
    arr = np.full((4, 5), np.nan, dtype=np.float32)
    p = nn.Parameter(torch.empty(7, 3))  # requires_grad leaf
    fastinit.init_(iter([view, arr, p]), "kaiming_normal", generator=seed)
    g = fastinit.Generator(fastinit.Generator(seed).next_key())
    assert torch.equal(view, fastinit.kaiming_normal_(torch.empty(8, 3), generator=g))
    assert np.array_equal(arr, fastinit.kaiming_normal_(np.empty((4, 5), np.float32), generator=g))
    assert torch.equal(p.detach(), fastinit.kaiming_normal_(torch.empty(7, 3), generator=g))
    assert torch.isnan(base[1::2]).all()  # the rows the view does not cover are untouched
    assert not torch.isnan(base[::2]).any()
    named = {"a": torch.empty(3, 3), "b": torch.empty(2, 2)}
    fastinit.init_(named, "ones")
    assert all(torch.all(t == 1) for t in named.values())


def test_init_constants():
    ts = [torch.full((3, 2), float("nan")), torch.full((4,), float("nan"))]
    fastinit.init_(ts, "constant", val=[0.5, -2.0])
    assert torch.all(ts[0] == 0.5) and torch.all(ts[1] == -2.0)
    fastinit.init_(ts, "zeros")
    assert all(torch.all(t == 0) for t in ts)
    with pytest.raises(TypeError):
        fastinit.init_(ts, "zeros", std=1.0)


def test_init_reproducible_under_manual_seed():
    ts = [torch.empty(10, 10) for _ in range(3)]
    torch.manual_seed(123)
    fastinit.init_(ts, "xavier_uniform")
    first = [t.clone() for t in ts]
    torch.manual_seed(123)
    fastinit.init_(ts, "xavier_uniform")
    assert all(torch.equal(a, b) for a, b in zip(first, ts))
    fastinit.init_(ts, "xavier_uniform")
    assert not torch.equal(first[0], ts[0])


def test_init_callables():
    t1, t2 = torch.empty(400, 300), torch.empty(400, 300)
    fastinit.init_([t1], fastinit.normal_, std=0.3, generator=9)
    fastinit.init_([t2], "normal_", std=0.3, generator=9)
    assert torch.equal(t1, t2)
    seen = []

    def mine(tensor, scale=1.0, generator=None):
        seen.append(generator)
        return fastinit.uniform_(tensor, -scale, scale, generator=generator)

    fastinit.init_([t1, t2], mine, scale=[1.0, 2.0], generator=4)
    assert all(isinstance(g, fastinit.Generator) for g in seen) and len(seen) == 2
    assert t1.abs().max() <= 1.0 and t2.abs().max() > 1.0
    fastinit.init_([t1], torch.nn.init.normal_, std=0.5)  # torch's own stream
    check_normal(t1, 0.5, "torch.nn.init.normal_ via init_")


def test_init_bad_input_writes_nothing():
    ts = [torch.full((3, 3), float("nan")) for _ in range(3)]
    g = fastinit.Generator(1)
    state = g.get_state()
    with pytest.raises(RuntimeError, match="std"):
        fastinit.init_(ts, "normal", std=[1.0, 1.0, -1.0], generator=g)
    with pytest.raises(ValueError, match="2 values for 3 tensors"):
        fastinit.init_(ts, "normal", std=[1.0, 1.0], generator=g)
    with pytest.raises(ValueError, match="unknown method"):
        fastinit.init_(ts, "gaussian", generator=g)
    with pytest.raises(TypeError, match="unexpected keyword"):
        fastinit.init_(ts, "normal", sd=1.0, generator=g)
    with pytest.raises(ValueError, match="2 dimensions"):
        fastinit.init_(ts + [torch.empty(3)], "sparse", sparsity=0.1, generator=g)
    with pytest.raises(TypeError, match="element 1"):
        fastinit.init_([ts[0], "x"], "normal", generator=g)
    with pytest.raises(TypeError, match="module"):
        fastinit.init_(nn.Linear(2, 2), "normal")
    with pytest.raises(NotImplementedError, match="int64"):
        fastinit.init_(ts + [torch.zeros(3, dtype=torch.long)], "uniform", generator=g)
    assert all(torch.isnan(t).all() for t in ts)
    assert g.get_state() == state


# ----------------------------------------------------------------------------------------------
# progress bar


class FakeTqdm:
    instances: list = []

    def __init__(self, total=None, **kwargs):
        self.total, self.n, self.closed = total, 0, False
        FakeTqdm.instances.append(self)

    def update(self, n):
        self.n += n

    def close(self):
        self.closed = True


@pytest.fixture
def fake_tqdm(monkeypatch):
    FakeTqdm.instances = []
    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=FakeTqdm))
    return FakeTqdm


def test_progress_bar_threshold(fake_tqdm, monkeypatch):
    model = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 5))  # 165 elements
    total = sum(p.numel() for p in model.parameters())
    monkeypatch.setattr(fmodel, "PROGRESS_THRESHOLD", total - 1)
    fastinit.reset_parameters(model)
    assert len(fake_tqdm.instances) == 1
    bar = fake_tqdm.instances[0]
    assert bar.total == total and bar.n == total and bar.closed
    monkeypatch.setattr(fmodel, "PROGRESS_THRESHOLD", total)  # not more than: no bar
    fastinit.reset_parameters(model)
    fastinit.init_(list(model.parameters()), "normal")
    assert len(fake_tqdm.instances) == 1
    fastinit.reset_parameters(model, progress=True)       # forced on
    assert len(fake_tqdm.instances) == 2
    monkeypatch.setattr(fmodel, "PROGRESS_THRESHOLD", 0)
    fastinit.init_(list(model.parameters()), "normal", progress=False)  # forced off
    assert len(fake_tqdm.instances) == 2
    assert fmodel.PROGRESS_THRESHOLD == 0 and fmodel._want_progress(10**10, None)


def test_progress_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm raises ImportError
    monkeypatch.setattr(fmodel, "PROGRESS_THRESHOLD", 0)
    assert not fmodel._want_progress(10**12, None)
    fastinit.reset_parameters(nn.Linear(3, 3), progress=True)  # no bar, no error


def test_default_threshold_is_a_billion_cpu_elements():
    assert fmodel.PROGRESS_THRESHOLD == 1_000_000_000
    assert not fmodel._want_progress(999_999_999, None)


# ----------------------------------------------------------------------------------------------
# LSUV


class Reversed(nn.Module):
    """Registration order differs from execution order."""

    def __init__(self, d: int, depth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(d, d) for _ in range(depth)])
        self.conv = nn.Conv1d(1, 4, 3, padding=1)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        h = self.conv(x[:, None, :]).mean(1)
        for layer in reversed(self.layers):
            h = torch.tanh(self.drop(layer(h)))
        return h


def test_lsuv_unit_variance_in_execution_order(rng):
    torch.manual_seed(int(rng.integers(0, 2**31)))
    model = Reversed(64, 5)
    model.train()
    model.layers[2].eval()  # mixed flags are restored as they were
    batch = torch.from_numpy(rng.normal(size=(256, 64)).astype(np.float32)) * 3
    ptrs = [p.data_ptr() for p in model.parameters()]
    report = fastinit.lsuv_(model, batch, tol=0.05)
    assert [r.name for r in report] == ["conv"] + [f"layers.{i}" for i in (4, 3, 2, 1, 0)]
    assert model.training and not model.layers[2].training and model.layers[1].training
    assert [p.data_ptr() for p in model.parameters()] == ptrs
    # independent check of every layer's output variance
    outs = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: outs.__setitem__(n, o.var().item()))
             for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv1d))]
    model.eval()
    with torch.no_grad():
        model(batch)
    for h in hooks:
        h.remove()
    for row in report:
        assert row.converged and abs(row.variance - 1) < 0.05
        assert abs(outs[row.name] - 1) < 0.06, (row.name, outs[row.name])
        assert 0 <= row.iterations <= 10


def test_lsuv_options(rng):
    torch.manual_seed(int(rng.integers(0, 2**31)))
    model = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 8))
    batch = torch.randn(128, 32)
    w = model[0].weight.detach().clone()
    report = fastinit.lsuv_(model, batch, max_iters=0, orthogonal=False)
    assert [r.iterations for r in report] == [0, 0]
    assert torch.equal(model[0].weight, w)  # no pre-init, no rescaling
    report = fastinit.lsuv_(model, (batch,), orthogonal=True, generator=3)
    q = model[0].weight.detach()
    assert report[0].converged
    # orthogonal pre-init then a scalar rescaling: W W^T is a multiple of the identity
    gram = q @ q.T
    assert torch.allclose(gram, gram[0, 0] * torch.eye(32), atol=1e-4 * float(gram[0, 0]))
    with pytest.raises(ValueError, match="tol"):
        fastinit.lsuv_(model, batch, tol=0)
    with pytest.raises(TypeError):
        fastinit.lsuv_(batch, batch)


def test_lsuv_without_fused_stats(monkeypatch, rng):
    """The torch.var_mean fallback gives the same result as fastinit.stats."""
    torch.manual_seed(int(rng.integers(0, 2**31)))
    model = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 16))
    batch = torch.randn(64, 16) * 5
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with_stats = fastinit.lsuv_(model, batch, generator=1)
    model.load_state_dict(state)
    monkeypatch.delattr(fastinit, "stats", raising=False)
    without = fastinit.lsuv_(model, batch, generator=1)
    assert [r.iterations for r in with_stats] == [r.iterations for r in without]
    assert all(abs(a.variance - b.variance) < 1e-5 for a, b in zip(with_stats, without))


def test_lsuv_stops_on_dead_layer():
    """A layer whose output is constant cannot be rescaled to unit variance: reported, not
    looped on; a later layer that rescaling cannot reach runs out of iterations."""
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.zero_()
    report = fastinit.lsuv_(model, torch.randn(32, 8), orthogonal=False, max_iters=4)
    assert (report[0].variance, report[0].iterations, report[0].converged) == (0.0, 0, False)
    assert report[1].iterations == 4 and not report[1].converged
