"""What each torch module's own ``reset_parameters()`` does, as planned fills: a handler per
module class (Linear, Conv*, Embedding, norms, RNNs, MultiheadAttention, ...), found through the
class's ``reset_parameters`` function (:func:`registry`), so a subclass that overrides it is not
mistaken for its base."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..dispatch.sharding import is_dtensor, local_tensor, shard_layout
from ..dispatch.target import torch_module
from ..fans import calculate_fan_in_and_fan_out, calculate_gain
from . import plan as _plan

if TYPE_CHECKING:  # pragma: no cover
    from .reset import ModelPlan


class Fallback(Exception):
    """A known module whose tensors are not what its handler expects: use its own reset."""


def _param(m: Any, name: str) -> Any:
    """A module's own parameter (or buffer) ``name``, or None; Fallback when the attribute is a
    computed tensor (a parametrization) that a fill would not reach."""
    if name in m._parameters:
        return m._parameters[name]
    if name in m._buffers:
        return m._buffers[name]
    if getattr(m, name, None) is not None:
        raise Fallback(name)
    return None


def _numel(t: Any) -> int:
    return int(t.numel())


def _fan_in(w: Any) -> int:
    return calculate_fan_in_and_fan_out(w)[0]


def _kaiming_uniform_bound(w: Any, a: float) -> float:
    # as fastinit.kaiming_uniform_ (and torch) compute it: sqrt(3) * gain / sqrt(fan_in)
    return math.sqrt(3.0) * (calculate_gain("leaky_relu", a) / math.sqrt(_fan_in(w)))


_LINEAR_BOUNDS: dict = {}
_plan.CACHES.append(_LINEAR_BOUNDS)


def _linear_bounds(w: Any) -> tuple:
    """(weight bound or None for an empty weight, bias bound) of Linear/Conv's reset, per
    weight shape."""
    shape = w.shape
    bounds = _LINEAR_BOUNDS.get(shape)
    if bounds is None:
        weight = _kaiming_uniform_bound(w, math.sqrt(5)) if _numel(w) > 0 else None
        fan_in = _fan_in(w)
        bounds = (weight, 1 / math.sqrt(fan_in) if fan_in > 0 else 0)
        if len(_LINEAR_BOUNDS) > 4096:
            _LINEAR_BOUNDS.clear()
        _LINEAR_BOUNDS[shape] = bounds
    return bounds


def _xavier_std(w: Any) -> float:
    fan_in, fan_out = calculate_fan_in_and_fan_out(w)
    return 1.0 * math.sqrt(2.0 / float(fan_in + fan_out))


def _h_linear(m: Any, plan: "ModelPlan") -> None:
    """Linear and Conv*/ConvTranspose*: kaiming_uniform_(a=sqrt(5)), bias U(+-1/sqrt(fan_in))."""
    w, b = _param(m, "weight"), _param(m, "bias")
    weight_bound, bias_bound = _linear_bounds(w)
    if weight_bound is not None:
        plan.uniform(w, weight_bound)
    if b is not None:
        plan.uniform(b, bias_bound)


def _h_bilinear(m: Any, plan: "ModelPlan") -> None:
    if m.in1_features <= 0:
        raise ValueError(f"in1_features must be > 0, but got (in1_features={m.in1_features})")
    w, b = _param(m, "weight"), _param(m, "bias")
    bound = 1 / math.sqrt(w.size(1))
    plan.uniform(w, bound)
    if b is not None:
        plan.uniform(b, bound)


def _zero_row(t: Any, row: int) -> None:
    """Zero global row ``row`` of t (a DTensor: in the rank holding it)."""
    torch = torch_module()
    with torch.no_grad():
        if is_dtensor(t):
            layout = shard_layout(t, "reset_parameters")
            r = row - layout.global_offset[0]
            if 0 <= r < layout.local_shape[0]:
                local_tensor(t)[r].zero_()
        else:
            t[row].zero_()


def _h_embedding(m: Any, plan: "ModelPlan") -> None:
    """Embedding, EmbeddingBag: N(0, 1), the padding_idx row zero."""
    w = _param(m, "weight")
    pad = m.padding_idx
    plan.normal(w, 1.0, None if pad is None else (lambda t, _p=pad: _zero_row(t, _p)))


def _h_affine(flag: str, weight: str = "weight", bias: str = "bias") -> Callable:
    def handler(m: Any, plan: "ModelPlan") -> None:
        if getattr(m, flag):
            plan.const(_param(m, weight), 1.0)
            b = _param(m, bias)
            if b is not None:
                plan.const(b, 0.0)
    return handler


def _h_norm_base(m: Any, plan: "ModelPlan") -> None:
    """BatchNorm*, InstanceNorm*, SyncBatchNorm: running stats reset, then ones/zeros."""
    if m.track_running_stats:
        for name, value in (("running_mean", 0.0), ("running_var", 1.0),
                            ("num_batches_tracked", 0)):
            t = _param(m, name)
            if t is not None:
                plan.const(t, value)
    _h_affine("affine")(m, plan)


def _h_rnn(m: Any, plan: "ModelPlan") -> None:
    """RNN/LSTM/GRU and their cells: every parameter U(+-1/sqrt(hidden_size))."""
    stdv = 1.0 / math.sqrt(m.hidden_size) if m.hidden_size > 0 else 0
    for p in m.parameters():
        plan.uniform(p, stdv)


def _h_prelu(m: Any, plan: "ModelPlan") -> None:
    plan.const(_param(m, "weight"), float(m.init))


def _h_children_only(m: Any, plan: "ModelPlan") -> None:
    """Modules whose reset_parameters() only resets their children (which are planned)."""


def _h_mha(m: Any, plan: "ModelPlan") -> None:
    """MultiheadAttention._reset_parameters: xavier_uniform_ projections, zero biases,
    xavier_normal_ bias_k/bias_v; out_proj.weight keeps its Linear init."""
    if m._qkv_same_embed_dim:
        names = ("in_proj_weight",)
    else:
        names = ("q_proj_weight", "k_proj_weight", "v_proj_weight")
    for name in names:
        w = _param(m, name)
        plan.uniform(w, math.sqrt(3.0) * _xavier_std(w))
    if _param(m, "in_proj_bias") is not None:
        plan.const(m.in_proj_bias, 0.0)
        plan.const(_param(m.out_proj, "bias"), 0.0)
    for name in ("bias_k", "bias_v"):
        t = _param(m, name)
        if t is not None:
            plan.normal(t, _xavier_std(t))


def _h_transformer(m: Any, plan: "ModelPlan") -> None:
    """nn.Transformer._reset_parameters: xavier_uniform_ on every parameter with dim > 1."""
    for p in m.parameters():
        if p.dim() > 1:
            plan.uniform(p, math.sqrt(3.0) * _xavier_std(p))


def _lazy(handler: Callable, size_attr: str) -> Callable:
    """Lazy modules: nothing until materialized (and nothing for a zero size), as in torch."""
    def lazy_handler(m: Any, plan: "ModelPlan") -> None:
        if m.has_uninitialized_params() or getattr(m, size_attr) == 0:
            return
        handler(m, plan)
    return lazy_handler


REGISTRY: Optional[tuple[dict, dict]] = None


def registry() -> tuple[dict, dict]:
    """({reset_parameters function: handler}, {_reset_parameters function: handler})."""
    global REGISTRY
    if REGISTRY is not None:
        return REGISTRY
    import torch.nn as nn
    from torch.nn.modules import batchnorm, conv, rnn

    public: dict = {}

    def add(cls: Any, handler: Callable, attr: str = "reset_parameters") -> None:
        fn = getattr(cls, attr, None)
        if fn is not None:
            public[fn] = handler

    add(nn.Linear, _h_linear)
    add(nn.LazyLinear, _lazy(_h_linear, "in_features"))
    add(conv._ConvNd, _h_linear)
    add(conv._LazyConvXdMixin, _lazy(_h_linear, "in_channels"))
    add(nn.Bilinear, _h_bilinear)
    add(nn.Embedding, _h_embedding)
    add(nn.EmbeddingBag, _h_embedding)
    add(nn.LayerNorm, _h_affine("elementwise_affine"))
    add(nn.GroupNorm, _h_affine("affine"))
    if hasattr(nn, "RMSNorm"):
        add(nn.RMSNorm, _h_affine("elementwise_affine"))
    add(batchnorm._NormBase, _h_norm_base)
    add(batchnorm._LazyNormBase, _lazy(_h_norm_base, "num_features"))
    add(rnn.RNNBase, _h_rnn)
    add(rnn.RNNCellBase, _h_rnn)
    add(nn.PReLU, _h_prelu)
    add(nn.AdaptiveLogSoftmaxWithLoss, _h_children_only)
    private = {nn.MultiheadAttention._reset_parameters: _h_mha,
               nn.Transformer._reset_parameters: _h_transformer}
    REGISTRY = (public, private)
    return REGISTRY
