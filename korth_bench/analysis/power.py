"""Power of a capacity-collapse design from measured spread: what ``korth-bench plan`` prints.

The model is the collapse test's (analysis.collapse): in cell c (capacity x_c = log2 of the
parameter count) and seed i, A_ci is the mean accuracy of the pooled arms (the primary contrast's
regularizers; a single arm when the family is per arm) and B_ci the baseline's. Within a cell
Var A = sd_arm^2, Var B = sd_base^2 and Cov(A_ci, B_ci) = cov_pair (the same seed shares the data
order and the initialization draw), independently over seeds. A design runs the arms at s seeds and
the baseline at b >= s seeds, the first s of them shared; the cell's gain estimate

    g_c = mean_{i <= s} A_ci - mean_{i <= b} B_ci,   Var g_c = v(s, b) = sd_arm^2/s + (sd_base^2 - 2 cov_pair)/b

(b = s is the paired difference). Cells carry offsets about the line, u_c ~ N(0, cell_sd^2) (lack
of fit: an architecture's own effect), which no number of seeds removes. Two tests of the slope of
g_c on x_c (the drop over the range is -slope x ptp(x)):

- ``random`` cells (stats.slope_t_test, the report's default): the offsets are noise, the drop's
  standard error is sqrt(v + cell_sd^2) ptp(x) / sqrt(Sxx), t on C - 2 df; the verdict reaches
  architectures beyond the cells studied.
- ``fixed`` cells (stats.fixed_cells_slope): the estimand is the slope of these cells' true mean
  gains, offsets included; standard error sqrt(v) ptp(x) / sqrt(Sxx), t on the within-cell df.

"Gains shrink" needs the two-sided test to reject at its level with a positive drop; "no trend"
needs the (1 - alpha) interval of the drop inside +-claimed_drop (collapse.collapse_verdict). All
accuracies are fractions, as in the tables.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from korth_bench.analysis.collapse import (
    cell_lack_of_fit, collapse_verdict, detectable_drop, fixed_cell_gains)
from korth_bench.analysis.entries import BASELINE
from korth_bench.analysis.stats import fixed_cells_slope, slope_t_test

CELL_MODELS = ("random", "fixed")
"""How the slope test treats the cells (see the module docstring)."""


@dataclasses.dataclass(frozen=True)
class Spread:
    """Seed and cell spread of one contrast, measured on completed trials (fractions).

    sd_arm, sd_base, cov_pair: within-cell sd of A and B and their same-seed covariance, pooled
    over cells as collapse.fixed_cell_gains pools them (the arms' seeds on ``df_within`` degrees
    of freedom, every baseline run, the shared seeds), so that cell_variance at a study's own
    seeds is the variance of its cell means that the report uses; unit_sd: sd of one paired
    per-seed gain A - B; cell_sd and lack_of_fit_p: the cell offsets about the line and their F
    test (collapse.cell_lack_of_fit: the cell means against their own variance, on ``df_cells``
    = C - 2 and ``df_within`` degrees of freedom; cell_sd by the method of moments, floored at 0).
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


def measure_spread(runs: pd.DataFrame, arms: Sequence[str], metric: str = "test_acc",
                   baseline: str = BASELINE) -> Spread:
    """The spread of the contrast that pools ``arms`` (entry names as ``runs['regularizer']``
    holds them) against ``baseline``, from completed runs (see Spread): the moments and cell
    means of collapse.fixed_cell_gains, the lack of fit of collapse.cell_lack_of_fit."""
    nan = Spread(tuple(arms), *(math.nan,) * 4, 0, math.nan, 0, math.nan, 0, math.nan)
    if runs.empty:
        return nan
    cells = fixed_cell_gains(runs, list(arms), metric, baseline)
    df_within = int(cells.attrs.get("df", 0))
    if cells.empty or df_within < 1:
        return nan
    var_a, var_b, cov = (float(cells.attrs[name]) for name in ("var_arm", "var_base", "cov_pair"))
    unit_var = var_a + var_b - 2 * cov
    fit = cell_lack_of_fit(cells)
    cell_sd = math.sqrt(fit["offset_var"]) if np.isfinite(fit["offset_var"]) else math.nan
    return Spread(tuple(arms), math.sqrt(var_a), math.sqrt(var_b), cov,
                  math.sqrt(max(unit_var, 0.0)), df_within, cell_sd, len(cells) - 2,
                  fit["p_value"], len(cells), float(cells["arm_seeds"].mean()))


def cell_variance(spread: Spread, arm_seeds: int, baseline_seeds: int) -> float:
    """Var of one cell's gain estimate, v(s, b) = sd_arm^2/s + (sd_base^2 - 2 cov_pair)/b."""
    return (spread.sd_arm ** 2 / arm_seeds
            + (spread.sd_base ** 2 - 2 * spread.cov_pair) / baseline_seeds)


