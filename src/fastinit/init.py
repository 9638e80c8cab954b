"""The torch.nn.init mirror: same names, parameters, defaults, fans, gains and errors.

``import fastinit as init`` (or ``from fastinit import init``) replaces ``torch.nn.init``. Each
random function draws one 64-bit key from ``generator`` and fills the tensor in place with the
values of the random-stream format (docs/stream-format.md): the same values on every backend,
thread count and device. Tensors may be torch tensors (any device, views, requires_grad
parameters, meta) or NumPy arrays; the tensor passed in is returned.

>>> import fastinit as init
>>> w = torch.empty(256, 128)
>>> init.kaiming_uniform_(w, a=math.sqrt(5))
>>> init.trunc_normal_(w, std=0.02, generator=torch.Generator().manual_seed(0))
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import numpy as np

from .dispatch.arguments import (constant_value, float_arg, handle_torch_function, has_torch_function,
                                 scalar_arg)
from .dispatch.fill import PURPOSE_AUX, fill_plain_cpu, random_fill, write_values
from .dispatch.sharding import fill_whole_dtensor
from .dispatch.target import OverlapError, as_target, is_tensor, plain_cpu_format, torch_module
from .fans import calculate_correct_fan, calculate_fan_in_and_fan_out, calculate_gain
from .stream.dtypes import FLOAT32, FLOAT64
from .stream.keys import GeneratorLike, next_key
from .stream.ops import normal_params, trunc_normal_params, uniform_params

__all__ = [
    "calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_",
    "eye_", "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
    "orthogonal_", "sparse_",
    # deprecated aliases, as in torch
    "uniform", "normal", "constant", "eye", "dirac", "xavier_uniform", "xavier_normal",
    "kaiming_uniform", "kaiming_normal", "orthogonal", "sparse",
]

Tensor = Any  # a torch.Tensor or a numpy.ndarray

# torch's private helpers, which model code calls directly (e.g. Linear.reset_parameters).
_calculate_fan_in_and_fan_out = calculate_fan_in_and_fan_out
_calculate_correct_fan = calculate_correct_fan


def _check_real(fn: str, name: str, value: float, position: int = 0) -> float:
    if type(value) is not float:
        value = float_arg(fn, name, position, value)
    if value != value:
        raise RuntimeError(f"{fn} expects {name} to be a number, but found {name}=nan")
    return value


def _check_bound(fn: str, name: str, value: float, fmt: Any, position: int) -> float:
    if type(value) is not float:
        value = float_arg(fn, name, position, value)
    if not abs(value) <= fmt.max_finite:  # also NaN
        _check_real(fn, name, value, position)
        raise RuntimeError(f"{fn}: {name} is out of bounds for {fmt.name} (got {value})")
    return value


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0,
             generator: GeneratorLike = None) -> Tensor:
    r"""Fill the tensor with values from the uniform distribution :math:`\mathcal{U}(a, b)`.

    Values are ``a + (k + 1/2)(b - a)/2^24`` for a uniform 24-bit ``k`` (52-bit in float64),
    rounded to the tensor's dtype, in [a, b) as torch's (a 16-bit value that rounding would
    carry to b or past it is the largest value below b).

    >>> w = torch.empty(3, 5)
    >>> fastinit.uniform_(w, -0.1, 0.1)
    """
    if has_torch_function(tensor):
        return handle_torch_function(uniform_, tensor, a=a, b=b, generator=generator)
    if type(a) is not float or type(b) is not float:  # torch parses them before its kernel runs
        a = float_arg("uniform_", "from", 1, a)
        b = float_arg("uniform_", "to", 2, b)
    fmt = plain_cpu_format(tensor)
    if fmt is not None and -fmt.max_finite <= a <= b <= fmt.max_finite and tensor.numel():
        return fill_plain_cpu(tensor, fmt, uniform_params(a, b, fmt), generator, "uniform_")
    target = as_target(tensor, "uniform_")
    fmt = target.fmt
    if not -fmt.max_finite <= a <= b <= fmt.max_finite:
        a = _check_bound("uniform_", "from", a, fmt, 1)
        b = _check_bound("uniform_", "to", b, fmt, 2)
        _check_uniform_range(a, b)
    return random_fill(tensor, uniform_params(a, b, fmt), generator, "uniform_", None, target)


def _check_uniform_range(a: float, b: float) -> None:
    if a > b:
        raise RuntimeError(
            f"uniform_ expects to return a [from, to) range, but found from={a:g} > to={b:g}")


def _uniform(tensor: Tensor, target: Any, a: float, b: float, generator: GeneratorLike,
             fn: str) -> Tensor:
    _check_uniform_range(a, b)
    return random_fill(tensor, uniform_params(a, b, target.fmt), generator, fn, None, target)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0,
            generator: GeneratorLike = None) -> Tensor:
    r"""Fill the tensor with values from the normal distribution :math:`\mathcal{N}(mean, std^2)`.

    Box-Muller on two draws per pair of values; the tails reach 6.66 std (8.57 in float64).

    >>> w = torch.empty(3, 5)
    >>> fastinit.normal_(w, std=0.02)
    """
    if has_torch_function(tensor):
        return handle_torch_function(normal_, tensor, mean=mean, std=std, generator=generator)
    if type(mean) is not float or type(std) is not float:  # torch parses them first
        mean = float_arg("normal_", "mean", 1, mean)
        std = float_arg("normal_", "std", 2, std)
    fmt = plain_cpu_format(tensor)
    if fmt is not None and mean - mean == 0.0 and std >= 0.0 and std - std == 0.0 and tensor.numel():
        return fill_plain_cpu(tensor, fmt, normal_params(mean, std, fmt), generator, "normal_")
    target = as_target(tensor, "normal_")
    # finite (x - x is 0 only then), std >= 0: checked in one line on the common path
    if not (mean - mean == 0.0 and std >= 0.0 and std - std == 0.0):
        mean = _check_real("normal_", "mean", mean, 1)
        std = _check_real("normal_", "std", std, 2)
        _check_normal_args(mean, std)
    return random_fill(tensor, normal_params(mean, std, target.fmt), generator, "normal_", None,
                       target)


def _check_normal_args(mean: float, std: float) -> None:
    if not math.isfinite(mean):
        raise RuntimeError(f"normal_ expects a finite mean, but found mean={mean}")
    if not std >= 0.0 or math.isinf(std):
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std:g}")


def _uniform_bound(tensor: Tensor, bound: Any, generator: GeneratorLike) -> Tensor:
    """U(-bound, bound) for the fan-based initializers (the bound computed, torch_function
    handled by the caller)."""
    if type(bound) is not float:
        bound = float_arg("uniform_", "to", 2, bound)
    fmt = plain_cpu_format(tensor)
    if fmt is not None and 0.0 <= bound <= fmt.max_finite and tensor.numel():
        return fill_plain_cpu(tensor, fmt, uniform_params(-bound, bound, fmt), generator, "uniform_")
    target = as_target(tensor, "uniform_")
    bound = _check_bound("uniform_", "to", bound, target.fmt, 2)
    return _uniform(tensor, target, -bound, bound, generator, "uniform_")


def _normal_std(tensor: Tensor, std: Any, generator: GeneratorLike) -> Tensor:
    """N(0, std^2) for the fan-based initializers (as _uniform_bound)."""
    if type(std) is not float:
        std = float_arg("normal_", "std", 2, std)
    fmt = plain_cpu_format(tensor)
    if fmt is not None and std >= 0.0 and std - std == 0.0 and tensor.numel():
        return fill_plain_cpu(tensor, fmt, normal_params(0.0, std, fmt), generator, "normal_")
    target = as_target(tensor, "normal_")
    return _normal(tensor, target, 0.0, _check_real("normal_", "std", std, 2), generator, "normal_")


def _normal(tensor: Tensor, target: Any, mean: float, std: float, generator: GeneratorLike,
            fn: str) -> Tensor:
    _check_normal_args(mean, std)
    return random_fill(tensor, normal_params(mean, std, target.fmt), generator, fn, None, target)


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0, generator: GeneratorLike = None) -> Tensor:
    r"""Fill the tensor with values from :math:`\mathcal{N}(mean, std^2)` truncated to [a, b].

    One pass, no rejection: the inverse CDF of the truncated distribution, computed in the
    tails with full relative precision. Every value lies in [a, b] after rounding to the
    tensor's dtype, whatever mean, std and bounds (also far in a tail, also in bfloat16).
    Warns as torch does when the mean is more than 2 std from [a, b] (torch's rejection sampler
    is then inaccurate; this one is not).

    >>> w = torch.empty(768, 3072, dtype=torch.bfloat16)
    >>> fastinit.trunc_normal_(w, std=0.02, a=-0.04, b=0.04)
    """
    # torch's order: its arithmetic on the four (TypeError), then std as a divisor
    # (ZeroDivisionError); huge ints are floats, as in torch's normal_ branch
    mean, std, a, b = (float_arg("trunc_normal_", name, i, v)
                       for i, (name, v) in enumerate((("mean", mean), ("std", std), ("a", a), ("b", b)), 1))
    if std == 0.0:
        raise ZeroDivisionError("trunc_normal_: std must be positive, got std=0")
    mean = _check_real("trunc_normal_", "mean", mean)
    std = _check_real("trunc_normal_", "std", std)
    a = _check_real("trunc_normal_", "a", a)
    b = _check_real("trunc_normal_", "b", b)
    target = as_target(tensor, "trunc_normal_")
    if std < 0.0 or not math.isfinite(std) or not math.isfinite(mean):
        raise RuntimeError(
            f"trunc_normal_ expects a finite mean and std > 0, but found mean={mean:g}, std={std:g}")
    if a > b:
        raise RuntimeError(f"trunc_normal_ expects a <= b, but found a={a:g} > b={b:g}")
    call = _trunc_normal_call("trunc_normal_", target.fmt, mean, std, a, b)
    if (mean < a - 2 * std) or (mean > b + 2 * std):
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
                      "The distribution of values may be incorrect. (torch's warning, given as "
                      "torch gives it: fastinit samples this truncated normal exactly.)",
                      stacklevel=2)
    return random_fill(tensor, call, generator, "trunc_normal_", target=target)


def _trunc_normal_call(fn: str, fmt: Any, mean: float, std: float, a: float, b: float):
    """The stream call of a truncated normal on [a, b], or a RuntimeError when no value of the
    dtype lies in [a, b]."""
    lo, hi = fmt.inside(a, b)
    if a < b and lo > hi:
        raise RuntimeError(f"{fn}: no {fmt.name} value lies in [a, b] = [{a:g}, {b:g}]")
    return trunc_normal_params(mean, std, a, b, fmt)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill the tensor with ``val`` (any dtype, as torch).

    >>> fastinit.constant_(torch.empty(3, 5), 0.3)
    """
    if has_torch_function(tensor):
        return handle_torch_function(constant_, tensor, val=val)
    return _fill_constant(tensor, val, "constant_")


