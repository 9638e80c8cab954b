"""fastinit.watch: per-layer statistics of activations, gradients and weights, checked against a
float64 reference computed from tensors captured independently of the watch (on fresh random
inputs), on every backend; in-place operations; sampling; exports; verdicts; plots."""
from __future__ import annotations

import csv
import io
import json
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

import fastinit
from fastinit.stats import DeferredStats, Stats
from fastinit.watch import (
    DEAD_SHARE,
    EXPLODING_RATIO,
    SATURATED_SLOPE,
    VANISHING_RATIO,
    Verdict,
    Watch,
    verdict,
    watch,
)


# ------------------------------------------------------------------------------- reference

def ref_stats(values) -> dict:
    v = np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in values]) \
        if isinstance(values, (list, tuple)) else np.asarray(values, dtype=np.float64).ravel()
    mean = math.fsum(v) / v.size
    var = math.fsum((v - mean) ** 2) / v.size
    return dict(count=v.size, mean=mean, std=math.sqrt(var), min=v.min(), max=v.max(),
                rms=math.sqrt(math.fsum(v * v) / v.size), zeros=int(np.count_nonzero(v == 0)),
                nans=int(np.isnan(v).sum()), infs=int(np.isinf(v).sum()))


def assert_close(s: Stats, ref: dict, rtol: float = 1e-9) -> None:
    assert s.count == ref["count"]
    assert s.zeros == ref["zeros"] and s.nans == ref["nans"] and s.infs == ref["infs"]
    assert s.min == ref["min"] and s.max == ref["max"]
    scale = max(abs(ref["mean"]), ref["std"], 1e-300)
    assert abs(s.mean - ref["mean"]) <= rtol * scale
    assert s.std == pytest.approx(ref["std"], rel=rtol)
    assert s.rms == pytest.approx(ref["rms"], rel=rtol)


class Capture:
    """Independent capture of module outputs (clones at forward time) and output gradients."""

    def __init__(self, modules: dict) -> None:
        self.out: dict = {}
        self.grad: dict = {}
        self.handles = []
        for name, m in modules.items():
            self.handles.append(m.register_forward_hook(self._hook(name)))

    def _hook(self, name):
        def fn(module, inputs, output):
            self.out.setdefault(name, []).append(output.detach().double().clone())
            if output.requires_grad:
                output.register_hook(lambda g: self.grad.setdefault(name, []).append(g.double().clone()))
        return fn

    def remove(self):
        for h in self.handles:
            h.remove()


def mlp(rng, widths=(12, 16, 16, 8), act=nn.Tanh, inplace=False) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        lin = nn.Linear(a, b)
        fastinit.normal_(lin.weight, std=1.0 / math.sqrt(a), generator=int(rng.integers(1 << 62)))
        fastinit.normal_(lin.bias, std=0.1, generator=int(rng.integers(1 << 62)))
        layers.append(lin)
        if i < len(widths) - 2:
            layers.append(act(inplace=True) if inplace else act())
    return nn.Sequential(*layers)


def batch(rng, n=10, d=12):
    return torch.from_numpy(rng.standard_normal((n, d)).astype(np.float32))


# ---------------------------------------------------------------------------- correctness

def test_activations_gradients_weights_match_reference(rng):
    model = mlp(rng)
    leaves = {n: m for n, m in model.named_modules() if n}
    cap = Capture(leaves)
    weights_before = {n: p.detach().double().clone() for n, p in model.named_parameters()}
    x = batch(rng)
    target = torch.from_numpy(rng.standard_normal((10, 8)).astype(np.float32))
    with watch(model) as w:
        ((model(x) - target) ** 2).mean().backward()
    cap.remove()
    assert w.steps == [0]
    assert w.layers == ["0", "1", "2", "3", "4"]
    acts, grads, wts = w.records("activations"), w.records("gradients"), w.records("weights")
    assert list(acts) == w.layers and list(grads) == w.layers
    for name in w.layers:
        assert_close(acts[name], ref_stats(cap.out[name]))
        assert_close(grads[name], ref_stats(cap.grad[name]))
    assert set(wts) == set(weights_before)
    for name, value in weights_before.items():
        assert_close(wts[name], ref_stats(value))


