"""The demo's experiment: its settings, the digits data, deep MLPs under each init, one measured
batch at init (fastinit.watch), and side-by-side training."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, List, Sequence, Tuple

import numpy as np

ACTIVATIONS = ("tanh", "relu", "sigmoid")
INIT_LABELS = ("N(0, 0.01²)", "LeCun", "Xavier", "Kaiming")
INIT_COLORS = {"N(0, 0.01²)": "#d62728", "LeCun": "#ff7f0e", "Xavier": "#2ca02c",
               "Kaiming": "#1f77b4"}
INIT_STYLES = {"LeCun": "--"}  # LeCun lies on Xavier where fan_in == fan_out: dashed, on top
CHANCE_LOSS = math.log(10.0)
#: training outcome by test accuracy at the end (chance: 10%): >= 80% "trained", >= 20%
#: "learning" (well above chance, not there yet), below "stuck"; a NaN/Inf loss is "diverged"
TRAINED_ACCURACY = 0.80
LEARNING_ACCURACY = 0.20


def _init_fn(label: str) -> Callable[[Any, Any], Any]:
    import fastinit
    if label == "N(0, 0.01²)":
        return lambda w, g: fastinit.normal_(w, 0.0, 0.01, generator=g)
    if label == "LeCun":
        return lambda w, g: fastinit.variance_scaling_(w, 1.0, "fan_in", "normal", generator=g)
    if label == "Xavier":
        return lambda w, g: fastinit.xavier_normal_(w, generator=g)
    if label == "Kaiming":
        return lambda w, g: fastinit.kaiming_normal_(w, nonlinearity="relu", generator=g)
    raise ValueError(f"unknown init {label!r}")


@dataclass
class Settings:
    depths: Tuple[int, ...] = (10, 50)
    width: int = 64
    batch: int = 64
    stats_batch: int = 256
    steps: int = 300
    lr: float = 0.003
    momentum: float = 0.9
    bins: int = 48
    seed: int = 0
    device: str = "cpu"


@dataclass
class Result:
    depth: int
    activation: str
    init: str
    act_std: List[float] = field(default_factory=list)
    grad_std: List[float] = field(default_factory=list)
    act_verdict: Any = None
    grad_verdict: Any = None
    act_hist: List[Any] = field(default_factory=list)
    grad_hist: List[Any] = field(default_factory=list)
    losses: List[float] = field(default_factory=list)
    test_accuracy: float = math.nan
    train_seconds: float = 0.0

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
                         "scikit-learn (or pip install 'fastinit[demo]')") from None
    import torch
    digits = load_digits()
    x = digits.data.astype(np.float32)
    y = digits.target.astype(np.int64)
    mean, std = x.mean(0), x.std(0)
    x = (x - mean) / np.where(std > 0, std, 1.0)
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(round(0.8 * len(x)))
    tr, te = order[:cut], order[cut:]
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
    return Data(as_t(x[tr]), as_t(y[tr]), as_t(x[te]), as_t(y[te]))


# ----------------------------------------------------------------------------------- models

def build_mlp(depth: int, width: int, activation: str, init: str, seed: int,
              device: str = "cpu", inputs: int = 64, classes: int = 10) -> Any:
    """``depth`` hidden layers (Linear + activation) and a Linear head, every weight drawn by
    fastinit with the generator ``fastinit.Generator(seed)`` (so every init of one depth draws
    the same standard normals), biases zero."""
    import torch.nn as nn

    import fastinit
    act = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}[activation]
    layers: List[Any] = []
    fan_in = inputs
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), act()]
        fan_in = width
    layers.append(nn.Linear(fan_in, classes))
    model = nn.Sequential(*layers)
    gen = fastinit.Generator(seed)
    fill = _init_fn(init)
    for m in model:
        if isinstance(m, nn.Linear):
            fill(m.weight, gen)
            fastinit.zeros_(m.bias)
    return model.to(device)


# ------------------------------------------------------------------------------ experiments

def measure(result: Result, model: Any, x: Any, y: Any, bins: int) -> None:
    """Per-layer activation and gradient statistics of one batch, under fastinit.watch."""
    import torch.nn as nn
    import torch.nn.functional as F

    from ..watch import watch
    act_type = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}[result.activation]
    with watch(model, modules=[act_type], weights=False, bins=bins) as w:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    acts, grads = w.records("activations"), w.records("gradients")
    result.act_std = [acts[n].std for n in w.layers]
    result.grad_std = [grads[n].std for n in w.layers]
    v = w.verdicts()
    result.act_verdict, result.grad_verdict = v["activations"], v["gradients"]
    if bins:
        ha, hg = w.histograms("activations"), w.histograms("gradients")
        result.act_hist = [ha.get(n) for n in w.layers]
        result.grad_hist = [hg.get(n) for n in w.layers]


def _activation_fn(name: str) -> Callable[[Any], Any]:
    import torch
    return {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}[name]


class SideBySide:
    """The MLPs of :func:`build_mlp` for several inits, held as one stack so that they train
    side by side on the same minibatches: the weight of layer ``l`` is a ``(G, out, in)``
    parameter whose slice ``g`` is drawn by init ``g`` exactly as :func:`build_mlp` draws it
    (same generator, same order: the same values), and the forward pass is one batched matmul
    per layer (``torch.baddbmm``) for all G models, so a step costs the launches of one model.

    >>> stack = SideBySide(10, 128, "tanh", ["Xavier", "Kaiming"], seed=0)
    >>> logits = stack(x)          # (G, batch, 10)
    """

    def __init__(self, depth: int, width: int, activation: str, inits: Sequence[str], seed: int,
                 device: str = "cpu", inputs: int = 64, classes: int = 10) -> None:
        import torch

        import fastinit
        g_count = len(inits)
        dims = [inputs] + [width] * depth + [classes]
        self.act = _activation_fn(activation)
        self.depth = depth
        self.weights = [torch.empty(g_count, o, i) for i, o in zip(dims[:-1], dims[1:])]
        self.biases = [torch.empty(g_count, 1, o) for o in dims[1:]]
        for g, init in enumerate(inits):
            gen = fastinit.Generator(seed)
            fill = _init_fn(init)
            for w in self.weights:
                fill(w[g], gen)          # a (out, in) view: the fans of nn.Linear(in, out)
        for b in self.biases:
            fastinit.zeros_(b)
        self.weights = [w.to(device).requires_grad_() for w in self.weights]
        self.biases = [b.to(device).requires_grad_() for b in self.biases]

    def parameters(self) -> List[Any]:
        return self.weights + self.biases

    def __call__(self, x: Any) -> Any:
        import torch
        h = x.unsqueeze(0).expand(self.weights[0].shape[0], *x.shape)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w.transpose(1, 2))
            if i < self.depth:
                h = self.act(h)
        return h


def train_side_by_side(group: Sequence[Result], data: Data, s: Settings) -> None:
    """Train the inits of one (depth, activation) side by side (:class:`SideBySide`) with SGD
    and momentum; the per-step losses stay on the device and are read once at the end."""
    import torch
    import torch.nn.functional as F
    first = group[0]
    stack = SideBySide(first.depth, s.width, first.activation, [r.init for r in group], s.seed,
                       s.device)
    g_count = len(group)
    gen = torch.Generator().manual_seed(s.seed)
    opt = torch.optim.SGD(stack.parameters(), lr=s.lr, momentum=s.momentum)
    n = data.x_train.shape[0]
    index = torch.randint(0, n, (s.steps, s.batch), generator=gen).to(data.x_train.device)
    losses = torch.empty(s.steps, g_count, device=data.x_train.device)
    t0 = time.perf_counter()
    # On the CPU these matrices are small: one thread is as fast as several and immune to
    # spinning OpenMP threads on a busy machine; denormals (the vanished nets' 1e-40s) are
    # flushed to zero, as GPUs do, instead of taking the slow path.
    cpu = data.x_train.device.type == "cpu"
    threads = torch.get_num_threads()
    flushed = False
    if cpu:
        torch.set_num_threads(1)
        flushed = torch.set_flush_denormal(True)
    try:
        for i in range(s.steps):
            xb, yb = data.x_train[index[i]], data.y_train[index[i]]
            logits = stack(xb)
            per_model = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.repeat(g_count),
                                        reduction="none").view(g_count, -1).mean(1)
            opt.zero_grad(set_to_none=True)
            per_model.sum().backward()      # each model's gradient is that of its own loss
            opt.step()
            losses[i] = per_model.detach()
        with torch.no_grad():
            acc = (stack(data.x_test).argmax(-1) == data.y_test).float().mean(1)
    finally:
        if cpu:
            torch.set_num_threads(threads)
            if flushed:
                torch.set_flush_denormal(False)
    losses_host, acc_host = losses.cpu().numpy(), acc.cpu().numpy()
    seconds = time.perf_counter() - t0
    for g, r in enumerate(group):
        r.losses = [float(v) for v in losses_host[:, g]]
        r.test_accuracy = float(acc_host[g])
        r.train_seconds = seconds / g_count
