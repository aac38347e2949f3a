"""korth_bench.analysis.stats against independent references (issue 42, `make mutation`, group
`stats`): scipy.stats (t, nct, f, norm, ttest_ind, ttest_1samp, linregress, spearmanr's ranks),
least squares by numpy.linalg, exact enumeration of sign flips and relabellings with itertools on
exact fractions, Holm's step-down procedure as written, and small cases worked by hand. Every test
takes milliseconds: no simulation beyond a Monte Carlo p of 9,999 draws."""
import contextlib
import itertools
import math
import warnings
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from korth_bench.analysis import stats

INTERVAL_KEYS = {"mean", "sd", "low", "high"}


@contextlib.contextmanager
def no_warnings():
    """Any warning (numpy's 'mean of empty slice', 'invalid value', 'divide by zero') fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def exact(values):
    """The decimals as written, as exact fractions (0.1 is 1/10, not its binary neighbour)."""
    return [Fraction(str(v)) for v in values]


def sign_flip_by_enumeration(differences):
    """#{s in {-1, 1}^n: |sum s_i d_i| >= |sum d_i|} / 2^n, in exact arithmetic."""
    d = exact(differences)
    observed = abs(sum(d))
    patterns = list(itertools.product((-1, 1), repeat=len(d)))
    return Fraction(sum(abs(sum(s * v for s, v in zip(signs, d))) >= observed
                        for signs in patterns), len(patterns))


def permutation_by_enumeration(treated, control):
    """#{relabellings: |mean(A) - mean(B)| >= observed} / C(n, n1), in exact arithmetic."""
    pooled = exact([*treated, *control])
    n, n1 = len(pooled), len(treated)

    def gap(chosen):
        a = [pooled[i] for i in chosen]
        b = [pooled[i] for i in range(n) if i not in chosen]
        return abs(sum(a) / len(a) - sum(b) / len(b))

    observed = gap(range(n1))
    splits = list(itertools.combinations(range(n), n1))
    return Fraction(sum(gap(chosen) >= observed for chosen in splits), len(splits))


def holm_rejects(p_values, alpha):
    """Holm's step-down procedure at alpha: order the m finite p-values, reject H_(1), H_(2), ...
    while p_(j) <= alpha / (m - j + 1); stop at the first that fails. NaN is never rejected."""
    finite = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    rejected = set()
    for j, (p, index) in enumerate(sorted(finite), start=1):
        if p > alpha / (len(finite) - j + 1):
            break
        rejected.add(index)
    return rejected


def ols(x, y):
    """Intercept, slope and residuals of y on [1, x] by numpy.linalg.lstsq."""
    design = np.column_stack([np.ones(len(x)), x])
    (intercept, slope), *_ = np.linalg.lstsq(design, y, rcond=None)
    return intercept, slope, y - design @ [intercept, slope]


def assert_record(found, expected, rel=1e-9):
    """The same fields; text fields equal, numbers within rel."""
    assert set(found) == set(expected)
    text = {key for key, value in expected.items() if isinstance(value, str)}
    assert {key: found[key] for key in text} == {key: expected[key] for key in text}
    numbers = {key: found[key] for key in found if key not in text}
    assert numbers == pytest.approx({key: expected[key] for key in numbers}, rel=rel)


def t_power(ncp, df, level):
    """Rejection probability of the two-sided t test at level with noncentrality ncp."""
    critical = sp.t.ppf(1 - level / 2, df)
    return sp.nct.sf(critical, df, ncp) + sp.nct.cdf(-critical, df, ncp)


# ---------------------------------------------------------------- t_interval, welch_interval

@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_t_interval_is_the_student_t_interval_on_n_minus_1_df(confidence):
    values = np.array([0.3, 0.1, 0.7, 0.4, 0.9])
    found = (stats.t_interval(values) if confidence == 0.95
             else stats.t_interval(values, confidence))
    low, high = sp.t.interval(confidence, 4, loc=values.mean(), scale=sp.sem(values))
    assert found == pytest.approx({"mean": 0.48, "sd": np.std(values, ddof=1), "low": low,
                                   "high": high, "n": 5}, rel=1e-12)


def test_t_interval_drops_nan_and_missing_values_and_needs_two():
    # [1, 2, 3]: mean 2, sd 1, half-width t_{0.975, 2} / sqrt(3)
    found = stats.t_interval([1.0, None, 2.0, np.nan, 3.0, np.inf])
    half = 4.302652729911275 / math.sqrt(3)
    assert found == pytest.approx({"mean": 2.0, "sd": 1.0, "low": 2 - half, "high": 2 + half,
                                   "n": 3})
    two = stats.t_interval(np.array([1.0, 2.0]))  # two values: 1 df, a (wide) interval
    assert two["n"] == 2 and two["high"] - two["low"] == pytest.approx(
        2 * 12.706204736174694 * math.sqrt(0.5) / math.sqrt(2))
    with no_warnings():
        one = stats.t_interval(np.array([5.0, np.nan]))
        empty = stats.t_interval(np.array([np.nan]))
    assert one["mean"] == 5.0 and one["n"] == 1
    assert all(math.isnan(one[k]) for k in ("sd", "low", "high"))
    assert empty["n"] == 0 and all(math.isnan(empty[k]) for k in INTERVAL_KEYS)
    assert set(one) == set(empty) == INTERVAL_KEYS | {"n"}


@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_welch_interval_is_scipys_welch_t_interval(confidence):
    treated, control = np.array([0.81, 0.84, 0.80, 0.86]), np.array([0.79, 0.80, 0.78])
    found = (stats.welch_interval(treated, control) if confidence == 0.95
             else stats.welch_interval(treated, control, confidence))
    reference = sp.ttest_ind(treated, control, equal_var=False)
    low, high = reference.confidence_interval(confidence)
    assert found == pytest.approx({
        "mean": treated.mean() - control.mean(), "low": low, "high": high, "df": reference.df,
        "sd": math.sqrt(np.var(treated, ddof=1) + np.var(control, ddof=1))}, rel=1e-10)


def test_welch_interval_without_spread_or_runs():
    # no spread on either side: se 0, the interval is the point, on n1 + n2 - 2 df
    with no_warnings():
        flat = stats.welch_interval(np.array([0.6, 0.6, 0.6]), np.array([0.5, 0.5]))
    assert flat == pytest.approx({"mean": 0.1, "sd": 0.0, "low": 0.1, "high": 0.1, "df": 3})
    two = stats.welch_interval(np.array([1.0, 2.0]), np.array([0.0, 1.0]))  # 2 and 2: a test
    assert two["low"] < two["mean"] == 1.0 < two["high"]
    assert two["df"] == pytest.approx(sp.ttest_ind([1.0, 2.0], [0.0, 1.0], equal_var=False).df)
    with no_warnings():
        single = stats.welch_interval(np.array([0.7]), np.array([0.5, 0.6, 0.4]))
        empty = stats.welch_interval(np.array([]), np.array([0.5, 0.6]))
    assert single["mean"] == pytest.approx(0.2)
    assert all(math.isnan(single[k]) for k in ("sd", "low", "high", "df"))
    assert all(math.isnan(empty[k]) for k in ("mean", "sd", "low", "high", "df"))
    assert set(single) == INTERVAL_KEYS | {"df"}


# ---------------------------------------------------------------- one-sided Welch test

