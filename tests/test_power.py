"""analysis/power.py (#42): simulate_design, the seeded Monte Carlo check of design_power, against
the verdicts an independent route gives on the same draws (scipy.stats.linregress for random
cells, the fixed-cells standard error written out here), against verdicts that must hold exactly,
and measure_spread's edge cases. Tens of sweeps per call: milliseconds each."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from korth_bench.analysis import power

VERDICTS = ("gains shrink with capacity", "gains grow", "no trend", "inconclusive")
X = np.log2([78_000, 175_000, 272_000, 370_000, 467_000])  # five cells, range ptp(X)


def spread(sd_arm=0.01, sd_base=0.008, cov_pair=0.00003, cell_sd=0.0):
    """A contrast's spread (fractions); only the four moments enter simulate_design."""
    return power.Spread(("so",), sd_arm, sd_base, cov_pair, math.nan, 10, cell_sd, 3, math.nan,
                        5, 4.0)


def draws(x, truth, s, b, drop, sweeps, seed, cells):
    """The model's draws in simulate_design's order from default_rng(seed): the same-seed pairs
    (A, B) ~ N(0, [[sd_arm^2, cov], [cov, sd_base^2]]) of shape [sweeps, C, s], the cell offsets
    N(0, cell_sd^2) (none for fixed cells), then the baseline's b - s extra runs N(0, sd_base^2).
    Cell c's true gain falls linearly by ``drop`` from the smallest capacity to the largest.
    Returns A [sweeps, C, s] and B [sweeps, C, b]."""
    rng = np.random.default_rng(seed)
    cov = [[truth.sd_arm ** 2, truth.cov_pair], [truth.cov_pair, truth.sd_base ** 2]]
    pairs = rng.multivariate_normal([0, 0], cov, size=(sweeps, len(x), s))
    offsets = rng.normal(0, truth.cell_sd if cells == "random" else 0.0, (sweeps, len(x)))
    extra = rng.normal(0, truth.sd_base, (sweeps, len(x), b - s))
    true_gain = -drop * (x - x.min()) / (x.max() - x.min())
    arm = pairs[..., 0] + (true_gain + offsets)[..., None]
    return arm, np.concatenate([pairs[..., 1], extra], axis=-1)


def verdict(slope, se, df, span, alpha, family_size, claimed_drop):
    """collapse_verdict's rule on one slope: Holm-adjusted two-sided t p-value min(m p, 1) <= alpha
    gives the slope's sign; otherwise "no trend" when the (1 - alpha) interval of the drop,
    -(slope +- t_{1-alpha/2, df} se) x span, lies inside (-claimed_drop, claimed_drop)."""
    p = 2 * scipy_stats.t.sf(abs(slope / se), df)
    if min(family_size * p, 1.0) <= alpha:
        return "gains shrink with capacity" if slope < 0 else "gains grow"
    half = scipy_stats.t.ppf(1 - alpha / 2, df) * se
    low, high = -(slope + half) * span, -(slope - half) * span
    return "no trend" if -claimed_drop < low and high < claimed_drop else "inconclusive"


def rates(found):
    return {name: found.count(name) / len(found) for name in VERDICTS}


def random_cells_rates(x, truth, s, b, drop, claimed_drop, alpha, sweeps, seed, family_size):
    """Each sweep's cell means g_c = mean_i A_ci - mean_j B_cj fitted by scipy.stats.linregress:
    slope and its se on C - 2 df (the residual spread of the cell means: offsets included)."""
    arm, base = draws(x, truth, s, b, drop, sweeps, seed, "random")
    found = []
    for gain in arm.mean(-1) - base.mean(-1):
        fit = scipy_stats.linregress(x, gain)
        found.append(verdict(fit.slope, fit.stderr, len(x) - 2, np.ptp(x), alpha, family_size,
                             claimed_drop))
    return rates(found)


def fixed_cells_rates(x, truth, s, b, drop, claimed_drop, alpha, sweeps, seed, family_size):
    """Each sweep's slope sum_c w_c g_c, w_c = (x_c - mean x) / Sxx, with se sqrt(V / Sxx): every
    cell has s arm and b baseline runs, so V = var_a / s + (var_b - 2 cov_ab) / b with var_a,
    var_b, cov_ab the per-cell sample (co)variances (ddof 1; cov over the s shared seeds)
    averaged over the cells, on C (s - 1) df."""
    arm, base = draws(x, truth, s, b, drop, sweeps, seed, "fixed")
    centred = x - x.mean()
    sxx = centred @ centred
    found = []
    for a, bb in zip(arm, base):
        var_a = np.mean([np.var(row, ddof=1) for row in a])
        var_b = np.mean([np.var(row, ddof=1) for row in bb])
        cov_ab = np.mean([np.cov(ra, rb[:s])[0, 1] for ra, rb in zip(a, bb)])
        gain = a.mean(-1) - bb.mean(-1)
        se = math.sqrt((var_a / s + (var_b - 2 * cov_ab) / b) / sxx)
        found.append(verdict(centred @ gain / sxx, se, len(x) * (s - 1), np.ptp(x), alpha,
                             family_size, claimed_drop))
    return rates(found)


