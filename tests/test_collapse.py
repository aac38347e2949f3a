"""The capacity-collapse test (analysis/collapse.py) on tiny hand-built trials tables.

Every expected number is worked out here independently: the slope of the cell mean gains on
log2(num_params) by scipy.stats.linregress, the pooled within-cell sd and the variance of a cell
mean by hand, the lack of fit by numpy's weighted polyfit and the F distribution, the detectable
drop by the noncentral t's power at the returned drop. Capacities are num_params = 128 x depth,
so depth 8, 16, 32, 64 sit at log2(num_params) = 10, 11, 12, 13.
"""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from korth_bench.analysis import collapse
from korth_bench.analysis.collapse import (
    CLAIMED_DROP, PRIMARY_AXIS, collapse_test, collapse_verdict, unit_gains)

UNIT_COLUMNS = ["dataset", "model", "depth", "width", "num_params", "seed", "gain", "matching",
                "n_extra_baseline"]
POOLED_COLUMNS = ["dataset", "model", "depth", "width", "num_params", "seed", "gain", "n_arms",
                  "matching", "n_extra_baseline"]
TABLE_COLUMNS = ["dataset", "model", "regularizer", "metric", "axis", "test_family",
                 "family_size", "n_units", "n_cells", "n_order_matched", "slope", "low", "high",
                 "p_value", "min_attainable_p", "lack_of_fit_p", "sd_within", "capacity_range",
                 "drop", "drop_low", "drop_high", "detectable_drop", "note", "p_holm", "verdict",
                 "claimed_drop", "alpha"]


def run(depth, regularizer, seed, acc, *, width=1, dataset="c10", model="resnet",
        num_params=None, **extra):
    """One trials row; num_params = 128 x depth unless given."""
    return {"dataset": dataset, "model": model, "depth": depth, "width": width,
            "num_params": 128 * depth if num_params is None else num_params,
            "regularizer": regularizer, "seed": seed, "test_acc": acc, **extra}


def base_acc(depth, seed):
    """The baseline's accuracy at a cell and seed: a seed effect and a capacity effect, both
    shared by every arm of the cell, so that paired differences are exactly the planted gains."""
    return 0.70 + 0.01 * seed + 0.001 * depth


def study(gains, *, dataset="c10", model="resnet", metric="test_acc"):
    """Runs of the baseline and of every arm in ``gains`` (arm -> depth -> per-seed gains):
    the arm's run at seed s is the baseline's plus its gain there."""
    depths = sorted({d for per_depth in gains.values() for d in per_depth})
    seeds = {d: max(len(per_depth.get(d, ())) for per_depth in gains.values()) for d in depths}
    rows = [run(d, "none", s, math.nan, dataset=dataset, model=model,
                **{metric: base_acc(d, s)}) for d in depths for s in range(seeds[d])]
    rows += [run(d, arm, s, math.nan, dataset=dataset, model=model,
                 **{metric: base_acc(d, s) + g})
             for arm, per_depth in gains.items() for d, values in per_depth.items()
             for s, g in enumerate(values)]
    return pd.DataFrame(rows)


def power_at(drop, se, df, level):
    """P(|T| > t_{1 - level/2, df}) for T noncentral t with noncentrality drop / se (scipy's
    far tail can come back NaN where it underflows: it is 0 there)."""
    critical = stats.t.ppf(1 - level / 2, df)
    ncp = drop / se
    return stats.nct.sf(critical, df, ncp) + np.nan_to_num(stats.nct.cdf(-critical, df, ncp))


def holm_pair(p1, p2):
    """Holm's adjusted p-values of a family of two, by hand: the smaller times 2, the larger at
    least that."""
    low, high = sorted((p1, p2))
    first = min(1.0, 2 * low)
    adjusted = {low: first, high: max(first, high)}
    return adjusted[p1], adjusted[p2]


def primary_row(table, regularizer="so"):
    return table[(table["regularizer"] == regularizer)
                 & (table["axis"] == PRIMARY_AXIS)].iloc[0]


# so's per-seed gains: 2 seeds at each of 4 cells, falling with capacity. Cell means 0.028,
# 0.025, 0.019, 0.016 on x = 10..13; within-cell squared deviations 8e-6, 18e-6, 2e-6, 8e-6:
# sd_within = sqrt(36e-6 / 4) = 0.003.
FALLING = {8: [0.030, 0.026], 16: [0.022, 0.028], 32: [0.020, 0.018], 64: [0.014, 0.018]}
X = np.array([10.0, 11.0, 12.0, 13.0])
MEANS = np.array([0.028, 0.025, 0.019, 0.016])


# ---------------------------------------------------------------- collapse_verdict

@pytest.mark.parametrize("slope, p, low, high, min_p, expected", [
    (-0.01, 0.01, 0.02, 0.04, 0.0, "gains shrink with capacity"),
    (0.01, 0.01, -0.04, -0.02, 0.0, "gains grow"),
    (-0.01, 0.05, 0.02, 0.04, 0.0, "gains shrink with capacity"),  # p = alpha rejects
    (-0.01, 0.0501, 0.02, 0.04, 0.0, "inconclusive"),
    (-0.01, 0.01, 0.02, 0.04, 0.0125, "gains shrink with capacity"),  # min p = level: can reject
    (-0.01, 0.01, 0.02, 0.04, 0.0126, "inconclusive"),  # cannot reach alpha / m: no rejection
    (0.0, 0.01, -0.004, 0.004, 0.0, "no trend"),  # significant but flat: neither sign
    (0.0, 0.01, -0.02, 0.004, 0.0, "inconclusive"),
    (-0.001, 0.5, -0.004, 0.008, 0.0, "no trend"),  # the drop's interval inside +-0.01
    (-0.001, 0.5, -0.01, 0.008, 0.0, "inconclusive"),  # low on the bound: not inside
    (-0.001, 0.5, -0.004, 0.01, 0.0, "inconclusive"),  # high on the bound: not inside
    (-0.001, 0.5, -0.004, 0.008, 0.0126, "inconclusive"),  # equivalence needs a possible test
    (-0.001, 0.5, -0.004, 0.008, 0.0125, "no trend"),
    (math.nan, math.nan, math.nan, math.nan, 1.0, "inconclusive"),
])
def test_verdict_rejects_at_alpha_and_claims_no_trend_only_by_equivalence(
        slope, p, low, high, min_p, expected):
    """Holm p <= alpha with a test that could reject (min_attainable_p <= level = alpha / m,
    here 0.05 / 4): the slope's sign; else 'no trend' when [drop_low, drop_high] lies strictly
    inside (-claimed_drop, claimed_drop); else 'inconclusive'."""
    found = collapse_verdict(np.array([slope]), np.array([p]), np.array([low]),
                             np.array([high]), np.array([min_p]), np.array([0.05 / 4]),
                             claimed_drop=0.01, alpha=0.05)
    assert list(found) == [expected]


def test_verdict_defaults_are_a_one_point_claimed_drop_at_alpha_5_percent():
    assert CLAIMED_DROP == 0.01
    ones = np.ones(4)
    found = collapse_verdict(slope=-ones, p_adjusted=np.array([0.05, 0.06, 0.5, 0.5]),
                             drop_low=np.array([0.02, 0.02, -0.0099, -0.0101]),
                             drop_high=np.array([0.04, 0.04, 0.0099, 0.0]),
                             min_attainable_p=0 * ones, level=0.05 * ones)
    assert list(found) == ["gains shrink with capacity", "inconclusive", "no trend",
                           "inconclusive"]


