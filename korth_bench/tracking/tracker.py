"""``Tracker``: the MLflow runs and TensorBoard files of one sweep or one ``train`` run.

It is fed from one process (the sweep's driver through the Tune callback ``sweep.tracking``, or
``korth-bench train``) with each ``epochs`` row and each trial's end. A tracker that fails for a
trial (a server down, a store refusing) is reported in one line on stderr, naming the trial and
the error, and is not called again for that trial; the trial and its tables go on unchanged.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Mapping, Optional, Sequence, Set

from korth_bench.config import TrialConfig
from korth_bench.tracking.mlflow_runs import MlflowRuns
from korth_bench.tracking.settings import TrackingSettings
from korth_bench.tracking.tensorboard_runs import TensorBoardRuns
from korth_bench.trial.summary import HEADLINE


class Tracker:
    """Args:
        settings: what to log.
        sweep: the sweep's name (``train``: the trial's name).
        tensorboard_root: where the trials' event directories go.
        parent: one MLflow parent run for the sweep (``train``: none).
        sweep_uri, space_file_hash: tags of the parent run.
    """

    def __init__(self, settings: TrackingSettings, *, sweep: str, tensorboard_root: str,
                 parent: bool = True, sweep_uri: str = "", space_file_hash: str = ""):
        self.settings = settings
        self.mlflow: Optional[MlflowRuns] = None
        if settings.mlflow:
            self.mlflow = MlflowRuns(settings.experiment, sweep, parent=parent, sweep_uri=sweep_uri,
                                     space_file_hash=space_file_hash)
        self.tensorboard = TensorBoardRuns(tensorboard_root) if settings.tensorboard else None
        self.failed: Set[str] = set()  # trial ids whose tracking failed once

    def log_epoch(self, cfg: TrialConfig, row: Mapping[str, Any]) -> None:
        if self.tensorboard:
            self._guard(cfg, "TensorBoard", lambda: self.tensorboard.log_epoch(cfg, row))
        if self.mlflow:
            self._guard(cfg, "MLflow", lambda: self.mlflow.log_epoch(cfg, row))

    def catch_up(self, cfg: TrialConfig, rows: Sequence[Mapping[str, Any]]) -> None:
        """Log those of the trial's ``epochs`` ``rows`` (read from its table) that a tracker
        lacks: a driver stopped between a trial's rows and their logging, or a trial resumed
        from a checkpoint, reports only its new epochs."""
        for what, runs in (("TensorBoard", self.tensorboard), ("MLflow", self.mlflow)):
            if runs is not None and rows:
                self._guard(cfg, what, lambda runs=runs: _log_missing(runs, cfg, rows))

    def finish(self, cfg: TrialConfig, status: str, summary: Mapping[str, Any]) -> None:
        """The trial ended with ``status`` (``completed``, ``diverged``, ``stopped``, ``error``);
        ``summary`` holds its final ``trials`` row numbers (empty when it never wrote one)."""
        if self.tensorboard:
            self._guard(cfg, "TensorBoard", lambda: self.tensorboard.finish(cfg))
        if self.mlflow:
            self._guard(cfg, "MLflow", lambda: self.mlflow.finish(cfg, status, summary, HEADLINE))
        self.failed.discard(cfg.trial_id)

    def close(self) -> None:
        if self.tensorboard:
            self.tensorboard.close()
        if self.mlflow:
            try:
                self.mlflow.end_sweep()
            except Exception as err:  # the tracker is never a reason for a sweep to fail
                print(f"tracking: sweep run not closed in MLflow ({_one_line(err)})",
                      file=sys.stderr, flush=True)

    def _guard(self, cfg: TrialConfig, what: str, call: Callable[[], None]) -> None:
        if cfg.trial_id in self.failed:
            return
        try:
            call()
        except Exception as err:  # any failure of a tracker: report once, train on
            self.failed.add(cfg.trial_id)
            print(f"tracking: trial {cfg.name}: {what} failed, its tables go on without it "
                  f"({_one_line(err)})", file=sys.stderr, flush=True)


def _log_missing(runs: Any, cfg: TrialConfig, rows: Sequence[Mapping[str, Any]]) -> None:
    logged = runs.logged_epochs(cfg)
    for row in rows:
        if int(row["epoch"]) not in logged:
            runs.log_epoch(cfg, row)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or "no message"
    return f"{type(err).__name__}: {text}"[:300]
