"""The capacity-collapse test ([DN], claim 2): do a regularizer's gains over the baseline shrink
as the model grows?

The unit is one per-seed gain (regularizer minus baseline on the same seed, ``unit_gains``); per
cell their mean; the cell means are regressed on the capacity (log2 of the parameter count, the
primary axis; depth and width descriptively) and the slope is t-tested on n_cells - 2 degrees of
freedom, so an effect specific to one cell widens the interval instead of reading as a trend
(permuting or resampling seeds across cells would treat it as signal). A lack-of-fit F test of the
cell means about the line against the variance of each cell mean (cell_lack_of_fit) flags such
offsets. "No trend" is an
equivalence decision: the (1 - alpha) interval of the drop over the capacity range lies inside
+-claimed_drop, and the slope test could have rejected at its Holm threshold; otherwise a
non-significant slope is "inconclusive" (``collapse_verdict``).
"""
from __future__ import annotations

import itertools
import math
from typing import Collection, Dict, List, Optional, Sequence, Union

import numpy as np
import pandas as pd

from korth_bench.analysis.entries import (
    ATTACK_PREFIXES, BASELINE, CELL, FAMILY, cell_key, metric_columns)
from korth_bench.analysis.stats import (
    cell_means_lack_of_fit, detectable_slope, fixed_cells_slope, holm_adjust,
    pooled_baseline_gains, pooled_within_sd, slope_t_test)

CLAIMED_DROP = 0.01
"""Default claimed effect for the collapse test: the gain falls by one accuracy point (0.01, the
tables store accuracies as fractions) from the smallest to the largest capacity studied. [DN]
says strict-orthogonality gains "decrease sharply" with depth, and the gains at stake are 0.5-2.3
points ([SRIP]); a design that cannot detect a 1-point drop cannot support "no trend"."""
COLLAPSE_METRICS = ("test_acc", "best_test_acc", "clean_acc", "corruption_acc_mean")
"""Columns the collapse test takes besides the attack accuracies (fgsm_acc_*, pgd_acc_*): gains
in accuracy, a fraction, so that one claimed drop applies to each."""
PRIMARY_AXIS = "log2_params"
"""The capacity axis whose slope carries the collapse verdict; depth and width are descriptive."""


def collapse_verdict(slope: np.ndarray, p_adjusted: np.ndarray, drop_low: np.ndarray,
                     drop_high: np.ndarray, min_attainable_p: np.ndarray, level: np.ndarray,
                     claimed_drop: float = CLAIMED_DROP, alpha: float = 0.05) -> np.ndarray:
    """Verdict on how a gain changes with capacity (all array arguments of one shape).

    'gains shrink with capacity' / 'gains grow' when the Holm-adjusted p-value is <= alpha (sign
    of the slope); 'no trend' (of ``claimed_drop`` or more) only when, besides, the slope test
    could have rejected (``min_attainable_p`` <= ``level``, its strictest Holm threshold
    alpha / m) and the (1 - alpha) interval of the drop over the capacity range,
    [drop_low, drop_high], lies inside (-claimed_drop, +claimed_drop): an equivalence (TOST)
    decision; 'inconclusive' otherwise.
    """
    slope, p_adjusted = np.asarray(slope, float), np.asarray(p_adjusted, float)
    can_reject = np.asarray(min_attainable_p, float) <= np.asarray(level, float)
    significant = can_reject & (p_adjusted <= alpha)
    equivalent = (can_reject & (np.asarray(drop_low, float) > -claimed_drop)
                  & (np.asarray(drop_high, float) < claimed_drop))
    return np.select(
        [significant & (slope < 0), significant & (slope > 0), equivalent],
        ["gains shrink with capacity", "gains grow", "no trend"], "inconclusive")


def _cell_key(frame: pd.DataFrame) -> pd.Series:
    """One integer label per distinct CELL of ``frame``'s rows."""
    return frame.groupby(list(CELL), dropna=False, sort=False).ngroup()


