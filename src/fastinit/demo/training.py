"""The demo's training: the models of one (depth, activation) stacked and trained side by side on
the same minibatches, with a warm-up and cosine learning-rate schedule and the test accuracy
measured along the way; optionally watched (fastinit.watch) for the statistics over training."""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .experiment import Data, Result, Settings


def _activation_fn(name: str) -> Callable[[Any], Any]:
    import torch
    return {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}[name]


def _stack_module() -> Any:
    import torch
    import torch.nn as nn

    class SideBySide(nn.Module):
        """The MLPs of :func:`~.experiment.build_mlp` (the same depth and activation, any
        inits) held as one stack so that they train side by side on the same minibatches: the
        weight of layer ``l`` is a ``(G, out, in)`` parameter whose slice ``g`` is model ``g``'s,
        and the forward pass is one batched matmul per layer (``torch.baddbmm``) for all G
        models, so a step costs the launches of one model.

        ``taps``: models (indices) whose per-layer outputs go through ``nn.Identity`` modules
        ``taps.<model>.<layer>``, so that ``fastinit.watch`` sees each of them on its own.

        >>> stack = SideBySide([build_mlp(10, 64, "tanh", init, 0) for init in inits])
        >>> logits = stack(x)          # (G, batch, 10)
        """

        def __init__(self, models: Sequence[Any], activation: str,
                     taps: Sequence[int] = ()) -> None:
            super().__init__()
            linears = [[m for m in model if isinstance(m, nn.Linear)] for model in models]
            self.depth = len(linears[0]) - 1
            self.act = _activation_fn(activation)
            self.weights = nn.ParameterList(
                [nn.Parameter(torch.stack([ls[i].weight.detach() for ls in linears]).clone())
                 for i in range(self.depth + 1)])
            self.biases = nn.ParameterList(
                [nn.Parameter(torch.stack([ls[i].bias.detach() for ls in linears])
                              .unsqueeze(1).clone()) for i in range(self.depth + 1)])
            self.tapped = list(taps)
            self.taps = nn.ModuleDict({str(g): nn.ModuleList(nn.Identity()
                                                             for _ in range(self.depth))
                                       for g in self.tapped})
            self.tapping = bool(self.tapped)

        def forward(self, x: Any) -> Any:
            h = x.unsqueeze(0).expand(self.weights[0].shape[0], *x.shape)
            for i, (w, b) in enumerate(zip(self.weights, self.biases)):
                h = torch.baddbmm(b, h, w.transpose(1, 2))
                if i < self.depth:
                    h = self.act(h)
                    if self.tapping:
                        parts = list(h.unbind(0))
                        for g in self.tapped:
                            parts[g] = self.taps[str(g)][i](parts[g])
                        h = torch.stack(parts)
            return h

    return SideBySide


_STACK: List[Any] = []


def SideBySide(models: Sequence[Any], activation: str, taps: Sequence[int] = ()) -> Any:
    """A :class:`torch.nn.Module` stacking ``models`` (see its docstring); torch is imported
    here, at run time."""
    if not _STACK:
        _STACK.append(_stack_module())
    return _STACK[0](models, activation, taps)


def schedule(step: int, steps: int, peak: float, warmup: float) -> float:
    """Linear warm-up over the first ``warmup`` share of the steps, then cosine decay to 0."""
    ramp = max(1, int(round(warmup * steps)))
    if step < ramp:
        return peak * (step + 1) / ramp
    return peak * 0.5 * (1.0 + math.cos(math.pi * (step - ramp) / max(1, steps - ramp)))


