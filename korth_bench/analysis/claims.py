"""Statistics behind the leaderboard: small pure functions on tidy frames and numpy arrays.

Inputs are the four result tables (`trials`, `epochs`, `layers`, `robustness`; columns in
docs/internals.md). A *cell* is one model: (dataset, model, depth, width); a *family* is
(dataset, model). The independent unit is one training run (one seed of one configuration).

Small-sample rules, because sweeps run 3-5 seeds per configuration:
- gains use a Student-t interval (paired on matching seeds, Welch otherwise) and an exact
  sign-flip (paired) or permutation (unpaired) p-value, never a bootstrap over the seeds of one
  cell (3 seeds have 10 distinct resamples);
- the capacity slope is tested by permuting per-seed gains across cells (the seeds are the
  independent units) and gets a cell-stratified bootstrap-t interval (residuals inflated by
  sqrt(n/(n-1)), studentized by the pooled within-cell spread), whose coverage stays near nominal
  down to 3 seeds x 3 cells, where the percentile bootstrap covers about 85 %.
Every function takes its random state explicitly (`rng`, a numpy Generator) and returns numbers;
nothing here formats, reads files, or imports ray or torch.

The array statistics live in `korth_bench.analysis.stats` and the entry tables (status grid,
entry selection, per-entry scores) in `korth_bench.analysis.entries`; this module holds the claims.
"""
from __future__ import annotations

import itertools
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from korth_bench.analysis.entries import (
    CELL, FAMILY, SETTING_COLUMNS, entry_provenance, entry_runs, entry_scores, hardware,
    metric_columns, select_entries, status_grid)
from korth_bench.analysis.stats import (
    compare_runs, correlation_interval, holm_adjust, minimum_detectable_slope, ols_slope,
    pooled_within_sd, slope_bootstrap_ci, slope_permutation_p, t_interval)
from korth_bench.errors import ConfigError

BASELINE = "none"
ORTHO_MEASURES = ("gram_residual_fro", "diag_deviation", "cos_mean", "cos_max")
SIMILARITY_PAIRS = (("ortho_cos_mean", "fm_sim_mean"), ("ortho_gram_residual_mean", "fm_sim_mean"),
                    ("cs_normalized_mean", "fm_sim_mean"), ("ortho_cos_mean", "fm_sim_post_mean"))
CLAIMED_DROP = 0.01
"""Default claimed effect for the collapse test: the gain falls by one accuracy point (0.01, the
tables store accuracies as fractions) from the smallest to the largest capacity studied. [DN]
says strict-orthogonality gains "decrease sharply" with depth, and the gains at stake are 0.5-2.3
points ([SRIP]); a design that cannot detect a 1-point drop cannot support "no trend"."""
COLLAPSE_METRICS = ("test_acc", "best_test_acc", "clean_acc", "corruption_acc_mean")
"""Columns the collapse test takes besides the attack accuracies (fgsm_acc_*, pgd_acc_*): gains
in accuracy, a fraction, so that one claimed drop applies to each."""
MIN_WITHIN_DF = 2
"""Fewest within-cell degrees of freedom (units minus cells) from which the collapse test
estimates the seed spread; below it, or with no spread, the verdict is 'inconclusive'."""


# ---------------------------------------------------------------- tables

def collapse_verdict(slope: np.ndarray, p_adjusted: np.ndarray, detectable_drop: np.ndarray,
                     claimed_drop: float = CLAIMED_DROP, alpha: float = 0.05) -> np.ndarray:
    """Verdict on how a gain changes with capacity (all array arguments of one shape).

    'gains shrink with capacity' / 'gains grow' when the adjusted p-value is <= alpha (sign of the
    slope); otherwise 'no trend' if the detectable drop over the capacity range is at most the
    claimed drop, else 'inconclusive' (the design could not have seen the claimed effect).
    """
    significant = np.asarray(p_adjusted) <= alpha
    return np.select(
        [significant & (np.asarray(slope) < 0), significant & (np.asarray(slope) > 0),
         ~(np.asarray(detectable_drop) <= claimed_drop)],
        ["gains shrink with capacity", "gains grow", "inconclusive"], "no trend")


def _cell_key(frame: pd.DataFrame) -> pd.Series:
    return frame[list(CELL)].astype(str).agg("/".join, axis=1)