def test_steps_every_and_merged_steps(rng):
    model = mlp(rng)
    cap = Capture({"2": model[2]})
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    weights = []
    with watch(model, every=3, modules=["2", "0"]) as w:
        for _ in range(7):
            weights.append(model[0].weight.detach().double().clone())
            model(batch(rng)).square().mean().backward()
            opt.step()
            opt.zero_grad()
    assert w.steps == [0, 3, 6] and w.step == 6
    assert w.layers == ["0", "2"]
    for step in (0, 3, 6):
        assert_close(w.records("activations", step)["2"], ref_stats(cap.out["2"][step]))
        assert_close(w.records("gradients", step)["2"], ref_stats(cap.grad["2"][step]))
        assert_close(w.records("weights", step)["0.weight"], ref_stats(weights[step]))
    # the records of every recorded step together, as if one tensor
    merged = w.records("activations", step="all")["2"]
    assert_close(merged, ref_stats([cap.out["2"][s] for s in (0, 3, 6)]))
    assert w.records("gradients", step=-2)["2"].std == w.records("gradients", step=3)["2"].std
    with pytest.raises(KeyError, match="step 4 is not recorded"):
        w.records("activations", step=4)


def test_inplace_relu_records_the_values_each_module_returned(rng):
    """A Linear followed by ReLU(inplace=True): the Linear's record is its output before the
    ReLU rewrote it, and its gradient is that of the pre-activation, as in the same model
    without in-place ops."""
    seed = int(rng.integers(1 << 30))
    torch.manual_seed(seed)
    plain = mlp(np.random.default_rng(seed), act=nn.ReLU)
    inplace = mlp(np.random.default_rng(seed), act=nn.ReLU, inplace=True)
    x = batch(rng)
    recs = []
    for model in (plain, inplace):
        with watch(model, weights=False) as w:
            model(x).sum().backward()
        recs.append((w.records("activations"), w.records("gradients")))
    (a0, g0), (a1, g1) = recs
    assert list(a0) == list(a1)
    for name in a0:
        assert_close(a1[name], ref_stats([]) if False else _as_ref(a0[name]), rtol=1e-12)
        assert_close(g1[name], _as_ref(g0[name]), rtol=1e-12)
    assert a1["0"].min < 0 and a1["0"].zeros == 0     # not rectified
    assert a1["1"].min == 0 and a1["1"].zeros > 0     # rectified


def _as_ref(s: Stats) -> dict:
    return dict(count=s.count, mean=s.mean, std=s.std, min=s.min, max=s.max, rms=s.rms,
                zeros=s.zeros, nans=s.nans, infs=s.infs)


class Doubler(nn.Module):
    """A Linear whose output the parent rewrites in place (outside any inplace=True module)."""

    def __init__(self, lin: nn.Linear) -> None:
        super().__init__()
        self.lin = lin

    def forward(self, x):
        y = self.lin(x)
        y.mul_(2.0)
        return y


def test_out_of_module_inplace_write_is_detected_and_then_handled(rng):
    lin = nn.Linear(12, 6)
    model = Doubler(lin)
    cap = Capture({"lin": lin})
    with watch(model, modules=["lin"], weights=False) as w:
        with pytest.warns(RuntimeWarning, match="modified in place"):
            with torch.no_grad():
                model(batch(rng))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with torch.no_grad():
                model(batch(rng))
    assert w.records("activations", 0) == {}          # dropped, not wrong
    rec = w.records("activations", 1)["lin"]
    assert_close(rec, ref_stats(cap.out["lin"][1]))   # reduced eagerly: before the doubling


def test_shared_module_merged_or_per_call(rng):
    lin1, lin2 = nn.Linear(12, 9), nn.Linear(9, 5)
    act = nn.Tanh()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin1, self.lin2, self.act = lin1, lin2, act

        def forward(self, x):
            return self.act(self.lin2(self.act(self.lin1(x))))

    model = Net()
    cap = Capture({"act": act})
    x = batch(rng)
    with watch(model, modules=[nn.Tanh]) as merged:
        model(x).sum().backward()
    with watch(model, modules=[nn.Tanh], per_call=True) as split:
        model(x).sum().backward()
    cap.remove()
    first, second = cap.out["act"][0], cap.out["act"][1]
    assert_close(merged.records()["act"], ref_stats([first, second]))
    assert split.layers == ["act", "act#1"]
    assert_close(split.records()["act"], ref_stats(first))
    assert_close(split.records()["act#1"], ref_stats(second))
    # gradients: the second call's output gradient comes first in backward, but keeps its row
    g = split.records("gradients")
    assert_close(g["act#1"], ref_stats(cap.grad["act"][2]))
    assert_close(g["act"], ref_stats(cap.grad["act"][3]))


def test_no_grad_small_buffer_and_history(rng):
    model = mlp(rng)
    cap = Capture({"2": model[2]})
    with watch(model, buffer_bytes=0, history=2) as w, torch.no_grad():
        for _ in range(4):
            model(batch(rng))
    assert w.steps == [2, 3]
    assert w.records("gradients", 3) == {}
    assert_close(w.records("activations", 2)["2"], ref_stats(cap.out["2"][2]))
    assert w.table()[0]["grad_std"] is None