@pytest.mark.parametrize("shift", [0.0, 0.01, -0.02])
def test_welch_greater_p_is_scipys_one_sided_welch_test_of_a_shifted_null(shift):
    """H0: mean(t) - mean(c) <= shift is the ordinary one-sided test of t - shift against c."""
    treated, control = [0.81, 0.84, 0.80, 0.86], [0.79, 0.80, 0.78]
    expected = sp.ttest_ind(np.array(treated) - shift, control, equal_var=False,
                            alternative="greater").pvalue
    assert stats.welch_greater_p(treated, control, shift) == pytest.approx(expected, rel=1e-10)
    assert isinstance(stats.welch_greater_p(treated, control, shift), float)


def test_welch_greater_p_needs_two_runs_a_side_and_some_spread():
    two = stats.welch_greater_p(np.array([1.0, 2.0]), np.array([0.0, 0.5]), 0.0)
    assert two == pytest.approx(sp.ttest_ind([1.0, 2.0], [0.0, 0.5], equal_var=False,
                                             alternative="greater").pvalue)
    with no_warnings():
        for treated, control in (([0.9], [0.5, 0.6]), ([0.5, 0.6], [0.9]),
                                 ([0.6, 0.6], [0.5, 0.5])):  # quantized equal runs: no evidence
            assert math.isnan(stats.welch_greater_p(np.array(treated), np.array(control), 0.0))


def test_welch_greater_p_moments_tests_every_element_from_summary_moments():
    mean1, sd1, n1 = np.array([0.82, 0.80, 0.85]), np.array([0.02, 0.01, 0.03]), np.array([4, 3, 6])
    mean2, sd2, n2 = np.array([0.80, 0.81, 0.80]), np.array([0.01, 0.02, 0.01]), np.array([3, 5, 2])
    found = stats.welch_greater_p_moments(mean1, sd1 ** 2, n1, mean2, sd2 ** 2, n2, 0.005)
    expected = [sp.ttest_ind_from_stats(a - 0.005, s, n, b, r, k, equal_var=False,
                                        alternative="greater").pvalue
                for a, s, n, b, r, k in zip(mean1, sd1, n1, mean2, sd2, n2)]
    np.testing.assert_allclose(found, expected, rtol=1e-10)
    assert found.shape == (3,)
    # NaN where a side has fewer than two runs or no run varies, with no warning on the way
    with no_warnings():
        found = stats.welch_greater_p_moments([0.9, 0.9, 0.9, 0.9], [0.01, 0.01, 0.0, 0.01],
                                              [1, 3, 3, 2], [0.8, 0.8, 0.8, 0.8],
                                              [0.01, 0.01, 0.0, 0.01], [3, 1, 3, 2], 0.0)
    assert np.isnan(found[:3]).all()
    assert found[3] == pytest.approx(sp.ttest_ind_from_stats(0.9, 0.1, 2, 0.8, 0.1, 2,
                                                             equal_var=False,
                                                             alternative="greater").pvalue)


# ---------------------------------------------------------------- a missing value

X4, Y4, V4 = [0.0, 1.0, 2.0, 3.0], [0.1, 0.3, 0.2, 0.5], [0.01, 0.01, 0.02, 0.01]


@pytest.mark.parametrize("function, args, field", [
    (stats.welch_greater_p, ([0.8, None, 0.9], [0.7, 0.6, 0.65], 0.0), None),
    (stats.welch_greater_p, ([0.8, 0.85, 0.9], [0.7, None, 0.65], 0.0), None),
    (stats.welch_greater_p_moments, ([0.8, None], [0.01, 0.01], [3, 3], [0.7, 0.7],
                                     [0.01, 0.01], [3, 3], 0.0), None),
    (stats.slope_t_test, ([0.0, None, 2.0, 3.0], Y4), "slope"),
    (stats.slope_t_test, (X4, [0.1, None, 0.2, 0.5]), "slope"),
    (stats.fixed_cells_slope, (X4, [0.1, None, 0.2, 0.5], V4, 6), "slope"),
    (stats.cell_means_lack_of_fit, (X4, [0.1, None, 0.2, 0.5], V4, 6), "p_value"),
    (stats.lack_of_fit_p, (np.repeat(X4, 2), [0.1, 0.2, None, 0.3, 0.2, 0.1, 0.5, 0.4],
                           np.repeat([0, 1, 2, 3], 2)), None),
    (stats.detectable_drop, ([0.0, None, 2.0, 3.0], 0.004, 3, 0.05), None),
])
def test_a_missing_value_from_an_object_column_reads_as_nan(function, args, field):
    """A table column with a missing entry is of object dtype, None for the entry: the arrays
    are read as floats, so the result is NaN (where the missing value enters it), not an error."""
    args = [pd.Series(a, dtype=object) if isinstance(a, list) else a for a in args]
    found = function(*args)
    found = found[field] if field else found
    assert np.isnan(found).any()
    if function is stats.welch_greater_p_moments:  # elementwise: the complete element is tested
        assert np.isnan(found[1]) and found[0] == pytest.approx(sp.ttest_ind_from_stats(
            0.8, 0.1, 3, 0.7, 0.1, 3, equal_var=False, alternative="greater").pvalue)


# ---------------------------------------------------------------- exact tests

@pytest.mark.parametrize("n, expected", [(1, 1.0), (2, 0.5), (3, 0.25), (5, 1 / 16)])
def test_sign_flip_min_p_is_that_of_differences_all_of_one_sign(n, expected):
    # all-positive distinct differences: only the all-plus and all-minus patterns are as extreme
    differences = [0.1 * (i + 1) for i in range(n)]
    assert stats.sign_flip_min_p(n) == pytest.approx(expected, rel=1e-12)
    assert stats.sign_flip_min_p(n) == pytest.approx(float(sign_flip_by_enumeration(differences)))


def test_sign_flip_min_p_of_no_differences_is_nan():
    assert math.isnan(stats.sign_flip_min_p(0))


@pytest.mark.parametrize("n1, n2, expected", [(1, 1, 1.0), (3, 3, 2 / 20), (2, 3, 1 / 10),
                                              (3, 2, 1 / 10), (1, 4, 1 / 5), (4, 4, 2 / 70)])
def test_permutation_min_p_is_that_of_fully_separated_samples(n1, n2, expected):
    # treated all above control: the observed split (and its mirror when n1 == n2) is extreme
    treated, control = [10.0 + i for i in range(n1)], [float(i) for i in range(n2)]
    assert stats.permutation_min_p(n1, n2) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(float(permutation_by_enumeration(treated, control)))


@pytest.mark.parametrize("n1, n2", [(0, 3), (3, 0), (0, 0)])
def test_permutation_min_p_needs_both_samples(n1, n2):
    assert math.isnan(stats.permutation_min_p(n1, n2))


@pytest.mark.parametrize("differences", [
    [0.01, 0.02, 0.03],               # one sign: 2/8
    [0.01, -0.01],                    # zero mean: every pattern as extreme
    [0.9, 0.2, 0.5, 0.3],             # 2/16; the float sum of the all-plus pattern rounds below
    [0.5, 0.5, -1.0, 0.9],            # ties: flipping {0.5, 0.5, -1} keeps |sum|
    [0.8, 0.9, -1.7, 0.3],
    [0.3, -0.1, 0.5, 0.2, 0.4, -0.2, 0.6],
    [0.0, 0.0, 0.0],                  # no difference at all: p = 1
    [-0.2],
])
def test_sign_flip_p_value_is_exact_enumeration_ties_included(differences):
    rng = np.random.default_rng(0)
    found = stats.sign_flip_p_value(np.array(differences), rng)
    assert found == pytest.approx(float(sign_flip_by_enumeration(differences)), rel=1e-12)


