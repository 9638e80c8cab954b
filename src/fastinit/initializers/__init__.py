"""Initializers beyond torch.nn.init: those of JAX, Keras and timm, and a few from papers.

Everything here is an addition: the torch.nn.init mirror (``fastinit.init``) keeps torch's
semantics. The random functions take the same path as the mirror (one key drawn from
``generator``, one fused pass, the same values on every backend, device and thread count) and the
same inputs (torch tensors on any device, views, ``requires_grad`` parameters, meta tensors,
NumPy arrays; float16, bfloat16, float32, float64).

- :mod:`.variance_scaling`: :func:`variance_scaling_` and its presets :func:`lecun_normal_`,
  :func:`lecun_uniform_`, :func:`glorot_normal_`, :func:`glorot_uniform_`, :func:`he_normal_`,
  :func:`he_uniform_` (JAX's ``jax.nn.initializers`` / Keras' ``VarianceScaling``), and
  :func:`trunc_normal_std_`, the truncated normal with bounds in units of std (timm's
  ``trunc_normal_tf_``, JAX's ``truncated_normal``);
- :mod:`.layouts`: weights stored as (in, out) or HWIO, and their fans;
- :mod:`.structured`: :func:`delta_orthogonal_` (Xiao et al. 2018) and :func:`identity_`;
- :mod:`.critical`: :func:`critical_gain` / :func:`critical_point`, the edge-of-chaos weight
  scale of an elementwise activation (Poole et al. 2016, Schoenholz et al. 2017).

>>> import fastinit
>>> w = fastinit.lecun_normal_(torch.empty(256, 128))              # torch (out, in) weight
>>> k = fastinit.he_uniform_(numpy.empty((3, 3, 64, 128), numpy.float32), layout="hwio")
>>> fastinit.variance_scaling_(w, scale=fastinit.critical_gain("tanh", 0.05) ** 2)

See docs/initializers.md for the formulas. Imports: fastinit.init (the mirror), the dispatch
and stream packages; never model, stats or watch.
"""
from .critical import CriticalPoint, critical_gain, critical_point
from .layouts import LAYOUT_NAMES, calculate_fans
from .structured import delta_orthogonal_, identity_
from .variance_scaling import (
    TRUNCATED_NORMAL_STD,
    glorot_normal_,
    glorot_uniform_,
    he_normal_,
    he_uniform_,
    lecun_normal_,
    lecun_uniform_,
    trunc_normal_std_,
    variance_scaling_,
)

__all__ = [
    "variance_scaling_", "lecun_normal_", "lecun_uniform_", "glorot_normal_", "glorot_uniform_",
    "he_normal_", "he_uniform_", "trunc_normal_std_", "delta_orthogonal_", "identity_",
    "critical_gain", "critical_point", "CriticalPoint", "calculate_fans", "LAYOUT_NAMES",
    "TRUNCATED_NORMAL_STD",
]
