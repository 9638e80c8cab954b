"""``python -m fastinit demo``: the command line of the demo (see fastinit/demo/__init__.py)."""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional, Sequence

from ..watch.verdicts import EXPLODING_RATIO, VANISHING_RATIO
from .experiment import (
    ACTIVATIONS,
    INIT_LABELS,
    LEARNING_ACCURACY,
    TRAINED_ACCURACY,
    Result,
    Settings,
    build_mlp,
    load_data,
    measure,
    train_side_by_side,
)
from .figures import draw
from .report import (
    format_profile_table,
    format_summary,
    format_training_table,
    lessons,
    write_csvs,
    write_summary,
)


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