def _fill_constant(tensor: Tensor, val: Any, fn: str) -> Tensor:
    if is_tensor(tensor):
        torch = torch_module()
        with torch.no_grad():
            return tensor.fill_(val)
    _writable_array(tensor, fn)[...] = constant_value(val)
    return tensor


def ones_(tensor: Tensor) -> Tensor:
    """Fill the tensor with ones."""
    return _fill_constant(tensor, 1.0, "ones_")


def zeros_(tensor: Tensor) -> Tensor:
    """Fill the tensor with zeros."""
    if is_tensor(tensor):
        torch = torch_module()
        with torch.no_grad():
            return tensor.zero_()
    _writable_array(tensor, "zeros_")[...] = 0
    return tensor


def _writable_array(x: Any, fn: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"fastinit.{fn}: expected a torch.Tensor or a numpy.ndarray, "
                        f"got {type(x).__name__}")
    if not x.flags.writeable:
        raise ValueError(f"fastinit.{fn}: assignment destination is read-only")
    return x


def eye_(tensor: Tensor) -> Tensor:
    """Fill a 2-D tensor with the identity matrix (as many ones as fit).

    >>> fastinit.eye_(torch.empty(3, 5))
    """
    if fill_whole_dtensor(tensor, eye_):
        return tensor
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    if is_tensor(tensor):
        torch = torch_module()
        with torch.no_grad():
            torch.eye(*tensor.shape, out=tensor, requires_grad=tensor.requires_grad)
        return tensor
    arr = _writable_array(tensor, "eye_")
    arr[...] = 0
    np.fill_diagonal(arr, 1)
    return tensor


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """Fill a {3, 4, 5}-D convolution weight with the Dirac delta (identity per group).

    >>> fastinit.dirac_(torch.empty(24, 8, 3, 3), groups=3)
    """
    if fill_whole_dtensor(tensor, lambda full: dirac_(full, groups)):
        return tensor
    dimensions = tensor.ndim
    if dimensions not in [3, 4, 5]:
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    sizes = tuple(tensor.shape)
    if sizes[0] % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")
    torch = torch_module() if is_tensor(tensor) else None
    if torch is not None and tensor.is_meta:
        return tensor
    out_chans_per_grp = sizes[0] // groups
    min_dim = min(out_chans_per_grp, sizes[1])
    centre = tuple(s // 2 for s in sizes[2:])
    if torch is not None:
        with torch.no_grad():
            tensor.zero_()
            for g in range(groups):
                for d in range(min_dim):
                    tensor[(g * out_chans_per_grp + d, d) + centre] = 1
        return tensor
    arr = _writable_array(tensor, "dirac_")
    arr[...] = 0
    for g in range(groups):
        for d in range(min_dim):
            arr[(g * out_chans_per_grp + d, d) + centre] = 1
    return tensor


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator: GeneratorLike = None) -> Tensor:
    r"""Glorot/Xavier uniform: :math:`\mathcal{U}(-a, a)`, a = gain sqrt(6 / (fan_in + fan_out)).

    Fused: fans and gain set the bounds of one uniform pass.

    >>> fastinit.xavier_uniform_(torch.empty(3, 5), gain=fastinit.calculate_gain("relu"))
    """
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    if has_torch_function(tensor):
        return uniform_(tensor, -math.sqrt(3.0) * std, math.sqrt(3.0) * std, generator)
    return _uniform_bound(tensor, math.sqrt(3.0) * std, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: GeneratorLike = None) -> Tensor:
    r"""Glorot/Xavier normal: :math:`\mathcal{N}(0, std^2)`, std = gain sqrt(2 / (fan_in + fan_out)).

    >>> fastinit.xavier_normal_(torch.empty(3, 5))
    """
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    if has_torch_function(tensor):
        return normal_(tensor, 0.0, std, generator)
    return _normal_std(tensor, std, generator)


