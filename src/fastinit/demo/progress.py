"""A progress bar on stderr without dependencies: redrawn in place on a terminal, a line per
tenth of the work otherwise (logs, CI), nothing with ``enabled=False``."""
from __future__ import annotations

import sys
import time
from typing import IO, Optional


class Progress:
    """Work measured in units (the demo: layer-steps), reported per phase.

    >>> p = Progress(total=1000)
    >>> p.phase("training depth 10, tanh"); p.advance(10); p.done()
    """

    def __init__(self, total: float, stream: Optional[IO[str]] = None, enabled: bool = True,
                 width: int = 28) -> None:
        self.total = max(float(total), 1e-9)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.width = width
        self.done_units = 0.0
        self.label = ""
        self.t0 = time.perf_counter()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_tenth = -1
        self._drawn = False

    def phase(self, label: str) -> None:
        self.label = label
        self._draw(force=True)

    def advance(self, units: float) -> None:
        self.done_units = min(self.total, self.done_units + units)
        self._draw()

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        share = self.done_units / self.total
        elapsed = time.perf_counter() - self.t0
        if self.tty:
            fill = int(round(share * self.width))
            bar = "#" * fill + "." * (self.width - fill)
            eta = f", ~{elapsed / share - elapsed:.0f} s left" if 0.05 < share < 1 else ""
            self.stream.write(f"\r[{bar}] {share:4.0%} {elapsed:5.1f} s{eta}  {self.label:<40.40}")
            self.stream.flush()
            self._drawn = True
            return
        tenth = int(share * 10)
        if tenth > self._last_tenth or force:
            self._last_tenth = max(self._last_tenth, tenth)
            self.stream.write(f"  [{share:4.0%} {elapsed:5.1f} s] {self.label}\n")
            self.stream.flush()

    def done(self) -> None:
        if self.enabled and self.tty and self._drawn:
            self.stream.write("\r" + " " * (self.width + 72) + "\r")
            self.stream.flush()