def test_sign_flip_p_value_of_no_differences_is_nan():
    assert math.isnan(stats.sign_flip_p_value(np.array([]), np.random.default_rng(0)))


def test_sign_flip_p_value_enumerates_up_to_max_exact_then_draws():
    rng = np.random.default_rng(1)
    differences = np.array([0.01, 0.02, 0.03])
    # at n == max_exact: exact 2/8; a Monte Carlo p of 9 draws is a multiple of 1/10
    assert stats.sign_flip_p_value(differences, rng, max_exact=3, n_resamples=9) == 0.25
    # above it: (1 + draws as extreme) / (1 + n_resamples); zero differences: every draw is
    drawn = stats.sign_flip_p_value(np.zeros(5), rng, max_exact=4, n_resamples=99)
    assert drawn == 1.0
    # by default 16 differences are enumerated (p = 2 / 2^16) and 17 drawn (9,999 draws, so a
    # multiple of 1 / 10,000 at least 1 / 10,000)
    assert stats.sign_flip_p_value(np.arange(1.0, 17.0), rng) == pytest.approx(2 / 2 ** 16)
    drawn = stats.sign_flip_p_value(np.arange(1.0, 18.0), rng)
    assert 1e-4 <= drawn < 1e-3 and drawn * 10_000 == pytest.approx(round(drawn * 10_000))


def test_sign_flip_monte_carlo_p_estimates_the_exact_p():
    differences = [0.3, -0.1, 0.5, 0.2, 0.4, -0.2, 0.6, 0.1]
    truth = float(sign_flip_by_enumeration(differences))  # 20 / 256
    drawn = stats.sign_flip_p_value(np.array(differences), np.random.default_rng(2), max_exact=4)
    assert abs(drawn - truth) <= 4 * math.sqrt(truth * (1 - truth) / 9999)


@pytest.mark.parametrize("treated, control", [
    ([4.0, 5.0, 6.0], [1.0, 2.0, 3.0]),           # fully separated, 3 vs 3: 2/20
    ([0.1, 0.2], [0.3, 0.0]),                     # equal means: 1
    ([0.3, 0.6], [0.1, 0.2]),
    ([0.5, 0.5, 0.7], [0.5, 0.6, 0.4, 0.5]),      # ties across the samples
    ([0.7], [0.5, 0.6, 0.4]),
    ([0.2, 0.9, 0.4, 0.4], [0.1, 0.3]),
    ([0.5, 0.5], [0.5, 0.5, 0.5]),                # no difference at all: p = 1
    ([1.0, 3.0], [2.0, 2.0]),                     # equal means, exactly
])
def test_permutation_p_value_is_exact_enumeration_ties_included(treated, control):
    found = stats.permutation_p_value(np.array(treated), np.array(control),
                                      np.random.default_rng(0))
    assert found == pytest.approx(float(permutation_by_enumeration(treated, control)), rel=1e-12)


@pytest.mark.parametrize("treated, control", [([], [0.5, 0.6]), ([0.5, 0.6], [])])
def test_permutation_p_value_needs_both_samples(treated, control):
    with no_warnings():
        assert math.isnan(stats.permutation_p_value(np.array(treated), np.array(control),
                                                    np.random.default_rng(0)))


def test_permutation_p_value_enumerates_up_to_max_exact_then_draws():
    rng = np.random.default_rng(3)
    treated, control = np.array([5.0, 6.0, 7.0, 8.0]), np.array([1.0, 2.0, 3.0, 4.0])
    # C(8, 4) = 70 relabellings == max_exact: exact 2/70; 9 draws would give a multiple of 1/10
    assert stats.permutation_p_value(treated, control, rng, max_exact=70,
                                     n_resamples=9) == pytest.approx(2 / 70, rel=1e-12)
    assert stats.permutation_p_value(np.full(3, 0.5), np.full(4, 0.5), rng, max_exact=10,
                                     n_resamples=99) == 1.0  # every draw as extreme
    # by default 10 vs 10 (184,756 relabellings, exact p 2/184,756) is drawn 9,999 times
    drawn = stats.permutation_p_value(np.arange(10.0, 20.0), np.arange(10.0), rng)
    assert 1e-4 <= drawn < 1e-3 and drawn * 10_000 == pytest.approx(round(drawn * 10_000))
    # and 5 vs 5 (252) is enumerated
    assert stats.permutation_p_value(np.arange(5.0, 10.0), np.arange(5.0), rng) == pytest.approx(
        2 / 252)


def test_permutation_monte_carlo_p_estimates_the_exact_p():
    treated, control = [1.0, 2.0, 3.0, 4.5], [2.5, 3.5, 5.0, 6.0, 7.0]
    truth = float(permutation_by_enumeration(treated, control))
    drawn = stats.permutation_p_value(np.array(treated), np.array(control),
                                      np.random.default_rng(4), max_exact=10)
    assert 0.05 < truth < 0.3
    assert abs(drawn - truth) <= 4 * math.sqrt(truth * (1 - truth) / 9999)


# ---------------------------------------------------------------- extra baseline seeds

def test_pooled_baseline_gains_by_hand():
    """k = 3 pairs, m = 3 extra baseline runs with mean 1: g_s = t_s - (3 c_s + 3 * 1) / 6."""
    treated, control = np.array([1.0, 2.0, 3.0]), np.array([0.5, 1.0, 2.5])
    gains = stats.pooled_baseline_gains(treated, control, np.array([1.0, 2.0, 0.0]))
    np.testing.assert_allclose(gains, [0.25, 1.0, 1.25], rtol=1e-12)
    # their mean is mean(t) minus the mean of all six baseline runs: 2 - 7/6
    assert gains.mean() == pytest.approx(5 / 6)
    # one extra run of 4: g_s = t_s - (3 c_s + 4) / 4
    np.testing.assert_allclose(stats.pooled_baseline_gains(treated, control, np.array([4.0])),
                               [1 - 5.5 / 4, 2 - 7 / 4, 3 - 11.5 / 4], rtol=1e-12)


def test_pooled_baseline_gains_without_extra_runs_are_the_paired_differences():
    treated, control = np.array([1.0, 2.0, 3.0]), np.array([0.5, 1.0, 2.5])
    with no_warnings():
        gains = stats.pooled_baseline_gains(treated, control, np.zeros(0))
    np.testing.assert_allclose(gains, [0.5, 1.0, 0.5], rtol=1e-12)


