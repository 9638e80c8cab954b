"""What an init function is given besides its tensor: scalars parsed as torch parses them, and
``__torch_function__`` honoured as torch.nn.init honours it.

torch's argument parser takes, for a ``float`` parameter, a Python float, int or bool, a NumPy
real scalar or a 0-d real tensor, and raises ``TypeError`` for anything else (a numeric string
too); the checks here give the same exception types, so a call that fails in torch fails here,
before any key is drawn.
"""
from __future__ import annotations

import math
import sys
from typing import Any, Callable

import numpy as np


def _type_name(value: Any) -> str:
    kind = type(value)
    module = kind.__module__
    if module == "numpy":
        return f"numpy.{kind.__name__}"
    return kind.__name__


def float_arg(fn: str, name: str, position: int, value: Any) -> float:
    """A float argument as torch's parser reads it (``fn(): argument 'name' (position p) must be
    float, not str``); NaN passes (the caller's checks decide about it)."""
    kind = type(value)
    if kind is float:
        return value
    if kind is int or kind is bool or isinstance(value, (np.floating, np.integer, np.bool_)):
        return float(value)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor) and value.dim() == 0:
        if value.is_complex():
            raise RuntimeError("value cannot be converted to type double without overflow")
        return float(value.item())
    if isinstance(value, (int, float)):  # subclasses (IntEnum, ...)
        return float(value)
    raise TypeError(f"{fn}(): argument '{name}' (position {position}) must be float, "
                    f"not {_type_name(value)}")


def real(fn: str, name: str, value: Any) -> float:
    """A real number as torch's parser takes one (float_arg), NaN refused with torch's
    RuntimeError; anything else a TypeError naming the argument."""
    if type(value) is not float:
        try:
            value = float_arg(fn, name, 0, value)
        except TypeError:
            raise TypeError(f"{fn}: {name} must be a real number, got {_type_name(value)}") from None
    if value != value:
        raise RuntimeError(f"{fn} expects {name} to be a number, but found {name}=nan")
    return value


def finite(fn: str, name: str, value: Any) -> float:
    value = real(fn, name, value)
    if not math.isfinite(value):
        raise RuntimeError(f"{fn} expects a finite {name}, but found {name}={value}")
    return value


def scalar_arg(value: Any) -> Any:
    """A value torch hands to a Scalar parameter (``mul_(gain)``): an int beyond int64 is an
    OverflowError there, as here; anything else is returned for the caller's checks."""
    if type(value) is int and not -(1 << 63) <= value < (1 << 63):
        raise OverflowError("int too big to convert")
    return value


def constant_value(value: Any) -> Any:
    """torch's ``fill_`` value checks, for a NumPy destination: a number (bool, int, float,
    NumPy or 0-d tensor scalar); an int beyond int64 is an OverflowError as in torch."""
    if type(value) is int:
        return scalar_arg(value)
    if isinstance(value, (int, float, np.bool_, np.integer, np.floating)):
        return value
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor) and value.dim() == 0:
        return value.item()
    raise TypeError(f"fill_() received an invalid combination of arguments - got "
                    f"({_type_name(value)})")


_HAS_TORCH_FUNCTION: list = []


def has_torch_function(tensor: Any) -> bool:
    """Whether torch would hand a call on ``tensor`` to a ``__torch_function__`` override (a
    tensor subclass, or an active TorchFunctionMode), as torch.nn.init checks."""
    if not _HAS_TORCH_FUNCTION:
        torch = sys.modules.get("torch")
        if torch is None:
            return False
        _HAS_TORCH_FUNCTION.append(torch.overrides.has_torch_function_variadic)
    return _HAS_TORCH_FUNCTION[0](tensor)


def handle_torch_function(fn: Callable, tensor: Any, **kwargs: Any) -> Any:
    """Call ``fn`` through the ``__torch_function__`` protocol, as torch.nn.init does: the
    override receives ``fn`` (the fastinit function) and its arguments."""
    torch = sys.modules["torch"]
    return torch.overrides.handle_torch_function(fn, (tensor,), tensor=tensor, **kwargs)