@pytest.mark.backends("numpy")
def test_records_stay_raw_until_read(monkeypatch, rng):
    """No conversion to Python numbers and no .item() while the model runs: the accumulators
    are kept as DeferredStats and read all at once."""
    model = mlp(rng)
    calls = {"from_raw": 0, "item": 0}
    from_raw = Stats.from_raw.__func__
    item = torch.Tensor.item

    def counting_from_raw(cls, *a, **k):
        calls["from_raw"] += 1
        return from_raw(cls, *a, **k)

    def counting_item(self):
        calls["item"] += 1
        return item(self)

    monkeypatch.setattr(Stats, "from_raw", classmethod(counting_from_raw))
    monkeypatch.setattr(torch.Tensor, "item", counting_item)
    w = watch(model)
    for _ in range(3):
        model(batch(rng)).square().sum().backward()
    assert calls == {"from_raw": 0, "item": 0}
    stored = [c[1] for s in w._steps.values() for chunks in s.chunks.values() for c in chunks]
    assert stored and all(isinstance(d, DeferredStats) for d in stored)
    # one batched reduction per kind and step for this model (no in-place modules)
    assert all(len(chunks) == 1 for s in w._steps.values() for chunks in s.chunks.values())
    w.table()
    assert calls["from_raw"] > 0
    w.remove()


# ------------------------------------------------------------------------------ histograms

def test_histograms_fixed_ranges_match_numpy(rng):
    model = mlp(rng)
    cap = Capture({"1": model[1], "2": model[2]})
    with watch(model, bins=16, act_range=(-1.0, 1.0), grad_range=(-6.0, 0.0)) as w:
        model(batch(rng, n=40)).square().mean().backward()
    cap.remove()
    ha, hg = w.histograms("activations"), w.histograms("gradients")
    for name in ("1", "2"):
        a = cap.out[name][0].numpy().ravel()
        counts, edges = np.histogram(a, 16, range=(-1.0, 1.0))
        np.testing.assert_array_equal(ha[name][0], counts)
        np.testing.assert_allclose(ha[name][1], edges)
        g = np.abs(cap.grad[name][0].float().numpy().ravel())
        with np.errstate(divide="ignore"):
            logs = np.log10(g).astype(np.float64)
        counts, _ = np.histogram(logs[np.isfinite(logs)], 16, range=(-6.0, 0.0))
        # log10 computed in float32 by torch and numpy may differ in the last bit: allow an
        # element to move to a neighbouring bin
        assert np.abs(hg[name][0] - counts).sum() <= 2
        assert hg[name][0].sum() == pytest.approx(counts.sum(), abs=0)


def test_histograms_default_ranges_cover_each_layer(rng):
    model = mlp(rng, act=nn.ReLU)
    cap = Capture({"1": model[1]})
    with watch(model, bins=8) as w:
        model(batch(rng)).sum().backward()
    counts, edges = w.histograms("activations")["1"]
    out = cap.out["1"][0].numpy()
    assert edges[0] == out.min() == 0.0 and edges[-1] == out.max()
    assert counts.sum() == out.size
    with pytest.raises(ValueError, match="weights have no histograms"):
        w.histograms("weights")


# --------------------------------------------------------------------------------- verdicts

@pytest.mark.backends("numpy")
def test_verdict_function():
    assert verdict([1.0, 0.1, 1e-3]).label == "vanishing"
    assert verdict([1.0, 10.0, 1e3]).label == "exploding"
    assert verdict([1.0, 0.5, 0.02]).label == "healthy"
    assert verdict([1.0, math.inf]).label == "exploding"
    assert verdict([1.0, math.nan, 1.0]).label == "exploding"
    assert verdict([0.0, 1.0]).label == "n/a" and verdict([1.0]).label == "n/a"
    v = verdict([2.0, 1.0, 0.01])
    assert isinstance(v, Verdict) and v.ratio == pytest.approx(0.005) and v.layers == 3
    # just inside / outside the thresholds
    assert verdict([1.0, VANISHING_RATIO * 1.01]).label == "healthy"
    assert verdict([1.0, VANISHING_RATIO * 0.99]).label == "vanishing"
    assert verdict([1.0, EXPLODING_RATIO * 1.01]).label == "exploding"
    assert verdict([1.0, 1e-3], vanishing=1e-4).label == "healthy"
    with pytest.raises(ValueError):
        verdict([1.0, 2.0], vanishing=10.0, exploding=1.0)