def _kaiming_std(tensor: Tensor, a: float, mode: str, nonlinearity: str) -> float:
    fan = calculate_correct_fan(tensor, mode)
    gain = calculate_gain(nonlinearity, a)
    return gain / math.sqrt(fan)


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator: GeneratorLike = None) -> Tensor:
    r"""He/Kaiming uniform: :math:`\mathcal{U}(-b, b)`, b = gain sqrt(3 / fan_mode).

    >>> fastinit.kaiming_uniform_(torch.empty(3, 5), mode="fan_in", nonlinearity="relu")
    """
    if has_torch_function(tensor):
        return handle_torch_function(kaiming_uniform_, tensor, a=a, mode=mode,
                                     nonlinearity=nonlinearity, generator=generator)
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return _uniform_bound(tensor, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator: GeneratorLike = None) -> Tensor:
    r"""He/Kaiming normal: :math:`\mathcal{N}(0, std^2)`, std = gain / sqrt(fan_mode).

    >>> fastinit.kaiming_normal_(torch.empty(3, 5), mode="fan_out", nonlinearity="relu")
    """
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if has_torch_function(tensor):
        return normal_(tensor, 0.0, std, generator)
    return _normal_std(tensor, std, generator)


def _gaussian_matrix(tensor: Tensor, rows: int, cols: int, generator: GeneratorLike) -> Any:
    """A (rows, cols) standard normal matrix from fastinit's stream: float64 for float64
    tensors, else float32 (the QR precision). For a torch tensor it is a torch tensor on the
    same device (generated there: no host round trip on CUDA), else a NumPy array."""
    double = as_target(tensor, "orthogonal_").fmt.name == "float64"
    fmt = FLOAT64 if double else FLOAT32
    if is_tensor(tensor):
        torch = torch_module()
        matrix = torch.empty((rows, cols), dtype=torch.float64 if double else torch.float32,
                             device=tensor.device)
    else:
        matrix = np.empty((rows, cols), dtype=np.float64 if double else np.float32)
    random_fill(matrix, normal_params(0.0, 1.0, fmt), generator, "orthogonal_")
    return matrix


