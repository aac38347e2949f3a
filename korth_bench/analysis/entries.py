"""Leaderboard entries from the trials table: the status grid of every cell x regularizer, the
configuration chosen as each regularizer's entry per cell, and that entry's runs, scores and
provenance.

A *cell* is one model: (dataset, model, depth, width); a *family* is (dataset, model). Pure
functions on pandas frames; `korth_bench.analysis` re-exports every name here.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from korth_bench.config import NOT_IDENTITY, TrialConfig
from korth_bench.analysis.stats import t_interval
from korth_bench.errors import ConfigError
from korth_bench.results import STATUSES

CELL = ("dataset", "model", "depth", "width")
FAMILY = ("dataset", "model")
# Trial-config keys that never distinguish two settings of an entry: the seed (the unit), the
# keys left out of the trial identity, the device (its column holds the device's name) and the
# cell and regularizer themselves.
NOT_SETTING = frozenset({"seed", "device", "regularizer", *CELL, *NOT_IDENTITY})
SETTING_COLUMNS = tuple(f.name for f in dataclasses.fields(TrialConfig)
                        if f.name not in NOT_SETTING)
"""Every trial-config key that may tell two settings of one regularizer in one cell apart."""
BASELINE = "none"
"""The regularizer every gain is measured against."""
ATTACK_PREFIXES = ("fgsm_acc_", "pgd_acc_")
"""Column prefixes of the adversarial accuracies (one column per epsilon, in 1/255)."""
CHANCE_CLASSES = {"cifar100": 100}  # other data sets: num_classes, else 10


def metric_columns(trials: pd.DataFrame) -> List[str]:
    """The gain metrics present in a trials frame: accuracies, robust accuracies, convergence."""
    attacks = sorted((c for c in trials.columns if c.startswith(ATTACK_PREFIXES)),
                     key=lambda c: (c.split("_")[0], int(c.split("_")[2])))
    candidates = ["test_acc", "best_test_acc", "clean_acc", "corruption_acc_mean", *attacks,
                  "epochs_to_90pct_best", "epochs_to_95pct_best", "accuracy_auc"]
    return [c for c in candidates if c in trials.columns]


def higher_is_better(metric: str) -> bool:
    """False for convergence times (epochs_to_*, seconds_to_*), True for accuracies."""
    return not metric.startswith(("epochs_to_", "seconds_to_"))


def setting_labels(trials: pd.DataFrame, columns: Sequence[str] = SETTING_COLUMNS) -> pd.Series:
    """One readable label per trial for its configuration within its (cell, regularizer), e.g.
    'coefficient=0.01, lr=0.1': the ``columns`` that take more than one value among that
    entry's trials, null values left out ('single setting' when none varies). ``data_path`` is
    compared by the file's SHA-256 where the rows record it (``data_sha256``: two copies of one
    file at different paths are one setting), else by file name, as ``config_hash`` does; list
    values as tuples."""
    if not len(trials):
        return pd.Series([], dtype=object)
    present = [c for c in columns if c in trials]
    values = trials[present].apply(lambda column: column.map(_comparable)) if present else trials[[]]
    if "data_path" in present and "data_sha256" in trials:  # the data's identity where recorded
        values["data_path"] = trials["data_sha256"].where(trials["data_sha256"].notna(),
                                                          values["data_path"])
    labels = pd.Series("single setting", index=trials.index, dtype=object)
    for _, index in trials.groupby(list(CELL) + ["regularizer"], dropna=False).groups.items():
        block = values.loc[index]
        varying = [c for c in present if block[c].nunique(dropna=False) > 1]
        if varying:
            labels.loc[index] = [
                ", ".join(f"{c}={v}" for c, v in zip(varying, row) if not _is_null(v))
                or "single setting" for row in block[varying].itertuples(index=False)]
    return labels


def _comparable(value: object) -> object:
    """A hashable stand-in of a config value: lists (and the arrays Parquet reads them back as)
    as tuples of Python scalars, paths by their file name."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(_comparable(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str) and ("/" in value or "://" in value):
        return os.path.basename(value.rstrip("/"))
    return value


def _is_null(value: object) -> bool:
    return pd.api.types.is_scalar(value) and bool(pd.isna(value))


