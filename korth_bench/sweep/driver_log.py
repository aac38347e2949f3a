"""The sweep driver's log: Ray's and Tune's error records, the trials' tracebacks among them.

While a sweep runs, every error record of Ray's loggers (Tune's "Trial task failed" with the
worker's traceback, a failed snapshot of Tune's state, ...) is also written to
``<sweep>/logs/run-<UTC time>-<pid>.log``, created with the first record. Where that file cannot
be written (the storage's disk is full, or the storage is an object store) it goes to
``<temp dir>/korth-bench-logs/<sweep>/`` on this machine instead; when a storage fault stops a
sweep on an object store, the file is copied under ``<sweep>/logs/`` if the store answers.

Records that carry a storage fault (``korth_bench.faults``), and every record after the first
of them, stay off the console: the sweep ends with one line that names this log instead.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
import traceback
from typing import Iterator, List, Optional

from korth_bench import results
from korth_bench.faults import storage_fault
from korth_bench.sweep.context import SweepContext

LOGS_DIR = "logs"          # <sweep>/logs/
RAY_LOGGER = "ray"         # Tune's and Train's loggers propagate to it, and stop there


class DriverLog(logging.Handler):
    """A logging handler that keeps the driver's error records in a file (``path``)."""

    def __init__(self, context: SweepContext):
        super().__init__(level=logging.ERROR)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.context = context
        self.file_name = f"run-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}.log"
        self.fallback = os.path.join(tempfile.gettempdir(), "korth-bench-logs", context.sweep,
                                     self.file_name)
        self.path: Optional[str] = (context.path(LOGS_DIR, self.file_name) if context.local
                                    else self.fallback)
        self.lines: List[str] = []
        self.faulted = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a record that cannot be formatted is not worth a crash
            text = str(record.msg)
        self.lines.append(text)
        self._append(text + "\n")

    def write_exception(self, error: BaseException, what: str) -> None:
        """Add ``error``'s traceback (the driver's own) to the log."""
        text = f"{time.strftime('%Y-%m-%d %H:%M:%S')} ERROR korth-bench: {what}\n" + "".join(
            traceback.format_exception(type(error), error, error.__traceback__))
        self.lines.append(text.rstrip("\n"))
        self._append(text)

    def _append(self, text: str) -> None:
        """Append to ``path``; where that fails, write every line so far to the fallback file;
        where that fails too, ``path`` becomes None (no log could be written)."""
        if self.path is None:
            return
        try:
            _append_to(self.path, text)
            return
        except OSError:
            if self.path == self.fallback:
                self.path = None
                return
            with contextlib.suppress(OSError):  # no partial log is left under the storage
                os.remove(self.path)
        self.path = self.fallback
        try:
            os.makedirs(os.path.dirname(self.fallback), exist_ok=True)
            with open(self.fallback, "w") as out:
                out.write("\n".join(self.lines) + "\n")
        except OSError:
            self.path = None

    def where(self) -> Optional[str]:
        """Where the log is to be read: its file (for an object store, its copy under
        ``<sweep>/logs/`` when the store answers a quick upload), or None when nothing was
        logged or nothing could be written."""
        if not self.lines or self.path is None:
            return None
        if self.context.local:
            return self.path
        try:  # pyarrow's own few retries: the sweep's long retry budget is spent already
            filesystem, root = results.resolve(self.context.sweep_uri, self.context.endpoint)
            with open(self.path, "rb") as saved:
                results.write_bytes(filesystem, f"{root}/{LOGS_DIR}/{self.file_name}", saved.read())
        except OSError:
            return self.path
        return f"{self.context.sweep_uri}/{LOGS_DIR}/{self.file_name}"


def _append_to(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as out:
        out.write(text)


class _KeepFaultsOffConsole(logging.Filter):
    """On the console's handlers: drop a record that carries a storage fault, and every record
    after the first such one (the consequences: trials stopped, snapshots that failed)."""

    def __init__(self, log: DriverLog):
        super().__init__()
        self.log = log

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.log.faulted and record.exc_info and storage_fault(record.exc_info[1]):
            self.log.faulted = True
        return not self.log.faulted


@contextlib.contextmanager
def driver_log(context: SweepContext) -> Iterator[DriverLog]:
    """Log Ray's error records of this sweep to a ``DriverLog``, faults kept off the console."""
    ray_logger = logging.getLogger(RAY_LOGGER)
    log = DriverLog(context)
    quiet = _KeepFaultsOffConsole(log)
    console = list(ray_logger.handlers)
    for handler in console:
        handler.addFilter(quiet)
    ray_logger.addHandler(log)
    try:
        yield log
    finally:
        ray_logger.removeHandler(log)
        for handler in console:
            handler.removeFilter(quiet)
        sys.stderr.flush()
