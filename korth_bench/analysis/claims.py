"""Statistics behind the leaderboard: small pure functions on tidy frames and numpy arrays.

Inputs are the four result tables (`trials`, `epochs`, `layers`, `robustness`; columns in
docs/internals.md). A *cell* is one model: (dataset, model, depth, width); a *family* is
(dataset, model). The independent unit is one training run (one seed of one configuration).

Small-sample rules, because sweeps run 3-5 seeds per configuration:
- gains use a Student-t interval (paired on matching seeds, Welch otherwise) and the p-value of
  that same t test, with the exact sign-flip (paired) or permutation (unpaired) p-value beside
  it as the distribution-free check and its smallest attainable value (0.25 at 3 seeds), never a
  bootstrap over the seeds of one cell (3 seeds have 10 distinct resamples);
- the capacity trend (claim 2) is `korth_bench.analysis.collapse`: a slope on cell means,
  t-tested on n_cells - 2 degrees of freedom, "no trend" only as an equivalence decision;
Every function takes its random state explicitly (`rng`, a numpy Generator) and returns numbers;
nothing here formats, reads files, or imports ray or torch.

The array statistics live in `korth_bench.analysis.stats` and the entry tables (status grid,
entry selection, per-entry scores) in `korth_bench.analysis.entries`; this module holds the other
claims' tests and `analyze`, which runs them all.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from korth_bench.analysis.collapse import CLAIMED_DROP, collapse_metric_choices, collapse_test
from korth_bench.analysis.convergence import (
    convergence_by_cell, doubling_gains, slopes_without, split_reference, undertraining_check)
from korth_bench.analysis.decomposition import decomposition_sentence, gain_decomposition
from korth_bench.analysis.regime import tested_regime
from korth_bench.analysis.entries import (
    BASELINE, CELL, FAMILY, SETTING_COLUMNS, entry_provenance, entry_runs, entry_scores, hardware,
    metric_columns, select_entries, status_grid)
from korth_bench.analysis.stats import (
    compare_runs, correlation_interval, holm_adjust, t_interval, welch_greater_p_moments)
from korth_bench.analysis.strength import MATCH_FACTOR, epoch0_ratio, matched_strength
from korth_bench.analysis.verdicts import ORTHO_COLUMNS, STRICT, base_name, claim_verdicts
from korth_bench.errors import ConfigError

ORTHO_MEASURES = ("gram_residual_fro", "diag_deviation", "cos_mean", "cos_max")
SIMILARITY_PAIRS = (("ortho_cos_mean", "fm_sim_mean"), ("ortho_gram_residual_mean", "fm_sim_mean"),
                    ("cs_normalized_mean", "fm_sim_mean"), ("ortho_cos_mean", "fm_sim_post_mean"))
EFFICIENCY_MARGIN = 0.005
"""Default margin M of the capacity-efficiency test (half a point, as a fraction): 'matches' means
within M of the larger baseline, which itself beats the small baseline by more than M."""

# ---------------------------------------------------------------- tables

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
        "high", "n", "p_value", "p_exact", "min_attainable_p", "pairing", "n_treated", "n_control"])


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
        "num_params", "metric", "status", "mean", "sd", "low", "high", "n", "p_value", "p_exact",
        "min_attainable_p", "pairing", "n_treated", "n_control"])


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


TARGET_MEASURES = {"cs": ("cs_mean", "cs_normalized_mean")}
"""Per regularizer, (scale-dependent, scale-free) trial measures of what its penalty minimizes;
every other regularizer: ORTHO_TARGETS."""
ORTHO_TARGETS = ("ortho_gram_residual_mean", "ortho_cos_mean")


def penalty_targets(runs: pd.DataFrame, rng: np.random.Generator, baseline: str = BASELINE,
                    confidence: float = 0.95) -> pd.DataFrame:
    """Did each penalty change the kernels' shape, or only their scale?

    Per cell, regularizer minus baseline in a scale-dependent measure of its target and in the
    scale-free one: for cs the raw convolutional similarity ``cs_mean`` and the same divided by
    the filter norms ``cs_normalized_mean``; for the orthogonality penalties the Gram residual
    ``||K K^T - I||_F`` (``ortho_gram_residual_mean``) and the mean ``|cos_ij|``
    (``ortho_cos_mean``). Batch norm makes a conv layer's output invariant to the scale of its
    kernels, so a penalty that lowers only the scale-dependent measure shrank the filters and
    left their directions, and with them the feature maps' shape, where they were (cs has no
    scale anchor: docs/regularizers.md).

    Returns:
        one row per cell x regularizer x measure: CELL, regularizer, measure, scale
        ('dependent' or 'free'), baseline_mean, mean, low, high (compare_runs: paired by seed
        where seeds match), n, p_value, relative (mean / baseline_mean).
    """
    columns = list(CELL) + ["regularizer", "measure", "scale", "baseline_mean", "mean", "low",
                            "high", "n", "p_value", "relative"]
    rows = []
    for key, cell in runs.groupby(list(CELL), dropna=False):
        control = cell[cell["regularizer"] == baseline].set_index("seed")
        if control.empty:
            continue
        for name, treated in cell[cell["regularizer"] != baseline].groupby("regularizer"):
            measures = TARGET_MEASURES.get(base_name(name), ORTHO_TARGETS)
            for measure, scale in zip(measures, ("dependent", "free")):
                if measure not in cell:
                    continue
                found = compare_runs(treated.set_index("seed")[measure], control[measure], rng,
                                     confidence)
                if not (found["n_treated"] and found["n_control"]):
                    continue
                reference = float(pd.to_numeric(control[measure], errors="coerce").mean())
                rows.append({**dict(zip(CELL, key)), "regularizer": name, "measure": measure,
                             "scale": scale, "baseline_mean": reference,
                             **{k: found[k] for k in ("mean", "low", "high", "n", "p_value")},
                             "relative": found["mean"] / reference if reference else math.nan})
    return pd.DataFrame(rows, columns=columns)


EFFICIENCY_PAIR_COLUMNS = [
    "dataset", "model", "regularizer", "depth", "width", "num_params", "mean", "n",
    "base_depth", "base_width", "base_params", "base_mean", "base_n", "p_noninferior", "p_gap",
    "p_control", "p_iut"]


def efficiency_tests(runs: pd.DataFrame, metric: str = "test_acc", baseline: str = BASELINE,
                     margin: float = EFFICIENCY_MARGIN) -> pd.DataFrame:
    """[CS] capacity efficiency: the intersection-union test of every pair (small cell s, larger
    cell L) of one family, for every regularizer.

    The regularized s matches the baseline at L when both one-sided Welch tests reject:
    (a) non-inferiority, H0: mean reg(s) - mean base(L) <= -margin, and (b) a real gap to close,
    H0: mean base(L) - mean base(s) <= margin. The pair's p-value is p_iut = max(p_a, p_b):
    rejecting at level a when both do has error at most a whichever null holds, so p_iut is a
    valid p-value for "no match" and a family of them can be Holm-adjusted (efficiency_matches).
    p_control is test (a) with the baseline's own small cell in place of the regularized one.
    Returns:
        one row per family x regularizer x pair with >= 2 runs on each side
        (EFFICIENCY_PAIR_COLUMNS): the small cell (depth, width, num_params; mean, n of the
        regularized runs), the larger baseline cell (base_*), p_noninferior (a), p_gap (b),
        p_control, p_iut.
    """
    keys = list(CELL) + ["regularizer"]
    values = pd.to_numeric(runs[metric], errors="coerce")
    agg = values.groupby([runs[k] for k in keys], dropna=False).agg(["mean", "var", "count"])
    moments = {key: row for key, *row in agg[agg["count"] >= 2].itertuples()}
    params = runs.groupby(list(CELL), dropna=False)["num_params"].median().to_dict()
    rows, sides = [], []
    for (dataset, model), family in runs.groupby(list(FAMILY), dropna=False):
        cells = sorted({tuple(c) for c in family[list(CELL)].itertuples(index=False)},
                       key=params.get)
        for regularizer in sorted(set(family["regularizer"]) - {baseline}):
            for index, small in enumerate(cells):
                for large in reversed([c for c in cells[index + 1:] if params[c] > params[small]]):
                    found = [moments.get(small + (regularizer,)), moments.get(small + (baseline,)),
                             moments.get(large + (baseline,))]
                    if any(side is None for side in found):
                        continue
                    rows.append((dataset, model, regularizer, small[2], small[3], params[small],
                                 large[2], large[3], params[large]))
                    sides.append(found)
    if not rows:
        return pd.DataFrame(columns=EFFICIENCY_PAIR_COLUMNS)
    table = pd.DataFrame(rows, columns=["dataset", "model", "regularizer", "depth", "width",
                                        "num_params", "base_depth", "base_width", "base_params"])
    treated, small, large = np.transpose(np.array(sides, float), (1, 2, 0))  # mean, var, count
    table["mean"], table["n"] = treated[0], treated[2].astype(int)
    table["base_mean"], table["base_n"] = large[0], large[2].astype(int)
    table["p_noninferior"] = welch_greater_p_moments(*treated, *large, -margin)
    table["p_gap"] = welch_greater_p_moments(*large, *small, margin)
    table["p_control"] = welch_greater_p_moments(*small, *large, -margin)
    table["p_iut"] = np.fmax(table["p_noninferior"], table["p_gap"]).where(
        table[["p_noninferior", "p_gap"]].notna().all(axis=1))
    return table[EFFICIENCY_PAIR_COLUMNS]


def efficiency_matches(tests: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Per family and regularizer, the smallest model that matches a larger baseline, from
    efficiency_tests rows that carry ``p_holm`` (p_iut adjusted over the report's family of
    pairs x regularizers).

    Status 'matched' (the smallest s whose pair rejects after Holm, against its largest such
    L), 'no match' (some pair shows a gap (b) at alpha, unadjusted, and none matches),
    'inconclusive' (no pair shows a gap, or too few seeds). Beside it, the control: of the pairs
    with a gap, how many the baseline's own small cell passes (a) at alpha.
    Returns:
        one row per family x regularizer: dataset, model, regularizer, status, the matched
        pair's EFFICIENCY_PAIR_COLUMNS (NaN unless matched), p_holm (the matched pair's, else
        the smallest of the regularizer's pairs), params_ratio, n_pairs, n_gap_pairs,
        n_control_passes.
    """
    keys = ["dataset", "model", "regularizer"]
    pair = EFFICIENCY_PAIR_COLUMNS[3:-2] + ["p_iut"]
    columns = keys + ["status"] + pair + ["p_holm", "params_ratio", "n_pairs", "n_gap_pairs",
                                          "n_control_passes"]
    gap = tests["p_gap"] <= alpha
    summary = tests.assign(gap=gap, control=gap & (tests["p_control"] <= alpha)).groupby(
        keys, dropna=False).agg(n_pairs=("p_iut", "size"), n_gap_pairs=("gap", "sum"),
                                n_control_passes=("control", "sum"), p_holm=("p_holm", "min"))
    # efficiency_tests orders each regularizer's pairs by small cell, then larger cell first
    matched = tests[tests["p_holm"] <= alpha].groupby(keys, dropna=False).head(1)
    table = summary.reset_index().merge(matched[keys + pair + ["p_holm"]], on=keys, how="left",
                                        suffixes=("_min", ""))
    found = table["p_iut"].notna()
    table["p_holm"] = table["p_holm"].where(found, table["p_holm_min"])
    table["status"] = np.select([found, table["n_gap_pairs"] > 0],
                                ["matched", "no match"], "inconclusive")
    table["params_ratio"] = table["base_params"] / table["num_params"]
    return table[columns]