def deep(rng, depth, width, act, init):
    layers = []
    for _ in range(depth):
        lin = nn.Linear(width, width)
        g = int(rng.integers(1 << 62))
        if init == "small":
            fastinit.normal_(lin.weight, 0.0, 0.01, generator=g)
        elif init == "unit":
            fastinit.normal_(lin.weight, 0.0, 1.0, generator=g)
        else:
            fastinit.kaiming_normal_(lin.weight, nonlinearity="relu", generator=g)
        fastinit.zeros_(lin.bias)
        layers += [lin, act()]
    return nn.Sequential(*layers)


@pytest.mark.parametrize("act, init, expected", [
    (nn.Tanh, "small", "vanishing"),     # N(0, 0.01²): x0.01·sqrt(64) per layer
    (nn.ReLU, "kaiming", "healthy"),     # He init keeps the variance
    (nn.ReLU, "unit", "exploding"),      # N(0, 1): x sqrt(64 / 2) per layer
])
def test_verdicts_on_deep_nets(rng, act, init, expected):
    model = deep(rng, 20, 64, act, init)
    model.append(nn.Linear(64, 64))            # a head: more Linears than nonlinearities
    with watch(model, weights=False) as w:
        model(batch(rng, n=64, d=64)).square().mean().backward()
    v = w.verdicts()
    assert v["activations"].label == expected
    assert v["gradients"].label == expected
    # judged by default: the 21 weight layers and the 20 nonlinearities (each group against
    # its own first layer), in forward order for the activations
    names = [lv.name for lv in v["activations"].per_layer]
    assert names == [str(i) for i in range(41)]
    assert [lv.name for lv in v["gradients"].per_layer] == names[::-1]
    assert "verdict: activations " + expected in w.report()
    # an explicit profile: the nonlinearities' outputs, the first being the reference
    acts = w.verdicts(layers=[act])["activations"]
    stds = [w.records()[str(i)].std for i in range(1, 40, 2)]
    assert acts.layers == 20 and acts.label == expected
    assert acts.ratio == pytest.approx(stds[-1] / stds[0])
    for lv, std in zip(acts.per_layer, stds):
        assert lv.ratio == pytest.approx(std / stds[0])
    # or the Linear outputs of the stack (not the head, whose default-init bias sets its scale)
    lin = w.verdicts(layers=[str(i) for i in range(0, 40, 2)])
    assert lin["activations"].layers == 20 and lin["activations"].label == expected


@pytest.mark.backends("numpy")
def test_layer_verdicts_dead_and_saturated_thresholds():
    # dead: the share of exact zeros, at the threshold and just below it
    v = verdict([1.0, 1.0, 1.0], zeros=[0.5, DEAD_SHARE, DEAD_SHARE - 1e-9])
    assert [lv.label for lv in v.per_layer] == ["healthy", "dead", "healthy"]
    assert v.label == "dead" and v.counts == {"healthy": 2, "dead": 1} and v.first == "layer 2"
    # saturated: the mean slope over its maximum, below the threshold
    v = verdict([0.9, 0.9, 0.9], slopes=[SATURATED_SLOPE, SATURATED_SLOPE * 0.99, 0.8])
    assert [lv.label for lv in v.per_layer] == ["healthy", "saturated", "healthy"]
    assert str(v) == "saturated (1 of 3 layers)"
    # the order: exploding before vanishing before dead before saturated
    v = verdict([1.0, 1e-3, 1.0, 1e3], zeros=[0, 0, 1.0, 0], slopes=[0.1, 1, 1, 1])
    assert [lv.label for lv in v.per_layer] == ["saturated", "vanishing", "dead", "exploding"]
    assert v.label == "exploding" and v.low == pytest.approx(1e-3) and v.high == 1e3
    assert verdict([1.0, 1e-3, 1.0]).label == "vanishing"
    assert verdict([1.0, 0.0]).label == "vanishing" and "to 0" in str(verdict([1.0, 0.0]))
    with pytest.raises(ValueError, match="zeros has 1 values for 2 layers"):
        verdict([1.0, 1.0], zeros=[0.0])


@pytest.mark.backends("numpy")
def test_mean_slope_from_mean_and_rms(rng):
    from fastinit.watch.verdicts import mean_slope
    for scale in (0.1, 1.0, 5.0):
        z = rng.standard_normal(100_000) * scale
        for kind, f, df, top in (("tanh", np.tanh, lambda h: 1 - h * h, 1.0),
                                 ("sigmoid", lambda x: 1 / (1 + np.exp(-x)),
                                  lambda h: h * (1 - h), 0.25)):
            h = f(z)
            got = mean_slope(kind, float(h.mean()), float(np.sqrt(np.mean(h * h))))
            assert got == pytest.approx(float(np.mean(df(h))) / top, rel=1e-9, abs=1e-12)
    with pytest.raises(ValueError):
        mean_slope("relu", 0.0, 1.0)