def unit_gains(runs: pd.DataFrame, regularizer: str, metric: str,
               baseline: str = BASELINE) -> pd.DataFrame:
    """Independent per-seed gains of one regularizer, for regressions across cells.

    In each cell, runs with a matching baseline seed give paired differences; the remaining runs
    of both sides are matched in seed order (independent runs, so their differences are still
    independent units with the right mean, only noisier); unmatched regularizer runs are
    dropped, and unmatched baseline runs (a baseline run at more seeds than the regularizer)
    count through stats.pooled_baseline_gains: each unit subtracts (k c_s + m mean(extra)) /
    (k + m), so the cell mean of the units is the regularizer's mean minus the mean of every
    baseline run of the cell, as compare_runs estimates it.
    Returns:
        one row per unit: CELL columns, num_params, seed (the regularizer's), gain, matching
        ('seed' or 'order'), n_extra_baseline (the m baseline runs pooled into it).
    """
    side = runs[runs["regularizer"].isin([regularizer, baseline])]
    keys = list(CELL)
    values = pd.to_numeric(side[metric], errors="coerce")
    by_cell: Dict[tuple, Dict[str, Dict[object, List[float]]]] = {}
    for *cell, name, seed, value in zip(*(side[k] for k in keys), side["regularizer"],
                                        side["seed"], values):
        if not pd.isna(value):
            by_cell.setdefault(cell_key(cell), {}).setdefault(name, {}).setdefault(
                seed, []).append(value)
    params = ({cell_key(k): v for k, v in side.groupby(keys, dropna=False)["num_params"]
               .median().items()} if "num_params" in side else {})
    rows = []
    for cell, sides in by_cell.items():
        if set(sides) != {regularizer, baseline}:
            continue
        treated, control = ({seed: float(np.mean(v)) for seed, v in sorted(sides[name].items())}
                            for name in (regularizer, baseline))
        common = [seed for seed in treated if seed in control]
        rest_t = [seed for seed in treated if seed not in control]
        rest_c = [seed for seed in control if seed not in treated]
        pairs = [(seed, seed, "seed") for seed in common]
        pairs += [(t, c, "order") for t, c in zip(rest_t, rest_c)]
        extra = np.array([control[c] for c in rest_c[len(rest_t):]], float)
        gains = pooled_baseline_gains(np.array([treated[t] for t, _, _ in pairs], float),
                                      np.array([control[c] for _, c, _ in pairs], float), extra)
        for (seed, _, how), gain in zip(pairs, gains):
            rows.append({**dict(zip(CELL, cell)), "num_params": params.get(cell, math.nan),
                         "seed": seed, "gain": gain, "matching": how,
                         "n_extra_baseline": extra.size})
    return pd.DataFrame(rows, columns=list(CELL) + ["num_params", "seed", "gain", "matching",
                                                    "n_extra_baseline"])


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
            if c in COLLAPSE_METRICS or c.startswith(ATTACK_PREFIXES)]


def pooled_unit_gains(runs: pd.DataFrame, arms: Sequence[str], metric: str = "test_acc",
                      baseline: str = BASELINE) -> pd.DataFrame:
    """The primary contrast's units: for each cell and seed, the mean of the listed arms'
    per-seed gains (unit_gains of each arm; an arm without a unit at that seed is left out of
    that mean).

    Pooling k arms whose gains share one baseline run per seed leaves that run's noise in full
    and averages the arms' own noise, so the pooled units' spread is what a design that tests
    the pooled contrast must plan for (korth-bench plan reads it from here).
    Returns:
        one row per cell x seed: CELL columns, num_params, seed, gain (the mean), n_arms,
        matching ('seed' when every pooled unit was seed-matched, else 'order'),
        n_extra_baseline.
    """
    return _pooled([unit_gains(runs, arm, metric, baseline) for arm in arms])


