"""A sweep trial's checkpoints, owned by the trial on the sweep's storage, not by Tune.

``<sweep>/checkpoints/<trial_id>/`` holds, per checkpointed epoch E (0-based, six digits):

* ``epoch_00000E.pt``, the payload: the ``state.pt`` of ``trial/checkpoint.py``;
* ``epoch_00000E.json``, the manifest ``{"epoch", "size", "sha256"}`` of that payload.

**Complete** means: the manifest exists, and the payload exists with the manifest's size and
SHA-256. The payload is uploaded first and the manifest only after that upload returned, so a
manifest never names a payload that was not fully written; on an object store, where a rename
is a copy, nothing is renamed (each object is one upload to its final key), and a payload cut
short, overwritten or lost is caught by the size and hash check when it is read back. Eviction
deletes the manifest before its payload, so a half-deleted checkpoint is never complete.

A trial (``sweep.tuner``) starts from ``TrialCheckpoints.newest()``: the newest complete
checkpoint of its ``trial_id``, whatever Tune's saved experiment state says; when that one is
gone or damaged, the next older one; when none is left, from scratch. Tune is handed no
checkpoint at all, so its bookkeeping (an experiment state that lags the storage, then a
restore of a checkpoint already evicted: ray-project/ray #27790, #30073) has nothing to lose.
No Ray here.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional

import pyarrow.fs as pafs

from korth_bench import results
from korth_bench.trial.checkpoint import CHECKPOINT_FILE

CHECKPOINTS_DIR = "checkpoints"   # <sweep>/checkpoints/<trial_id>/
_NAME = re.compile(r"^epoch_(\d{6,})\.(pt|json)$")


@dataclass(frozen=True)
class TrialCheckpoints:
    """The checkpoints of one trial: ``directory`` (in ``filesystem``) keeps the newest ``keep``."""
    filesystem: pafs.FileSystem
    directory: str
    keep: int

    def save(self, epoch: int, state_dir: str) -> None:
        """Store ``state_dir/state.pt`` as the checkpoint of ``epoch`` (payload, then manifest),
        then evict the complete checkpoints beyond the newest ``keep`` and older leftovers."""
        with open(os.path.join(state_dir, CHECKPOINT_FILE), "rb") as source:
            payload = source.read()
        manifest = {"epoch": epoch, "size": len(payload),
                    "sha256": hashlib.sha256(payload).hexdigest()}
        results.write_bytes(self.filesystem, self._path(epoch, "pt"), payload)
        try:
            results.write_bytes(self.filesystem, self._path(epoch, "json"),
                                json.dumps(manifest).encode())
        except OSError:  # storage full or gone: no payload is left without its manifest
            with contextlib.suppress(OSError):
                self.filesystem.delete_file(self._path(epoch, "pt"))
            raise
        self._evict()

    def complete(self) -> List[int]:
        """The epochs that have a manifest, newest first (the payload is checked on reading)."""
        return sorted((e for e, kinds in self._files().items() if "json" in kinds), reverse=True)

    @contextlib.contextmanager
    def newest(self) -> Iterator[Optional[str]]:
        """A temporary directory holding ``state.pt`` of the newest complete checkpoint, or None
        when there is none (the trial starts from scratch)."""
        for epoch in self.complete():
            payload = self._read_checked(epoch)
            if payload is None:
                continue
            with tempfile.TemporaryDirectory(prefix="korth-restore-") as directory:
                with open(os.path.join(directory, CHECKPOINT_FILE), "wb") as out:
                    out.write(payload)
                yield directory
            return
        yield None

    def _read_checked(self, epoch: int) -> Optional[bytes]:
        """The payload of ``epoch`` when it matches its manifest, else None (gone or damaged)."""
        try:
            with self.filesystem.open_input_file(self._path(epoch, "json")) as handle:
                manifest = json.loads(handle.read())
            with self.filesystem.open_input_file(self._path(epoch, "pt")) as handle:
                payload = handle.read()
        except FileNotFoundError:  # evicted since the listing (a duplicate of this trial)
            return None
        if (len(payload), hashlib.sha256(payload).hexdigest()) != (manifest["size"], manifest["sha256"]):
            return None
        return payload

    def _evict(self) -> None:
        kept = self.complete()[: self.keep]
        for epoch, kinds in sorted(self._files().items()):
            if epoch < min(kept):
                for kind in sorted(kinds):  # "json" before "pt": the manifest goes first
                    with contextlib.suppress(FileNotFoundError):
                        self.filesystem.delete_file(self._path(epoch, kind))

    def _files(self) -> Dict[int, set]:
        """epoch -> the kinds ("pt", "json") of its files in the directory."""
        found: Dict[int, set] = {}
        selector = pafs.FileSelector(self.directory, allow_not_found=True)
        for info in self.filesystem.get_file_info(selector):
            match = _NAME.match(info.base_name)
            if match and info.type == pafs.FileType.File:
                found.setdefault(int(match.group(1)), set()).add(match.group(2))
        return found

    def _path(self, epoch: int, kind: str) -> str:
        return f"{self.directory}/epoch_{epoch:06d}.{kind}"