def test_saturation_and_dead_layers_in_a_watched_net(rng):
    torch.manual_seed(int(rng.integers(1 << 31)))
    model = nn.Sequential(nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(),
                          nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 8))
    with torch.no_grad():
        for i in (0, 2):
            model[i].weight.normal_(0, 3.0)         # pre-activations of std ~17: saturated tanh
        model[4].bias.fill_(-100.0)                 # every ReLU input negative: dead
    with watch(model, weights=False) as w:
        model(batch(rng, n=64, d=32)).sum().backward()
    v = w.verdicts()["activations"]
    labels = {lv.name: lv.label for lv in v.per_layer}
    assert labels["1"] == labels["3"] == "saturated" and labels["5"] == "dead"
    assert v.counts["saturated"] == 2 and v.counts["dead"] == 1
    # nothing passes the dead layer: the head's output is its bias, the same for every input
    assert labels["6"] == "vanishing" and v.label == "vanishing" and v.first == "6"
    acts = w.records()
    assert dict((lv.name, lv.slope) for lv in v.per_layer)["1"] == pytest.approx(
        1 - acts["1"].rms ** 2)


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.ln, self.fc, self.act = nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.GELU()
        self.proj, self.drop = nn.Linear(4 * d, d), nn.Dropout(0.1)

    def forward(self, x):
        return x + self.drop(self.proj(self.act(self.fc(self.ln(x)))))


class Gpt(nn.Module):
    """A GPT-2-like toy: an embedding, blocks (LayerNorm, Linear, GELU, Linear, Dropout on the
    residual stream), a final LayerNorm and a head."""

    def __init__(self, blocks=3, d=16, vocab=50):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.h = nn.ModuleList(Block(d) for _ in range(blocks))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, ids):
        x = self.wte(ids)
        for b in self.h:
            x = b(x)
        return self.head(self.ln_f(x))


def test_verdicts_judge_the_layers_that_matter_not_dropout(rng):
    torch.manual_seed(int(rng.integers(1 << 31)))
    model = Gpt()
    ids = torch.from_numpy(rng.integers(0, 50, (4, 12)))
    with watch(model, weights=False) as w:
        torch.nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten()).backward()
    assert any(n.endswith("drop") for n in w.layers)
    v = w.verdicts()
    judged = [lv.name for lv in v["activations"].per_layer]
    assert judged == ["wte"] + [f"h.{i}.{m}" for i in range(3) for m in ("fc", "act", "proj")] \
        + ["head"]
    assert w.select() == ["wte"] + [f"h.{i}.{m}" for i in range(3) for m in ("fc", "proj")] \
        + ["head"]
    # the gradient reference is not the head's output gradient (the loss's own dL/dlogits)
    g = {lv.name: lv for lv in v["gradients"].per_layer}
    grads = w.records("gradients")
    assert g["h.2.proj"].ratio == pytest.approx(1.0)
    assert g["head"].ratio == pytest.approx(grads["head"].std / grads["h.2.proj"].std)
    # Dropout can still be judged when asked for
    assert w.verdicts(layers=[nn.Dropout])["activations"].layers == 3


@pytest.mark.backends("numpy")
def test_name_patterns_match_one_component_per_star():
    model = Gpt()
    names = lambda sel: [n for n, _ in Watch._select(model, sel)]  # noqa: E731
    assert names("h.*") == ["h.0", "h.1", "h.2"]                  # the blocks, not their insides
    assert names("h.*.fc") == ["h.0.fc", "h.1.fc", "h.2.fc"]
    assert names("**.fc") == ["h.0.fc", "h.1.fc", "h.2.fc"]
    assert names("h.1.**") == ["h.1.ln", "h.1.fc", "h.1.act", "h.1.proj", "h.1.drop"]
    assert names("h.[02]") == ["h.0", "h.2"]
    assert names("h.?.ln") == ["h.0.ln", "h.1.ln", "h.2.ln"]
    assert names("*") == ["wte", "h", "ln_f", "head"]
    assert names("head") == ["head"]
    assert len(names("all")) == len(list(model.modules()))
    with pytest.raises(ValueError, match=r"'\*' stays within one name component"):
        watch(model, modules=["*.fc"])
    # a block-level watch records each block's output: the residual stream
    with watch(model, modules="h.*", weights=False) as w:
        model(torch.zeros(2, 5, dtype=torch.long)).sum().backward()
    assert w.layers == ["h.0", "h.1", "h.2"]
    with pytest.raises(KeyError, match="only hooked modules are recorded"):
        w.select("h.*.fc")