def train_side_by_side(group: Sequence[Result], models: Sequence[Any], data: Data, s: Settings,
                       tick: Optional[Callable[[int], None]] = None,
                       watch_taps: Sequence[int] = (), watch_every: int = 0,
                       bins: int = 40, act_range: Optional[Tuple[float, float]] = None) -> Any:
    """Train the models of one (depth, activation) side by side with SGD, momentum and the
    :func:`schedule`; every model sees the same minibatches. Fills each Result's losses, test
    accuracy curve and final train/test accuracy. ``tick(steps done)`` reports progress. With
    ``watch_taps``, those models' per-layer outputs are recorded by fastinit.watch every
    ``watch_every`` steps; the Watch is returned (else None)."""
    import torch
    import torch.nn.functional as F

    from ..watch import watch
    first = group[0]
    lr = s.lr_for(first.depth)
    stack = SideBySide(models, first.activation, taps=watch_taps).to(data.x_train.device)
    g_count = len(group)
    gen = torch.Generator().manual_seed(s.seed)
    opt = torch.optim.SGD(stack.parameters(), lr=lr, momentum=s.momentum)
    n = data.x_train.shape[0]
    index = torch.randint(0, n, (s.steps, s.batch), generator=gen).to(data.x_train.device)
    losses = torch.empty(s.steps, g_count, device=data.x_train.device)
    every = max(1, s.steps // max(1, s.evals))
    evals: List[int] = []
    curve: List[Any] = []
    w = None
    if watch_taps:
        w = watch(stack, modules=["taps.*.*"], weights=False, gradients=False,
                  every=max(1, watch_every), bins=bins, act_range=act_range, history=None)
    # On the CPU these matrices are small: one thread is as fast as several and immune to
    # spinning OpenMP threads on a busy machine (denormals are flushed by the caller, cli.main).
    cpu = data.x_train.device.type == "cpu"
    threads = torch.get_num_threads()
    if cpu:
        torch.set_num_threads(1)

    def accuracy(x: Any, y: Any) -> Any:
        stack.tapping = False
        try:
            with torch.no_grad():
                return (stack.forward(x).argmax(-1) == y).float().mean(1)
        finally:
            stack.tapping = bool(stack.tapped)
    try:
        t_last = time.perf_counter()
        for i in range(s.steps):
            for group_ in opt.param_groups:
                group_["lr"] = schedule(i, s.steps, lr, s.warmup)
            xb, yb = data.x_train[index[i]], data.y_train[index[i]]
            logits = stack(xb)
            per_model = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.repeat(g_count),
                                        reduction="none").view(g_count, -1).mean(1)
            opt.zero_grad(set_to_none=True)
            per_model.sum().backward()      # each model's gradient is that of its own loss
            opt.step()
            losses[i] = per_model.detach()
            if (i + 1) % every == 0 or i + 1 == s.steps:
                evals.append(i + 1)
                curve.append(accuracy(data.x_test, data.y_test))
            if tick is not None and (time.perf_counter() - t_last > 0.2 or i + 1 == s.steps):
                tick(i + 1)
                t_last = time.perf_counter()
        train_acc = accuracy(data.x_train, data.y_train)
    finally:
        if w is not None:
            w.remove()
        if cpu:
            torch.set_num_threads(threads)
    losses_host = losses.cpu().numpy()
    curve_host = torch.stack(curve).cpu().numpy() if curve else None
    train_host = train_acc.cpu().numpy()
    for g, r in enumerate(group):
        r.lr = lr
        r.losses = [float(v) for v in losses_host[:, g]]
        r.eval_steps = list(evals)
        r.test_curve = [float(v) for v in curve_host[:, g]] if curve_host is not None else []
        r.test_accuracy = r.test_curve[-1] if r.test_curve else math.nan
        r.train_accuracy = float(train_host[g])
    return w


def tap_names(w: Any, group: Sequence[Result], taps: Sequence[int]) -> Dict[Tuple[str, int], str]:
    """(init, layer 1..depth) -> the watch's layer name of a tapped model's output."""
    out = {}
    for g in taps:
        for layer in range(1, group[0].depth + 1):
            out[(group[g].init, layer)] = f"taps.{g}.{layer - 1}"
    return out
