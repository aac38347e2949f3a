"""Power of a capacity-collapse design from measured spread: what ``korth-bench plan`` prints.

The model is the collapse test's (analysis.collapse): in cell c (capacity x_c = log2 of the
parameter count) and seed i, A_ci is the mean accuracy of the pooled arms (the primary contrast's
regularizers; a single arm when the family is per arm) and B_ci the baseline's. Within a cell
Var A = sd_arm^2, Var B = sd_base^2 and Cov(A_ci, B_ci) = cov_pair (the same seed shares the data
order and the initialization draw), independently over seeds. A design runs the arms at s seeds and
the baseline at b >= s seeds, the first s of them shared; the cell's gain estimate

    g_c = mean_{i <= s} A_ci - mean_{i <= b} B_ci,   Var g_c = v(s, b) = sd_arm^2/s + (sd_base^2 - 2 cov_pair)/b

(b = s is the paired difference). Cells carry offsets about the line, u_c ~ N(0, cell_sd^2) (lack
of fit: an architecture's own effect), which no number of seeds removes. The slope of g_c on x_c is
t-tested on C - 2 degrees of freedom, so the drop over the range, -slope x ptp(x), has standard
error sqrt(v + cell_sd^2) ptp(x) / sqrt(Sxx). "Gains shrink" needs the two-sided test to reject at
its level; "no trend" needs the (1 - alpha) interval of the drop inside +-claimed_drop
(collapse.collapse_verdict). All accuracies are fractions, as in the tables.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from korth_bench.analysis.collapse import collapse_verdict
from korth_bench.analysis.entries import BASELINE, CELL
from korth_bench.analysis.stats import detectable_drop, slope_t_test


@dataclasses.dataclass(frozen=True)
class Spread:
    """Seed and cell spread of one contrast, measured on completed trials (fractions).

    sd_arm, sd_base, cov_pair: within-cell sd of A and B and their same-seed covariance, pooled
    over cells on ``df_within`` degrees of freedom; unit_sd: sd of one paired per-seed gain A - B;
    cell_sd: sd of the cell offsets about the line, from the cells' mean gains (method of moments:
    residual mean square on ``df_cells`` = C - 2 df minus the part the seeds explain, floored at
    0); lack_of_fit_p: the F test of those offsets (0 offsets under the null).
    """
    arms: tuple
    sd_arm: float
    sd_base: float
    cov_pair: float
    unit_sd: float
    df_within: int
    cell_sd: float
    df_cells: int
    lack_of_fit_p: float
    n_cells: int
    seeds_per_cell: float


def paired_cells(runs: pd.DataFrame, arms: Sequence[str], metric: str = "test_acc",
                 baseline: str = BASELINE) -> pd.DataFrame:
    """Per cell and seed: A (mean of ``arms`` over those that ran that seed, kept only where all
    did) and B (the baseline), for seeds with both. Returns CELL, num_params, seed, A, B."""
    values = runs.assign(value=pd.to_numeric(runs[metric], errors="coerce"))
    keys = list(CELL) + ["seed"]
    arm_runs = values[values["regularizer"].isin(list(arms))]
    per_arm = arm_runs.groupby(keys + ["regularizer"], dropna=False)["value"].mean().unstack()
    pooled = per_arm.dropna().mean(axis=1).rename("A") if len(per_arm) else pd.Series(name="A",
                                                                                      dtype=float)
    base = (values[values["regularizer"] == baseline].groupby(keys, dropna=False)["value"]
            .mean().rename("B"))
    joined = pd.concat([pooled, base], axis=1, join="inner").dropna().reset_index()
    params = values.groupby(list(CELL), dropna=False)["num_params"].median().rename("num_params")
    return joined.merge(params.reset_index(), on=list(CELL), how="left")


def measure_spread(runs: pd.DataFrame, arms: Sequence[str], metric: str = "test_acc",
                   baseline: str = BASELINE) -> Spread:
    """The spread of the contrast that pools ``arms`` (entry names as ``runs['regularizer']``
    holds them) against ``baseline``, from completed runs (see Spread)."""
    table = paired_cells(runs, arms, metric, baseline)
    nan = Spread(tuple(arms), *(math.nan,) * 4, 0, math.nan, 0, math.nan, 0, math.nan)
    if table.empty:
        return nan
    cells = table.groupby(list(CELL), dropna=False).ngroup().to_numpy()
    a, b = table["A"].to_numpy(float), table["B"].to_numpy(float)
    centred = {name: v - pd.Series(v).groupby(cells).transform("mean").to_numpy()
               for name, v in (("a", a), ("b", b))}
    n_cells = np.unique(cells).size
    df_within = len(table) - n_cells
    if df_within < 1:
        return nan
    var_a = float(centred["a"] @ centred["a"]) / df_within
    var_b = float(centred["b"] @ centred["b"]) / df_within
    cov = float(centred["a"] @ centred["b"]) / df_within
    unit_var = var_a + var_b - 2 * cov
    cell_sd, lof_p, df_cells = math.nan, math.nan, n_cells - 2
    if df_cells >= 1:
        gain = pd.Series(a - b).groupby(cells)
        x = np.log2(table.groupby(cells)["num_params"].first().to_numpy(float))
        fit = slope_t_test(x, gain.mean().to_numpy())
        residual_ms = fit["se"] ** 2 * float(((x - x.mean()) ** 2).sum())
        seed_part = unit_var * float(np.mean(1.0 / gain.size().to_numpy()))
        cell_sd = math.sqrt(max(residual_ms - seed_part, 0.0))
        lof_p = float(stats.f.sf(residual_ms / seed_part, df_cells, df_within))
    return Spread(tuple(arms), math.sqrt(var_a), math.sqrt(var_b), cov, math.sqrt(unit_var),
                  df_within, cell_sd, df_cells, lof_p, n_cells, len(table) / n_cells)


def cell_variance(spread: Spread, arm_seeds: int, baseline_seeds: int) -> float:
    """Var of one cell's gain estimate, v(s, b) = sd_arm^2/s + (sd_base^2 - 2 cov_pair)/b."""
    return (spread.sd_arm ** 2 / arm_seeds
            + (spread.sd_base ** 2 - 2 * spread.cov_pair) / baseline_seeds)


