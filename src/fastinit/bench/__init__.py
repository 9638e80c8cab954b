"""Benchmarks: fastinit side by side with torch and the memory-bandwidth limit, in one run.

:mod:`.cli` is ``python -m fastinit bench`` (its sections: :mod:`.cpu`, :mod:`.cuda`,
:mod:`.stats`, :mod:`.model`); :mod:`.timing` holds the shared timing and table helpers. The
scripts in benchmarks/ are thin wrappers around these modules. Imports: the public API of
fastinit (as a user calls it) and torch; nothing imports this package but the CLI.
"""
from .cli import main

__all__ = ["main"]
