"""fastinit.patch and fastinit.materialize: other libraries' models on fastinit's stream.

Two layers of tests:

- minimal modules that reproduce the patterns of the model libraries (a Conv1D without
  reset_parameters, an RMSNorm, a rotary inv_freq buffer, a model-level init, a timm-like
  weight_init module bound by ``from ... import``), always run;
- integration tests with transformers and timm, skipped when they are not importable (in CI
  timm is not: its PyPI dependency torchvision does not import beside the pinned torch).

Distribution checks: a two-sample Kolmogorov-Smirnov test against the library's own init
(constructing the model eagerly with stock torch), p < 1e-6 fails; constants and buffers are
compared exactly.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import scipy.stats
import torch
import torch.nn as nn

import fastinit
from fastinit.integrations import patching, routes

P_FAIL = 1e-6
pytestmark = pytest.mark.backends("native")  # model-sized fills: the NumPy path adds nothing


def _torch_init_names():
    return [n for n in torch.nn.init.__all__] + [
        "_calculate_fan_in_and_fan_out", "_calculate_correct_fan", "_no_grad_uniform_",
        "_no_grad_normal_", "_no_grad_trunc_normal_", "_no_grad_fill_", "_no_grad_zero_"]


ORIGINALS = {name: getattr(torch.nn.init, name) for name in _torch_init_names()}


def _bindings():
    """(module name, attribute, object) of every module attribute holding a torch original."""
    ids = {id(v) for v in ORIGINALS.values()}
    out = []
    for name, module in list(sys.modules.items()):
        try:
            items = list(vars(module).items())
        except TypeError:
            continue
        out += [(name, k, v) for k, v in items if id(v) in ids]
    return out


@pytest.fixture(autouse=True)
def no_patch_left():
    yield
    assert not fastinit.integrations.is_patched(), "a test left a patch active"
    for name, fn in ORIGINALS.items():
        assert getattr(torch.nn.init, name) is fn, name


# ----------------------------------------------------------------------------------------------
# patch(): what is routed, and how it is restored


def test_patch_routes_and_restores_every_binding():
    before = _bindings()
    assert ("torch.nn.modules.activation", "xavier_uniform_",
            ORIGINALS["xavier_uniform_"]) in before
    with fastinit.patch() as p:
        assert p.active and fastinit.integrations.is_patched()
        for name, fn in ORIGINALS.items():
            now = getattr(torch.nn.init, name)
            assert now is not fn and now.__wrapped__ is fn, name
        assert _bindings() == []  # no module attribute still holds an original
    assert _bindings() == before


def test_patch_restores_on_exception_and_counts_nesting():
    with pytest.raises(KeyError):
        with fastinit.patch():
            raise KeyError("x")
    assert torch.nn.init.normal_ is ORIGINALS["normal_"]
    with fastinit.patch():
        replaced = torch.nn.init.normal_
        with fastinit.patch():
            assert torch.nn.init.normal_ is replaced  # one replacement object per original
        assert torch.nn.init.normal_ is replaced      # the inner exit restores nothing
    assert torch.nn.init.normal_ is ORIGINALS["normal_"]
    p = fastinit.patch().start()
    with pytest.raises(RuntimeError, match="already active"):
        p.start()
    p.stop()
    with pytest.raises(RuntimeError, match="not active"):
        p.stop()

    @fastinit.patch(generator=3)
    def build():
        return torch.nn.init.normal_ is not ORIGINALS["normal_"]
    assert build() and torch.nn.init.normal_ is ORIGINALS["normal_"]


def test_binding_made_during_the_patch_is_restored(tmp_path, monkeypatch):
    (tmp_path / "fi_user_model.py").write_text(
        "from torch.nn.init import trunc_normal_, kaiming_uniform_ as ku\n"
        "TABLE = {'x': 1}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with fastinit.patch():
            import fi_user_model
            assert fi_user_model.trunc_normal_ is not ORIGINALS["trunc_normal_"]
        assert fi_user_model.trunc_normal_ is ORIGINALS["trunc_normal_"]
        assert fi_user_model.ku is ORIGINALS["kaiming_uniform_"]
    finally:
        sys.modules.pop("fi_user_model", None)


def test_values_are_fastinit_stream_and_seeded_by_torch():
    torch.manual_seed(11)
    with fastinit.patch():
        a = torch.nn.init.kaiming_uniform_(torch.empty(64, 32), a=math.sqrt(5))
        b = torch.nn.init.trunc_normal_(torch.empty(1000), std=0.02, a=-0.03, b=0.03)
    torch.manual_seed(11)
    ref_a = fastinit.kaiming_uniform_(torch.empty(64, 32), a=math.sqrt(5))
    ref_b = fastinit.trunc_normal_(torch.empty(1000), std=0.02, a=-0.03, b=0.03)
    assert torch.equal(a, ref_a) and torch.equal(b, ref_b)
    # a generator= argument is used as given; patch(generator=...) otherwise
    g = torch.Generator().manual_seed(5)
    with fastinit.patch(generator=7):
        c = torch.nn.init.normal_(torch.empty(100), generator=g)
        d = torch.nn.init.normal_(torch.empty(100))
        e = torch.nn.init.normal_(torch.empty(100))
    assert torch.equal(c, fastinit.normal_(torch.empty(100),
                                           generator=torch.Generator().manual_seed(5)))
    g7 = fastinit.Generator(7)
    assert torch.equal(d, fastinit.normal_(torch.empty(100), generator=g7))
    assert torch.equal(e, fastinit.normal_(torch.empty(100), generator=g7))


def test_routed_functions_keep_torch_semantics():
    with fastinit.patch():
        init = torch.nn.init
        w = init.kaiming_normal_(torch.empty(300, 40, 3), mode="fan_out", nonlinearity="relu")
        assert abs(w.std().item() - math.sqrt(2 / (300 * 3))) < 0.03 * math.sqrt(2 / 900)
        assert init.calculate_gain("tanh") == 5.0 / 3
        assert init._calculate_fan_in_and_fan_out(torch.empty(4, 5, 3)) == (15, 12)
        with pytest.raises(ValueError, match="Fan in and fan out"):
            init.xavier_uniform_(torch.empty(5))
        with pytest.warns(FutureWarning, match="nn.init.normal"):
            init.normal(torch.empty(3))
        with pytest.warns(UserWarning, match="zero-element"):
            init.kaiming_uniform_(torch.empty(0, 3))
        # what fastinit does not fill goes to torch: complex values, integer errors
        z = init.normal_(torch.empty(50, dtype=torch.complex64))
        assert torch.isfinite(torch.view_as_real(z)).all()
        with pytest.raises(RuntimeError):
            init.uniform_(torch.empty(3, dtype=torch.int64))
        i = init.constant_(torch.empty(3, dtype=torch.int64), 4)
        assert i.tolist() == [4, 4, 4]
        x = init.trunc_normal_(torch.empty(10000, dtype=torch.bfloat16), std=0.02,
                               a=-0.04, b=0.04)
        assert x.abs().max().item() <= 0.04
        with torch.device("meta"):  # the device context's function mode is no obstacle
            lin = nn.Linear(3, 3)
        assert lin.weight.is_meta


def test_torch_modules_built_under_patch_draw_no_torch_randomness():
    """Every init call of torch's modules is routed: with a fastinit generator set, torch's
    own generator does not advance while a model is built."""
    state = torch.random.get_rng_state()
    with fastinit.patch(generator=1):
        nn.Sequential(nn.Linear(8, 8), nn.Conv2d(3, 4, 3), nn.Embedding(10, 4), nn.GRU(4, 4),
                      nn.MultiheadAttention(8, 2), nn.TransformerEncoderLayer(8, 2, 16),
                      nn.Bilinear(3, 3, 2), nn.PReLU())
    assert torch.equal(torch.random.get_rng_state(), state)


def test_environment_variable_patches_the_whole_program():
    code = ("import torch, fastinit; "
            "print(torch.nn.init.normal_.__module__, fastinit.integrations.is_patched())")
    env = dict(os.environ, FASTINIT_PATCH="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["fastinit.integrations.routes", "True"]


# ----------------------------------------------------------------------------------------------
# a timm-like library, imported during and before a patch


TIMM_LIKE = {
    "weight_init.py": '''
        import math, torch
        from torch.nn.init import _calculate_fan_in_and_fan_out
        def trunc_normal_(tensor, mean=0., std=1., a=-2., b=2.):
            with torch.no_grad():
                return tensor.normal_(mean, std).clamp_(a, b)
        def trunc_normal_tf_(tensor, mean=0., std=1., a=-2., b=2.):
            with torch.no_grad():
                return tensor.normal_().clamp_(a, b).mul_(std).add_(mean)
        def variance_scaling_(tensor, scale=1.0, mode='fan_in', distribution='normal'):
            fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
            std = math.sqrt(scale / fan_in)
            if distribution == "truncated_normal":
                trunc_normal_tf_(tensor, std=std / .87962566103423978)
            else:
                with torch.no_grad():
                    tensor.normal_(std=std)
        def lecun_normal_(tensor):
            variance_scaling_(tensor, mode='fan_in', distribution='truncated_normal')
    ''',
    "__init__.py": "from .weight_init import trunc_normal_, trunc_normal_tf_, "
                   "variance_scaling_, lecun_normal_\n",
}


@pytest.fixture
def timm_like(tmp_path, monkeypatch, request):
    """A package named timm with timm's init helpers (only when the real timm is absent);
    indirect parametrization may add text to its weight_init.py."""
    try:
        import timm  # noqa: F401
        pytest.skip("the real timm is importable: tested by the timm integration tests")
    except ImportError:
        pass
    layers = tmp_path / "timm" / "layers"
    layers.mkdir(parents=True)
    (tmp_path / "timm" / "__init__.py").write_text("")
    extra = getattr(request, "param", "")
    for name, text in TIMM_LIKE.items():
        text = textwrap.dedent(text) + (textwrap.dedent(extra) if name == "weight_init.py" else "")
        (layers / name).write_text(text)
    (tmp_path / "timm" / "model_file.py").write_text(
        "from timm.layers import trunc_normal_, variance_scaling_, trunc_normal_tf_\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in [n for n in sys.modules if n == "timm" or n.startswith("timm.")]:
        del sys.modules[name]


def _timm_checks():
    import timm.layers as layers
    import timm.layers.weight_init as wi
    import timm.model_file as mf
    for module in (layers, mf):
        assert module.trunc_normal_ is not wi.__dict__.get("trunc_normal_") or \
            module.trunc_normal_.__module__ == routes.__name__
    torch.manual_seed(3)
    x = mf.trunc_normal_tf_(torch.empty(20000), std=0.5)       # bounds in units of std
    assert x.abs().max().item() <= 1.0 and x.abs().max().item() > 0.99
    v = torch.empty(2000, 50)
    mf.variance_scaling_(v)                                   # timm's default: a normal
    assert v.abs().max().item() > 2.5 * math.sqrt(1 / 50)     # untruncated tails
    t = torch.empty(2000, 50)
    mf.variance_scaling_(t, distribution="truncated_normal")
    assert t.abs().max().item() <= 2 * math.sqrt(1 / 50) / 0.87962566103423978 * (1 + 1e-6)
    assert abs(t.std().item() - math.sqrt(1 / 50)) < 0.02 * math.sqrt(1 / 50)


def test_timm_like_imported_before_the_patch(timm_like):
    import timm.layers.weight_init as wi
    import timm.model_file as mf
    original = wi.trunc_normal_
    assert mf.trunc_normal_ is original
    with fastinit.patch():
        assert mf.trunc_normal_ is not original and wi.trunc_normal_ is mf.trunc_normal_
        _timm_checks()
    assert mf.trunc_normal_ is original and wi.trunc_normal_ is original


def test_timm_like_first_imported_during_the_patch(timm_like):
    with fastinit.patch():
        import timm.layers.weight_init as wi
        import timm.model_file as mf
        assert mf.trunc_normal_.__module__ == routes.__name__
        _timm_checks()
    assert mf.trunc_normal_.__module__ == "timm.layers.weight_init"
    assert mf.trunc_normal_ is wi.trunc_normal_
    assert not any(isinstance(f, patching._ImportWatcher) for f in sys.meta_path)


OTHER_VERSION = '''
    def trunc_normal_(tensor, mean=0., std=1., a=-2., b=2., generator=None):
        return tensor.normal_(mean, std, generator=generator).clamp_(a, b)
'''


@pytest.mark.parametrize("timm_like", [OTHER_VERSION], indirect=True)
def test_a_function_with_other_parameters_is_left_alone(timm_like):
    """A library version whose function takes other parameters than its replacement would:
    not patched (its callers would break or lose an argument), the others are."""
    import timm.layers.weight_init as wi
    with fastinit.patch():
        assert wi.trunc_normal_.__module__ == "timm.layers.weight_init"
        assert wi.lecun_normal_.__module__ == routes.__name__


# ----------------------------------------------------------------------------------------------
# minimal modules with the libraries' patterns


class Conv1D(nn.Module):
    """GPT-2's Conv1D: no reset_parameters(); the model's _init_weights writes it."""

    def __init__(self, nf: int, nx: int) -> None:
        super().__init__()
        self.nf, self.nx = nf, nx
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))
        nn.init.normal_(self.weight, std=0.02)


class RMSNorm(nn.Module):
    """An RMSNorm of a model file: ones in __init__, no reset_parameters()."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps


