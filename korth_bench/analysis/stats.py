"""Array statistics for small samples: intervals, exact tests, the capacity slope and its fit.

Pure functions on numpy arrays (and pandas Series indexed by seed, for compare_runs); every
docstring gives the shapes. The rules they implement for 3-5 seeds per configuration are stated
in `korth_bench.analysis`, which applies them to the result tables and re-exports every name
here. Random state is an explicit argument (`rng`, a numpy Generator); nothing here formats,
reads files, or imports ray or torch.
"""
from __future__ import annotations

import functools
import itertools
import math
from typing import Dict, Sequence, Tuple

import numpy as np
import pandas as pd
from scipy import optimize, stats


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


def welch_greater_p(treated: np.ndarray, control: np.ndarray, shift: float) -> float:
    """One-sided Welch t test of H0: mean(treated) - mean(control) <= shift against '>'.

    Args:
        treated: shape [n1]; control: shape [n2] (independent runs, finite values).
    Returns:
        welch_greater_p_moments of the two samples' means, variances (ddof 1) and sizes.
    """
    moments = [(x.mean(), x.var(ddof=1), x.size) if x.size >= 2 else (math.nan, math.nan, x.size)
               for x in (np.asarray(treated, float), np.asarray(control, float))]
    return float(welch_greater_p_moments(*moments[0], *moments[1], shift))


def welch_greater_p_moments(mean1, var1, n1, mean2, var2, n2, shift) -> np.ndarray:
    """The one-sided Welch test of welch_greater_p from summary moments, elementwise.

    Args:
        mean*, var* (ddof 1), n*: arrays of one shape (or scalars), one test per element.
    Returns:
        P(T >= t), t = (mean1 - mean2 - shift) / se on the Welch-Satterthwaite df; NaN where
        n1 or n2 < 2, and NaN with no spread at all (accuracies on a few hundred images are
        quantized, so equal runs are a coincidence of rounding, not infinite evidence).
    """
    mean1, var1, n1, mean2, var2, n2 = (np.asarray(a, float) for a in
                                        (mean1, var1, n1, mean2, var2, n2))
    with np.errstate(invalid="ignore", divide="ignore"):
        v1, v2 = var1 / n1, var2 / n2
        se = np.sqrt(v1 + v2)
        df = (v1 + v2) ** 2 / (v1 ** 2 / (n1 - 1) + v2 ** 2 / (n2 - 1))
        p = stats.t.sf((mean1 - mean2 - shift) / se, df)
    return np.where((n1 >= 2) & (n2 >= 2) & (se > 0), p, math.nan)


def sign_flip_min_p(n: int) -> float:
    """Smallest p the exact two-sided sign-flip test can give with n differences: 2 / 2^n."""
    return min(1.0, 2.0 / 2 ** n) if n else math.nan


def permutation_min_p(n1: int, n2: int) -> float:
    """Smallest p the exact two-sided permutation test can give: the observed split and, when
    n1 == n2, its mirror, among the C(n1 + n2, n1) relabellings."""
    if not (n1 and n2):
        return math.nan
    return min(1.0, (2.0 if n1 == n2 else 1.0) / math.comb(n1 + n2, n1))


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


def pooled_baseline_gains(treated: np.ndarray, control: np.ndarray,
                          extra_control: np.ndarray) -> np.ndarray:
    """Per-seed gains that keep the pairing and let extra baseline seeds count.

    k matched pairs (t_s, c_s) and m baseline runs e_j at seeds the regularizer did not run:
    g_s = t_s - (k c_s + m mean(e)) / (k + m). Their mean is mean(t) - (mean of all k + m
    baseline runs), so every baseline run weighs the same, while each g_s still subtracts its
    own seed's baseline run (a seed effect shared by t_s and c_s cancels in k / (k + m) of it).
    With m = 0 they are the paired differences t_s - c_s.
    Args:
        treated, control: shape [k], matched by position; extra_control: shape [m].
    Returns:
        shape [k]; the g_s share the term mean(e), so they are independent only when m = 0
        (pooled_baseline_interval gives the variance of their mean).
    """
    k, m = treated.size, extra_control.size
    extra = extra_control.mean() if m else 0.0
    return treated - (k * control + m * extra) / (k + m)


