"""A trial's first epoch, re-run: the arithmetic check of a join (``korth_bench.join``).

The same configuration gives the same trial id, hence the same initialisation (``torch.manual_seed
(seed)``) and the same data order (the trial's own generator), so on the same code, torch and
kernel path the first epoch's ``train_loss``, ``train_acc``, ``val_acc`` and ``test_acc`` repeat
to the last bit; a difference in any of them means a different arithmetic.
"""
from __future__ import annotations

from typing import Any, Dict

from korth_bench.config import TrialConfig
from korth_bench.trial.loop import train_and_measure

COMPARED = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")
"""The epochs columns the check compares (the timings are not arithmetic)."""


class _FirstEpochDone(Exception):
    pass


def first_epoch(config: TrialConfig) -> Dict[str, Any]:
    """The ``epochs`` row of the configuration's epoch 0, trained and evaluated as in the full
    trial (the schedule still spans ``config.epochs``), with nothing saved or written."""
    rows = []

    def report(row: Dict[str, Any], _checkpoint: Any) -> None:
        rows.append(row)
        raise _FirstEpochDone

    try:
        train_and_measure(config.replace(checkpoint_every=0), report=report)
    except _FirstEpochDone:
        pass
    return rows[0]
