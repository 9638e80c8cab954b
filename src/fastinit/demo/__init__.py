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

Modules: :mod:`.experiment` (settings, data, the models, measuring and training),
:mod:`.report` (the printed tables and the CSV/JSON files), :mod:`.figures` (the PNG plots),
:mod:`.cli` (the command line). Imports: the public fastinit API, fastinit.watch; torch,
scikit-learn and matplotlib at run time.
"""
from .cli import main
from .experiment import INIT_LABELS, SideBySide, _init_fn, build_mlp  # noqa: F401 (used by tests)

__all__ = ["main", "INIT_LABELS", "SideBySide", "build_mlp"]
