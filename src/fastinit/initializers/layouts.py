"""Weight layouts: which axis of a weight is its output, which its input, which its kernel.

torch stores weights as (out, in, *kernel); JAX, Flax, Keras, TensorFlow and most NumPy code store
them as (*kernel, in, out): (in, out) for a dense layer, HWIO for a 2-D convolution. The fans of a
weight, and hence the scale of every fan-based initializer, depend on which is which. A *layout*
says so, either by name or as a pattern with one letter per dimension:

- ``"torch"`` = ``"oi..."``: (out, in, *kernel), torch's Linear and ConvNd weights (the default);
- ``"jax"`` = ``"...io"`` (also ``"flax"``, ``"keras"``, ``"tf"``, ``"tensorflow"``):
  (*kernel, in, out), JAX's default ``in_axis=-2, out_axis=-1`` and Keras' kernels;
- ``"io..."``: (in, out, *kernel), torch's ConvTransposeNd weights (torch's own fan computation
  reads them as (out, in, ...));
- ``"oi"``, ``"io"``: 2-D weights only, torch's and JAX/Keras/NumPy's dense order;
- any pattern with one letter per dimension: ``o`` the output, ``i`` the input, any other
  letter a kernel (spatial) dimension: ``"oihw"``, ``"hwio"`` (JAX/Keras Conv2D), ``"ohwi"``,
  ``"dhwio"`` (Conv3D), ``"wio"`` (Conv1D), ...

Patterns are case-insensitive (``"HWIO"`` is ``"hwio"``) and hold exactly one ``o``, one ``i``
and at most one ``...`` (any number of kernel dimensions, zero included); without ``...`` a
pattern must have one letter per dimension of the weight. With ``k`` the product of the kernel
dimensions::

    fan_in = size(i) * k        fan_out = size(o) * k

which for ``"torch"`` is exactly ``torch.nn.init._calculate_fan_in_and_fan_out``, and for
``"jax"`` exactly JAX's ``_compute_fans`` with its default axes.

>>> fastinit.calculate_fans((3, 3, 64, 128), layout="hwio")
(576, 1152)
>>> fastinit.calculate_fans(torch.empty(128, 64, 3, 3))          # torch layout
(576, 1152)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, Union

__all__ = ["calculate_fans", "LAYOUT_NAMES"]

LAYOUT_NAMES = {
    "torch": "oi...",
    "jax": "...io",
    "flax": "...io",
    "keras": "...io",
    "tf": "...io",
    "tensorflow": "...io",
}

Shape = Sequence[int]
ShapeLike = Union[Shape, Any]  # a shape, or anything with a .shape (tensor, array)


@dataclass(frozen=True)
class Axes:
    """The roles of the dimensions of one weight: out axis, in axis, kernel axes."""

    out_axis: int
    in_axis: int
    kernel_axes: tuple[int, ...]

    @property
    def to_torch_order(self) -> tuple[int, ...]:
        """The permutation that views the weight as (out, in, *kernel)."""
        return (self.out_axis, self.in_axis) + self.kernel_axes


def shape_of(x: ShapeLike) -> tuple[int, ...]:
    shape = getattr(x, "shape", x)
    try:
        return tuple(int(n) for n in shape)
    except TypeError:
        raise TypeError(f"expected a tensor, an array or a shape, got {type(x).__name__}") from None


def resolve_layout(layout: str, ndim: int, fn: str = "calculate_fans") -> Axes:
    """The axes of a weight with `ndim` dimensions stored in `layout` (ValueError if they do
    not fit)."""
    if not isinstance(layout, str):
        raise TypeError(f"{fn}: layout must be a string, got {type(layout).__name__}")
    if ndim < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    pattern = LAYOUT_NAMES.get(layout.lower(), layout.lower())
    explain = (f"{fn}: invalid layout {layout!r}: expected one of {sorted(LAYOUT_NAMES)} or a "
               "pattern with one 'o', one 'i', kernel letters and at most one '...' "
               "(e.g. 'oi...', '...io', 'hwio')")
    if pattern.count("...") > 1:
        raise ValueError(explain)
    head, ellipsis, tail = pattern.partition("...")
    letters = head + tail
    if (not letters.isalpha() or not letters.isascii() or letters.count("o") != 1
            or letters.count("i") != 1 or len(set(letters)) != len(letters)):
        raise ValueError(explain)
    if ellipsis:
        if len(letters) > ndim:
            raise ValueError(f"{fn}: layout {layout!r} needs at least {len(letters)} dimensions, "
                             f"but the weight has {ndim}")
        roles = list(head) + ["k"] * (ndim - len(letters)) + list(tail)
    else:
        if len(letters) != ndim:
            raise ValueError(
                f"{fn}: layout {layout!r} describes {len(letters)} dimensions, but the weight "
                f"has {ndim}" + (" (use 'oi...' or 'torch' for (out, in, *kernel), '...io' or "
                                 "'jax' for (*kernel, in, out))" if len(letters) == 2 else ""))
        roles = list(letters)
    out_axis = roles.index("o")
    in_axis = roles.index("i")
    kernel = tuple(d for d, r in enumerate(roles) if r not in ("o", "i"))
    return Axes(out_axis, in_axis, kernel)


def fans_of_shape(shape: Shape, layout: str, fn: str = "calculate_fans") -> tuple[int, int]:
    axes = resolve_layout(layout, len(shape), fn)
    receptive_field = 1
    for d in axes.kernel_axes:
        receptive_field *= shape[d]
    return shape[axes.in_axis] * receptive_field, shape[axes.out_axis] * receptive_field


def calculate_fans(tensor: ShapeLike, layout: str = "torch") -> tuple[int, int]:
    """(fan_in, fan_out) of a weight (a tensor, an array or a shape) stored in `layout`.

    ``layout="torch"`` (the default) reads the weight as (out, in, *kernel), as
    ``torch.nn.init._calculate_fan_in_and_fan_out`` does; ``"jax"`` (or ``"...io"``, or
    ``"hwio"`` for a 2-D convolution, ``"io"`` for a dense weight) as (*kernel, in, out). See the
    module docstring for every layout.

    >>> fastinit.calculate_fans((256, 512), layout="io")     # a JAX/Keras Dense kernel
    (256, 512)
    >>> fastinit.calculate_fans((512, 256))                   # the same layer in torch
    (256, 512)
    """
    return fans_of_shape(shape_of(tensor), layout)