def test_pooled_baseline_interval_by_hand():
    """The example above: units u = (0.25, 1, 1.25), var(u) = 13/48 on 2 df, so the paired part
    is 13/144; the extra part m var(e) / (k + m)^2 = 3 * 1 / 36 = 1/12 on 2 df; se^2 = 25/144.
    df = se^4 / ((13/144)^2 / 2 + (1/12)^2 / 2) (Welch-Satterthwaite)."""
    treated, control, extra = np.array([1.0, 2.0, 3.0]), np.array([0.5, 1.0, 2.5]), np.array(
        [1.0, 2.0, 0.0])
    found = stats.pooled_baseline_interval(treated, control, extra)
    paired, extra_part = 13 / 144, 1 / 12
    df = (paired + extra_part) ** 2 / (paired ** 2 / 2 + extra_part ** 2 / 2)
    half = sp.t.ppf(0.975, df) * 5 / 12
    assert found == pytest.approx({"mean": 5 / 6, "sd": math.sqrt(13 / 48), "se": 5 / 12,
                                   "df": df, "low": 5 / 6 - half, "high": 5 / 6 + half},
                                  rel=1e-12)
    at_90 = stats.pooled_baseline_interval(treated, control, extra, 0.9)
    assert at_90["high"] - at_90["mean"] == pytest.approx(sp.t.ppf(0.95, df) * 5 / 12)


@pytest.mark.parametrize("extra, spread", [
    (np.array([4.0]), [0.5, 1.0, 2.5, 4.0]),         # m = 1: the spread of all baseline runs
    (np.array([4.0, 1.0]), [4.0, 1.0])])              # m = 2: of the extra runs alone
def test_pooled_baseline_interval_takes_the_baseline_spread_from_the_extra_runs(extra, spread):
    treated, control = np.array([1.0, 2.0, 3.0]), np.array([0.5, 1.0, 2.5])
    k, m = 3, extra.size
    units = treated - (k * control + m * extra.mean()) / (k + m)
    paired, extra_part = np.var(units, ddof=1) / k, m * np.var(spread, ddof=1) / (k + m) ** 2
    df = (paired + extra_part) ** 2 / (paired ** 2 / (k - 1) + extra_part ** 2
                                       / (len(spread) - 1))
    found = stats.pooled_baseline_interval(treated, control, extra)
    assert found["se"] == pytest.approx(math.sqrt(paired + extra_part), rel=1e-12)
    assert found["df"] == pytest.approx(df, rel=1e-12)


def test_pooled_baseline_interval_without_any_spread_falls_back_to_k_minus_1_df():
    with no_warnings():
        found = stats.pooled_baseline_interval(np.array([2.0, 2.0, 2.0]), np.array([1.0, 1.0, 1.0]),
                                               np.array([1.0, 1.0]))
    assert found == pytest.approx({"mean": 1.0, "sd": 0.0, "se": 0.0, "df": 2, "low": 1.0,
                                   "high": 1.0})


# ---------------------------------------------------------------- compare_runs

def test_compare_runs_pairs_by_seed_as_a_one_sample_t_test_of_the_differences():
    seeds = [3, 1, 2, 0]
    treated = pd.Series([0.83, 0.81, 0.86, 0.80], index=seeds)
    control = pd.Series([0.80, 0.79, 0.81, 0.80, 0.70], index=[0, 1, 2, 3, 3])  # seed 3 twice
    found = stats.compare_runs(treated, control, np.random.default_rng(0))
    differences = np.array([0.80 - 0.80, 0.81 - 0.79, 0.86 - 0.81, 0.83 - 0.75])  # seeds 0-3
    reference = sp.ttest_1samp(differences, 0.0)
    low, high = reference.confidence_interval(0.95)
    assert_record(found, {
        "mean": differences.mean(), "sd": np.std(differences, ddof=1), "low": low, "high": high,
        "n": 4, "p_value": reference.pvalue,
        "p_exact": float(sign_flip_by_enumeration([0.0, 0.02, 0.05, 0.08])),
        "min_attainable_p": 2 / 16, "pairing": "paired", "n_treated": 4, "n_control": 4})
    at_90 = stats.compare_runs(treated, control, np.random.default_rng(0), confidence=0.9)
    assert (at_90["low"], at_90["high"]) == pytest.approx(reference.confidence_interval(0.9))


def test_compare_runs_drops_failed_runs_and_pairs_only_the_common_seeds():
    # a diverged run recorded as text and a NaN are dropped; seeds 0 and 1 match, seed 2 of the
    # treated side and seed 5 of the control side have no partner (so no extra-baseline pooling)
    treated = pd.Series([0.9, 0.8, "diverged", 0.85], index=[0, 1, 3, 2], dtype=object)
    control = pd.Series([0.7, 0.75, np.nan, 0.6, "failed"], index=[0, 1, 2, 5, 6], dtype=object)
    found = stats.compare_runs(treated, control, np.random.default_rng(0))
    assert found["pairing"] == "paired" and found["n"] == 2
    assert (found["n_treated"], found["n_control"]) == (3, 3)
    assert found["mean"] == pytest.approx((0.2 + 0.05) / 2)
    assert found["p_value"] == pytest.approx(sp.ttest_1samp([0.2, 0.05], 0.0).pvalue)
    assert found["p_exact"] == 0.5 and found["min_attainable_p"] == 0.5


def test_compare_runs_pools_extra_baseline_seeds_when_every_treated_seed_is_paired():
    treated = pd.Series([1.0, 2.0, 3.0], index=[0, 1, 2])
    control = pd.Series([0.5, 1.0, 2.5, 1.0, 2.0, 0.0], index=range(6))
    found = stats.compare_runs(treated, control, np.random.default_rng(0))
    # pooled_baseline_interval's example: mean 5/6, se 5/12 on df, p from the t test of it
    paired, extra_part = 13 / 144, 1 / 12
    df = (paired + extra_part) ** 2 / (paired ** 2 / 2 + extra_part ** 2 / 2)
    half = sp.t.ppf(0.975, df) * 5 / 12
    assert_record(found, {
        "mean": 5 / 6, "sd": math.sqrt(13 / 48), "low": 5 / 6 - half, "high": 5 / 6 + half,
        "n": 3, "p_value": 2 * sp.t.sf((5 / 6) / (5 / 12), df),
        "p_exact": float(sign_flip_by_enumeration([0.5, 1.0, 0.5])), "min_attainable_p": 0.25,
        "pairing": "paired + 3 baseline seeds", "n_treated": 3, "n_control": 6})
    at_90 = stats.compare_runs(treated, control, np.random.default_rng(0), 0.9)
    assert at_90["high"] - at_90["mean"] == pytest.approx(sp.t.ppf(0.95, df) * 5 / 12)
    # two pairs and one extra seed still pool
    two = stats.compare_runs(treated[:2], control[:3], np.random.default_rng(0))
    assert two["pairing"] == "paired + 1 baseline seeds" and two["n"] == 2


def test_compare_runs_without_two_matching_seeds_is_welchs_test_with_a_permutation_check():
    treated = pd.Series([0.81, 0.84, 0.80, 0.86], index=[0, 1, 2, 3])
    control = pd.Series([0.79, 0.80, 0.78], index=[3, 7, 8])  # one common seed: unpaired
    found = stats.compare_runs(treated, control, np.random.default_rng(0))
    reference = sp.ttest_ind(treated, control, equal_var=False)
    low, high = reference.confidence_interval(0.95)
    assert_record(found, {
        "mean": treated.mean() - control.mean(), "low": low, "high": high,
        "sd": math.sqrt(treated.var() + control.var()), "n": 7, "p_value": reference.pvalue,
        "p_exact": float(permutation_by_enumeration(treated, control)),
        "min_attainable_p": 1 / 35, "pairing": "unpaired", "n_treated": 4, "n_control": 3})
    at_90 = stats.compare_runs(treated, control, np.random.default_rng(0), 0.9)
    assert (at_90["low"], at_90["high"]) == pytest.approx(reference.confidence_interval(0.9))