def cell_key(values) -> tuple:
    """A cell's values (CELL order) as a dictionary key: a missing value (NaN, None) as None,
    since NaN is not equal to itself and two rows' NaNs would make two cells."""
    return tuple(None if _is_null(v) else v for v in values)


def status_grid(trials: pd.DataFrame, expected_seeds: Optional[int] = None) -> pd.DataFrame:
    """Every (cell, regularizer) pair of the sweep, run or not, with its trial counts.

    Args:
        trials: the trials table, every status.
        expected_seeds: seeds each entry should have; default the distinct seeds the
            regularizer ran with in any cell (a baseline may run at more seeds than the arms).
    Returns:
        one row per cell x regularizer (the product, so a regularizer never run in a cell is a
        row of zeros): CELL columns, regularizer, num_params (median over the cell's trials),
        n_<status> for each status, n_seeds_expected.
    """
    keys = list(CELL)
    cells = trials.groupby(keys, dropna=False).agg(num_params=("num_params", "median")).reset_index()
    regularizers = (trials.groupby("regularizer")["seed"].nunique()
                    .rename("n_seeds_expected").reset_index())
    if expected_seeds is not None:
        regularizers["n_seeds_expected"] = expected_seeds
    grid = cells.merge(regularizers, how="cross")
    counts = (trials.groupby(keys + ["regularizer", "status"], dropna=False).size()
              .unstack("status", fill_value=0).reindex(columns=list(STATUSES), fill_value=0)
              .add_prefix("n_").reset_index())
    grid = grid.merge(counts, on=keys + ["regularizer"], how="left")
    status_columns = [f"n_{s}" for s in STATUSES]
    grid[status_columns] = grid[status_columns].fillna(0).astype(int)
    return grid.sort_values(keys + ["regularizer"]).reset_index(drop=True)


def chance_accuracy(trials: pd.DataFrame) -> pd.Series:
    """1 / number of classes of each trial's data set (cifar100: 100, else num_classes or 10)."""
    classes = trials["dataset"].map(CHANCE_CLASSES)
    if "num_classes" in trials:
        classes = classes.fillna(pd.to_numeric(trials["num_classes"], errors="coerce"))
    return 1.0 / classes.fillna(10).astype(float)


def select_entries(trials: pd.DataFrame, selection: str = "val",
                   setting_columns: Sequence[str] = SETTING_COLUMNS) -> pd.DataFrame:
    """Pick each regularizer's entry in each cell, cross-fitted over seeds where possible.

    Scores: mean final ``val_acc`` over a setting's runs ('val'; ``test_acc`` where the cell
    has no validation split, and says so) or ``test_acc`` ('test': optimistic, as the [SRIP]
    code). Completed runs count with their accuracy and diverged runs at chance accuracy, so a
    setting that diverges on some seeds cannot win on its survivors. Cross-fitting: when the
    entry has K >= 2 settings, every setting was run on the same >= 2 seeds, each seed s gets
    the setting with the best mean score over the *other* seeds, and the entry's run at s is
    that setting's run at s; its test accuracy never chose it (no winner's curse). Otherwise
    (one seed, settings on different seeds) the best mean over all seeds is the entry for every
    seed, marked not cross-fitted.
    Args:
        trials: the trials table (completed and diverged trials are scored).
    Returns:
        one row per (cell, regularizer) with completed trials: CELL columns, regularizer,
        setting (the label, or the per-seed choices when they differ), selected_by,
        selection_score (mean over seeds of the chosen setting's out-of-seed score, or the best
        mean), n_settings (K), cross_fitted (True, False, or None for a single setting),
        n_diverged (diverged runs of the chosen settings at their seeds), seed_settings
        ({seed: setting} when cross-fitted, else {}).
    """
    if selection not in ("val", "test"):
        raise ConfigError(f"selection must be 'val' or 'test', got {selection!r}")
    scored = trials[trials["status"].isin(["completed", "diverged"])]
    scored = scored.assign(setting=setting_labels(scored, setting_columns),
                           chance=chance_accuracy(scored))
    rows = []
    for key, group in scored.groupby(list(CELL) + ["regularizer"], dropna=False):
        if not (group["status"] == "completed").any():
            continue
        done = group[group["status"] == "completed"]
        has_val = "val_acc" in done and done["val_acc"].notna().any()
        scores_by = "val_acc" if selection == "val" and has_val else "test_acc"
        score = pd.to_numeric(group[scores_by], errors="coerce").where(
            group["status"] == "completed", group["chance"])
        table = score.groupby([group["setting"], group["seed"]]).mean().unstack("seed")
        diverged = (group["status"] == "diverged").groupby(
            [group["setting"], group["seed"]]).any().unstack("seed", fill_value=False)
        row = {**dict(zip(list(CELL) + ["regularizer"], key)), "selected_by": scores_by,
               "n_settings": len(table), "seed_settings": {}}
        if len(table) >= 2 and table.shape[1] >= 2 and table.notna().all().all():
            choices = {seed: (table.drop(columns=seed).mean(axis=1)).sort_index().idxmax()
                       for seed in table.columns}
            chosen = sorted(set(choices.values()))
            row.update(setting=chosen[0] if len(chosen) == 1 else "per seed: " + "; ".join(
                f"{name} (seeds {', '.join(str(s) for s, c in choices.items() if c == name)})"
                for name in chosen),
                selection_score=float(np.mean([table.drop(columns=s).loc[c].mean()
                                               for s, c in choices.items()])),
                cross_fitted=True, seed_settings=choices,
                n_diverged=int(sum(diverged.loc[c, s] for s, c in choices.items())))
        else:
            means = table.mean(axis=1).sort_index()
            best = means.idxmax() if means.notna().any() else means.index[0]
            row.update(setting=best, selection_score=means[best],
                       cross_fitted=None if len(table) == 1 else False,
                       n_diverged=int(diverged.loc[best].sum()))
        rows.append(row)
    columns = list(CELL) + ["regularizer", "setting", "selected_by", "selection_score",
                            "n_settings", "cross_fitted", "n_diverged", "seed_settings"]
    return pd.DataFrame(rows, columns=columns)