def gains(runs: pd.DataFrame, grid: pd.DataFrame, metrics: Sequence[str],
          rng: np.random.Generator, baseline: str = BASELINE,
          confidence: float = 0.95) -> pd.DataFrame:
    """Gain of every regularizer's entry over the baseline entry, per cell and metric.

    Args:
        runs: entry_runs(...) rows; grid: status_grid(...) rows (every cell x regularizer).
        metrics: trials columns; gain = regularizer minus baseline in the metric's own units
            (for epochs_to_* a negative gain is faster convergence).
    Returns:
        one row per grid row (baseline excluded) x metric: CELL, regularizer, metric, num_params,
        mean, sd, low, high, n, p_value, pairing, n_treated, n_control (seeds found with a value),
        n_seeds_expected, status ('measured', 'missing: no completed runs', 'missing baseline',
        'missing: no values of this metric').
    """
    keys = list(CELL)
    by_cell = {key: group for key, group in runs.groupby(keys + ["regularizer"], dropna=False)}
    rows = []
    for cell in grid[grid["regularizer"] != baseline].itertuples(index=False):
        cell_key = tuple(getattr(cell, k) for k in keys)
        treated = by_cell.get(cell_key + (cell.regularizer,))
        control = by_cell.get(cell_key + (baseline,))
        status = ("missing: no completed runs" if treated is None else
                  "missing baseline" if control is None else "measured")
        for metric in metrics:
            row = {**dict(zip(keys, cell_key)), "regularizer": cell.regularizer, "metric": metric,
                   "num_params": cell.num_params, "n_seeds_expected": cell.n_seeds_expected,
                   "status": status}
            if status == "measured":
                row.update(compare_runs(treated.set_index("seed")[metric],
                                        control.set_index("seed")[metric], rng, confidence))
                if not (row["n_treated"] and row["n_control"]):
                    row["status"] = "missing: no values of this metric"
            else:
                row.update(n_treated=0 if treated is None else treated[metric].notna().sum(),
                           n_control=0 if control is None else control[metric].notna().sum())
            rows.append(row)
    return pd.DataFrame(rows, columns=list(CELL) + [
        "regularizer", "metric", "num_params", "n_seeds_expected", "status", "mean", "sd", "low",
        "high", "n", "p_value", "pairing", "n_treated", "n_control"])


def unit_gains(runs: pd.DataFrame, regularizer: str, metric: str,
               baseline: str = BASELINE) -> pd.DataFrame:
    """Independent per-seed gains of one regularizer, for regressions across cells.

    In each cell, runs with a matching baseline seed give paired differences; the remaining runs
    of both sides are matched in seed order (independent runs, so their differences are still
    independent units with the right mean, only noisier); unmatched leftovers are dropped.
    Returns:
        one row per unit: CELL columns, num_params, seed (the regularizer's), gain, matching
        ('seed' or 'order').
    """
    rows = []
    for key, group in runs[runs["regularizer"].isin([regularizer, baseline])].groupby(
            list(CELL), dropna=False):
        values = {name: pd.to_numeric(part[metric], errors="coerce").groupby(part["seed"])
                  .mean().dropna() for name, part in group.groupby("regularizer")}
        if set(values) != {regularizer, baseline}:
            continue
        treated, control = values[regularizer], values[baseline]
        common = treated.index.intersection(control.index)
        rest_t, rest_c = treated.drop(common), control.drop(common)
        matched = min(rest_t.size, rest_c.size)
        params = group["num_params"].median() if "num_params" in group else math.nan
        by_order = rest_t.to_numpy()[:matched] - rest_c.to_numpy()[:matched]
        for seed, gain, how in itertools.chain(
                ((s, treated[s] - control[s], "seed") for s in common),
                zip(rest_t.index[:matched], by_order, itertools.repeat("order"))):
            rows.append({**dict(zip(CELL, key)), "num_params": params, "seed": seed,
                         "gain": gain, "matching": how})
    return pd.DataFrame(rows, columns=list(CELL) + ["num_params", "seed", "gain", "matching"])


def capacity_axes(units: pd.DataFrame) -> Dict[str, np.ndarray]:
    """Capacity coordinates of each unit: log2 of the parameter count (per doubling), depth and
    width, each kept only when it takes at least two values."""
    axes = {"log2_params": np.log2(units["num_params"].to_numpy(float)),
            "depth": units["depth"].to_numpy(float), "width": units["width"].to_numpy(float)}
    return {name: x for name, x in axes.items()
            if np.isfinite(x).all() and np.unique(x).size >= 2}