def capacity_efficiency(runs: pd.DataFrame, metric: str = "test_acc", baseline: str = BASELINE,
                        margin: float = EFFICIENCY_MARGIN, alpha: float = 0.05) -> pd.DataFrame:
    """[CS]: the smallest model with each regularizer that matches the baseline at a larger one,
    family-wise: the intersection-union p of every pair and regularizer the report tests
    (efficiency_tests) is Holm-adjusted over all of them at once, so that the chance of
    reporting any match where none is true stays at most alpha (efficiency_matches).
    Returns efficiency_matches' table with metric, margin and n_tests (the size of the Holm
    family: every pair x regularizer with a p_iut) added."""
    tests = efficiency_tests(runs, metric, baseline, margin)
    tests["p_holm"] = holm_adjust(tests["p_iut"].to_numpy(float))
    return efficiency_matches(tests, alpha).assign(
        metric=metric, margin=margin, n_tests=int(tests["p_iut"].notna().sum()))


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


def arm_labels(trials: pd.DataFrame, arms: Sequence[str], baseline: str = BASELINE) -> pd.Series:
    """Each trial's regularizer with its arm, e.g. 'dn [penalty_reduction=mean]': the values of
    the ``arms`` keys become part of the entry's identity (the baseline keeps its plain name, so
    every arm is compared with the one baseline). Raises ValueError on a key not in the table."""
    missing = [key for key in arms if key not in trials]
    if missing:
        raise ConfigError(f"--arm {missing[0]!r} is not a column of the trials table")
    if not arms:
        return trials["regularizer"]
    suffix = trials[list(arms)].astype(str).apply(
        lambda row: " [" + ", ".join(f"{k}={v}" for k, v in row.items()) + "]", axis=1)
    return trials["regularizer"].where(trials["regularizer"] == baseline,
                                       trials["regularizer"] + suffix)


