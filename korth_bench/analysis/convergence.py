"""Is capacity confounded with under-training? ([DN] claim 2's confound.)

A capacity trend in the gains means something only if every cell trained about equally far
towards convergence: when a fixed epoch budget leaves the large models further from their
plateau than the small ones, the baseline's shortfall, and with it room for a regularizer to
gain, changes with capacity for a reason that is not capacity. Per cell this module measures how
far the baseline was still improving when training stopped (``convergence_by_cell``), and
``undertraining_check`` applies the rule: training length changes with capacity when the
baseline's last-two-epoch improvement in test accuracy differs between cells by more than the
claimed drop D (the effect claim 2 is about), so that a trend of size D could be a trend in
under-training; ``slopes_without`` then shows each collapse slope without the least-trained
cell. Pure functions on the ``epochs`` and ``trials`` tables.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np
import pandas as pd

from korth_bench.analysis.collapse import PRIMARY_AXIS, collapse_test
from korth_bench.analysis.entries import BASELINE, CELL

CONVERGENCE_COLUMNS = list(CELL) + [
    "num_params", "epochs", "n_baseline", "last_epoch_gain", "last_two_epoch_gain",
    "final_train_acc", "n_trials", "best_is_last_share"]


def convergence_by_cell(epochs: pd.DataFrame, trials: pd.DataFrame,
                        baseline: str = BASELINE) -> pd.DataFrame:
    """How far each cell's training had converged at its last epoch.

    Args:
        epochs: the epochs table (trial_id, epoch, test_acc, train_acc).
        trials: the trials table (trial_id, status, CELL columns, regularizer, num_params); only
            completed trials count.
    Returns:
        one row per cell, smallest first (CONVERGENCE_COLUMNS): epochs (the last epoch + 1),
        n_baseline (baseline runs), last_epoch_gain and last_two_epoch_gain (the baseline's
        test accuracy at the last epoch minus that one and two epochs before, mean over its
        runs; fractions), final_train_acc (the baseline's train accuracy at its last epoch,
        mean), n_trials (completed trials of every regularizer) and best_is_last_share (the
        share of them whose highest test accuracy is at the last epoch).
    """
    done = trials[trials["status"] == "completed"]
    if epochs is None or epochs.empty or "test_acc" not in epochs or done.empty:
        return pd.DataFrame(columns=CONVERGENCE_COLUMNS)
    keys = list(CELL)
    curves = epochs.merge(done[["trial_id", "regularizer", "num_params", *keys]], on="trial_id")
    curves = curves.sort_values(["trial_id", "epoch"])
    test = curves.pivot_table(index="trial_id", columns="epoch", values="test_acc")
    last = curves.groupby("trial_id")["epoch"].max()
    per_trial = pd.DataFrame({"last": last})
    at = lambda back: [test.at[t, e - back] if e - back in test.columns else math.nan  # noqa: E731
                       for t, e in last.items()]
    per_trial["final"], per_trial["previous"], per_trial["before"] = at(0), at(1), at(2)
    per_trial["best_is_last"] = [test.loc[t].idxmax() == e for t, e in last.items()]
    if "train_acc" in curves:
        train = curves.pivot_table(index="trial_id", columns="epoch", values="train_acc")
        per_trial["train"] = [train.at[t, e] if e in train.columns else math.nan
                              for t, e in last.items()]
    else:
        per_trial["train"] = math.nan
    per_trial = per_trial.join(done.set_index("trial_id")[["regularizer", "num_params", *keys]])
    rows = []
    for key, cell in per_trial.groupby(keys, dropna=False):
        base = cell[cell["regularizer"] == baseline]
        rows.append({**dict(zip(keys, key)), "num_params": cell["num_params"].median(),
                     "epochs": int(cell["last"].max()) + 1, "n_baseline": len(base),
                     "last_epoch_gain": (base["final"] - base["previous"]).mean(),
                     "last_two_epoch_gain": (base["final"] - base["before"]).mean(),
                     "final_train_acc": base["train"].mean(), "n_trials": len(cell),
                     "best_is_last_share": float(cell["best_is_last"].mean())})
    table = pd.DataFrame(rows, columns=CONVERGENCE_COLUMNS)
    return table.sort_values(["dataset", "model", "num_params"]).reset_index(drop=True)


def undertraining_check(convergence: pd.DataFrame, claimed_drop: float) -> Dict[str, object]:
    """The rule of the module docstring, per model family.

    Returns:
        flagged (True when, in some family, the baseline's last-two-epoch improvement differs
        between cells by more than ``claimed_drop``), spread (the largest such difference,
        a fraction), least_trained (CELL key of the cell still improving most, in the family
        with the largest spread; None when nothing is measured), correlation (Pearson r of the
        last-two-epoch improvement with log2 parameters in that family; NaN under 3 cells).
    """
    found = {"flagged": False, "spread": math.nan, "least_trained": None,
             "correlation": math.nan}
    measured = convergence.dropna(subset=["last_two_epoch_gain"])
    for _, family in measured.groupby(["dataset", "model"], dropna=False):
        if len(family) < 2:
            continue
        gains = family["last_two_epoch_gain"].to_numpy(float)
        spread = float(np.ptp(gains))
        if math.isnan(found["spread"]) or spread > found["spread"]:
            x = np.log2(family["num_params"].to_numpy(float))
            found.update(
                spread=spread, flagged=spread > claimed_drop,
                least_trained=tuple(family.iloc[int(np.argmax(gains))][list(CELL)]),
                correlation=float(np.corrcoef(x, gains)[0, 1])
                if len(family) >= 3 and np.ptp(x) > 0 and spread > 0 else math.nan)
    return found


def slopes_without(runs: pd.DataFrame, collapse: pd.DataFrame, cell: Optional[tuple],
                   **collapse_options) -> pd.DataFrame:
    """The collapse slopes (primary axis) with and without one cell, side by side.

    Args:
        runs: entry runs; collapse: collapse_test's table on all of them; cell: the CELL key
            to leave out (undertraining_check's least_trained; None gives no rows).
        collapse_options: collapse_test's metric, baseline, alpha, claimed_drop.
    Returns:
        one row per primary collapse row: dataset, model, regularizer, metric, slope, low,
        high, p_value, n_cells, and the same of the fit without ``cell`` (suffix _without).
    """
    keys = ["dataset", "model", "regularizer", "metric"]
    fields = ["slope", "low", "high", "p_value", "n_cells"]
    columns = keys + fields + [f"{f}_without" for f in fields]
    if cell is None or collapse.empty:
        return pd.DataFrame(columns=columns)
    left_out = (runs[list(CELL)].apply(tuple, axis=1) == tuple(cell))
    without = collapse_test(runs[~left_out], **collapse_options)
    primary = lambda table: table[table["axis"] == PRIMARY_AXIS][keys + fields]  # noqa: E731
    return primary(collapse).merge(primary(without), on=keys, how="left",
                                   suffixes=("", "_without"))[columns]
