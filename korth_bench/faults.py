"""Storage faults: the storage, not the code, stopped a command, and running it again continues.

A storage fault is one of these, found anywhere in an exception's chain (``__cause__``,
``__context__``, and the ``cause`` that Ray's ``RayTaskError`` carries from a trial's worker):

* an ``OSError`` with errno ENOSPC (no space), EDQUOT (quota), or EROFS, EACCES or EPERM (read-only
  storage, permission) naming a path (its ``filename``, or the path quoted in pyarrow's message;
  pyarrow puts the errno in ``OSError.errno`` and in its message as ``[errno N]``);
* an ``OSError`` of pyarrow's S3 client once its retries are spent: ``AWS Error
  NETWORK_CONNECTION`` (no connection, or one cut), ``REQUEST_TIMEOUT`` or ``SERVICE_UNAVAILABLE``
  (unreachable), ``ACCESS_DENIED`` (permission: credentials that expired mid-sweep).

Anything else is not a storage fault (a bug keeps its traceback). No Ray, no pyarrow here.
"""
from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from typing import Iterator, Optional, Tuple

NO_SPACE, QUOTA, READ_ONLY, PERMISSION, UNREACHABLE = (
    "no space left on the device", "disk quota exceeded", "read-only file system", "permission denied", "unreachable")
_BY_ERRNO = {errno.ENOSPC: NO_SPACE, errno.EDQUOT: QUOTA, errno.EROFS: READ_ONLY,
             errno.EACCES: PERMISSION, errno.EPERM: PERMISSION}
_NEEDS_PATH = {READ_ONLY, PERMISSION}  # EPERM from os.kill names no path: not a storage fault
_AWS = re.compile(r"AWS Error (NETWORK_CONNECTION|REQUEST_TIMEOUT|SERVICE_UNAVAILABLE|ACCESS_DENIED)\b")
_ERRNO_TEXT = re.compile(r"\[errno (\d+)\]", re.IGNORECASE)
_QUOTED_PATH = re.compile(r"'(/[^']*)'")


@dataclass(frozen=True)
class Fault:
    """What stopped a command: ``kind`` (one of the five above), the error's own words and the
    path it names (None where it names none)."""
    kind: str
    detail: str
    path: Optional[str] = None


def storage_fault(error: Optional[BaseException]) -> Optional[Fault]:
    """The storage fault in ``error``'s chain (the first one found), or None."""
    for link in _chain(error):
        if not isinstance(link, OSError):
            continue
        text = " ".join(str(link).split())
        aws = _AWS.search(text)
        if aws:
            kind = PERMISSION if aws.group(1) == "ACCESS_DENIED" else UNREACHABLE
            return Fault(kind, text)
        number = link.errno
        if number not in _BY_ERRNO:
            found = _ERRNO_TEXT.search(text)
            number = int(found.group(1)) if found else None
        kind = _BY_ERRNO.get(number)
        path = link.filename if isinstance(link.filename, str) else None
        if path is None:
            quoted = _QUOTED_PATH.search(text)
            path = quoted.group(1) if quoted else None
        if kind and (path or kind not in _NEEDS_PATH):
            return Fault(kind, text, path)
    return None


def _chain(error: Optional[BaseException]) -> Iterator[BaseException]:
    """``error`` and every exception it carries: its cause, its context (unless ``raise ... from
    None`` hid it: a ``ConfigError`` that reports an unreachable store before a sweep starts is
    bad input, not a fault), a ``RayTaskError``'s ``cause`` (the worker's exception) and
    exceptions among its ``args``."""
    todo, seen = [error], set()
    while todo:
        link = todo.pop(0)
        if not isinstance(link, BaseException) or id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        context = None if link.__suppress_context__ else link.__context__
        todo += [getattr(link, "cause", None), link.__cause__, context,
                 *(arg for arg in getattr(link, "args", ()) if isinstance(arg, BaseException))]


def free_space(path: str) -> Optional[Tuple[int, int]]:
    """(bytes free to this user, total bytes) of the file system holding ``path`` (its nearest
    existing parent), or None where it cannot be read."""
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize


def size_text(size: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def fault_text(fault: Fault, storage: str, local: bool, retry_s: Optional[float] = None) -> str:
    """``<storage>: <the fault>``, with the free space where the storage is a local path, the
    path the error names where it lies outside the storage, and the client's retry budget for
    an unreachable store."""
    what = fault.kind
    if fault.kind in (NO_SPACE, QUOTA) and local:
        space = free_space(fault.path or storage)
        if space:
            what += f" ({size_text(space[0])} free of {size_text(space[1])})"
    if fault.kind == UNREACHABLE:
        what = "the object store is unreachable" + (
            f" after the client's retries ({retry_s:.0f} s)" if retry_s else "")
    if fault.kind == PERMISSION and not local:
        what = "the object store denied access (credentials expired or withdrawn?)"
    if fault.path and local and not _below(fault.path, storage):
        what += f" at {fault.path}"
    return f"{storage}: {what}"


def _below(path: str, root: str) -> bool:
    root = os.path.abspath(root).rstrip("/")
    path = os.path.abspath(path)
    return path == root or path.startswith(root + "/")
