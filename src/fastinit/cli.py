"""Command line: ``python -m fastinit {info,example,bench,demo}``."""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence


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


def _delegate(module: str):
    def run(args: argparse.Namespace, rest: Sequence[str]) -> int:
        return importlib.import_module(f"fastinit.{module}").main(list(rest))
    return run


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastinit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="version, backends, threads, CUDA").set_defaults(run=_cmd_info)
    sub.add_parser("example", help="a short reproducibility example").set_defaults(run=_cmd_example)
    for name, module, text in (("bench", "bench", "time fastinit against torch and memory bandwidth"),
                               ("demo", "demo", "the deep-MLP experiment that shows why init matters")):
        sub.add_parser(name, help=text, add_help=False).set_defaults(run=_delegate(module), passes_rest=True)
    args, rest = parser.parse_known_args(argv)
    if getattr(args, "passes_rest", False):
        return int(args.run(args, rest) or 0)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return int(args.run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