def orthogonal_(tensor: Tensor, gain: float = 1, generator: GeneratorLike = None) -> Tensor:
    """Fill the tensor with a (semi-)orthogonal matrix (Saxe et al. 2013); trailing dims are
    flattened. The Gaussian matrix comes from fastinit's stream (generated on the tensor's
    device), its QR from torch (on that device) or NumPy; float16/bfloat16 tensors get a
    float32 QR, then one rounding. Only the Gaussian matrix is covered by the stream contract:
    QR implementations may differ in the last bits across devices and libraries.

    >>> fastinit.orthogonal_(torch.empty(64, 128), gain=fastinit.calculate_gain("tanh"))
    """
    if fill_whole_dtensor(tensor, lambda full: orthogonal_(full, gain, generator)):
        return tensor
    if tensor.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if 0 in tensor.shape or (is_tensor(tensor) and tensor.is_meta):
        return tensor  # a no-op before any other check, as in torch
    try:
        target = as_target(tensor, "orthogonal_")
    except OverlapError:
        # torch's copy_ refuses the views it proves overlapping (an expanded dim); one whose
        # overlap it cannot prove it writes, and then its mul_(gain) rejects a bad gain first
        if is_tensor(tensor) and torch_module()._debug_has_internal_overlap(tensor) != 1:
            _check_real("orthogonal_", "gain", scalar_arg(gain))
        raise
    gain = _check_real("orthogonal_", "gain", scalar_arg(gain))  # torch's mul_(gain): a Scalar
    if target.skip:
        return tensor
    rows = int(tensor.shape[0])
    cols = target.numel // rows
    flattened = _gaussian_matrix(tensor, rows, cols, generator)
    if rows < cols:
        flattened = flattened.T
    if target.is_torch:
        torch = torch_module()
        q, r = torch.linalg.qr(flattened)
        q = q * torch.diagonal(r, 0).sign()
        if rows < cols:
            q = q.T
        with torch.no_grad():
            tensor.copy_((q * gain).reshape(tensor.shape))
        return tensor
    q, r = np.linalg.qr(flattened)
    q = q * np.sign(np.diagonal(r))
    if rows < cols:
        q = q.T
    tensor[...] = (q * gain).reshape(tensor.shape)
    return tensor


