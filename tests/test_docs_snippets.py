"""Every python snippet of README.md and docs/*.md runs as written, and every install command
that the project shows says the same thing.

The snippets of one file run in order, in one namespace, as a reader follows them: a block may
use what an earlier block of the same file defined. They run in a temporary working directory
(files they write, like watch.png, land there). A block that cannot run here says so on the
line before its fence, with a reason:

    <!-- snippet: needs-gpu (why) -->               run only with a CUDA GPU
    <!-- snippet: needs-modules a b (why) -->       run only where modules a and b import
    <!-- snippet: needs-launch (why) -->            never run here: needs torchrun or similar
    <!-- snippet: not-code (why) -->                signatures or fragments: never run
"""
from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

import fastinit

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
MARK = re.compile(r"<!--\s*snippet:\s*(needs-gpu|needs-modules|needs-launch|not-code)\b\s*(.*?)\s*-->")

# Files whose snippets do not run yet, owned by another piece of work: (reason). Not strict, so
# that the fix there does not fail this suite; remove the entry once it runs (the summary then
# shows an XPASS).
PENDING: dict = {}


def snippets(path: Path) -> list[tuple[int, str, str, str]]:
    """(line, code, mark, reason) of each ```python block; mark is "" for a block that runs."""
    lines = path.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            mark, reason = "", ""
            j = i - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            if j >= 0 and (m := MARK.search(lines[j])):
                mark, reason = m.group(1), m.group(2).strip()
            end = i + 1
            while lines[end].strip() != "```":
                end += 1
            out.append((i + 1, "\n".join(lines[i + 1:end]), mark, reason))
            i = end
        i += 1
    return out


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.backends(fastinit.available_backends()[0])  # the default one: what a reader gets
@pytest.mark.parametrize("doc", [str(p.relative_to(ROOT)) for p in DOCS
                                 if any(not s[2] for s in snippets(p))])
def test_snippets_run_as_written(doc, tmp_path, monkeypatch, request):
    pytest.importorskip("torch")
    if doc in PENDING:
        request.applymarker(pytest.mark.xfail(reason=PENDING[doc], strict=False))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__snippet__"}
    for line, code, mark, reason in snippets(ROOT / doc):
        if mark == "needs-gpu" and _has_cuda():
            mark = ""
        if mark == "needs-modules" and all(importlib.util.find_spec(name) is not None
                                           for name in reason.split("(")[0].split()):
            mark = ""
        if mark:
            continue
        try:
            exec(compile(code, f"{doc}:{line}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{doc}, the snippet at line {line} fails: "
                                 f"{type(exc).__name__}: {exc}") from exc


@pytest.mark.backends("numpy")
def test_every_skipped_snippet_says_why():
    for path in DOCS:
        for line, _, mark, reason in snippets(path):
            assert not mark or re.search(r"\(.+\)", reason), f"{path.name}:{line}: '{mark}' without a (reason)"


# --- Install commands -----------------------------------------------------------------------

TORCH_INDEX = "--index-url https://download.pytorch.org/whl/cpu"


def readme_commands() -> list[str]:
    """The README's bash commands of the quick start (one per ```bash block)."""
    text = (ROOT / "README.md").read_text()
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, re.S)]


@pytest.mark.backends("numpy")
def test_ci_runs_exactly_the_readme_test_command():
    test_commands = [c for c in readme_commands() if "pytest" in c]
    assert len(test_commands) == 1, test_commands
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_commands[0] in [line.strip() for line in ci], ".ci/run must run the README's test command"


@pytest.mark.backends("numpy")
def test_readme_commands_install_the_cpu_build_of_torch_pinned():
    for command in readme_commands():
        if "pip install" not in command:
            continue
        for step in command.split("&&"):
            words = shlex.split(step)
            if words[:2] == ["pip", "install"] and any(w.startswith("torch") for w in words[2:]):
                assert "torch==2.13.0" in words and " ".join(words[-2:]) == TORCH_INDEX, step


def _torch_install_mentions() -> list[tuple[str, str]]:
    found = []
    files = DOCS + sorted((ROOT / "src" / "fastinit").rglob("*.py"))
    for path in files:
        rel = str(path.relative_to(ROOT))
        for m in re.finditer(r"pip install [^\n`\"']*?\btorch\b[^\n`\"']*", path.read_text()):
            found.append((rel, m.group(0)))
    return found


@pytest.mark.backends("numpy")
def test_every_torch_install_instruction_names_the_cpu_index():
    """Plain `pip install torch` pulls the multi-GB CUDA build on Linux: every place that tells
    a user to install torch gives torch's CPU index, as torch's own instructions do."""
    mentions = _torch_install_mentions()
    assert mentions
    bad = [f"{where}: {text}" for where, text in mentions if TORCH_INDEX not in text]
    assert not bad, "\n".join(bad)
