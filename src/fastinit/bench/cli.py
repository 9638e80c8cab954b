"""``fastinit bench``: fastinit against torch and the memory-bandwidth limit, in one run.

Sections run one after the other and each row is printed when its timing is done (rows are
reported through :func:`fastinit.bench.timing.on_row`). Errors (no torch, an unknown section, a
section this machine cannot run, an unwritable --markdown path) are one line and a non-zero
exit status, before anything is timed.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import textwrap
import time
from typing import Optional, Sequence

from ..info import TORCH_INSTALL, info
from .timing import Row, format_table, machine_description, narrow_header, narrow_lines, now_utc, \
    on_row, section_title

SECTIONS = ("cpu", "busy", "stats", "model", "models", "cuda")
# Seconds (full, --quick) measured on 2 quiet CPU cores (AMD EPYC, a shared VM; see
# benchmarks/RESULTS.md), for the plan printed first; under load they stretch several times.
# cuda's are a guess until a GPU run.
SECTION_SECONDS = {"cpu": (21, 1), "busy": (3, 1), "stats": (14, 1), "model": (7, 1),
                   "models": (150, 15), "cuda": (60, 20)}

DESCRIPTION = """\
Times fastinit against torch and against the memory-bandwidth limit, side by side in one run.

Each row times fastinit, torch and a bandwidth reference (fill_, a write-only pass over the same
tensor, or one read for the statistics) in alternation, and shows the median times, the
speed-up, fastinit's GB/s and its share of the reference's bandwidth. Rows print as they finish.
Times below are for 2 quiet CPU cores; on a busy machine the run takes several times as long.

sections (--sections, default: all that this machine can run):
  cpu     every init function on a 4096 x 4096 tensor (float32, bfloat16, float64) and the
          per-call cost on small tensors: about 20 s
  busy    fills while one spinning process per CPU keeps the machine busy, median and 90th
          percentile beside the quiet machine's: a few seconds
  stats   fastinit.stats against torch's separate reductions: about 15 s
  model   reset_parameters and init_ on a transformer stack against torch's loops: about 10 s
  models  GPT-2 124M and a 1.1B Llama (transformers), resnet50 and vit_base (timm) built stock,
          under fastinit.patch() and by fastinit.materialize(): about 2.5 min (needs
          transformers or timm, skipped without them)
  cuda    the CUDA kernels (needs a CUDA GPU, skipped without one)

examples:
  {prog}                       all sections: about 45 s (3 min with the models section)
  {prog} --quick               small sizes, 3 repeats, a smoke test: about 5 s
  {prog} --sections cpu,model  these sections only
  {prog} --markdown bench.md   also write the table as markdown, with the machine

Needs torch (the CPU build: {torch})."""


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds} s" if seconds < 90 else f"{seconds // 60} min {seconds % 60:02d} s"


class _OneLineParser(argparse.ArgumentParser):
    """argparse, with an error as one line (and where to read more) instead of the usage too."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = _OneLineParser(prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description=DESCRIPTION.format(prog=prog, torch=TORCH_INSTALL))
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and 3 repeats: a smoke test of every section")
    parser.add_argument("--repeats", type=int, metavar="N",
                        help="timed runs per contender and row; the median is shown "
                             "(default 7, with --quick 3)")
    parser.add_argument("--sections", default="all", metavar="LIST",
                        help="comma-separated: cpu, busy, stats, model, models, cuda (default all: "
                             "every section this machine can run)")
    parser.add_argument("--markdown", metavar="PATH",
                        help="also write the whole table as markdown, with the machine and date")
    return parser