def collapse_metric_choices(trials: pd.DataFrame) -> List[str]:
    """The accuracy columns of ``trials`` the collapse test accepts (in metric_columns order)."""
    return [c for c in metric_columns(trials)
            if c in COLLAPSE_METRICS or c.startswith(("fgsm_acc_", "pgd_acc_"))]


def collapse_test(runs: pd.DataFrame, rng: np.random.Generator,
                  metric: Union[str, Sequence[str]] = "test_acc",
                  baseline: str = BASELINE, alpha: float = 0.05,
                  claimed_drop: float = CLAIMED_DROP, power: float = 0.8,
                  n_permutations: int = 9999, n_bootstrap: int = 1999) -> pd.DataFrame:
    """Do a regularizer's gains shrink as capacity grows? One row per metric x regularizer x
    family x axis.

    ``metric``: one accuracy column or several (COLLAPSE_METRICS: accuracies as fractions, so
    that ``claimed_drop`` means the same on each). Regresses the per-seed gains (unit_gains) on
    each capacity axis; slope per doubling of the parameter count, per unit of depth, per unit of
    width. p-values come from permuting units across cells and are Holm-adjusted across all rows
    (metrics x regularizers x families x axes); the
    detectable drop is the minimum detectable slope (level alpha / number of tests, the strictest
    Holm step, at the given power, from the pooled seed spread) times the capacity range.
    Returns:
        columns dataset, model, regularizer, metric, axis, n_units, n_cells, n_order_matched,
        slope, low, high (bootstrap-t interval at 1 - alpha), p_value, p_holm, sd_within,
        capacity_range, detectable_drop, claimed_drop, alpha, power, verdict, note.
    """
    untestable, tests = [], []
    regularizers = sorted(set(runs["regularizer"]) - {baseline})
    metrics = [metric] if isinstance(metric, str) else list(metric)
    for metric, ((dataset, model), family), regularizer in itertools.product(
            metrics, runs.groupby(list(FAMILY), dropna=False), regularizers):
        units = unit_gains(family, regularizer, metric, baseline)
        row = {"dataset": dataset, "model": model, "regularizer": regularizer,
               "metric": metric, "n_units": len(units),
               "n_cells": units.groupby(list(CELL)).ngroups if len(units) else 0,
               "n_order_matched": int((units["matching"] == "order").sum())}
        axes = capacity_axes(units) if len(units) >= 3 else {}
        if not axes:
            untestable.append({**row, "axis": "log2_params",
                               "note": "needs 2 capacities and 3 matched seeds"})
        for axis, x in axes.items():
            tests.append(({**row, "axis": axis}, x, units["gain"].to_numpy(float),
                          _cell_key(units).to_numpy()))
    tested = []
    for row, x, gain, cells in tests:
        low, high = slope_bootstrap_ci(x, gain, cells, rng, 1 - alpha, n_bootstrap)
        spread, df = pooled_within_sd(gain, cells)
        detectable = minimum_detectable_slope(spread, x, alpha / len(tests), power)
        note = _spread_guard(float(spread), df)
        if note:  # no usable seed spread: neither the interval nor the power can be estimated
            low, high, detectable = -math.inf, math.inf, math.inf
        tested.append({**row, "slope": float(ols_slope(x, gain)), "low": float(low),
                       "high": float(high),
                       "p_value": float(slope_permutation_p(x, gain, rng, n_permutations)),
                       "sd_within": float(spread), "capacity_range": float(np.ptp(x)),
                       "detectable_drop": float(detectable) * float(np.ptp(x)), "note": note})
    columns = ["dataset", "model", "regularizer", "metric", "axis", "n_units", "n_cells",
               "n_order_matched", "slope", "low", "high", "p_value", "sd_within",
               "capacity_range", "detectable_drop", "note"]
    table = pd.DataFrame(tested + untestable, columns=columns)
    table["p_holm"] = holm_adjust(table["p_value"].to_numpy(float))
    table["verdict"] = collapse_verdict(table["slope"].to_numpy(float),
                                        table["p_holm"].to_numpy(float),
                                        table["detectable_drop"].fillna(math.inf).to_numpy(float),
                                        claimed_drop, alpha)
    return table.assign(claimed_drop=claimed_drop, alpha=alpha, power=power)


def _spread_guard(spread: float, df: int) -> Optional[str]:
    """Why a tested row's seed spread cannot carry an interval or a power figure, or None.

    The slope interval and the detectable drop scale with the pooled within-cell spread; with
    fewer than MIN_WITHIN_DF degrees of freedom, or no spread at all (every seed of every cell
    gave the same gain, e.g. all at chance), they would read as certainty the data do not give.
    """
    if df < MIN_WITHIN_DF:
        return f"{df} within-cell degree(s) of freedom, {MIN_WITHIN_DF} needed for a seed spread"
    if not spread > 0:
        return "no seed spread within cells: interval and power undefined"
    return None