class Rotary(nn.Module):
    """A rotary embedding: a non-persistent buffer computed in __init__ (from attributes)."""

    def __init__(self, dim: int, base: float = 10000.0) -> None:
        super().__init__()
        self.dim, self.base = dim, base
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)


class Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.attn = Conv1D(3 * d, d)
        self.proj = Conv1D(d, d)
        self.norm = RMSNorm(d)
        self.mlp = nn.Linear(d, 4 * d)


class TinyLM(nn.Module):
    """Embedding tied to the head, Conv1D, RMSNorm, rotary buffer; a model-level init as
    transformers' post_init runs it: normal(0.02) weights, depth-scaled projections."""

    def __init__(self, d: int = 32, layers: int = 2, vocab: int = 300) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList([Block(d) for _ in range(layers)])
        self.rotary = Rotary(d // 2)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.wte.weight
        self.layers = layers
        self.init_weights()

    def init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Linear, Conv1D, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, RMSNorm):  # by class, as transformers' _init_weights does
                nn.init.ones_(m.weight)
        for b in self.blocks:
            nn.init.normal_(b.proj.weight, std=0.02 / math.sqrt(2 * self.layers))


def _meta(make):
    with torch.device("meta"):
        return make()


def _poison(model):
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            t.fill_(float("nan") if t.is_floating_point() else 17)


