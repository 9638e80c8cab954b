"""What each patched function becomes: a replacement with the signature and semantics of the
function it replaces, whose values come from fastinit's stream.

A replacement calls the public fastinit function of the same law (``fastinit.init.uniform_``,
``fastinit.initializers.trunc_normal_std_``, ...), looked up at call time, so every speed-up of
those functions reaches patched code. It hands back to the original function whatever
fastinit does not write itself, so the original's behaviour is kept there:

- tensors that are not plain ``torch.Tensor``/``nn.Parameter`` (or DTensors): subclasses with
  ``__torch_function__``, fake and functional tensors;
- dtypes other than float16, bfloat16, float32 and float64 (complex, integer: torch's error);
- calls under a torch function mode other than ``torch.device(...)``'s, and calls while
  ``torch.compile`` traces.

``generator=None`` draws from the generator of the innermost :func:`fastinit.patch` that set
one, else from torch's default generator (so ``torch.manual_seed`` governs the values).
"""
from __future__ import annotations

import functools
import sys
import warnings
from typing import Any, Callable

from .. import fans as _fans
from .. import init as _init
from .. import initializers as _initializers
from ..dispatch.sharding import is_dtensor

# The active patches (innermost last); each has a .generator (None: none set).
GENERATORS: list = []


# While a set is on this stack, every routed function that writes a whole tensor (all of
# them but the gain and fan helpers) adds id(tensor) to the innermost set: materialize's
# record of what a library's init wrote in full, whatever was there before.
WRITES: list = []


def _written(tensor: Any, out: Any) -> Any:
    if WRITES:
        WRITES[-1].add(id(tensor))
    return out


def current_generator(generator: Any) -> Any:
    if generator is not None:
        return generator
    for p in reversed(GENERATORS):
        if p.generator is not None:
            return p.generator
    return None


class _Torch:
    """torch's pieces the checks need, looked up once."""
    tensor: Any = None
    parameter: Any = None
    floats: frozenset = frozenset()
    stack_len: Any = None
    modes: Any = None
    device_mode: Any = None
    compiling: Any = None


def _setup() -> _Torch:
    if _Torch.tensor is None:
        torch = sys.modules["torch"]
        _Torch.parameter = torch.nn.Parameter
        _Torch.floats = frozenset((torch.float16, torch.bfloat16, torch.float32, torch.float64))
        _Torch.stack_len = torch._C._len_torch_function_stack
        from torch.overrides import _get_current_function_mode_stack
        _Torch.modes = _get_current_function_mode_stack
        try:
            from torch.utils._device import DeviceContext
            _Torch.device_mode = DeviceContext
        except ImportError:  # pragma: no cover - older torch
            _Torch.device_mode = ()
        compiler = getattr(torch, "compiler", None)
        _Torch.compiling = getattr(compiler, "is_compiling", None) or (lambda: False)
        _Torch.tensor = torch.Tensor
    return _Torch


def routable(tensor: Any, whole: bool = False) -> bool:
    """Whether fastinit writes ``tensor`` itself (else the original function runs).
    whole: the function needs the whole tensor (orthogonal_, sparse_, eye_, dirac_): DTensors go
    to the original."""
    t = _Torch if _Torch.tensor is not None else _setup()
    cls = type(tensor)
    if cls is not t.tensor and cls is not t.parameter:
        if whole or not is_dtensor(tensor):
            return False
    if tensor.dtype not in t.floats:
        return False
    if t.stack_len() and not all(isinstance(m, t.device_mode) for m in t.modes()):
        return False
    return not t.compiling()


def _wrap(original: Callable, replacement: Callable) -> Callable:
    functools.update_wrapper(replacement, original)
    replacement.__module__ = __name__
    replacement.__wrapped__ = original
    replacement._fastinit_routes = original  # type: ignore[attr-defined]
    return replacement


# ----------------------------------------------------------------------------------------------
# torch.nn.init


def _torch_uniform(original: Callable) -> Callable:
    def uniform_(tensor, a=0.0, b=1.0, generator=None):
        if routable(tensor):
            return _written(tensor, _init.uniform_(tensor, a, b, current_generator(generator)))
        return _written(tensor, original(tensor, a=a, b=b, generator=generator))
    return _wrap(original, uniform_)


def _torch_normal(original: Callable) -> Callable:
    def normal_(tensor, mean=0.0, std=1.0, generator=None):
        if routable(tensor):
            return _written(tensor, _init.normal_(tensor, mean, std, current_generator(generator)))
        return _written(tensor, original(tensor, mean=mean, std=std, generator=generator))
    return _wrap(original, normal_)


