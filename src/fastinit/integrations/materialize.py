"""fastinit.materialize: a model built on the meta device, allocated and initialized, every
tensor written or named."""
from __future__ import annotations

from typing import Any, Callable, Optional

from ..dispatch.sharding import is_dtensor, local_tensor
from ..dispatch.target import torch_module
from ..model.reset import reset_model
from ..model.written import check_missing, model_tensors, report
from ..stream.keys import Generator, GeneratorLike, next_key
from . import routes as _routes
from .libraries import buffer_inits, library_inits
from .patching import Patch
from .rebuild import rebuild

SCHEMES = ("library", "torch")


def _local(t: Any) -> Any:
    return local_tensor(t) if is_dtensor(t) else t


def _on_meta(model: Any) -> bool:
    return any(_local(t).is_meta for t in list(model.parameters()) + list(model.buffers()))


def _allocate(model: Any, device: Any) -> None:
    torch = torch_module()
    tensors = list(model.parameters()) + list(model.buffers())
    on_meta = _on_meta(model)
    if device is None:
        if on_meta:
            raise ValueError("fastinit.materialize: the model has tensors on the meta device; "
                             "pass device= to allocate them")
        return
    want = torch.device(device)

    def there(t: Any) -> bool:
        d = _local(t).device
        return d.type == want.type and (want.index is None or d.index == want.index)
    if on_meta or not all(there(t) for t in tensors):
        holders: dict = {}  # id(tensor) -> [(module's dict, name)]: tied tensors
        for m in model.modules():
            for table in (m._parameters, m._buffers):
                for name, t in table.items():
                    if t is not None:
                        holders.setdefault(id(t), []).append((table, name))
        model.to_empty(device=want)
        for group in holders.values():  # to_empty gives each holder a tensor of its own
            (table, name), rest = group[0], group[1:]
            for other, other_name in rest:
                other[other_name] = table[name]


def _poison(tensors: list) -> dict:
    """Fill tensors nobody has written yet with NaN (integers: their minimum), so a write that
    comes later is seen even when it bypasses version counters (``.data``), and a tensor still
    reported holds no stale memory. Returns {id: version after the mark} (what tells a bool
    tensor, which cannot hold a mark, written)."""
    torch = torch_module()
    versions = {}
    with torch.no_grad():
        for t in tensors:
            local = _local(t)
            if local.is_floating_point() or local.is_complex():
                local.fill_(float("nan"))
            elif local.dtype != torch.bool:
                local.fill_(torch.iinfo(local.dtype).min)
            versions[id(t)] = t._version
    return versions


def _has_nan(local: Any) -> bool:
    """Whether a float tensor holds a NaN: its sum is NaN then (one fast read pass); a NaN sum
    without a NaN (inf - inf) is told apart by the exact test."""
    torch = torch_module()
    if not bool(torch.isnan(local.sum())):
        return False
    return bool(torch.isnan(local).any())


def _still_marked(t: Any, versions: dict) -> bool:
    """Whether some element still holds the mark (bool tensors: whether the version is the
    one after the mark)."""
    torch = torch_module()
    local = _local(t)
    if local.is_floating_point() or local.is_complex():
        return _has_nan(local)
    if local.dtype != torch.bool:
        return bool((local == torch.iinfo(local.dtype).min).any())
    return t._version == versions.get(id(t))


def _all_marked(t: Any) -> bool:
    torch = torch_module()
    local = _local(t)
    if local.is_floating_point() or local.is_complex():
        return bool(torch.isnan(local).all())
    if local.dtype != torch.bool:
        return bool((local == torch.iinfo(local.dtype).min).all())
    return True


def _dry_run(model: Any, inits: list) -> set:
    """The library's init run on the meta model (no memory, no values, no keys drawn): the
    (module, attribute) of every tensor a routed init function writes whole. Empty when it
    fails (an init that needs values)."""
    holders: dict = {}
    for m in model.modules():
        for table in (m._parameters, m._buffers):
            for name, t in table.items():
                if t is not None:
                    holders.setdefault(id(t), []).append((id(m), name))
    log: set = set()
    _routes.WRITES.append(log)
    try:
        for _, run in inits:
            run()
    except Exception:
        return set()
    finally:
        _routes.WRITES.pop()
    return {h for tid in log for h in holders.get(tid, ())}


