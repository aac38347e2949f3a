"""The arms a join added to a committed study (``korth_bench.join``), reported beside the study's
pre-registered verdicts and never inside them.

The study's analysis runs on its own tables, unchanged. Each joined arm gets, per cell, its
final test accuracy and its gain over the baseline, and over the cells the slope of its gain on
log2 parameters: the same statistics as the study's entries (``stats.compare_runs``,
``collapse.fixed_cell_gains`` with ``stats.fixed_cells_slope``), each test on its own and marked
as added after the fact. The baseline is the study's committed runs when the join showed the
same arithmetic (pairs by seed), else the join's re-run baseline seeds; the drift of those
against the committed ones is described with its interval and tests nothing.
"""
from __future__ import annotations

from typing import Dict, Mapping

import numpy as np
import pandas as pd

from korth_bench.analysis import stats
from korth_bench.analysis.collapse import fixed_cell_gains
from korth_bench.analysis.entries import BASELINE, CELL

METRIC = "test_acc"
ENTRY_COLUMNS = [*CELL, "num_params", "regularizer", "coefficient", "n_seeds", "mean", "sd",
                 "low", "high", "gain", "gain_low", "gain_high", "p_value", "pairing",
                 "baseline"]
SLOPE_COLUMNS = ["regularizer", "n_cells", "slope", "low", "high", "p_value"]
DRIFT_COLUMNS = [*CELL, "n_rerun", "n_committed", "mean", "low", "high"]


def _by_seed(runs: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(runs.set_index("seed")[METRIC], errors="coerce")


def joined_analysis(study_trials: pd.DataFrame, join_trials: pd.DataFrame,
                    manifest: Mapping[str, object], confidence: float = 0.95,
                    seed: int = 0) -> Dict[str, object]:
    """Entries, slopes and (re-baselined joins) the baseline's drift of one join.

    Args:
        study_trials: the study's trials rows; join_trials: the join's.
        manifest: the join's ``join.json`` (``mode`` says whose baseline the gains take).
    Returns:
        {'manifest', 'entries' (ENTRY_COLUMNS), 'slopes' (SLOPE_COLUMNS), 'drift'
        (DRIFT_COLUMNS)} as DataFrames.
    """
    rng = np.random.default_rng(seed)
    done = lambda frame: frame[frame["status"] == "completed"]  # noqa: E731
    study, joined = done(study_trials), done(join_trials)
    committed = study[study["regularizer"] == BASELINE]
    rerun = joined[joined["regularizer"] == BASELINE]
    same = str(manifest.get("mode")) == "same arithmetic"
    control_runs, control_name = (committed, "committed") if same else (rerun, "re-run")
    arms = joined[joined["regularizer"] != BASELINE]
    entries, slopes, drift = [], [], []
    for key, part in arms.groupby([*CELL, "regularizer", "coefficient"], dropna=False):
        cell = dict(zip(CELL, key[: len(CELL)]))
        control = control_runs
        for name, value in cell.items():
            control = control[control[name] == value]
        level = stats.t_interval(pd.to_numeric(part[METRIC], errors="coerce").to_numpy(), confidence)
        gain = stats.compare_runs(_by_seed(part), _by_seed(control), rng, confidence)
        entries.append({**cell, "num_params": float(part["num_params"].median()),
                        "regularizer": key[-2], "coefficient": key[-1],
                        "n_seeds": int(part["seed"].nunique()), **{k: level[k] for k in
                                                                   ("mean", "sd", "low", "high")},
                        "gain": gain["mean"], "gain_low": gain["low"], "gain_high": gain["high"],
                        "p_value": gain["p_value"], "pairing": gain["pairing"],
                        "baseline": f"{control_name} ({control['seed'].nunique()} seeds)"})
    for regularizer, part in arms.groupby("regularizer"):
        runs = pd.concat([part, control_runs[control_runs.set_index(list(CELL)).index.isin(
            part.set_index(list(CELL)).index)]])
        cells = fixed_cell_gains(runs, [regularizer], METRIC)
        if len(cells) >= 2:
            found = stats.fixed_cells_slope(np.log2(cells["num_params"].to_numpy(float)),
                                            cells["gain"].to_numpy(float),
                                            cells["gain_var"].to_numpy(float),
                                            cells.attrs["df"], confidence)
            slopes.append({"regularizer": regularizer, "n_cells": len(cells),
                           **{k: found[k] for k in ("slope", "low", "high", "p_value")}})
    if not same:
        for key, part in rerun.groupby(list(CELL), dropna=False):
            base = committed
            for name, value in zip(CELL, key):
                base = base[base[name] == value]
            found = stats.compare_runs(_by_seed(part), _by_seed(base), rng, confidence)
            drift.append({**dict(zip(CELL, key)), "n_rerun": int(part["seed"].nunique()),
                          "n_committed": int(base["seed"].nunique()),
                          **{k: found[k] for k in ("mean", "low", "high")}})
    return {"manifest": dict(manifest), "entries": pd.DataFrame(entries, columns=ENTRY_COLUMNS),
            "slopes": pd.DataFrame(slopes, columns=SLOPE_COLUMNS),
            "drift": pd.DataFrame(drift, columns=DRIFT_COLUMNS)}
