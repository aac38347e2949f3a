"""``TrackingCallback``: the Tune side of ``korth_bench.tracking`` (MLflow, TensorBoard).

It runs in the sweep's driver, so the trials need no tracking package, URI or credential, and a
tracking server is reached from one process only. Each result a trial reports is an ``epochs``
row (``sweep.tuner._metrics``), or, carrying ``status``, its final ``trials`` numbers; a trial
that the scheduler stopped or that failed for good ends its run as ``stopped`` / ``error``.
The callback is pickled with Tune's state: it holds the settings and the sweep's facts, never
the tracking URI; its ``Tracker`` is made again in ``setup``, when the sweep starts or resumes.

A driver can stop (killed, Ctrl-C) between a trial's rows and their logging; the rows are in
the tables, so nothing is lost, and the trackers catch up from them: ``end_open_runs``, at
each start of a sweep, ends the MLflow runs left open by trials that are final in the tables,
and a trial's first report to a driver first logs the earlier epochs its runs lack (a resumed
trial reports only its new epochs).
"""
from __future__ import annotations

import math
import os
import sys
from typing import Any, Dict, List, Optional

from ray import tune

from korth_bench import results
from korth_bench.config import TrialConfig
from korth_bench.sweep.context import SweepContext
from korth_bench.tracking.settings import TrackingSettings
from korth_bench.tracking.tracker import Tracker


class TrackingCallback(tune.Callback):
    def __init__(self, *, context: SweepContext, settings: TrackingSettings, tensorboard_root: str,
                 space_file_hash: str):
        self.context, self.settings = context, settings
        self.tensorboard_root, self.space_file_hash = tensorboard_root, space_file_hash
        self.tracker: Optional[Tracker] = None
        self._stopped: set = set()
        self._caught_up: set = set()   # trials whose earlier epochs this driver has checked

    def __getstate__(self) -> Dict[str, Any]:
        return {**self.__dict__, "tracker": None, "_stopped": set(), "_caught_up": set()}

    def setup(self, **info):
        self.tracker = Tracker(self.settings, sweep=self.context.sweep,
                               tensorboard_root=self.tensorboard_root,
                               sweep_uri=self.context.sweep_uri,
                               space_file_hash=self.space_file_hash)
        self._caught_up = set()

    def _catch_up(self, cfg: TrialConfig, before: Optional[int]) -> None:
        """The first report of a trial to this driver: its earlier epochs first."""
        if cfg.trial_id not in self._caught_up:
            self._caught_up.add(cfg.trial_id)
            if before != 0:
                log_missing_epochs(self.context, self.tracker, cfg, before)

    def on_trial_result(self, iteration: int, trials: List, trial: Any, result: Dict, **info):
        cfg = self.context.trial_config(trial.config)
        epoch = result.get("epoch")
        self._catch_up(cfg, int(epoch) if "status" not in result and isinstance(epoch, (int, float))
                       and math.isfinite(epoch) else None)
        if "status" in result:  # the trial's last report: its trials-row numbers
            self.tracker.finish(cfg, result["status"], result)
        elif isinstance(result.get("epoch"), (int, float)) and math.isfinite(result["epoch"]):
            self.tracker.log_epoch(cfg, result)
        if result.get("done") and "status" not in result:  # the scheduler stopped it here
            self._stopped.add(trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: List, trial: Any, **info):
        if trial.trial_id in self._stopped:
            self.tracker.finish(self.context.trial_config(trial.config), "stopped", {})

    def on_trial_error(self, iteration: int, trials: List, trial: Any, **info):
        self.tracker.finish(self.context.trial_config(trial.config), "error", {})

    def on_experiment_end(self, trials: List, **info):
        self.tracker.close()


def log_missing_epochs(context: SweepContext, tracker: Tracker, cfg: TrialConfig,
                       before: Optional[int]) -> None:
    """Log the trial's ``epochs`` rows (those before epoch ``before``; None: all) that its runs
    lack."""
    rows = results.read_trial_rows(context.sweep_uri, "epochs", cfg.trial_id, context.filesystem())
    tracker.catch_up(cfg, [r for r in rows if before is None or r["epoch"] < before])


