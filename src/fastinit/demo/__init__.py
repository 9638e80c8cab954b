"""``python -m fastinit demo``: the experiment that explains weight initialization.

Deep MLPs (10 and 50 hidden layers of width 64) with tanh, ReLU and sigmoid, initialized seven
ways: too small (``N(0, 0.01²)``), too large (``N(0, 1)``), LeCun, Xavier, Kaiming, the edge of
chaos (``fastinit.critical_gain``) and data-driven LSUV (``fastinit.lsuv_``); biases zero. Every
model of one depth draws the same standard normals (one fastinit generator seed), so the inits
other than LSUV differ only by their scale.

1. **At initialization**: one batch forward and backward under :func:`fastinit.watch` (with
   ``batch_stats=True``); per layer the spread of the activations across the batch, their mean,
   share of exact zeros and (tanh, sigmoid) mean slope, and the gradients dL/dh; each layer and
   each net judged healthy / vanishing / exploding / dead / saturated by the thresholds of
   :mod:`fastinit.watch.verdicts`.
2. **Training**: every model trains with SGD and momentum on scikit-learn's bundled digits (1797
   8x8 images, 10 classes; no download), the seven inits of one (depth, activation) side by side
   on the same minibatches, peak learning rate 0.2 / depth with a warm-up and cosine decay; test
   accuracy along the way.
3. **Summary and lessons**, generated from the run's numbers (:mod:`.lessons`): each sentence
   states what this run measured.

Files written to ``--out`` (default ``./fastinit-demo``): ``activations.png``,
``gradients.png``, ``histograms.png``, ``training.png``, ``training_histograms.png``,
``stats.csv`` (per layer), ``training.csv`` (per step), ``summary.json``.

    python -m fastinit demo                      # about 1.5 minutes on 2 idle CPU cores
    python -m fastinit demo --device cuda --out runs/demo
    python -m fastinit demo --quick              # a small configuration: about 15 s

Needs torch, scikit-learn (the dataset) and matplotlib (the plots; ``--no-plots`` skips them).

Modules: :mod:`.experiment` (settings, inits, data, models, the measured batch),
:mod:`.training` (the side-by-side stack and its training), :mod:`.lessons` (summary and
lessons), :mod:`.report` (tables, CSV/JSON), :mod:`.figures` (the PNG plots), :mod:`.progress`
(the progress bar), :mod:`.cli` (the command line). Imports: the public fastinit API,
fastinit.watch; torch, scikit-learn and matplotlib at run time.
"""
from .cli import main
from .experiment import INIT_LABELS, _init_fn, build_mlp  # noqa: F401 (used by tests)
from .training import SideBySide

__all__ = ["main", "INIT_LABELS", "SideBySide", "build_mlp"]