def _pooled(parts: List[pd.DataFrame]) -> pd.DataFrame:
    """pooled_unit_gains from the arms' unit_gains frames."""
    columns = list(CELL) + ["num_params", "seed", "gain", "n_arms", "matching",
                            "n_extra_baseline"]
    units = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(
        len(p) for p in parts) else pd.DataFrame(columns=columns)
    if not len(units):
        return pd.DataFrame(columns=columns)
    units = units.assign(order=(units["matching"] != "seed").astype(int))
    pooled = units.groupby(list(CELL) + ["seed"], dropna=False, sort=True).agg(
        num_params=("num_params", "first"), gain=("gain", "mean"), n_arms=("gain", "size"),
        order=("order", "max"), n_extra_baseline=("n_extra_baseline", "max")).reset_index()
    pooled["matching"] = np.where(pooled.pop("order") > 0, "order", "seed")
    return pooled[columns]


def fixed_cell_gains(runs: pd.DataFrame, arms: Sequence[str], metric: str = "test_acc",
                     baseline: str = BASELINE) -> pd.DataFrame:
    """The primary contrast's cell means for the fixed-cells test, with their variances.

    In cell c, a_cs is the mean of the arms' ``metric`` at seed s (seeds where every arm has a
    value: s_c of them), b_cj the baseline's runs (b_c, p_c of them at the arms' seeds). The cell's
    gain is g_c = mean(a_c) - mean(b_c) (every baseline run weighs the same). With sigma_a^2,
    sigma_b^2 and the same-seed covariance sigma_ab pooled over the cells (sum of (s_c - 1),
    (b_c - 1) and (p_c - 1) df), Var(g_c) = sigma_a^2 / s_c + sigma_b^2 / b_c
    - 2 p_c sigma_ab / (s_c b_c), the estimator korth-bench plan's fixed-cells designs simulate
    (analysis.power.simulate_design).
    The same variance of each cell mean is what the lack-of-fit test (cell_lack_of_fit) and
    korth-bench plan's spread (analysis.power.measure_spread) use.
    Returns:
        one row per cell: CELL columns, num_params, gain, gain_var, arm_seeds, baseline_seeds,
        paired; in ``attrs``: 'df' the sum of (s_c - 1), the degrees of freedom of the slope test;
        'var_arm', 'var_base', 'cov_pair' the pooled sigma_a^2, sigma_b^2, sigma_ab and
        'df_base', 'df_pair' their other degrees of freedom.
    """
    keys = list(CELL)
    values = runs.assign(value=pd.to_numeric(runs[metric], errors="coerce")).dropna(subset=["value"])
    cells, ss_a, ss_b, sp, df_a, df_b, df_p = [], 0.0, 0.0, 0.0, 0, 0, 0
    for cell, group in values.groupby(keys, dropna=False, sort=True):
        by_arm = group[group["regularizer"].isin(arms)].pivot_table(
            index="seed", columns="regularizer", values="value", aggfunc="mean")
        if set(by_arm.columns) != set(arms):
            continue
        arm = by_arm.dropna().mean(axis=1)
        base = group[group["regularizer"] == baseline].groupby("seed")["value"].mean()
        if len(arm) < 2 or len(base) < 2:
            continue
        paired = arm.index.intersection(base.index)
        ss_a += float(((arm - arm.mean()) ** 2).sum())
        ss_b += float(((base - base.mean()) ** 2).sum())
        df_a, df_b = df_a + len(arm) - 1, df_b + len(base) - 1
        if len(paired) >= 2:
            a, b = arm[paired], base[paired]
            sp += float(((a - a.mean()) * (b - b.mean())).sum())
            df_p += len(paired) - 1
        cells.append({**dict(zip(keys, cell)), "num_params": float(group["num_params"].median()),
                      "gain": float(arm.mean() - base.mean()), "arm_seeds": len(arm),
                      "baseline_seeds": len(base), "paired": len(paired)})
    table = pd.DataFrame(cells, columns=keys + ["num_params", "gain", "arm_seeds",
                                                "baseline_seeds", "paired"])
    var_a = ss_a / df_a if df_a else math.nan
    var_b = ss_b / df_b if df_b else math.nan
    cov = sp / df_p if df_p else 0.0
    table["gain_var"] = (var_a / table["arm_seeds"] + var_b / table["baseline_seeds"]
                         - 2 * table["paired"] * cov / (table["arm_seeds"] * table["baseline_seeds"])
                         ).clip(lower=0.0)
    table.attrs.update(df=df_a, var_arm=var_a, var_base=var_b, cov_pair=cov, df_base=df_b,
                       df_pair=df_p)
    return table