def end_open_runs(context: SweepContext, tracker: Tracker) -> None:
    """End the MLflow runs that trials final in the tables left open (their driver stopped
    before it logged their last epochs and end), from the tables."""
    if tracker.mlflow is None:
        return
    try:
        open_runs = tracker.mlflow.open_trial_runs()
    except Exception as err:  # a tracker is never a reason for a sweep to fail
        print(f"tracking: MLflow runs left open by an earlier driver not checked "
              f"({type(err).__name__}: {' '.join(str(err).split())[:200]})",
              file=sys.stderr, flush=True)
        return
    filesystem = context.filesystem()
    for trial_id in sorted(open_runs):
        rows = results.read_trial_rows(context.sweep_uri, "trials", trial_id, filesystem)
        if not rows or rows[0]["status"] not in results.FINAL_STATUSES:
            continue  # the sweep runs it again: its first report catches its runs up
        row = rows[0]
        # the row's device column names the hardware it ran on; the space's base has the key
        cfg = context.trial_config({key: row[key] for key in TrialConfig.field_names()
                                    if key != "device"})
        if cfg.trial_id != trial_id:  # not rebuilt (device on a grid axis): leave its run open
            continue
        log_missing_epochs(context, tracker, cfg, None)
        tracker.finish(cfg, row["status"], row)


def backfill(context: SweepContext, tracker: Tracker, trial_ids: List[str]) -> str:
    """Log to the trackers the final trials (``trial_ids``, final in the tables) that they lack:
    a tracked run of a sweep whose trials finished untracked (or elsewhere) fills the parent run
    with its children and TensorBoard with their event files, from the tables. Returns the one
    line saying what was logged, or that nothing was and why."""
    filesystem = context.filesystem()
    logged_mlflow: set = set()
    if tracker.mlflow is not None:
        try:
            logged_mlflow = tracker.mlflow.finished_trial_ids()
        except Exception as err:  # a tracker is never a reason for a sweep to fail
            return (f"tracking: nothing logged to MLflow: it did not answer "
                    f"({type(err).__name__}: {' '.join(str(err).split())[:200]})")
    tensorboard_root = tracker.tensorboard.root if tracker.tensorboard is not None else None
    done = []
    rebuilt = 0
    for trial_id in sorted(trial_ids):
        rows = results.read_trial_rows(context.sweep_uri, "trials", trial_id, filesystem)
        if not rows or rows[0]["status"] not in results.FINAL_STATUSES:
            continue
        row = rows[0]
        cfg = context.trial_config({key: row[key] for key in TrialConfig.field_names()
                                    if key != "device"})
        if cfg.trial_id != trial_id:  # not rebuilt from the space (device on a grid axis)
            continue
        rebuilt += 1
        lacks_mlflow = tracker.mlflow is not None and trial_id not in logged_mlflow
        lacks_tensorboard = (tensorboard_root is not None
                             and not os.path.isdir(os.path.join(tensorboard_root, cfg.name)))
        if not (lacks_mlflow or lacks_tensorboard):
            continue
        log_missing_epochs(context, tracker, cfg, None)
        if lacks_mlflow:
            tracker.finish(cfg, row["status"], row)
        elif tracker.tensorboard is not None:
            tracker.tensorboard.finish(cfg)
        done.append(trial_id)
    targets = [t for t in (tracker.mlflow.where() if tracker.mlflow is not None else None,
                           f"TensorBoard at {tensorboard_root}" if tensorboard_root else None) if t]
    if done:
        return (f"tracking: logged {len(done)} final trial(s) from the tables to "
                f"{' and '.join(targets)}")
    if rebuilt:
        return (f"tracking: nothing logged: all {rebuilt} final trial(s) are already in "
                f"{' and '.join(targets)}")
    return "tracking: nothing logged: no trial of this sweep is final in its tables"