def entry_runs(trials: pd.DataFrame, entries: pd.DataFrame,
               setting_columns: Sequence[str] = SETTING_COLUMNS) -> pd.DataFrame:
    """The completed trials of each selected entry (one row per run, all trials columns kept):
    a cross-fitted entry takes, at each seed, the run of the setting chosen for that seed."""
    done = trials[trials["status"] == "completed"]
    done = done.assign(choice=setting_labels(done, setting_columns))
    keys = list(CELL) + ["regularizer"]
    chosen = []
    for entry in entries.to_dict("records"):
        base = {k: entry[k] for k in keys}
        if entry["seed_settings"]:
            chosen += [{**base, "seed": seed, "choice": setting}
                       for seed, setting in entry["seed_settings"].items()]
        else:
            chosen.append({**base, "choice": entry["setting"]})
    picks = pd.DataFrame(chosen, columns=keys + ["seed", "choice"])
    per_seed = picks[picks["seed"].notna()]
    whole = picks[picks["seed"].isna()].drop(columns="seed")
    parts = [done.merge(whole, on=keys + ["choice"], how="inner")]
    if len(per_seed):
        per_seed = per_seed.astype({"seed": done["seed"].dtype})
        parts.append(done.merge(per_seed, on=keys + ["seed", "choice"], how="inner"))
    runs = pd.concat(parts, ignore_index=True)
    labels = entries.set_index(keys)["setting"]
    runs["setting"] = [labels.get(tuple(r)) for r in runs[keys].itertuples(index=False)]
    return runs.merge(entries[keys + ["selected_by"]], on=keys, how="inner").drop(columns="choice")


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
    """Trials per device and precision (the `device` and `precision_resolved` columns, every
    status; 'unknown' where a column is absent or empty): columns device, precision, n_trials."""
    def column(name: str) -> pd.Series:
        values = trials[name] if name in trials else pd.Series(None, index=trials.index, dtype=object)
        return values.fillna("unknown").astype(str)

    return (pd.DataFrame({"device": column("device"), "precision": column("precision_resolved")})
            .value_counts().reset_index(name="n_trials"))


def precisions(trials: pd.DataFrame) -> Dict[str, int]:
    """Trials per resolved precision ({'bf16': n, ...}; 'unknown' where not recorded)."""
    values = (trials["precision_resolved"] if "precision_resolved" in trials
              else pd.Series("unknown", index=trials.index))
    return {str(k): int(v) for k, v in values.fillna("unknown").value_counts().sort_index().items()}
