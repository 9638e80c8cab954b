"""Argument checks of the initializers beyond torch (made before any key is drawn)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np


def real(fn: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        try:
            value = float(value)  # 0-d tensors and arrays
        except (TypeError, ValueError):
            raise TypeError(f"{fn}: {name} must be a real number, got "
                            f"{type(value).__name__}") from None
    value = float(value)
    if math.isnan(value):
        raise RuntimeError(f"{fn} expects {name} to be a number, but found {name}=nan")
    return value


def finite(fn: str, name: str, value: Any) -> float:
    value = real(fn, name, value)
    if not math.isfinite(value):
        raise RuntimeError(f"{fn} expects a finite {name}, but found {name}={value}")
    return value