def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01,
            generator: GeneratorLike = None) -> Tensor:
    """Fill a 2-D tensor as a sparse matrix (Martens 2010): N(0, std^2) values with exactly
    ceil(sparsity * rows) zeros in every column (all rows for a sparsity above 1, as torch).
    Unlike torch, the zero pattern is drawn from the same key as the values, so ``generator``
    governs it too.

    >>> fastinit.sparse_(torch.empty(100, 20), sparsity=0.1)
    """
    if fill_whole_dtensor(tensor, lambda full: sparse_(full, sparsity, std, generator)):
        return tensor
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    rows, cols = (int(n) for n in tensor.shape)
    # torch's count, and its slice of a permutation: more zeros than rows zero the column; a
    # negative count keeps rows + count zeros (Python slicing); NaN / inf raise as in torch
    num_zeros = len(range(rows)[:int(math.ceil(sparsity * rows))])
    std = _check_real("sparse_", "std", std, 2)  # torch's normal_ parses it before its kernel
    target = as_target(tensor, "sparse_")
    if not std >= 0.0 or math.isinf(std):
        raise RuntimeError(f"normal expects std >= 0.0, but found std {std:g}")
    if target.skip:
        return tensor
    key = next_key(generator)
    write_values(target, normal_params(0.0, std, target.fmt), key, 0)
    if num_zeros == 0:
        return tensor
    # Zero pattern: in each column, the rows holding the num_zeros smallest of an auxiliary
    # uniform draw (same key, counter purpose 1; element (col, row) = col * rows + row).
    ranks = np.empty((cols, rows), dtype=np.float64)
    aux = as_target(ranks, "sparse_")
    write_values(aux, uniform_params(0.0, 1.0, FLOAT64), key, PURPOSE_AUX)
    if num_zeros >= rows:
        zero_rows = np.broadcast_to(np.arange(rows), (cols, rows))
    else:
        zero_rows = np.argpartition(ranks, num_zeros - 1, axis=1)[:, :num_zeros]
    mask = np.zeros((rows, cols), dtype=bool)
    mask[zero_rows, np.arange(cols)[:, None]] = True
    if target.is_torch:
        torch = torch_module()
        with torch.no_grad():
            tensor.masked_fill_(torch.from_numpy(mask).to(tensor.device), 0)
    else:
        tensor[mask] = 0
    return tensor


def _make_deprecate(meth: Callable) -> Callable:
    new_name = meth.__name__
    old_name = new_name[:-1]

    def deprecated_init(*args: Any, **kwargs: Any) -> Any:
        warnings.warn(
            f"`nn.init.{old_name}` is now deprecated in favor of `nn.init.{new_name}`.",
            FutureWarning, stacklevel=2)
        return meth(*args, **kwargs)

    deprecated_init.__doc__ = f"{old_name}(...): deprecated alias of :func:`{new_name}`."
    deprecated_init.__name__ = old_name
    return deprecated_init


uniform = _make_deprecate(uniform_)
normal = _make_deprecate(normal_)
constant = _make_deprecate(constant_)
eye = _make_deprecate(eye_)
dirac = _make_deprecate(dirac_)
xavier_uniform = _make_deprecate(xavier_uniform_)
xavier_normal = _make_deprecate(xavier_normal_)
kaiming_uniform = _make_deprecate(kaiming_uniform_)
kaiming_normal = _make_deprecate(kaiming_normal_)
orthogonal = _make_deprecate(orthogonal_)
sparse = _make_deprecate(sparse_)
