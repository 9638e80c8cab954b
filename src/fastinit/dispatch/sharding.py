"""Sharded tensors: fill a DTensor's local shard with the values of the same slice of the whole.

The random stream makes element ``i`` of a tensor (its row-major index in the *global* tensor) a
pure function of ``(key, i)``. So a rank holding a shard of a
``torch.distributed.tensor.DTensor`` fills its local tensor alone, without communication: local
element ``m`` (a multi-index) is stream element ``base + sum(m[d] * strides[d])`` where
``strides`` are the row-major strides of the global shape and ``base`` the global index of the
shard's first element. Every fastinit init function accepts a DTensor this way; the result,
gathered, equals the unsharded tensor filled with the same key, whatever the mesh.

>>> from torch.distributed.tensor import distribute_tensor, Shard
>>> w = distribute_tensor(torch.empty(4096, 1024), mesh, [Shard(0)])
>>> torch.manual_seed(0)
>>> fastinit.trunc_normal_(w, std=0.02)   # each rank writes only its rows
>>> # w.full_tensor() equals trunc_normal_(torch.empty(4096, 1024), std=0.02) after manual_seed(0)

Placements:

- ``Shard(d)`` on any dim, with uneven shards chunked as DTensor chunks them (``torch.chunk``
  semantics, computed by torch's own ``compute_local_shape_and_global_offset``), several mesh
  dims sharding the same or different tensor dims (multi-dimensional meshes);
- ``Replicate()``: every rank generates the whole tensor (identical on all ranks, as every rank
  draws the same key when seeded alike);
- ``Partial``: a ``ValueError`` (a pending sum of local values cannot be initialized);
- ``_StridedShard`` (FSDP2 + tensor parallel): its local indices are not one strided block of the
  global tensor; a ``NotImplementedError`` for the element-wise functions. ``fastinit.init_``
  and ``fastinit.reset_parameters`` still handle it, by generating the whole tensor on each rank
  and keeping the local part (:func:`fill_via_full`).

``orthogonal_``, ``sparse_``, ``eye_`` and ``dirac_`` need the whole matrix (a QR, a per-column
zero pattern, the diagonal): on a DTensor each rank computes the whole tensor and keeps its part
(:func:`fill_via_full`), so the generator must give every rank the same key.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..stream.logical import row_major_strides

__all__ = ["is_dtensor", "ShardLayout", "shard_layout", "shard_layout_from", "fill_via_full",
           "fill_whole_dtensor"]


def is_dtensor(x: Any) -> bool:
    """True for a ``torch.distributed.tensor.DTensor`` (without importing torch.distributed:
    no DTensor can exist unless its module was imported)."""
    for name in ("torch.distributed.tensor", "torch.distributed._tensor"):
        mod = sys.modules.get(name)
        cls = getattr(mod, "DTensor", None) if mod is not None else None
        if cls is not None and isinstance(x, cls):
            return True
    return False


@dataclass(frozen=True)
class ShardLayout:
    """Where a rank's local shard lies in the global tensor.

    ``local_shape``: the shape of the local tensor; ``global_offset``: the global index of its
    first element along each dim; ``global_shape``: the whole tensor's shape. The stream
    description (``fastinit.stream.logical.Logical``) is ``strides`` (row-major strides of the global
    shape) and ``base`` (the global flat index of the local element with all indices zero).
    """

    global_shape: tuple[int, ...]
    local_shape: tuple[int, ...]
    global_offset: tuple[int, ...]

    @property
    def strides(self) -> tuple[int, ...]:
        return row_major_strides(self.global_shape)

    @property
    def base(self) -> int:
        return sum(o * s for o, s in zip(self.global_offset, self.strides))

    @property
    def local_numel(self) -> int:
        n = 1
        for s in self.local_shape:
            n *= int(s)
        return n

    def slices(self) -> tuple[slice, ...]:
        """The local shard as slices of the global tensor."""
        return tuple(slice(o, o + n) for o, n in zip(self.global_offset, self.local_shape))


def _placement_classes():
    try:
        from torch.distributed.tensor import placement_types as pt
    except ImportError:  # torch < 2.4
        from torch.distributed._tensor import placement_types as pt  # type: ignore[no-redef]
    return pt


def _check_placements(placements: Sequence[Any], fn_name: str) -> None:
    pt = _placement_classes()
    strided = getattr(pt, "_StridedShard", None)
    for p in placements:
        if isinstance(p, pt.Partial) or (hasattr(p, "is_partial") and p.is_partial()):
            raise ValueError(
                f"fastinit.{fn_name}: cannot initialize a DTensor with a Partial placement "
                f"({p}): its value is a pending reduction of the local tensors; redistribute it "
                "to Shard or Replicate first")
        if strided is not None and isinstance(p, strided):
            raise NotImplementedError(
                f"fastinit.{fn_name}: the placement {p} (_StridedShard, FSDP2 + tensor parallel) "
                "holds global indices that are not one strided block; fastinit.init_ and "
                "fastinit.reset_parameters handle it by generating the whole tensor per rank")
        if not isinstance(p, (pt.Shard, pt.Replicate)):
            raise NotImplementedError(f"fastinit.{fn_name}: unsupported DTensor placement {p}")


def shard_layout_from(global_shape: Sequence[int], mesh_shape: Sequence[int],
                      coordinate: Sequence[int], placements: Sequence[Any],
                      fn_name: str = "shard_layout") -> ShardLayout:
    """The layout of the shard at mesh ``coordinate`` (plain data: no process group needed).

    >>> from torch.distributed.tensor import Shard
    >>> shard_layout_from((5, 7), (2,), (1,), [Shard(1)])   # 7 columns over 2 ranks
    ShardLayout(global_shape=(5, 7), local_shape=(5, 3), global_offset=(0, 4))
    """
    _check_placements(placements, fn_name)
    from torch.distributed.tensor import _utils
    global_shape = tuple(int(n) for n in global_shape)
    local_shape, offset = _utils._compute_local_shape_and_global_offset(
        global_shape, tuple(int(n) for n in mesh_shape), [int(c) for c in coordinate],
        list(placements))
    return _layout(global_shape, local_shape, offset)


def _layout(global_shape: tuple[int, ...], local_shape: Sequence[int],
            offset: Sequence[int]) -> ShardLayout:
    local_shape = tuple(int(n) for n in local_shape)
    if len(offset) != len(global_shape):  # a rank outside the mesh: it holds nothing
        return ShardLayout(global_shape, (0,) * len(global_shape), (0,) * len(global_shape))
    offset = tuple(min(int(o), int(n)) for o, n in zip(offset, global_shape))
    return ShardLayout(global_shape, local_shape, offset)


def _compute(dt: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    try:
        from torch.distributed.tensor._utils import compute_local_shape_and_global_offset
    except ImportError:  # torch < 2.4
        from torch.distributed._tensor._utils import (  # type: ignore[no-redef]
            compute_local_shape_and_global_offset)
    return compute_local_shape_and_global_offset(dt.shape, dt.device_mesh, dt.placements)


def local_tensor(dt: Any) -> Any:
    """The rank's local tensor of a DTensor (the same storage: writes go to the shard)."""
    torch = sys.modules["torch"]
    with torch.no_grad():
        return dt.to_local()