def test_reset_parameters_names_what_it_cannot_write():
    model = _meta(TinyLM).to_empty(device="cpu")
    with pytest.raises(fastinit.UninitializedTensorsError) as info:
        fastinit.reset_parameters(model)
    names = info.value.names
    assert "blocks.0.attn.weight (Conv1D)" in names and "blocks.1.norm.weight (RMSNorm)" in names
    assert "rotary.inv_freq (Rotary)" in names
    assert not any(n.startswith(("wte", "blocks.0.ln", "blocks.0.mlp")) for n in names)
    with pytest.warns(fastinit.UninitializedTensorsWarning, match="rotary.inv_freq"):
        fastinit.reset_parameters(model, missing="warn")
    assert torch.isfinite(model.blocks[0].mlp.weight).all()
    fastinit.reset_parameters(model, missing="ignore")


def test_materialize_library_scheme_equals_construction_in_law():
    torch.manual_seed(0)
    eager = TinyLM(d=64, layers=2, vocab=2000)
    model = _meta(lambda: TinyLM(d=64, layers=2, vocab=2000))
    torch.manual_seed(1)
    fastinit.materialize(model, device="cpu")
    assert model.head.weight is model.wte.weight  # tied again after to_empty
    ref, got = eager.state_dict(), model.state_dict()
    for name, t in got.items():
        assert torch.isfinite(t).all(), name
        _same_law(ref[name], t, name)
    assert torch.equal(model.rotary.inv_freq, eager.rotary.inv_freq)  # rebuilt from Rotary


