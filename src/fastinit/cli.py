"""Command line: ``fastinit {info,example,bench,demo}`` (also ``python -m fastinit ...``).

Every error is one line on stderr, ``<prog>: error: <what> (<how to fix>)``, with a non-zero
exit status: 2 for a bad command line or environment value, 1 for a failure while running,
130 on Ctrl-C, 141 when the reader of the output went away (``fastinit info | head -3``, as a
program killed by SIGPIPE would report). Never a traceback for these.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
from typing import Callable, Optional, Sequence

DESCRIPTION = """\
fastinit: fast, reproducible weight initialization for PyTorch and NumPy.

commands:
  info      what this installation has: version, backends, CPU kernels and threads, CUDA,
            how it was built (instant)
  example   the same seed gives the same bits on both backends (a second)
  bench     fastinit against torch and the memory-bandwidth limit (needs torch: about 45 s
            on 2 quiet CPU cores, --quick about 5 s; rows print as they finish)
  demo      the deep-network experiment that shows why initialization matters (needs torch,
            scikit-learn, matplotlib)

Run "{prog} <command> --help" for a command's options.
"""


def _cmd_info(args: argparse.Namespace) -> int:
    from .info import format_info, info
    print(format_info(info()))
    return 0


def _cmd_example(args: argparse.Namespace) -> int:
    """A short tour: the same seed gives the same weights on both backends."""
    import numpy as np

    import fastinit
    w = np.empty((4, 6), dtype=np.float32)
    fastinit.kaiming_normal_(w, nonlinearity="relu", generator=2026)
    print("kaiming_normal_(4x6, relu, generator=2026):")
    print(np.array2string(w, precision=4, suppress_small=True))
    other = "numpy" if fastinit.get_backend() == "native" else fastinit.get_backend()
    previous = fastinit.get_backend()
    fastinit.set_backend(other)
    same = fastinit.kaiming_normal_(np.empty_like(w), nonlinearity="relu", generator=2026)
    fastinit.set_backend(previous)
    print(f"same bits on the {other} backend: {bool(np.array_equal(w, same))}")
    return 0


def _delegate(module: str, prog: str) -> Callable[[argparse.Namespace, Sequence[str]], int]:
    """Run ``fastinit.<module>.main(rest)``, telling it its program name when it takes one."""
    def run(args: argparse.Namespace, rest: Sequence[str]) -> int:
        main = importlib.import_module(f"fastinit.{module}").main
        if "prog" in inspect.signature(main).parameters:
            return main(list(rest), prog=f"{prog} {module}")
        return main(list(rest))
    return run


class OneLineParser(argparse.ArgumentParser):
    """argparse, with an error as one line (and where to read more) instead of the usage too."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = OneLineParser(prog=prog, description=DESCRIPTION.format(prog=prog),
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     usage=f"{prog} [-h] [--version] <command> [options]")
    from .info import version_text
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>",
                                title="commands", help=argparse.SUPPRESS)
    sub.add_parser("info", help="installation facts").set_defaults(run=_cmd_info)
    sub.add_parser("example", help="reproducibility example").set_defaults(run=_cmd_example)
    for name in ("bench", "demo"):
        sub.add_parser(name, add_help=False).set_defaults(run=_delegate(name, prog), passes_rest=True)
    return parser


def _import_problems(prog: str, command: str) -> int:
    """Print what the package found wrong at import (one line each); 2 when a value of the
    environment is not valid, else 0. The fallback warning is left to ``info``, which shows it."""
    from .info import import_messages
    status = 0
    for kind, text in import_messages():
        if kind == "warning" and command == "info":
            continue
        print(f"{prog}: {kind}: {text}", file=sys.stderr)
        if kind == "error":
            status = 2
    return status


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """The ``fastinit`` console script (``python -m fastinit`` passes its own ``prog``)."""
    prog = prog or "fastinit"
    parser = _parser(prog)
    args, rest = parser.parse_known_args(argv)
    if not getattr(args, "passes_rest", False) and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    status = _import_problems(prog, args.command)
    if status:
        return status
    try:
        if getattr(args, "passes_rest", False):
            status = int(args.run(args, rest) or 0)
        else:
            status = int(args.run(args) or 0)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left (| head): silence the rest of the output, as a C tool killed by
        # SIGPIPE would be silent, and say so in the exit status (128 + SIGPIPE).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a file that cannot be written, a full disk: the user's to fix
        print(f"{prog} {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