def _largest_cells(runs: pd.DataFrame) -> pd.DataFrame:
    """Per family, the CELL key of the cell with the most parameters."""
    cells = runs.groupby(list(CELL), dropna=False)["num_params"].median().reset_index()
    return cells.sort_values("num_params").groupby(list(FAMILY), dropna=False).tail(1)


def strict_vs_relaxed(runs: pd.DataFrame, rng: np.random.Generator, metric: str = "test_acc",
                      strict: str = "dn", relaxed: str = "dn_relaxed",
                      confidence: float = 0.95) -> pd.DataFrame:
    """Relaxed minus strict disentangled regularization at each family's largest capacity.

    Returns:
        one row per family: CELL columns of its largest cell, num_params, metric, compare_runs
        fields (relaxed minus strict), status ('measured' or which side is missing).
    """
    by_cell = dict(list(runs.groupby(list(CELL), dropna=False)))
    rows = []
    for cell in _largest_cells(runs).itertuples(index=False):
        key = tuple(getattr(cell, k) for k in CELL)
        here = by_cell[key]
        sides = {name: here[here["regularizer"] == name].set_index("seed")[metric]
                 for name in (relaxed, strict)}
        missing = [name for name, values in sides.items() if values.dropna().empty]
        row = {**dict(zip(CELL, key)), "num_params": cell.num_params, "metric": metric,
               "status": "missing: " + ", ".join(missing) if missing else "measured"}
        if not missing:
            row.update(compare_runs(sides[relaxed], sides[strict], rng, confidence))
        rows.append(row)
    return pd.DataFrame(rows, columns=list(CELL) + [
        "num_params", "metric", "status", "mean", "sd", "low", "high", "n", "p_value", "pairing",
        "n_treated", "n_control"])


def similarity_correlation(trials: pd.DataFrame,
                           pairs: Sequence[Tuple[str, str]] = SIMILARITY_PAIRS,
                           confidence: float = 0.95) -> pd.DataFrame:
    """[CS]: does kernel near-orthogonality go with low feature-map similarity? Per cell, across
    all its completed trials (every regularizer and coefficient: the spread in orthogonality).

    Returns:
        one row per cell x (orthogonality column, similarity column) present: CELL, x, y, rho,
        low, high (Spearman with Fisher-z interval), n (trials).
    """
    done = trials[trials["status"] == "completed"]
    rows = []
    for key, cell in done.groupby(list(CELL), dropna=False):
        for x, y in pairs:
            if x in cell and y in cell:
                estimate = correlation_interval(cell[x].to_numpy(float), cell[y].to_numpy(float),
                                                confidence)
                rows.append({**dict(zip(CELL, key)), "x": x, "y": y, **estimate})
    return pd.DataFrame(rows, columns=list(CELL) + ["x", "y", "rho", "low", "high", "n"])


def final_layer_measures(layers: pd.DataFrame,
                         measures: Sequence[str] = ORTHO_MEASURES) -> pd.DataFrame:
    """Per trial, the mean over its weight layers (conv and linear rows) of each orthogonality
    measure at the trial's last measurement epoch. Returns one row per trial_id."""
    weights = layers[layers["kind"].isin(["conv", "linear"])]
    last = weights["epoch"] == weights.groupby("trial_id")["epoch"].transform("max")
    present = [m for m in measures if m in weights]
    return weights[last].groupby("trial_id")[present].mean().reset_index()