@pytest.mark.parametrize("n_treated, n_control", [(2, 3), (3, 2), (2, 2)])
def test_compare_runs_unpaired_with_two_runs_a_side_is_a_welch_test(n_treated, n_control):
    treated = pd.Series([0.81, 0.84, 0.80][:n_treated], index=[0, 1, 2][:n_treated])
    control = pd.Series([0.79, 0.77, 0.78][:n_control], index=[5, 6, 7][:n_control])
    found = stats.compare_runs(treated, control, np.random.default_rng(0))
    reference = sp.ttest_ind(treated, control, equal_var=False)
    assert found["pairing"] == "unpaired" and found["n"] == n_treated + n_control
    assert found["p_value"] == pytest.approx(reference.pvalue, rel=1e-9)
    assert (found["low"], found["high"]) == pytest.approx(reference.confidence_interval(0.95))


def test_compare_runs_pooled_checks_the_paired_differences_exactly():
    # t - c = (-0.5, 1, 0.5) changes sign: the sign-flip p is of these differences, 6/8
    treated = pd.Series([1.0, 2.0, 3.0], index=[0, 1, 2])
    control = pd.Series([1.5, 1.0, 2.5, 1.0, 2.0], index=range(5))
    found = stats.compare_runs(treated, control, np.random.default_rng(0))
    assert found["pairing"] == "paired + 2 baseline seeds"
    assert found["p_exact"] == pytest.approx(float(sign_flip_by_enumeration([-0.5, 1.0, 0.5])))
    assert found["p_exact"] == 0.75


@pytest.mark.parametrize("treated_seeds, control_seeds, pairing", [
    (range(17), range(17), "paired"),                        # 2^17 sign patterns: drawn
    (range(17), range(19), "paired + 2 baseline seeds"),
    (range(10), range(10, 20), "unpaired")])                 # C(20, 10) relabellings: drawn
def test_compare_runs_draws_its_exact_check_from_the_given_generator(treated_seeds,
                                                                      control_seeds, pairing):
    draw = np.random.default_rng(8)
    treated = pd.Series(draw.normal(0.3, 1.0, len(treated_seeds)), index=treated_seeds)
    control = pd.Series(draw.normal(0.0, 1.0, len(control_seeds)), index=control_seeds)
    found = stats.compare_runs(treated, control, np.random.default_rng(9))
    again = stats.compare_runs(treated, control, np.random.default_rng(9))
    assert found["pairing"] == pairing and found["p_exact"] == again["p_exact"]
    # a Monte Carlo p of 9,999 draws: (1 + draws as extreme) / 10,000
    assert 0 < found["p_exact"] <= 1
    assert found["p_exact"] * 10_000 == pytest.approx(round(found["p_exact"] * 10_000))


def test_compare_runs_with_one_run_a_side_has_no_t_test_but_an_exact_check():
    with no_warnings():
        found = stats.compare_runs(pd.Series([0.9], index=[0]),
                                   pd.Series([0.5, 0.6, 0.7], index=[4, 5, 6]),
                                   np.random.default_rng(0))
    assert found["mean"] == pytest.approx(0.3) and found["pairing"] == "unpaired"
    assert math.isnan(found["p_value"]) and math.isnan(found["low"])
    assert found["p_exact"] == pytest.approx(float(permutation_by_enumeration([0.9],
                                                                              [0.5, 0.6, 0.7])))
    assert found["min_attainable_p"] == 0.25 and found["n"] == 4
    with no_warnings():
        none = stats.compare_runs(pd.Series([], dtype=float), pd.Series([0.5, 0.6]),
                                  np.random.default_rng(0))
    assert math.isnan(none["p_exact"]) and math.isnan(none["min_attainable_p"])
    assert (none["n"], none["n_treated"], none["n_control"]) == (2, 0, 2)


def test_compare_runs_differences_without_spread_have_no_p_value():
    # gains that agree to the last image: se 0 is rounding, not certainty
    found = stats.compare_runs(pd.Series([0.600, 0.610], index=[100, 101]),
                               pd.Series([0.624, 0.634], index=[100, 101]),
                               np.random.default_rng(0))
    assert found["mean"] == pytest.approx(-0.024) and math.isnan(found["p_value"])
    assert found["p_exact"] == 0.5


# ---------------------------------------------------------------- _t_p, holm_adjust

@pytest.mark.parametrize("mean, se, df", [(0.3, 0.1, 4), (-0.3, 0.1, 4), (0.05, 0.2, 1),
                                          (1.0, 0.4, 2.5)])
def test_t_p_is_the_two_sided_t_test_of_a_zero_mean(mean, se, df):
    assert stats._t_p(mean, se, df) == pytest.approx(2 * sp.t.cdf(-abs(mean / se), df), rel=1e-12)


@pytest.mark.parametrize("se, df", [(0.0, 4), (math.inf, 4), (math.nan, 4), (0.1, 0.5),
                                    (0.1, 0), (0.1, math.nan)])
def test_t_p_is_nan_without_a_test(se, df):
    assert math.isnan(stats._t_p(0.3, se, df))


def test_holm_matches_hand_computation_and_skips_nan():
    # sorted 0.01, 0.03, 0.04 of m = 3: 3 * 0.01, 2 * 0.03, max(0.06, 1 * 0.04)
    adjusted = stats.holm_adjust([0.01, 0.04, np.nan, 0.03])
    np.testing.assert_allclose(adjusted[[0, 3, 1]], [0.03, 0.06, 0.06], rtol=1e-12)
    assert math.isnan(adjusted[2])
    # capped at 1: 2 * 0.7 > 1
    np.testing.assert_allclose(stats.holm_adjust([0.7, 0.9]), [1.0, 1.0])
    assert stats.holm_adjust([]).shape == (0,)
    # an object column of p-values, None where a row has no test, reads None as NaN
    from_column = stats.holm_adjust(pd.Series([0.01, None, 0.04, 0.03], dtype=object))
    np.testing.assert_allclose(from_column, [0.03, np.nan, 0.06, 0.06], rtol=1e-12)
    assert np.isnan(stats.holm_adjust([np.nan, np.nan])).all()


@pytest.mark.parametrize("p_values", [
    [0.01, 0.04, 0.03, 0.005, 0.2],
    [0.02, 0.02, 0.011, np.nan, 0.5, 0.012],     # ties
    [0.3, 0.001, 0.9, 0.04],
])
def test_holm_adjusted_p_is_the_smallest_level_at_which_step_down_rejects(p_values):
    adjusted = stats.holm_adjust(p_values)
    finite = [i for i, p in enumerate(p_values) if not math.isnan(p)]
    for i in finite:
        rejected_at = holm_rejects(p_values, adjusted[i] * (1 + 1e-9))
        rejected_below = holm_rejects(p_values, adjusted[i] * (1 - 1e-9))
        assert i in rejected_at and i not in rejected_below
    for alpha in (0.01, 0.05, 0.1):
        assert holm_rejects(p_values, alpha) == {i for i in finite if adjusted[i] <= alpha}
    order = np.argsort(np.array(p_values)[finite])
    assert np.all(np.diff(adjusted[finite][order]) >= 0)  # monotone in the raw p


