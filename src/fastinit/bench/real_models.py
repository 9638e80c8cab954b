"""Real models built the way their libraries build them: stock torch against fastinit.

For each model, in one run and alternating (stock, patched, materialized, stock, ...):

- ``torch``: stock eager construction (``GPT2LMHeadModel(config)``, ``timm.create_model``):
  torch's per-module defaults, then the library's own init;
- ``eager + patch``: the same construction under :func:`fastinit.patch`;
- ``meta + materialize``: construction on the meta device (under :func:`fastinit.patch`:
  torch's meta kernels of ``normal_`` and friends cost about 2 ms a call, fastinit skips meta
  tensors at once), then :func:`fastinit.materialize` (``to_empty``, torch's defaults fused,
  the library's init under patch, buffers recomputed).

Models: Hugging Face GPT-2 124 M and a Llama of 1.1 B parameters (TinyLlama's shape), timm
resnet50 and vit_base_patch16_224 (when timm imports). ``quick``: small configurations of the
same models. Every built model is checked: every tensor finite, and each tensor's values
against stock construction's by a two-sample Kolmogorov-Smirnov test (up to 200 000 values a
tensor); the case name says how many tensors passed. Times are medians with the 90th
percentile beside them (``seconds["fastinit p90"]``, ``seconds["torch p90"]``).

Run: ``python -m fastinit.bench.real_models [--quick] [--repeats N] [--only gpt2,llama,...]``;
``run(quick, repeats)`` gives the rows for ``python -m fastinit bench``.
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import time
from typing import Any, Callable, Optional

import numpy as np
import torch

import fastinit

from .timing import Row, format_table, machine_description, now_utc

P_FAIL = 1e-6
KS_SAMPLE = 200_000


def _hf_models(quick: bool) -> dict[str, Callable[[], Any]]:
    try:
        import transformers
    except ImportError:
        return {}
    if quick:
        gpt2 = transformers.GPT2Config(n_layer=4, n_embd=256, n_head=4, vocab_size=8000,
                                       n_positions=256, bos_token_id=0, eos_token_id=0)
        llama = transformers.LlamaConfig(hidden_size=256, intermediate_size=704,
                                         num_hidden_layers=4, num_attention_heads=8,
                                         num_key_value_heads=2, vocab_size=8000,
                                         bos_token_id=0, eos_token_id=0)
        names = ("gpt2-small", "llama-small")
    else:
        gpt2 = transformers.GPT2Config()  # 124 M
        llama = transformers.LlamaConfig(hidden_size=2048, intermediate_size=5632,
                                         num_hidden_layers=22, num_attention_heads=32,
                                         num_key_value_heads=4, vocab_size=32000)  # 1.1 B
        names = ("gpt2-124M", "llama-1.1B")
    return {names[0]: lambda: transformers.GPT2LMHeadModel(gpt2),
            names[1]: lambda: transformers.LlamaForCausalLM(llama)}


def _timm_models(quick: bool) -> dict[str, Callable[[], Any]]:
    try:
        import timm
    except Exception:  # not installed, or torchvision not loading beside this torch
        return {}
    names = ("resnet18", "vit_tiny_patch16_224") if quick else ("resnet50", "vit_base_patch16_224")
    return {n: (lambda n=n: timm.create_model(n, pretrained=False)) for n in names}


def models(quick: bool) -> dict[str, Callable[[], Any]]:
    return {**_hf_models(quick), **_timm_models(quick)}


def _quiet(make: Callable[[], Any]) -> Callable[[], Any]:
    def build() -> Any:
        try:
            from transformers.utils import logging
            logging.set_verbosity_error()
        except ImportError:
            pass
        return make()
    return build


def _contenders(make: Callable[[], Any]) -> dict[str, Callable[[], Any]]:
    def patched() -> Any:
        with fastinit.patch():
            return make()

    def materialized() -> Any:
        with torch.device("meta"), fastinit.patch():  # torch's meta init kernels are slow
            model = make()
        return fastinit.materialize(model, device="cpu")
    return {"torch": make, "eager + patch": patched, "meta + materialize": materialized}


def ks_2samp_pvalue(a: Any, b: Any) -> float:
    """Two-sample Kolmogorov-Smirnov p-value (asymptotic; scipy's exact one when scipy is
    installed: the benchmark needs only NumPy)."""
    try:
        import scipy.stats
        return float(scipy.stats.ks_2samp(a, b).pvalue)
    except ImportError:
        pass
    a, b = np.sort(np.asarray(a, dtype=np.float64)), np.sort(np.asarray(b, dtype=np.float64))
    values = np.concatenate([a, b])
    d = np.max(np.abs(np.searchsorted(a, values, side="right") / a.size
                      - np.searchsorted(b, values, side="right") / b.size))
    en = math.sqrt(a.size * b.size / (a.size + b.size))
    lam = (en + 0.12 + 0.11 / en) * d  # Stephens' correction, Numerical Recipes' probks
    if lam < 1e-3:
        return 1.0
    terms = [2.0 * (-1) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam) for k in range(1, 101)]
    return float(min(1.0, max(0.0, sum(terms))))


def _check(reference: Any, built: Any) -> tuple[int, int, list]:
    """(tensors, tensors passing, failures): finite, and the KS test against reference."""
    ref = {**dict(reference.named_parameters()), **dict(reference.named_buffers())}
    failures = []
    named = {**dict(built.named_parameters()), **dict(built.named_buffers())}
    gen = torch.Generator().manual_seed(0)
    for name, t in named.items():
        x = t.detach().reshape(-1)
        r = ref[name].detach().reshape(-1)
        if x.is_floating_point() and not torch.isfinite(x).all():
            failures.append(f"{name}: not finite")
            continue
        x, r = x.to(torch.float64), r.to(torch.float64)
        if x.numel() > KS_SAMPLE:
            pick = torch.randint(0, x.numel(), (KS_SAMPLE,), generator=gen)
            x, r = x[pick], r[torch.randint(0, r.numel(), (KS_SAMPLE,), generator=gen)]
        if torch.all(r == r[0]) or r.numel() < 64:
            if not torch.allclose(x, r, rtol=1e-6, atol=0):
                failures.append(f"{name}: differs from the constant/values of construction")
            continue
        p = ks_2samp_pvalue(r.numpy(), x.numpy())
        if p <= P_FAIL:
            failures.append(f"{name}: KS p={p:.2g}")
    return len(named), len(named) - len(failures), failures


def _p90(ts: list) -> float:
    ts = sorted(ts)
    return ts[min(len(ts) - 1, int(round(0.9 * (len(ts) - 1))))]


def bench_model(name: str, make: Callable[[], Any], repeats: int,
                log: Optional[Callable[[str], None]] = None) -> list[Row]:
    make = _quiet(make)
    contenders = _contenders(make)
    times: dict[str, list] = {k: [] for k in contenders}
    checks: dict[str, tuple] = {}
    torch.manual_seed(0)
    reference = make()
    numel = sum(p.numel() for p in reference.parameters())
    nbytes = sum(t.numel() * t.element_size() for t in
                 list(reference.parameters()) + list(reference.buffers()))
    for rep in range(repeats + 1):  # the first round is a warm-up, checked, not timed
        for label, fn in contenders.items():
            gc.collect()
            t0 = time.perf_counter()
            model = fn()
            elapsed = time.perf_counter() - t0
            if rep == 0:
                if label != "torch":
                    checks[label] = _check(reference, model)
            else:
                times[label].append(elapsed)
            del model
    del reference
    gc.collect()
    rows = []
    base = times["torch"]
    for label in ("eager + patch", "meta + materialize"):
        total, passed, failures = checks[label]
        if log is not None and failures:
            log(f"{name} {label}: {len(failures)} failing tensors: {failures[:5]}")
        case = f"{name} {label} [{passed}/{total} tensors finite, KS-equal]"
        rows.append(Row("real models", case, "float32", int(numel), int(nbytes), {
            "fastinit": statistics.median(times[label]), "torch": statistics.median(base),
            "fastinit p90": _p90(times[label]), "torch p90": _p90(base)}))
    return rows


def run(quick: bool = False, repeats: int = 5, only: Optional[set] = None,
        log: Optional[Callable[[str], None]] = None) -> list[Row]:
    rows: list[Row] = []
    for name, make in models(quick).items():
        if only and not any(name.startswith(o) for o in only):
            continue
        rows += bench_model(name, make, repeats, log)
    return rows


def format_rows(rows: list[Row]) -> str:
    lines = ["| model, path [check] | params | torch median (p90) | fastinit median (p90) | "
             "speed-up |", "|---|---|---|---|---|"]
    for r in rows:
        s = r.seconds
        lines.append(f"| {r.case} | {r.elements / 1e6:.1f} M | {s['torch']:.3f} s "
                     f"({s['torch p90']:.3f}) | {s['fastinit']:.3f} s ({s['fastinit p90']:.3f}) "
                     f"| {s['torch'] / s['fastinit']:.2f}x |")
    return "\n".join(lines)


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small configurations")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default="", help="comma list of model name prefixes")
    args = parser.parse_args(argv)
    only = {o for o in args.only.split(",") if o}
    load = os.getloadavg()
    print(f"# {now_utc()}: {machine_description()}, {torch.get_num_threads()} torch threads")
    print(f"# load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    rows = run(quick=args.quick, repeats=args.repeats, only=only, log=print)
    load = os.getloadavg()
    print(f"# load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if not rows:
        print("no model library importable (transformers, timm)")
        return
    print(format_rows(rows))
    print()
    print(format_table(rows, markdown=True))


if __name__ == "__main__":
    main()
