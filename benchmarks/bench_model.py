"""Thin wrapper: the benchmark lives in the package (fastinit/bench/model.py) so that
``python -m fastinit bench`` includes it. See that module for what is timed and how."""
import sys

from fastinit.bench.model import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
