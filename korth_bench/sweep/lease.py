"""One driver per sweep: a lease file ``<sweep>/driver.lease`` with a heartbeat.

``korth-bench run`` (``--resume`` too) takes the lease before it touches the sweep, renews it every
``heartbeat_s`` from a thread, and removes it at a clean exit (Ctrl-C and a storage fault
included). A second driver on the same sweep finds a live lease and is refused in one line naming
the holder (host, PID, since when), exit code 2. A lease left by a driver that was killed is taken
over without manual cleanup, with a line saying so: at once when its holder ran on this host and
its process is gone, otherwise once its heartbeat is older than the expiry
(``KORTH_BENCH_LEASE_EXPIRY_S``, default ``DEFAULT_EXPIRY_S``; the hosts' clocks must agree to well
within it).

The file is a small JSON object written through ``korth_bench.results``' storage layer, so it
works alike on a local path, a shared file system and an object store. Two drivers that take a
free lease at the same moment: locally the file is created with a hard link (one of them wins);
on an object store each writes, waits ``SETTLE_S`` and reads it back, and the one whose write
is not there is refused.
"""
from __future__ import annotations

import datetime
import json
import os
import socket
import sys
import threading
import time
import uuid
from typing import Any, Dict, List, Optional

import pyarrow.fs as pafs

from korth_bench import results
from korth_bench.errors import ConfigError

LEASE_FILE = "driver.lease"
EXPIRY_ENV = "KORTH_BENCH_LEASE_EXPIRY_S"
DEFAULT_EXPIRY_S = 60.0
SETTLE_S = 1.0          # an object store: wait this long after writing before reading it back
_HELD: set = set()       # tokens of the leases this process holds now


def expiry_s() -> float:
    """The heartbeat age after which a lease from another host is taken over."""
    text = os.environ.get(EXPIRY_ENV)
    if not text:
        return DEFAULT_EXPIRY_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise ConfigError(f"{EXPIRY_ENV}={text!r} must be a number of seconds > 0")
    return value