@pytest.mark.parametrize("reentrant", [True, False])
def test_checkpointed_recomputation_is_not_counted_twice(rng, reentrant):
    from torch.utils.checkpoint import checkpoint

    class Net(nn.Module):
        def __init__(self, ckpt):
            super().__init__()
            self.ckpt = ckpt
            self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(12, 12), nn.Tanh())
                                        for _ in range(3))
            self.head = nn.Linear(12, 4)

        def forward(self, x):
            for b in self.blocks:
                x = checkpoint(b, x, use_reentrant=reentrant) if self.ckpt else b(x)
            return self.head(x)

    torch.manual_seed(int(rng.integers(1 << 31)))
    plain, ckpt = Net(False), Net(True)
    ckpt.load_state_dict(plain.state_dict())
    x = batch(rng).requires_grad_(reentrant)     # reentrant checkpoints need an input with grad
    recs = []
    for model in (plain, ckpt):
        with watch(model, weights=False, modules="all") as w:
            model(x).square().sum().backward()
            model(x).square().sum().backward()
        assert w.steps == [0, 1]
        recs.append((w.records("activations"), w.records("gradients")))
    (a0, g0), (a1, g1) = recs
    assert list(a0) == list(a1) and set(g0) == set(g1)
    for name in a0:
        assert a1[name].count == a0[name].count, name          # not doubled
        assert_close(a1[name], _as_ref(a0[name]), rtol=1e-6)
    for name in g0:
        assert g1[name].count == g0[name].count, name
        assert_close(g1[name], _as_ref(g0[name]), rtol=1e-6)


def test_batch_stats_record_the_spread_across_the_batch(rng):
    model = mlp(rng, act=nn.Sigmoid)
    cap = Capture({"1": model[1]})
    with watch(model, batch_stats=True, weights=False) as w:
        model(batch(rng, n=16)).sum().backward()
    out = cap.out["1"][0]
    o32 = out.float()                     # centered as the watch does, in the output's dtype
    assert_close(w.records("centered")["1"], ref_stats(o32 - o32.mean(0, keepdim=True)))
    spread = float((out - out.mean(0, keepdim=True)).square().mean().sqrt())
    assert w.records("centered")["1"].rms == pytest.approx(spread, rel=1e-6)
    assert_close(w.records("activations")["1"], ref_stats(out))
    # a sigmoid layer whose units are constants plus offsets: healthy by total std, vanishing
    # by the spread across the batch
    lin = nn.Linear(8, 8)
    with torch.no_grad():
        lin.weight.mul_(1e-6)
        lin.bias.normal_(0, 1.0)
    net = nn.Sequential(nn.Linear(8, 8), nn.Sigmoid(), lin, nn.Sigmoid())
    x = batch(rng, n=32, d=8)
    for stats, expected in ((False, "healthy"), (True, "vanishing")):
        with watch(net, batch_stats=stats, weights=False) as w:
            net(x).sum().backward()
        assert w.verdicts(layers=[nn.Sigmoid])["activations"].label == expected


# ------------------------------------------------------------------------- reading, export

def test_table_report_json_csv(rng, tmp_path):
    model = mlp(rng)
    with watch(model, every=2, bins=4) as w:
        for _ in range(3):
            model(batch(rng)).square().sum().backward()
    rows = w.table()
    acts, grads = w.records("activations"), w.records("gradients")
    assert [r["layer"] for r in rows] == w.layers
    assert rows[0]["type"] == "Linear" and rows[1]["type"] == "Tanh"
    assert rows[0]["act_std"] == acts["0"].std and rows[3]["grad_rms"] == grads["3"].rms
    assert rows[0]["weight_std"] == w.records("weights")["0.weight"].std
    assert rows[1]["weight_std"] is None
    text = w.report()
    assert "step 2" in text and all(name in text for name in ("Linear", "Tanh", "verdict"))

    doc = json.loads(w.to_json(str(tmp_path / "w.json")))
    assert json.loads((tmp_path / "w.json").read_text()) == doc
    assert [s["step"] for s in doc["steps"]] == [0, 2]
    last = doc["steps"][-1]
    assert last["activations"]["2"]["std"] == acts["2"].std
    assert last["gradients"]["2"]["mean"] == grads["2"].mean
    assert sum(last["activations"]["2"]["hist"]) == acts["2"].count
    assert len(last["gradients"]["2"]["edges"]) == 5 and doc["hist_of"]["gradients"] == "log10|g|"

    text = w.to_csv(str(tmp_path / "w.csv"))
    table = list(csv.DictReader(io.StringIO(text)))
    n_params = len(list(model.parameters()))
    assert len(table) == 2 * (2 * len(w.layers) + n_params)
    row = next(r for r in table if r["step"] == "2" and r["kind"] == "gradients" and r["layer"] == "3")
    assert float(row["std"]) == grads["3"].std and int(row["count"]) == grads["3"].count
    assert (tmp_path / "w.csv").read_text() == text


