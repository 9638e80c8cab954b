"""Which stream elements a tensor holds: element ``m`` (a multi-index) of a target is stream
element ``base + sum(m[d] * strides[d])``. A whole tensor holds its own row-major order; a shard
of a sharded tensor holds the global tensor's indices of its slice (dispatch/sharding.py)."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def row_major_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= max(int(n), 1)
    return tuple(reversed(strides))


_ROW_MAJOR: dict = {}
_ROW_MAJOR_LOGICAL: dict = {}


def row_major_strides_cached(shape: tuple) -> tuple[int, ...]:
    """row_major_strides(shape), memoised per shape (the per-call paths ask for it each call)."""
    strides = _ROW_MAJOR.get(shape)
    if strides is None:
        if len(_ROW_MAJOR) > 4096:
            _ROW_MAJOR.clear()
        strides = _ROW_MAJOR[shape] = row_major_strides(shape)
    return strides


class Logical:
    """Which stream elements a target holds: element m (a multi-index) is stream element
    base + sum(m[d] * strides[d]). The default is the target's own row-major order."""

    def __init__(self, strides: Sequence[int], base: int = 0) -> None:
        self.strides = tuple(int(s) for s in strides)
        self.base = int(base)

    @staticmethod
    def of(shape: Sequence[int]) -> "Logical":
        return Logical(row_major_strides(shape), 0)

    @staticmethod
    def row_major(shape: tuple) -> "Logical":
        """Logical.of(shape), shared per shape (a Logical is never changed)."""
        logical = _ROW_MAJOR_LOGICAL.get(shape)
        if logical is None:
            if len(_ROW_MAJOR_LOGICAL) > 4096:
                _ROW_MAJOR_LOGICAL.clear()
            logical = _ROW_MAJOR_LOGICAL[shape] = Logical(row_major_strides_cached(shape), 0)
        return logical

    def is_default_for(self, shape: Sequence[int]) -> bool:
        return self.base == 0 and self.strides == row_major_strides(shape)

    def indices(self, shape: Sequence[int]) -> np.ndarray:
        idx = np.full(tuple(shape), self.base, dtype=np.uint64)
        for d, (n, s) in enumerate(zip(shape, self.strides)):
            view = [1] * len(shape)
            view[d] = n
            idx += (np.arange(n, dtype=np.uint64) * np.uint64(s)).reshape(view)
        return idx