def pooled_baseline_interval(treated: np.ndarray, control: np.ndarray,
                             extra_control: np.ndarray,
                             confidence: float = 0.95) -> Dict[str, float]:
    """The mean of pooled_baseline_gains with its interval (more baseline seeds than arm seeds).

    mean(g) = mean_s(t_s - k c_s / (k + m)) - m mean(e) / (k + m), two independent parts: the
    first has variance var(t - k c / (k + m)) / k, estimated from the k pairs (k - 1 df, so a
    seed effect shared within a pair is accounted for), the second m sigma_c^2 / (k + m)^2, with
    sigma_c^2 the variance of the m extra baseline runs (m - 1 df: independent of the first
    estimate, as the Welch-Satterthwaite df assumes; of all k + m baseline runs when m = 1).
    The interval is Student-t on the Welch-Satterthwaite df of the two parts; in simulation
    (3 arm seeds, 6 baseline seeds, normal runs) it covers 95 % and is about 0.74 times as wide
    as the paired interval on the same data (benchmarks/bench_verdicts.py).
    Args:
        treated, control: shape [k >= 2], matched by seed; extra_control: shape [m >= 1].
    Returns:
        mean, sd (of one unit t - k c / (k + m)), low, high, df, se.
    """
    k, m = treated.size, extra_control.size
    units = pooled_baseline_gains(treated, control, extra_control)
    mean = float(units.mean())
    paired_part = units.var(ddof=1) / k
    spread = extra_control if m >= 2 else np.concatenate([control, extra_control])
    extra_part = m * spread.var(ddof=1) / (k + m) ** 2
    se = math.sqrt(paired_part + extra_part)
    terms = paired_part ** 2 / (k - 1) + extra_part ** 2 / (spread.size - 1)
    df = (paired_part + extra_part) ** 2 / terms if terms > 0 else k - 1
    half = stats.t.ppf(0.5 + confidence / 2, df) * se
    return {"mean": mean, "sd": float(math.sqrt(units.var(ddof=1))), "low": mean - half,
            "high": mean + half, "df": df, "se": se}


def compare_runs(treated: pd.Series, control: pd.Series, rng: np.random.Generator,
                 confidence: float = 0.95) -> Dict[str, object]:
    """Gain of treated over control runs, paired by seed where at least two seeds match.

    Args:
        treated, control: one value per run, indexed by seed (NaN dropped; repeated seeds are
            averaged first).
    Returns:
        mean, sd, low, high (t interval: paired t on the matching seeds, else Welch on all runs;
        when the control also ran at seeds the treated side did not, and every treated seed has
        its control, pooled_baseline_interval: the pairs plus the extra baseline seeds),
        p_value (the two-sided t test of that interval: they agree, p <= 1 - confidence exactly
        when the interval excludes 0), p_exact (the distribution-free check: exact sign-flip on
        the matched pairs if paired, permutation otherwise) and min_attainable_p (the smallest
        p_exact these counts allow: 0.25 with 3 paired seeds), pairing ('paired', 'paired + m
        baseline seeds', 'unpaired'), n (matched pairs, or n1 + n2 runs), n_treated, n_control.
    """
    treated = pd.to_numeric(treated, errors="coerce").dropna().groupby(level=0).mean()
    control = pd.to_numeric(control, errors="coerce").dropna().groupby(level=0).mean()
    common = treated.index.intersection(control.index)
    counts = {"n_treated": treated.size, "n_control": control.size}
    extra = control.index.difference(treated.index)
    if common.size >= 2 and common.size == treated.size and extra.size:
        pairs = (treated[common].to_numpy(float), control[common].to_numpy(float))
        estimate = pooled_baseline_interval(*pairs, control[extra].to_numpy(float), confidence)
        return {**{k: estimate[k] for k in ("mean", "sd", "low", "high")}, "n": common.size,
                "p_value": _t_p(estimate["mean"], estimate["se"], estimate["df"]),
                "p_exact": sign_flip_p_value(pairs[0] - pairs[1], rng),
                "min_attainable_p": sign_flip_min_p(common.size),
                "pairing": f"paired + {extra.size} baseline seeds", **counts}
    if common.size >= 2:
        differences = (treated[common] - control[common]).to_numpy(float)
        estimate = t_interval(differences, confidence)
        se = estimate["sd"] / math.sqrt(differences.size)
        return {**estimate, "p_value": _t_p(estimate["mean"], se, differences.size - 1),
                "p_exact": sign_flip_p_value(differences, rng),
                "min_attainable_p": sign_flip_min_p(differences.size), "pairing": "paired",
                **counts}
    x, y = treated.to_numpy(float), control.to_numpy(float)
    estimate = welch_interval(x, y, confidence)
    if x.size >= 2 and y.size >= 2:
        se = math.sqrt(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size)
        p_value = _t_p(estimate["mean"], se, estimate["df"])
    else:
        p_value = math.nan
    return {"mean": estimate["mean"], "sd": estimate["sd"], "low": estimate["low"],
            "high": estimate["high"], "n": x.size + y.size, "p_value": p_value,
            "p_exact": permutation_p_value(x, y, rng) if x.size and y.size else math.nan,
            "min_attainable_p": permutation_min_p(x.size, y.size),
            "pairing": "unpaired", **counts}


