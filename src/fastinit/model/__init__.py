"""Model-scale initialization: whole models, many tensors, sharded models, data-driven init.

- :func:`reset_parameters` re-initializes every parameter and buffer of a model with exactly the
  distribution its module's own ``reset_parameters()`` gives in torch, on fastinit's stream.
- :func:`init_` applies one method to many tensors in one call (per-tensor fans, per-tensor
  keyword values such as depth-scaled stds).
- :func:`lsuv_` is layer-sequential unit-variance init (Mishkin & Matas, 2016).

Keys. One call draws ONE 64-bit key ``k`` from its generator (``None``: torch's default
generator, so ``torch.manual_seed`` makes it reproducible). Tensor ``i`` then gets the key that
``fastinit.Generator(k)`` hands out ``i + 1``-th, i.e. ``splitmix64(k + (i + 1) * golden)`` with
golden = 0x9E3779B97F4A7C15: every tensor differs, and each is reproducible alone. In :func:`init_`, ``i`` is the tensor's
position in the list; in :func:`reset_parameters`, the parameter's position in
``model.parameters()`` -- so a sharded model (FSDP2, tensor parallel) gets, slice for slice, the
values of the unsharded model.

Writes. Every write is planned and checked first; then the stream and constant fills of all
tensors on a device are made in one batched core call (fastinit.dispatch.batch.FillBatch), and a call
whose tensors are unchanged since a previous call reuses that call's prepared core call
(_BatchPlan: only the key is new).

>>> torch.manual_seed(0)
>>> fastinit.reset_parameters(model)                        # like every module's reset_parameters()
>>> fastinit.init_(model.parameters(), "trunc_normal", std=0.02)

Never garbage: a tensor that reset_parameters cannot write is named in an
:class:`UninitializedTensorsError` (or a warning, ``missing="warn"``), never left silently.

Modules: :mod:`.init_many` (init_), :mod:`.reset`, :mod:`.handlers` and :mod:`.written`
(reset_parameters; which tensors a call wrote, staged own resets),
:mod:`.lsuv`, and :mod:`.plan` (planned, batched, reused writes and the tensor keys). Imports:
fastinit.init, initializers, stats, dispatch and stream; never watch or the demo.
"""
from .init_many import init_
from .lsuv import LSUVRow, lsuv_
from .plan import tensor_key
from .reset import reset_parameters
from .written import UninitializedTensorsError, UninitializedTensorsWarning

__all__ = ["reset_parameters", "init_", "lsuv_", "LSUVRow", "tensor_key",
           "UninitializedTensorsError", "UninitializedTensorsWarning"]