def test_verdict_accepts_lists_and_keeps_the_arrays_shape():
    found = collapse_verdict([[-1.0, 1.0]], [[0.01, 0.01]], [[0.02, -0.04]], [[0.04, -0.02]],
                             [[0, 0]], [[0.05, 0.05]])
    assert found.shape == (1, 2)
    assert found.tolist() == [["gains shrink with capacity", "gains grow"]]


# ---------------------------------------------------------------- unit_gains

def test_unit_gains_pair_by_seed_and_ignore_other_regularizers():
    rows = [run(8, "none", 0, 0.70), run(8, "none", 1, 0.74),
            run(8, "so", 1, 0.77), run(8, "so", 0, 0.72),
            run(8, "dn", 0, 0.99), run(8, "dn", 1, 0.99)]
    units = unit_gains(pd.DataFrame(rows), "so", "test_acc")
    assert list(units.columns) == UNIT_COLUMNS
    # seed order: seed 0 gains 0.72 - 0.70, seed 1 gains 0.77 - 0.74
    assert units["seed"].tolist() == [0, 1]
    assert units["gain"].to_numpy() == pytest.approx([0.02, 0.03])
    assert units["matching"].tolist() == ["seed", "seed"]
    assert units["n_extra_baseline"].tolist() == [0, 0]
    assert units[["dataset", "model", "depth", "width"]].drop_duplicates().values.tolist() == [
        ["c10", "resnet", 8, 1]]
    assert (units["num_params"] == 1024).all()


def test_unit_gains_match_the_remaining_runs_in_seed_order():
    """so ran seeds 5 and 3, the baseline 7 and 9 (listed 7 first, so first): no seed matches, so
    the runs pair in seed order, (3, 7) and (5, 9); the unit carries the regularizer's seed."""
    rows = [run(8, "so", 5, 0.80), run(8, "so", 3, 0.75),
            run(8, "none", 7, 0.70), run(8, "none", 9, 0.71)]
    units = unit_gains(pd.DataFrame(rows), "so", "test_acc")
    assert units["seed"].tolist() == [3, 5]
    assert units["gain"].to_numpy() == pytest.approx([0.75 - 0.70, 0.80 - 0.71])
    assert units["matching"].tolist() == ["order", "order"]


def test_unmatched_regularizer_runs_are_dropped():
    rows = [run(8, "so", 0, 0.80), run(8, "so", 1, 0.81), run(8, "so", 2, 0.90),
            run(8, "none", 0, 0.70), run(8, "none", 1, 0.72)]
    units = unit_gains(pd.DataFrame(rows), "so", "test_acc")
    assert units["seed"].tolist() == [0, 1]
    assert units["gain"].to_numpy() == pytest.approx([0.10, 0.09])


def test_extra_baseline_runs_count_so_the_units_average_to_the_gain_over_every_baseline_run():
    """k = 2 pairs, m = 2 extra baseline runs (mean 0.75): g_s = t_s - (2 c_s + 2 x 0.75) / 4;
    their mean 0.05 = mean(so) 0.82 - mean of all four baseline runs 0.77."""
    rows = [run(8, "so", 0, 0.80), run(8, "so", 1, 0.84),
            run(8, "none", 0, 0.78), run(8, "none", 1, 0.80),
            run(8, "none", 2, 0.76), run(8, "none", 3, 0.74)]
    units = unit_gains(pd.DataFrame(rows), "so", "test_acc")
    assert units["gain"].to_numpy() == pytest.approx([0.80 - (2 * 0.78 + 1.5) / 4,
                                                      0.84 - (2 * 0.80 + 1.5) / 4])
    assert units["gain"].mean() == pytest.approx(0.82 - 0.77)
    assert units["n_extra_baseline"].tolist() == [2, 2]
    assert units["matching"].tolist() == ["seed", "seed"]


def test_order_matched_and_extra_baseline_runs_together():
    """so at seeds 0 and 4, the baseline at 0, 5 and 6: seed 0 pairs by seed, so's seed 4 with the
    baseline's seed 5 (order), and the baseline's seed 6 is one extra run (k = 2, m = 1):
    g = t - (2 c + 0.60) / 3."""
    rows = [run(8, "so", 0, 0.80), run(8, "so", 4, 0.90),
            run(8, "none", 0, 0.70), run(8, "none", 5, 0.75), run(8, "none", 6, 0.60)]
    units = unit_gains(pd.DataFrame(rows), "so", "test_acc")
    assert units["seed"].tolist() == [0, 4]
    assert units["matching"].tolist() == ["seed", "order"]
    assert units["gain"].to_numpy() == pytest.approx([0.80 - (2 * 0.70 + 0.60) / 3,
                                                      0.90 - (2 * 0.75 + 0.60) / 3])
    assert units["n_extra_baseline"].tolist() == [1, 1]


def test_unit_gains_average_repeated_seeds_and_skip_missing_values():
    """so's seed 0 ran twice (0.80, 0.84: mean 0.82); a NaN and an unparsable value are no runs."""
    rows = [run(8, "so", 0, 0.80), run(8, "so", 0, 0.84), run(8, "so", 1, math.nan),
            run(8, "so", 2, "n/a"), run(8, "none", 0, 0.70), run(8, "none", 1, 0.71),
            run(8, "none", 2, 0.72)]
    units = unit_gains(pd.DataFrame(rows), "so", "test_acc")
    # so has a value at seed 0 only; the baseline's seeds 1 and 2 are extra (k = 1, m = 2)
    assert units["seed"].tolist() == [0]
    assert units["gain"].to_numpy() == pytest.approx([0.82 - (0.70 + 2 * 0.715) / 3])
    assert units["n_extra_baseline"].tolist() == [2]


def test_unit_gains_per_cell_need_both_sides_and_take_the_median_parameter_count():
    rows = [run(8, "so", 0, 0.80, num_params=1000), run(8, "none", 0, 0.70, num_params=1000),
            run(8, "none", 1, 0.71, num_params=4000),            # median of 3 runs: 1000
            run(16, "none", 0, 0.70), run(16, "none", 1, 0.70),  # no so run: no unit
            run(32, "so", 0, math.nan), run(32, "none", 0, 0.7),  # so has no value: no unit
            run(8, "so", 0, 0.85, width=2, num_params=3000), run(8, "none", 0, 0.80, width=2,
                                                                 num_params=3000)]
    units = unit_gains(pd.DataFrame(rows), "so", "test_acc")
    assert units[["depth", "width"]].values.tolist() == [[8, 1], [8, 2]]
    assert units["num_params"].tolist() == [1000.0, 3000.0]
    assert units["gain"].to_numpy() == pytest.approx([0.80 - (0.70 + 0.71) / 2, 0.05])


def test_unit_gains_without_parameter_counts_or_without_units():
    rows = [run(8, "so", 0, 0.80), run(8, "none", 0, 0.70)]
    units = unit_gains(pd.DataFrame(rows).drop(columns="num_params"), "so", "test_acc")
    assert len(units) == 1 and math.isnan(units["num_params"].item())
    empty = unit_gains(pd.DataFrame(rows), "dn", "test_acc")
    assert empty.empty and list(empty.columns) == UNIT_COLUMNS


def test_unit_gains_measure_against_the_named_baseline_in_the_named_metric():
    rows = [run(8, "so", 0, 0.80, clean_acc=0.60), run(8, "none", 0, 0.70, clean_acc=0.50),
            run(8, "ref", 0, 0.75, clean_acc=0.40)]
    units = unit_gains(pd.DataFrame(rows), "so", "clean_acc", baseline="ref")
    assert units["gain"].to_numpy() == pytest.approx([0.20])


# ---------------------------------------------------------------- cells and axes

