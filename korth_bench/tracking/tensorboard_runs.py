"""TensorBoard event files of a sweep: ``<root>/<trial name>/``, one scalar per ``epochs`` column.

A scalar's tag is ``<cell>/<regularizer>/<column>`` (``synthetic-resnet-8-1/so/test_acc``):
TensorBoard shows one section per cell, and in it the curves of each regularizer's seeds side
by side, while the sweep runs (each epoch is flushed as it is written). So
``tensorboard --logdir <storage>/<sweep>/tensorboard`` is the whole sweep. A resumed trial
appends a new event file to its directory; TensorBoard reads them as one run.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Set

from korth_bench.config import TrialConfig
from korth_bench.tracking.mlflow_runs import EPOCH_METRICS, STEP_METRIC, cell_text, finite_metrics

TENSORBOARD_DIR = "tensorboard"      # <sweep>/tensorboard


class TensorBoardRuns:
    """One ``SummaryWriter`` per running trial, under ``root``."""

    def __init__(self, root: str):
        self.root = root
        self._writers: Dict[str, Any] = {}

    def writer(self, cfg: TrialConfig) -> Any:
        if cfg.trial_id not in self._writers:
            from torch.utils.tensorboard import SummaryWriter

            self._writers[cfg.trial_id] = SummaryWriter(os.path.join(self.root, cfg.name))
        return self._writers[cfg.trial_id]

    def log_epoch(self, cfg: TrialConfig, row: Mapping[str, Any]) -> None:
        writer = self.writer(cfg)
        prefix = f"{cell_text(cfg)}/{cfg.regularizer}"
        for key, value in finite_metrics(row, EPOCH_METRICS).items():
            writer.add_scalar(f"{prefix}/{key}", value, global_step=int(row["epoch"]))
        writer.flush()

    def logged_epochs(self, cfg: TrialConfig) -> Set[int]:
        """The epochs the trial's event files hold (the steps of its ``STEP_METRIC`` scalar)."""
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        directory = os.path.join(self.root, cfg.name)
        if not os.path.isdir(directory):
            return set()
        if cfg.trial_id in self._writers:
            self._writers[cfg.trial_id].flush()
        events = EventAccumulator(directory, size_guidance={"scalars": 0})
        events.Reload()
        tag = f"{cell_text(cfg)}/{cfg.regularizer}/{STEP_METRIC}"
        return ({int(e.step) for e in events.Scalars(tag)} if tag in events.Tags()["scalars"]
                else set())

    def finish(self, cfg: TrialConfig) -> None:
        writer = self._writers.pop(cfg.trial_id, None)
        if writer is not None:
            writer.close()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