def test_materialize_torch_scheme_and_reports():
    model = _meta(TinyLM)
    with pytest.warns(fastinit.UninitializedTensorsWarning) as record:
        fastinit.materialize(model, device="cpu", scheme="torch", missing="warn")
    message = str(record[0].message)
    # Conv1D is rebuilt from its constructor (nf, nx are attributes); RMSNorm's hidden_size is
    # not an attribute: reported with the reason, and NaN-marked, never garbage
    assert "blocks.0.norm.weight (RMSNorm)" in message and "'hidden_size'" in message
    assert "attn.weight" not in message
    assert torch.isnan(model.blocks[0].norm.weight).all()
    assert abs(model.blocks[0].attn.weight.std().item() - 0.02) < 0.004
    with pytest.raises(fastinit.UninitializedTensorsError, match="RMSNorm"):
        fastinit.materialize(_meta(TinyLM), device="cpu", scheme="torch")


def test_materialize_with_poisoned_storage_writes_or_reports_every_tensor():
    """Storage full of NaN before materialize: afterwards each tensor is finite, or named."""
    class Unknown(nn.Module):
        def __init__(self, n: int) -> None:
            super().__init__()
            self.table = nn.Parameter(torch.empty(n, 3))   # nobody ever writes it

    def make():
        m = TinyLM()
        m.extra = Unknown(5)
        m.register_buffer("counts", torch.zeros(4, dtype=torch.int64))
        return m

    for scheme in ("library", "torch"):
        model = _meta(make).to_empty(device="cpu")
        _poison(model)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            fastinit.materialize(model, scheme=scheme, missing="warn")
        reported = " ".join(str(w.message) for w in record
                            if issubclass(w.category, fastinit.UninitializedTensorsWarning))
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            finite = bool(torch.isfinite(t).all()) if t.is_floating_point() else True
            assert finite or f"{name} (" in reported, (scheme, name)
        assert "extra.table (Unknown)" in reported and "counts" in reported
        assert torch.isnan(model.extra.table).all()


