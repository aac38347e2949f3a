"""The ``trials`` row of a trial, built here once: for a trial that finished (``completed`` or
``diverged``) and for one that never returned to write it (``stopped`` by a scheduler, ``error``).

Its columns are those of ``results.trials_columns``: ``trial_id``, ``status``, ``error``, every
config field, then the outcomes. The headline numbers come from the ``epochs`` rows (the last
epoch's ``test_acc``/``val_acc``, convergence over the epochs with a test accuracy), so a trial's
row says the same whichever way it ended.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict, Mapping, Optional, Sequence

from korth_bench.config import TrialConfig
from korth_bench.trial.convergence import convergence_summary

HEADLINE = ("status", "error", "test_acc", "val_acc", "best_test_acc", "accuracy_auc",
            "epochs_to_90pct_best", "clean_acc", "corruption_acc_mean", "fgsm_acc_2_255",
            "pgd_acc_2_255", "pgd_acc_8_255", "ortho_gram_residual_mean", "ortho_cos_max",
            "fm_sim_mean", "num_params", "train_time_s", "wall_time_s", "precision_resolved",
            "device")
"""The columns ``korth-bench train`` prints when a trial ends."""


def trial_row(cfg: TrialConfig, status: str, error: Optional[str],
              epoch_rows: Sequence[Mapping[str, Any]], *, measured: Mapping[str, Any] = {},
              run: Mapping[str, Any] = {}) -> Dict[str, Any]:
    """The ``trials`` row of one trial.

    Args:
        cfg: the trial's configuration.
        status: ``completed``, ``diverged``, ``stopped`` or ``error`` (``results.STATUSES``).
        error: the message of a ``diverged`` or ``error`` trial, else None.
        epoch_rows: the trial's ``epochs`` rows, in epoch order (a diverged epoch has no test
            accuracy; it counts for the training time but not as a completed epoch).
        measured: end-of-training measures (``num_params``, layer and feature-map summaries,
            robustness accuracies); absent for a trial that never got there.
        run: how and where it ran (``wall_time_s``, ``started_at``, provenance columns).
    """
    evaluated = [row for row in epoch_rows if row.get("test_acc") is not None]
    last = epoch_rows[-1] if epoch_rows else {}
    return {
        "trial_id": cfg.trial_id, "status": status, "error": error, **cfg.to_dict(),
        "epochs_completed": len(evaluated),
        "test_acc": last.get("test_acc"), "test_loss": last.get("test_loss"),
        "val_acc": last.get("val_acc"),
        **convergence_summary([row["test_acc"] for row in evaluated],
                              [row["elapsed_s"] for row in evaluated], cfg.convergence_thresholds),
        **measured,
        "train_time_s": last.get("elapsed_s"),
        **run, "config_hash": cfg.config_hash,
        "finished_at": datetime.now(timezone.utc).isoformat(),
    }