def _t_p(mean: float, se: float, df: float) -> float:
    """Two-sided p of a zero mean from a t statistic mean / se on df degrees of freedom; NaN
    (no test) when se is 0: differences that agree exactly, as quantized accuracies on a small
    evaluation set do at 2-3 seeds, are rounding, and a t test would call them certain."""
    if not (df >= 1 and np.isfinite(se)) or se == 0:
        return math.nan
    return float(2 * stats.t.sf(abs(mean) / se, df))


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


def slope_t_test(x: np.ndarray, y: np.ndarray, confidence: float = 0.95) -> Dict[str, float]:
    """Least-squares slope of cell means on capacity with its t test and interval.

    Each cell is one observation: y_c = a + b x_c + e_c, e_c iid normal, so a per-cell offset
    (an architecture-specific effect) is part of e_c and widens the interval instead of reading
    as a trend. se(b) = s / sqrt(sum (x_c - mean x)^2), s^2 = residual sum of squares / (C - 2).
    Args:
        x: shape [C] capacity of each cell; y: shape [C] mean gain of each cell.
    Returns:
        slope, se, df (C - 2), p_value (two-sided t), low, high (t interval at ``confidence``),
        min_attainable_p (0 when df >= 1; 1 when there is no test: fewer than 3 cells or a
        constant x). NaN fields where there is no test.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    centred = x - x.mean()
    sxx = float(centred @ centred)
    df = x.size - 2
    slope = float(centred @ y / sxx) if sxx > 0 else math.nan
    nan = {"slope": slope, "se": math.nan, "df": max(df, 0), "p_value": math.nan,
           "low": math.nan, "high": math.nan, "min_attainable_p": 1.0}
    if df < 1 or not sxx > 0:
        return nan
    residual = y - y.mean() - slope * centred
    se = math.sqrt(float(residual @ residual) / df / sxx)
    half = stats.t.ppf(0.5 + confidence / 2, df) * se
    return {"slope": slope, "se": se, "df": df, "p_value": _t_p(slope, se, df),
            "low": slope - half, "high": slope + half, "min_attainable_p": 0.0}


def detectable_drop(x: np.ndarray, unit_sd: float, units_per_cell: float, level: float,
                    power: float = 0.8) -> float:
    """The drop over the capacity range that the slope test detects with probability ``power``.

    The test of slope_t_test on C cell means, each the mean of ``units_per_cell`` independent
    per-seed gains of sd ``unit_sd`` (so a cell mean has sd unit_sd / sqrt(units_per_cell) when
    the cells carry no offsets of their own): under a true slope b, t = b_hat / se(b_hat) is
    noncentral t on C - 2 df with noncentrality b sqrt(Sxx) / (unit_sd / sqrt(units_per_cell)).
    The returned drop is |b| x range(x) at which the two-sided test at ``level`` (alpha, or a
    Holm threshold alpha / m) rejects with probability ``power``. Cell offsets add to the
    residual sd, so this is the smallest drop any such design can claim to detect.
    Args:
        x: shape [C] capacity of each cell (log2 parameters); unit_sd: sd of one per-seed gain
            (a paired difference of two runs: sqrt(2) x the run-to-run sd).
    Returns:
        the drop in the units of ``unit_sd``; NaN with fewer than 3 cells or no spread in x.
    """
    x = np.asarray(x, float)
    centred = x - x.mean()
    sxx, df = float(centred @ centred), x.size - 2
    if df < 1 or not sxx > 0 or not unit_sd > 0 or not units_per_cell > 0:
        return math.nan
    se = unit_sd / math.sqrt(units_per_cell) / math.sqrt(sxx)
    return detectable_slope(se, df, level, power) * float(np.ptp(x))


def detectable_slope(se: float, df: float, level: float, power: float = 0.8) -> float:
    """The |slope| a two-sided t test at ``level`` on ``df`` degrees of freedom rejects with
    probability ``power`` when the slope's standard error is ``se`` (noncentral t)."""
    if not se > 0 or not df >= 1:
        return math.nan
    return float(_power_noncentrality(df, float(level), float(power)) * se)