def test_materialize_reproducible_and_seeded():
    def build(seed, **kw):
        model = _meta(TinyLM)
        torch.manual_seed(seed)
        return fastinit.materialize(model, device="cpu", **kw).state_dict()
    a, b, c = build(5), build(5), build(6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["blocks.0.attn.weight"], c["blocks.0.attn.weight"])
    d = _meta(TinyLM)
    fastinit.materialize(d, device="cpu", generator=fastinit.Generator(5))
    e = _meta(TinyLM)
    fastinit.materialize(e, device="cpu", generator=fastinit.Generator(5))
    assert all(torch.equal(x, y) for x, y in zip(d.state_dict().values(),
                                                  e.state_dict().values()))


def test_materialize_skips_defaults_the_library_overwrites(monkeypatch):
    """Defaults of known modules are made only for tensors the library's init leaves alone;
    a library init that reads a default (a rescale) gets construction's order instead."""
    from fastinit.model.reset import Deferred
    made = []
    run = Deferred.run

    def spy(self, keep=None):
        made.append([e.tensor for e in self.entries if keep is None or keep(e.tensor)])
        return run(self, keep)
    monkeypatch.setattr(Deferred, "run", spy)
    model = _meta(lambda: nn.Sequential(nn.Linear(400, 300), nn.LayerNorm(300),
                                        nn.Linear(300, 200)))
    fastinit.materialize(model, device="cpu",
                         library_init=lambda m: nn.init.normal_(m[0].weight, std=0.02))
    assert len(made) == 1 and {id(t) for t in made[0]} == {
        id(model[0].bias), id(model[1].weight), id(model[1].bias), id(model[2].weight),
        id(model[2].bias)}
    assert abs(model[0].weight.std().item() - 0.02) < 0.001
    assert model[2].weight.abs().max().item() <= 1 / math.sqrt(300)
    # a rescale of the default: every default is made first, then the library's init again
    made.clear()
    model = _meta(lambda: nn.Sequential(nn.Linear(400, 300), nn.Linear(300, 200)))
    torch.manual_seed(0)
    eager = nn.Sequential(nn.Linear(400, 300), nn.Linear(300, 200))
    with torch.no_grad():
        eager[0].weight.mul_(0.5)
    fastinit.materialize(model, device="cpu",
                         library_init=lambda m: m[0].weight.data.mul_(0.5))
    assert made == []  # nothing to skip: the defaults are made in place, then the rescale
    for name, t in model.state_dict().items():
        assert torch.isfinite(t).all(), name
        _same_law(eager.state_dict()[name], t, name)
    # an init that writes on the meta device only: the skipped default is made after all
    made.clear()
    model = _meta(lambda: nn.Sequential(nn.Linear(400, 300), nn.Linear(300, 200)))
    fastinit.materialize(model, device="cpu", library_init=lambda m: (
        nn.init.zeros_(m[0].weight) if m[0].weight.is_meta else None))
    assert [len(x) for x in made] == [3, 4]
    assert 0 < model[0].weight.abs().max().item() <= 1 / math.sqrt(400)
    # an init that reads a default before overwriting it: the mark shows, order is restored
    made.clear()

    def copy_then_draw(m):
        m[1].weight.data.copy_(m[0].weight.data)
        nn.init.normal_(m[0].weight, std=0.02)
    model = _meta(lambda: nn.Sequential(nn.Linear(60, 60), nn.Linear(60, 60)))
    fastinit.materialize(model, device="cpu", library_init=copy_then_draw)
    assert [len(x) for x in made] == [3, 4]
    bound = 1 / math.sqrt(60)
    check = scipy.stats.kstest(model[1].weight.detach().reshape(-1).numpy(),
                               scipy.stats.uniform(loc=-bound, scale=2 * bound).cdf)
    assert check.pvalue > P_FAIL and abs(model[0].weight.std().item() - 0.02) < 0.002


