"""Is capacity confounded with under-training? ([DN] claim 2's confound.)

A capacity trend in the gains means something only if every cell trained about equally far
towards convergence: when a fixed epoch budget leaves the large models further from their
plateau than the small ones, the baseline's shortfall, and with it room for a regularizer to
gain, changes with capacity for a reason that is not capacity.

The check judges convergence by what more training buys. A cell's *reference runs* are its
baseline runs at an epoch count that no regularized arm of that cell has (``split_reference``);
they never enter gains, entry selection, the leaderboard or the claims. A cell's *doubling gain*
is the baseline's mean final test accuracy at the larger budget minus at the study's budget E,

    g_c = mean(acc_c at E') - mean(acc_c at E),   E' > E (E' = 2E in the shipped studies),

with its Welch interval (``doubling_gains``). ``undertraining_check`` flags claim 2 as
"capacity confounded with under-training" when the doubling gains of two cells of a family
differ by more than the claimed drop D: a capacity trend of size D could then be a trend in
how far each cell was from its plateau. Without reference runs nothing is checked, and the
check says so ("convergence not checked"), never "not flagged".

The last-epoch gains (the test accuracy at the last epoch minus one and two epochs before) stay
as descriptive columns: under a schedule that decays to zero they are near 0 at any budget, so
they cannot show under-training. ``slopes_without`` shows each collapse slope without the least
trained cell. Pure functions on the ``epochs`` and ``trials`` tables.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import numpy as np
import pandas as pd

from korth_bench.analysis.collapse import PRIMARY_AXIS, collapse_test
from korth_bench.analysis.entries import BASELINE, CELL, SETTING_COLUMNS, cell_key, setting_labels
from korth_bench.analysis.stats import welch_interval

DOUBLING_COLUMNS = list(CELL) + [
    "num_params", "setting", "epochs", "reference_epochs", "n_baseline", "n_reference",
    "baseline_test_acc", "reference_test_acc", "doubling_gain", "doubling_gain_low",
    "doubling_gain_high"]
CONVERGENCE_COLUMNS = [c for c in DOUBLING_COLUMNS if c != "setting"] + [
    "last_epoch_gain", "last_two_epoch_gain", "final_train_acc", "n_trials", "best_is_last_share"]
NOT_CHECKED = "convergence not checked (no baseline at a second budget)"


def split_reference(trials: pd.DataFrame, baseline: str = BASELINE
                    ) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """(study trials, reference runs): the reference runs are the baseline trials of a cell at
    an ``epochs`` value that no other regularizer's trial of that cell has. A cell without any
    regularized trial has no reference runs (its baseline budgets are all the study's)."""
    if trials.empty or "epochs" not in trials:
        return trials, trials.iloc[0:0]
    keys = list(CELL)
    arms = trials[trials["regularizer"] != baseline]
    budgets = {cell_key(k): v for k, v in
               arms.groupby(keys, dropna=False)["epochs"].agg(frozenset).items()}
    cell = [cell_key(c) for c in trials[keys].itertuples(index=False)]
    is_reference = (trials["regularizer"] == baseline) & np.array(
        [c in budgets and e not in budgets[c] for c, e in zip(cell, trials["epochs"])],
        dtype=bool)
    return trials[~is_reference], trials[is_reference]


def final_epoch_values(epochs: pd.DataFrame, column: str) -> pd.Series:
    """Each trial's ``column`` at its last epoch, indexed by trial_id (empty when absent)."""
    if epochs is None or epochs.empty or column not in epochs:
        return pd.Series(dtype=float)
    last = epochs.sort_values(["trial_id", "epoch"]).groupby("trial_id").tail(1)
    return last.set_index("trial_id")[column].astype(float)


def doubling_gains(trials: pd.DataFrame, baseline: str = BASELINE,
                   confidence: float = 0.95) -> pd.DataFrame:
    """The baseline's doubling gain at every cell and budget E whose 2E also ran.

    Args:
        trials: trials rows (every status; completed baseline runs count), study and reference
            runs together.
    Returns:
        one row per cell x setting x E (DOUBLING_COLUMNS; fractions): the baseline's mean final
        test accuracy at E (n_baseline runs) and at reference_epochs = 2E (n_reference runs),
        their difference and its Welch interval; ``setting`` names the keys other than the
        epochs in which the cell's baseline runs differ (a pilot of two protocols, say
        'augment=False'), 'single setting' when none does. Smallest cell and budget first.
    """
    done = trials[(trials["status"] == "completed") & (trials["regularizer"] == baseline)]
    columns = [c for c in SETTING_COLUMNS if c in done and c != "epochs"]
    done = done.assign(setting=setting_labels(done, columns))
    rows = []
    for key, cell in done.groupby(list(CELL) + ["setting"], dropna=False):
        by_budget = {int(e): part["test_acc"].astype(float).dropna().to_numpy()
                     for e, part in cell.groupby("epochs")}
        for budget, at_e in sorted(by_budget.items()):
            at_2e = by_budget.get(2 * budget)
            if at_2e is None or not (at_e.size and at_2e.size):
                continue
            found = welch_interval(at_2e, at_e, confidence)
            rows.append({**dict(zip(list(CELL) + ["setting"], key)),
                         "num_params": cell["num_params"].median(),
                         "epochs": budget, "reference_epochs": 2 * budget,
                         "n_baseline": at_e.size, "n_reference": at_2e.size,
                         "baseline_test_acc": at_e.mean(), "reference_test_acc": at_2e.mean(),
                         "doubling_gain": found["mean"], "doubling_gain_low": found["low"],
                         "doubling_gain_high": found["high"]})
    table = pd.DataFrame(rows, columns=DOUBLING_COLUMNS)
    return table.sort_values(["dataset", "model", "num_params", "epochs"]).reset_index(drop=True)


def convergence_by_cell(epochs: pd.DataFrame, trials: pd.DataFrame, reference: pd.DataFrame,
                        baseline: str = BASELINE, confidence: float = 0.95) -> pd.DataFrame:
    """How far each cell's training had converged at the study's budget.

    Args:
        epochs: the epochs table (trial_id, epoch, test_acc, train_acc).
        trials: the study's trials (reference runs removed: split_reference); only completed
            trials count.
        reference: the reference runs (split_reference).
    Returns:
        one row per cell, smallest first (CONVERGENCE_COLUMNS): epochs (the study's budget E,
        the arms' epochs), the doubling-gain fields (doubling_gains: the baseline at E against
        its reference runs at 2E; NaN, n_reference 0 and reference_epochs NaN without them),
        and, descriptive only: last_epoch_gain and last_two_epoch_gain (the baseline's test
        accuracy at the last epoch minus one and two epochs before, mean over its runs),
        final_train_acc (the baseline's train accuracy at its last epoch, mean), n_trials
        (completed trials of every regularizer) and best_is_last_share (the share of them whose
        highest test accuracy is at the last epoch).
    """
    done = trials[trials["status"] == "completed"]
    if epochs is None or epochs.empty or "test_acc" not in epochs or done.empty:
        return pd.DataFrame(columns=CONVERGENCE_COLUMNS)
    keys = list(CELL)
    curves = epochs[epochs["trial_id"].isin(done["trial_id"])].sort_values(["trial_id", "epoch"])
    test = curves.pivot_table(index="trial_id", columns="epoch", values="test_acc")
    last = curves.groupby("trial_id")["epoch"].max()
    at = lambda back: [test.at[t, e - back] if e - back in test.columns else math.nan  # noqa: E731
                       for t, e in last.items()]
    per_trial = pd.DataFrame({"last": last, "final": at(0), "previous": at(1), "before": at(2),
                              "best_is_last": [test.loc[t].idxmax() == e for t, e in last.items()],
                              "train": final_epoch_values(curves, "train_acc")
                              .reindex(last.index)})
    per_trial = per_trial.join(done.set_index("trial_id")[["regularizer", "num_params", *keys]])
    doubling = doubling_gains(pd.concat([done[done["regularizer"] == baseline],
                                         reference[reference["status"] == "completed"]]),
                              baseline, confidence)
    arm_budget = {cell_key(k): v for k, v in done[done["regularizer"] != baseline]
                  .groupby(keys, dropna=False)["epochs"].max().items()}
    doubling_at = {(cell_key(row[k] for k in keys), int(row["epochs"])): row
                   for row in doubling.to_dict("records")}
    unmeasured = {"reference_epochs": math.nan, "n_reference": 0, "reference_test_acc": math.nan,
                  "doubling_gain": math.nan, "doubling_gain_low": math.nan,
                  "doubling_gain_high": math.nan}
    rows = []
    for key, cell in per_trial.groupby(keys, dropna=False):
        base = cell[cell["regularizer"] == baseline]
        budget = int(arm_budget.get(cell_key(key), cell["last"].max() + 1))
        at_budget = base[base["last"] + 1 == budget]
        rows.append({**doubling_at.get((cell_key(key), budget), unmeasured),
                     **dict(zip(keys, key)),
                     "num_params": cell["num_params"].median(),
                     "epochs": budget, "n_baseline": len(at_budget),
                     "baseline_test_acc": at_budget["final"].mean(),
                     "last_epoch_gain": (at_budget["final"] - at_budget["previous"]).mean(),
                     "last_two_epoch_gain": (at_budget["final"] - at_budget["before"]).mean(),
                     "final_train_acc": at_budget["train"].mean(), "n_trials": len(cell),
                     "best_is_last_share": float(cell["best_is_last"].mean())})
    table = pd.DataFrame(rows, columns=CONVERGENCE_COLUMNS)
    return table.sort_values(["dataset", "model", "num_params"]).reset_index(drop=True)


def undertraining_check(convergence: pd.DataFrame, claimed_drop: float) -> Dict[str, object]:
    """The rule of the module docstring, per model family.

    Returns:
        checked (False when no two cells of a family have a doubling gain), flagged (True when,
        in some family, the doubling gains of two cells differ by more than ``claimed_drop``),
        spread (the largest such difference, a fraction; NaN when not checked), least_trained
        (CELL key of the cell whose doubling gain is largest, in the family with the largest
        spread; None when not checked), correlation (Pearson r of the doubling gain with log2
        parameters in that family; NaN under 3 cells), unchecked_cells (cells without
        reference runs), message (the outcome in one sentence).
    """
    found = {"checked": False, "flagged": False, "spread": math.nan, "least_trained": None,
             "correlation": math.nan, "claimed_drop": claimed_drop,
             "unchecked_cells": [tuple(r) for r in convergence.loc[
                 convergence["doubling_gain"].isna(), list(CELL)].itertuples(index=False)]}
    measured = convergence.dropna(subset=["doubling_gain"])
    for _, family in measured.groupby(["dataset", "model"], dropna=False):
        if len(family) < 2:
            continue
        gains = family["doubling_gain"].to_numpy(float)
        spread = float(np.ptp(gains))
        if math.isnan(found["spread"]) or spread > found["spread"]:
            x = np.log2(family["num_params"].to_numpy(float))
            found.update(
                checked=True, spread=spread, flagged=spread > claimed_drop,
                least_trained=tuple(family.iloc[int(np.argmax(gains))][list(CELL)]),
                correlation=float(np.corrcoef(x, gains)[0, 1])
                if len(family) >= 3 and np.ptp(x) > 0 and spread > 0 else math.nan)
    found["message"] = undertraining_message(found)
    return found


def undertraining_message(found: dict) -> str:
    """The check's outcome in one sentence, in accuracy points."""
    if not found["checked"]:
        return NOT_CHECKED
    bound, spread = 100 * found["claimed_drop"], 100 * found["spread"]
    missing = (f"; {len(found['unchecked_cells'])} cell(s) without reference runs not checked"
               if found["unchecked_cells"] else "")
    if found["flagged"]:
        return (f"flagged: capacity confounded with under-training (the baseline's doubling "
                f"gains differ between cells by {spread:.2f} pt, more than the {bound:g} pt "
                f"claimed drop{missing})")
    return (f"not flagged: the baseline's doubling gains differ between cells by at most "
            f"{spread:.2f} pt, within the {bound:g} pt claimed drop{missing}")


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
