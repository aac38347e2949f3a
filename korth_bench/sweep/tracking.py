"""``TrackingCallback``: the Tune side of ``korth_bench.tracking`` (MLflow, TensorBoard).

It runs in the sweep's driver, so the trials need no tracking package, URI or credential, and a
tracking server is reached from one process only. Each result a trial reports is an ``epochs``
row (``sweep.tuner._metrics``), or, carrying ``status``, its final ``trials`` numbers; a trial
that the scheduler stopped or that failed for good ends its run as ``stopped`` / ``error``.
The callback is pickled with Tune's state: it holds the settings and the sweep's facts, never
the tracking URI; its ``Tracker`` is made again in ``setup``, when the sweep starts or resumes.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

from ray import tune

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

    def __getstate__(self) -> Dict[str, Any]:
        return {**self.__dict__, "tracker": None, "_stopped": set()}

    def setup(self, **info):
        self.tracker = Tracker(self.settings, sweep=self.context.sweep,
                               tensorboard_root=self.tensorboard_root,
                               sweep_uri=self.context.sweep_uri,
                               space_file_hash=self.space_file_hash)

    def on_trial_result(self, iteration: int, trials: List, trial: Any, result: Dict, **info):
        cfg = self.context.trial_config(trial.config)
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