def drop_se(x: np.ndarray, spread: Spread, arm_seeds: int, baseline_seeds: int,
            cell_offsets: bool = True) -> float:
    """Standard error of the drop over the range of ``x`` (cells' log2 parameters)."""
    x = np.asarray(x, float)
    sxx = float(((x - x.mean()) ** 2).sum())
    variance = cell_variance(spread, arm_seeds, baseline_seeds) + (
        spread.cell_sd ** 2 if cell_offsets else 0.0)
    return math.sqrt(variance / sxx) * float(np.ptp(x))


def superiority_power(drop: float, se: float, df: int, level: float) -> float:
    """Probability of "gains shrink": the two-sided slope test at ``level`` rejects with the sign
    of a true drop ``drop`` > 0 over the range; t = drop_hat / se_hat is noncentral t on df."""
    if df < 1 or not se > 0:
        return math.nan
    critical = stats.t.ppf(1 - level / 2, df)
    return float(np.nan_to_num(stats.nct.sf(critical, df, drop / se)))


def equivalence_power(claimed_drop: float, se: float, df: int, alpha: float,
                      grid: int = 4000) -> float:
    """Probability of "no trend" when the true drop is 0: the (1 - alpha) interval
    drop_hat +- t se_hat lies inside +-claimed_drop and the slope is not significant (a
    significant slope is read first), i.e. |drop_hat| < min(claimed_drop - t se_hat, t se_hat).
    drop_hat ~ N(0, se^2) and se_hat^2 = se^2 V / df with V ~ chi^2_df independent of it; the
    expectation over V is taken on ``grid`` quantiles."""
    if df < 1 or not se > 0:
        return math.nan
    critical = stats.t.ppf(1 - alpha / 2, df)
    v = stats.chi2.ppf((np.arange(grid) + 0.5) / grid, df)
    half = critical * np.sqrt(v / df)
    room = np.minimum(claimed_drop / se - half, half)
    return float(np.clip(2 * stats.norm.cdf(room) - 1, 0, None).mean())


def design_power(x: np.ndarray, spread: Spread, arm_seeds: int, baseline_seeds: int,
                 claimed_drop: float, alpha: float = 0.05, family_size: int = 1,
                 cell_offsets: bool = True) -> Dict[str, float]:
    """Power of one design: ``superiority`` (a drop of claimed_drop detected at the strictest
    Holm threshold alpha / family_size: 1 for the declared primary contrast), ``equivalence``
    ("no trend" when there is none) and ``detectable_drop`` (80 % power), with ``se`` of the drop."""
    x = np.asarray(x, float)
    df = x.size - 2
    se = drop_se(x, spread, arm_seeds, baseline_seeds, cell_offsets)
    level = alpha / family_size
    unit = math.sqrt(max(cell_variance(spread, arm_seeds, baseline_seeds)
                         + (spread.cell_sd ** 2 if cell_offsets else 0.0), 0.0))
    return {"se": se, "superiority": superiority_power(claimed_drop, se, df, level),
            "equivalence": equivalence_power(claimed_drop, se, df, alpha),
            "detectable_drop": detectable_drop(x, unit, 1.0, level)}


def simulate_design(x: np.ndarray, spread: Spread, arm_seeds: int, baseline_seeds: int,
                    drop: float, claimed_drop: float, alpha: float, sweeps: int,
                    rng: np.random.Generator, family_size: int = 1) -> Dict[str, float]:
    """Seeded check of design_power: ``sweeps`` studies drawn from the model (per-seed A and B
    with the measured covariance, cell offsets, a true drop ``drop`` linear in x), each decided by
    the report's own slope_t_test and collapse_verdict. Returns the rates of each verdict."""
    x = np.asarray(x, float)
    cells, s, b = x.size, arm_seeds, baseline_seeds
    true_gain = -drop * (x - x.min()) / np.ptp(x)
    cov = np.array([[spread.sd_arm ** 2, spread.cov_pair], [spread.cov_pair, spread.sd_base ** 2]])
    shared = rng.multivariate_normal([0, 0], cov, size=(sweeps, cells, s))
    extra = rng.normal(0, spread.sd_base, size=(sweeps, cells, b - s))
    gains = (true_gain + rng.normal(0, spread.cell_sd, size=(sweeps, cells))
             + shared[..., 0].mean(-1)
             - np.concatenate([shared[..., 1], extra], axis=-1).mean(-1))
    verdicts = []
    for cell_gain in gains:
        fit = slope_t_test(x, cell_gain, 1 - alpha)
        p_adjusted = min(fit["p_value"] * family_size, 1.0)
        verdicts.append(collapse_verdict(
            fit["slope"], p_adjusted, -fit["high"] * np.ptp(x), -fit["low"] * np.ptp(x),
            fit["min_attainable_p"], alpha / family_size, claimed_drop, alpha).item())
    verdicts = np.array(verdicts)
    return {name: float((verdicts == name).mean())
            for name in ("gains shrink with capacity", "gains grow", "no trend", "inconclusive")}
