"""Progress of long work, on a terminal and in a log alike.

A tqdm bar redraws one line, which a log file turns into megabytes of carriage returns, so
tqdm is usually disabled there (``disable=None``), and a background run then says nothing for
an hour. :func:`progress` gives the bar on a terminal and, elsewhere, :class:`LineProgress`: a
line per tenth of the work once it has run for a couple of seconds, printed rather than logged
so that it shows at any log level (the CLI logs at WARNING).
"""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

LINES = 10
"""Lines a :class:`LineProgress` prints over the whole work (plus none at the start)."""
QUIET_SECONDS = 2.0
"""Work that is this quick prints no lines: they would only clutter a short command's output
(an error message, a test's captured output)."""


class LineProgress:
    """The part of tqdm's interface that kdassert uses, as lines: ``desc: done of total unit (rate/s)``."""

    def __init__(self, total: int, desc: str, unit: str = "ex", stream=None):
        self.total, self.desc, self.unit = total, desc, unit
        self.n = 0
        self.disable = True  # as tqdm says of itself when it draws nothing
        self._stream = stream
        self._start = time.perf_counter()
        self._step = max(1, -(-total // LINES))  # ceil: at most LINES lines

    def update(self, n: int = 1) -> None:
        before, self.n = self.n, self.n + n
        elapsed = time.perf_counter() - self._start
        if elapsed < QUIET_SECONDS:
            return
        if self.n >= self.total or self.n // self._step != before // self._step:
            rate = self.n / max(elapsed, 1e-9)
            print(f"{self.desc}: {self.n} of {self.total} {self.unit} ({rate:.0f}/s)",
                  file=self._stream or sys.stderr, flush=True)

    def close(self) -> None:
        pass

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(total: int, desc: str, unit: str = "ex", leave: bool = True):
    """A tqdm bar on stderr when it is a terminal, else a :class:`LineProgress`."""
    if sys.stderr.isatty():
        return tqdm(total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr)
    return LineProgress(total, desc, "examples" if unit == "ex" else f"{unit}s")