def cell_lack_of_fit(fixed: pd.DataFrame, axis: str = "log2_params") -> Dict[str, float]:
    """The lack-of-fit F test of a contrast's cell means about their line on ``axis``
    (log2_params, depth or width), each cell mean against its own variance: fixed_cell_gains'
    gain and gain_var (arms' variance / s_c + baseline variance / b_c - the same-seed covariance
    term), on its df (the slope test's), by stats.cell_means_lack_of_fit. The collapse table's
    lack_of_fit_p and korth-bench plan's cell offsets both come from here."""
    if len(fixed) < 3:
        return cell_means_lack_of_fit(np.zeros(len(fixed)), np.zeros(len(fixed)),
                                      np.ones(len(fixed)), 0)
    x = (np.log2(fixed["num_params"].to_numpy(float)) if axis == PRIMARY_AXIS
         else fixed[axis].to_numpy(float))
    return cell_means_lack_of_fit(x, fixed["gain"].to_numpy(float),
                                  fixed["gain_var"].to_numpy(float), fixed.attrs.get("df", 0))


def detectable_drop(drop_se: float, df: float, level: float, power: float = 0.8) -> float:
    """The detectable drop: the one definition, used by the collapse table's detectable_drop
    and by korth-bench plan (analysis.power.design_power, realized and planned alike).

    The drop over the capacity range that the declared two-sided t test of the slope, at
    ``level`` (alpha; a Holm family's strictest threshold alpha / m), detects with probability
    ``power`` (80 % by default), given the standard error ``drop_se`` of the estimated drop that
    the design gives (the slope's se times the capacity range: random cells, the cell means'
    residual spread as the seeds give it, sd of one per-seed gain / sqrt(seeds per cell); fixed
    cells, sqrt(sum_c w_c^2 Var g_c) from fixed_cell_gains). With the drop's estimate normal
    around the true drop D and its se estimated on ``df`` degrees of freedom, t = estimate / se
    is noncentral t on df with noncentrality D / drop_se; the returned D = ncp x drop_se, ncp
    solving P(|T| > t_{1 - level/2, df}) = power. Student t quantiles throughout (central t for
    the critical value, noncentral t for the power; never the normal approximation), on the slope
    test's df: C - 2 for random cells, the sum over cells of (arm seeds - 1) for fixed cells.
    Both rejection tails count; the wrong-sign tail adds less than 1e-5 at any df >= 1.
    NaN where there is no test (df < 1, se not > 0)."""
    return detectable_slope(drop_se, df, level, power)


def primary_label(arms: Sequence[str]) -> str:
    """The collapse table's name of the primary contrast, e.g. 'primary: mean of so, dn'."""
    return "primary: mean of " + ", ".join(arms)