def test_series_over_steps(rng):
    model = mlp(rng)
    cap = Capture({"4": model[4]})
    with watch(model) as w:
        for _ in range(3):
            model(batch(rng)).sum().backward()
    steps, names, values = w.series("activations", "std")
    assert list(steps) == [0, 1, 2] and names == w.layers
    for i in range(3):
        assert values[i, names.index("4")] == pytest.approx(ref_stats(cap.out["4"][i])["std"], rel=1e-9)


@pytest.mark.backends("numpy")
def test_plot_writes_png(rng, tmp_path):
    pytest.importorskip("matplotlib")
    model = mlp(rng)
    with watch(model, bins=8) as w:
        model(batch(rng)).sum().backward()
    path = w.plot(str(tmp_path / "watch.png"))
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


@pytest.mark.backends("numpy")
def test_log_axes_survive_exact_zeros_and_underflow():
    pytest.importorskip("matplotlib")
    from fastinit.watch.charts import figure, log_curves, name_axis
    fig = figure(4, 3)
    ax = fig.subplots()
    x = np.arange(6)
    values = [1.0, 0.5, 0.0, 1e-30, np.nan, 1e30]
    lo, hi = log_curves(ax, x, {"a": values}, {"a": "red"}, band=(1e-2, 1e2))
    assert ax.get_yscale() == "log" and 0 < lo < 1e-2 and hi > 1e2
    assert hi / lo <= 10.0 ** 12 * 1.0001          # clipped: 1e±30 do not flatten the rest
    markers = [ln for ln in ax.lines if ln.get_linestyle() == "None"]
    got = {(ln.get_marker(), ln.get_mfc() == "white"): list(ln.get_xdata()) for ln in markers}
    assert got == {("v", False): [2], ("v", True): [3], ("^", True): [5], ("^", False): [4]}
    for ln in markers:   # on the edges of the axis, not off it
        y = ln.get_ydata()[0]
        assert lo < y < hi and (y < lo * 2 or y > hi / 2)
    curve = next(ln for ln in ax.lines if ln.get_linestyle() == "-")
    assert np.isnan(curve.get_ydata()[2:]).all() and list(curve.get_ydata()[:2]) == [1.0, 0.5]
    # 200 layer names: at most 60 labelled, each a name (long ones keep their tail)
    names = [f"encoder.layers.{i}.attention.output.dense" for i in range(200)]
    name_axis(ax, names)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert 30 <= len(labels) <= 60 and all(lab.endswith("attention.output.dense") for lab in labels)


def test_plot_a_200_module_model_with_zero_gradients(rng, tmp_path):
    pytest.importorskip("matplotlib")

    class Res(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.fc1, self.bn1, self.act = nn.Linear(d, d), nn.BatchNorm1d(d), nn.ReLU()
            self.fc2, self.bn2 = nn.Linear(d, d), nn.BatchNorm1d(d)
            nn.init.zeros_(self.bn2.weight)         # zero-init last norm: the branch starts off

        def forward(self, x):
            return torch.relu(x + self.bn2(self.fc2(self.act(self.bn1(self.fc1(x))))))

    torch.manual_seed(int(rng.integers(1 << 31)))
    model = nn.Sequential(nn.Linear(16, 16), *[Res(16) for _ in range(40)], nn.Linear(16, 4))
    with watch(model, bins=16) as w:
        model(batch(rng, n=8, d=16)).sum().backward()
    assert len(w.layers) == 2 + 40 * 5 and len(w.select()) == 2 + 40 * 2
    g = w.records("gradients")
    assert g["1.fc1"].std == 0.0 and g["1.fc1"].zeros == g["1.fc1"].count   # the branch: 0
    v = w.verdicts()["gradients"]
    assert v.label == "vanishing" and "to 0" in str(v)
    for path, layers in (("default.png", None), ("all.png", "all")):
        out = w.plot(str(tmp_path / path), layers=layers)
        assert open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_plot_steps_draws_statistics_over_training(rng, tmp_path):
    pytest.importorskip("matplotlib")
    model = mlp(rng, act=nn.ReLU)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with watch(model, bins=12, every=2) as w:
        for _ in range(9):
            model(batch(rng)).square().mean().backward()
            opt.step()
            opt.zero_grad()
    assert w.steps == [0, 2, 4, 6, 8]
    for kind in ("activations", "gradients"):
        path = w.plot_steps(str(tmp_path / f"{kind}.png"), kind=kind, layers="all")
        data = open(path, "rb").read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    with pytest.raises(ValueError, match="activations' or 'gradients"):
        w.plot_steps(str(tmp_path / "w.png"), kind="weights")


# ------------------------------------------------------------------------- filters, errors

@pytest.mark.backends("numpy")
def test_module_filters_and_errors(rng):
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4), nn.ReLU()), nn.Linear(4, 2))
    assert [n for n, _ in Watch._select(model, None)] == ["0", "1.0", "1.1", "2"]
    assert [n for n, _ in Watch._select(model, [nn.ReLU])] == ["1.1"]
    assert [n for n, _ in Watch._select(model, ["1.*", "2"])] == ["1.0", "1.1", "2"]
    assert [n for n, _ in Watch._select(model, lambda n, m: n == "1")] == ["1"]
    with pytest.raises(ValueError, match="no module of the model is named 'fc9'"):
        watch(model, modules=["fc9"])
    with pytest.raises(ValueError, match="selected no module"):
        watch(model, modules=[nn.Conv2d])
    with pytest.raises(TypeError, match="torch.nn.Module"):
        watch(torch.zeros(3))
    with pytest.raises(ValueError, match="every"):
        watch(model, every=0)
    with pytest.raises(ValueError, match="need bins > 0"):
        watch(model, act_range=(-1, 1))
    with pytest.raises(ValueError, match="lo < hi"):
        watch(model, bins=4, grad_range=(1, -1))
    with pytest.raises(ValueError, match="nothing to record"):
        watch(model, activations=False, gradients=False, weights=False)
    w = watch(model)
    with pytest.raises(RuntimeError, match="nothing recorded yet"):
        w.table()
    with pytest.raises(ValueError, match="kind must be one of"):
        w.records("outputs")
    w.remove()
    model(torch.zeros(2, 4))
    assert w.step == -1             # the hooks are gone


