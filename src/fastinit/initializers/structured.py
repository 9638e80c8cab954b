"""Structured initializers: delta-orthogonal convolutions (Xiao et al. 2018) and the identity map
(``eye_`` / ``dirac_`` with a gain, any layout).

>>> fastinit.delta_orthogonal_(torch.empty(64, 32, 3, 3), gain=fastinit.calculate_gain("tanh"))
>>> fastinit.identity_(torch.empty(64, 16, 3, 3), groups=4)
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import init as _init
from ..dispatch.arguments import finite
from ..dispatch.sharding import fill_whole_dtensor
from ..dispatch.target import as_target, is_tensor, torch_module
from ..stream.keys import GeneratorLike
from .layouts import resolve_layout, shape_of

Tensor = Any  # a torch.Tensor or a numpy.ndarray


def _permuted(tensor: Tensor, order: tuple[int, ...]) -> Tensor:
    """A view of the tensor with its dimensions in `order` (writes go through)."""
    if is_tensor(tensor):
        return tensor.permute(*order)
    return np.transpose(tensor, order)


def delta_orthogonal_(tensor: Tensor, gain: float = 1.0, generator: GeneratorLike = None, *,
                      layout: str = "torch") -> Tensor:
    """Delta-orthogonal initialization of a convolution (Xiao et al. 2018): every kernel tap is
    zero except the spatial centre (index ``k // 2`` of each kernel dimension), which holds an
    (out, in) matrix with orthonormal columns times ``gain``.

    A convolution with this weight maps each pixel's channel vector through the same isometry,
    so it preserves norms exactly (times gain): the initialization that lets CNNs of 10,000
    layers train without skip connections or normalization. Needs out_channels >= in_channels.
    The centre matrix is ``orthogonal_(torch.empty(out, in), gain, generator)``: the same values,
    float32 QR for float16/bfloat16. ``layout`` says where out, in and the kernel are
    (``"hwio"`` for a JAX/Keras convolution kernel).

    >>> fastinit.delta_orthogonal_(torch.empty(64, 32, 3, 3), gain=fastinit.calculate_gain("tanh"))
    >>> fastinit.delta_orthogonal_(numpy.empty((3, 3, 32, 64)), layout="hwio", generator=7)
    """
    fn = "delta_orthogonal_"
    shape = shape_of(tensor)
    if len(shape) < 3:
        raise ValueError(f"{fn}: only tensors with 3 or more dimensions (a convolution weight) "
                         "are supported; use orthogonal_ for a 2-D weight")
    axes = resolve_layout(layout, len(shape), fn)
    out_ch, in_ch = shape[axes.out_axis], shape[axes.in_axis]
    if out_ch < in_ch:
        raise ValueError(f"{fn}: needs out_channels >= in_channels (an orthogonal centre with "
                         f"orthonormal columns), got out={out_ch}, in={in_ch}")
    gain = finite(fn, "gain", gain)
    if fill_whole_dtensor(tensor, lambda full: delta_orthogonal_(full, gain, generator, layout=layout)):
        return tensor
    target = as_target(tensor, fn)
    if target.skip:
        return tensor
    view = _permuted(tensor, axes.to_torch_order)  # (out, in, *kernel)
    centre = (slice(None), slice(None)) + tuple(int(n) // 2 for n in view.shape[2:])
    if target.is_torch:
        torch = torch_module()
        centre_matrix = torch.empty((out_ch, in_ch), dtype=tensor.dtype, device=tensor.device)
        _init.orthogonal_(centre_matrix, gain, generator)
        with torch.no_grad():
            view.zero_()
            view[centre] = centre_matrix
        return tensor
    centre_matrix = np.empty((out_ch, in_ch), dtype=tensor.dtype)
    _init.orthogonal_(centre_matrix, gain, generator)
    view[...] = 0
    view[centre] = centre_matrix
    return tensor


def identity_(tensor: Tensor, gain: float = 1.0, groups: int = 1, *,
              layout: str = "torch") -> Tensor:
    """Fill a 2-D or convolution weight with the identity map times ``gain``.

    With the weight read as (out, in, *kernel) (see ``layout``), every element is zero except
    ``W[g * out_per_group + d, d, *centre] = gain`` for each group g and d < min(out_per_group,
    in), where out_per_group = out / groups and centre is ``k // 2`` in each kernel dimension.
    Hence a 2-D weight gets ``gain * eye(out, in)`` (torch's ``eye_``) and a 3-D, 4-D, 5-D (or
    higher) weight the Dirac delta of torch's ``dirac_(tensor, groups)``: a linear layer or a
    ('same'-padded, odd-kernel) convolution that passes its input through, scaled by gain, as in
    identity-initialized RNNs (Le et al. 2015) and residual-free deep nets. Any dtype, as torch's
    ``eye_`` and ``dirac_``; no randomness.

    >>> fastinit.identity_(torch.empty(256, 256))                  # eye
    >>> fastinit.identity_(torch.empty(64, 16, 3, 3), groups=4)    # dirac_, 4 groups
    >>> fastinit.identity_(numpy.empty((3, 3, 32, 32)), gain=0.5, layout="hwio")
    """
    fn = "identity_"
    shape = shape_of(tensor)
    if len(shape) < 2:
        raise ValueError(f"{fn}: only tensors with 2 or more dimensions are supported")
    axes = resolve_layout(layout, len(shape), fn)
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive integer, got {groups!r}")
    out_ch, in_ch = shape[axes.out_axis], shape[axes.in_axis]
    if out_ch % groups != 0:
        raise ValueError(f"{fn}: the out dimension (dim {axes.out_axis}, size {out_ch}) must be "
                         f"divisible by groups={groups}")
    gain = finite(fn, "gain", gain)
    if fill_whole_dtensor(tensor, lambda full: identity_(full, gain, groups, layout=layout)):
        return tensor
    torch = torch_module() if is_tensor(tensor) else None
    if torch is None:
        _init._writable_array(tensor, fn)
    elif tensor.is_meta:
        return tensor
    if math.prod(shape) == 0:
        return tensor
    per_group = out_ch // int(groups)
    diag = min(per_group, in_ch)
    rows = (np.arange(int(groups))[:, None] * per_group + np.arange(diag)[None, :]).ravel()
    cols = np.tile(np.arange(diag), int(groups))
    view = _permuted(tensor, axes.to_torch_order)
    centre = tuple(int(n) // 2 for n in view.shape[2:])
    if torch is not None:
        with torch.no_grad():
            view.zero_()
            if rows.size:
                index = (torch.from_numpy(rows).to(tensor.device),
                         torch.from_numpy(cols).to(tensor.device)) + centre
                view[index] = gain
        return tensor
    view[...] = 0
    if rows.size:
        view[(rows, cols) + centre] = gain
    return tensor