def collapse_test(runs: pd.DataFrame, metric: Union[str, Sequence[str]] = "test_acc",
                  baseline: str = BASELINE, alpha: float = 0.05,
                  claimed_drop: float = CLAIMED_DROP,
                  family: Optional[Collection[str]] = None,
                  primary: Sequence[str] = (), primary_metric: str = "test_acc",
                  primary_cells: str = "random") -> pd.DataFrame:
    """Do a regularizer's gains shrink as capacity grows? One row per metric x regularizer x
    family x axis, and one for the primary contrast when ``primary`` names arms.

    ``metric``: one accuracy column or several (COLLAPSE_METRICS: accuracies as fractions, so
    that ``claimed_drop`` means the same on each). Per cell, the mean of the per-seed gains
    (unit_gains); the cell means are regressed on each capacity axis (slope per doubling of the
    parameter count, per unit of depth, per unit of width) and the slope is t-tested on
    n_cells - 2 degrees of freedom (slope_t_test: a cell-level effect counts as noise, not as
    trend). The primary axis, log2_params, carries the verdict. Its rows form Holm families,
    each stated in the row (``test_family``, ``family_size``): 'claim 2' (metrics x the
    regularizers in ``family``, by default all), 'outside claim 2' (the other regularizers)
    and 'primary' (the pooled contrast of ``primary``, pooled_unit_gains in ``primary_metric``,
    tested alone at alpha: a pre-registered single test; with ``primary_cells`` 'fixed' its
    slope is the slope over these cells, stats.fixed_cells_slope on fixed_cell_gains). The
    p-value, the verdict
    (collapse_verdict: the (1 - alpha) interval of the drop over the capacity range against
    +-claimed_drop) and the detectable drop all use the row's family. Depth and width rows are
    descriptive (verdict 'descriptive', no Holm). The lack-of-fit F test (cell_lack_of_fit, on
    fixed_cell_gains of the row's arms: each cell mean against its own variance) says whether the
    cell means scatter about the line by more than the seed noise.
    Returns:
        columns dataset, model, regularizer, metric, axis, test_family, family_size, n_units,
        n_cells, n_order_matched, slope, low, high (t interval at 1 - alpha), p_value, p_holm,
        min_attainable_p, lack_of_fit_p, sd_within, capacity_range, drop, drop_low, drop_high
        (minus the slope and its interval, times the range), detectable_drop (detectable_drop:
        the drop this design detects with 80 % power at the family's strictest Holm threshold
        alpha / m, from the drop's standard error: sd_within / sqrt(units per cell) for random
        cells, the fixed-cells se otherwise), claimed_drop (the equivalence bound), alpha,
        verdict, note.
    """
    specs = []
    regularizers = sorted(set(runs["regularizer"]) - {baseline})
    metrics = [metric] if isinstance(metric, str) else list(metric)
    in_claim = (lambda name: True) if family is None else (lambda name: name in family)
    for (dataset, model), group in runs.groupby(list(FAMILY), dropna=False):
        units = {(metric_name, regularizer): unit_gains(group, regularizer, metric_name, baseline)
                 for metric_name in {*metrics, *([primary_metric] if primary else [])}
                 for regularizer in regularizers}
        for metric_name, regularizer in itertools.product(metrics, regularizers):
            specs.append(({"dataset": dataset, "model": model, "regularizer": regularizer,
                           "metric": metric_name, "test_family": "claim 2"
                           if in_claim(regularizer) else "outside claim 2",
                           "cell_means": fixed_cell_gains(group, [regularizer], metric_name,
                                                          baseline)},
                          units[metric_name, regularizer]))
        if primary:
            cell_means = fixed_cell_gains(group, primary, primary_metric, baseline)
            specs.append(({"dataset": dataset, "model": model,
                           "regularizer": primary_label(primary), "metric": primary_metric,
                           "test_family": "primary", "cell_means": cell_means},
                          _pooled([units.get((primary_metric, arm), pd.DataFrame())
                                   for arm in primary])))
            if primary_cells == "fixed":
                specs[-1][0]["fixed"] = cell_means
    sizes: Dict[str, int] = {}
    for row, _ in specs:
        sizes[row["test_family"]] = sizes.get(row["test_family"], 0) + 1
    rows = []
    for row, units in specs:
        level = alpha / sizes[row["test_family"]]
        fixed, cell_means = row.pop("fixed", None), row.pop("cell_means")
        rows += _slope_rows({**row, "family_size": sizes[row["test_family"]]}, units, alpha,
                            level, fixed, cell_means)
    columns = ["dataset", "model", "regularizer", "metric", "axis", "test_family",
               "family_size", "n_units", "n_cells", "n_order_matched", "slope", "low", "high",
               "p_value", "min_attainable_p", "lack_of_fit_p", "sd_within", "capacity_range",
               "drop", "drop_low", "drop_high", "detectable_drop", "note"]
    table = pd.DataFrame(rows, columns=columns)
    primary_axis = (table["axis"] == PRIMARY_AXIS).to_numpy()
    table["p_holm"] = math.nan
    for name in sizes:
        rows_of = primary_axis & (table["test_family"] == name).to_numpy()
        table.loc[rows_of, "p_holm"] = holm_adjust(table.loc[rows_of, "p_value"].to_numpy(float))
    level = alpha / table["test_family"].map(sizes).to_numpy(float)
    verdict = collapse_verdict(table["slope"].to_numpy(float), table["p_holm"].to_numpy(float),
                               table["drop_low"].to_numpy(float),
                               table["drop_high"].to_numpy(float),
                               table["min_attainable_p"].fillna(1.0).to_numpy(float),
                               level, claimed_drop, alpha)
    table["verdict"] = np.where(primary_axis, verdict, "descriptive")
    return table.assign(claimed_drop=claimed_drop, alpha=alpha)