def test_cell_key_labels_each_cell_once_also_without_a_width():
    frame = pd.DataFrame({"dataset": ["c"] * 4, "model": ["m"] * 4, "depth": [8, 16, 8, 32],
                          "width": [np.nan, np.nan, np.nan, 1.0]})
    labels = collapse._cell_key(frame).to_numpy()
    assert labels[0] == labels[2] and len(set(labels)) == 3
    assert np.isfinite(labels.astype(float)).all()


def test_capacity_axes_keep_axes_with_two_finite_values():
    units = pd.DataFrame({"num_params": [1024, 1024, 4096], "depth": [8, 8, 32],
                          "width": [1, 1, 1]})
    axes = collapse.capacity_axes(units)
    assert list(axes) == ["log2_params", "depth"]
    assert axes["log2_params"] == pytest.approx([10.0, 10.0, 12.0])
    assert axes["depth"] == pytest.approx([8.0, 8.0, 32.0])
    wide = collapse.capacity_axes(units.assign(num_params=[1024, np.nan, 4096], width=[1, 2, 2]))
    assert list(wide) == ["depth", "width"]


def test_collapse_metric_choices_are_accuracies_and_attacks_only():
    trials = pd.DataFrame(columns=["seed", "pgd_acc_8", "accuracy_auc", "val_acc", "fgsm_acc_2",
                                   "clean_acc", "epochs_to_90pct_best", "test_acc"])
    assert collapse.collapse_metric_choices(trials) == ["test_acc", "clean_acc", "fgsm_acc_2",
                                                        "pgd_acc_8"]
    everything = pd.DataFrame(columns=["best_test_acc", "corruption_acc_mean", "test_acc"])
    assert collapse.collapse_metric_choices(everything) == ["test_acc", "best_test_acc",
                                                            "corruption_acc_mean"]


def test_primary_label_names_the_arms_in_order():
    assert collapse.primary_label(["so", "dn"]) == "primary: mean of so, dn"


# ---------------------------------------------------------------- pooled_unit_gains

def test_pooled_units_average_the_arms_gains_per_seed():
    """Baseline at seeds 0, 1, 2; so at 0, 1 (one extra baseline run, 0.74: g = t - (2c + 0.74)
    / 3); dn at 0, 1, 2 (all paired, no extra run). Seed 0 and 1 pool both arms, seed 2 dn
    alone; n_extra_baseline is the largest of the pooled units'."""
    rows = [run(8, "none", 0, 0.70), run(8, "none", 1, 0.72), run(8, "none", 2, 0.74),
            run(8, "dn", 2, 0.79), run(8, "dn", 0, 0.76), run(8, "dn", 1, 0.80),
            run(8, "so", 0, 0.75), run(8, "so", 1, 0.80)]
    pooled = collapse.pooled_unit_gains(pd.DataFrame(rows), ["dn", "so"])
    assert list(pooled.columns) == POOLED_COLUMNS
    so = [0.75 - (2 * 0.70 + 0.74) / 3, 0.80 - (2 * 0.72 + 0.74) / 3]
    dn = [0.76 - 0.70, 0.80 - 0.72, 0.79 - 0.74]
    assert pooled["seed"].tolist() == [0, 1, 2]
    assert pooled["gain"].to_numpy() == pytest.approx([(so[0] + dn[0]) / 2, (so[1] + dn[1]) / 2,
                                                       dn[2]])
    assert pooled["n_arms"].tolist() == [2, 2, 1]
    assert pooled["n_extra_baseline"].tolist() == [1, 1, 0]
    assert pooled["matching"].tolist() == ["seed", "seed", "seed"]
    assert (pooled["num_params"] == 1024).all() and (pooled["depth"] == 8).all()


def test_pooled_units_are_order_matched_where_a_pooled_unit_was():
    """dn (listed first) ran seeds 0 and 7, the baseline 0 and 1: dn's seed 7 pairs with the
    baseline's seed 1 by order; so ran 0 and 1. Rows come sorted by cell and seed."""
    rows = [run(8, "none", 0, 0.70), run(8, "none", 1, 0.72), run(8, "dn", 0, 0.76),
            run(8, "dn", 7, 0.78), run(8, "so", 0, 0.74), run(8, "so", 1, 0.73),
            run(16, "none", 0, 0.70), run(16, "so", 0, 0.71)]
    pooled = collapse.pooled_unit_gains(pd.DataFrame(rows), ["dn", "so"])
    assert pooled[["depth", "seed"]].values.tolist() == [[8, 0], [8, 1], [8, 7], [16, 0]]
    assert pooled["matching"].tolist() == ["seed", "seed", "order", "seed"]
    assert pooled["gain"].to_numpy() == pytest.approx([0.05, 0.01, 0.06, 0.01])
    assert pooled["num_params"].tolist() == [1024, 1024, 1024, 2048]


def test_pooled_units_of_arms_without_units_are_empty():
    rows = [run(8, "none", 0, 0.70), run(8, "so", 0, 0.74)]
    for arms in (["dn"], [], ["dn", "cs"]):
        pooled = collapse.pooled_unit_gains(pd.DataFrame(rows), arms)
        assert pooled.empty and list(pooled.columns) == POOLED_COLUMNS
    # an arm without units leaves the other's units as they are
    alone = collapse.pooled_unit_gains(pd.DataFrame(rows), ["dn", "so"])
    assert alone["gain"].to_numpy() == pytest.approx([0.04]) and alone["n_arms"].tolist() == [1]


def test_pooled_units_read_the_named_metric_and_baseline():
    rows = [run(8, "ref", 0, 0.70, clean_acc=0.50), run(8, "none", 0, 0.0, clean_acc=0.0),
            run(8, "so", 0, 0.74, clean_acc=0.60)]
    pooled = collapse.pooled_unit_gains(pd.DataFrame(rows), ["so"], "clean_acc", baseline="ref")
    assert pooled["gain"].to_numpy() == pytest.approx([0.10])


# ---------------------------------------------------------------- fixed_cell_gains

# Two cells. Depth 8: so 0.80, 0.82, 0.84 at seeds 0-2 (squares about the mean 0.0008); baseline
# 0.78, 0.80, 0.82, 0.80 at seeds 0-3 (0.0008); same-seed cross products over seeds 0-2: 0.0008.
# Depth 16: so 0.85, 0.89 (0.0008); baseline 0.84, 0.86 (0.0002); cross products 0.0004.
# Pooled: var_a = 0.0016 / 3, var_b = 0.0010 / 4, cov = 0.0012 / 3 (df 3, 4, 3).
FIXED_ROWS = ([run(8, "so", s, v) for s, v in enumerate([0.80, 0.82, 0.84])]
              + [run(8, "none", s, v) for s, v in enumerate([0.78, 0.80, 0.82, 0.80])]
              + [run(16, "so", s, v) for s, v in enumerate([0.85, 0.89])]
              + [run(16, "none", s, v) for s, v in enumerate([0.84, 0.86])])


def test_fixed_cell_gains_pool_the_variances_over_cells_by_hand():
    fixed = collapse.fixed_cell_gains(pd.DataFrame(FIXED_ROWS[::-1]), ["so"])
    assert list(fixed.columns) == ["dataset", "model", "depth", "width", "num_params", "gain",
                                   "arm_seeds", "baseline_seeds", "paired", "gain_var"]
    assert fixed["depth"].tolist() == [8, 16] and fixed["num_params"].tolist() == [1024, 2048]
    assert fixed["gain"].to_numpy() == pytest.approx([0.82 - 0.80, 0.87 - 0.85])
    assert fixed[["arm_seeds", "baseline_seeds", "paired"]].values.tolist() == [[3, 4, 3],
                                                                                 [2, 2, 2]]
    var_a, var_b, cov = 0.0016 / 3, 0.0010 / 4, 0.0012 / 3
    # Var g = var_a / s + var_b / b - 2 p cov / (s b); at depth 16 it is negative, floored at 0
    assert fixed["gain_var"].to_numpy() == pytest.approx(
        [var_a / 3 + var_b / 4 - 2 * 3 * cov / 12, 0.0], abs=1e-12)
    assert var_a / 2 + var_b / 2 - 2 * 2 * cov / 4 < 0
    assert fixed.attrs["df"] == 3 and fixed.attrs["df_base"] == 4 and fixed.attrs["df_pair"] == 3
    assert fixed.attrs["var_arm"] == pytest.approx(var_a)
    assert fixed.attrs["var_base"] == pytest.approx(var_b)
    assert fixed.attrs["cov_pair"] == pytest.approx(cov)