def shard_layout(dt: Any, fn_name: str = "shard_layout") -> ShardLayout:
    """The layout of this rank's shard of a DTensor.

    Raises ``ValueError`` for a Partial placement and ``NotImplementedError`` for placements
    whose local indices are not one strided block of the global tensor (``_StridedShard``).
    """
    _check_placements(dt.placements, fn_name)
    global_shape = tuple(int(n) for n in dt.shape)
    local_shape, offset = _compute(dt)
    layout = _layout(global_shape, local_shape, offset)
    actual = tuple(int(n) for n in local_tensor(dt).shape)
    if actual != layout.local_shape:
        raise RuntimeError(
            f"fastinit.{fn_name}: the DTensor's local tensor has shape {actual} but its "
            f"placements {tuple(dt.placements)} give {layout.local_shape} for this rank")
    return layout


def fill_via_full(dt: Any, fill: Callable[[Any], Any]) -> Any:
    """Initialize a DTensor by running ``fill`` on a whole, unsharded tensor of its global shape
    and dtype (on the local device) on every rank, then keeping the local part.

    For the functions that need the whole tensor (orthogonal_, sparse_, dirac_, eye_) and for
    placements that are not a strided block (``_StridedShard``). Each rank computes the whole
    tensor: memory and time of the unsharded init. ``fill`` must draw the same key on every rank
    (a seeded generator, or torch's default generator seeded alike).

    >>> fill_via_full(w, lambda t: fastinit.orthogonal_(t, generator=7))
    """
    torch = sys.modules["torch"]
    local = local_tensor(dt)
    if local.device.type == "meta":
        return dt
    full = torch.empty(tuple(dt.shape), dtype=dt.dtype, device=local.device)
    fill(full)
    pt = _placement_classes()
    strided = getattr(pt, "_StridedShard", None)
    with torch.no_grad():
        if strided is not None and any(isinstance(p, strided) for p in dt.placements):
            # Let DTensor cut the whole tensor exactly as it would. Every rank holds the same
            # whole tensor, so no data needs to move (src_data_rank=None: a local split).
            from torch.distributed.tensor import distribute_tensor
            try:
                piece = distribute_tensor(full, dt.device_mesh, dt.placements,
                                          src_data_rank=None)
            except TypeError:  # torch without src_data_rank: scatter from rank 0, same values
                piece = distribute_tensor(full, dt.device_mesh, dt.placements)
            local.copy_(piece.to_local().reshape(local.shape))
        else:
            _check_placements(dt.placements, "fill_via_full")
            layout = shard_layout(dt, "fill_via_full")
            local.copy_(full[layout.slices()])
    return dt


def fill_whole_dtensor(tensor: Any, fill: Callable[[Any], Any]) -> bool:
    """For the initializers that need the whole tensor (orthogonal_, sparse_, eye_, dirac_,
    delta_orthogonal_, identity_): a DTensor is filled by :func:`fill_via_full`, and the result is
    True; any other tensor is left alone, and the result is False (the caller fills it).

    >>> if fill_whole_dtensor(w, lambda full: orthogonal_(full, gain, generator)):
    ...     return w
    """
    if not is_dtensor(tensor):
        return False
    fill_via_full(tensor, fill)
    return True
