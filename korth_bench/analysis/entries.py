"""Leaderboard entries from the trials table: the status grid of every cell x regularizer, the
configuration chosen as each regularizer's entry per cell, and that entry's runs, scores and
provenance.

A *cell* is one model: (dataset, model, depth, width); a *family* is (dataset, model). Pure
functions on pandas frames; `korth_bench.analysis` re-exports every name here.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import pandas as pd

from korth_bench.analysis.stats import t_interval
from korth_bench.errors import ConfigError
from korth_bench.results import STATUSES

CELL = ("dataset", "model", "depth", "width")
FAMILY = ("dataset", "model")
# Trial-config columns that distinguish two configurations of one regularizer in one cell.
SETTING_COLUMNS = ("coefficient", "coefficient_schedule", "relaxation", "power_iterations",
                   "squared", "pairs", "diag_weight", "corr_weight", "regularize_linear",
                   "penalty_reduction", "init", "init_steps")


def metric_columns(trials: pd.DataFrame) -> List[str]:
    """The gain metrics present in a trials frame: accuracies, robust accuracies, convergence."""
    attacks = sorted((c for c in trials.columns if c.startswith(("fgsm_acc_", "pgd_acc_"))),
                     key=lambda c: (c.split("_")[0], int(c.split("_")[2])))
    candidates = ["test_acc", "best_test_acc", "clean_acc", "corruption_acc_mean", *attacks,
                  "epochs_to_90pct_best", "epochs_to_95pct_best", "accuracy_auc"]
    return [c for c in candidates if c in trials.columns]


def higher_is_better(metric: str) -> bool:
    """False for convergence times (epochs_to_*, seconds_to_*), True for accuracies."""
    return not metric.startswith(("epochs_to_", "seconds_to_"))


def setting_labels(trials: pd.DataFrame, columns: Sequence[str] = SETTING_COLUMNS) -> pd.Series:
    """One readable label per trial for its configuration within its cell, e.g.
    'coefficient=0.01, relaxation=0.3': the setting columns that take more than one value in
    the frame, null values left out ('single setting' when none varies)."""
    varying = [c for c in columns if c in trials and trials[c].nunique(dropna=False) > 1]

    def label(row: pd.Series) -> str:
        parts = [f"{c}={row[c]}" for c in varying if not _is_null(row[c])]
        return ", ".join(parts) or "single setting"

    return trials.apply(label, axis=1) if len(trials) else pd.Series([], dtype=object)


def _is_null(value: object) -> bool:
    return pd.api.types.is_scalar(value) and bool(pd.isna(value))


def status_grid(trials: pd.DataFrame, expected_seeds: Optional[int] = None) -> pd.DataFrame:
    """Every (cell, regularizer) pair of the sweep, run or not, with its trial counts.

    Args:
        trials: the trials table, every status.
        expected_seeds: seeds each entry should have; default the distinct seeds seen in the cell.
    Returns:
        one row per cell x regularizer (the product, so a regularizer never run in a cell is a
        row of zeros): CELL columns, regularizer, num_params (median over the cell's trials),
        n_<status> for each status, n_seeds_expected.
    """
    keys = list(CELL)
    cells = trials.groupby(keys, dropna=False).agg(
        num_params=("num_params", "median"), n_seeds_expected=("seed", "nunique")).reset_index()
    if expected_seeds is not None:
        cells["n_seeds_expected"] = expected_seeds
    regularizers = pd.DataFrame({"regularizer": sorted(trials["regularizer"].unique())})
    grid = cells.merge(regularizers, how="cross")
    counts = (trials.groupby(keys + ["regularizer", "status"], dropna=False).size()
              .unstack("status", fill_value=0).reindex(columns=list(STATUSES), fill_value=0)
              .add_prefix("n_").reset_index())
    grid = grid.merge(counts, on=keys + ["regularizer"], how="left")
    status_columns = [f"n_{s}" for s in STATUSES]
    grid[status_columns] = grid[status_columns].fillna(0).astype(int)
    return grid.sort_values(keys + ["regularizer"]).reset_index(drop=True)


def select_entries(trials: pd.DataFrame, selection: str = "val",
                   setting_columns: Sequence[str] = SETTING_COLUMNS) -> pd.DataFrame:
    """Pick each regularizer's entry in each cell: the configuration with the best mean score.

    Args:
        trials: the trials table (only completed trials are scored).
        selection: 'val' (mean final val_acc; falls back to test_acc where a cell has no
            validation split, and says so) or 'test' (mean final test_acc: optimistic, as the
            [SRIP] code).
    Returns:
        one row per (cell, regularizer) with completed trials: CELL columns, regularizer,
        setting (label), selected_by ('val_acc' or 'test_acc'), selection_score,
        n_settings (configurations tried).
    """
    if selection not in ("val", "test"):
        raise ConfigError(f"selection must be 'val' or 'test', got {selection!r}")
    done = trials[trials["status"] == "completed"].assign(
        setting=lambda f: setting_labels(f, setting_columns))
    rows = []
    for key, group in done.groupby(list(CELL) + ["regularizer"], dropna=False):
        has_val = "val_acc" in group and group["val_acc"].notna().any()
        scores_by = "val_acc" if selection == "val" and has_val else "test_acc"
        scores = group.groupby("setting")[scores_by].mean().sort_index()
        best = scores.idxmax() if scores.notna().any() else scores.index[0]
        rows.append({**dict(zip(list(CELL) + ["regularizer"], key)), "setting": best,
                     "selected_by": scores_by, "selection_score": scores[best],
                     "n_settings": scores.size})
    columns = list(CELL) + ["regularizer", "setting", "selected_by", "selection_score",
                            "n_settings"]
    return pd.DataFrame(rows, columns=columns)


def entry_runs(trials: pd.DataFrame, entries: pd.DataFrame,
               setting_columns: Sequence[str] = SETTING_COLUMNS) -> pd.DataFrame:
    """The completed trials of each selected entry (one row per run, all trials columns kept)."""
    done = trials[trials["status"] == "completed"].assign(
        setting=lambda f: setting_labels(f, setting_columns))
    keys = list(CELL) + ["regularizer", "setting"]
    return done.merge(entries[keys + ["selected_by"]], on=keys, how="inner")


def entry_scores(runs: pd.DataFrame, metrics: Sequence[str],
                 confidence: float = 0.95) -> pd.DataFrame:
    """Each entry's own score per metric: one row per cell x regularizer x metric with the
    t_interval fields over its seeds."""
    return pd.DataFrame([
        {**dict(zip(CELL + ("regularizer",), key)), "metric": metric,
         **t_interval(pd.to_numeric(part[metric], errors="coerce").to_numpy(float), confidence)}
        for key, part in runs.groupby(list(CELL) + ["regularizer"], dropna=False)
        for metric in metrics],
        columns=list(CELL) + ["regularizer", "metric", "mean", "sd", "low", "high", "n"])


def entry_provenance(runs: pd.DataFrame) -> pd.DataFrame:
    """What each entry is made of: one row per cell x regularizer with sorted lists of its seeds,
    epochs, devices, config hashes, sweeps and trial ids (columns absent from the table give [])."""
    def distinct(part: pd.DataFrame, column: str) -> list:
        return sorted(part[column].dropna().unique().tolist()) if column in part else []

    return pd.DataFrame([
        {**dict(zip(CELL + ("regularizer",), key)),
         **{name: distinct(part, column) for name, column in (
             ("seeds", "seed"), ("epochs", "epochs"), ("devices", "device"),
             ("config_hashes", "config_hash"), ("sweeps", "sweep"), ("trial_ids", "trial_id"))}}
        for key, part in runs.groupby(list(CELL) + ["regularizer"], dropna=False)],
        columns=list(CELL) + ["regularizer", "seeds", "epochs", "devices", "config_hashes",
                              "sweeps", "trial_ids"])


def hardware(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials per device (the `device` column, every status): columns device, n_trials."""
    devices = trials["device"] if "device" in trials else pd.Series("unknown", index=trials.index)
    return (devices.fillna("unknown").value_counts().rename_axis("device")
            .reset_index(name="n_trials"))