def _holder_keys(model: Any) -> dict:
    """{id(tensor): [(id(module), attribute)]} of the model as it is now."""
    keys: dict = {}
    for m in model.modules():
        for table in (m._parameters, m._buffers):
            for name, t in table.items():
                if t is not None:
                    keys.setdefault(id(t), []).append((id(m), name))
    return keys


def _initialize(model: Any, inits: list, dry: set, stream: Generator,
                progress: Optional[bool], who: str) -> list:
    """Steps 1 and 2 (torch's defaults, the library's init) in construction's order; the
    tensors left unwritten, NaN-marked.

    ``dry`` (from :func:`_dry_run`): tensors the library's init overwrites whole with a routed
    init function, which does not read them. Their defaults are not made (one write pass
    fewer); they are marked instead, and the shortcut stands only if the real run rewrote
    each of them whole and no mark turns up anywhere else (a value computed from one of them
    before it was rewritten): no NaN in any tensor written so far, and each unwritten tensor
    either untouched (every element marked, version unchanged) or free of marks. Otherwise
    the defaults are all made and the library's init runs again, in construction's order."""
    outcome = reset_model(model, generator=stream, progress=progress, missing="ignore",
                          defer=bool(dry), who=who)
    unwritten, deferred = outcome.unwritten, outcome.deferred
    if deferred is None:
        versions = _poison(unwritten)
        _run_logged(inits)
        return _left(model, unwritten, versions) if inits else unwritten
    keys = _holder_keys(model)
    skipped = [t for t in deferred.tensors if any(k in dry for k in keys.get(id(t), ()))]
    skipped_ids = {id(t) for t in skipped}
    deferred.run(lambda t: id(t) not in skipped_ids)
    versions = _poison(unwritten + skipped)
    log = _run_logged(inits)
    if not _shortcut_held(model, unwritten, skipped, versions, log):
        deferred.run()  # construction's order, in full
        versions = _poison(unwritten)
        _run_logged(inits)
    return _left(model, unwritten, versions)


def _shortcut_held(model: Any, unwritten: list, skipped: list, versions: dict,
                   log: set) -> bool:
    present = model_tensors(model.modules())
    ids = {id(t) for t in present}
    if any(id(t) in ids and id(t) not in log for t in skipped):
        return False  # a skipped default the library did not overwrite after all
    marked = {id(t) for t in unwritten}
    for t in present:
        if id(t) in marked:
            if _still_marked(t, versions) and (
                    t._version != versions[id(t)] or not _all_marked(t)):
                return False  # written in part, or computed from a mark
        elif _local(t).is_floating_point() and _has_nan(_local(t)):
            return False
    return True


def _run_logged(inits: list) -> set:
    log: set = set()
    _routes.WRITES.append(log)
    try:
        for _, run in inits:
            run()
    finally:
        _routes.WRITES.pop()
    return log


def _left(model: Any, unwritten: list, versions: dict) -> list:
    """The tensors of unwritten still in the model and still (partly) marked."""
    present = {id(t) for t in model_tensors(model.modules())}
    return [t for t in unwritten if id(t) in present and _still_marked(t, versions)]


def _init_buffers(model: Any, unwritten: list, versions: dict) -> list:
    """Modules' own ``init_non_persistent_buffers()`` (timm), for the buffers still marked."""
    inits = buffer_inits(model)
    if not inits:
        return unwritten
    for fn in inits:
        fn()
    present = {id(t) for t in model_tensors(model.modules())}
    return [t for t in unwritten if id(t) in present and _still_marked(t, versions)]