def orthogonality_ranking(runs: pd.DataFrame, layers: pd.DataFrame,
                          measures: Sequence[str] = ORTHO_MEASURES,
                          confidence: float = 0.95) -> pd.DataFrame:
    """[DN]: which regularizer reaches the best near-orthogonality, per cell and measure.

    Returns:
        one row per cell x measure x regularizer: mean, sd, low, high (t interval over seeds of
        the per-trial layer mean), n, rank (1 = most orthogonal, by mean), tied_with_best
        (interval overlaps the best one's, so the ranking between them is not established).
    """
    columns = list(CELL) + ["measure", "regularizer", "mean", "sd", "low", "high", "n", "rank",
                            "tied_with_best"]
    if layers.empty:
        return pd.DataFrame(columns=columns)
    measured = runs.merge(final_layer_measures(layers, measures), on="trial_id",
                          suffixes=("_trial", ""))
    rows = []
    for key, cell in measured.groupby(list(CELL), dropna=False):
        for measure in (m for m in measures if m in measured):
            block = pd.DataFrame([{**dict(zip(CELL, key)), "measure": measure, "regularizer": reg,
                                   **t_interval(part[measure].to_numpy(float), confidence)}
                                  for reg, part in cell.groupby("regularizer")])
            block["rank"] = block["mean"].rank(method="min")
            best_high = block.loc[block["rank"] == 1, "high"].min()
            block["tied_with_best"] = (block["rank"] > 1) & (block["low"] <= best_high)
            block = block.sort_values(["rank", "regularizer"])
            rows.append(block)
    return pd.concat(rows, ignore_index=True)[columns] if rows else pd.DataFrame(columns=columns)


def capacity_efficiency(runs: pd.DataFrame, metric: str = "test_acc", baseline: str = BASELINE,
                        confidence: float = 0.95) -> pd.DataFrame:
    """[CS]: the smallest model with each regularizer that matches the baseline at a larger one.

    A regularized cell matches a larger baseline cell when its t interval reaches the baseline's
    (its upper bound >= the baseline's lower bound): overlap, a weak criterion, not equivalence.
    Only larger baseline cells that beat the baseline at the regularized cell's own size count
    (matching a larger model that is no better is no saving).
    Returns:
        one row per family x regularizer: the smallest matching cell (depth, width, num_params,
        mean, low, high), the largest baseline cell it matches (base_depth, base_width,
        base_params, base_mean, base_low, base_high), params_ratio; NaN fields and
        status 'no match' when no cell matches.
    """
    per_cell = pd.DataFrame([
        {**dict(zip(CELL + ("regularizer",), key)), "num_params": part["num_params"].median(),
         **t_interval(part[metric].to_numpy(float), confidence)}
        for key, part in runs.groupby(list(CELL) + ["regularizer"], dropna=False)],
        columns=list(CELL) + ["regularizer", "num_params", "mean", "sd", "low", "high", "n"])
    rows = []
    for (dataset, model), family in per_cell.groupby(list(FAMILY), dropna=False):
        base = family[family["regularizer"] == baseline]
        for regularizer, cells in family[family["regularizer"] != baseline].groupby("regularizer"):
            row = {"dataset": dataset, "model": model, "regularizer": regularizer, "metric": metric,
                   "status": "no match"}
            for cell in cells.sort_values("num_params").itertuples(index=False):
                same_size = base.loc[base["num_params"] == cell.num_params, "mean"].max()
                larger = base[(base["num_params"] > cell.num_params) & (base["low"] <= cell.high)
                              & ~(base["mean"] <= same_size)]
                if len(larger):
                    match = larger.sort_values("num_params").iloc[-1]
                    row.update(status="matched", depth=cell.depth, width=cell.width,
                               num_params=cell.num_params, mean=cell.mean, low=cell.low,
                               high=cell.high, n=cell.n, base_depth=match["depth"],
                               base_width=match["width"], base_params=match["num_params"],
                               base_mean=match["mean"], base_low=match["low"],
                               base_high=match["high"], base_n=match["n"],
                               params_ratio=match["num_params"] / cell.num_params)
                    break
            rows.append(row)
    return pd.DataFrame(rows, columns=[
        "dataset", "model", "regularizer", "metric", "status", "depth", "width", "num_params",
        "mean", "low", "high", "n", "base_depth", "base_width", "base_params", "base_mean",
        "base_low", "base_high", "base_n", "params_ratio"])


def learning_curves(epochs: pd.DataFrame, runs: pd.DataFrame, column: str = "test_acc",
                    confidence: float = 0.95) -> pd.DataFrame:
    """Mean learning curve of each entry: per cell x regularizer x epoch, the t_interval fields
    of `column` over the entry's seeds (n says how many reached that epoch)."""
    joined = epochs.merge(runs[["trial_id", "regularizer", *CELL]], on="trial_id")
    return pd.DataFrame([
        {**dict(zip(CELL + ("regularizer", "epoch"), key)),
         **t_interval(part[column].to_numpy(float), confidence)}
        for key, part in joined.groupby(list(CELL) + ["regularizer", "epoch"], dropna=False)])


