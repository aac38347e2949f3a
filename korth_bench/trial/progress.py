"""A one-line progress bar on stderr for a trial's long stretches (an epoch, the robustness suite).

It rewrites one line in place with ``\\r`` and clears it when done, so the lines printed between
(``korth-bench train``'s epoch summaries) stay clean. It writes only when its stream is a
terminal: in a Ray worker (whose stderr goes to a log file), a pipe, a CI log or a test it is
silent. Writes are at most every ``INTERVAL_S`` seconds and never synchronize a device.
"""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

WIDTH = 20           # characters of the bar
INTERVAL_S = 0.2     # least time between two writes


class Bar:
    """``label [#####...............] done/total``, advanced by ``advance(n)``, removed by ``close()``."""

    def __init__(self, label: str, total: int, stream: Optional[TextIO] = None):
        self.label, self.total, self.done = label, total, 0
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.active = total > 0 and callable(isatty) and isatty()
        self.written = 0.0  # time of the last write

    def advance(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        now = time.monotonic()
        if self.active and (now - self.written >= INTERVAL_S or self.done == self.total):
            filled = round(WIDTH * self.done / self.total)
            self.stream.write(f"\r  {self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] "
                              f"{self.done}/{self.total}")
            self.stream.flush()
            self.written = now

    def close(self) -> None:
        if self.active and self.written:
            self.stream.write("\r\033[K")  # back to the line's start, and erase it
            self.stream.flush()
