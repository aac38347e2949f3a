"""The gain decomposed: does a penalty help optimisation or generalization?

For every cell and regularizer entry, beside its gain in final test accuracy, the gain in final
train accuracy and the change of the generalization gap, each against the one baseline of the
cell with compare_runs' interval (paired by seed where seeds match):

    train gain  = acc_train(arm) - acc_train(none)
    test gain   = acc_test(arm)  - acc_test(none)
    gap change  = (acc_train - acc_test)(arm) - (acc_train - acc_test)(none)
                = train gain - test gain.

A penalty that regularizes narrows the gap (gap change < 0: its test gain exceeds its train
gain). One that acts as an aid to optimisation raises train accuracy about as much as test
accuracy, so the gap does not narrow; that is what under-fit models show, where the train
accuracy is far from 100 %. ``reading`` names the row: "regularization" when the gap change's
interval lies below 0, "optimisation aid" when the train gain's interval lies above 0 and the
gap does not narrow, "unclear" otherwise. The train accuracy is the one the epochs table
records: the running accuracy over the last epoch's (augmented) training batches.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from korth_bench.analysis.convergence import final_epoch_values
from korth_bench.analysis.entries import BASELINE, CELL
from korth_bench.analysis.stats import compare_runs

PARTS = {"test_gain": "test_acc", "train_gain": "train_acc", "gap_change": "gap"}
"""The decomposition's estimates, each named after the column it compares."""
COLUMNS = list(CELL) + [
    "num_params", "regularizer", "n_treated", "n_control", "pairing", "test_gain", "test_low",
    "test_high", "train_gain", "train_low", "train_high", "gap_change", "gap_low", "gap_high",
    "reading"]


def reading(row: dict) -> str:
    """The row's reading (module docstring) from its train-gain and gap-change intervals."""
    if row["gap_high"] < 0:
        return "regularization"
    if row["train_low"] > 0:
        return "optimisation aid"
    return "unclear"


def gain_decomposition(runs: pd.DataFrame, epochs: pd.DataFrame, rng: np.random.Generator,
                       baseline: str = BASELINE, confidence: float = 0.95) -> pd.DataFrame:
    """One row per cell x non-baseline entry of ``runs`` (entry_runs rows) whose runs have a
    final train accuracy in ``epochs``: COLUMNS, accuracies as fractions, smallest cell first."""
    train = final_epoch_values(epochs, "train_acc")
    if train.empty or runs.empty:
        return pd.DataFrame(columns=COLUMNS)
    runs = runs.assign(train_acc=runs["trial_id"].map(train))
    runs = runs.assign(gap=runs["train_acc"] - runs["test_acc"])
    rows = []
    for key, cell in runs.groupby(list(CELL), dropna=False):
        control = cell[cell["regularizer"] == baseline].set_index("seed")
        if control["train_acc"].notna().sum() == 0:
            continue
        for name, treated in cell[cell["regularizer"] != baseline].groupby("regularizer"):
            treated = treated.set_index("seed")
            row = {**dict(zip(CELL, key)), "num_params": cell["num_params"].median(),
                   "regularizer": name}
            for estimate, column in PARTS.items():
                found = compare_runs(treated[column], control[column], rng, confidence)
                part = estimate.split("_")[0]
                row.update({estimate: found["mean"], f"{part}_low": found["low"],
                            f"{part}_high": found["high"]})
                if part == "test":
                    row.update(n_treated=found["n_treated"], n_control=found["n_control"],
                               pairing=found["pairing"])
            if not math.isnan(row["train_gain"]):
                row["reading"] = reading(row)
                rows.append(row)
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(["dataset", "model", "num_params", "regularizer"]).reset_index(drop=True)


def decomposition_sentence(table: pd.DataFrame, arms: Sequence[str]) -> Optional[str]:
    """One sentence on claim 2's ``arms`` (entry labels): whether their gains look like an aid to
    optimisation or like regularization, with the ranges of their train and test gains in pt
    and the correlation of the two over the rows; None without rows."""
    rows = table[table["regularizer"].isin(arms)]
    if rows.empty:
        return None
    counts = rows["reading"].value_counts()
    n = len(rows)
    if counts.get("regularization", 0) > n / 2:
        verdict = "look like regularization"
    elif counts.get("optimisation aid", 0) > n / 2:
        verdict = "look like an aid to optimisation"
    else:
        verdict = "are neither clearly an aid to optimisation nor clearly regularization"
    pt = lambda column: (f"{100 * rows[column].min():+.2f} to "  # noqa: E731
                         f"{100 * rows[column].max():+.2f} pt")
    r = (float(np.corrcoef(rows["train_gain"], rows["test_gain"])[0, 1])
         if n >= 3 and rows["train_gain"].std() > 0 and rows["test_gain"].std() > 0 else math.nan)
    correlation = "" if math.isnan(r) else f", r = {r:.2f} over the {n} rows"
    return (f"Claim 2's gains {verdict}: the arms change final train accuracy by "
            f"{pt('train_gain')} and test accuracy by {pt('test_gain')}{correlation}; the "
            f"generalization gap narrows significantly in {counts.get('regularization', 0)} of "
            f"{n} rows.")
