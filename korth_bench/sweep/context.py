"""What every trial of a sweep needs: ``SweepContext``, shipped to it with ``tune.with_parameters``.

It sits below the tuner, the callbacks and the cluster code, which all take it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

import pyarrow.fs as pafs

from korth_bench import results
from korth_bench.config import TrialConfig
from korth_bench.spaces.sections import Resources
from korth_bench.spaces.space import Space
from korth_bench.sweep.checkpoints import CHECKPOINTS_DIR, TrialCheckpoints


@dataclass(frozen=True)
class SweepContext:
    """The sweep-wide facts a trial needs, shipped to it with ``tune.with_parameters``."""
    sweep: str                              # the sweep name (the trials table's sweep column)
    sweep_uri: str                          # <storage>/<name>, a local path or a URI
    endpoint: Optional[str]                 # S3-compatible endpoint, if any
    base: Dict[str, Any]                    # fixed trial keys; a trial's Tune config adds its own
    metrics: Tuple[str, ...]                # search and scheduler metrics every report must carry
    resources: Resources
    checkpoint_keep: int
    whole_rows: bool = False                # reports carry whole rows (for the logging section)
    storage_retry_s: Optional[float] = None  # an unreachable object store is retried this long

    def filesystem(self) -> pafs.FileSystem:
        """The storage's file system, whose S3 client retries for ``storage_retry_s``."""
        return results.resolve(self.sweep_uri, self.endpoint, self.storage_retry_s)[0]

    @property
    def local(self) -> bool:
        """Whether the storage is a local path (or a file system mounted as one)."""
        return isinstance(self.filesystem(), pafs.LocalFileSystem)

    def path(self, *parts: str) -> str:
        """A path inside the sweep directory, in the storage's file system."""
        return "/".join([results.resolve(self.sweep_uri, self.endpoint)[1], *parts])

    def checkpoints(self, trial_id: str) -> TrialCheckpoints:
        """The trial's own checkpoints, ``<sweep>/checkpoints/<trial_id>`` (``sweep.checkpoints``)."""
        return TrialCheckpoints(self.filesystem(), self.path(CHECKPOINTS_DIR, trial_id),
                                self.checkpoint_keep)

    def trial_config(self, point: Mapping[str, Any]) -> TrialConfig:
        cfg = TrialConfig.from_dict({**self.base, **point})
        if cfg.threads == 0:  # one torch thread per CPU the worker holds, never the whole machine
            cfg = cfg.replace(threads=max(1, int(self.resources.per_worker["cpu"])))
        return cfg


def sweep_context(space: Space, storage: Optional[str], endpoint: Optional[str]) -> SweepContext:
    metrics = tuple(dict.fromkeys([*space.search.metrics,
                                   *([space.scheduler.metric] if space.scheduler.metric else [])]))
    return SweepContext(sweep=space.name, sweep_uri=results.sweep_location(storage, space.name),
                        endpoint=endpoint, base=space.base, metrics=metrics,
                        resources=space.resources, checkpoint_keep=space.checkpoint_keep,
                        whole_rows=space.tracking.enabled, storage_retry_s=space.storage_retry_s)


# ---------------------------------------------------------------------- the trainables