def test_materialize_library_init_argument_and_errors():
    model = _meta(lambda: nn.Sequential(nn.Linear(3, 3), RMSNorm(3)))
    fastinit.materialize(model, device="cpu",
                         library_init=lambda m: nn.init.ones_(m[1].weight))
    assert torch.equal(model[1].weight, torch.ones(3))
    with pytest.raises(ValueError, match="device="):
        fastinit.materialize(_meta(lambda: nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="scheme"):
        fastinit.materialize(nn.Linear(2, 2), scheme="jax")
    lin = nn.Linear(20, 30)
    fastinit.materialize(lin)  # already allocated: initialized where it is
    assert lin.weight.abs().max().item() <= 1 / math.sqrt(20)


# ----------------------------------------------------------------------------------------------
# distribution checks


def _same_law(ref: torch.Tensor, got: torch.Tensor, what: str) -> None:
    """Equal constants, else a two-sample KS test (values of the library's own init vs ours)."""
    ref = ref.detach().to(torch.float64).reshape(-1)
    got = got.detach().to(torch.float64).reshape(-1)
    assert ref.shape == got.shape, what
    if torch.all(ref == ref[0]) or ref.numel() < 64:
        assert torch.equal(ref, got) or torch.allclose(ref, got, rtol=1e-6, atol=0), what
        return
    p = scipy.stats.ks_2samp(ref.numpy(), got.numpy()).pvalue
    assert p > P_FAIL, f"{what}: not the library's law (KS p={p:.2g})"


# ----------------------------------------------------------------------------------------------
# transformers (skipped when it is not installed)


def _hf_small(kind: str):
    transformers = pytest.importorskip("transformers")
    if kind == "gpt2":
        cfg = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=1000,
                                      n_positions=128, bos_token_id=0, eos_token_id=0)
        return lambda: transformers.GPT2LMHeadModel(cfg)
    cfg = transformers.LlamaConfig(hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, vocab_size=1000,
                                   bos_token_id=0, eos_token_id=0, pad_token_id=0)
    return lambda: transformers.LlamaForCausalLM(cfg)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_transformers_materialize_matches_eager(kind):
    make = _hf_small(kind)
    torch.manual_seed(0)
    eager = make()
    model = _meta(make)
    with pytest.raises(fastinit.UninitializedTensorsError):  # Conv1D / RMSNorm and rotary
        fastinit.reset_parameters(_meta(make).to_empty(device="cpu"))
    fastinit.materialize(model, device="cpu")
    ref = dict(eager.named_parameters()) | dict(eager.named_buffers())
    got = dict(model.named_parameters()) | dict(model.named_buffers())
    assert ref.keys() == got.keys()
    for name, t in got.items():
        assert torch.isfinite(t).all(), name
        _same_law(ref[name], t, name)
    head = model.get_output_embeddings().weight
    assert (head is model.get_input_embeddings().weight) == (
        eager.get_output_embeddings().weight is eager.get_input_embeddings().weight)
    x = torch.randint(0, 1000, (1, 8))
    assert torch.isfinite(model(x).logits).all()


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_transformers_eager_under_patch(kind):
    """Every init call of the construction is routed (torch's generator never advances with a
    fastinit generator set), and the laws are the library's."""
    make = _hf_small(kind)
    torch.manual_seed(0)
    eager = make()
    state = torch.random.get_rng_state()
    with fastinit.patch(generator=2):
        model = make()
    assert torch.equal(torch.random.get_rng_state(), state)
    ref = eager.state_dict()
    for name, t in model.state_dict().items():
        _same_law(ref[name], t, name)
    import transformers.initialization as hf_init
    assert hf_init.TORCH_INIT_FUNCTIONS["normal_"] is ORIGINALS["normal_"]