def test_pending_flush_before_read_mid_step(rng):
    """Reading between forward and backward sees the forward's activations; the backward's
    gradients then join the same step."""
    model = mlp(rng)
    cap = Capture({"3": model[3]})
    w = watch(model)
    out = model(batch(rng))
    assert_close(w.records("activations")["3"], ref_stats(cap.out["3"][0]))
    assert w.records("gradients") == {}
    out.sum().backward()
    assert_close(w.records("gradients")["3"], ref_stats(cap.grad["3"][0]))
    w.remove()


def test_host_records_gathers_device_parts_in_one_copy(rng):
    """_host_records concatenates the accumulators left on a device and copies them once; here
    the 'device' parts are torch CPU tensors (what the CUDA and torch paths hold)."""
    from fastinit.watch.records import _host_records
    a = [torch.from_numpy(rng.standard_normal(n).astype(np.float32)) for n in (5, 17, 3)]
    b = [torch.from_numpy(rng.standard_normal(n).astype(np.float32)) for n in (8, 2)]
    deferred = [fastinit.stats_async(a), fastinit.stats_async(b, bins=4, range=(-1.0, 1.0)),
                fastinit.stats_async(a[:1])]
    expected = [d.raw() for d in deferred]
    for d in deferred:
        for p in d._parts:
            p.raw = torch.from_numpy(np.array(p.raw))   # as if on a device
            assert p.on_device()
    got = _host_records(deferred)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


@pytest.mark.cuda
@pytest.mark.backends("native")
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_watch_on_cuda_matches_cpu_reference(rng):
    model = mlp(rng).cuda()
    cap = Capture({n: m for n, m in model.named_modules() if n})
    x = batch(rng).cuda()
    with watch(model, bins=8, act_range=(-2.0, 2.0)) as w:
        for _ in range(2):
            model(x).square().mean().backward()
    stored = [c[1] for s in w._steps.values() for chunks in s.chunks.values() for c in chunks]
    assert all(isinstance(d, DeferredStats) for d in stored)
    acts, grads = w.records("activations"), w.records("gradients")
    for name in w.layers:
        assert_close(acts[name], ref_stats(cap.out[name][1].cpu()))
        assert_close(grads[name], ref_stats(cap.grad[name][1].cpu()))
        counts, _ = np.histogram(cap.out[name][1].cpu().numpy(), 8, range=(-2.0, 2.0))
        np.testing.assert_array_equal(w.histograms()[name][0], counts)


def test_weights_only_watch(rng):
    model = mlp(rng)
    with watch(model, activations=False, gradients=False) as w:
        model(batch(rng))
    rows = w.table()
    assert [r["layer"] for r in rows] == ["0", "2", "4"]
    for r in rows:
        ref = ref_stats(model[int(r["layer"])].weight.detach())
        assert r["weight_std"] == pytest.approx(ref["std"], rel=1e-9)
        assert r["act_std"] is None and r["grad_std"] is None
    assert "weight std" in w.report() and "verdict" not in w.report()