def resolve_arms(names: Sequence[str], labels: Sequence[str],
                 where: str = "analysis.primary.arms (or --primary)"
                 ) -> List[str]:
    """The entry labels (arm_labels) that ``names`` mean, in their order. A name is an entry's
    label ('so [penalty_reduction=sum]'), the same with the values only ('so [sum]'), or a
    regularizer's plain name ('so') when it has one entry; anything else raises ConfigError
    naming the entries there are."""
    labels = sorted(set(labels))
    short = {}
    for label in labels:
        if " [" in label:
            values = [part.split("=", 1)[-1] for part in label[label.index(" [") + 2:-1].split(", ")]
            short[f"{base_name(label)} [{', '.join(values)}]"] = label
    resolved = []
    for name in names:
        plain = [label for label in labels if base_name(label) == name]
        found = (name if name in labels else short.get(name) or
                 (plain[0] if len(plain) == 1 else None))
        if found is None:
            why = (f"matches {len(plain)} entries; name one" if len(plain) > 1
                   else "is not an entry of these trials")
            raise ConfigError(f"{where}: {name!r} {why}; entries: {', '.join(labels)}")
        if found in resolved:
            raise ConfigError(f"{where}: {name!r} names {found!r} twice")
        resolved.append(found)
    return resolved


def penalty_scale(runs: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    """Regularization strength per entry: the selected coefficient(s) and the epoch-0 ratio
    coefficient x reg_loss / train_loss (the penalty relative to the cross-entropy; the
    ``epochs`` table's coefficient is the schedule's value at that epoch: strength.epoch0_ratio),
    mean over the runs.
    Returns one row per cell x regularizer: CELL, regularizer, num_params, coefficients (sorted
    list), ratio, n."""
    columns = list(CELL) + ["regularizer", "num_params", "coefficients", "ratio", "n"]
    joined = epoch0_ratio(runs, epochs)
    if joined.empty:
        return pd.DataFrame(columns=columns)
    rows = [{**dict(zip(CELL + ("regularizer",), key)), "num_params": part["num_params"].median(),
             "coefficients": sorted(pd.to_numeric(part["coefficient"], errors="coerce")
                                    .dropna().unique().tolist()) if "coefficient" in part else [],
             "ratio": float(part["ratio"].mean()), "n": int(part["ratio"].notna().sum())}
            for key, part in joined.groupby(list(CELL) + ["regularizer"], dropna=False)]
    return pd.DataFrame(rows, columns=columns)


def _arm_suffixes(runs: pd.DataFrame, regularizer: str) -> List[str]:
    """The arm suffixes (' [key=value]', or '' without arms) under which ``regularizer`` ran."""
    names = [name for name in runs["regularizer"].unique()
             if name == regularizer or name.startswith(regularizer + " [")]
    return sorted({name[len(regularizer):] for name in names}) or [""]


def analyze(frames: Dict[str, pd.DataFrame], *, selection: str = "val",
            metrics: Optional[Sequence[str]] = None, confidence: float = 0.95,
            alpha: float = 0.05, claimed_drop: float = CLAIMED_DROP,
            efficiency_margin: float = EFFICIENCY_MARGIN, arms: Sequence[str] = (),
            match_factor: float = MATCH_FACTOR,
            seed: int = 0, primary: Optional[Dict[str, object]] = None,
            expected_seeds: Optional[int] = None, baseline: str = BASELINE,
            setting_columns: Sequence[str] = SETTING_COLUMNS,
            collapse_metrics: Sequence[str] = ("test_acc",)) -> Dict[str, object]:
    """Everything the leaderboard shows, from the four tables.

    Args:
        frames: {'trials', 'epochs', 'layers', 'robustness'} -> DataFrame (missing or empty
            tables give empty results); only completed trials enter the statistics.
        selection: how a regularizer's entry is chosen per cell ('val' or 'test').
        setting_columns: the config columns whose combinations compete for an entry (by default
            every trial-config key except the seed, the cell, the device and the keys left out
            of the trial identity; those varying within a cell and regularizer label a setting).
        claimed_drop: the collapse verdict's equivalence bound (CLAIMED_DROP).
        efficiency_margin: the capacity-efficiency test's margin M (EFFICIENCY_MARGIN).
        match_factor: claim 1's strengths match when their epoch-0 penalty ratios differ by at
            most this factor (strength.MATCH_FACTOR), or their coefficients are equal.
        arms: trial keys whose values become part of an entry's identity (arm_labels): each
            arm is compared with the one baseline and gets its own collapse and
            strict-vs-relaxed rows, the collapse rows Holm-adjusted together.
        collapse_metrics: the accuracy columns whose gains the collapse test regresses on
            capacity, Holm-adjusted together (collapse_metric_choices).
        seed: seeds the one numpy Generator every resampling draws from.
        primary: the pre-registered primary contrast of claim 2 (a search space's
            ``analysis.primary``): {'arms': entry names (resolve_arms), 'metric': an accuracy
            column, 'cells' ('random' or 'fixed': collapse_test's primary_cells), and for the
            report 'declared', 'source', 'overrides'}; the collapse
            table's 'primary' row tests the pooled gain of those arms alone at ``alpha``
            and claim 2's verdict decides on it. None: claim 2 decides on the per-arm family.
    Returns:
        dict of DataFrames: grid, entries, runs, completed (every completed trial), hardware,
        provenance, scores, gains, collapse, strict_vs_relaxed, similarity, penalty_targets,
        ranking, efficiency,
        curves, robustness, matched_strength (claim 1 at matched strength: strength.
        matched_strength), reference (the reference runs, kept out of every entry and claim:
        convergence.split_reference), doubling_gains (convergence.doubling_gains, every cell and
        budget), convergence (convergence.convergence_by_cell), undertraining (dict:
        convergence.undertraining_check), undertraining_slopes (convergence.slopes_without),
        regime (regime.tested_regime of the entry runs), decomposition (decomposition.
        gain_decomposition) and decomposition_sentence (on claim 2's arms),
        verdicts (one row per claim: analysis.verdicts); 'synthetic'
        (True when any trial ran on dataset 'synthetic') and
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
    trials = trials.assign(regularizer=arm_labels(trials, arms, baseline))
    trials, reference = split_reference(trials, baseline)
    grid = status_grid(trials, expected_seeds)
    entries = select_entries(trials, selection, setting_columns)
    runs = entry_runs(trials, entries, setting_columns)
    names = sorted(set(runs["regularizer"]) - {baseline})
    primary_arms, primary_metric = [], "test_acc"
    if primary:
        primary_metric = str(primary.get("metric", "test_acc"))
        if primary_metric not in allowed:
            raise ConfigError(f"primary contrast metric {primary_metric!r} is not an accuracy "
                              f"column of these trials; choose from: {', '.join(allowed)}")
        primary_arms = resolve_arms(primary["arms"], names)
    result = {
        "grid": grid, "entries": entries, "runs": runs,
        "completed": trials[trials["status"] == "completed"],
        "synthetic": bool((trials["dataset"] == "synthetic").any()),
        "hardware": hardware(trials), "provenance": entry_provenance(runs),
        "scores": entry_scores(runs, metrics, confidence),
        "gains": gains(runs, grid, metrics, rng, baseline, confidence),
        "collapse": collapse_test(runs, list(collapse_metrics), baseline, alpha, claimed_drop,
                                  family=[n for n in names if base_name(n) in STRICT],
                                  primary=primary_arms, primary_metric=primary_metric,
                                  primary_cells=primary.get("cells", "random") if primary
                                  else "random"),
        "strict_vs_relaxed": pd.concat(
            [strict_vs_relaxed(runs, rng, strict=f"dn{arm}", relaxed=f"dn_relaxed{arm}",
                              confidence=confidence).assign(arm=arm.strip(" []"))
             for arm in _arm_suffixes(runs, "dn_relaxed")], ignore_index=True).pipe(
                 lambda table: table.assign(p_holm=holm_adjust(table["p_value"].to_numpy(float)))),
        "penalty_scale": penalty_scale(runs, epochs),
        "similarity": similarity_correlation(trials, confidence=confidence),
        "ranking": orthogonality_ranking(runs, layers, confidence=confidence),
        "efficiency": capacity_efficiency(runs, baseline=baseline, margin=efficiency_margin,
                                          alpha=alpha),
        "curves": learning_curves(epochs, runs, confidence=confidence) if len(epochs) else empty,
        "robustness": robustness_profile(robustness, runs, confidence) if len(robustness)
        else empty,
        "settings": {"selection": selection, "metrics": metrics, "confidence": confidence,
                     "alpha": alpha, "claimed_drop": claimed_drop,
                     "efficiency_margin": efficiency_margin, "arms": list(arms), "seed": seed,
                     "match_factor": match_factor,
                     "baseline": baseline, "setting_columns": list(setting_columns),
                     "collapse_metrics": list(collapse_metrics),
                     "primary": {**primary, "arms": primary_arms, "metric": primary_metric}
                     if primary else None},
    }
    result["matched_strength"] = matched_strength(result["completed"], epochs, rng, ORTHO_COLUMNS,
                                                  factor=match_factor, confidence=confidence)
    result["reference"] = reference
    result["doubling_gains"] = doubling_gains(pd.concat([trials, reference]), baseline, confidence)
    result["convergence"] = convergence_by_cell(epochs, trials, reference, baseline, confidence)
    result["undertraining"] = undertraining_check(result["convergence"], claimed_drop)
    result["regime"] = tested_regime(runs, epochs, baseline)
    result["undertraining_slopes"] = slopes_without(
        runs, result["collapse"], result["undertraining"]["least_trained"],
        metric=list(collapse_metrics), baseline=baseline, alpha=alpha, claimed_drop=claimed_drop)
    result["verdicts"] = claim_verdicts(result, rng)
    # after the verdicts, so that the draws of the tests above stay what they were
    result["penalty_targets"] = penalty_targets(runs, rng, baseline, confidence)
    result["decomposition"] = gain_decomposition(runs, epochs, rng, baseline, confidence)
    result["decomposition_sentence"] = decomposition_sentence(
        result["decomposition"], primary_arms or [n for n in names if base_name(n) in STRICT])
    return result
