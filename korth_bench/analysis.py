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
"""
from __future__ import annotations

import itertools
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from scipy import stats

CELL = ("dataset", "model", "depth", "width")
FAMILY = ("dataset", "model")
BASELINE = "none"
STATUSES = ("completed", "diverged", "stopped", "error")
# Trial-config columns that distinguish two configurations of one regularizer in one cell.
SETTING_COLUMNS = ("coefficient", "coefficient_schedule", "relaxation", "power_iterations",
                   "squared", "pairs", "diag_weight", "corr_weight", "regularize_linear",
                   "penalty_reduction", "init", "init_steps")
ORTHO_MEASURES = ("gram_residual_fro", "diag_deviation", "cos_mean", "cos_max")
SIMILARITY_PAIRS = (("ortho_cos_mean", "fm_sim_mean"), ("ortho_gram_residual_mean", "fm_sim_mean"),
                    ("cs_normalized_mean", "fm_sim_mean"), ("ortho_cos_mean", "fm_sim_post_mean"))
CLAIMED_DROP = 0.01
"""Default claimed effect for the collapse test: the gain falls by one accuracy point (0.01, the
tables store accuracies as fractions) from the smallest to the largest capacity studied. [DN]
says strict-orthogonality gains "decrease sharply" with depth, and the gains at stake are 0.5-2.3
points ([SRIP]); a design that cannot detect a 1-point drop cannot support "no trend"."""
MIN_WITHIN_DF = 2
"""Fewest within-cell degrees of freedom (units minus cells) from which the collapse test
estimates the seed spread; below it, or with no spread, the verdict is 'inconclusive'."""


# ---------------------------------------------------------------- array statistics

def t_interval(values: np.ndarray, confidence: float = 0.95) -> Dict[str, float]:
    """Mean of independent values with its Student-t confidence interval.

    Args:
        values: shape [n], one number per independent run (NaN entries are dropped).
    Returns:
        mean, sd (sample standard deviation, ddof 1), low, high (t interval, n - 1 df), n.
        With n < 2 the sd and interval are NaN.
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = values.size
    mean = values.mean() if n else math.nan
    if n < 2:
        return {"mean": mean, "sd": math.nan, "low": math.nan, "high": math.nan, "n": n}
    sd = values.std(ddof=1)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "sd": sd, "low": mean - half, "high": mean + half, "n": n}


def welch_interval(treated: np.ndarray, control: np.ndarray,
                   confidence: float = 0.95) -> Dict[str, float]:
    """Difference of means of two independent samples with the Welch t interval.

    Args:
        treated: shape [n1]; control: shape [n2]; finite values only.
    Returns:
        mean (treated minus control), sd (sqrt(s1^2 + s2^2): the spread of the difference of
        two single runs), low, high, df (Welch-Satterthwaite). NaN interval unless n1, n2 >= 2.
    """
    n1, n2 = treated.size, control.size
    mean = treated.mean() - control.mean() if n1 and n2 else math.nan
    if n1 < 2 or n2 < 2:
        return {"mean": mean, "sd": math.nan, "low": math.nan, "high": math.nan, "df": math.nan}
    v1, v2 = treated.var(ddof=1) / n1, control.var(ddof=1) / n2
    se = math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1 ** 2 / (n1 - 1) + v2 ** 2 / (n2 - 1)) if se > 0 else n1 + n2 - 2
    half = stats.t.ppf(0.5 + confidence / 2, df) * se
    return {"mean": mean, "sd": math.sqrt(treated.var(ddof=1) + control.var(ddof=1)),
            "low": mean - half, "high": mean + half, "df": df}


def sign_flip_p_value(differences: np.ndarray, rng: np.random.Generator,
                      max_exact: int = 16, n_resamples: int = 9999) -> float:
    """Two-sided sign-flip test of a zero mean for paired differences.

    Exact (all 2^n sign patterns) for n <= max_exact, else Monte Carlo with n_resamples draws.
    Args:
        differences: shape [n], treated minus control per matched seed.
    Returns:
        P(|mean of sign-flipped differences| >= |observed mean|); with 3 seeds the smallest
        attainable value is 2/8 = 0.25, which is the honest answer for 3 seeds.
    """
    n = differences.size
    if n == 0:
        return math.nan
    if n <= max_exact:
        signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
        return float(np.mean(np.abs(signs @ differences) >= abs(differences.sum()) * (1 - 1e-12)))
    signs = rng.choice([-1.0, 1.0], size=(n_resamples, n))
    extreme = np.sum(np.abs(signs @ differences) >= abs(differences.sum()) * (1 - 1e-12))
    return float((1 + extreme) / (1 + n_resamples))