def _start_ticks(pid: int) -> Optional[str]:
    """The process's start time in clock ticks since boot (tells a reused PID apart)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, ticks: Optional[str]) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    now = _start_ticks(pid)
    if now is not None:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return False
        except OSError:
            return False
    return ticks is None or now is None or now == ticks


def _utc(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC")


def holder_text(lease: Dict[str, Any]) -> str:
    return (f"host {lease.get('host', '?')}, PID {lease.get('pid', '?')}, since "
            f"{_utc(lease['started']) if isinstance(lease.get('started'), (int, float)) else '?'}")


class DriverLease:
    """The lease of one sweep (``sweep_uri``, ``endpoint``), taken by ``acquire``."""

    def __init__(self, sweep_uri: str, endpoint: Optional[str] = None,
                 expiry: Optional[float] = None, command: str = ""):
        # pyarrow's own few retries: a heartbeat or a release must not wait out an outage
        self.filesystem, root = results.resolve(sweep_uri, endpoint)
        self.sweep_uri, self.path = sweep_uri, f"{root}/{LEASE_FILE}"
        self.local = isinstance(self.filesystem, pafs.LocalFileSystem)
        self.expiry = expiry if expiry is not None else expiry_s()
        self.heartbeat_s = max(0.2, min(5.0, self.expiry / 4))
        self.token = uuid.uuid4().hex
        self.started = time.time()
        self.facts = {"host": socket.gethostname(), "pid": os.getpid(),
                      "pid_start": _start_ticks(os.getpid()), "started": self.started,
                      "command": command, "token": self.token}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._created: List[str] = []   # local directories the lease created (removed if empty)

    # ------------------------------------------------------------------ the file
    def read(self) -> Optional[Dict[str, Any]]:
        """The lease on storage; None when there is none; {} when it cannot be read as one."""
        try:
            with self.filesystem.open_input_file(self.path) as handle:
                data = handle.read()
        except FileNotFoundError:
            return None
        except OSError:
            if self.filesystem.get_file_info(self.path).type == pafs.FileType.NotFound:
                return None
            raise
        try:
            lease = json.loads(data)
        except ValueError:
            return {}
        return lease if isinstance(lease, dict) else {}

    def _payload(self) -> bytes:
        now = time.time()
        return json.dumps({**self.facts, "heartbeat": now, "heartbeat_utc": _utc(now),
                           "expiry_s": self.expiry}, indent=1).encode()

    def _write(self) -> None:
        results.write_bytes(self.filesystem, self.path, self._payload())

    def _create_local(self, stale: Optional[Dict[str, Any]]) -> bool:
        """Create the lease file where there is none (or replace ``stale``), atomically: a
        hard link fails when another driver's file is there."""
        directory = os.path.dirname(self.path)
        missing = []
        probe = directory
        while not os.path.exists(probe):
            missing.append(probe)
            probe = os.path.dirname(probe)
        os.makedirs(directory, exist_ok=True)
        self._created = missing
        if stale is not None:  # move the stale lease aside: one of two racing drivers does
            aside = f"{self.path}.{self.token}.stale"
            try:
                os.rename(self.path, aside)
            except FileNotFoundError:
                return False
            os.unlink(aside)
        temp = f"{directory}/.{LEASE_FILE}.{self.token}.tmp"
        results.write_bytes(self.filesystem, temp, self._payload())
        try:
            os.link(temp, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(temp)

    # ------------------------------------------------------------------ taking and keeping it
    def acquire(self) -> Optional[str]:
        """Take the lease; returns the line to print when a stale lease was taken over.

        Raises:
            ConfigError: a live driver holds the sweep (one line naming it).
        """
        found = self.read()
        note = None
        if found is not None:
            stale = self._stale(found)
            if stale is None:
                raise ConfigError(self._refusal(found))
            note = (f"sweep at {self.sweep_uri}: taking over the lease of a driver that is gone "
                    f"({holder_text(found) if found else 'an unreadable lease'}: {stale})")
        if self.local:
            if not self._create_local(found):
                raise ConfigError(self._refusal(self.read() or {}))
        else:
            self._write()
            time.sleep(SETTLE_S)
            now = self.read()
            if not now or now.get("token") != self.token:
                raise ConfigError(self._refusal(now or {}))
        _HELD.add(self.token)
        self._thread = threading.Thread(target=self._renew, name="korth-bench-lease", daemon=True)
        self._thread.start()
        return note

    def _stale(self, lease: Dict[str, Any]) -> Optional[str]:
        """Why the lease is no longer held (None: its driver is alive)."""
        if not lease:
            return "its file is not a lease"
        if lease.get("token") in _HELD:
            return None
        host, pid = lease.get("host"), lease.get("pid")
        if host == self.facts["host"] and isinstance(pid, int):
            if pid == os.getpid() and lease.get("pid_start") == self.facts["pid_start"]:
                return "this process left it"
            if not _alive(pid, lease.get("pid_start")):
                return "its process is gone from this host"
            return None
        beat = lease.get("heartbeat")
        age = time.time() - beat if isinstance(beat, (int, float)) else float("inf")
        if age > self.expiry:
            return (f"its last heartbeat was {age:.0f} s ago, beyond the {self.expiry:g} s "
                    f"expiry ({EXPIRY_ENV})")
        return None

    def _refusal(self, lease: Dict[str, Any]) -> str:
        beat = lease.get("heartbeat")
        age = f"; last heartbeat {max(0.0, time.time() - beat):.0f} s ago" if isinstance(
            beat, (int, float)) else ""
        return (f"sweep at {self.sweep_uri} is held by a running driver ({holder_text(lease)}"
                f"{age}); wait for it to finish, watch it with `korth-bench status`, or stop that "
                f"process (a killed driver's lease is taken over at once on its host, elsewhere "
                f"after {self.expiry:g} s without a heartbeat)")

    def _renew(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                lease = self.read()
                if lease and lease.get("token") not in (None, self.token):
                    print(f"korth-bench: warning: the lease of the sweep at {self.sweep_uri} was "
                          f"taken over by another driver ({holder_text(lease)}); this driver no "
                          "longer renews it", file=sys.stderr, flush=True)
                    return
                self._write()
            except Exception:  # a storage hiccup: the next heartbeat tries again
                continue

    def release(self) -> None:
        """Stop renewing and remove the lease (if it is still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        _HELD.discard(self.token)
        try:
            lease = self.read()
            if lease and lease.get("token") == self.token:
                self.filesystem.delete_file(self.path)
        except Exception:  # a storage fault: the next driver takes the lease over
            return
        for directory in self._created:  # the lease was all there was: leave nothing behind
            try:
                os.rmdir(directory)
            except OSError:
                break

    def __enter__(self) -> "DriverLease":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
