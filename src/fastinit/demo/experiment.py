"""The demo's experiment: its settings, the inits, the digits data, the deep MLPs, and the one
measured batch at init (fastinit.watch) with its verdicts."""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Tuple

import numpy as np

ACTIVATIONS = ("tanh", "relu", "sigmoid")
SMALL, LARGE, LSUV = "N(0, 0.01²)", "N(0, 1)", "LSUV"
INIT_LABELS = (SMALL, LARGE, "LeCun", "Xavier", "Kaiming", "critical", LSUV)
#: what each init is, as printed (the critical gain depends on the activation: see critical_text)
INIT_TEXT = {
    SMALL: "normal_(w, 0, 0.01): the 'small random numbers' of early practice",
    LARGE: "normal_(w, 0, 1): unit variance, whatever the fan",
    "LeCun": "variance_scaling_(w, 1, 'fan_in', 'normal'): N(0, 1/fan_in)",
    "Xavier": "xavier_normal_(w): N(0, 2/(fan_in + fan_out)) (Glorot & Bengio 2010)",
    "Kaiming": "kaiming_normal_(w, nonlinearity='relu'): N(0, 2/fan_in) (He et al. 2015)",
    "critical": "variance_scaling_(w, g², 'fan_in', 'normal') with g = critical_gain(activation): "
                "the edge of chaos (Schoenholz et al. 2017)",
    LSUV: "lsuv_(model, batch): orthogonal, then each layer rescaled until its output has "
          "variance 1 on a batch of training images (Mishkin & Matas 2016)",
}
INIT_COLORS = {SMALL: "#d62728", LARGE: "#9467bd", "LeCun": "#ff7f0e", "Xavier": "#2ca02c",
               "Kaiming": "#1f77b4", "critical": "#8c564b", LSUV: "#e377c2"}
#: LeCun lies on Xavier (square layers), critical on LeCun (tanh) or Kaiming (ReLU): dashed, on top
INIT_STYLES = {"LeCun": "--", "critical": ":"}
CHANCE_LOSS = math.log(10.0)
#: training outcome by test accuracy at the end (chance: 10%): >= 80% "trained", >= 20%
#: "learning" (well above chance, not there yet), below "stuck"; a NaN/Inf loss is "diverged"
TRAINED_ACCURACY = 0.80
LEARNING_ACCURACY = 0.20


def critical_gain(activation: str) -> float:
    import fastinit
    return float(fastinit.critical_gain(activation))


def _init_fn(label: str, activation: str = "relu") -> Callable[[Any, Any], Any]:
    """The fill of one weight for an init (LSUV is a whole-model init: see build_mlp)."""
    import fastinit
    if label == SMALL:
        return lambda w, g: fastinit.normal_(w, 0.0, 0.01, generator=g)
    if label == LARGE:
        return lambda w, g: fastinit.normal_(w, 0.0, 1.0, generator=g)
    if label == "LeCun":
        return lambda w, g: fastinit.variance_scaling_(w, 1.0, "fan_in", "normal", generator=g)
    if label == "Xavier":
        return lambda w, g: fastinit.xavier_normal_(w, generator=g)
    if label == "Kaiming":
        return lambda w, g: fastinit.kaiming_normal_(w, nonlinearity="relu", generator=g)
    if label == "critical":
        gain = critical_gain(activation)
        return lambda w, g: fastinit.variance_scaling_(w, gain * gain, "fan_in", "normal",
                                                       generator=g)
    raise ValueError(f"unknown init {label!r}")


@dataclass
class Settings:
    depths: Tuple[int, ...] = (10, 50)
    width: int = 64
    batch: int = 64
    stats_batch: int = 256
    steps: int = 1000
    #: peak learning rate; None: 0.2 / depth (0.02 at depth 10, 0.004 at depth 50)
    lr: Optional[float] = None
    momentum: float = 0.9
    warmup: float = 0.05      # share of the steps with a linear warm-up; then cosine to 0
    evals: int = 20           # test-accuracy evaluations over training
    bins: int = 48
    seed: int = 0
    device: str = "cpu"
    inits: Tuple[str, ...] = INIT_LABELS
    activations: Tuple[str, ...] = ACTIVATIONS

    def lr_for(self, depth: int) -> float:
        return self.lr if self.lr is not None else 0.2 / depth