def permutation_p_value(treated: np.ndarray, control: np.ndarray, rng: np.random.Generator,
                        max_exact: int = 20000, n_resamples: int = 9999) -> float:
    """Two-sided permutation test of equal means for two independent samples.

    Exact over all relabellings when there are at most max_exact of them, else Monte Carlo.
    Args:
        treated: shape [n1]; control: shape [n2].
    Returns:
        P(|difference of means| >= observed) under random relabelling.
    """
    pooled = np.concatenate([treated, control])
    n1, n = treated.size, pooled.size
    if n1 == 0 or n1 == n:
        return math.nan
    observed = abs(treated.mean() - control.mean()) * (1 - 1e-12)
    if math.comb(n, n1) <= max_exact:
        masks = np.zeros((math.comb(n, n1), n), dtype=bool)
        for row, chosen in enumerate(itertools.combinations(range(n), n1)):
            masks[row, list(chosen)] = True
        diffs = masks @ pooled / n1 - (~masks) @ pooled / (n - n1)
        return float(np.mean(np.abs(diffs) >= observed))
    orders = rng.permuted(np.tile(np.arange(n), (n_resamples, 1)), axis=1)
    shuffled = pooled[orders]
    diffs = shuffled[:, :n1].mean(1) - shuffled[:, n1:].mean(1)
    return float((1 + np.sum(np.abs(diffs) >= observed)) / (1 + n_resamples))


def compare_runs(treated: pd.Series, control: pd.Series, rng: np.random.Generator,
                 confidence: float = 0.95) -> Dict[str, object]:
    """Gain of treated over control runs, paired by seed where at least two seeds match.

    Args:
        treated, control: one value per run, indexed by seed (NaN dropped; repeated seeds are
            averaged first).
    Returns:
        mean, sd, low, high (t interval: paired t on the matching seeds, else Welch on all runs),
        p_value (exact sign-flip if paired, permutation otherwise), pairing ('paired',
        'unpaired'), n (matched pairs, or n1 + n2 runs), n_treated, n_control.
    """
    treated = pd.to_numeric(treated, errors="coerce").dropna().groupby(level=0).mean()
    control = pd.to_numeric(control, errors="coerce").dropna().groupby(level=0).mean()
    common = treated.index.intersection(control.index)
    counts = {"n_treated": treated.size, "n_control": control.size}
    if common.size >= 2:
        differences = (treated[common] - control[common]).to_numpy(float)
        estimate = t_interval(differences, confidence)
        return {**estimate, "p_value": sign_flip_p_value(differences, rng), "pairing": "paired",
                **counts}
    x, y = treated.to_numpy(float), control.to_numpy(float)
    estimate = welch_interval(x, y, confidence)
    p_value = permutation_p_value(x, y, rng) if x.size and y.size else math.nan
    return {"mean": estimate["mean"], "sd": estimate["sd"], "low": estimate["low"],
            "high": estimate["high"], "n": x.size + y.size, "p_value": p_value,
            "pairing": "unpaired", **counts}