# ---------------------------------------------------------------- slopes

def test_ols_slope_matches_least_squares_row_by_row():
    x = np.array([0.0, 1.0, 3.0, 4.0])
    y = np.array([[0.1, 0.5, 0.4, 1.0], [2.0, 1.0, 0.5, -1.0]])
    np.testing.assert_allclose(stats.ols_slope(x, y), [ols(x, row)[1] for row in y], rtol=1e-12)
    assert stats.ols_slope(x, 2 * x + 1) == pytest.approx(2.0)


def test_pooled_within_sd_by_hand():
    """Cells {1, 2, 3} and {4, 6} and {5}: squares 2 + 2 + 0 on (2 + 1 + 0) df."""
    y = np.array([1.0, 2.0, 3.0, 4.0, 6.0, 5.0])
    cells = np.array(["a", "a", "a", "b", "b", "c"])
    sd, df = stats.pooled_within_sd(y, cells)
    assert df == 3 and sd == pytest.approx(math.sqrt(4 / 3), rel=1e-12)


def test_pooled_within_sd_works_along_the_last_axis():
    rng = np.random.default_rng(5)
    y = rng.normal(size=(2, 3, 7))
    cells = np.array([0, 0, 0, 1, 1, 2, 2])
    sd, df = stats.pooled_within_sd(y, cells)
    assert sd.shape == (2, 3) and df == 4
    squares = sum(((y[..., cells == c] - y[..., cells == c].mean(-1, keepdims=True)) ** 2).sum(-1)
                  for c in range(3))
    np.testing.assert_allclose(sd, np.sqrt(squares / 4), rtol=1e-12)
    # one unit per cell: no within-cell degrees of freedom, sd NaN of the batch's shape
    with no_warnings():
        sd, df = stats.pooled_within_sd(y[..., :3], np.array([0, 1, 2]))
    assert df == 0 and sd.shape == (2, 3) and np.isnan(sd).all()


@pytest.mark.parametrize("x, y", [
    ([0.0, 1.0, 2.0, 3.0, 4.0], [0.10, 0.14, 0.13, 0.19, 0.22]),
    ([13.0, 14.1, 15.0, 16.2], [0.02, 0.01, 0.015, -0.01]),
    ([0.0, 0.25, 0.5, 0.75], [0.02, 0.01, 0.015, -0.01]),     # Sxx 0.3125 < 1
])
def test_slope_t_test_is_linear_regressions_t_test(x, y):
    found = stats.slope_t_test(np.array(x), np.array(y))
    reference = sp.linregress(x, y)
    df = len(x) - 2
    half = sp.t.ppf(0.975, df) * reference.stderr
    assert found == pytest.approx({"slope": reference.slope, "se": reference.stderr, "df": df,
                                   "p_value": reference.pvalue, "low": reference.slope - half,
                                   "high": reference.slope + half, "min_attainable_p": 0.0},
                                  rel=1e-9)
    at_80 = stats.slope_t_test(x, y, confidence=0.8)
    assert at_80["high"] - at_80["slope"] == pytest.approx(sp.t.ppf(0.9, df) * reference.stderr)


def test_slope_t_test_by_hand_on_three_cells():
    fit = stats.slope_t_test([0.0, 1.0, 2.0], [0.0, 1.0, 3.0])
    # slope 1.5; residuals (1/6, -1/3, 1/6): s^2 = 1/6 on 1 df, se = sqrt(1/6 / 2)
    assert fit["slope"] == pytest.approx(1.5) and fit["df"] == 1
    assert fit["se"] == pytest.approx(math.sqrt(1 / 12))
    assert fit["high"] - fit["slope"] == pytest.approx(12.706204736174694 * math.sqrt(1 / 12))


@pytest.mark.parametrize("x, y, slope, df", [
    ([0.0, 1.0], [0.0, 2.0], 2.0, 0),            # two cells: a slope, no test
    ([1.0], [0.5], math.nan, 0),
    ([2.0, 2.0, 2.0], [0.1, 0.2, 0.3], math.nan, 1),   # constant capacity
])
def test_slope_t_test_without_a_test(x, y, slope, df):
    with no_warnings():
        found = stats.slope_t_test(x, y)
    assert found == pytest.approx({"slope": slope, "se": math.nan, "df": df,
                                   "p_value": math.nan, "low": math.nan, "high": math.nan,
                                   "min_attainable_p": 1.0}, nan_ok=True)


def test_fixed_cells_slope_variance_is_the_sandwich_of_the_cell_variances():
    """b = (X'X)^-1 X' g; with Var(g) = diag(V), Var(b) = [(X'X)^-1 X' diag(V) X (X'X)^-1]_11."""
    x, gain = np.array([13.0, 14.0, 15.5, 16.0]), np.array([0.021, 0.012, 0.014, 0.004])
    gain_var = np.array([1e-5, 4e-5, 2e-5, 3e-5])
    design = np.column_stack([np.ones(4), x])
    bread = np.linalg.inv(design.T @ design)
    variance = (bread @ design.T @ np.diag(gain_var) @ design @ bread)[1, 1]
    slope, se = ols(x, gain)[1], math.sqrt(variance)
    found = stats.fixed_cells_slope(x, gain, gain_var, 9)
    half = sp.t.ppf(0.975, 9) * se
    assert found == pytest.approx({"slope": slope, "se": se, "df": 9,
                                   "p_value": 2 * sp.t.sf(abs(slope) / se, 9),
                                   "low": slope - half, "high": slope + half,
                                   "min_attainable_p": 0.0}, rel=1e-9)
    at_90 = stats.fixed_cells_slope(x, gain, gain_var, 9, 0.9)
    assert at_90["high"] - at_90["slope"] == pytest.approx(sp.t.ppf(0.95, 9) * se)


def test_fixed_cells_slope_over_a_narrow_range():
    # x 0, 0.5, 1 (Sxx 0.5): weights (-1, 0, 1), Var b = V1 + V3
    found = stats.fixed_cells_slope([0.0, 0.5, 1.0], [0.01, 0.03, 0.02], [1e-4, 5e-4, 3e-4], 6)
    assert found["slope"] == pytest.approx(0.01) and found["se"] == pytest.approx(0.02)
    assert found["p_value"] == pytest.approx(2 * sp.t.sf(0.5, 6))


def test_fixed_cells_slope_of_two_cells_is_their_difference_over_the_gap():
    # b = (g2 - g1) / (x2 - x1), Var b = (V1 + V2) / (x2 - x1)^2; one within-cell df is a test
    found = stats.fixed_cells_slope([1.0, 3.0], [0.01, 0.03], [1e-4, 3e-4], 1)
    assert found["slope"] == pytest.approx(0.01) and found["se"] == pytest.approx(0.01)
    assert found["p_value"] == pytest.approx(2 * sp.t.sf(1.0, 1))


@pytest.mark.parametrize("x, df", [([1.0], 5), ([2.0, 2.0, 2.0], 5), ([1.0, 2.0, 3.0], 0.5),
                                   ([1.0, 2.0, 3.0], 0)])
def test_fixed_cells_slope_without_a_test(x, df):
    with no_warnings():
        found = stats.fixed_cells_slope(x, np.zeros(len(x)), np.full(len(x), 1e-4), df)
    assert found == pytest.approx({"slope": math.nan, "se": math.nan, "df": df,
                                   "p_value": math.nan, "low": math.nan, "high": math.nan,
                                   "min_attainable_p": 1.0}, nan_ok=True)