@dataclass
class Result:
    """One (depth, activation, init): per-layer numbers at init, verdicts, training."""

    depth: int
    activation: str
    init: str
    # per layer 0 (the input) .. depth, at init; activations of the nonlinearity
    act_std: List[float] = field(default_factory=list)       # spread across the batch
    act_total_std: List[float] = field(default_factory=list)  # over every element
    act_mean: List[float] = field(default_factory=list)
    act_zeros: List[float] = field(default_factory=list)      # share of exact zeros
    act_slope: List[float] = field(default_factory=list)      # tanh/sigmoid mean slope / max
    act_labels: List[str] = field(default_factory=list)
    # per layer 1 .. depth: the gradient dL/dh at the nonlinearity's output
    grad_std: List[float] = field(default_factory=list)
    grad_zeros: List[float] = field(default_factory=list)
    grad_labels: List[str] = field(default_factory=list)
    act_verdict: Any = None
    grad_verdict: Any = None
    act_hist: List[Any] = field(default_factory=list)
    grad_hist: List[Any] = field(default_factory=list)
    # training
    lr: float = math.nan
    losses: List[float] = field(default_factory=list)
    eval_steps: List[int] = field(default_factory=list)
    test_curve: List[float] = field(default_factory=list)
    test_accuracy: float = math.nan
    train_accuracy: float = math.nan

    @property
    def outcome(self) -> str:
        if self.losses and not all(math.isfinite(v) for v in self.losses):
            return "diverged"
        if not math.isfinite(self.test_accuracy):
            return "-"
        if self.test_accuracy >= TRAINED_ACCURACY:
            return "trained"
        if self.test_accuracy >= LEARNING_ACCURACY:
            return "learning"
        return "stuck"

    @property
    def final_loss(self) -> float:
        tail = self.losses[-max(1, len(self.losses) // 10):]
        return float(np.mean(tail)) if tail else math.nan

    @property
    def healthy_at_init(self) -> bool:
        return bool(self.act_verdict and self.grad_verdict
                    and self.act_verdict.label == self.grad_verdict.label == "healthy")


# ------------------------------------------------------------------------------------- data

@dataclass
class Data:
    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any


def load_data(seed: int, device: str) -> Data:
    """scikit-learn's bundled digits, standardised per pixel, split 80/20 by ``seed``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit("fastinit demo: the dataset comes with scikit-learn: pip install "
                         "scikit-learn") from None
    import torch
    digits = load_digits()
    x = digits.data.astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(round(0.8 * len(x)))
    tr, te = order[:cut], order[cut:]
    mean, std = x[tr].mean(0), x[tr].std(0)   # the training split's statistics, for both
    x = (x - mean) / np.where(std > 0, std, 1.0)
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
    return Data(as_t(x[tr]), as_t(y[tr]), as_t(x[te]), as_t(y[te]))


# ----------------------------------------------------------------------------------- models

def activation_module(activation: str) -> Any:
    import torch.nn as nn
    return {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}[activation]


def build_mlp(depth: int, width: int, activation: str, init: str, seed: int,
              device: str = "cpu", inputs: int = 64, classes: int = 10,
              batch: Any = None) -> Any:
    """``depth`` hidden layers (``fc1``, ``act1``, ...) and a Linear ``head``, after an
    ``nn.Identity`` named ``input`` (so that a watch sees the input too). Every weight is drawn by
    fastinit with ``fastinit.Generator(seed)`` (every init of one depth draws the same standard
    normals, scaled), biases zero; ``LSUV`` runs :func:`fastinit.lsuv_` on ``batch`` (inputs)."""
    import torch.nn as nn

    import fastinit
    act = activation_module(activation)
    layers: List[Tuple[str, Any]] = [("input", nn.Identity())]
    fan_in = inputs
    for i in range(depth):
        layers += [(f"fc{i + 1}", nn.Linear(fan_in, width)), (f"act{i + 1}", act())]
        fan_in = width
    layers.append(("head", nn.Linear(fan_in, classes)))
    model = nn.Sequential(OrderedDict(layers))
    linears = [m for m in model if isinstance(m, nn.Linear)]
    for m in linears:
        fastinit.zeros_(m.bias)
    if init == LSUV:
        if batch is None:
            raise ValueError("build_mlp: LSUV needs a batch of inputs")
        fastinit.lsuv_(model, batch, generator=fastinit.Generator(seed))
    else:
        gen = fastinit.Generator(seed)
        fill = _init_fn(init, activation)
        for m in linears:
            fill(m.weight, gen)
    return model.to(device)


# ------------------------------------------------------------------------------ measuring

def measure(result: Result, model: Any, x: Any, y: Any, bins: int) -> None:
    """Per-layer statistics of one batch forward and backward, under fastinit.watch (with the
    spread across the batch), and the verdicts on the nonlinearity's outputs (the input first:
    the reference of the activations; the last layer's gradient: that of the gradients)."""
    import torch.nn.functional as F

    from ..watch import watch
    from ..watch.verdicts import bounded_kind, mean_slope
    act_type = activation_module(result.activation)
    with watch(model, modules=["input", act_type], weights=False, bins=bins,
               batch_stats=True) as w:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    names = w.layers                       # input, act1, ..., actD
    acts, cen = w.records("activations"), w.records("centered")
    grads = w.records("gradients")
    v = w.verdicts(layers=names)
    result.act_verdict, result.grad_verdict = v["activations"], v["gradients"]
    bounded = bounded_kind(act_type.__name__)
    result.act_std = [cen[n].std for n in names]
    result.act_total_std = [acts[n].std for n in names]
    result.act_mean = [acts[n].mean for n in names]
    result.act_zeros = [acts[n].zeros / acts[n].count for n in names]
    result.act_slope = [mean_slope(bounded, acts[n].mean, acts[n].rms) if bounded and i
                        else math.nan for i, n in enumerate(names)]
    labels = {lv.name: lv.label for lv in v["activations"].per_layer}
    result.act_labels = [labels[n] for n in names]
    result.grad_std = [grads[n].std if n in grads else math.nan for n in names[1:]]
    result.grad_zeros = [grads[n].zeros / grads[n].count if n in grads else math.nan
                         for n in names[1:]]
    labels = {lv.name: lv.label for lv in v["gradients"].per_layer}
    result.grad_labels = [labels.get(n, "-") for n in names[1:]]
    if bins:
        ha, hg = w.histograms("activations"), w.histograms("gradients")
        result.act_hist = [_without_zeros(ha.get(n), acts[n].zeros) for n in names[1:]]
        result.grad_hist = [hg.get(n) for n in names[1:]]


def _without_zeros(h: Optional[Tuple[np.ndarray, np.ndarray]], zeros: int) -> Any:
    """An activation histogram with its exact zeros taken out of the bin that holds 0 (ReLU's
    spike at 0 would flatten everything else; the share of zeros is drawn on its own)."""
    if h is None or zeros == 0:
        return h
    counts, edges = h[0].astype(np.float64).copy(), h[1]
    j = int(np.clip(np.searchsorted(edges, 0.0, side="right") - 1, 0, len(counts) - 1))
    counts[j] = max(0.0, counts[j] - zeros)
    return counts, edges

