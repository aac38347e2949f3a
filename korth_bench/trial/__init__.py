"""One trial: train one configuration and measure it completely. Never imports Ray.

``run_trial(config, report=None) -> dict`` returns the trial's ``trials`` row;
``train_and_measure`` returns every table's rows (a ``TrialRecord``).
"""
from korth_bench.trial.loop import TrialRecord, run_trial, train_and_measure

__all__ = ["TrialRecord", "run_trial", "train_and_measure"]
