"""Penalty strength and claim 1 at matched strength ([DN]: dn reaches better near-orthogonality
than so).

A penalty's strength is its coefficient, and, comparable across penalties of different scales,
its epoch-0 ratio ``coefficient x reg_loss / train_loss`` (the penalty relative to the
cross-entropy at the first epoch; the ``epochs`` table's coefficient is the schedule's value).
Comparing the orthogonality that dn and so reach at their *selected* coefficients compares
strengths as much as forms: validation may pick dn at 1e-2 and so at 1e-3. So claim 1 is decided
only on pairs of (dn setting, so setting) of one cell, arm and sweep whose strengths are
matched: the same coefficient, or epoch-0 ratios within a factor MATCH_FACTOR of each other.
Pure functions on the result tables.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from korth_bench.analysis.entries import CELL
from korth_bench.analysis.stats import compare_runs
from korth_bench.analysis.verdicts import arm_suffix, base_name

MATCH_FACTOR = 1.5
"""Two settings have matched strength when their epoch-0 penalty ratios differ by at most this
factor (max / min <= 1.5), or when their coefficients are equal."""
FOUND = ("mean", "low", "high", "n", "p_value", "p_exact", "min_attainable_p", "pairing",
         "n_treated", "n_control")
"""The compare_runs fields of a matched comparison."""
MATCH_COLUMNS = list(CELL) + [
    "sweep", "treated", "control", "treated_coefficient", "control_coefficient",
    "treated_ratio", "control_ratio", "matched_by", "measure", *FOUND]


def epoch0_ratio(trials: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    """Per trial, the epoch-0 penalty ratio coefficient x reg_loss / train_loss.

    Args:
        trials: rows with trial_id (and coefficient, used where epochs has none).
        epochs: the epochs table (trial_id, epoch, reg_loss, train_loss, coefficient).
    Returns:
        trials' rows that have an epoch-0 row, with ``ratio`` added (NaN without reg_loss).
    """
    if epochs is None or epochs.empty or not {"reg_loss", "train_loss"} <= set(epochs):
        return trials.iloc[:0].assign(ratio=pd.Series(dtype=float))
    first = epochs[epochs["epoch"] == 0].drop_duplicates("trial_id")
    keep = ["trial_id", "reg_loss", "train_loss"] + (
        ["coefficient"] if "coefficient" in first else [])
    joined = trials.merge(first[keep], on="trial_id", suffixes=("", "_epoch"))
    coefficient = joined.get("coefficient_epoch", joined.get("coefficient"))
    ratio = pd.to_numeric(coefficient, errors="coerce") * joined["reg_loss"] / joined["train_loss"]
    return joined.drop(columns=[c for c in ("reg_loss", "train_loss", "coefficient_epoch")
                                if c in joined]).assign(ratio=ratio)


def matched_by(coefficients: tuple, ratios: tuple, factor: float = MATCH_FACTOR) -> str:
    """'coefficient', 'ratio', 'coefficient and ratio' or '' (not matched) for two settings."""
    same = math.isclose(coefficients[0], coefficients[1], rel_tol=1e-9)
    close = (all(np.isfinite(ratios)) and min(ratios) > 0
             and max(ratios) / min(ratios) <= factor)
    return " and ".join(name for name, found in (("coefficient", same), ("ratio", close))
                        if found)


def matched_strength(completed: pd.DataFrame, epochs: pd.DataFrame, rng: np.random.Generator,
                     measures: Sequence[str], treated: str = "dn", control: str = "so",
                     factor: float = MATCH_FACTOR, confidence: float = 0.95) -> pd.DataFrame:
    """``treated`` minus ``control`` in each orthogonality measure, at matched strength only.

    Every completed trial counts, not only the selected entries: within one cell, arm (the
    label after the regularizer's name) and sweep, each coefficient of ``treated`` is paired
    with each coefficient of ``control`` whose strength matches (matched_by); the runs of the
    two settings are compared by compare_runs (paired by seed where seeds match).
    Args:
        completed: completed trials with arm labels in ``regularizer`` ('dn [penalty_reduction=
            sum]'), coefficient, seed, sweep and the ``measures`` columns.
        epochs: the epochs table (for the epoch-0 ratio; without it only equal coefficients
            match).
    Returns:
        one row per matched pair x measure (MATCH_COLUMNS): mean (treated minus control), low,
        high, p_value, p_exact, min_attainable_p, n, ... of compare_runs; treated/control name
        the two labels, *_coefficient and *_ratio their strengths.
    """
    names = completed["regularizer"].astype(str)
    sides = completed.assign(base=names.map(base_name), arm=names.map(arm_suffix))
    sides = sides[sides["base"].isin([treated, control])]
    if sides.empty:
        return pd.DataFrame(columns=MATCH_COLUMNS)
    ratios = epoch0_ratio(sides[["trial_id", "coefficient"]], epochs)
    sides = sides.merge(ratios[["trial_id", "ratio"]], on="trial_id", how="left").assign(
        coefficient=lambda s: pd.to_numeric(s["coefficient"], errors="coerce"))
    if "sweep" not in sides:
        sides = sides.assign(sweep="")
    rows = []
    for key, group in sides.groupby(list(CELL) + ["sweep", "arm"], dropna=False):
        settings = {name: list(part.groupby("coefficient")) for name, part in
                    group.groupby("base")}
        for (c_t, runs_t), (c_c, runs_c) in ((t, c) for t in settings.get(treated, [])
                                            for c in settings.get(control, [])):
            strengths = (runs_t["ratio"].mean(), runs_c["ratio"].mean())
            how = matched_by((c_t, c_c), strengths, factor)
            if not how:
                continue
            for measure in (m for m in measures if m in group):
                found = compare_runs(runs_t.set_index("seed")[measure],
                                     runs_c.set_index("seed")[measure], rng, confidence)
                if not (found["n_treated"] and found["n_control"]):
                    continue
                rows.append({**dict(zip(CELL, key[:len(CELL)])), "sweep": key[len(CELL)],
                             "treated": runs_t["regularizer"].iloc[0],
                             "control": runs_c["regularizer"].iloc[0],
                             "treated_coefficient": c_t, "control_coefficient": c_c,
                             "treated_ratio": strengths[0], "control_ratio": strengths[1],
                             "matched_by": how, "measure": measure,
                             **{k: found[k] for k in FOUND}})
    return pd.DataFrame(rows, columns=MATCH_COLUMNS)
