"""Which modules a watch hooks, and which recorded layers a plot, a report or a verdict looks at.

Both take the same kinds of selector:

- ``None``: the default (hooks: every leaf module; plots and verdicts: the weight layers, see
  :func:`is_weight_layer`);
- ``"all"``: everything (every module for the hooks, every recorded layer for the readers);
- a module type (``nn.Conv2d``: that type and its subclasses), or a name pattern (below);
- a list of types and patterns (a module matching any of them is selected);
- a callable ``(name, module) -> bool``.

Name patterns are globs over the dotted module names, matched one name component at a time:
``*`` matches within one component (no dot), ``**`` matches any number of components, ``?`` one
character, ``[ab]`` one of a set. So ``"transformer.h.*"`` is the blocks ``transformer.h.0``,
``transformer.h.1``, ... and not their descendants; ``"transformer.h.*.mlp"`` their MLPs;
``"**.attn"`` every module named ``attn`` at any depth; ``"layer1.**"`` everything under
``layer1``. A pattern without wildcards is an exact name.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Callable, List, Pattern, Sequence, Tuple, Union

ModuleFilter = Union[None, str, type, Callable[[str, Any], bool], Sequence[Union[str, type]]]


@lru_cache(maxsize=256)
def glob_regex(pattern: str) -> Pattern[str]:
    """The compiled regular expression of a dotted-name glob (see the module docstring).

    >>> bool(glob_regex("transformer.h.*").fullmatch("transformer.h.0.attn"))
    False
    """
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**", i):
            # "a.**.b": zero or more components between; "**" alone or at an end: any text
            if pattern.startswith("**.", i) and (i == 0 or pattern[i - 1] == "."):
                out.append(r"(?:[^.]+\.)*")
                i += 3
            else:
                out.append(r".*")
                i += 2
        elif c == "*":
            out.append(r"[^.]*")
            i += 1
        elif c == "?":
            out.append(r"[^.]")
            i += 1
        elif c == "[":
            j = pattern.find("]", i + 2 if pattern.startswith("[!", i) else i + 1)
            if j < 0:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1:j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out))


def name_matches(name: str, pattern: str) -> bool:
    """Whether a dotted module name matches a glob pattern (see the module docstring). The
    model itself (name ``""``) matches only the pattern ``""``."""
    if not name:
        return pattern == ""
    return glob_regex(pattern).fullmatch(name) is not None


def is_weight_layer(module: Any) -> bool:
    """A module that holds a parameter of two or more dimensions itself: ``Linear``, ``Conv*``,
    ``Embedding``, attention projections, transformers' ``Conv1D``: the layers an initializer
    draws. Normalization layers (one-dimensional scales and shifts) are not."""
    return any(p is not None and p.dim() >= 2 for p in module._parameters.values())


def _split(selector: Any, what: str) -> Tuple[Tuple[type, ...], List[str]]:
    if isinstance(selector, (str, type)):
        selector = [selector]
    try:
        wanted = list(selector)
    except TypeError:
        raise TypeError(f"fastinit.watch: {what} must be None, 'all', a callable (name, module) "
                        f"-> bool, or a list of module types and names, got {selector!r}") from None
    bad = [w for w in wanted if not isinstance(w, (str, type))]
    if bad:
        raise TypeError(f"fastinit.watch: {what} must list module types or names "
                        f"(glob patterns allowed), got {bad[0]!r}")
    return tuple(w for w in wanted if isinstance(w, type)), [w for w in wanted if isinstance(w, str)]


def select_modules(model: Any, modules: ModuleFilter) -> List[Tuple[str, Any]]:
    """The (name, module) pairs a ``modules`` filter picks from ``model.named_modules()`` (see
    the module docstring), in module order."""
    named = list(model.named_modules())
    if modules is None:
        return [(n, m) for n, m in named if next(iter(m.children()), None) is None]
    if isinstance(modules, str) and modules == "all":
        return named
    if callable(modules) and not isinstance(modules, type):
        return [(n, m) for n, m in named if modules(n, m)]
    types, patterns = _split(modules, "modules")
    known = [n for n, _ in named]
    for pat in patterns:
        if not any(name_matches(n, pat) for n in known):
            hint = ""
            if "*" in pat and "**" not in pat:
                hint = (" ('*' stays within one name component: "
                        f"{pat.replace('*', '**')!r} reaches deeper)")
            raise ValueError(f"fastinit.watch: no module of the model is named {pat!r}{hint} "
                             f"(names look like {[n for n in known if n][:5]})")
    return [(n, m) for n, m in named
            if (types and isinstance(m, types)) or any(name_matches(n, p) for p in patterns)]


def select_sites(sites: Sequence[Any], layers: ModuleFilter, default: Callable[[Any], bool],
                 what: str = "layers") -> List[Any]:
    """The recorded sites (:class:`~.records.Site`: ``name``, ``cls``, ``module``, ``module_name``) a ``layers``
    selector picks, in recording order. ``default`` decides for ``layers=None``; when it picks
    fewer than two sites, every site is taken (a verdict or a profile needs two)."""
    if layers is None:
        chosen = [s for s in sites if default(s)]
        return chosen if len(chosen) >= 2 else list(sites)
    if isinstance(layers, str) and layers == "all":
        return list(sites)
    if callable(layers) and not isinstance(layers, type):
        return [s for s in sites if layers(s.module_name, s.module)]
    types, patterns = _split(layers, what)
    names = {s.name for s in sites}
    exact = [p for p in patterns if p in names]
    for pat in patterns:
        if pat not in names and not any(name_matches(s.module_name, pat) for s in sites):
            raise KeyError(f"fastinit.watch: no recorded layer matches {pat!r} (recorded: "
                           f"{[s.name for s in sites][:4]}...; only hooked modules are "
                           f"recorded: watch(model, modules={pat!r}) records those)")
    return [s for s in sites
            if (types and issubclass(s.cls, types)) or s.name in exact
            or any(name_matches(s.module_name, p) for p in patterns)]