def _slope_rows(row: dict, units: pd.DataFrame, alpha: float, level: float,
                fixed: Optional[pd.DataFrame] = None,
                cell_means: Optional[pd.DataFrame] = None) -> List[dict]:
    """The collapse rows of one set of units (one per capacity axis; one untestable row when
    they span fewer than 2 capacities), the detectable drop at ``level``; with ``fixed``
    (fixed_cell_gains of the same units' cells) the slope is the fixed-cells one; the lack of
    fit is cell_lack_of_fit of ``cell_means`` (fixed_cell_gains of the row's arms)."""
    cells = _cell_key(units).to_numpy() if len(units) else np.zeros(0, int)
    row = {**row, "n_units": len(units), "n_cells": np.unique(cells).size,
           "n_order_matched": int((units["matching"] == "order").sum()) if len(units) else 0}
    axes = capacity_axes(units) if len(units) >= 2 else {}
    if not axes:
        return [{**row, "axis": PRIMARY_AXIS, "min_attainable_p": 1.0,
                 "note": "needs 2 capacities"}]
    gain = units["gain"].to_numpy(float)
    labels, index = np.unique(cells, return_inverse=True)
    spread, _ = pooled_within_sd(gain, cells)
    rows = []
    for axis, x in axes.items():
        cell_x = np.array([x[index == i][0] for i in range(labels.size)])
        cell_gain = np.array([gain[index == i].mean() for i in range(labels.size)])
        fit = slope_t_test(cell_x, cell_gain, 1 - alpha)
        capacity_range = float(np.ptp(x))
        note = (None if fit["df"] >= 1 else
                f"{labels.size} cells: a slope test on cell means needs 3")
        sxx = float(((cell_x - cell_x.mean()) ** 2).sum())
        detectable = (detectable_drop(float(spread) / math.sqrt(gain.size / labels.size)
                                      / math.sqrt(sxx) * capacity_range, fit["df"], level)
                      if sxx > 0 else math.nan)
        if fixed is not None and len(fixed) >= 2:
            fixed_x = (np.log2(fixed["num_params"].to_numpy(float)) if axis == PRIMARY_AXIS
                       else fixed[axis].to_numpy(float))
            fit = fixed_cells_slope(fixed_x, fixed["gain"].to_numpy(float),
                                    fixed["gain_var"].to_numpy(float), fixed.attrs["df"],
                                    1 - alpha)
            detectable = detectable_drop(fit["se"] * capacity_range, fit["df"], level)
            note = (f"fixed cells: the slope over these {len(fixed)} cells, its error from the "
                    f"seeds within them ({fit['df']:g} df)")
        rows.append({**row, "axis": axis, "slope": fit["slope"], "low": fit["low"],
                     "high": fit["high"], "p_value": fit["p_value"],
                     "min_attainable_p": fit["min_attainable_p"],
                     "lack_of_fit_p": (cell_lack_of_fit(cell_means, axis)["p_value"]
                                       if cell_means is not None else math.nan),
                     "sd_within": float(spread), "capacity_range": capacity_range,
                     "drop": -fit["slope"] * capacity_range,
                     "drop_low": -fit["high"] * capacity_range,
                     "drop_high": -fit["low"] * capacity_range,
                     "detectable_drop": detectable,
                     "note": note})
    return rows