def test_fixed_cell_gains_without_same_seed_pairs_have_no_covariance_term():
    """The baseline ran other seeds than so: Var g = var_a / s + var_b / b, cov 0."""
    rows = ([run(8, "so", s, v) for s, v in enumerate([0.80, 0.82, 0.84])]
            + [run(8, "none", s, v) for s, v in zip([5, 6], [0.70, 0.74])])
    fixed = collapse.fixed_cell_gains(pd.DataFrame(rows), ["so"])
    assert fixed["paired"].tolist() == [0] and fixed.attrs["cov_pair"] == 0.0
    assert fixed.attrs["df_pair"] == 0
    assert fixed["gain_var"].to_numpy() == pytest.approx([0.0004 / 3 + 0.0008 / 2])
    assert fixed["gain"].to_numpy() == pytest.approx([0.10])


def test_fixed_cell_gains_pair_only_two_or_more_shared_seeds():
    """One shared seed (0) is no covariance estimate: cov stays 0 on 0 df."""
    rows = ([run(8, "so", s, v) for s, v in zip([0, 1, 2], [0.80, 0.82, 0.84])]
            + [run(8, "none", s, v) for s, v in zip([0, 6], [0.70, 0.74])])
    fixed = collapse.fixed_cell_gains(pd.DataFrame(rows), ["so"])
    assert fixed["paired"].tolist() == [1] and fixed.attrs["df_pair"] == 0
    assert fixed.attrs["cov_pair"] == 0.0
    assert fixed["gain_var"].to_numpy() == pytest.approx([0.0004 / 3 + 0.0008 / 2])


def test_fixed_cell_gains_average_the_arms_at_seeds_where_every_arm_ran():
    """so and dn: seed 2 has no dn run, so the arms' mean a_s is taken at seeds 0 and 1 only,
    (0.80 + 0.90) / 2 and (0.84 + 0.94) / 2; so's repeated seed 0 (0.78, 0.82) averages first."""
    rows = [run(8, "so", 0, 0.78), run(8, "so", 0, 0.82), run(8, "so", 1, 0.84),
            run(8, "so", 2, 0.99), run(8, "dn", 0, 0.90), run(8, "dn", 1, 0.94),
            run(8, "dn", 2, "n/a"), run(8, "none", 0, 0.70), run(8, "none", 1, 0.72)]
    fixed = collapse.fixed_cell_gains(pd.DataFrame(rows), ["so", "dn"])
    assert fixed["arm_seeds"].tolist() == [2]
    assert fixed["gain"].to_numpy() == pytest.approx([(0.85 + 0.89) / 2 - 0.71])
    # arm means 0.85, 0.89; baseline 0.70, 0.72; paired at both seeds:
    # var_a = 0.0008, var_b = 0.0002, cov = 0.0004 (1 df each)
    assert fixed.attrs["var_arm"] == pytest.approx(0.0008)
    assert fixed.attrs["cov_pair"] == pytest.approx(0.0004)
    assert fixed["gain_var"].to_numpy() == pytest.approx([0.0004 + 0.0001 - 0.0004])


def test_fixed_cell_gains_skip_cells_missing_an_arm_or_a_second_seed():
    """Cells before and after the two full ones (depth 8, 16) are skipped, not an end."""
    rows = (FIXED_ROWS
            + [run(2, "so", s, 0.8) for s in (0, 1)] + [run(2, "none", 0, 0.7)]      # 1 base seed
            + [run(4, "so", 0, 0.8)] + [run(4, "none", s, 0.7) for s in (0, 1)]      # 1 arm seed
            + [run(5, "none", s, 0.7) for s in (0, 1)]                              # no arm
            + [run(32, "none", s, 0.7) for s in (0, 1)]                             # no arm
            + [run(8, "so", s, 0.8, model="vgg") for s in (0, 1)]                   # no baseline
            + [run(8, "cs", s, 0.9) for s in (0, 1)])                               # not an arm
    fixed = collapse.fixed_cell_gains(pd.DataFrame(rows), ["so"])
    assert fixed["depth"].tolist() == [8, 16] and fixed.attrs["df"] == 3
    both = collapse.fixed_cell_gains(pd.DataFrame(rows), ["so", "cs"])
    assert both["depth"].tolist() == [8]


def test_fixed_cell_gains_of_no_cell_have_no_variance():
    fixed = collapse.fixed_cell_gains(pd.DataFrame(FIXED_ROWS), ["dn"])
    assert fixed.empty and fixed.attrs["df"] == 0 and fixed.attrs["df_base"] == 0
    assert math.isnan(fixed.attrs["var_arm"]) and math.isnan(fixed.attrs["var_base"])
    assert fixed.attrs["cov_pair"] == 0.0 and fixed.attrs["df_pair"] == 0


def test_fixed_cell_gains_read_the_named_metric_and_baseline():
    rows = [run(8, r, s, 0.0, clean_acc=v) for r, s, v in
            [("so", 0, 0.60), ("so", 1, 0.64), ("ref", 0, 0.50), ("ref", 1, 0.50),
             ("none", 0, 0.0), ("none", 1, 0.0)]]
    fixed = collapse.fixed_cell_gains(pd.DataFrame(rows), ["so"], "clean_acc", baseline="ref")
    assert fixed["gain"].to_numpy() == pytest.approx([0.12])


def test_fixed_cell_gains_take_the_median_parameter_count():
    rows = [run(8, "so", s, 0.8, num_params=p) for s, p in ((0, 1000), (1, 1000))] + [
        run(8, "none", s, 0.7, num_params=p) for s, p in ((0, 1000), (1, 7000))]
    assert collapse.fixed_cell_gains(pd.DataFrame(rows), ["so"])["num_params"].tolist() == [1000]


# ---------------------------------------------------------------- cell_lack_of_fit

def lack_of_fit_reference(x, gain, gain_var, df):
    """F = sum_c (g_c - ghat_c)^2 / V_c / (C - 2) about the 1 / V_c weighted least-squares line
    (numpy's polyfit weights the residuals by 1 / sd), against F(C - 2, df)."""
    line = np.polyfit(x, gain, 1, w=1 / np.sqrt(gain_var))
    f = float(np.sum((gain - np.polyval(line, x)) ** 2 / gain_var)) / (len(x) - 2)
    return stats.f.sf(f, len(x) - 2, df)


def cells_frame(num_params, depth, gain, gain_var, df):
    frame = pd.DataFrame({"num_params": num_params, "depth": depth, "gain": gain,
                          "gain_var": gain_var})
    frame.attrs["df"] = df
    return frame