def materialize(model: Any, device: Any = None, *, scheme: str = "library",
                generator: GeneratorLike = None, missing: str = "raise",
                library_init: Optional[Callable[[Any], Any]] = None, recompute: bool = True,
                progress: Optional[bool] = None) -> Any:
    """Allocate a model built on the meta device on ``device`` and initialize every parameter
    and buffer; returns the model.

    >>> with torch.device("meta"):
    ...     model = LlamaForCausalLM(config)
    >>> torch.manual_seed(0)
    >>> fastinit.materialize(model, device="cpu")      # what LlamaForCausalLM(config) gives

    Allocation: tensors on the meta device (or, with ``device`` given, anywhere else) are
    allocated with ``model.to_empty(device=device)``, and tensors shared by several modules
    (tied embeddings) are tied again (``to_empty`` gives each module a tensor of its own); a
    model already allocated (``to_empty`` done, also FSDP2-sharded) is initialized where it
    is.

    Initialization, in the order construction runs it, all under :func:`fastinit.patch`:

    1. torch's per-module defaults: :func:`fastinit.reset_parameters` (known modules fused;
       other modules' own ``reset_parameters()``);
    2. ``scheme="library"`` (the default): the model library's own init -- ``library_init(model)``
       when given, else what :mod:`fastinit.integrations.libraries` finds (transformers'
       ``initialize_weights()``, timm's ``init_weights()``, a registered function, the root's
       ``init_weights()``). ``scheme="torch"`` stops after step 1: torch's defaults.
       Shortcut: the library's init is first run on the meta model (nothing written, no key
       drawn) to learn which tensors it overwrites whole with init functions (which do not
       read them); step 1 skips their defaults and marks them instead. If the real run does
       not overwrite one of them after all, or a mark turns up elsewhere (a value computed
       from one of them), every default is made and the library's init runs again, in
       order;
    3. ``recompute=True``: tensors still unwritten (non-persistent buffers, parameters made in
       a constructor, modules without any init) are recomputed: by the modules' own
       ``init_non_persistent_buffers()`` (timm's convention for meta-device models), else by
       constructing their module again on the CPU (:mod:`fastinit.integrations.rebuild`).

    Never garbage: tensors still unwritten then are filled with NaN (integers: their minimum)
    and reported: ``missing="raise"`` (default) raises
    :class:`fastinit.UninitializedTensorsError` naming them, ``"warn"`` warns, ``"ignore"``
    returns. Writes are tracked, not assumed: what step 1 plans and what modules' own resets
    wrote (compared bit for bit), and for steps 2 and 3 whether the NaN mark put on every
    tensor not yet written is gone.

    Keys: one 64-bit key is drawn from ``generator`` (None: torch's default generator, so
    ``torch.manual_seed`` governs the result) and seeds a ``fastinit.Generator`` from which
    step 1 and every routed init call of steps 2-3 draw in turn: the same seed gives the same
    model on the CPU, on CUDA and sharded.
    """
    torch = torch_module()
    who = "fastinit.materialize"
    if torch is None or not isinstance(model, torch.nn.Module):
        raise TypeError(f"{who}: expected a torch.nn.Module, got {type(model).__name__}")
    if scheme not in SCHEMES:
        raise ValueError(f"{who}: scheme must be one of {SCHEMES}, got {scheme!r}")
    check_missing(missing, who)
    inits = []
    if scheme == "library":
        inits = [("library_init", lambda: library_init(model))] if library_init is not None \
            else library_inits(model)  # raises before anything is allocated for an unknown one
    reasons: dict = {}
    with Patch(None):  # one patch for the whole call (the inner one only sets the generator)
        dry: set = set()
        if inits and device is not None and _on_meta(model):
            dry = _dry_run(model, inits)
        _allocate(model, device)
        stream = Generator(next_key(generator))
        with Patch(stream):
            unwritten = _initialize(model, inits, dry, stream, progress, who)
            if unwritten and recompute:
                versions = {id(t): t._version for t in unwritten}
                unwritten = _init_buffers(model, unwritten, versions)
            if unwritten and recompute:
                unwritten, reasons = rebuild(model, unwritten, stream)
    why = "".join(f" {name}: {reason}." for name, reason in reasons.items())
    report(model, unwritten, missing, who,
           "were left unwritten (they hold NaN, integers their minimum)",
           f"No handler, own reset, library init or rebuild writes them.{why} Pass "
           "library_init= (a function of the model) to initialize them, or missing='warn' to "
           "go on.")
    return model