# drop and claimed_drop near the design's se of the drop, so that the verdicts are mixed and move
# with the level, the Holm factor, the interval's confidence and the variance estimate.
@pytest.mark.parametrize("truth,s,b,drop,claimed_drop,alpha,family_size", [
    (spread(cell_sd=0.004), 4, 4, 0.0, 0.02, 0.1, 1),
    (spread(cell_sd=0.004), 3, 6, 0.012, 0.02, 0.05, 3),
    (spread(cell_sd=0.002, cov_pair=-0.00002), 5, 5, -0.01, 0.015, 0.2, 2),
])
def test_random_cells_verdicts_are_linregress_on_the_same_draws(truth, s, b, drop, claimed_drop,
                                                                alpha, family_size):
    """Random cells is the default; each rate equals the share of sweeps whose verdict
    linregress's slope test gives on the same seeded draws."""
    sweeps, seed = 60, 11
    got = power.simulate_design(X, truth, s, b, drop, claimed_drop, alpha, sweeps,
                                np.random.default_rng(seed), family_size=family_size)
    expected = random_cells_rates(X, truth, s, b, drop, claimed_drop, alpha, sweeps, seed,
                                  family_size)
    assert got == pytest.approx(expected, abs=1e-12)
    assert 0 < max(got.values()) < 1  # the draws are mixed: every rule above had work to do


@pytest.mark.parametrize("s,b,drop,claimed_drop,alpha,family_size", [
    (3, 6, 0.0, 0.012, 0.1, 1),
    (3, 7, 0.01, 0.02, 0.05, 2),
    (2, 2, -0.008, 0.015, 0.2, 1),
])
def test_fixed_cells_verdicts_use_the_pooled_within_cell_variance_of_the_same_draws(
        s, b, drop, claimed_drop, alpha, family_size):
    """Fixed cells: no offsets planted (cell_sd is ignored); the slope's se is sqrt(V / Sxx)
    with V from the simulated seeds, on C (s - 1) df."""
    truth = spread(cell_sd=0.05)
    sweeps, seed = 60, 5
    got = power.simulate_design(X, truth, s, b, drop, claimed_drop, alpha, sweeps,
                                np.random.default_rng(seed), family_size=family_size,
                                cells="fixed")
    expected = fixed_cells_rates(X, truth, s, b, drop, claimed_drop, alpha, sweeps, seed,
                                 family_size)
    assert got == pytest.approx(expected, abs=1e-12)
    assert 0 < max(got.values()) < 1


@pytest.mark.parametrize("cells", power.CELL_MODELS)
@pytest.mark.parametrize("drop,claimed_drop,only", [
    (0.5, 0.01, "gains shrink with capacity"),  # a drop of 50 pt against seed sd 0.1 pt
    (-0.5, 0.01, "gains grow"),
])
def test_a_planted_drop_far_beyond_the_noise_gives_one_verdict_in_every_sweep(cells, drop,
                                                                              claimed_drop, only):
    truth = spread(sd_arm=0.001, sd_base=0.001, cov_pair=0.0)
    got = power.simulate_design(X, truth, 3, 5, drop, claimed_drop, 0.05, 20,
                                np.random.default_rng(0), cells=cells)
    assert got == {name: float(name == only) for name in VERDICTS}