def _check_markdown_path(path: str) -> Optional[str]:
    """Why PATH cannot be written (None when it can), checked before the long run."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"--markdown {path}: the folder {folder} does not exist"
    if os.path.isdir(path):
        return f"--markdown {path}: is a folder"
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        return f"--markdown {path}: not writable"
    return None


def _plan(requested: str) -> tuple[list[str], list[str], Optional[str]]:
    """(sections to run, skipped lines, error) for the --sections value."""
    names = [n.strip().lower() for n in requested.split(",") if n.strip()]
    if not names:
        return [], [], "--sections: give one or more of: " + ", ".join(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS + ("all",)]
    if unknown:
        return [], [], (f"unknown section{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(repr(n) for n in unknown)} (choose from: {', '.join(SECTIONS)})")
    import torch
    gpu = torch.cuda.is_available()
    everything = "all" in names
    wanted = [n for n in SECTIONS if everything or n in names]
    skipped = []
    if "cuda" in wanted and not gpu:
        if not everything:
            return [], [], "section 'cuda' needs a CUDA GPU, and torch sees none (torch.cuda.is_available() is False)"
        wanted.remove("cuda")
        skipped.append("cuda skipped: no CUDA GPU visible to torch")
    if "models" in wanted and not any(importlib.util.find_spec(m) for m in ("transformers", "timm")):
        if not everything:
            return [], [], "section 'models' needs transformers or timm (pip install transformers)"
        wanted.remove("models")
        skipped.append("models skipped: neither transformers nor timm is installed")
    return wanted, skipped, None


def _run_section(name: str, quick: bool, repeats: int) -> list[Row]:
    if name == "cpu":
        from .cpu import FLOAT64_CASES, bench_cpu_init, bench_cpu_small
        shape = (512, 512) if quick else (4096, 4096)
        return (bench_cpu_init(shape, ["float32", "bfloat16"], repeats)
                + bench_cpu_init(shape, ["float64"], repeats, cases=FLOAT64_CASES)
                + bench_cpu_small(repeats))
    module = "real_models" if name == "models" else name
    return importlib.import_module(f"fastinit.bench.{module}").run(quick=quick, repeats=repeats)


class _Printer:
    """Prints each row as it is made, with a section title when the section changes."""

    def __init__(self) -> None:
        self.section: Optional[str] = None

    def __call__(self, row: Row) -> None:
        if row.section != self.section:
            self.section = row.section
            print(f"\n{section_title(row)}\n{narrow_header()}")
        print("\n".join(narrow_lines(row)), flush=True)


def main(argv: Optional[Sequence[str]] = None, prog: str = "fastinit bench") -> int:
    args = _parser(prog).parse_args(argv)

    def fail(text: str, status: int = 2) -> int:
        print(f"{prog}: error: {text}", file=sys.stderr)
        return status

    if args.repeats is not None and args.repeats < 1:
        return fail(f"--repeats must be at least 1 (got {args.repeats})")
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        return fail(f"torch is needed (the benchmark times fastinit against it), and importing it "
                    f"failed: {exc}. Install the CPU build: {TORCH_INSTALL}", 1)
    sections, skipped, error = _plan(args.sections)
    if error:
        return fail(error, 1 if "needs a CUDA GPU" in error else 2)
    if args.markdown and (error := _check_markdown_path(args.markdown)):
        return fail(error)
    repeats = args.repeats or (3 if args.quick else 7)

    facts = info()
    print(f"fastinit {facts['fastinit']} on {machine_description()}; {now_utc()}")
    print(f"backend {facts['backend in use']}, CPU kernels {facts.get('CPU kernels', '-')}, "
          f"CPU threads {str(facts.get('CPU threads', '-')).split(' ')[0]}")
    column = 1 if args.quick else 0
    expected = sum(SECTION_SECONDS[n][column] for n in sections)
    plan = ", ".join(f"{n} (about {_duration(SECTION_SECONDS[n][column])})" for n in sections)
    print(textwrap.fill(f"sections: {plan}: about {_duration(expected)} on 2 quiet CPU cores"
                        + "".join(f"; {s}" for s in skipped), 100), flush=True)

    rows: list[Row] = []
    failed: list[str] = []
    started = time.perf_counter()
    with on_row(_Printer()):
        for name in sections:
            t0 = time.perf_counter()
            try:
                rows += _run_section(name, args.quick, repeats)
            except Exception as exc:  # noqa: BLE001 - one line, and the other sections still run
                failed.append(name)
                print(f"{prog}: error: section {name} failed: {type(exc).__name__}: {exc}",
                      file=sys.stderr, flush=True)
                continue
            print(f"({name}: {_duration(time.perf_counter() - t0)})", flush=True)
    print(f"\ndone in {_duration(time.perf_counter() - started)}"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"Machine: {machine_description()}  \nDate: {now_utc()}\n\n")
            f.write(format_table(rows, markdown=True) + "\n")
        print(f"markdown table written to {args.markdown}")
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
