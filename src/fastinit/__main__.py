"""``python -m fastinit``: see fastinit/cli.py."""
import sys

from .cli import main

sys.exit(main(prog="python -m fastinit"))