def robustness_profile(robustness: pd.DataFrame, runs: pd.DataFrame,
                       confidence: float = 0.95) -> pd.DataFrame:
    """Accuracy per family x regularizer x perturbation (kind, name, severity), pooled over the
    family's cells and seeds: t_interval fields over the runs, n_cells."""
    joined = robustness.merge(runs[["trial_id", "regularizer", *CELL]], on="trial_id")
    keys = list(FAMILY) + ["regularizer", "kind", "name", "severity"]
    return pd.DataFrame([
        {**dict(zip(keys, key)), **t_interval(part["accuracy"].to_numpy(float), confidence),
         "n_cells": part.groupby(["depth", "width"]).ngroups}
        for key, part in joined.groupby(keys, dropna=False)])


def analyze(frames: Dict[str, pd.DataFrame], *, selection: str = "val",
            metrics: Optional[Sequence[str]] = None, confidence: float = 0.95,
            alpha: float = 0.05, claimed_drop: float = CLAIMED_DROP, power: float = 0.8,
            n_permutations: int = 9999, n_bootstrap: int = 1999, seed: int = 0,
            expected_seeds: Optional[int] = None, baseline: str = BASELINE,
            setting_columns: Sequence[str] = SETTING_COLUMNS,
            collapse_metrics: Sequence[str] = ("test_acc",)) -> Dict[str, object]:
    """Everything the leaderboard shows, from the four tables.

    Args:
        frames: {'trials', 'epochs', 'layers', 'robustness'} -> DataFrame (missing or empty
            tables give empty results); only completed trials enter the statistics.
        selection: how a regularizer's entry is chosen per cell ('val' or 'test').
        setting_columns: the config columns whose combinations compete for an entry (by default
            coefficient, relaxation and the regularizers' own parameters).
        claimed_drop: the effect the collapse verdict must be able to see (CLAIMED_DROP).
        collapse_metrics: the accuracy columns whose gains the collapse test regresses on
            capacity, Holm-adjusted together (collapse_metric_choices).
        seed: seeds the one numpy Generator every resampling draws from.
    Returns:
        dict of DataFrames: grid, entries, runs, completed (every completed trial), hardware,
        provenance, scores, gains, collapse, strict_vs_relaxed, similarity, ranking, efficiency,
        curves, robustness; 'synthetic' (True when any trial ran on dataset 'synthetic') and
        'settings' (the options used).
    """
    rng = np.random.default_rng(seed)
    trials = frames["trials"]
    if "num_params" not in trials:
        trials = trials.assign(num_params=math.nan)
    empty = pd.DataFrame()
    epochs, layers, robustness = (frames.get(name, empty) for name in
                                  ("epochs", "layers", "robustness"))
    metrics = list(metrics) if metrics is not None else metric_columns(trials)
    allowed = collapse_metric_choices(trials)
    for name in collapse_metrics:
        if name not in allowed:
            raise ConfigError(f"collapse metric {name!r} is not an accuracy column of these trials; "
                             f"choose from: {', '.join(allowed)}")
    grid = status_grid(trials, expected_seeds)
    entries = select_entries(trials, selection, setting_columns)
    runs = entry_runs(trials, entries, setting_columns)
    return {
        "grid": grid, "entries": entries, "runs": runs,
        "completed": trials[trials["status"] == "completed"],
        "synthetic": bool((trials["dataset"] == "synthetic").any()),
        "hardware": hardware(trials), "provenance": entry_provenance(runs),
        "scores": entry_scores(runs, metrics, confidence),
        "gains": gains(runs, grid, metrics, rng, baseline, confidence),
        "collapse": collapse_test(runs, rng, list(collapse_metrics), baseline, alpha,
                                  claimed_drop, power, n_permutations, n_bootstrap),
        "strict_vs_relaxed": strict_vs_relaxed(runs, rng, confidence=confidence),
        "similarity": similarity_correlation(trials, confidence=confidence),
        "ranking": orthogonality_ranking(runs, layers, confidence=confidence),
        "efficiency": capacity_efficiency(runs, baseline=baseline, confidence=confidence),
        "curves": learning_curves(epochs, runs, confidence=confidence) if len(epochs) else empty,
        "robustness": robustness_profile(robustness, runs, confidence) if len(robustness)
        else empty,
        "settings": {"selection": selection, "metrics": metrics, "confidence": confidence,
                     "alpha": alpha, "claimed_drop": claimed_drop, "power": power,
                     "n_permutations": n_permutations, "n_bootstrap": n_bootstrap, "seed": seed,
                     "baseline": baseline, "setting_columns": list(setting_columns),
                     "collapse_metrics": list(collapse_metrics)},
    }