def drop_se(x: np.ndarray, spread: Spread, arm_seeds: int, baseline_seeds: int,
            cell_offsets: bool = True) -> float:
    """Standard error of the drop over the range of ``x`` (cells' log2 parameters), with the
    cell offsets as noise (random cells) or without them (fixed cells, or cells on the line)."""
    x = np.asarray(x, float)
    sxx = float(((x - x.mean()) ** 2).sum())
    variance = cell_variance(spread, arm_seeds, baseline_seeds) + (
        spread.cell_sd ** 2 if cell_offsets else 0.0)
    return math.sqrt(max(variance, 0.0) / sxx) * float(np.ptp(x))


def test_df(cells: str, num_cells: int, arm_seeds: int) -> int:
    """Degrees of freedom of the slope test: C - 2 (random cells) or the within-cell seed df
    C (s - 1) (fixed cells)."""
    return num_cells - 2 if cells == "random" else num_cells * (arm_seeds - 1)


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
                 cells: str = "random", cell_offsets: bool = True,
                 power: float = 0.8) -> Dict[str, float]:
    """Power of one design: ``superiority`` (a drop of claimed_drop detected at the strictest
    Holm threshold alpha / family_size: 1 for the declared primary contrast), ``equivalence``
    ("no trend" when there is none) and ``detectable_drop`` (collapse.detectable_drop: the drop
    detected with ``power``, the same definition as the collapse table's), with ``se`` of the
    drop and the test's ``df``. ``cells``: 'random' (with the measured offsets
    unless ``cell_offsets`` is False) or 'fixed' (offsets never enter)."""
    x = np.asarray(x, float)
    df = test_df(cells, x.size, arm_seeds)
    se = drop_se(x, spread, arm_seeds, baseline_seeds, cells == "random" and cell_offsets)
    level = alpha / family_size
    return {"se": se, "df": df, "superiority": superiority_power(claimed_drop, se, df, level),
            "equivalence": equivalence_power(claimed_drop, se, df, alpha),
            "detectable_drop": detectable_drop(se, df, level, power)}


def simulate_design(x: np.ndarray, spread: Spread, arm_seeds: int, baseline_seeds: int,
                    drop: float, claimed_drop: float, alpha: float, sweeps: int,
                    rng: np.random.Generator, family_size: int = 1,
                    cells: str = "random") -> Dict[str, float]:
    """Seeded check of design_power: ``sweeps`` studies drawn from the model (per-seed A and B
    with the measured covariance, cell offsets, a true drop ``drop`` linear in x), each decided by
    the report's own test (stats.slope_t_test or stats.fixed_cells_slope, with the within-cell
    variance estimated from the simulated seeds) and collapse_verdict. Returns each verdict's rate."""
    x = np.asarray(x, float)
    num_cells, s, b = x.size, arm_seeds, baseline_seeds
    true_gain = -drop * (x - x.min()) / np.ptp(x)
    cov = np.array([[spread.sd_arm ** 2, spread.cov_pair], [spread.cov_pair, spread.sd_base ** 2]])
    shared = rng.multivariate_normal([0, 0], cov, size=(sweeps, num_cells, s))
    # fixed cells: the estimand is these cells' own slope, so their offsets are part of the
    # truth; planting none makes it the planted drop
    offsets = rng.normal(0, spread.cell_sd if cells == "random" else 0.0, (sweeps, num_cells))
    arm = shared[..., 0] + (true_gain + offsets)[..., None]
    base = np.concatenate([shared[..., 1], rng.normal(0, spread.sd_base, (sweeps, num_cells, b - s))],
                          axis=-1)
    gains = arm.mean(-1) - base.mean(-1)
    df = test_df(cells, num_cells, s)
    if cells == "fixed":
        a_c, b_c = arm - arm.mean(-1, keepdims=True), base - base.mean(-1, keepdims=True)
        var_a = (a_c ** 2).sum((-1, -2)) / (num_cells * (s - 1))
        var_b = (b_c ** 2).sum((-1, -2)) / (num_cells * (b - 1))
        paired_b = base[..., :s] - base[..., :s].mean(-1, keepdims=True)
        cov_ab = (a_c * paired_b).sum((-1, -2)) / (num_cells * (s - 1))
        gain_var = var_a / s + (var_b - 2 * cov_ab) / b
    verdicts = []
    for sweep, cell_gain in enumerate(gains):
        fit = (slope_t_test(x, cell_gain, 1 - alpha) if cells == "random" else
               fixed_cells_slope(x, cell_gain, np.full(num_cells, gain_var[sweep]), df, 1 - alpha))
        p_adjusted = min(fit["p_value"] * family_size, 1.0)
        verdicts.append(collapse_verdict(
            fit["slope"], p_adjusted, -fit["high"] * np.ptp(x), -fit["low"] * np.ptp(x),
            fit["min_attainable_p"], alpha / family_size, claimed_drop, alpha).item())
    verdicts = np.array(verdicts)
    return {name: float((verdicts == name).mean())
            for name in ("gains shrink with capacity", "gains grow", "no trend", "inconclusive")}