def test_fixed_cells_slope_with_a_negative_variance_estimate_has_se_0_and_no_p():
    # a cell's variance estimated as var(A) + var(B) - 2 cov can come out below 0
    found = stats.fixed_cells_slope([0.0, 1.0, 2.0], [0.0, 0.01, 0.03], [-1e-4, -1e-4, -1e-4], 4)
    assert found["slope"] == pytest.approx(0.015) and found["se"] == 0.0
    assert math.isnan(found["p_value"]) and found["low"] == found["high"] == found["slope"]


# ---------------------------------------------------------------- detectable effects

@pytest.mark.parametrize("df, level, power", [(3, 0.05, 0.8), (1, 0.05, 0.8), (10, 0.01, 0.9),
                                              (2, 0.001, 0.99), (25, 0.05, 0.1)])
def test_power_noncentrality_gives_the_requested_power(df, level, power):
    ncp = stats._power_noncentrality(df, level, power)
    assert t_power(ncp, df, level) == pytest.approx(power, abs=1e-8)


def test_detectable_slope_is_the_noncentrality_of_the_power_times_the_se():
    slope = stats.detectable_slope(0.002, 4, 0.05)
    assert t_power(slope / 0.002, 4, 0.05) == pytest.approx(0.8, abs=1e-8)
    slope = stats.detectable_slope(0.002, 1, 0.01, power=0.9)
    assert t_power(slope / 0.002, 1, 0.01) == pytest.approx(0.9, abs=1e-8)
    for se, df in ((0.0, 4), (math.nan, 4), (0.002, 0.5), (0.002, math.nan)):
        assert math.isnan(stats.detectable_slope(se, df, 0.05))


def test_detectable_drop_is_detected_at_the_stated_power():
    """Cell means of 3 seeds of sd 0.004: se(b) = 0.004 / sqrt(3) / sqrt(Sxx); the drop over
    the range ptp(x) is the slope at which the two-sided test rejects with probability 0.8."""
    x = np.array([13.0, 14.0, 15.0, 16.5])  # Sxx = 6.6875, range 3.5
    drop = stats.detectable_drop(x, 0.004, 3, 0.05)
    se = 0.004 / math.sqrt(3) / math.sqrt(6.6875)
    assert t_power(drop / 3.5 / se, 2, 0.05) == pytest.approx(0.8, abs=1e-8)
    drop = stats.detectable_drop(x, 0.004, 2.5, 0.01, power=0.9)
    se = 0.004 / math.sqrt(2.5) / math.sqrt(6.6875)
    assert t_power(drop / 3.5 / se, 2, 0.01) == pytest.approx(0.9, abs=1e-8)


def test_detectable_drop_with_one_seed_per_cell_and_a_narrow_range():
    # x spans 0.75 (Sxx 0.3125 < 1); one seed per cell: the cell means have sd unit_sd
    x = np.array([0.0, 0.25, 0.5, 0.75])
    drop = stats.detectable_drop(x, 0.004, 1, 0.05)
    assert t_power(drop / 0.75 / (0.004 / math.sqrt(0.3125)), 2, 0.05) == pytest.approx(
        0.8, abs=1e-8)


@pytest.mark.parametrize("x, unit_sd, units_per_cell", [
    ([1.0, 2.0], 0.004, 3), ([1.0, 1.0, 1.0], 0.004, 3), ([1.0, 2.0, 3.0], 0.0, 3),
    ([1.0, 2.0, 3.0], math.nan, 3), ([1.0, 2.0, 3.0], 0.004, 0),
    ([1.0, 2.0, 3.0], 0.004, math.nan)])
def test_detectable_drop_is_nan_without_a_test(x, unit_sd, units_per_cell):
    with no_warnings():
        assert math.isnan(stats.detectable_drop(x, unit_sd, units_per_cell, 0.05))


def test_detectable_drop_of_three_cells_has_one_df():
    drop = stats.detectable_drop([0.0, 1.0, 2.0], 0.01, 4, 0.05)  # Sxx 2, range 2
    assert t_power(drop / 2 / (0.01 / 2 / math.sqrt(2)), 1, 0.05) == pytest.approx(0.8, abs=1e-8)


# ---------------------------------------------------------------- lack of fit

def wls_lack_of_fit(x, gain, gain_var):
    """Weighted least squares by lstsq on rows scaled by 1 / sqrt(V): sum of squared scaled
    residuals (the weighted RSS)."""
    scale = 1 / np.sqrt(gain_var)
    design = np.column_stack([np.ones(len(x)), x]) * scale[:, None]
    _, residual_ss, *_ = np.linalg.lstsq(design, gain * scale, rcond=None)
    return float(residual_ss[0])


def test_cell_means_lack_of_fit_is_the_weighted_rss_per_df_against_f():
    x, gain = np.array([0.0, 1.0, 2.5, 3.0, 4.0]), np.array([0.0, 0.3, 0.1, 0.5, 0.35])
    gain_var = np.array([0.01, 0.02, 0.005, 0.04, 0.01])
    found = stats.cell_means_lack_of_fit(x, gain, gain_var, 12)
    f = wls_lack_of_fit(x, gain, gain_var) / 3
    rss = float(ols(x, gain)[2] @ ols(x, gain)[2])
    assert found == pytest.approx({"f": f, "p_value": sp.f.sf(f, 3, 12), "df_lof": 3, "df": 12,
                                   "offset_var": rss / 3 - gain_var.mean()}, rel=1e-9)
    assert found["offset_var"] > 0


def test_cell_means_lack_of_fit_floors_the_offset_variance_at_zero():
    # equal V: F is the OLS residual mean square over V; cells nearly on the line give offsets 0
    x, gain, gain_var = np.arange(4.0), np.array([0.0, 0.11, 0.19, 0.3]), np.full(4, 0.01)
    found = stats.cell_means_lack_of_fit(x, gain, gain_var, 1)
    rss = float(ols(x, gain)[2] @ ols(x, gain)[2])
    assert found["f"] == pytest.approx(rss / 2 / 0.01, rel=1e-9)
    assert found["p_value"] == pytest.approx(sp.f.sf(rss / 2 / 0.01, 2, 1), rel=1e-9)
    assert found["offset_var"] == 0.0


def test_cell_means_lack_of_fit_over_a_narrow_range():
    x, gain = np.array([0.0, 0.25, 0.5, 0.75]), np.array([0.0, 0.3, 0.1, 0.5])
    gain_var = np.array([0.01, 0.02, 0.005, 0.04])
    found = stats.cell_means_lack_of_fit(x, gain, gain_var, 8)
    f = wls_lack_of_fit(x, gain, gain_var) / 2
    assert found["f"] == pytest.approx(f, rel=1e-9)
    assert found["p_value"] == pytest.approx(sp.f.sf(f, 2, 8), rel=1e-9)