@functools.lru_cache(maxsize=256)
def _power_noncentrality(df: float, level: float, power: float) -> float:
    """The noncentrality at which a two-sided t test on ``df`` degrees of freedom at ``level``
    rejects with probability ``power`` (cached: it depends on the design only)."""
    critical = stats.t.ppf(1 - level / 2, df)

    def shortfall(ncp: float) -> float:
        # the far tail underflows to NaN in scipy's nct for large ncp: it is 0 there
        tails = np.nan_to_num([stats.nct.sf(critical, df, ncp), stats.nct.cdf(-critical, df, ncp)])
        return float(tails.sum()) - power

    upper = critical + 10.0
    while shortfall(upper) < 0:
        upper *= 2
    return optimize.brentq(shortfall, 0.0, upper)


def cell_means_lack_of_fit(x: np.ndarray, gain: np.ndarray, gain_var: np.ndarray,
                           df: float) -> Dict[str, float]:
    """F test of C cell means about their line, against the variance of each cell mean: the one
    lack-of-fit computation (the collapse table, ``korth-bench plan`` and lack_of_fit_p use it).

    Under "the cells sit on a line" the cell means are g_c = a + b x_c + e_c with e_c of variance
    V_c (``gain_var``: the variance of the cell's mean from the seeds within it, estimated on
    ``df`` degrees of freedom). The statistic is the residual sum of squares of the weighted
    (1 / V_c) least-squares line, each residual over its V_c, per lack-of-fit degree of freedom:

        F = [sum_c (g_c - ghat_c)^2 / V_c] / (C - 2),   F ~ F(C - 2, df) under the null

    (with every V_c equal, as in a balanced design, it is the residual mean square of the OLS
    line over V). A small p says the cells differ by more than a line and seed noise explain.
    ``offset_var`` is the method-of-moments variance of the cell offsets about the (unweighted)
    line: residual mean square minus the mean V_c, floored at 0.
    Args:
        x: shape [C] capacity of each cell; gain: shape [C] cell mean gains; gain_var: shape [C]
            the variance of each cell mean (not of one seed's gain); df: its degrees of freedom.
    Returns:
        f, p_value, df_lof (C - 2), df, offset_var; NaN p (and f) with fewer than 3 cells, a
        constant x, df < 1 or a V_c that is not > 0.
    """
    x, gain, gain_var = (np.asarray(v, float) for v in (x, gain, gain_var))
    df_lof = x.size - 2
    nan = {"f": math.nan, "p_value": math.nan, "df_lof": max(df_lof, 0), "df": df,
           "offset_var": math.nan}
    if (df_lof < 1 or not np.ptp(x) > 0 or not df >= 1 or not np.all(gain_var > 0)
            or not np.isfinite(gain).all()):
        return nan
    weights = 1.0 / gain_var
    x_w = float(weights @ x / weights.sum())
    g_w = float(weights @ gain / weights.sum())
    slope_w = float(weights * (x - x_w) @ (gain - g_w) / (weights * (x - x_w) @ (x - x_w)))
    residual_w = gain - g_w - slope_w * (x - x_w)
    f = float(weights @ residual_w ** 2) / df_lof
    centred = x - x.mean()
    residual = gain - gain.mean() - float(centred @ gain / (centred @ centred)) * centred
    offset_var = max(float(residual @ residual) / df_lof - float(gain_var.mean()), 0.0)
    return {"f": f, "p_value": float(stats.f.sf(f, df_lof, df)), "df_lof": df_lof, "df": df,
            "offset_var": offset_var}


