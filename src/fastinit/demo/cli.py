"""``python -m fastinit demo``: the command line of the demo (see fastinit/demo/__init__.py)."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

from .experiment import (
    ACTIVATIONS,
    INIT_TEXT,
    LARGE,
    LEARNING_ACCURACY,
    LSUV,
    TRAINED_ACCURACY,
    Result,
    Settings,
    _without_zeros,
    build_mlp,
    critical_gain,
    load_data,
    measure,
)
from .lessons import format_summary, lessons
from .progress import Progress
from .report import format_profile_table, format_training_table, write_csvs, write_summary

TORCH_CPU = "pip install torch --index-url https://download.pytorch.org/whl/cpu"
DEFAULT_OUT = "fastinit-demo"
#: the models whose activations are watched over training (the shallower depth), per activation
WATCHED = {"tanh": (LARGE, "Xavier"), "relu": ("LeCun", "Kaiming"), "sigmoid": ("Xavier", "critical")}
RANGES = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0), "relu": None}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fastinit demo",
        description="Why initialization matters: deep MLPs (10 and 50 hidden layers; tanh, ReLU, "
                    "sigmoid) initialized seven ways (N(0, 0.01²), N(0, 1), LeCun, Xavier, "
                    "Kaiming, fastinit.critical_gain, fastinit.lsuv_): per-layer statistics at "
                    "init with verdicts, then training on scikit-learn's digits, with lessons "
                    "written from the run's numbers.",
        epilog="Run time on 2 idle CPU cores: about 1.5 minutes (--quick: about 15 s); about twice "
               "that when the cores are shared. Progress goes to stderr, the report to stdout. "
               "Needs torch, scikit-learn and matplotlib.")
    p.add_argument("--out", default=None, help=f"folder for the PNG plots and CSV/JSON files "
                   f"(default ./{DEFAULT_OUT}, created in the current directory)")
    p.add_argument("--device", default="cpu", help="torch device: cpu (default), cuda, cuda:1, ...")
    p.add_argument("--steps", type=int, default=None, help="training steps per model "
                   "(default 1000; --quick 150; 0 skips training)")
    p.add_argument("--quick", action="store_true", help="a small configuration (depths 4 and 8, "
                   "width 32, 150 steps): about 15 s")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, the split and the "
                   "batches (default 0)")
    p.add_argument("--width", type=int, default=None, help="hidden width (default 64; --quick 32)")
    p.add_argument("--lr", type=float, default=None, help="peak SGD learning rate for every "
                   "depth (default 0.2 / depth: 0.02 at depth 10, 0.004 at depth 50)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots (no matplotlib)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def settings_from(args: argparse.Namespace) -> Settings:
    s = Settings(seed=args.seed, device=args.device)
    if args.quick:
        s.depths, s.width, s.steps, s.stats_batch, s.bins, s.evals = (4, 8), 32, 150, 128, 24, 10
    if args.steps is not None:
        s.steps = args.steps
    if args.width is not None:
        s.width = args.width
    if args.lr is not None:
        s.lr = args.lr
    if s.steps < 0 or s.width < 1 or (s.lr is not None and not s.lr > 0):
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


def prepare_out(out: str) -> str:
    """Create ``out`` and check that a file can be written there; a one-line SystemExit if not."""
    path = os.path.abspath(out)
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".fastinit-write-check-"):
            pass
    except OSError as e:
        raise SystemExit(f"fastinit demo: cannot write to --out {out!r}: "
                         f"{e.strerror or e} ({path})") from None
    return path


def _imports(no_plots: bool) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise SystemExit("fastinit demo needs torch; the CPU build is enough: "
                         f"{TORCH_CPU}") from None
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise SystemExit("fastinit demo: the dataset comes with scikit-learn: pip install "
                         "scikit-learn") from None
    if not no_plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise SystemExit("fastinit demo draws with matplotlib: pip install matplotlib "
                             "(or run with --no-plots)") from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the demo; returns the exit status (0)."""
    args = _parser().parse_args(list(argv) if argv is not None else None)
    s = settings_from(args)
    _imports(args.no_plots)
    import torch

    import fastinit
    _check_device(s.device)
    out = prepare_out(args.out if args.out is not None else DEFAULT_OUT)
    # The vanished nets hold values below 1e-38 (denormals), which x86 computes up to 100x
    # slower; they are flushed to zero during the run, as GPUs do (restored afterwards).
    flushed = torch.device(s.device).type == "cpu" and torch.set_flush_denormal(True)
    try:
        return _run(args, s, out)
    finally:
        if flushed:
            torch.set_flush_denormal(False)


