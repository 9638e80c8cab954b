"""Thin wrapper: the benchmark lives in the package (fastinit/bench/cuda.py) so that
``python -m fastinit bench`` includes it. See that module for what is timed and how."""
import sys

from fastinit.bench.cuda import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