def test_lack_of_fit_weighs_each_cell_mean_by_its_own_variance():
    gain, var = np.array([0.03, 0.01, 0.025, 0.0]), np.array([1e-5, 2e-5, 1e-5, 4e-5])
    fixed = cells_frame([1024, 2048, 4096, 8192], [8, 14, 32, 56], gain, var, 6)
    found = collapse.cell_lack_of_fit(fixed)
    assert found["p_value"] == pytest.approx(lack_of_fit_reference(X, gain, var, 6))
    assert found["df_lof"] == 2 and found["df"] == 6
    by_depth = collapse.cell_lack_of_fit(fixed, "depth")
    assert by_depth["p_value"] == pytest.approx(
        lack_of_fit_reference(np.array([8.0, 14, 32, 56]), gain, var, 6))
    assert by_depth["p_value"] != pytest.approx(found["p_value"], rel=1e-3)


def test_lack_of_fit_needs_three_cells_and_the_seed_df():
    three = cells_frame([1024, 2048, 4096], [8, 16, 32], [0.03, 0.01, 0.025], [1e-5] * 3, 3)
    assert collapse.cell_lack_of_fit(three)["p_value"] == pytest.approx(lack_of_fit_reference(
        X[:3], np.array([0.03, 0.01, 0.025]), np.full(3, 1e-5), 3))
    two = collapse.cell_lack_of_fit(three.iloc[:2])
    assert math.isnan(two["p_value"]) and math.isnan(two["f"]) and math.isnan(two["offset_var"])
    assert two["df_lof"] == 0 and two["df"] == 0
    # a table without the df attribute (not fixed_cell_gains'): no test
    assert math.isnan(collapse.cell_lack_of_fit(pd.DataFrame(three))["p_value"])


# ---------------------------------------------------------------- detectable_drop

@pytest.mark.parametrize("drop_se, df, level, power", [
    (0.002, 4, 0.05, 0.8), (0.001, 1, 0.0125, 0.8), (0.003, 30, 0.05, 0.9)])
def test_detectable_drop_is_detected_with_the_stated_power(drop_se, df, level, power):
    """The drop D at which P(|T| > t_{1 - level/2, df}) = power, T noncentral t with
    noncentrality D / drop_se."""
    drop = collapse.detectable_drop(drop_se, df, level, power)
    assert power_at(drop, drop_se, df, level) == pytest.approx(power, abs=1e-6)
    # the normal approximation would be smaller: (z_{1-level/2} + z_power) x se
    assert drop > (stats.norm.ppf(1 - level / 2) + stats.norm.ppf(power)) * drop_se


def test_detectable_drop_defaults_to_80_percent_power_and_needs_a_test():
    drop = collapse.detectable_drop(0.002, 4, 0.05)
    assert power_at(drop, 0.002, 4, 0.05) == pytest.approx(0.8, abs=1e-6)
    assert math.isnan(collapse.detectable_drop(0.002, 0, 0.05))
    assert math.isnan(collapse.detectable_drop(0.0, 4, 0.05))


# ---------------------------------------------------------------- collapse_test

def test_the_slope_of_cell_mean_gains_is_t_tested_on_cells_minus_two_df():
    """so falls 0.42 pt per doubling: linregress of the cell means on log2(num_params) gives the
    slope, its t interval on 4 - 2 df and the two-sided p; alone in its family, Holm leaves p."""
    table = collapse_test(study({"so": FALLING}))
    assert list(table.columns) == TABLE_COLUMNS
    assert table["axis"].tolist() == [PRIMARY_AXIS, "depth"]
    row = primary_row(table)
    fit = stats.linregress(X, MEANS)
    half = stats.t.ppf(0.975, 2) * fit.stderr
    assert row["slope"] == pytest.approx(-0.0042) == pytest.approx(fit.slope)
    assert row["low"] == pytest.approx(fit.slope - half)
    assert row["high"] == pytest.approx(fit.slope + half)
    assert row["p_value"] == pytest.approx(fit.pvalue) and row["p_holm"] == row["p_value"]
    assert row["p_value"] < 0.05 and row["verdict"] == "gains shrink with capacity"
    assert (row["n_units"], row["n_cells"], row["n_order_matched"]) == (8, 4, 0)
    assert (row["test_family"], row["family_size"]) == ("claim 2", 1)
    assert (row["dataset"], row["model"], row["metric"]) == ("c10", "resnet", "test_acc")
    assert row["min_attainable_p"] == 0.0 and row["note"] is None
    assert row["sd_within"] == pytest.approx(0.003)
    assert row["capacity_range"] == 3.0
    # the drop over the range: minus the slope, its interval reversed, times 3 doublings
    assert row["drop"] == pytest.approx(3 * 0.0042)
    assert row["drop_low"] == pytest.approx(-3 * (fit.slope + half))
    assert row["drop_high"] == pytest.approx(-3 * (fit.slope - half))
    assert (row["claimed_drop"], row["alpha"]) == (0.01, 0.05)


def test_the_depth_axis_is_descriptive_and_has_no_holm_p():
    depth = collapse_test(study({"so": FALLING})).set_index("axis").loc["depth"]
    fit = stats.linregress([8.0, 16, 32, 64], MEANS)
    assert depth["slope"] == pytest.approx(fit.slope)
    assert depth["p_value"] == pytest.approx(fit.pvalue)
    assert depth["verdict"] == "descriptive" and math.isnan(depth["p_holm"])
    assert depth["capacity_range"] == 56.0
    assert depth["drop"] == pytest.approx(-56 * fit.slope)
    # its lack of fit about the line on depth (balanced, paired: V = 0.003^2 / 2 per cell)
    residual_ms = np.sum((MEANS - fit.intercept - fit.slope * np.array([8, 16, 32, 64])) ** 2) / 2
    assert depth["lack_of_fit_p"] == pytest.approx(
        stats.f.sf(residual_ms / (0.003 ** 2 / 2), 2, 4))


def test_the_lack_of_fit_and_detectable_drop_of_a_balanced_paired_design():
    """Every cell has 2 seeds of both sides, paired: the variance of a cell mean is
    sd_within^2 / 2 (the pooled variance of the paired differences over 2), so the lack-of-fit F
    is the cell means' residual mean square about the line over it, on (C - 2, N - C) = (2, 4)
    df. The detectable drop at alpha: se of the drop = sd_within / sqrt(2) / sqrt(Sxx) x range,
    Sxx = 5, on 2 df."""
    row = primary_row(collapse_test(study({"so": FALLING})))
    fit = stats.linregress(X, MEANS)
    residual_ms = np.sum((MEANS - fit.intercept - fit.slope * X) ** 2) / 2
    assert residual_ms == pytest.approx(9e-7)
    assert row["lack_of_fit_p"] == pytest.approx(stats.f.sf(residual_ms / (0.003 ** 2 / 2), 2, 4))
    drop_se = 0.003 / math.sqrt(2) / math.sqrt(5) * 3
    assert power_at(row["detectable_drop"], drop_se, 2, 0.05) == pytest.approx(0.8, abs=1e-6)


def test_detectable_drop_uses_units_per_cell_and_the_spacing_of_the_cells():
    """Three seeds in each of 3 cells half a doubling apart (x = 10, 10.5, 11: Sxx = 0.5, range
    1): se of the drop = sd_within / sqrt(3) / sqrt(0.5) x 1, on 1 df."""
    gains = {"so": {8: [0.020, 0.022, 0.024], 11: [0.019, 0.020, 0.021], 16: [0.016, 0.020, 0.018]}}
    runs = study(gains)
    runs["num_params"] = runs["depth"].map({8: 1024, 11: 1024 * math.sqrt(2), 16: 2048})
    row = primary_row(collapse_test(runs))
    # within squares 8e-6, 2e-6, 8e-6 on 6 df: sd_within = sqrt(3e-6)
    assert row["sd_within"] == pytest.approx(math.sqrt(3e-6))
    assert row["capacity_range"] == pytest.approx(1.0)
    drop_se = math.sqrt(3e-6) / math.sqrt(3) / math.sqrt(0.5)
    assert power_at(row["detectable_drop"], drop_se, 1, 0.05) == pytest.approx(0.8, abs=1e-6)


