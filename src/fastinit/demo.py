"""``python -m fastinit demo``: the experiment that explains weight initialization.

Deep MLPs (10 and 50 hidden layers) with tanh, ReLU and sigmoid, initialized four ways:

==============  ===============================================================================
N(0, 0.01²)     ``fastinit.normal_(w, 0, 0.01)``: the "small random numbers" of early practice
LeCun           ``fastinit.variance_scaling_(w, 1.0, "fan_in", "normal")``: N(0, 1/fan_in)
Xavier          ``fastinit.xavier_normal_(w)``: N(0, 2/(fan_in + fan_out)) (Glorot & Bengio 2010)
Kaiming         ``fastinit.kaiming_normal_(w, nonlinearity="relu")``: N(0, 2/fan_in) (He et al. 2015)
==============  ===============================================================================

biases zero (``fastinit.zeros_``). Every model of one depth draws the same standard normals (the
same fastinit generator seed), so the inits differ only by their scale.

1. **At initialization**: one batch forward and backward under :func:`fastinit.watch`; prints
   the per-layer std of the activations (the nonlinearity's outputs) and of the gradients
   dL/dh flowing back through them, with a verdict (vanishing / exploding / healthy, see
   :func:`fastinit.verdict`), and plots them with per-layer histograms (Glorot & Bengio's
   figures).
2. **Training**: every configuration trains for ``--steps`` steps of SGD with momentum on
   scikit-learn's bundled digits (1797 8x8 images, 10 classes; no download), and the loss curves
   are plotted side by side: the init that keeps both profiles healthy trains, the others do not.

Files written to ``--out``: ``activation_std.png``, ``gradient_std.png``, ``histograms.png``,
``loss_curves.png``, ``stats.csv`` (per layer), ``training.csv`` (per step), ``summary.json``.

    python -m fastinit demo                      # about half a minute on 2 CPU cores
    python -m fastinit demo --device cuda --out runs/demo
    python -m fastinit demo --quick              # a tiny configuration (a smoke test)

Needs torch, scikit-learn (the dataset) and matplotlib (the plots; ``--no-plots`` skips them).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

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

    from .watch import watch
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


# ---------------------------------------------------------------------------------- printing

def _columns(depth: int) -> List[int]:
    """The layers (1-based) shown in the printed tables: all up to 10, else 8 spread out."""
    if depth <= 10:
        return list(range(1, depth + 1))
    picks = sorted({1, 2} | {int(round(depth * f)) for f in (0.1, 0.2, 0.4, 0.6, 0.8)} | {depth})
    return [p for p in picks if 1 <= p <= depth]


def _num(v: float) -> str:
    if not math.isfinite(v):
        return "nan" if math.isnan(v) else "inf"
    if v == 0:
        return "0"
    return f"{v:.1e}"


def _verdict_text(v: Any) -> str:
    if v.label == "n/a" or not math.isfinite(v.ratio):
        return v.label
    return f"{v.label} (x{v.ratio:.0e})" if v.ratio > 0 else f"{v.label} (to 0)"


def format_profile_table(results: Sequence[Result], depth: int, kind: str) -> str:
    """One depth: a row per (activation, init), the std at chosen layers, and the verdict."""
    cols = _columns(depth)
    rows = [r for r in results if r.depth == depth]
    head = ["activation", "init"] + [f"L{c}" for c in cols] + ["verdict"]
    body = []
    for r in rows:
        stds = r.act_std if kind == "activations" else r.grad_std
        v = r.act_verdict if kind == "activations" else r.grad_verdict
        verdict_text = "-" if v is None else _verdict_text(v)
        body.append([r.activation, r.init] + [_num(stds[c - 1]) if c - 1 < len(stds) else "-"
                                               for c in cols] + [verdict_text])
    table = [head] + body
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    out = []
    for i, line in enumerate(table):
        cells = [c.ljust(widths[j]) if j < 2 or j == len(head) - 1 else c.rjust(widths[j])
                 for j, c in enumerate(line)]
        out.append("  " + "  ".join(cells).rstrip())
        if i == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
        elif i < len(table) - 1 and body[i - 1][0] != body[i][0]:
            out.append("")
    return "\n".join(out)


def format_training_table(results: Sequence[Result]) -> str:
    head = ["depth", "activation", "init", "loss@0", "loss@end", "test acc", "result",
            "at init (act / grad)"]
    table = [head]
    for r in results:
        table.append([str(r.depth), r.activation, r.init,
                      f"{r.losses[0]:.3f}" if r.losses else "-",
                      f"{r.final_loss:.3f}" if math.isfinite(r.final_loss) else "nan",
                      f"{100 * r.test_accuracy:.1f}%" if math.isfinite(r.test_accuracy) else "-",
                      r.outcome,
                      f"{r.act_verdict.label if r.act_verdict else '-'} / "
                      f"{r.grad_verdict.label if r.grad_verdict else '-'}"])
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    out = []
    for i, line in enumerate(table):
        cells = [c.rjust(widths[j]) if j in (0, 3, 4, 5) else c.ljust(widths[j])
                 for j, c in enumerate(line)]
        out.append("  " + "  ".join(cells).rstrip())
        if i == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
        elif i < len(table) - 1 and (table[i][0], table[i][1]) != (table[i + 1][0], table[i + 1][1]):
            out.append("")
    return "\n".join(out)


def format_summary(results: Sequence[Result], trained: bool) -> str:
    lines = []
    keys = []
    for r in results:
        if (r.depth, r.activation) not in keys:
            keys.append((r.depth, r.activation))
    width = max(len(f"depth {d}, {a}:") for d, a in keys)
    for d, a in keys:
        group = [r for r in results if (r.depth, r.activation) == (d, a)]
        if trained:
            parts = []
            for outcome in ("trained", "learning", "stuck", "diverged"):
                names = [r.init for r in group if r.outcome == outcome]
                if names:
                    parts.append(f"{outcome}: {', '.join(names)}")
        else:
            healthy = [r.init for r in group if r.act_verdict and r.grad_verdict
                       and r.act_verdict.label == r.grad_verdict.label == "healthy"]
            parts = [f"healthy at init: {', '.join(healthy) or 'none'}"]
        lines.append(f"  {f'depth {d}, {a}:'.ljust(width)}  " + "   ".join(parts))
    return "\n".join(lines)


def lessons(s: Settings) -> str:
    """What the experiment shows, with this run's numbers."""
    shrink = 0.01 * math.sqrt(s.width)
    deep = max(s.depths)
    return "\n".join([
        "\nWhat it shows:",
        f"  - N(0, 0.01²) multiplies the std by about 0.01·sqrt({s.width}) = {shrink:.2g} per "
        "layer, forward and backward: activations and gradients vanish, the loss stays at chance "
        "(ln 10 = 2.30).",
        "  - Fan-scaled inits keep tanh nets healthy. ReLU zeroes half of its inputs, so LeCun and "
        f"Xavier lose a factor sqrt(2) per layer (2^-{deep / 2:g} over {deep} layers): deep ReLU "
        "nets need Kaiming's 2/fan_in.",
        "  - sigmoid: its slope is at most 1/4 and its outputs have mean 0.5, so gradients shrink "
        "about 4x per layer whatever the scale (Glorot & Bengio 2010): no init here trains it "
        "deep.",
    ])