# ----------------------------------------------------------------------------------------------
# timm (skipped when it is not importable, e.g. beside the pinned CPU torch in CI)


def _timm():
    try:
        import timm
    except Exception as e:  # ImportError, or torchvision failing to load beside this torch
        pytest.skip(f"timm is not importable here: {type(e).__name__}: {e}")
    return timm


@pytest.mark.parametrize("name", ["resnet18", "vit_tiny_patch16_224"])
def test_timm_materialize_and_patch_match_eager(name):
    timm = _timm()
    torch.manual_seed(0)
    eager = timm.create_model(name, pretrained=False)
    model = _meta(lambda: timm.create_model(name, pretrained=False))
    fastinit.materialize(model, device="cpu")
    state = torch.random.get_rng_state()
    with fastinit.patch(generator=4):
        patched = timm.create_model(name, pretrained=False)
    assert torch.equal(torch.random.get_rng_state(), state)
    ref = eager.state_dict()
    for built in (model, patched):
        for key, t in built.state_dict().items():
            assert not t.is_floating_point() or torch.isfinite(t).all(), key
            _same_law(ref[key], t, key)


def test_real_models_bench_section_runs_and_checks():
    """The benchmark section (fastinit.bench.real_models) on a tiny model: rows for both
    paths, every tensor finite and KS-equal to stock construction."""
    from fastinit.bench import real_models
    make = _hf_small("gpt2")
    rows = real_models.bench_model("gpt2-tiny", make, repeats=1)
    assert [r.case.split(" [")[0] for r in rows] == ["gpt2-tiny eager + patch",
                                                     "gpt2-tiny meta + materialize"]
    for r in rows:
        total = int(r.case.split("/")[1].split(" ")[0])
        assert f"[{total}/{total} tensors" in r.case
        assert {"fastinit", "torch", "fastinit p90", "torch p90"} <= r.seconds.keys()
    assert "speed-up" in real_models.format_rows(rows)