def holm_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error control under any dependence).

    Args:
        p_values: shape [m]; NaN entries are left NaN and not counted in m.
    Returns:
        shape [m], adjusted p-values, reject where adjusted <= alpha.
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, math.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def ols_slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of y on x. x: shape [n]; y: shape [..., n]. Returns shape [...]."""
    centred = x - x.mean()
    return y @ centred / (centred @ centred)


def pooled_within_sd(y: np.ndarray, cells: np.ndarray) -> Tuple[np.ndarray, int]:
    """Seed spread pooled over cells: sqrt(sum of within-cell squared deviations / df).

    Args:
        y: shape [..., n] per-seed values; cells: shape [n] cell label of each unit.
    Returns:
        (sd of shape [...], df = n - number of cells); sd is NaN when df == 0.
    """
    squares = np.zeros(y.shape[:-1])
    df = 0
    for cell in np.unique(cells):
        values = y[..., cells == cell]
        squares = squares + ((values - values.mean(-1, keepdims=True)) ** 2).sum(-1)
        df += values.shape[-1] - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(squares / df) if df else np.full(y.shape[:-1], math.nan), df


def slope_permutation_p(x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                        n_permutations: int = 9999) -> np.ndarray:
    """Two-sided permutation p-value of a zero slope, permuting the independent units.

    Under "no capacity effect" the per-seed gains of all cells are exchangeable, so whole units
    are shuffled across capacities (seeds stay intact: a unit is one seed's gain).
    Args:
        x: shape [n] capacity of each unit's cell; y: shape [..., n] per-seed gains (leading
           axes are independent data sets, all tested with the same permutations).
    Returns:
        shape [...], (1 + #{|permuted slope| >= |observed|}) / (1 + n_permutations).
    """
    observed = np.abs(ols_slope(x, y))
    orders = rng.permuted(np.tile(np.arange(x.size), (n_permutations, 1)), axis=1)
    permuted = np.abs(ols_slope(x, y[..., orders]))
    extreme = (permuted >= observed[..., None] * (1 - 1e-12)).sum(-1)
    return (1 + extreme) / (1 + n_permutations)


def slope_bootstrap_ci(x: np.ndarray, y: np.ndarray, cells: np.ndarray,
                       rng: np.random.Generator, confidence: float = 0.95,
                       n_bootstrap: int = 1999) -> Tuple[np.ndarray, np.ndarray]:
    """Cell-stratified bootstrap-t interval for the slope of y on x.

    Each cell's centred residuals, inflated by sqrt(n_c / (n_c - 1)), are resampled within the
    cell; each resample's slope is studentized by its own pooled within-cell spread.
    Args:
        x: shape [n]; y: shape [..., n]; cells: shape [n] (cells of one unit contribute no
           residuals).
    Returns:
        (low, high), each of shape [...]; NaN when no cell has two units, infinite when too
        many resamples have no within-cell spread (2 seeds per cell: say so, do not guess).
    """
    centred = x - x.mean()
    scale = math.sqrt(centred @ centred)
    slope = ols_slope(x, y)
    spread, df = pooled_within_sd(y, cells)
    if df == 0:
        nan = np.full(slope.shape, math.nan)
        return nan, nan.copy()
    resampled = np.empty(y.shape[:-1] + (n_bootstrap, x.size))
    for cell in np.unique(cells):
        index = np.flatnonzero(cells == cell)
        values = y[..., index]
        means = values.mean(-1, keepdims=True)
        inflation = math.sqrt(index.size / (index.size - 1)) if index.size > 1 else 0.0
        residuals = (values - means) * inflation
        draws = rng.integers(0, index.size, size=(n_bootstrap, index.size))
        resampled[..., index] = means[..., None, :] + residuals[..., draws]
    boot_slope = ols_slope(x, resampled)
    boot_spread, _ = pooled_within_sd(resampled, cells)
    deviation = boot_slope - slope[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        studentized = np.where(deviation == 0, 0.0, deviation / (boot_spread / scale))
    tail = (1 - confidence) / 2
    # order statistics, not interpolation: a resample with no spread studentizes to +-inf
    q_low, q_high = np.quantile(studentized, [tail, 1 - tail], axis=-1, method="inverted_cdf")
    standard_error = spread / scale
    return slope - q_high * standard_error, slope - q_low * standard_error


def slope_power(slope: float, sd: float, x: np.ndarray, alpha: float = 0.05) -> Dict[str, float]:
    """Power of the two-sided level-alpha slope test (normal errors, noncentral t, n - 2 df).

    Args:
        slope: true slope; sd: per-seed spread of the gains; x: shape [n] units' capacities.
    Returns:
        two_sided (P(reject)), negative (P(reject with a negative estimate): the power of a
        'gains shrink' verdict when slope < 0), positive.
    """
    centred = x - x.mean()
    df = x.size - 2
    noncentrality = slope * math.sqrt(centred @ centred) / sd
    critical = stats.t.ppf(1 - alpha / 2, df)
    negative = stats.nct.cdf(-critical, df, noncentrality)
    positive = stats.nct.sf(critical, df, noncentrality)
    return {"two_sided": negative + positive, "negative": negative, "positive": positive}


def minimum_detectable_slope(sd: np.ndarray, x: np.ndarray, alpha: float = 0.05,
                             power: float = 0.8) -> np.ndarray:
    """Smallest |slope| the two-sided level-alpha test detects with the given power.

    (t_{1-alpha/2, n-2} + t_{power, n-2}) * sd / sqrt(sum (x - mean x)^2); sd: the measured seed
    spread (any shape); x: shape [n]. NaN spread gives an infinite effect (nothing detectable).
    """
    centred = x - x.mean()
    df = x.size - 2
    if df < 1:
        return np.full(np.shape(sd), math.inf)
    factor = stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)
    return np.where(np.isfinite(sd), factor * np.asarray(sd) / math.sqrt(centred @ centred),
                    math.inf)


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


def correlation_interval(x: np.ndarray, y: np.ndarray,
                         confidence: float = 0.95) -> Dict[str, float]:
    """Spearman rank correlation with the Fisher-z interval of Bonett and Wright (2000).

    Args:
        x, y: shape [n], one pair per trial (pairs with a NaN dropped).
    Returns:
        rho, low, high (se of atanh(rho) = sqrt((1 + rho^2 / 2) / (n - 3)); NaN for n < 4), n.
    """
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = x.size
    if n < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"rho": math.nan, "low": math.nan, "high": math.nan, "n": n}
    rho = float(stats.spearmanr(x, y).statistic)
    se = math.sqrt((1 + rho ** 2 / 2) / (n - 3))
    z = math.atanh(np.clip(rho, -0.999999, 0.999999))
    half = stats.norm.ppf(0.5 + confidence / 2) * se
    return {"rho": rho, "low": math.tanh(z - half), "high": math.tanh(z + half), "n": n}


# ---------------------------------------------------------------- tidy frames

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


def _cell_key(frame: pd.DataFrame) -> pd.Series:
    return frame[list(CELL)].astype(str).agg("/".join, axis=1)


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
        raise ValueError(f"selection must be 'val' or 'test', got {selection!r}")
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


def collapse_test(runs: pd.DataFrame, rng: np.random.Generator, metric: str = "test_acc",
                  baseline: str = BASELINE, alpha: float = 0.05,
                  claimed_drop: float = CLAIMED_DROP, power: float = 0.8,
                  n_permutations: int = 9999, n_bootstrap: int = 1999) -> pd.DataFrame:
    """Do a regularizer's gains shrink as capacity grows? One row per regularizer x family x axis.

    Regresses the per-seed gains (unit_gains) on each capacity axis; slope per doubling of the
    parameter count, per unit of depth, per unit of width. p-values come from permuting units
    across cells and are Holm-adjusted across all rows (regularizers x families x axes); the
    detectable drop is the minimum detectable slope (level alpha / number of tests, the strictest
    Holm step, at the given power, from the pooled seed spread) times the capacity range.
    Returns:
        columns dataset, model, regularizer, metric, axis, n_units, n_cells, n_order_matched,
        slope, low, high (bootstrap-t interval at 1 - alpha), p_value, p_holm, sd_within,
        capacity_range, detectable_drop, claimed_drop, alpha, power, verdict, note.
    """
    untestable, tests = [], []
    regularizers = sorted(set(runs["regularizer"]) - {baseline})
    for (dataset, model), family in runs.groupby(list(FAMILY), dropna=False):
        for regularizer in regularizers:
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
            setting_columns: Sequence[str] = SETTING_COLUMNS) -> Dict[str, object]:
    """Everything the leaderboard shows, from the four tables.

    Args:
        frames: {'trials', 'epochs', 'layers', 'robustness'} -> DataFrame (missing or empty
            tables give empty results); only completed trials enter the statistics.
        selection: how a regularizer's entry is chosen per cell ('val' or 'test').
        setting_columns: the config columns whose combinations compete for an entry (by default
            coefficient, relaxation and the regularizers' own parameters).
        claimed_drop: the effect the collapse verdict must be able to see (CLAIMED_DROP).
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
        "collapse": collapse_test(runs, rng, "test_acc", baseline, alpha, claimed_drop, power,
                                  n_permutations, n_bootstrap),
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
                     "baseline": baseline, "setting_columns": list(setting_columns)},
    }
