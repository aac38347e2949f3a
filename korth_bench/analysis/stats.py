"""Array statistics for small samples: intervals, exact tests, the capacity slope and its power.

Pure functions on numpy arrays (and pandas Series indexed by seed, for compare_runs); every
docstring gives the shapes. The rules they implement for 3-5 seeds per configuration are stated
in `korth_bench.analysis`, which applies them to the result tables and re-exports every name
here. Random state is an explicit argument (`rng`, a numpy Generator); nothing here formats,
reads files, or imports ray or torch.
"""
from __future__ import annotations

import itertools
import math
from typing import Dict, Sequence, Tuple

import numpy as np
import pandas as pd
from scipy import stats


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