def test_a_flat_precise_gain_is_no_trend_and_inconclusive_against_a_smaller_claim():
    flat = {"so": {8: [0.0100, 0.0102], 16: [0.0103, 0.0101], 32: [0.0099, 0.0101],
                   64: [0.0102, 0.0100]}}
    table = collapse_test(study(flat))
    assert primary_row(table)["verdict"] == "no trend"
    fit = stats.linregress(X, [0.0101, 0.0102, 0.0100, 0.0101])
    assert 3 * (abs(fit.slope) + stats.t.ppf(0.975, 2) * fit.stderr) < 0.01  # inside +-1 pt
    strict = collapse_test(study(flat), claimed_drop=0.0001)
    assert primary_row(strict)["verdict"] == "inconclusive"
    assert (strict["claimed_drop"] == 0.0001).all()


def test_rising_gains_grow_and_alpha_sets_the_interval_and_the_rejection():
    rising = {d: [-g for g in values] for d, values in FALLING.items()}
    row = primary_row(collapse_test(study({"so": rising})))
    assert row["verdict"] == "gains grow"
    fit = stats.linregress(X, -MEANS)
    strict = primary_row(collapse_test(study({"so": rising}), alpha=0.001))
    half = stats.t.ppf(1 - 0.001 / 2, 2) * fit.stderr
    assert strict["high"] == pytest.approx(fit.slope + half)
    assert strict["alpha"] == 0.001 and fit.pvalue > 0.001
    assert strict["verdict"] == "inconclusive"


def test_holm_families_claim_2_outside_claim_2_and_every_metric():
    """so and dn are claim 2 (family), cs outside; two metrics: claim 2 holds 2 x 2 rows, Holm
    over them; the outside family 2 rows; the detectable drop at alpha / family size."""
    gains = {"so": FALLING,
             "dn": {8: [0.02, 0.03], 16: [0.03, 0.024], 32: [0.02, 0.03], 64: [0.026, 0.02]},
             "cs": {8: [0.01, 0.02], 16: [0.012, 0.016], 32: [0.01, 0.02], 64: [0.02, 0.01]}}
    runs = study(gains)
    runs["best_test_acc"] = runs["test_acc"] + 0.001 * runs["seed"]
    table = collapse_test(runs, metric=["test_acc", "best_test_acc"], family={"so", "dn"})
    primary = table[table["axis"] == PRIMARY_AXIS].set_index(["regularizer", "metric"])
    assert sorted(primary.index) == sorted((r, m) for r in ("cs", "dn", "so")
                                           for m in ("test_acc", "best_test_acc"))
    assert table["regularizer"].drop_duplicates().tolist() == ["cs", "dn", "so"]
    claim = primary[primary["test_family"] == "claim 2"]
    outside = primary[primary["test_family"] == "outside claim 2"]
    assert sorted(claim.index.get_level_values(0)) == ["dn", "dn", "so", "so"]
    assert (claim["family_size"] == 4).all() and (outside["family_size"] == 2).all()
    # Holm over 4: the sorted p times 4, 3, 2, 1, running maximum, capped at 1
    p = claim["p_value"].sort_values()
    expected = np.maximum.accumulate(np.minimum(1.0, p.to_numpy() * [4, 3, 2, 1]))
    assert claim.loc[p.index, "p_holm"].to_numpy() == pytest.approx(expected)
    assert outside["p_holm"].to_numpy() == pytest.approx(
        holm_pair(*outside["p_value"].to_numpy()))
    so = primary.loc[("so", "test_acc")]
    drop_se = 0.003 / math.sqrt(2) / math.sqrt(5) * 3
    assert power_at(so["detectable_drop"], drop_se, 2, 0.05 / 4) == pytest.approx(0.8, abs=1e-6)
    cs = primary.loc[("cs", "test_acc")]
    cs_se = cs["sd_within"] / math.sqrt(2) / math.sqrt(5) * 3
    assert power_at(cs["detectable_drop"], cs_se, 2, 0.05 / 2) == pytest.approx(0.8, abs=1e-6)
    fit = stats.linregress(X, MEANS)  # so's p ~ 0.01 in both metrics, the smallest: times 4
    assert so["p_holm"] == pytest.approx(4 * fit.pvalue)
    assert so["verdict"] == "gains shrink with capacity"
    descriptive = table[table["axis"] == "depth"]
    assert (descriptive["verdict"] == "descriptive").all() and descriptive["p_holm"].isna().all()


def test_every_regularizer_is_in_claim_2_by_default_and_families_are_per_dataset_and_model():
    """Every (dataset, model) gets a row for every regularizer of the runs (dn, run only on
    c100, is an untestable row elsewhere); all six rows are claim 2, Holm over the 4 p-values."""
    runs = pd.concat([study({"so": FALLING}), study({"so": FALLING}, model="vgg"),
                      study({"so": FALLING, "dn": FALLING}, dataset="c100")])
    table = collapse_test(runs)
    primary = table[table["axis"] == PRIMARY_AXIS]
    assert primary[["dataset", "model", "regularizer"]].values.tolist() == [
        ["c10", "resnet", "dn"], ["c10", "resnet", "so"], ["c10", "vgg", "dn"],
        ["c10", "vgg", "so"], ["c100", "resnet", "dn"], ["c100", "resnet", "so"]]
    assert (primary["test_family"] == "claim 2").all() and (primary["family_size"] == 6).all()
    assert primary["note"].tolist()[:3:2] == ["needs 2 capacities"] * 2
    fit = stats.linregress(X, MEANS)
    tested = primary[primary["p_value"].notna()]
    assert len(tested) == 4
    assert tested["p_holm"].to_numpy() == pytest.approx([min(1.0, 4 * fit.pvalue)] * 4)
    drop_se = 0.003 / math.sqrt(2) / math.sqrt(5) * 3
    assert power_at(tested["detectable_drop"].iloc[0], drop_se, 2, 0.05 / 6) == pytest.approx(
        0.8, abs=1e-6)
    # at alpha 3 %, p ~ 0.01 rejects alone but not after Holm (4 p ~ 0.04)
    strict = collapse_test(runs, alpha=0.03)
    strict = strict[(strict["axis"] == PRIMARY_AXIS) & strict["p_value"].notna()]
    assert (strict["p_value"] < 0.03).all() and (strict["verdict"] == "inconclusive").all()


def test_the_named_baseline_is_the_control_of_every_row_and_of_the_lack_of_fit():
    runs = study({"so": FALLING}).replace({"regularizer": {"none": "ref"}})
    table = collapse_test(runs, baseline="ref", primary=["so"])
    assert primary_row(table)["slope"] == pytest.approx(-0.0042)
    assert set(table["regularizer"]) == {"so", "primary: mean of so"}
    # the balanced paired design's lack of fit: F = 9e-7 / (0.003^2 / 2) on (2, 4) df
    expected = stats.f.sf(9e-7 / (0.003 ** 2 / 2), 2, 4)
    assert primary_row(table)["lack_of_fit_p"] == pytest.approx(expected)
    assert primary_row(table, "primary: mean of so")["lack_of_fit_p"] == pytest.approx(expected)