def lack_of_fit_p(x: np.ndarray, y: np.ndarray, cells: np.ndarray) -> float:
    """cell_means_lack_of_fit for independent units: each cell's mean of its units, with the
    variance s^2 / n_c of that mean (s the within-cell sd pooled over cells, N - C df).

    F = [sum_c n_c (ybar_c - yhat_c)^2 / (C - 2)] / s^2, yhat the least-squares line of the
    units. Only for units that are independent within a cell: per-seed gains that share extra
    baseline runs (stats.pooled_baseline_gains) understate the variance of their cell's mean, so
    the collapse table computes the variance of each cell mean itself (collapse.cell_lack_of_fit).
    Args:
        x: shape [N] capacity of each unit's cell; y: shape [N]; cells: shape [N] labels.
    Returns:
        the F p-value; NaN with fewer than 3 cells, no within-cell degrees of freedom or no
        within-cell spread.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    labels = np.unique(cells)
    within, df_within = pooled_within_sd(y, cells)
    if labels.size < 3 or df_within < 1 or not within > 0:
        return math.nan
    counts = np.array([np.sum(cells == c) for c in labels], float)
    return cell_means_lack_of_fit(np.array([x[cells == c][0] for c in labels]),
                                  np.array([y[cells == c].mean() for c in labels]),
                                  float(within) ** 2 / counts, df_within)["p_value"]


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


def fixed_cells_slope(x: np.ndarray, gain: np.ndarray, gain_var: np.ndarray, df: float,
                      confidence: float = 0.95) -> Dict[str, float]:
    """Least-squares slope of C cell means on capacity with the cells fixed.

    The estimand is the slope of *these* cells' true mean gains (the architectures named in
    advance), b = sum_c w_c g_c with w_c = (x_c - mean x) / Sxx, so its variance is
    sum_c w_c^2 Var(g_c), each Var(g_c) estimated from the seeds within the cell (``gain_var``,
    on ``df`` degrees of freedom pooled over cells). Cell offsets about the line are part of the
    estimand, not noise: lack_of_fit_p reports them beside it. slope_t_test is the random-cells
    version, whose inference reaches architectures beyond these.
    Args:
        x: shape [C] capacity of each cell; gain: shape [C] cell mean gains; gain_var: shape [C]
            estimated variance of each cell mean.
    Returns:
        the fields of slope_t_test (df = ``df``).
    """
    x, gain, gain_var = (np.asarray(v, float) for v in (x, gain, gain_var))
    centred = x - x.mean()
    sxx = float(centred @ centred)
    if x.size < 2 or not sxx > 0 or not df >= 1:
        return {"slope": math.nan, "se": math.nan, "df": df, "p_value": math.nan,
                "low": math.nan, "high": math.nan, "min_attainable_p": 1.0}
    weights = centred / sxx
    slope = float(weights @ gain)
    se = math.sqrt(max(float(weights ** 2 @ gain_var), 0.0))
    half = stats.t.ppf(0.5 + confidence / 2, df) * se
    return {"slope": slope, "se": se, "df": df, "p_value": _t_p(slope, se, df),
            "low": slope - half, "high": slope + half, "min_attainable_p": 0.0}