@pytest.mark.parametrize("x, gain, gain_var, df, df_lof", [
    ([0.0, 1.0], [0.1, 0.2], [0.01, 0.01], 10, 0),                 # two cells
    ([0.0], [0.1], [0.01], 10, 0),
    ([1.0, 1.0, 1.0], [0.1, 0.2, 0.0], [0.01] * 3, 10, 1),         # constant x
    ([0.0, 1.0, 2.0], [0.1, 0.2, 0.0], [0.01] * 3, 0.5, 1),        # df < 1
    ([0.0, 1.0, 2.0], [0.1, 0.2, 0.0], [0.01, 0.0, 0.01], 10, 1),  # a cell with no variance
    ([0.0, 1.0, 2.0], [0.1, 0.2, 0.0], [0.01, -0.01, 0.01], 10, 1),
    ([0.0, 1.0, 2.0], [0.1, np.nan, 0.0], [0.01] * 3, 10, 1),      # a missing cell mean
])
def test_cell_means_lack_of_fit_without_a_test(x, gain, gain_var, df, df_lof):
    with no_warnings():
        found = stats.cell_means_lack_of_fit(x, gain, gain_var, df)
    assert found == pytest.approx({"f": math.nan, "p_value": math.nan, "df_lof": df_lof,
                                   "df": df, "offset_var": math.nan}, nan_ok=True)


def test_lack_of_fit_p_of_independent_units_is_the_classical_f_test():
    """Units y_i in cells c: F = [sum_c n_c (ybar_c - yhat_c)^2 / (C - 2)] / s^2 with yhat the
    least-squares line of the units and s^2 the pooled within-cell variance on N - C df."""
    cells = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 3])   # cell 3: one unit, no within df
    x = np.array([1.0, 2.0, 3.5, 5.0])[cells]
    y = np.array([0.1, 0.3, 0.2, 0.9, 0.7, 0.8, 1.0, 0.5, 0.6, 1.4])
    _, _, residual = ols(x, y)
    fitted = y - residual
    between = sum((cells == c).sum() * (y[cells == c].mean() - fitted[cells == c][0]) ** 2
                  for c in range(4))
    within = sum(((y[cells == c] - y[cells == c].mean()) ** 2).sum() for c in range(4))
    f = (between / 2) / (within / 6)
    assert stats.lack_of_fit_p(x, y, cells) == pytest.approx(sp.f.sf(f, 2, 6), rel=1e-9)


def test_lack_of_fit_p_by_hand_separates_a_bent_line_from_a_straight_one():
    x = np.repeat([0.0, 1.0, 2.0], 2)
    cells = np.repeat([0, 1, 2], 2)
    # middle cell off the line: cell means 0.05, 2.05, 2.05; within s^2 = 0.005 on 3 df
    assert stats.lack_of_fit_p(x, np.array([0.0, 0.1, 2.0, 2.1, 2.0, 2.1]), cells) < 0.01
    assert stats.lack_of_fit_p(x, x + np.array([0, 0.1] * 3), cells) > 0.99
    # one within-cell df (cells of 2, 1, 1 units) is enough for a test
    p = stats.lack_of_fit_p([0.0, 0.0, 1.0, 2.0], [0.0, 0.2, 1.5, 2.0], np.array([0, 0, 1, 2]))
    # fitted line through the units: the cell means' weighted fit with weights 2, 1, 1
    _, _, residual = ols(np.array([0.0, 0.0, 1.0, 2.0]), np.array([0.0, 0.2, 1.5, 2.0]))
    between = 2 * (0.1 - (0.1 - residual[:2].mean())) ** 2 + residual[2] ** 2 + residual[3] ** 2
    assert p == pytest.approx(sp.f.sf(between / 1 / 0.02, 1, 1), rel=1e-9)


@pytest.mark.parametrize("x, y, cells", [
    ([0.0, 0.0, 1.0, 1.0], [0.0, 0.1, 0.5, 0.7], [0, 0, 1, 1]),          # two cells
    ([0.0, 1.0, 2.0], [0.0, 0.5, 0.7], [0, 1, 2]),                        # no within df
    # no spread within any cell
    ([0.0, 0.0, 1.0, 1.0, 2.0, 2.0], [0.1, 0.1, 0.5, 0.5, 0.2, 0.2], [0, 0, 1, 1, 2, 2]),
])
def test_lack_of_fit_p_is_nan_without_a_test(x, y, cells):
    with no_warnings():
        assert math.isnan(stats.lack_of_fit_p(np.array(x), np.array(y), np.array(cells)))


# ---------------------------------------------------------------- correlation

def bonett_wright(rho, n, confidence):
    half = sp.norm.ppf(0.5 + confidence / 2) * math.sqrt((1 + rho ** 2 / 2) / (n - 3))
    return math.tanh(math.atanh(rho) - half), math.tanh(math.atanh(rho) + half)


@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_correlation_interval_is_spearman_with_the_bonett_wright_interval(confidence):
    x = np.array([0.1, 0.4, 0.2, 0.9, 0.5, 0.5, np.nan, 0.3])
    y = np.array([1.0, 3.0, 2.5, 4.0, 2.0, 3.5, 9.0, np.nan])
    found = (stats.correlation_interval(x, y) if confidence == 0.95
             else stats.correlation_interval(x, y, confidence))
    keep = slice(0, 6)  # the pairs without a NaN
    rho = np.corrcoef(sp.rankdata(x[keep]), sp.rankdata(y[keep]))[0, 1]  # ties: average ranks
    low, high = bonett_wright(rho, 6, confidence)
    assert found == pytest.approx({"rho": rho, "low": low, "high": high, "n": 6}, rel=1e-9)


@pytest.mark.parametrize("sign", [1, -1])
def test_a_perfect_rank_correlation_keeps_an_interval_of_some_width(sign):
    found = stats.correlation_interval(np.arange(5.0), sign * np.arange(5.0) ** 3)
    assert found["rho"] == pytest.approx(sign * 1.0, abs=1e-12) and found["n"] == 5
    # atanh(+-1) is infinite: the interval is taken at rho = +-0.999999
    low, high = bonett_wright(sign * 0.999999, 5, 0.95)
    assert (found["low"], found["high"]) == pytest.approx((low, high), rel=1e-9)
    assert found["low"] < found["high"]


@pytest.mark.parametrize("x, y, n", [
    ([0.1, 0.2, 0.3], [1.0, 2.0, 0.0], 3),
    ([0.1, 0.2, 0.3, 0.4, np.nan], [1.0, 2.0, 0.0, np.nan, 3.0], 3),
    ([0.1, 0.1, 0.1, 0.1], [1.0, 2.0, 0.0, 3.0], 4),     # no spread in x
    ([0.1, 0.2, 0.3, 0.4], [1.0, 1.0, 1.0, 1.0], 4),     # no spread in y
])
def test_correlation_interval_needs_four_pairs_and_spread(x, y, n):
    with no_warnings():
        found = stats.correlation_interval(np.array(x), np.array(y))
    assert found == pytest.approx({"rho": math.nan, "low": math.nan, "high": math.nan, "n": n},
                                  nan_ok=True)


def test_correlation_interval_of_four_pairs():
    found = stats.correlation_interval(np.array([1.0, 2.0, 3.0, 4.0]),
                                       np.array([1.0, 3.0, 2.0, 4.0]))
    # Spearman: 1 - 6 * (0 + 1 + 1 + 0) / (4 * 15) = 0.8; se sqrt(1.32 / 1)
    low, high = bonett_wright(0.8, 4, 0.95)
    assert found == pytest.approx({"rho": 0.8, "low": low, "high": high, "n": 4}, rel=1e-9)