def test_the_primary_contrast_pools_the_arms_and_is_tested_alone():
    """primary so, dn: the pooled unit is the arms' mean gain per seed; its row is its own family
    of one (p_holm = p) in primary_metric, while the per-arm rows stay in claim 2."""
    dn = {8: [0.020, 0.024], 16: [0.018, 0.026], 32: [0.020, 0.014], 64: [0.012, 0.016]}
    runs = study({"so": FALLING, "dn": dn})
    runs["clean_acc"] = runs["test_acc"].where(runs["regularizer"] == "none", 0.5)
    table = collapse_test(runs, metric="clean_acc", primary=["so", "dn"])
    primary = table[table["test_family"] == "primary"]
    assert primary["axis"].tolist() == [PRIMARY_AXIS, "depth"]
    row = primary.iloc[0]
    assert row["regularizer"] == "primary: mean of so, dn" and row["metric"] == "test_acc"
    assert (row["dataset"], row["model"]) == ("c10", "resnet")
    assert row["family_size"] == 1 and row["p_holm"] == row["p_value"]
    pooled = {d: np.mean([FALLING[d], dn[d]], axis=0) for d in FALLING}
    means = np.array([pooled[d].mean() for d in sorted(pooled)])
    fit = stats.linregress(X, means)
    assert row["slope"] == pytest.approx(fit.slope) and row["p_value"] == pytest.approx(fit.pvalue)
    assert (row["n_units"], row["n_cells"]) == (8, 4)
    squares = sum(((pooled[d] - pooled[d].mean()) ** 2).sum() for d in pooled)
    assert row["sd_within"] == pytest.approx(math.sqrt(squares / 4))
    residual_ms = np.sum((means - fit.intercept - fit.slope * X) ** 2) / 2
    assert row["lack_of_fit_p"] == pytest.approx(
        stats.f.sf(residual_ms / (squares / 4 / 2), 2, 4))
    arms = table[table["test_family"] == "claim 2"]
    assert set(arms["regularizer"]) == {"so", "dn"} and (arms["family_size"] == 2).all()
    assert set(arms["metric"]) == {"clean_acc"}


def test_fixed_cells_test_the_slope_over_these_cells_on_the_seeds_df():
    """primary_cells 'fixed': b = sum_c w_c g_c (the OLS slope of the cell means) with
    se = sqrt(sum_c w_c^2 Var g_c); balanced and paired, Var g_c = sd_within^2 / 2, so
    se = 0.003 / sqrt(2) / sqrt(Sxx), on sum(s_c - 1) = 4 df instead of C - 2 = 2."""
    table = collapse_test(study({"so": FALLING}), primary=["so"], primary_cells="fixed")
    fixed = table[table["test_family"] == "primary"].set_index("axis")
    row = fixed.loc[PRIMARY_AXIS]
    se = 0.003 / math.sqrt(2) / math.sqrt(5)
    assert row["slope"] == pytest.approx(-0.0042)
    half = stats.t.ppf(0.975, 4) * se
    assert row["low"] == pytest.approx(-0.0042 - half)
    assert row["high"] == pytest.approx(-0.0042 + half)
    assert row["p_value"] == pytest.approx(2 * stats.t.sf(0.0042 / se, 4))
    assert row["note"] == ("fixed cells: the slope over these 4 cells, its error from the "
                           "seeds within them (4 df)")
    assert power_at(row["detectable_drop"], se * 3, 4, 0.05) == pytest.approx(0.8, abs=1e-6)
    depth = fixed.loc["depth"]
    depth_x = np.array([8.0, 16, 32, 64])
    sxx = float(((depth_x - depth_x.mean()) ** 2).sum())
    assert depth["slope"] == pytest.approx(stats.linregress(depth_x, MEANS).slope)
    assert depth["high"] - depth["slope"] == pytest.approx(
        stats.t.ppf(0.975, 4) * 0.003 / math.sqrt(2) / math.sqrt(sxx))
    # the random-cells row of the same arm is unchanged
    random = primary_row(table)
    assert random["test_family"] == "claim 2" and pd.isna(random["note"])
    assert random["p_value"] == pytest.approx(stats.linregress(X, MEANS).pvalue)


def test_fixed_cells_give_a_test_with_two_cells_where_random_cells_cannot():
    two = {"so": {8: FALLING[8], 16: FALLING[16]}}
    table = collapse_test(study(two), primary=["so"], primary_cells="fixed")
    fixed = primary_row(table, "primary: mean of so")
    # within squares 8e-6 + 18e-6 on 2 df: variance 13e-6; Var g_c = 13e-6 / 2; Sxx = 0.5
    se = math.sqrt(13e-6) / math.sqrt(2) / math.sqrt(0.5)
    assert fixed["slope"] == pytest.approx(-0.003)
    assert fixed["p_value"] == pytest.approx(2 * stats.t.sf(0.003 / se, 2))
    assert fixed["min_attainable_p"] == 0.0
    assert fixed["note"].startswith("fixed cells: the slope over these 2 cells")
    random = primary_row(table)
    assert random["note"] == "2 cells: a slope test on cell means needs 3"
    assert math.isnan(random["p_value"]) and random["min_attainable_p"] == 1.0
    assert math.isnan(random["detectable_drop"]) and random["verdict"] == "inconclusive"
    assert math.isnan(random["lack_of_fit_p"])


def test_fixed_cells_with_one_testable_cell_fall_back_to_the_random_cells_slope():
    """Only depth 8 has two seeds: the other cells have units but no cell mean with a variance,
    so one fixed cell is no fixed-cells test and the random-cells slope stands."""
    gains = {"so": {8: FALLING[8], 16: [0.025], 32: [0.019]}}
    table = collapse_test(study(gains), primary=["so"], primary_cells="fixed")
    row = primary_row(table, "primary: mean of so")
    assert pd.isna(row["note"]) and row["n_cells"] == 3
    fit = stats.linregress([10.0, 11, 12], [0.028, 0.025, 0.019])
    assert row["slope"] == pytest.approx(fit.slope) and row["p_value"] == pytest.approx(fit.pvalue)
    one = {"so": {8: FALLING[8], 16: [0.025]}}
    row = primary_row(collapse_test(study(one), primary=["so"], primary_cells="fixed"),
                      "primary: mean of so")
    assert row["note"] == "2 cells: a slope test on cell means needs 3"


def test_one_capacity_is_an_untestable_row():
    table = collapse_test(study({"so": {8: [0.01, 0.02]}}))
    assert len(table) == 1
    row = table.iloc[0]
    assert row["axis"] == PRIMARY_AXIS and row["note"] == "needs 2 capacities"
    assert row["min_attainable_p"] == 1.0 and row["verdict"] == "inconclusive"
    assert (row["n_units"], row["n_cells"], row["n_order_matched"]) == (2, 1, 0)
    assert math.isnan(row["slope"]) and math.isnan(row["p_holm"])


def test_two_units_in_two_cells_have_axes_but_no_test():
    table = collapse_test(study({"so": {8: [0.01], 16: [0.02]}}))
    row = primary_row(table)
    assert row["note"] == "2 cells: a slope test on cell means needs 3"
    assert row["slope"] == pytest.approx(0.01) and math.isnan(row["sd_within"])
    one = collapse_test(study({"so": {8: [0.01]}}))
    assert one["note"].tolist() == ["needs 2 capacities"] and one["n_units"].tolist() == [1]


def test_no_units_is_an_untestable_row_with_zero_counts():
    runs = pd.DataFrame([run(8, "none", 0, 0.7), run(8, "so", 1, math.nan),
                         run(16, "none", 0, 0.7), run(16, "so", 0, math.nan)])
    row = collapse_test(runs).iloc[0]
    assert (row["n_units"], row["n_cells"], row["n_order_matched"]) == (0, 0, 0)
    assert row["note"] == "needs 2 capacities"


def test_order_matched_units_are_counted():
    runs = study({"so": FALLING})
    shifted = (runs["regularizer"] == "so") & (runs["depth"] == 64)
    runs.loc[shifted, "seed"] += 10
    row = primary_row(collapse_test(runs))
    assert row["n_order_matched"] == 2 and row["slope"] == pytest.approx(-0.0042)