def _run(args: argparse.Namespace, s: Settings, out: str) -> int:
    import torch

    import fastinit
    t_start = time.perf_counter()
    torch.manual_seed(s.seed)
    data = load_data(s.seed, s.device)
    trained = s.steps > 0
    n_models = len(s.inits) * len(s.activations)
    stats_units = sum(d * 35 * n_models for d in s.depths)
    train_units = sum(d * s.steps * len(s.activations) for d in s.depths) if trained else 0
    progress = Progress(stats_units + train_units, enabled=not args.no_progress)

    print(f"fastinit {fastinit.__version__} demo: why initialization matters")
    print(f"MLPs of depth {' and '.join(map(str, s.depths))} (hidden layers of width {s.width}: "
          f"Linear + activation; a Linear head), on scikit-learn's digits "
          f"({data.x_train.shape[0]} train / {data.x_test.shape[0]} test images, 8x8 pixels, "
          f"10 classes); device {s.device}, seed {s.seed}; writing to {out}")
    print("inits (biases 0; every model of one depth draws the same standard normals, scaled):")
    for init in s.inits:
        print(f"  {init:<12} {INIT_TEXT[init]}")
    gains = ", ".join(f"{a} {critical_gain(a):.4g}" for a in s.activations)
    print(f"  (critical gains: {gains}; LeCun and Xavier coincide on the square hidden layers)",
          flush=True)

    results: List[Result] = []
    models: Dict[Any, Any] = {}
    gen = torch.Generator().manual_seed(s.seed)
    pick = torch.randperm(data.x_train.shape[0], generator=gen)[:s.stats_batch].to(s.device)
    xb, yb = data.x_train[pick], data.y_train[pick]
    for depth in s.depths:
        for activation in s.activations:
            progress.phase(f"at init: depth {depth}, {activation}")
            for init in s.inits:
                r = Result(depth, activation, init)
                model = build_mlp(depth, s.width, activation, init, s.seed, s.device,
                                  batch=xb if init == LSUV else None)
                measure(r, model, xb, yb, s.bins)
                results.append(r)
                models[(depth, activation, init)] = model
                progress.advance(depth * 35)
    t_stats = time.perf_counter() - t_start

    over_training = None
    t_train = 0.0
    if trained:
        t0 = time.perf_counter()
        over_training = _train(results, models, data, s, progress, with_watch=not args.no_plots)
        t_train = time.perf_counter() - t0
    progress.phase("writing")
    progress.done()

    print(f"\n1. At initialization: one batch of {xb.shape[0]} training images, forward and "
          "backward (cross-entropy), recorded with fastinit.watch(batch_stats=True)")
    print("   Each layer is judged against the start of the propagation (activations: the "
          "input; gradients: the last layer):")
    print("   exploding: NaN/Inf or std > 1e2 x the start; vanishing: std < 1e-2 x the start; "
          "dead: >= 90% exact zeros;")
    print("   saturated: tanh/sigmoid mean slope < 0.3 of its maximum; the net takes its worst "
          "layer's label.")
    print("   Activation std = the spread across the batch (each unit's deviation from its "
          "batch mean): a unit stuck at a constant carries nothing about the input.")
    for depth in s.depths:
        print(f"\n   Activations: std across the batch per layer (L0 = the input), depth {depth}")
        print(format_profile_table(results, depth, "activations"))
        print(f"\n   Gradients dL/dh: std per layer (flowing back from L{depth} to L1), depth "
              f"{depth}")
        print(format_profile_table(results, depth, "gradients"), flush=True)

    if trained:
        print(f"\n2. Training: {s.steps} steps of SGD (momentum {s.momentum}, batch {s.batch}, "
              f"the same batches for every model; peak lr "
              + ", ".join(f"{s.lr_for(d):g} at depth {d}" for d in s.depths)
              + f", warm-up {s.warmup:.0%} then cosine decay); test accuracy on the held-out "
              f"20% (chance 10%): >= {TRAINED_ACCURACY:.0%} trained, >= "
              f"{LEARNING_ACCURACY:.0%} learning, else stuck; NaN/Inf loss: diverged")
        if s.lr is None:
            print("   (lr 0.2/depth: the largest step that trains the healthy nets shrinks with "
                  "depth; one rule for every init, so the comparison is fair)")
        print(format_training_table(results))

    all_lessons = lessons(results, s, trained)
    seconds = time.perf_counter() - t_start
    write_csvs(results, out)
    write_summary(results, s, out, seconds, all_lessons)
    t0 = time.perf_counter()
    files: List[str] = []
    if not args.no_plots:
        from .figures import draw
        files = draw(results, s, out, trained, over_training)
    t_plots = time.perf_counter() - t0
    print("\nSummary: " + ("the inits by training outcome (test accuracy)" if trained else
                           "healthy at init (activations / gradients), no training (--steps 0)"))
    print(format_summary(results, trained))
    print("\nWhat this run shows:")
    for le in all_lessons:
        print(_wrap(le.text))
    names = [os.path.basename(f) for f in files] + ["stats.csv", "training.csv", "summary.json"]
    print(f"\nwrote {', '.join(names)} to {out}")
    phases = [f"statistics {t_stats:.1f} s"] + ([f"training {t_train:.1f} s"] if trained else []) \
        + ([] if args.no_plots else [f"plots {t_plots:.1f} s"])
    print(f"done in {time.perf_counter() - t_start:.1f} s ({', '.join(phases)})")
    return 0