def _torch_trunc_normal(original: Callable) -> Callable:
    def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
        if routable(tensor):
            return _written(
                tensor, _init.trunc_normal_(tensor, mean, std, a, b, current_generator(generator)))
        return _written(tensor, original(tensor, mean=mean, std=std, a=a, b=b, generator=generator))
    return _wrap(original, trunc_normal_)


def _torch_xavier(original: Callable, ours: str) -> Callable:
    def xavier_(tensor, gain=1.0, generator=None):
        if routable(tensor):
            return _written(
                tensor, getattr(_init, ours)(tensor, gain, current_generator(generator)))
        return _written(tensor, original(tensor, gain=gain, generator=generator))
    return _wrap(original, xavier_)


def _torch_kaiming(original: Callable, ours: str) -> Callable:
    def kaiming_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
        if routable(tensor):
            out = getattr(_init, ours)(tensor, a, mode, nonlinearity,
                                       current_generator(generator))
            return _written(tensor, out)
        out = original(tensor, a=a, mode=mode, nonlinearity=nonlinearity, generator=generator)
        return _written(tensor, out)
    return _wrap(original, kaiming_)


def _torch_orthogonal(original: Callable) -> Callable:
    def orthogonal_(tensor, gain=1, generator=None):
        if routable(tensor, whole=True):
            return _written(tensor, _init.orthogonal_(tensor, gain, current_generator(generator)))
        return _written(tensor, original(tensor, gain=gain, generator=generator))
    return _wrap(original, orthogonal_)


def _torch_sparse(original: Callable) -> Callable:
    def sparse_(tensor, sparsity, std=0.01, generator=None):
        if routable(tensor, whole=True):
            return _written(
                tensor, _init.sparse_(tensor, sparsity, std, current_generator(generator)))
        return _written(tensor, original(tensor, sparsity, std=std, generator=generator))
    return _wrap(original, sparse_)


def _torch_same(original: Callable, ours: str, whole: bool = False) -> Callable:
    """constant_, ones_, zeros_, eye_, dirac_: fastinit's, which are torch's ops."""
    def replacement(tensor, *args, **kwargs):
        if routable(tensor, whole):
            return _written(tensor, getattr(_init, ours)(tensor, *args, **kwargs))
        return _written(tensor, original(tensor, *args, **kwargs))
    return _wrap(original, replacement)


def _torch_no_grad(original: Callable, kind: str) -> Callable:
    """torch.nn.init's private _no_grad_* helpers (positional as torch defines them)."""
    if kind == "uniform":
        def replacement(tensor, a, b, generator=None):
            if routable(tensor):
                return _written(tensor, _init.uniform_(tensor, a, b, current_generator(generator)))
            return _written(tensor, original(tensor, a, b, generator))
    elif kind == "normal":
        def replacement(tensor, mean, std, generator=None):
            if routable(tensor):
                return _written(
                    tensor, _init.normal_(tensor, mean, std, current_generator(generator)))
            return _written(tensor, original(tensor, mean, std, generator))
    elif kind == "trunc_normal":
        def replacement(tensor, mean, std, a, b, generator=None):
            if routable(tensor):
                out = _init.trunc_normal_(tensor, mean, std, a, b, current_generator(generator))
                return _written(tensor, out)
            return _written(tensor, original(tensor, mean, std, a, b, generator=generator))
    elif kind == "fill":
        def replacement(tensor, val):
            if routable(tensor):
                return _written(tensor, _init.constant_(tensor, val))
            return _written(tensor, original(tensor, val))
    else:
        def replacement(tensor):
            if routable(tensor):
                return _written(tensor, _init.zeros_(tensor))
            return _written(tensor, original(tensor))
    return _wrap(original, replacement)


def _torch_plain(original: Callable, ours: Callable) -> Callable:
    """Functions of no tensor values (gain, fans): fastinit's, the same numbers."""
    def replacement(*args, **kwargs):
        return ours(*args, **kwargs)
    return _wrap(original, replacement)


def _deprecated(original: Callable, new: Callable) -> Callable:
    """torch's deprecated aliases (nn.init.uniform, ...) bind the original function in a
    closure: the replacement warns as they do and calls the routed function."""
    name = original.__name__

    def deprecated_init(*args, **kwargs):
        warnings.warn(f"`nn.init.{name}` is now deprecated in favor of `nn.init.{name}_`.",
                      FutureWarning, stacklevel=2)
        return new(*args, **kwargs)
    return _wrap(original, deprecated_init)