def test_a_width_axis_when_widths_vary():
    gains = {"so": {8: [0.02, 0.03], 16: [0.01, 0.02]}}
    runs = pd.concat([study(gains), study(gains).assign(width=2, num_params=lambda f: 2 * f[
        "num_params"], test_acc=lambda f: f["test_acc"] + 0.005 * (f["regularizer"] == "so"))])
    table = collapse_test(runs).set_index("axis")
    assert list(table.index) == [PRIMARY_AXIS, "depth", "width"]
    # cells (depth, width): gains 0.025 (8, 1), 0.015 (16, 1), 0.03 (8, 2), 0.02 (16, 2)
    width = stats.linregress([1.0, 1, 2, 2], [0.025, 0.015, 0.03, 0.02])
    assert table.loc["width", "slope"] == pytest.approx(width.slope) == pytest.approx(0.005)
    assert table.loc["width", "p_value"] == pytest.approx(width.pvalue)
    assert table.loc["width", "capacity_range"] == 1.0


# ---------------------------------------------------------------- inputs as tables come

def test_capacity_axes_read_python_numbers_and_drop_an_axis_with_a_missing_value():
    """Columns of Python objects (as a concat with an empty table leaves them) read as numbers;
    a width not recorded (None) takes the width axis out."""
    units = pd.DataFrame({"num_params": pd.Series([1024, 2048, 4096], dtype=object),
                          "depth": pd.Series([8, 16, 32], dtype=object),
                          "width": pd.Series([1, None, 2], dtype=object)})
    axes = collapse.capacity_axes(units)
    assert list(axes) == ["log2_params", "depth"]
    assert axes["log2_params"] == pytest.approx([10.0, 11.0, 12.0])
    assert axes["depth"] == pytest.approx([8.0, 16.0, 32.0])
    widths = collapse.capacity_axes(units.assign(width=pd.Series([1, 2, 2], dtype=object)))
    assert widths["width"] == pytest.approx([1.0, 2.0, 2.0])


def test_lack_of_fit_reads_parameter_counts_stored_as_python_numbers():
    gain = np.array([0.03, 0.01, 0.025])
    three = cells_frame(pd.Series([1024, 2048, 4096], dtype=object), [8, 16, 32], gain,
                        [1e-5] * 3, 3)
    assert collapse.cell_lack_of_fit(three)["p_value"] == pytest.approx(
        lack_of_fit_reference(X[:3], gain, np.full(3, 1e-5), 3))


def test_pooled_units_keep_cells_whose_width_is_not_recorded():
    """Units of two cells without a width (NaN): each cell and seed stays its own pooled unit."""
    units = pd.DataFrame({"dataset": "c", "model": "m", "depth": [8, 8, 16], "width": math.nan,
                          "num_params": [1024, 1024, 2048], "seed": [0, 0, 0],
                          "gain": [0.01, 0.03, 0.05], "matching": "seed",
                          "n_extra_baseline": 0})
    pooled = collapse._pooled([units.iloc[[0, 2]], units.iloc[[1]]])
    assert pooled["depth"].tolist() == [8, 16]
    assert pooled["gain"].to_numpy() == pytest.approx([0.02, 0.05])
    assert pooled["n_arms"].tolist() == [2, 1]


def test_a_family_without_a_recorded_model_still_gets_its_rows():
    runs = study({"so": FALLING}).assign(model=math.nan)
    table = collapse_test(runs)
    assert len(table) >= 1 and table["regularizer"].eq("so").all()
    assert table["dataset"].eq("c10").all() and table["model"].isna().all()


def test_a_metric_other_than_test_acc_needs_no_test_acc_column():
    runs = study({"so": FALLING}, metric="clean_acc").drop(columns="test_acc")
    row = primary_row(collapse_test(runs, metric="clean_acc"))
    assert row["metric"] == "clean_acc" and row["slope"] == pytest.approx(-0.0042)


def test_a_primary_arm_without_runs_leaves_the_others_pooled():
    table = collapse_test(study({"so": FALLING}), primary=["so", "srip"])
    row = primary_row(table, "primary: mean of so, srip")
    assert row["slope"] == pytest.approx(-0.0042) and row["n_units"] == 8
    assert (row["dataset"], row["model"]) == ("c10", "resnet")


def test_fixed_cells_apply_to_the_primary_row_only_at_the_tables_alpha():
    table = collapse_test(study({"so": FALLING, "dn": FALLING}), primary=["so", "dn"],
                          primary_cells="fixed", alpha=0.1)
    rows = table[table["axis"] == PRIMARY_AXIS].set_index("regularizer")
    assert rows.loc[["dn", "so"], "note"].isna().all()
    fit = stats.linregress(X, MEANS)
    assert rows.loc[["dn", "so"], "p_value"].to_numpy() == pytest.approx([fit.pvalue] * 2)
    fixed = rows.loc["primary: mean of so, dn"]
    assert fixed["note"].startswith("fixed cells: the slope over these 4 cells")
    # the interval at 1 - alpha = 90 %, on the 4 seed df
    se = 0.003 / math.sqrt(2) / math.sqrt(5)
    assert fixed["high"] == pytest.approx(-0.0042 + stats.t.ppf(0.95, 4) * se)


def test_slope_rows_without_cell_means_have_no_lack_of_fit():
    units = collapse.unit_gains(study({"so": FALLING}), "so", "test_acc")
    rows = collapse._slope_rows({"regularizer": "so"}, units, 0.05, 0.05)
    assert [r["axis"] for r in rows] == [PRIMARY_AXIS, "depth"]
    assert all(math.isnan(r["lack_of_fit_p"]) for r in rows)
    assert rows[0]["slope"] == pytest.approx(-0.0042)


def test_verdict_reads_a_missing_value_given_as_none_as_no_test():
    found = collapse_verdict([None, -1.0], [None, 0.01], [None, 0.02], [None, 0.04],
                             [None, 0.0], [None, 0.05])
    assert found.tolist() == ["inconclusive", "gains shrink with capacity"]


def test_fixed_cell_gains_ignore_missing_values_in_other_columns_and_keep_unrecorded_widths():
    """A trials table has columns that are empty for some rows (relaxation of the baseline);
    a cell whose width is not recorded is still a cell."""
    rows = [{**r, "relaxation": math.nan if r["regularizer"] == "none" else 0.3}
            for r in FIXED_ROWS]
    fixed = collapse.fixed_cell_gains(pd.DataFrame(rows), ["so"])
    assert fixed["gain"].to_numpy() == pytest.approx([0.02, 0.02])
    assert fixed["baseline_seeds"].tolist() == [4, 2]
    unrecorded = collapse.fixed_cell_gains(pd.DataFrame(FIXED_ROWS).assign(width=math.nan),
                                           ["so"])
    assert unrecorded["gain"].to_numpy() == pytest.approx([0.02, 0.02])
    assert unrecorded.attrs["df"] == 3


def test_a_cell_with_a_missing_key_is_one_cell_with_its_units():
    """A cell column missing in the data (width NaN, as tables written before the column read
    back) still makes one cell: its runs pair with each other, as fixed_cell_gains pairs them
    (NaN is not equal to itself, so keying on the raw values made every row its own cell)."""
    rows = [run(8, name, seed, acc, width=math.nan)
            for name, seed, acc in (("so", 0, 0.72), ("none", 0, 0.70),
                                    ("so", 1, 0.75), ("none", 1, 0.71))]
    units = collapse.unit_gains(pd.DataFrame(rows), "so", "test_acc")
    assert sorted(units["gain"].round(12)) == [0.02, 0.04]
    assert units["num_params"].to_list() == [1024, 1024] and units["matching"].eq("seed").all()
