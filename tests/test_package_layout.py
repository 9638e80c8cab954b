"""The package's layout: one folder per concern, imports that run one way (docs in README.md).

Read from the source (ast), so a lazy import inside a function counts like any other: it ties
the two modules just the same. Imports under ``if TYPE_CHECKING:`` are for type checkers only.
"""
from __future__ import annotations

import ast
import pathlib
from collections import defaultdict

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "src" / "fastinit"

# What each part of the package may import (besides itself, fastinit._version and the compiled
# core). "fastinit" is the public API (the package's __init__), for the user-level tools.
ALLOWED = {
    "stream": set(),
    "dispatch": {"stream"},
    "fans": set(),
    "init": {"fans", "dispatch", "stream"},
    "initializers": {"init", "fans", "dispatch", "stream"},
    "stats": {"dispatch", "stream"},
    "model": {"init", "initializers", "stats", "fans", "dispatch", "stream"},
    "integrations": {"model", "init", "initializers", "fans", "dispatch", "stream"},
    "watch": {"stats", "dispatch", "stream"},
    "info": {"dispatch"},
    "demo": {"fastinit", "watch", "model", "initializers", "init", "stats", "fans", "dispatch",
             "stream"},
    "bench": {"fastinit", "info", "model", "initializers", "init", "stats", "watch", "fans",
              "dispatch", "stream"},
    "cli": {"fastinit", "info", "bench", "demo"},
    "__main__": {"cli"},
}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _exists(name: str) -> bool:
    base = ROOT.parent / name.replace(".", "/")
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _resolve(name: str) -> str:
    while name and not _exists(name):
        name = name.rpartition(".")[0]
    return name


def _type_checking_nodes(tree: ast.AST) -> set:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    return skip


def _imports() -> dict[str, set[str]]:
    """module -> the fastinit modules it imports (anywhere in its code)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in ROOT.rglob("*.py"):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        skip = _type_checking_nodes(tree)
        graph[name]
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                if not mod.startswith("fastinit"):
                    continue
                for alias in node.names:
                    if alias.name == "_core":
                        continue
                    sub = f"{mod}.{alias.name}"
                    graph[name].add(sub if _exists(sub) else _resolve(mod))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("fastinit") and not alias.name.endswith("_core"):
                        graph[name].add(_resolve(alias.name))
        graph[name].discard(name)
    return graph


def _part(module: str) -> str:
    """fastinit.model.plan -> "model"; fastinit -> "fastinit"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "fastinit"


def test_every_import_goes_down_the_layers():
    bad = []
    for module, deps in _imports().items():
        part = _part(module)
        if part in ("fastinit", "_version"):
            continue
        assert part in ALLOWED, f"{module}: a part of the package without import rules"
        for dep in deps:
            other = _part(dep)
            if other in (part, "_version"):
                continue
            if other not in ALLOWED[part]:
                bad.append(f"{module} imports {dep}")
    assert not bad, "imports against the layers:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    graph = _imports()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if dep == "fastinit" or node == "fastinit" or dep.startswith(node + "."):
                continue  # the public API on top; a package re-exporting its own modules
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep):] + [dep] if dep in path else [node, dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("package", sorted(p.name for p in ROOT.iterdir()
                                           if (p / "__init__.py").exists()))
def test_every_subpackage_says_what_it_holds_and_may_import(package):
    doc = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text()))
    assert doc and "Imports" in doc, f"fastinit.{package}: a docstring with its import rules"


def test_modules_stay_small():
    """A module a few screens long at most (the biggest keep one concern each)."""
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 700}
    assert not long, f"modules over 700 lines: {long}"


def test_stats_and_watch_are_the_functions_and_the_packages():
    import fastinit
    from fastinit.stats import Stats
    from fastinit.watch import Watch

    assert callable(fastinit.stats) and callable(fastinit.watch)
    assert fastinit.stats.__name__ == "stats" and fastinit.watch.__name__ == "watch"
    assert fastinit.Stats is Stats and fastinit.Watch is Watch