# ----------------------------------------------------------------------------------- outputs

def write_csvs(results: Sequence[Result], out: str) -> None:
    with open(os.path.join(out, "stats.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["depth", "activation", "init", "layer", "activation_std", "gradient_std"])
        for r in results:
            for i, (a, g) in enumerate(zip(r.act_std, r.grad_std)):
                wr.writerow([r.depth, r.activation, r.init, i + 1, repr(a), repr(g)])
    with open(os.path.join(out, "training.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["depth", "activation", "init", "step", "loss"])
        for r in results:
            for i, v in enumerate(r.losses):
                wr.writerow([r.depth, r.activation, r.init, i, repr(v)])


def write_summary(results: Sequence[Result], s: Settings, out: str, seconds: float) -> None:
    def clean(v: Any) -> Any:
        return v if not isinstance(v, float) or math.isfinite(v) else None
    doc = {"settings": {k: getattr(s, k) for k in s.__dataclass_fields__},
           "seconds": seconds,
           "results": [{"depth": r.depth, "activation": r.activation, "init": r.init,
                        "activation_verdict": r.act_verdict.label if r.act_verdict else None,
                        "gradient_verdict": r.grad_verdict.label if r.grad_verdict else None,
                        "activation_ratio": clean(r.act_verdict.ratio) if r.act_verdict else None,
                        "gradient_ratio": clean(r.grad_verdict.ratio) if r.grad_verdict else None,
                        "final_loss": clean(r.final_loss), "test_accuracy": clean(r.test_accuracy),
                        "outcome": r.outcome} for r in results]}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(doc, f, indent=1)


def draw(results: Sequence[Result], s: Settings, out: str, trained: bool) -> List[str]:
    from .plots import plot_curves, plot_heatmaps, plot_profiles
    files = []
    for kind, name, label in (("activations", "activation_std.png",
                               "std of the activations h = f(Wx + b), per layer, at init"),
                              ("gradients", "gradient_std.png",
                               "std of the back-propagated gradients dL/dh, per layer, at init")):
        panels = {}
        for r in results:
            panels.setdefault((f"depth {r.depth}", r.activation), {})[r.init] = (
                r.act_std if kind == "activations" else r.grad_std)
        files.append(plot_profiles(panels, os.path.join(out, name), title=label,
                                   ylabel="std (log scale)", xlabel="layer (input → output)",
                                   colors=INIT_COLORS, styles=INIT_STYLES))
    pairs = _heatmap_pairs(results)
    if pairs:
        rows = [(f"{r.activation}, depth {r.depth}, {r.init}", r.act_hist, r.grad_hist)
                for r in pairs]
        files.append(plot_heatmaps(rows, os.path.join(out, "histograms.png"),
                                   title="per-layer histograms at init (as in Glorot & Bengio "
                                         "2010): activations, and log10 |gradient|"))
    if trained:
        panels = {}
        notes: Dict[Tuple[str, str], Dict[str, str]] = {}
        for r in results:
            key = (f"depth {r.depth}", r.activation)
            panels.setdefault(key, {})[r.init] = r.losses
            acc = f"{100 * r.test_accuracy:.0f}%" if math.isfinite(r.test_accuracy) else r.outcome
            notes.setdefault(key, {})[r.init] = acc
        files.append(plot_curves(panels, os.path.join(out, "loss_curves.png"),
                                 title=f"training loss on digits (SGD lr={s.lr}, momentum "
                                       f"{s.momentum}, batch {s.batch}; running mean of 10 "
                                       "steps); legend: test accuracy at the end",
                                 ylabel="cross-entropy (log scale)", colors=INIT_COLORS,
                                 styles=INIT_STYLES, smooth=10,
                                 reference=(CHANCE_LOSS, "chance: ln 10"), notes=notes))
    return files


def _heatmap_pairs(results: Sequence[Result]) -> List[Result]:
    """Glorot & Bengio's contrast (tanh, the shallower depth: small N(0, 0.01²) vs Xavier) and
    He et al.'s (ReLU, the deeper depth: Xavier vs Kaiming)."""
    if not results or not results[0].act_hist:
        return []
    lo, hi = min(r.depth for r in results), max(r.depth for r in results)
    want = [(lo, "tanh", "N(0, 0.01²)"), (lo, "tanh", "Xavier"), (hi, "relu", "Xavier"),
            (hi, "relu", "Kaiming")]
    found = {(r.depth, r.activation, r.init): r for r in results}
    return [found[k] for k in want if k in found]


# ---------------------------------------------------------------------------------------- main

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fastinit demo", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Deep MLPs (10 and 50 layers; tanh, ReLU, sigmoid) initialized with "
                    "N(0, 0.01²), LeCun, Xavier and Kaiming: per-layer activation and gradient "
                    "statistics at init, then training on scikit-learn's digits.")
    p.add_argument("--out", default="./fastinit-demo", help="folder for the PNG plots and CSV/JSON "
                   "files (default ./fastinit-demo)")
    p.add_argument("--device", default="cpu", help="torch device: cpu (default), cuda, cuda:1, ...")
    p.add_argument("--steps", type=int, default=None, help="training steps per model "
                   "(default 300; --quick 40; 0 skips training)")
    p.add_argument("--quick", action="store_true", help="a tiny configuration (depths 4 and 8, "
                   "width 32, 40 steps at lr 0.01): a few seconds")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, the split and the "
                   "batches (default 0)")
    p.add_argument("--width", type=int, default=None, help="hidden width (default 64; --quick 32)")
    p.add_argument("--lr", type=float, default=None, help="SGD learning rate (default 0.003)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (no matplotlib)")
    return p


def settings_from(args: argparse.Namespace) -> Settings:
    s = Settings(seed=args.seed, device=args.device)
    if args.quick:
        s.depths, s.width, s.steps, s.stats_batch, s.bins, s.lr = (4, 8), 32, 40, 128, 24, 0.01
    if args.steps is not None:
        s.steps = args.steps
    if args.width is not None:
        s.width = args.width
    if args.lr is not None:
        s.lr = args.lr
    if s.steps < 0 or s.width < 1 or not (s.lr > 0):
        raise SystemExit(f"fastinit demo: need --steps >= 0, --width >= 1 and --lr > 0 "
                         f"(got {s.steps}, {s.width}, {s.lr})")
    return s


def _check_device(device: str) -> None:
    import torch
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise SystemExit(f"fastinit demo: bad --device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"fastinit demo: --device {device} asked for, but torch sees no CUDA "
                         "GPU (torch.cuda.is_available() is False)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the demo; returns the exit status (0)."""
    args = _parser().parse_args(list(argv) if argv is not None else None)
    s = settings_from(args)
    try:
        import torch
    except ImportError:
        raise SystemExit("fastinit demo needs torch: pip install torch") from None
    _check_device(s.device)
    if not args.no_plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise SystemExit("fastinit demo draws with matplotlib: pip install matplotlib "
                             "(or run with --no-plots)") from None
    import fastinit

    from .watch import EXPLODING_RATIO, VANISHING_RATIO
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(s.seed)
    t_start = time.perf_counter()
    data = load_data(s.seed, s.device)
    print(f"fastinit {fastinit.__version__} demo: why initialization matters")
    print(f"MLPs of depth {' and '.join(map(str, s.depths))} (hidden layers of width {s.width}, "
          f"Linear + activation), on scikit-learn's digits ({data.x_train.shape[0]} train / "
          f"{data.x_test.shape[0]} test images, 8x8 pixels, 10 classes); device {s.device}, "
          f"seed {s.seed}")
    print("inits (biases 0): N(0, 0.01²) = normal_(std=0.01); LeCun = N(0, 1/fan_in); "
          "Xavier = N(0, 2/(fan_in+fan_out)); Kaiming = N(0, 2/fan_in)")
    print("(LeCun and Xavier coincide on the square hidden layers, where fan_in = fan_out; every "
          "model of one depth draws the same normals, scaled)")

    results: List[Result] = []
    gen = torch.Generator().manual_seed(s.seed)
    pick = torch.randperm(data.x_train.shape[0], generator=gen)[:s.stats_batch].to(s.device)
    xb, yb = data.x_train[pick], data.y_train[pick]
    for depth in s.depths:
        for activation in ACTIVATIONS:
            for init in INIT_LABELS:
                r = Result(depth, activation, init)
                measure(r, build_mlp(depth, s.width, activation, init, s.seed, s.device), xb, yb,
                        s.bins)
                results.append(r)
    t_stats = time.perf_counter() - t_start

    print(f"\n1. At initialization: one batch of {xb.shape[0]} images, forward and backward "
          "(cross-entropy), recorded with fastinit.watch")
    print("   verdict: std ratio across the depth (activations: last/first layer; gradients: "
          f"first/last) < {VANISHING_RATIO:g} vanishing, > {EXPLODING_RATIO:g} exploding")
    for depth in s.depths:
        print(f"\n   Activation std per layer (output of the nonlinearity), depth {depth}")
        print(format_profile_table(results, depth, "activations"))
        print(f"\n   Gradient std per layer (dL/dh, flowing back from layer {depth} to 1), "
              f"depth {depth}")
        print(format_profile_table(results, depth, "gradients"), flush=True)

    trained = s.steps > 0
    if trained:
        print(f"\n2. Training: {s.steps} steps of SGD (lr {s.lr}, momentum {s.momentum}, batch "
              f"{s.batch}, the same batches for every model); result by test accuracy (chance "
              f"10%): >= {TRAINED_ACCURACY:.0%} trained, >= {LEARNING_ACCURACY:.0%} learning, "
              "else stuck", flush=True)
        t0 = time.perf_counter()
        for depth in s.depths:
            for activation in ACTIVATIONS:
                train_side_by_side([r for r in results if (r.depth, r.activation) ==
                                    (depth, activation)], data, s)
        t_train = time.perf_counter() - t0
        print(format_training_table(results))

    seconds = time.perf_counter() - t_start
    write_csvs(results, args.out)
    write_summary(results, s, args.out, seconds)
    t0 = time.perf_counter()
    files = [] if args.no_plots else draw(results, s, args.out, trained)
    t_plots = time.perf_counter() - t0
    print("\nSummary: " + ("which init trained?" if trained else "which init keeps the "
                           "signal healthy?"))
    print(format_summary(results, trained))
    print(lessons(s))
    names = [os.path.basename(f) for f in files] + ["stats.csv", "training.csv", "summary.json"]
    print(f"\nwrote {', '.join(names)}"
          f" to {os.path.abspath(args.out)}")
    phases = [f"statistics {t_stats:.1f} s"] + ([f"training {t_train:.1f} s"] if trained else []) \
        + ([] if args.no_plots else [f"plots {t_plots:.1f} s"])
    print(f"done in {time.perf_counter() - t_start:.1f} s ({', '.join(phases)})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