def _wrap(text: str, width: int = 100) -> str:
    import textwrap
    return textwrap.fill(text, width=width, initial_indent="  - ", subsequent_indent="    ")


def _train(results: List[Result], models: Dict[Any, Any], data: Any, s: Settings,
           progress: Progress, with_watch: bool) -> Optional[Dict[str, Any]]:
    """Train every (depth, activation) group side by side; at the shallowest depth, watch the
    activations of two models per activation over training (for the colorful-dimension plot)."""
    from .training import train_side_by_side
    shallow = min(s.depths)
    watch_every = max(1, s.steps // 50)
    rows = []
    steps: List[int] = []
    layers = sorted({1, (shallow + 1) // 2, shallow})
    for depth in s.depths:
        for activation in s.activations:
            group = [r for r in results if (r.depth, r.activation) == (depth, activation)]
            progress.phase(f"training depth {depth}, {activation}")
            done = [0]

            def tick(n: int, depth: int = depth) -> None:
                progress.advance((n - done[0]) * depth)
                done[0] = n
            taps = [i for i, r in enumerate(group) if r.init in WATCHED.get(activation, ())] \
                if with_watch and depth == shallow else []
            w = train_side_by_side(group, [models[(depth, activation, r.init)] for r in group],
                                   data, s, tick=tick, watch_taps=taps, watch_every=watch_every,
                                   bins=40, act_range=RANGES.get(activation))
            if w is not None:
                steps = w.steps
                per_step = [(w.histograms("activations", step=st),
                             w.records("activations", step=st)) for st in steps]
                for g in taps:
                    hists = {layer: [_without_zeros(h.get(f"taps.{g}.{layer - 1}"),
                                                    rec[f"taps.{g}.{layer - 1}"].zeros)
                                     for h, rec in per_step] for layer in layers}
                    zeros = activation == "relu"
                    rows.append((f"{activation}, {group[g].init}"
                                 + (" (exact zeros left out)" if zeros else ""), hists,
                                 RANGES.get(activation)))
    if not rows:
        return None
    order = {a: i for i, a in enumerate(ACTIVATIONS)}
    rows.sort(key=lambda row: order.get(row[0].split(",")[0], 9))
    return {"rows": rows, "steps": steps, "layers": layers, "depth": shallow}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