def torch_routes() -> dict[str, Callable[[Callable], Callable]]:
    """{name in torch.nn.init: make(original) -> replacement}."""
    routes: dict[str, Callable[[Callable], Callable]] = {
        "uniform_": _torch_uniform,
        "normal_": _torch_normal,
        "trunc_normal_": _torch_trunc_normal,
        "xavier_uniform_": lambda o: _torch_xavier(o, "xavier_uniform_"),
        "xavier_normal_": lambda o: _torch_xavier(o, "xavier_normal_"),
        "kaiming_uniform_": lambda o: _torch_kaiming(o, "kaiming_uniform_"),
        "kaiming_normal_": lambda o: _torch_kaiming(o, "kaiming_normal_"),
        "orthogonal_": _torch_orthogonal,
        "sparse_": _torch_sparse,
        "constant_": lambda o: _torch_same(o, "constant_"),
        "ones_": lambda o: _torch_same(o, "ones_"),
        "zeros_": lambda o: _torch_same(o, "zeros_"),
        "eye_": lambda o: _torch_same(o, "eye_", whole=True),
        "dirac_": lambda o: _torch_same(o, "dirac_", whole=True),
        "calculate_gain": lambda o: _torch_plain(o, _fans.calculate_gain),
        "_calculate_fan_in_and_fan_out": lambda o: _torch_plain(
            o, _fans.calculate_fan_in_and_fan_out),
        "_calculate_correct_fan": lambda o: _torch_plain(o, _fans.calculate_correct_fan),
        "_no_grad_uniform_": lambda o: _torch_no_grad(o, "uniform"),
        "_no_grad_normal_": lambda o: _torch_no_grad(o, "normal"),
        "_no_grad_trunc_normal_": lambda o: _torch_no_grad(o, "trunc_normal"),
        "_no_grad_fill_": lambda o: _torch_no_grad(o, "fill"),
        "_no_grad_zero_": lambda o: _torch_no_grad(o, "zero"),
    }
    return routes


#: torch.nn.init's deprecated aliases and the function each forwards to.
TORCH_DEPRECATED = {name[:-1]: name for name in (
    "uniform_", "normal_", "constant_", "eye_", "dirac_", "xavier_uniform_", "xavier_normal_",
    "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")}


# ----------------------------------------------------------------------------------------------
# timm (timm.layers.weight_init; timm.models.layers.weight_init before timm 0.9)


def _timm_trunc_normal(original: Callable) -> Callable:
    """timm's trunc_normal_: torch's law, absolute bounds [a, b]."""
    def trunc_normal_(tensor, mean=0., std=1., a=-2., b=2.):
        if routable(tensor):
            return _written(
                tensor, _init.trunc_normal_(tensor, mean, std, a, b, current_generator(None)))
        return _written(tensor, original(tensor, mean, std, a, b))
    return _wrap(original, trunc_normal_)


def _timm_trunc_normal_tf(original: Callable) -> Callable:
    """timm's trunc_normal_tf_: a standard normal cut to [a, b], then scaled by std and shifted
    by mean: bounds in units of std, fastinit.trunc_normal_std_."""
    def trunc_normal_tf_(tensor, mean=0., std=1., a=-2., b=2.):
        if routable(tensor):
            out = _initializers.trunc_normal_std_(tensor, mean, std, a, b,
                                                  current_generator(None))
            return _written(tensor, out)
        return _written(tensor, original(tensor, mean, std, a, b))
    return _wrap(original, trunc_normal_tf_)


_TIMM_MODES = ("fan_in", "fan_out", "fan_avg")
_TIMM_DISTRIBUTIONS = ("truncated_normal", "normal", "uniform")


def _timm_variance_scaling(original: Callable) -> Callable:
    """timm's variance_scaling_: its default distribution is the *untruncated* normal
    (fastinit's is the truncated one); modes fan_in, fan_out, fan_avg."""
    def variance_scaling_(tensor, scale=1.0, mode='fan_in', distribution='normal'):
        if routable(tensor) and mode in _TIMM_MODES and distribution in _TIMM_DISTRIBUTIONS:
            out = _initializers.variance_scaling_(tensor, scale, mode, distribution,
                                                  generator=current_generator(None))
            return _written(tensor, out)
        return _written(tensor, original(tensor, scale, mode, distribution))
    return _wrap(original, variance_scaling_)


def _timm_lecun_normal(original: Callable) -> Callable:
    """timm's lecun_normal_: variance_scaling_(fan_in, truncated_normal), as fastinit's."""
    def lecun_normal_(tensor):
        if routable(tensor):
            out = _initializers.variance_scaling_(tensor, 1.0, "fan_in", "truncated_normal",
                                                  generator=current_generator(None))
            return _written(tensor, out)
        return _written(tensor, original(tensor))
    return _wrap(original, lecun_normal_)


def timm_routes() -> dict[str, Callable[[Callable], Callable]]:
    return {"trunc_normal_": _timm_trunc_normal, "trunc_normal_tf_": _timm_trunc_normal_tf,
            "variance_scaling_": _timm_variance_scaling, "lecun_normal_": _timm_lecun_normal}