def test_fixed_cells_plant_no_offsets_where_random_cells_are_swamped_by_them():
    """Cell offsets of sd 1 (100 pt) against a 5 pt drop: in random cells they are the noise of
    the slope test (no verdict but "inconclusive" or, rarely, a sign); fixed cells take these
    cells' own line as the estimand, so the planted drop is the truth and is found every time."""
    truth = spread(sd_arm=0.001, sd_base=0.001, cov_pair=0.0, cell_sd=1.0)
    fixed = power.simulate_design(X, truth, 3, 3, 0.05, 0.01, 0.05, 20,
                                  np.random.default_rng(1), cells="fixed")
    assert fixed["gains shrink with capacity"] == 1.0
    random = power.simulate_design(X, truth, 3, 3, 0.05, 0.01, 0.05, 20,
                                   np.random.default_rng(1), cells="random")
    assert random["gains shrink with capacity"] < 0.5 and random["no trend"] == 0.0


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # 0 / 0 variances at s = 1
@pytest.mark.parametrize("x,s,cells", [(X[:2], 4, "random"), (X, 1, "fixed")])
def test_without_a_slope_test_every_sweep_is_inconclusive(x, s, cells):
    """Two cells leave C - 2 = 0 df for the random-cells test; one arm seed per cell leaves
    C (s - 1) = 0 within-cell df for the fixed-cells test: no test, so neither a sign nor
    "no trend", however large the drop. The rates still sum to 1."""
    got = power.simulate_design(x, spread(), s, max(s, 2), 0.5, 1.0, 0.05, 10,
                                np.random.default_rng(2), cells=cells)
    assert got == {name: float(name == "inconclusive") for name in VERDICTS}


def test_the_drops_standard_error_is_computed_in_double_precision_from_float32_capacities():
    """Capacities read as float32 (a Parquet column may hold them so): Sxx and ptp(x) are taken
    in float64, sqrt(v / Sxx) ptp(x) to 1e-12 of the hand value on the same (float32) x."""
    x32 = np.log2(np.array([78_000, 175_000, 272_000, 370_000, 467_000], np.float32))
    x = x32.astype(np.float64)
    truth = spread()
    v = 0.01 ** 2 / 4 + (0.008 ** 2 - 2 * 0.00003) / 8
    sxx = sum((value - sum(x) / 5) ** 2 for value in x)
    expected = math.sqrt(v / sxx) * (max(x) - min(x))
    assert power.drop_se(x32, truth, 4, 8, cell_offsets=False) == pytest.approx(expected,
                                                                                rel=1e-12)


def _runs(baseline, cells):
    """Runs of arm "so" and ``baseline``: cells maps depth -> [(seed, so, baseline), ...]."""
    rows = []
    for depth, values in cells.items():
        for seed, a, b in values:
            common = {"dataset": "d", "model": "resnet", "depth": depth, "width": 1,
                      "num_params": 1_000 * depth, "seed": seed}
            rows += [{**common, "regularizer": "so", "test_acc": a},
                     {**common, "regularizer": baseline, "test_acc": b}]
    return pd.DataFrame(rows)


def test_measure_spread_reads_the_named_baseline():
    """A baseline entry other than "none": its runs are the B side. Two cells at seeds 0-2,
    arm values 0.60, 0.62, 0.64 (sd 0.02) and baseline 0.50, 0.53, 0.56 (sd 0.03) in each, so
    cov_pair = 0.0006 and unit_sd = sqrt(4e-4 + 9e-4 - 1.2e-3) = 0.01."""
    values = [(0, 0.60, 0.50), (1, 0.62, 0.53), (2, 0.64, 0.56)]
    runs = _runs("weight_decay", {8: values, 14: values})
    got = power.measure_spread(runs, ["so"], baseline="weight_decay")
    assert (got.sd_arm, got.sd_base, got.cov_pair, got.unit_sd) == pytest.approx(
        (0.02, 0.03, 0.0006, 0.01), rel=1e-9)
    assert (got.df_within, got.n_cells, got.seeds_per_cell) == (4, 2, 3.0)
    missing = power.measure_spread(runs, ["so"])  # the default baseline "none" has no runs
    assert missing.n_cells == 0 and math.isnan(missing.sd_arm)


def test_one_cell_at_two_seeds_gives_its_seed_spread_on_one_df():
    """One within-cell degree of freedom is a spread: sd of (0.60, 0.64) is 0.04 / sqrt(2), of
    (0.50, 0.53) 0.03 / sqrt(2), their covariance (0.02 x 0.015 x 2) / 1 = 0.0006; one cell has
    no line, so no cell spread."""
    got = power.measure_spread(_runs("none", {8: [(0, 0.60, 0.50), (1, 0.64, 0.53)]}), ["so"])
    assert (got.sd_arm, got.sd_base, got.cov_pair) == pytest.approx(
        (0.04 / math.sqrt(2), 0.03 / math.sqrt(2), 0.0006), rel=1e-9)
    assert (got.df_within, got.n_cells) == (1, 1)
    assert math.isnan(got.cell_sd) and math.isnan(got.lack_of_fit_p)
