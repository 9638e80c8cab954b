"""Layer-sequential unit-variance init (Mishkin & Matas, 2016): orthogonal pre-init, then each
layer's weight rescaled until its output has unit variance."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from ..dispatch.target import torch_module
from ..stats.reduce import stats
from ..stream.keys import GeneratorLike
from .init_many import init_


@dataclass(frozen=True)
class LSUVRow:
    """One layer of an LSUV run: its qualified name, the number of rescalings, the variance of
    its output at the end, and whether |variance - 1| < tol was reached."""

    name: str
    iterations: int
    variance: float
    converged: bool


class _StopForward(Exception):
    pass


def _variance(x: Any) -> float:
    """The variance of a layer's output, by fastinit's fused statistics (NaN when a value is
    not finite)."""
    s = stats(x.detach())
    return float(s.var) if s.nans == 0 and s.infs == 0 else math.nan


def _forward(model: Any, batch: Any) -> Any:
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def lsuv_(model: Any, batch: Any, tol: float = 0.1, max_iters: int = 10,
          orthogonal: bool = True, *, generator: GeneratorLike = None) -> list[LSUVRow]:
    """Layer-sequential unit-variance init (Mishkin & Matas, "All you need is a good init", 2016).

    Optionally pre-initializes every Linear and Conv* weight as a (semi-)orthogonal matrix
    (``orthogonal=True``; keys as in :func:`init_`, one draw from ``generator``), then, layer by
    layer in execution order (found by one forward pass), forwards ``batch`` and divides the
    weight by the standard deviation of the layer's output until ``|var - 1| < tol`` or
    ``max_iters`` rescalings. Biases are left as they are. Forward passes run in eval mode under
    ``torch.no_grad`` (no dropout, no running-statistics updates) and stop right after the layer
    being fitted; every module's training flag is restored. ``batch`` is a tensor, a tuple of
    positional inputs or a dict of keyword inputs. Returns one :class:`LSUVRow` per layer.

    >>> report = fastinit.lsuv_(model, next(iter(loader))[0], tol=0.05)
    >>> for row in report: print(row.name, row.iterations, f"{row.variance:.3f}")
    """
    torch = torch_module()
    if torch is None or not isinstance(model, torch.nn.Module):
        raise TypeError(f"fastinit.lsuv_: expected a torch.nn.Module, got {type(model).__name__}")
    tol = float(tol)
    if not tol > 0:
        raise ValueError(f"fastinit.lsuv_: tol must be positive, got {tol}")
    if isinstance(max_iters, bool) or not isinstance(max_iters, int) or max_iters < 0:
        raise ValueError(f"fastinit.lsuv_: max_iters must be a non-negative int, got {max_iters!r}")
    from torch.nn.modules.conv import _ConvNd
    names = {id(m): n for n, m in model.named_modules()}
    candidates = [m for m in model.modules()
                  if isinstance(m, (torch.nn.Linear, _ConvNd))
                  and isinstance(m._parameters.get("weight"), torch.Tensor)
                  and m.weight.numel() > 0]
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            order: list = []
            hooks = [m.register_forward_hook(
                lambda mod, inp, out: order.append(mod) if mod not in order else None)
                for m in candidates]
            try:
                _forward(model, batch)
            finally:
                for h in hooks:
                    h.remove()
            if orthogonal and order:
                init_([m.weight for m in order], "orthogonal", generator=generator)
            return [_lsuv_layer(model, batch, m, names.get(id(m), ""), tol, max_iters)
                    for m in order]
    finally:
        for m, flag in modes:
            m.training = flag


def _lsuv_layer(model: Any, batch: Any, layer: Any, name: str, tol: float,
                max_iters: int) -> LSUVRow:
    captured: list = []

    def hook(mod: Any, inp: Any, out: Any) -> None:
        captured.append(_variance(out))
        raise _StopForward

    handle = layer.register_forward_hook(hook)
    try:
        def measure() -> float:
            captured.clear()
            try:
                _forward(model, batch)
            except _StopForward:
                pass
            if not captured:
                raise RuntimeError(f"fastinit.lsuv_: layer {name!r} did not run in the forward "
                                   "pass")
            return captured[0]

        var = measure()
        iters = 0
        while abs(var - 1.0) >= tol and iters < max_iters and math.isfinite(var) and var > 0:
            layer.weight.mul_(1.0 / math.sqrt(var))
            iters += 1
            var = measure()
    finally:
        handle.remove()
    return LSUVRow(name, iters, var, abs(var - 1.0) < tol)
