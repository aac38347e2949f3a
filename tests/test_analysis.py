"""Statistics of the leaderboard: small deterministic inputs, properties, and simulations with
fixed seeds (vectorized, so the whole file runs in seconds)."""
import math

import numpy as np
import pandas as pd
import pytest

from korth_bench.analysis import (
    claims, collapse, convergence, entries, power, simulation as sim, stats, strength, verdicts)
from korth_bench.analysis.collapse import PRIMARY_AXIS, collapse_test, collapse_verdict, unit_gains
from korth_bench.errors import ConfigError

SWEEPS = 200  # simulated sweeps per scenario here; benchmarks/bench_verdicts.py runs >= 1,000
EFFICIENCY_DEPTHS = (8, 14, 20, 26, 32, 44)  # the CPU capacity study's six cells
EIGHT_ARMS = ("cs", "dn", "dn_relaxed", "dso", "mc", "ocnn", "so", "srip")


def make_tables(*, seed=0, depths=(8, 14, 20, 32), seeds=(0, 1, 2, 3, 4, 5),
                planted=None, noise=0.004, seed_effect=0.01, capacity_effect=0.01,
                dataset="synthetic", model="resnet", epochs=4):
    """Four synthetic result tables with planted gains.

    Accuracy of one run = 0.80 + capacity_effect per doubling of parameters (every regularizer)
    + a per-seed offset shared by every regularizer of a cell (so pairing by seed removes it)
    + the regularizer's planted gain at the cell's capacity + noise.
    `planted` maps regularizer -> (gain at the smallest model, slope per doubling of parameters).
    Orthogonality is planted too: dn reaches the lowest cosines; fm similarity rises with them.
    """
    planted = planted or {"none": (0.0, 0.0), "so": (0.01, 0.0), "dn": (0.02, -0.01),
                          "dn_relaxed": (0.01, 0.0)}
    rng = np.random.default_rng(seed)
    ortho_level = {"none": 0.30, "so": 0.10, "dn": 0.05, "dn_relaxed": 0.12, "cs": 0.2}
    trials, curves, layers, robust = [], [], [], []
    for depth in depths:
        num_params = 17_000 * depth
        doublings = math.log2(depth / depths[0])
        offsets = rng.normal(0, seed_effect, len(seeds))
        for regularizer, (gain0, slope) in planted.items():
            for seed_value, offset in zip(seeds, offsets):
                accuracy = (0.80 + capacity_effect * doublings + offset + gain0
                            + slope * doublings + rng.normal(0, noise))
                trial_id = f"{dataset}-{model}-{depth}-{regularizer}-{seed_value}"
                cos_mean = ortho_level[regularizer] * (1 + 0.1 * rng.standard_normal())
                trials.append({
                    "sweep": "synthetic-sweep", "trial_id": trial_id, "status": "completed",
                    "error": None, "dataset": dataset, "model": model, "depth": depth,
                    "width": 1, "regularizer": regularizer,
                    "coefficient": 0.0 if regularizer == "none" else 0.01,
                    "relaxation": 0.3 if regularizer == "dn_relaxed" else None,
                    "seed": seed_value, "epochs": epochs, "num_params": num_params,
                    "test_acc": accuracy, "val_acc": accuracy + rng.normal(0, 0.002),
                    "best_test_acc": accuracy + 0.003, "clean_acc": accuracy,
                    "corruption_acc_mean": accuracy - 0.2, "pgd_acc_8_255": 0.05,
                    "epochs_to_90pct_best": epochs - 1, "accuracy_auc": accuracy - 0.1,
                    "ortho_cos_mean": cos_mean, "fm_sim_mean": 0.2 + cos_mean + rng.normal(0, 0.01),
                    "device": "cpu (synthetic)", "config_hash": trial_id.ljust(64, "0"),
                    "wall_time_s": 1.0})
                for epoch in range(epochs):
                    curves.append({"trial_id": trial_id, "epoch": epoch,
                                   "test_acc": accuracy * (epoch + 1) / epochs})
                for layer in range(3):
                    layers.append({"trial_id": trial_id, "epoch": epochs - 1,
                                   "layer": f"conv{layer}", "kind": "conv",
                                   "gram_residual_fro": 4 * cos_mean, "diag_deviation": cos_mean,
                                   "cos_mean": cos_mean, "cos_max": 2 * cos_mean,
                                   "fm_sim": 0.3, "dead_channels": 0})
                for severity in (1, 3, 5):
                    robust.append({"trial_id": trial_id, "kind": "corruption",
                                   "name": "gaussian_noise", "severity": severity, "eps": None,
                                   "accuracy": accuracy - 0.08 * severity, "num_examples": 100})
                robust.append({"trial_id": trial_id, "kind": "attack", "name": "pgd",
                               "severity": 8, "eps": 8 / 255, "accuracy": 0.05,
                               "num_examples": 100})
    return {"trials": pd.DataFrame(trials), "epochs": pd.DataFrame(curves),
            "layers": pd.DataFrame(layers), "robustness": pd.DataFrame(robust)}


def run_analysis(frames, **options):
    return claims.analyze(frames, **options)


@pytest.fixture(scope="module")
def planted():
    """The analysis of make_tables() (one simulation, shared by the tests that only read it)."""
    return run_analysis(make_tables())


# ---------------------------------------------------------------- small exact cases

def test_t_interval_brackets_the_mean_and_counts_finite_values():
    estimate = stats.t_interval(np.array([1.0, 2.0, 3.0, np.nan]))
    assert estimate["n"] == 3 and estimate["mean"] == 2.0 and estimate["sd"] == 1.0
    half = 4.302652729911275 / math.sqrt(3)  # t_{0.975, 2}
    assert estimate["low"] == pytest.approx(2 - half)
    assert estimate["high"] == pytest.approx(2 + half)
    assert math.isnan(stats.t_interval(np.array([5.0]))["low"])


def test_sign_flip_is_exact_for_three_seeds():
    # all 3 differences positive: only the all-plus and all-minus patterns are as extreme
    rng = np.random.default_rng(0)
    assert stats.sign_flip_p_value(np.array([0.01, 0.02, 0.03]), rng) == pytest.approx(2 / 8)
    assert stats.sign_flip_p_value(np.array([0.01, -0.01]), rng) == 1.0


def test_permutation_p_value_is_exact_for_small_samples():
    rng = np.random.default_rng(0)
    # 3 vs 3 fully separated: 2 of the 20 relabellings are as extreme
    p = stats.permutation_p_value(np.array([4.0, 5.0, 6.0]), np.array([1.0, 2.0, 3.0]), rng)
    assert p == pytest.approx(2 / 20)


def test_holm_matches_hand_computation_and_skips_nan():
    adjusted = stats.holm_adjust([0.01, 0.04, np.nan, 0.03])
    np.testing.assert_allclose(adjusted[[0, 3, 1]], [0.03, 0.06, 0.06])
    assert math.isnan(adjusted[2])


def test_verdict_needs_equivalence_for_no_trend_and_a_test_that_can_reject():
    verdicts = collapse_verdict(
        slope=np.array([-1.0, 1.0, -0.1, -0.1, -0.1, -0.1]),
        p_adjusted=np.array([0.01, 0.01, 0.5, 0.5, 0.5, np.nan]),
        drop_low=np.array([0.02, -0.05, -0.004, -0.004, 0.002, np.nan]),
        drop_high=np.array([0.05, -0.02, 0.008, 0.012, 0.008, np.nan]),
        min_attainable_p=np.array([0.0, 0.0, 0.0, 0.0, 0.104, 1.0]),
        level=np.full(6, 0.01), claimed_drop=0.01, alpha=0.05)
    # row 4: the drop interval reaches past the bound; row 5: the test cannot reach alpha / m
    assert list(verdicts) == ["gains shrink with capacity", "gains grow", "no trend",
                              "inconclusive", "inconclusive", "inconclusive"]


def test_slope_t_test_and_lack_of_fit_by_hand():
    fit = stats.slope_t_test(np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 3.0]))
    # slope 1.5; residuals (1/6, -1/3, 1/6): s^2 = 1/6 on 1 df, se = sqrt(1/6 / 2)
    assert fit["slope"] == pytest.approx(1.5) and fit["df"] == 1
    assert fit["se"] == pytest.approx(math.sqrt(1 / 12))
    assert fit["high"] - fit["slope"] == pytest.approx(12.706204736 * math.sqrt(1 / 12))
    assert fit["min_attainable_p"] == 0.0
    assert math.isnan(stats.slope_t_test(np.array([0.0, 1.0]), np.array([0.0, 1.0]))["p_value"])
    # cells on a line except the middle one, 2 seeds each with spread 0.1: a large lack of fit
    x = np.repeat([0.0, 1.0, 2.0], 2)
    y = np.array([0.0, 0.1, 2.0, 2.1, 2.0, 2.1])
    assert stats.lack_of_fit_p(x, y, np.repeat([0, 1, 2], 2)) < 0.01
    assert stats.lack_of_fit_p(x, x + np.array([0, 0.1] * 3), np.repeat([0, 1, 2], 2)) > 0.99


# ---------------------------------------------------------------- pairing

def test_pairing_by_seed_narrows_the_interval_and_is_recorded():
    rng = np.random.default_rng(1)
    seed_effect = rng.normal(0, 0.02, 5)  # shared by both arms: correlated seeds
    control = pd.Series(0.80 + seed_effect + rng.normal(0, 0.002, 5), index=range(5))
    treated = pd.Series(0.81 + seed_effect + rng.normal(0, 0.002, 5), index=range(5))
    paired = stats.compare_runs(treated, control, rng)
    unpaired = stats.compare_runs(treated, control.set_axis(range(10, 15)), rng)
    assert paired["pairing"] == "paired" and unpaired["pairing"] == "unpaired"
    assert paired["n"] == 5 and unpaired["n"] == 10
    assert paired["mean"] == pytest.approx(unpaired["mean"])
    assert paired["high"] - paired["low"] < 0.25 * (unpaired["high"] - unpaired["low"])
    assert paired["low"] > 0  # the planted +0.01 is resolved only with pairing
    assert unpaired["low"] < 0


def test_each_regularizer_expects_its_own_seeds_so_a_larger_baseline_is_not_a_shortfall():
    trials = make_tables(depths=(8, 14), seeds=(0, 1, 2, 3))["trials"]
    trials = trials[(trials["regularizer"] != "so") | (trials["seed"] < 2)]   # so at 2 seeds
    trials = trials[~((trials["regularizer"] == "so") & (trials["depth"] == 14)
                      & (trials["seed"] == 1))]                               # one so run missing
    grid = entries.status_grid(trials).set_index(["depth", "regularizer"])
    assert grid.loc[(8, "none"), "n_seeds_expected"] == 4
    assert grid.loc[(8, "so"), "n_seeds_expected"] == 2 == grid.loc[(14, "so"), "n_seeds_expected"]
    assert grid.loc[(14, "so"), "n_completed"] == 1   # the missing run shows against 2, not 4
    assert (entries.status_grid(trials, expected_seeds=5)["n_seeds_expected"] == 5).all()


def test_gains_table_pairs_by_seed_and_reports_found_and_expected_seeds(planted):
    gains = planted["gains"]
    test_acc = gains[gains["metric"] == "test_acc"]
    assert (test_acc["pairing"] == "paired").all()
    assert (test_acc["n"] == 6).all() and (test_acc["n_seeds_expected"] == 6).all()
    so = test_acc[test_acc["regularizer"] == "so"]
    assert ((so["low"] < 0.01) & (0.01 < so["high"])).all()  # planted constant +1 point
    assert set(gains["metric"]) >= {"test_acc", "best_test_acc", "pgd_acc_8_255",
                                    "epochs_to_90pct_best", "accuracy_auc"}


# ---------------------------------------------------------------- collapse test

def test_planted_negative_slope_is_recovered_and_detected(planted):
    collapse = planted["collapse"].set_index(["regularizer", "axis"])
    dn = collapse.loc[("dn", "log2_params")]
    assert dn["low"] <= -0.01 <= dn["high"]  # planted: -1 point per doubling
    assert dn["verdict"] == "gains shrink with capacity"
    assert dn["n_units"] == 24 and dn["n_cells"] == 4 and dn["n_order_matched"] == 0
    # planted flat: not significant after Holm over the three arms, and the drop interval lies
    # inside +-1 pp. (This draw's shared baseline tilts both flat arms, p 0.026 and 0.036: in
    # the report's claim 2 family, the two strict arms alone, so's slope is significant; one
    # baseline draw moves every gain, which is why a space may run more baseline seeds.)
    so = collapse_test(planted["runs"]).set_index(["regularizer", "axis"]).loc[("so", "log2_params")]
    assert so["family_size"] == 3 and so["p_holm"] > 0.05 and so["verdict"] == "no trend"
    assert dn["drop_low"] <= 0.02 <= dn["drop_high"]  # 1 point per doubling over 2 doublings
    assert np.isfinite(collapse["lack_of_fit_p"]).all() and (collapse["alpha"] == 0.05).all()
    assert (collapse.xs("depth", level="axis")["verdict"] == "descriptive").all()


def test_claim_verdicts_follow_the_planted_truths():
    verdicts = run_analysis(make_tables())["verdicts"].set_index("claim")
    # dn: lowest cosines, gain falling 1 pt per doubling; dn_relaxed flat, so above dn at the
    # largest cell; every regularizer's corruption gain equals its accuracy gain (> 0 for so);
    # feature-map similarity rises with the cosines, so orthogonality lowers it
    assert verdicts.loc["1", "verdict"] == "supported" and verdicts.loc["1", "effect"] < 0
    assert verdicts.loc["1, tuned settings", "verdict"] == "descriptive"
    assert verdicts.loc["1", "seeds_min"] == verdicts.loc["1", "seeds_max"] == 6
    assert verdicts.loc["2", "verdict"] == "supported"
    assert verdicts.loc["2", "label"].startswith("dn, resnet")
    assert verdicts.loc["2, relaxed", "verdict"] == "supported"
    assert verdicts.loc["3", "verdict"] == "supported"
    assert verdicts.loc["4, orthogonality", "verdict"] == "contradicted"
    assert verdicts.loc["4, cs", "verdict"] == "not tested"  # no cs trials
    flat = {"none": (0.0, 0.0), "so": (0.0, 0.0), "dn": (0.0, 0.0), "dn_relaxed": (0.0, 0.0)}
    null = run_analysis(make_tables(planted=flat))["verdicts"].set_index("claim")
    assert null.loc["2, relaxed", "verdict"] == "inconclusive"


def test_differences_without_spread_have_no_p_value_and_decide_nothing():
    # two seeds whose gains agree to the last image (accuracies on 500 images are multiples of
    # 0.2 pt): the t test's se is 0, which is rounding, not certainty
    rng = np.random.default_rng(0)
    treated = pd.Series([0.600, 0.610], index=[100, 101])
    control = pd.Series([0.624, 0.634], index=[100, 101])
    found = stats.compare_runs(treated, control, rng)
    assert found["mean"] == pytest.approx(-0.024) and math.isnan(found["p_value"])
    assert math.isnan(stats.welch_greater_p(np.array([0.6, 0.6]), np.array([0.5, 0.5]), 0.0))
    assert verdicts.decide(np.array([found["mean"]]), stats.holm_adjust([found["p_value"]]), +1,
                           0.05, np.array([False])) == "inconclusive"


@pytest.mark.parametrize("effect, p_holm, equivalent, expected", [
    ([-0.01, 0.002], [0.01, 0.6], [False, False], "supported"),
    ([0.01, -0.002], [0.01, 0.6], [False, False], "contradicted"),
    ([-0.01, 0.01], [0.01, 0.02], [False, False], "inconclusive"),   # significant both ways
    ([-0.01, 0.002], [0.2, 0.6], [False, True], "contradicted"),     # an equivalence
    ([-0.01, 0.002], [0.01, 0.6], [False, True], "supported"),
    ([-0.01], [np.nan], [False], "inconclusive")])
def test_a_claim_is_supported_or_contradicted_only_by_significant_rows(effect, p_holm, equivalent,
                                                                       expected):
    assert verdicts.decide(np.array(effect), np.array(p_holm), -1, 0.05,
                           np.array(equivalent)) == expected


# Seeded simulations of whole sweeps (korth_bench.simulation: the resnet_capacity_cifar10 design,
# 6 cells x 3 seeds, run sd 0.2 pt) through the project's own collapse_test; each bound holds
# with 3 binomial standard errors for SWEEPS sweeps.
def _verdict_rates(seed, sweeps=SWEEPS, **scenario):
    rng = np.random.default_rng(seed)
    table = sim.collapse_verdicts([sim.capacity_sweep(rng, **scenario) for _ in range(sweeps)])
    return table, table["verdict"].value_counts(normalize=True)


@pytest.mark.parametrize("cell_offset_sd", [0.0, 0.002])
def test_no_trend_is_rare_when_the_claimed_drop_is_true(cell_offset_sd):
    _, rates = _verdict_rates(31, drop=0.01, cell_offset_sd=cell_offset_sd)
    print(f"true drop = claimed (1 pp), cell offsets {cell_offset_sd}: {rates.to_dict()}")
    assert rates.get("no trend", 0.0) <= sim.bound_with_error(0.03, SWEEPS)


def test_no_trend_under_the_null():
    _, null = _verdict_rates(32)
    print(f"no slope: {null.to_dict()}")
    assert null.get("no trend", 0.0) >= sim.floor_with_error(0.85, SWEEPS)


def test_gains_shrink_under_a_true_drop():
    _, drop = _verdict_rates(33, drop=0.01)
    print(f"1-pt drop: {drop.to_dict()}")
    assert drop.get("gains shrink with capacity", 0.0) >= sim.floor_with_error(0.60, SWEEPS)


@pytest.mark.parametrize("seeds", [3, 5])
def test_the_detectable_drop_is_detected_at_the_stated_power(seeds):
    # the collapse table's detectable_drop, from the design and the planted run sd, planted as the
    # true drop: the slope test rejects in about 80 % of sweeps
    x = np.log2([sim.RESNET_PARAMS[cell] for cell in sim.RESNET_PARAMS])
    drop = stats.detectable_drop(x, math.sqrt(2) * sim.RUN_SD, seeds, 0.05)
    _, rates = _verdict_rates(37 + seeds, drop=drop, seeds=range(seeds))
    shrink = rates.get("gains shrink with capacity", 0.0)
    print(f"{seeds} seeds: detectable drop {100 * drop:.2f} pt, detected in {shrink:.3f}")
    assert abs(shrink - 0.8) <= 3 * math.sqrt(0.8 * 0.2 / SWEEPS)
    # a report's own estimate, from one sweep's within-cell spread, is near the planted one
    rng = np.random.default_rng(40 + seeds)
    estimates = [collapse_test(sim.capacity_sweep(rng, drop=drop, seeds=range(seeds)))
                 .query("axis == 'log2_params'")["detectable_drop"].item() for _ in range(20)]
    assert np.median(estimates) == pytest.approx(drop, rel=0.2)


def test_two_cell_designs_never_say_no_trend():
    # relaxation_sweep.yaml: 2 cells x 3 seeds; with a real 1.5-pt drop the old rule read 'no trend'
    # in about a third of sweeps
    _, rates = _verdict_rates(34, sweeps=50, cells=((20, 1), (56, 1)), drop=0.015)
    assert rates.get("no trend", 0.0) == 0.0 and rates.get("inconclusive", 0.0) == 1.0


def test_cell_offsets_do_not_inflate_the_family_wise_error():
    rng = np.random.default_rng(35)
    table = sim.collapse_verdicts([sim.capacity_sweep(rng, regularizers=("so", "dn"),
                                                      cell_offset_sd=0.002)
                                   for _ in range(SWEEPS)])
    false = table["verdict"].isin(["gains shrink with capacity", "gains grow"])
    fwe = float(false.groupby(table["sweep"]).any().mean())
    covered = float(((table["low"] <= 0) & (0 <= table["high"])).mean())
    print(f"0.2-pt cell offsets, no slope: family-wise error {fwe:.3f}, coverage {covered:.3f}")
    assert fwe <= sim.bound_with_error(0.07, SWEEPS)
    assert covered >= sim.floor_with_error(0.95, 2 * SWEEPS)


def test_gain_p_value_agrees_with_its_interval_and_states_its_exact_floor():
    rng = np.random.default_rng(36)
    seeds = range(3)
    rows = []
    for _ in range(SWEEPS):
        control = pd.Series(0.9 + rng.normal(0, 0.002, 3), index=seeds)
        treated = pd.Series(0.905 + rng.normal(0, 0.002, 3), index=seeds)
        rows.append(stats.compare_runs(treated, control, rng))
    table = pd.DataFrame(rows)
    excludes = (table["low"] > 0) | (table["high"] < 0)
    print(f"0.5-pt gain, 3 seeds: interval excludes 0 in {excludes.mean():.2f}, "
          f"t p <= 0.05 in {(table['p_value'] <= 0.05).mean():.2f}, "
          f"sign-flip p <= 0.05 in {(table['p_exact'] <= 0.05).mean():.2f}")
    assert ((table["p_value"] <= 0.05) == excludes).all()
    assert (table["p_exact"] >= 0.25).all() and (table["min_attainable_p"] == 0.25).all()
    null = [stats.compare_runs(pd.Series(rng.normal(0, 0.002, 3), index=seeds),
                                  pd.Series(rng.normal(0, 0.002, 3), index=seeds), rng)["p_value"]
            for _ in range(SWEEPS)]
    assert np.mean(np.array(null) <= 0.05) <= sim.bound_with_error(0.05, SWEEPS)
    unpaired = stats.compare_runs(pd.Series([1.0, 2.0, 3.0]), pd.Series([4.0, 5.0, 6.0],
                                                                          index=[7, 8, 9]), rng)
    assert unpaired["min_attainable_p"] == pytest.approx(2 / 20)


def test_strict_vs_relaxed_compares_at_the_largest_capacity(planted):
    row = planted["strict_vs_relaxed"].iloc[0]
    assert row["depth"] == 32 and row["status"] == "measured" and row["pairing"] == "paired"
    # planted at depth 32 (2 doublings above depth 8): relaxed +0.01, strict 0.02 - 0.02 = 0
    assert row["low"] <= 0.01 <= row["high"] and row["low"] > 0


# ---------------------------------------------------------------- missing and failed runs

def test_missing_baseline_cell_is_reported_not_crashed_on():
    frames = make_tables()
    trials = frames["trials"]
    frames["trials"] = trials[~((trials["depth"] == 14) & (trials["regularizer"] == "none"))]
    result = run_analysis(frames)
    gains = result["gains"]
    at14 = gains[gains["depth"] == 14]
    assert len(at14) and (at14["status"] == "missing baseline").all()
    assert at14["mean"].isna().all() and (at14["n_control"] == 0).all()
    assert (gains[gains["depth"] != 14]["status"] == "measured").all()
    assert result["collapse"].set_index(["regularizer", "axis"]).loc[
        ("dn", "log2_params"), "n_cells"] == 3


def test_failed_trials_are_counted_not_used_and_absent_cells_stay_visible():
    frames = make_tables()
    trials = frames["trials"].copy()
    diverged = (trials["depth"] == 8) & (trials["regularizer"] == "so") & (trials["seed"] == 0)
    trials.loc[diverged, ["status", "test_acc"]] = ["diverged", 0.1]
    frames["trials"] = trials[~((trials["depth"] == 20) & (trials["regularizer"] == "dn"))]
    result = run_analysis(frames)
    grid = result["grid"].set_index(["depth", "regularizer"])
    assert grid.loc[(8, "so"), "n_diverged"] == 1 and grid.loc[(8, "so"), "n_completed"] == 5
    assert grid.loc[(20, "dn"), "n_completed"] == 0
    gains = result["gains"].set_index(["depth", "regularizer", "metric"])
    assert gains.loc[(8, "so", "test_acc"), "n"] == 5
    assert gains.loc[(20, "dn", "test_acc"), "status"] == "missing: no completed runs"


def test_order_matching_when_seeds_do_not_match():
    frames = make_tables(depths=(8, 16))
    trials = frames["trials"]
    shift = (trials["regularizer"] == "so") & (trials["depth"] == 16)
    frames["trials"] = trials.assign(seed=trials["seed"].where(~shift, trials["seed"] + 100))
    result = run_analysis(frames)
    gains = result["gains"].set_index(["depth", "regularizer", "metric"])
    assert gains.loc[(16, "so", "test_acc"), "pairing"] == "unpaired"
    assert gains.loc[(8, "so", "test_acc"), "pairing"] == "paired"
    units = unit_gains(result["runs"], "so", "test_acc")
    assert (units.groupby("depth")["matching"].first() == pd.Series({8: "seed", 16: "order"})).all()


# ---------------------------------------------------------------- selection

def test_entry_selection_by_validation_or_test_is_stated():
    frames = make_tables(depths=(8,), seeds=(0, 1, 2))
    trials = frames["trials"]
    other = trials[trials["regularizer"] == "so"].assign(
        coefficient=0.1, trial_id=lambda f: f["trial_id"] + "-c0.1",
        val_acc=lambda f: f["val_acc"] + 0.05, test_acc=lambda f: f["test_acc"] - 0.05)
    frames["trials"] = pd.concat([trials, other], ignore_index=True)
    by_val = entries.select_entries(frames["trials"], "val").set_index("regularizer").loc["so"]
    by_test = entries.select_entries(frames["trials"], "test").set_index("regularizer").loc["so"]
    assert by_val["setting"] == "coefficient=0.1" and by_val["selected_by"] == "val_acc"
    assert by_test["setting"] == "coefficient=0.01" and by_test["selected_by"] == "test_acc"
    assert by_val["n_settings"] == 2
    no_val = entries.select_entries(frames["trials"].assign(val_acc=np.nan), "val")
    assert (no_val["selected_by"] == "test_acc").all()
    with pytest.raises(ValueError, match="selection"):
        entries.select_entries(frames["trials"], "train")


# ---------------------------------------------------------------- [CS] and [DN] claims

@pytest.mark.parametrize("scenario, bound", [
    # zero-effect arms, baseline 0.5 pt (= M) better per cell, run sd 0.4 pt
    ({"baseline_gap": 0.005, "run_sd": 0.004}, 0.05),
    # least favourable: every arm lifts the smallest cell to exactly M below the next baseline,
    # 1 pt above it, so (b) holds and (a) sits on its null: 8 arms of chance alpha each
    ({"baseline_gap": 0.01, "lift": 0.005}, 0.05)])
def test_capacity_efficiency_matches_are_family_wise(scenario, bound):
    """No true match anywhere: a match in any pair or arm of a 6-cell x 3-seed x 8-arm sweep
    in at most 5 % of sweeps (before the Holm family: about 30 % in the second scenario)."""
    rng = np.random.default_rng(43)
    table = sim.efficiency_statuses([sim.efficiency_sweep(
        rng, depths=EFFICIENCY_DEPTHS, regularizers=EIGHT_ARMS, **scenario)
        for _ in range(SWEEPS)])
    anywhere = (table["status"] == "matched").groupby(table["sweep"]).any()
    assert anywhere.mean() <= sim.bound_with_error(bound, SWEEPS)


def test_a_true_lift_to_the_next_baseline_still_matches_family_wise():
    """One arm lifts ResNet-8 to ResNet-14's baseline (1.5 pt steps, run sd 0.2 pt), 5 seeds,
    Holm over the 15 pairs of 6 cells: matched in at least half of the sweeps."""
    rng = np.random.default_rng(44)
    table = sim.efficiency_statuses([sim.efficiency_sweep(
        rng, depths=EFFICIENCY_DEPTHS, baseline_gap=0.015, lift=0.015, seeds=range(5))
        for _ in range(SWEEPS)])
    matched = table[table["status"] == "matched"]
    assert len(matched) / SWEEPS >= sim.floor_with_error(0.50, SWEEPS)
    assert (matched["depth"] == 8).all()


def test_similarity_correlation_ranking_and_capacity_efficiency(planted):
    result = planted
    similarity = result["similarity"]
    cos = similarity[(similarity["x"] == "ortho_cos_mean") & (similarity["y"] == "fm_sim_mean")]
    assert len(cos) == 4 and (cos["n"] == 24).all()
    assert (cos["low"] > 0).all() and (cos["low"] <= cos["rho"]).all()  # planted: rises together
    ranking = result["ranking"]
    best = ranking[ranking["rank"] == 1]
    assert (best["regularizer"] == "dn").all()
    assert set(best["measure"]) == set(claims.ORTHO_MEASURES)
    # the fixture's 1-pt seed effects cancel in paired gains, not across cells: plant small ones
    efficiency = run_analysis(make_tables(seed_effect=0.001))["efficiency"].set_index("regularizer")
    # dn is 2 points up at depth 8; the baseline gains 1 point per doubling, 1.3 points up at
    # depth 20 (2.5x the parameters): a gap of more than M = 0.5 pt that dn closes, shown after
    # Holm over the 18 pair x regularizer tests (at depth 32, dn's (a) alone has p ~0.03)
    assert efficiency.loc["dn", "status"] == "matched" and efficiency.loc["dn", "depth"] == 8
    assert efficiency.loc["dn", "base_depth"] == 20 and efficiency.loc["dn", "params_ratio"] == 2.5
    assert efficiency.loc["dn", "p_holm"] <= 0.05 and (efficiency["n_tests"] == 18).all()
    assert efficiency.loc["dn", "p_iut"] == max(efficiency.loc["dn", "p_noninferior"],
                                                efficiency.loc["dn", "p_gap"])
    # with no capacity effect no larger baseline shows a gap: nothing to match, inconclusive
    flat = run_analysis(make_tables(depths=(8, 32), capacity_effect=0.0, planted={
        "none": (0.0, 0.0), "so": (0.0, 0.0)}))["efficiency"]
    assert (flat["status"] == "inconclusive").all() and (flat["n_gap_pairs"] == 0).all()


def test_learning_curves_and_robustness_profile_carry_counts():
    result = run_analysis(make_tables(depths=(8, 14)))
    curves = result["curves"]
    assert set(curves["epoch"]) == {0, 1, 2, 3} and (curves["n"] == 6).all()
    profile = result["robustness"]
    assert (profile["n"] == 12).all() and (profile["n_cells"] == 2).all()
    assert set(profile["name"]) == {"gaussian_noise", "pgd"}


def test_two_cells_give_an_inconclusive_verdict_not_no_trend():
    """Two cells leave no degree of freedom for the slope of cell means: the test cannot reject,
    so the verdict is 'inconclusive' however small the seeds' spread (the 2 x 3 design of
    relaxation_sweep.yaml)."""
    rows = [{"dataset": "c", "model": "resnet", "depth": depth, "width": 1,
             "num_params": 1000 * depth, "regularizer": regularizer, "seed": seed,
             "test_acc": 0.1 + (0.0001 * seed if regularizer == "so" else 0.0)}
            for depth in (8, 14) for seed in (0, 1, 2) for regularizer in ("none", "so")]
    table = collapse_test(pd.DataFrame(rows))
    table = table[table["axis"] == PRIMARY_AXIS]
    assert len(table) == 1 and (table["verdict"] == "inconclusive").all()
    assert (table["min_attainable_p"] == 1.0).all()
    assert table["note"].str.contains("needs 3").all()


# ---------------------------------------------------------------- simulated selection and matching

@pytest.mark.parametrize("baseline_gap", [0.0, 0.005, 0.01, 0.02])
def test_a_zero_effect_regularizer_does_not_match_a_larger_baseline(baseline_gap):
    rng = np.random.default_rng(41)
    status = sim.efficiency_statuses([sim.efficiency_sweep(rng, baseline_gap=baseline_gap)
                                      for _ in range(SWEEPS)])["status"]
    print(f"baseline gap {baseline_gap}: {status.value_counts(normalize=True).to_dict()}")
    assert (status == "matched").mean() <= sim.bound_with_error(0.05, SWEEPS)


def test_a_regularizer_lifting_resnet20_to_resnet56_matches():
    rng = np.random.default_rng(42)
    efficiency = sim.efficiency_statuses([sim.efficiency_sweep(rng, baseline_gap=0.018,
                                                               lift=0.018)
                                          for _ in range(SWEEPS)])
    matched = (efficiency["status"] == "matched").mean()
    print(f"lift = gap = 1.8 pt: matched in {matched:.2f}; the baseline's own small cell passes "
          f"(a) in {efficiency['n_control_passes'].sum()} of {efficiency['n_gap_pairs'].sum()}")
    assert matched >= sim.floor_with_error(0.60, SWEEPS)
    assert efficiency["n_control_passes"].sum() <= sim.bound_with_error(0.05, SWEEPS) * SWEEPS


@pytest.mark.parametrize("run_sd", [0.002, 0.004])
def test_cross_fitted_selection_has_no_winners_curse(run_sd):
    rng = np.random.default_rng(43)
    gains, chosen = sim.entry_gains([sim.selection_sweep(rng, run_sd=run_sd)
                                      for _ in range(SWEEPS)])
    so = chosen[chosen["regularizer"] == "so"]
    assert (so["cross_fitted"] == True).all() and (so["n_settings"] == 10).all()  # noqa: E712
    standard_error = gains.std() / math.sqrt(SWEEPS)
    print(f"K = 10 null settings, run sd {run_sd}: mean gain {100 * gains.mean():+.3f} pt "
          f"(se {100 * standard_error:.3f})")
    assert abs(gains.mean()) <= 0.0003 + 3 * standard_error


def test_cross_fitting_finds_the_truly_better_setting():
    rng = np.random.default_rng(44)
    _, chosen = sim.entry_gains([sim.selection_sweep(rng, better=0.01) for _ in range(SWEEPS)])
    picks = [setting == "coefficient=0.1" for choice in
             chosen.loc[chosen["regularizer"] == "so", "seed_settings"] for setting in choice.values()]
    assert np.mean(picks) >= sim.floor_with_error(0.85, len(picks))


def test_a_setting_that_diverges_on_half_its_seeds_is_not_selected():
    rng = np.random.default_rng(45)
    _, chosen = sim.entry_gains([
        sim.selection_sweep(rng, settings=2, diverging=1, diverging_lift=0.003, seeds=(0, 1, 2, 3))
        for _ in range(SWEEPS)])
    so = chosen[chosen["regularizer"] == "so"]
    picks = [setting == "coefficient=0.01" for choice in so["seed_settings"]
             for setting in choice.values()]
    print(f"diverging setting chosen for {np.mean(picks):.3f} of seeds")
    assert np.mean(picks) <= sim.bound_with_error(0.10, len(picks))
    # the diverged runs are counted where they are chosen; here never
    assert (so["n_diverged"] == 0).all()


def test_diverged_runs_are_counted_in_the_entry_when_chosen():
    trials = sim.selection_sweep(np.random.default_rng(46), settings=1, diverging=1,
                                 seeds=(0, 1, 2, 3))
    entry = entries.select_entries(trials).set_index("regularizer").loc["so"]
    assert entry["n_diverged"] == 2 and entry["cross_fitted"] is None


def test_every_varying_config_key_makes_a_setting():
    # optuna_coefficient_asha.yaml's shape: lr sampled per trial, no regularizer effect; the old
    # entry averaged every 'none' trial against the best regularizer trial (+0.58 pt)
    rng = np.random.default_rng(47)
    gains, chosen = sim.entry_gains([sim.sampled_lr_sweep(rng) for _ in range(SWEEPS)])
    none = chosen[chosen["regularizer"] == "none"]
    assert none["setting"].str.startswith("lr=").all() and (none["n_settings"] == 12).all()
    standard_error = gains.std() / math.sqrt(SWEEPS)
    print(f"sampled lr, null: mean gain {100 * gains.mean():+.3f} pt (se {100 * standard_error:.3f})")
    assert abs(gains.mean()) <= 0.001 + 3 * standard_error
    # data_path compares by file name, as config_hash does
    trials = sim.selection_sweep(rng, settings=1)
    trials["data_path"] = np.where(trials["seed"] == 0, "s3://bucket/cifar.parquet",
                                   "/local/cifar.parquet")
    assert (entries.setting_labels(trials) == "single setting").all()


def test_arms_are_entries_against_the_one_baseline_with_their_penalty_scale():
    frames = make_tables(depths=(8, 14, 20), seeds=(0, 1, 2))
    trials = frames["trials"].assign(penalty_reduction="sum")
    regularized = trials[trials["regularizer"] != "none"]
    mean_arm = regularized.assign(penalty_reduction="mean",
                                  trial_id=regularized["trial_id"] + "-mean")
    frames["trials"] = pd.concat([trials, mean_arm], ignore_index=True)
    frames["epochs"] = pd.concat([frames["epochs"], frames["epochs"].assign(
        trial_id=frames["epochs"]["trial_id"] + "-mean")], ignore_index=True).assign(
        reg_loss=2.0, train_loss=1.0)
    result = run_analysis(frames, arms=["penalty_reduction"])
    collapse = result["collapse"]
    primary = collapse[collapse["axis"] == "log2_params"]
    assert set(primary["regularizer"]) == {f"{r} [penalty_reduction={a}]" for r in
                                           ("so", "dn", "dn_relaxed") for a in ("sum", "mean")}
    assert primary["p_holm"].notna().all()  # one Holm family over both arms
    assert set(result["entries"]["regularizer"]) >= {"none", "dn [penalty_reduction=mean]"}
    comparison = result["strict_vs_relaxed"]
    assert sorted(comparison["arm"]) == ["penalty_reduction=mean", "penalty_reduction=sum"]
    assert (comparison["status"] == "measured").all() and comparison["p_holm"].notna().all()
    scale = result["penalty_scale"].set_index(["depth", "regularizer"])
    row = scale.loc[(8, "dn [penalty_reduction=mean]")]
    assert row["coefficients"] == [0.01] and row["ratio"] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="--arm 'nope'"):
        run_analysis(frames, arms=["nope"])


def test_penalty_targets_tell_a_shrunk_scale_from_a_changed_shape():
    """cs halves the raw convolutional similarity of every seed but leaves the normalized one:
    a change of scale only; so lowers the Gram residual and the cosines alike: a change of shape."""
    rng = np.random.default_rng(3)
    rows = []
    for seed in range(4):
        base = {"cs_mean": 0.24 + 0.02 * rng.standard_normal(),
                "cs_normalized_mean": 0.10 + 0.005 * rng.standard_normal(),
                "ortho_gram_residual_mean": 7.0 + 0.2 * rng.standard_normal(),
                "ortho_cos_mean": 0.11 + 0.005 * rng.standard_normal()}
        cell = {"dataset": "packed", "model": "resnet", "depth": 8, "width": 1, "seed": seed}
        rows.append({**cell, "regularizer": "none", **base})
        rows.append({**cell, "regularizer": "cs [penalty_reduction=sum]", **base,
                     "cs_mean": base["cs_mean"] / 2,
                     "cs_normalized_mean": base["cs_normalized_mean"] + 0.001 * rng.standard_normal()})
        rows.append({**cell, "regularizer": "so", **base,
                     "ortho_gram_residual_mean": base["ortho_gram_residual_mean"] - 3,
                     "ortho_cos_mean": base["ortho_cos_mean"] - 0.05 + 0.002 * rng.standard_normal()})
    table = claims.penalty_targets(pd.DataFrame(rows), rng).set_index(["regularizer", "measure"])
    assert len(table) == 4 and (table["n"] == 4).all()  # paired over the 4 seeds
    raw = table.loc[("cs [penalty_reduction=sum]", "cs_mean")]
    normalized = table.loc[("cs [penalty_reduction=sum]", "cs_normalized_mean")]
    assert raw["scale"] == "dependent" and raw["p_value"] < 0.01
    assert raw["relative"] == pytest.approx(raw["mean"] / raw["baseline_mean"])
    assert -0.55 < raw["relative"] < -0.45
    assert normalized["scale"] == "free" and normalized["low"] < 0 < normalized["high"]
    gram, cos = table.loc[("so", "ortho_gram_residual_mean")], table.loc[("so", "ortho_cos_mean")]
    assert gram["mean"] == pytest.approx(-3) and cos["high"] < 0 and cos["p_value"] < 0.01


# ---------------------------------------------------------------- one family per claim, the
# primary contrast, more baseline seeds than arm seeds (issue 20, items 3-5)

PRIMARY_ARMS = ("so", "dn", "srip")  # the brief's example declaration


def test_extra_baseline_seeds_count_while_the_shared_seeds_stay_paired():
    rng = np.random.default_rng(50)
    treated, control, extra = np.array([1.0, 2.0, 3.0]), np.array([0.5, 1.0, 2.5]), np.array([1.0, 2.0, 0.0])
    units = stats.pooled_baseline_gains(treated, control, extra)
    assert units.mean() == pytest.approx(treated.mean() - np.concatenate([control, extra]).mean())
    assert stats.pooled_baseline_gains(treated, control, np.zeros(0)) == pytest.approx(treated - control)
    # a seed effect shared by a pair cancels: shifting seed 0 of both sides moves only k/(k+m)
    # of it out of the unit, the same for every extra-baseline design
    shifted = stats.pooled_baseline_gains(treated + [5, 0, 0], control + [5, 0, 0], extra)
    assert shifted[0] - units[0] == pytest.approx(5 * (1 - 3 / 6))
    found = stats.compare_runs(pd.Series(treated, index=[0, 1, 2]),
                               pd.Series([*control, *extra], index=range(6)), rng)
    assert found["pairing"] == "paired + 3 baseline seeds" and found["n"] == 3
    assert found["mean"] == pytest.approx(units.mean())
    # the collapse test's units of a cell average to the same gain
    sweep = sim.capacity_sweep(rng, seeds=range(3), baseline_seeds=range(6))
    cell = sweep[(sweep["depth"] == 20) & (sweep["width"] == 1)]
    per_seed = unit_gains(sweep, "so", "test_acc")
    mean = per_seed[(per_seed["depth"] == 20) & (per_seed["width"] == 1)]["gain"].mean()
    side = lambda name: cell[cell["regularizer"] == name].set_index("seed")["test_acc"]  # noqa: E731
    assert mean == pytest.approx(stats.compare_runs(side("so"), side("none"), rng)["mean"])
    assert (per_seed["n_extra_baseline"] == 3).all() and (per_seed["matching"] == "seed").all()


@pytest.mark.parametrize("seed_sd", [0.0, 0.0014])
def test_gain_intervals_with_6_baseline_seeds_cover_and_are_narrower_than_paired(seed_sd):
    # 3 arm seeds, 6 baseline seeds, a true gain of 0.5 pt, run sd 0.2 pt, and a seed effect
    # shared by the two runs of a seed (0, or half the run variance): coverage >= 93 % at 95 %
    rng = np.random.default_rng(51)
    sweeps = 5 * SWEEPS
    covered, width, paired_width = [], [], []
    for _ in range(sweeps):
        seed_effect = rng.normal(0, seed_sd, 6)
        control = 0.9 + seed_effect + rng.normal(0, sim.RUN_SD, 6)
        treated = 0.905 + seed_effect[:3] + rng.normal(0, sim.RUN_SD, 3)
        found = stats.pooled_baseline_interval(treated, control[:3], control[3:])
        paired = stats.t_interval(treated - control[:3])
        covered.append(found["low"] <= 0.005 <= found["high"])
        width.append(found["high"] - found["low"])
        paired_width.append(paired["high"] - paired["low"])
    coverage, ratio = float(np.mean(covered)), float(np.mean(width) / np.mean(paired_width))
    print(f"seed sd {100 * seed_sd:.2f} pt: coverage {coverage:.3f}, width / paired {ratio:.2f}")
    assert coverage >= sim.floor_with_error(0.93, sweeps)
    assert ratio < 0.9


def test_claim_2_the_collapse_table_and_the_detectable_drop_use_one_family():
    planted = {"none": (0.0, 0.0), "so": (0.01, 0.0), "dn": (0.02, -0.01), "cs": (0.01, 0.0),
               "dn_relaxed": (0.01, 0.0)}
    result = claims.analyze(make_tables(planted=planted))
    table = result["collapse"]
    rows = table[table["axis"] == PRIMARY_AXIS].set_index("regularizer")
    assert rows.loc[["dn", "so"], "test_family"].eq("claim 2").all()
    assert rows.loc[["cs", "dn_relaxed"], "test_family"].eq("outside claim 2").all()
    assert (rows["family_size"] == 2).all()
    claim = result["verdicts"].set_index("claim").loc["2"]
    assert claim["n_rows"] == 2 and claim["p_holm"] == pytest.approx(rows.loc[["dn", "so"], "p_holm"].min())
    assert rows.loc["dn", "p_holm"] == pytest.approx(min(1.0, 2 * rows.loc[[ "dn", "so"], "p_value"].min()))
    units = unit_gains(result["runs"], "so", "test_acc")
    x = np.log2(units.groupby("depth")["num_params"].first().to_numpy(float))
    expected = stats.detectable_drop(x, rows.loc["so", "sd_within"], 6, 0.05 / 2)
    assert rows.loc["so", "detectable_drop"] == pytest.approx(expected)


def test_the_declared_primary_contrast_decides_claim_2_alone():
    planted = {"none": (0.0, 0.0), "so": (0.01, 0.0), "dn": (0.02, -0.01), "cs": (0.01, 0.0)}
    frames = make_tables(planted=planted)
    result = claims.analyze(frames, primary={"arms": ["so", "dn"], "metric": "test_acc",
                                             "declared": "2026-12-01", "source": "space.yaml"})
    table = result["collapse"]
    primary = table[(table["test_family"] == "primary") & (table["axis"] == PRIMARY_AXIS)]
    assert len(primary) == 1 and primary["regularizer"].item() == "primary: mean of so, dn"
    assert primary["p_holm"].item() == primary["p_value"].item()  # alone, no Holm
    pooled = collapse.pooled_unit_gains(result["runs"], ["so", "dn"])
    both = pd.concat([unit_gains(result["runs"], arm, "test_acc") for arm in ("so", "dn")])
    assert pooled["gain"].to_numpy() == pytest.approx(
        both.groupby(["depth", "seed"])["gain"].mean().to_numpy())
    assert (pooled["n_arms"] == 2).all() and primary["n_units"].item() == len(pooled)
    claim = result["verdicts"].set_index("claim").loc["2"]
    assert claim["n_rows"] == 1 and claim["label"].startswith("primary: mean of so, dn")
    assert "declared on 2026-12-01" in claim["statement"]
    # the per-arm rows stay, as their own family
    assert (table.loc[table["test_family"] == "claim 2", "family_size"] == 2).all()
    with pytest.raises(ConfigError, match="'srip' is not an entry of these trials; entries: cs, dn, so"):
        claims.analyze(frames, primary={"arms": ["srip"], "metric": "test_acc"})
    arms = claims.resolve_arms(["so [sum]", "dn [penalty_reduction=mean]", "cs"],
                               ["so [penalty_reduction=sum]", "so [penalty_reduction=mean]",
                                "dn [penalty_reduction=mean]", "cs [penalty_reduction=sum]"])
    assert arms == ["so [penalty_reduction=sum]", "dn [penalty_reduction=mean]",
                    "cs [penalty_reduction=sum]"]
    with pytest.raises(ConfigError, match="'so' matches 2 entries; name one"):
        claims.resolve_arms(["so"], ["so [penalty_reduction=sum]", "so [penalty_reduction=mean]"])


def _primary_rates(seed, sweeps, **scenario):
    """(primary rejects, any per-arm row rejects after Holm, primary 'gains shrink', any per-arm
    'gains shrink') over simulated sweeps of the PRIMARY_ARMS sharing one baseline."""
    rng = np.random.default_rng(seed)
    table = sim.collapse_verdicts([sim.capacity_sweep(rng, regularizers=PRIMARY_ARMS, **scenario)
                                   for _ in range(sweeps)], primary=PRIMARY_ARMS)
    significant = table["verdict"].isin(["gains shrink with capacity", "gains grow"])
    shrink = table["verdict"] == "gains shrink with capacity"
    primary = table["test_family"] == "primary"
    per_sweep = lambda flags: float(flags[~primary].groupby(table.loc[~primary, "sweep"]).any().mean())  # noqa: E731
    return (float(significant[primary].mean()), per_sweep(significant),
            float(shrink[primary].mean()), per_sweep(shrink))


def test_the_primary_contrast_holds_its_level_and_detects_its_planned_drop():
    sweeps = SWEEPS // 2  # three arms and the pooled row per sweep: the slowest scenario here
    null, null_family, _, _ = _primary_rates(52, sweeps)
    print(f"no drop, 3 strict arms: primary rejects {null:.3f}, per-arm family {null_family:.3f}")
    assert null <= sim.bound_with_error(0.05, sweeps)
    assert null_family <= sim.bound_with_error(0.05, sweeps)
    # the drop the pooled contrast detects with 80 % power alone: one pooled unit is the mean of
    # three arms' runs minus one baseline run, sd = run sd x sqrt(1 + 1/3)
    x = np.log2(list(sim.RESNET_PARAMS.values()))
    drop = stats.detectable_drop(x, sim.RUN_SD * math.sqrt(1 + 1 / 3), 3, 0.05)
    _, _, primary, per_arm = _primary_rates(53, sweeps, drop=drop)
    print(f"{100 * drop:.2f}-pt drop shared by 3 strict arms: 'gains shrink' primary "
          f"{primary:.3f}, any per-arm row after Holm {per_arm:.3f}")
    assert abs(primary - 0.8) <= 3 * math.sqrt(0.8 * 0.2 / sweeps)
    assert primary > per_arm
# ---------------------------------------------------------------- issue 20: matched strength,
# under-training, small n

STRENGTH_SWEEPS = 100  # each is a whole analysis of one cell; bound + 3 SE for this count


def test_claim_1_is_decided_at_matched_strength_only():
    """dn and so of identical form: validation picks dn at 1e-2 and so at 1e-3, so the tuned
    entries differ by strength alone ('supported' in every sweep); at matched strength (the
    pilot's common coefficients 1e-4 and 1e-3) 'supported' in at most 5 % of sweeps; a true
    0.3 advantage of dn (3 seeds, sd 0.1) is found; disjoint grids with ratios 3x apart give
    'inconclusive (strengths not matched)'."""
    rng = np.random.default_rng(45)
    null = sim.claim1_verdicts([sim.strength_sweep(rng) for _ in range(STRENGTH_SWEEPS)], rng)
    assert (null["tuned"] == "supported").mean() >= sim.floor_with_error(0.95, STRENGTH_SWEEPS)
    assert (null["matched"] == "supported").mean() <= sim.bound_with_error(0.05, STRENGTH_SWEEPS)
    better = sim.claim1_verdicts([sim.strength_sweep(rng, dn_effect=-0.3, seeds=range(5))
                                  for _ in range(STRENGTH_SWEEPS)], rng)
    assert (better["matched"] == "supported").mean() >= sim.floor_with_error(0.80, STRENGTH_SWEEPS)
    apart = sim.claim1_verdicts([sim.strength_sweep(rng, grids=((1e-2,), (1e-3,)),
                                                    reg_loss=(20.0, 60.0)) for _ in range(5)], rng)
    assert (apart["matched"] == verdicts.NOT_MATCHED).all()


def test_matched_strength_pairs_by_coefficient_or_ratio():
    assert strength.matched_by((1e-3, 1e-3), (0.07, 0.3)) == "coefficient"
    assert strength.matched_by((1e-2, 1e-3), (0.10, 0.14)) == "ratio"
    assert strength.matched_by((1e-2, 1e-3), (0.234, 0.073)) == ""  # the study's R8 strengths
    frames = sim.strength_sweep(np.random.default_rng(0), grids=((1e-2, 1e-3), (1e-3,)),
                                reg_loss=(20.0, 160.0))
    result = run_analysis(frames)
    matched = result["matched_strength"]
    # dn 1e-3 (ratio 0.01) vs so 1e-3 (0.08): same coefficient; dn 1e-2 (0.1) vs so 1e-3: ratio
    assert sorted(matched["matched_by"]) == ["coefficient", "ratio"]
    assert (matched["n"] == 3).all() and (matched["pairing"] == "paired").all()
    assert result["verdicts"].set_index("claim").loc["1", "n_rows"] == 2


def under_training_flags(rng, doubling, sweeps, **options):
    """undertraining_check's flag per simulated study (sim.convergence_sweep)."""
    flags = []
    for _ in range(sweeps):
        frames = sim.convergence_sweep(rng, doubling=doubling, **options)
        study, reference = convergence.split_reference(frames["trials"])
        table = convergence.convergence_by_cell(frames["epochs"], study, reference)
        flags.append(convergence.undertraining_check(table, 0.01)["flagged"])
    return np.array(flags)


CONVERGENCE_SWEEPS = 100


@pytest.mark.parametrize("doubling, expected", [
    # every cell gains 2 pt from twice the epochs: trained equally far (3 reference seeds,
    # 0.5-pt run spread: the range of five noisy doubling gains passes 1 pt in about 15 %)
    ((0.02,) * 5, ("at most", 0.15)),
    # the collapse pilot: 20 -> 40 epochs added 4.85 pt at the smallest cell, 2.30 at the largest
    ((0.0485, 0.042, 0.036, 0.029, 0.023), ("at least", 0.95)),
    ((0.02, 0.02, 0.02, 0.02, 0.04), ("at least", 0.95))])  # the largest cell 2 pt further
def test_under_training_is_flagged_by_what_twice_the_epochs_buys(doubling, expected):
    """The rule: flagged when the baseline's doubling gains differ between cells by more than
    the claimed drop (1 pt). Every curve gains the same over its last two epochs, so the old
    last-epoch figures could not tell these studies apart."""
    flags = under_training_flags(np.random.default_rng(46), doubling, CONVERGENCE_SWEEPS)
    side, rate = expected
    if side == "at most":
        assert flags.mean() <= sim.bound_with_error(rate, CONVERGENCE_SWEEPS)
    else:
        assert flags.mean() >= sim.floor_with_error(rate, CONVERGENCE_SWEEPS)


def test_reference_runs_measure_the_doubling_gain_and_enter_no_entry():
    frames = sim.convergence_sweep(np.random.default_rng(0), doubling=(0.02, 0.04), run_sd=0.0)
    study, reference = convergence.split_reference(frames["trials"])
    assert set(reference["epochs"]) == {40} and len(reference) == 6
    assert (reference["regularizer"] == "none").all() and (study["epochs"] == 20).all()
    table = convergence.convergence_by_cell(frames["epochs"], study, reference)
    assert list(table["depth"]) == [8, 14] and (table["n_baseline"] == 12).all()
    assert (table["n_reference"] == 3).all() and (table["reference_epochs"] == 40).all()
    assert np.allclose(table["doubling_gain"], [0.02, 0.04])
    # the weak figure: the same small last-two-epoch gain everywhere, labelled descriptive
    assert np.allclose(table["last_two_epoch_gain"], 0.002)
    found = convergence.undertraining_check(table, 0.01)
    assert found["checked"] and found["flagged"] and found["least_trained"][2] == 14
    assert found["message"].startswith("flagged: capacity confounded with under-training")
    result = run_analysis(frames)
    assert set(result["runs"]["trial_id"]).isdisjoint(reference["trial_id"])
    assert set(result["reference"]["trial_id"]) == set(reference["trial_id"])
    assert (result["runs"]["epochs"] == 20).all()
    assert result["verdicts"].set_index("claim").loc["2", "caveat"] in ("", verdicts.UNDERTRAINED)


def test_without_reference_runs_convergence_is_not_checked_never_not_flagged():
    frames = sim.convergence_sweep(np.random.default_rng(0), doubling=(0.02, 0.04),
                                   reference_seeds=())
    study, reference = convergence.split_reference(frames["trials"])
    assert reference.empty
    found = convergence.undertraining_check(
        convergence.convergence_by_cell(frames["epochs"], study, reference), 0.01)
    assert not found["checked"] and not found["flagged"]
    assert found["message"] == convergence.NOT_CHECKED
    assert "not flagged" not in found["message"]


def test_doubling_gains_read_every_budget_of_a_baseline_only_pilot():
    """A pilot of the baseline alone at E, 2E, 4E: each E with its 2E gets a doubling gain."""
    rows = [sim.trial_row(depth, 1, "none", seed, 0.7 + gain, 0.7, epochs=budget)
            for depth, per_budget in ((8, {10: 0.0, 20: 0.05, 40: 0.08}),
                                      (20, {10: 0.0, 20: 0.06, 40: 0.07}))
            for budget, gain in per_budget.items() for seed in (0, 1)]
    table = convergence.doubling_gains(pd.DataFrame(rows))
    assert list(zip(table["depth"], table["epochs"], table["reference_epochs"])) == [
        (8, 10, 20), (8, 20, 40), (20, 10, 20), (20, 20, 40)]
    assert np.allclose(table["doubling_gain"], [0.05, 0.03, 0.06, 0.01])
    assert (table["n_baseline"] == 2).all() and (table["n_reference"] == 2).all()
    # a second protocol at the same budgets (no augmentation) is its own series, never mixed in
    rows += [sim.trial_row(8, 1, "none", seed, 0.5 + gain, 0.5, epochs=budget, augment=False)
             for budget, gain in ((10, 0.0), (20, 0.0)) for seed in (0, 1)]
    table = convergence.doubling_gains(pd.DataFrame(rows).assign(
        augment=lambda t: t["augment"].fillna(True)))
    assert list(table["setting"]) == ["augment=False", "augment=True", "augment=True",
                                      "single setting", "single setting"]
    assert np.allclose(table["doubling_gain"], [0.0, 0.05, 0.03, 0.06, 0.01])


def with_reference_runs(frames, doubling, seeds=(0, 1, 2)):
    """``frames`` plus baseline reference runs at twice the epochs, each cell's ending
    doubling[depth] above the mean of its baseline runs (final epoch only)."""
    trials = frames["trials"]
    base = trials[trials["regularizer"] == "none"]
    rows, curves = [], []
    for depth, cell in base.groupby("depth"):
        for seed in seeds:
            row = cell.iloc[0].to_dict()
            row.update(trial_id=f"{row['trial_id']}-reference-{seed}", seed=seed,
                       epochs=2 * row["epochs"],
                       test_acc=cell["test_acc"].mean() + doubling[depth])
            rows.append(row)
            curves.append({"trial_id": row["trial_id"], "epoch": row["epochs"] - 1,
                           "test_acc": row["test_acc"]})
    return {**frames, "trials": pd.concat([trials, pd.DataFrame(rows)], ignore_index=True),
            "epochs": pd.concat([frames["epochs"], pd.DataFrame(curves)], ignore_index=True)}


def test_claim_2_carries_the_under_training_flag_and_the_slope_without_that_cell():
    # twice the epochs add 3 pt to the largest cell's baseline, 1 pt to the others
    frames = with_reference_runs(make_tables(), {8: 0.01, 14: 0.01, 20: 0.01, 32: 0.03})
    result = run_analysis(frames)
    assert result["undertraining"]["flagged"]
    assert result["undertraining"]["least_trained"][2] == 32
    assert len(result["reference"]) == 12 and not result["reference"]["trial_id"].isin(
        result["runs"]["trial_id"]).any()
    claim = result["verdicts"].set_index("claim").loc["2"]
    assert claim["caveat"] == verdicts.UNDERTRAINED
    slopes = result["undertraining_slopes"]
    assert (slopes["n_cells"] == 4).all() and (slopes["n_cells_without"] == 3).all()
    equal = run_analysis(with_reference_runs(make_tables(), dict.fromkeys((8, 14, 20, 32), 0.02)))
    assert equal["undertraining"]["checked"] and not equal["undertraining"]["flagged"]
    assert equal["verdicts"].set_index("claim").loc["2", "caveat"] == ""


def test_claim_2_without_reference_runs_says_convergence_was_not_checked(planted):
    assert not planted["undertraining"]["checked"] and planted["reference"].empty
    assert planted["verdicts"].set_index("claim").loc["2", "caveat"] == convergence.NOT_CHECKED


def test_verdicts_name_their_reach_and_untested_claims_say_so():
    frames = make_tables(planted={"none": (0.0, 0.0), "so": (0.01, 0.0)}, dataset="cifar10")
    frames["trials"] = frames["trials"].assign(train_size=8000, val_size=1000).drop(
        columns=["corruption_acc_mean", "pgd_acc_8_255"])  # robustness off
    frames["epochs"] = frames["epochs"].assign(train_acc=0.9)
    table = run_analysis(frames)["verdicts"].set_index("claim")
    for claim in ("2, relaxed", "3", "4, cs"):
        assert table.loc[claim, "verdict"] == verdicts.NOT_TESTED and table.loc[claim, "reach"] == ""
    assert table.loc["1", "verdict"] == verdicts.NOT_TESTED  # no dn beside so
    reach = table.loc["2", "reach"]
    assert reach.startswith("136 k-544 k parameters (ResNet-8 to -32, width 1; 8,000 images, "
                            "4 epochs; baseline 80-82 % test, ") and reach.endswith("90 % train)")


def test_an_equivalence_reads_no_trend_in_the_tested_range_not_contradicted():
    flat = make_tables(planted={"none": (0.0, 0.0), "so": (0.01, 0.0)}, seeds=tuple(range(12)))
    claim = run_analysis(flat, primary={"arms": ["so"], "cells": "fixed"})[
        "verdicts"].set_index("claim").loc["2"]
    assert claim["verdict"] == verdicts.NO_TREND and claim["n_opposing"] == 0


def test_the_gain_decomposition_tells_an_optimisation_aid_from_regularization():
    frames = make_tables(planted={"none": (0.0, 0.0), "so": (0.01, 0.0), "dn": (0.01, 0.0)},
                         noise=0.001)
    test = frames["trials"].set_index("trial_id")["test_acc"]
    # so lifts train accuracy as much as test accuracy; dn keeps the baseline's train accuracy
    train = {t: test[t] + 0.1 - (0.01 if "-dn-" in t else 0.0) for t in test.index}
    last = frames["epochs"]["epoch"] == frames["epochs"]["epoch"].max()
    frames["epochs"]["train_acc"] = np.where(last, frames["epochs"]["trial_id"].map(train), 0.5)
    table = run_analysis(frames)["decomposition"]
    readings = table.groupby("regularizer")["reading"].agg(set)
    assert readings["so"] == {"optimisation aid"} and readings["dn"] == {"regularization"}
    so = table[table["regularizer"] == "so"]
    assert np.allclose(so["gap_change"], 0, atol=1e-9)
    assert np.allclose(so["train_gain"], so["test_gain"])
    dn = table[table["regularizer"] == "dn"]
    assert np.allclose(dn["gap_change"], -0.01, atol=1e-9)


def test_every_verdict_states_its_seeds_and_whether_the_exact_check_can_reach_alpha():
    from korth_bench.report.summary import verdict_text
    table = run_analysis(make_tables(seeds=(0, 1, 2)))["verdicts"].set_index("claim")
    row = table.loc["2, relaxed"]
    assert row["seeds_min"] == row["seeds_max"] == 3 and row["exact_floor"] == 0.25
    text = verdict_text({**row.to_dict(), "claim": "2, relaxed"}, 0.05)
    assert "3 seeds per side" in text and "cannot reach alpha 0.05" in text
    assert "smallest p 0.250" in text
    six = run_analysis(make_tables())["verdicts"].set_index("claim").loc["2, relaxed"]
    assert "cannot reach" not in verdict_text(six.to_dict(), 0.05)  # 2/64: reachable


def test_the_fixed_cells_primary_contrast_holds_its_level_and_reaches_the_planned_power():
    """analysis.primary.cells: fixed (the collapse study's pre-registered test): 6 cells, 3 strict
    arms at 8 seeds, the baseline at 16; no drop -> 'gains shrink' or 'grow' in <= 5 % of sweeps;
    the drop korth-bench plan says this design detects with 80 % power -> 80 % (3 se)."""
    sweeps = SWEEPS // 2
    cells = [(8, 1), (14, 1), (20, 1), (8, 2), (14, 2), (20, 2)]
    design = dict(regularizers=PRIMARY_ARMS, cells=cells, seeds=range(8), baseline_seeds=range(16))

    def rates(seed, drop):
        rng = np.random.default_rng(seed)
        table = sim.collapse_verdicts([sim.capacity_sweep(rng, drop=drop, **design)
                                       for _ in range(sweeps)], primary=PRIMARY_ARMS,
                                      primary_cells="fixed")
        row = table[table["test_family"] == "primary"]
        assert row["note"].str.startswith("fixed cells").all()
        return (float(row["verdict"].isin(["gains shrink with capacity", "gains grow"]).mean()),
                float((row["verdict"] == "gains shrink with capacity").mean()))

    null, _ = rates(61, 0.0)
    assert null <= sim.bound_with_error(0.05, sweeps)
    spread = power.Spread(arms=tuple(PRIMARY_ARMS), sd_arm=sim.RUN_SD / math.sqrt(3),
                          sd_base=sim.RUN_SD, cov_pair=0.0, unit_sd=math.nan, df_within=0,
                          cell_sd=0.0, df_cells=0, lack_of_fit_p=math.nan, n_cells=6,
                          seeds_per_cell=8)
    x = np.log2([17_000 * d * w ** 2 if (d, w) not in sim.RESNET_PARAMS else sim.RESNET_PARAMS[d, w]
                 for d, w in cells])
    drop = power.design_power(x, spread, 8, 16, 0.01, cells="fixed")["detectable_drop"]
    _, shrink = rates(62, drop)
    print(f"fixed cells, no drop: rejects {null:.3f}; {100 * drop:.2f}-pt drop: shrink {shrink:.3f}")
    assert abs(shrink - 0.8) <= 3 * math.sqrt(0.8 * 0.2 / sweeps)


# ---------------------------------------------------------------- issue 37: one lack of fit, one detectable drop
ISSUE37_DEPTHS = (8, 14, 20, 26, 32)


def issue37_runs(rng, arm_seeds=4, baseline_seeds=8, seed_sd=0.004, run_sd=0.003, offset_sd=0.0):
    """Completed runs of so and dn (gain 0.01 + a cell offset) and of the baseline at more seeds
    than the arms; a seed's draw is shared by every run of that seed in the cell."""
    rows = []
    for depth in ISSUE37_DEPTHS:
        offset = rng.normal(0, offset_sd)
        seed_effect = rng.normal(0, seed_sd, baseline_seeds)
        for name, seeds, gain in (("none", baseline_seeds, 0.0), ("so", arm_seeds, 0.01 + offset),
                                  ("dn", arm_seeds, 0.01 + offset)):
            for seed in range(seeds):
                rows.append({"dataset": "cifar10", "model": "resnet", "depth": depth, "width": 1,
                             "num_params": 17_000 * depth, "regularizer": name, "seed": seed,
                             "test_acc": 0.8 + gain + seed_effect[seed] + rng.normal(0, run_sd)})
    return pd.DataFrame(rows)


def test_cell_means_lack_of_fit_by_hand_and_for_independent_units():
    from scipy import stats as scipy_stats

    x, gain, variance = np.arange(4.0), np.array([0.0, 0.3, 0.1, 0.5]), np.full(4, 0.01)
    fit = stats.cell_means_lack_of_fit(x, gain, variance, 20)
    residual = gain - np.polyval(np.polyfit(x, gain, 1), x)
    rss = float(residual @ residual)
    assert fit["f"] == pytest.approx(rss / 2 / 0.01)
    assert fit["p_value"] == pytest.approx(scipy_stats.f.sf(rss / 2 / 0.01, 2, 20))
    assert fit["offset_var"] == pytest.approx(max(rss / 2 - 0.01, 0.0))
    # a cell mean known only roughly barely counts against the line
    loose = stats.cell_means_lack_of_fit(x, gain + np.array([0, 0, 0, 5.0]),
                                         np.array([0.01, 0.01, 0.01, 1e6]), 20)
    tight = stats.cell_means_lack_of_fit(x[:3], gain[:3], variance[:3], 20)
    assert loose["f"] * 2 == pytest.approx(tight["f"] * 1, rel=1e-3)
    assert math.isnan(stats.cell_means_lack_of_fit(x[:2], gain[:2], variance[:2], 20)["p_value"])
    assert math.isnan(stats.cell_means_lack_of_fit(x, gain, variance, 0)["p_value"])
    # independent units: lack_of_fit_p is this test with Var(cell mean) = s^2 / n_c
    rng = np.random.default_rng(3)
    cells = np.repeat(np.arange(4), [3, 4, 5, 3])
    units_x, units = cells * 1.5, rng.normal(0, 1, cells.size) + 0.4 * cells
    s, df = stats.pooled_within_sd(units, cells)
    counts = np.bincount(cells).astype(float)
    means = np.array([units[cells == c].mean() for c in range(4)])
    assert stats.lack_of_fit_p(units_x, units, cells) == pytest.approx(
        stats.cell_means_lack_of_fit(np.arange(4) * 1.5, means, s ** 2 / counts, df)["p_value"])


def test_the_lack_of_fit_holds_its_level_with_extra_baseline_seeds_and_finds_offsets():
    """Cells on the line, the baseline at twice the arms' seeds, seed effects shared: the table's
    lack-of-fit p (each cell mean against its own variance) rejects at its level; planted cell
    offsets of 3x the cell means' sd are found."""
    rng = np.random.default_rng(37)
    null = [collapse.cell_lack_of_fit(collapse.fixed_cell_gains(issue37_runs(rng), ["dn", "so"]))
            ["p_value"] for _ in range(SWEEPS)]
    rate = np.mean(np.array(null) <= 0.05)
    assert abs(rate - 0.05) <= 3 * math.sqrt(0.05 * 0.95 / SWEEPS)
    offsets = [collapse.cell_lack_of_fit(collapse.fixed_cell_gains(
        issue37_runs(rng, offset_sd=0.006), ["dn", "so"]))["p_value"] for _ in range(50)]
    assert np.mean(np.array(offsets) <= 0.05) > 0.6
    runs = issue37_runs(rng)
    table = collapse_test(runs, primary=["dn", "so"], primary_cells="fixed")
    primary = table.query("test_family == 'primary' and axis == @PRIMARY_AXIS").iloc[0]
    so = table.query("regularizer == 'so' and axis == @PRIMARY_AXIS").iloc[0]
    assert primary["lack_of_fit_p"] == pytest.approx(collapse.cell_lack_of_fit(
        collapse.fixed_cell_gains(runs, ["dn", "so"]))["p_value"])
    assert so["lack_of_fit_p"] == pytest.approx(collapse.cell_lack_of_fit(
        collapse.fixed_cell_gains(runs, ["so"]))["p_value"])
    assert power.measure_spread(runs, ["dn", "so"]).lack_of_fit_p == pytest.approx(
        primary["lack_of_fit_p"])


def test_one_detectable_drop_for_the_collapse_table_and_plan():
    from scipy import stats as scipy_stats

    for df, level in ((3, 0.05), (35, 0.05 / 3), (1, 0.05)):
        drop = collapse.detectable_drop(0.002, df, level)
        critical = scipy_stats.t.ppf(1 - level / 2, df)
        rejected = (scipy_stats.nct.sf(critical, df, drop / 0.002)
                    + scipy_stats.nct.cdf(-critical, df, drop / 0.002))
        assert rejected == pytest.approx(0.8, abs=1e-6)
    assert math.isnan(collapse.detectable_drop(0.002, 0, 0.05))
    assert math.isnan(collapse.detectable_drop(0.0, 5, 0.05))
    runs = issue37_runs(np.random.default_rng(5))
    table = collapse_test(runs, primary=["dn", "so"], primary_cells="fixed")
    primary = table.query("test_family == 'primary' and axis == @PRIMARY_AXIS").iloc[0]
    x = np.log2(17_000 * np.array(ISSUE37_DEPTHS, float))
    planned = power.design_power(x, power.measure_spread(runs, ["dn", "so"]), 4, 8, 0.01,
                                 cells="fixed")
    assert planned["detectable_drop"] == pytest.approx(primary["detectable_drop"], rel=1e-9)
    assert planned["df"] == 15
    so = table.query("regularizer == 'so' and axis == @PRIMARY_AXIS").iloc[0]
    sxx = float(((x - x.mean()) ** 2).sum())
    se = so["sd_within"] / math.sqrt(so["n_units"] / so["n_cells"]) / math.sqrt(sxx) * np.ptp(x)
    assert so["detectable_drop"] == pytest.approx(
        collapse.detectable_drop(se, so["n_cells"] - 2, 0.05 / so["family_size"]))
    assert so["detectable_drop"] == pytest.approx(stats.detectable_drop(
        x, so["sd_within"], so["n_units"] / so["n_cells"], 0.05 / so["family_size"]))


# ---------------------------------------------------------------- issue 42: rules that a mutant broke

def _holm_by_hand(p_values):
    """Holm's step-down adjustment written out: the i-th smallest of m p-values times (m - i),
    made monotone, capped at 1 (independent of stats.holm_adjust)."""
    p_values = np.asarray(p_values, float)
    m = p_values.size
    adjusted, running = np.empty(m), 0.0
    for rank, index in enumerate(np.argsort(p_values, kind="stable")):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def test_holm_runs_over_every_collapse_metric_and_arm_together():
    """docs/claims.md: every family of tests is controlled (Holm), all collapse metrics and arms
    together. Two metrics x three claim-2 arms: each log2-params row's p_holm is Holm over all six
    p-values, and cs's two rows are Holm over their own family of two; Holm per metric (m = 3)
    gives a different answer on this input."""
    planted = {"none": (0.0, 0.0), "so": (0.01, -0.003), "dn": (0.02, -0.006),
               "dn_relaxed": (0.01, -0.002), "cs": (0.01, -0.004)}
    trials = make_tables(planted=planted, seed=11)["trials"]
    rng = np.random.default_rng(12)  # clean_acc: its own noise, so its p-values differ from test_acc's
    trials = trials.assign(clean_acc=trials["test_acc"] + rng.normal(0, 0.006, len(trials)))
    table = collapse_test(trials, metric=["test_acc", "clean_acc"],
                          family={"so", "dn", "dn_relaxed"})
    rows = table[table["axis"] == PRIMARY_AXIS]
    claim = rows[rows["test_family"] == "claim 2"]
    outside = rows[rows["test_family"] == "outside claim 2"]
    assert sorted(zip(claim["metric"], claim["regularizer"])) == sorted(
        (m, r) for m in ("test_acc", "clean_acc") for r in ("so", "dn", "dn_relaxed"))
    assert sorted(zip(outside["metric"], outside["regularizer"])) == [("clean_acc", "cs"),
                                                                      ("test_acc", "cs")]
    assert (claim["family_size"] == 6).all() and (outside["family_size"] == 2).all()
    p = claim["p_value"].to_numpy(float)
    assert np.isfinite(p).all() and np.unique(p).size == 6
    expected = _holm_by_hand(p)
    np.testing.assert_allclose(claim["p_holm"].to_numpy(float), expected, rtol=1e-12)
    np.testing.assert_allclose(outside["p_holm"].to_numpy(float),
                               _holm_by_hand(outside["p_value"]), rtol=1e-12)
    per_metric = np.empty(6)
    for metric in ("test_acc", "clean_acc"):
        of = (claim["metric"] == metric).to_numpy()
        per_metric[of] = _holm_by_hand(p[of])
    assert not np.allclose(per_metric, expected)  # the input tells the two rules apart
    # the verdict's level is the family's strictest threshold, alpha / 6
    assert (claim["verdict"].isin(["gains shrink with capacity", "gains grow", "no trend",
                                   "inconclusive"])).all()
    significant = claim["verdict"].isin(["gains shrink with capacity", "gains grow"]).to_numpy()
    assert (significant == (expected <= 0.05)).all()


def _diverging_trials(dataset):
    """One cell of real-looking trials rows: a diverged run has status 'diverged' and no
    accuracy (val_acc and test_acc null), as loop.train_and_measure records it.
    so: coefficient=0.1 diverges on seeds 0 and 1 and scores 0.62 on seeds 2 and 3;
    coefficient=0.01 is stable at 0.60 (slightly worse than 0.1's survivors).
    dn: one setting, diverged on seed 0, 0.51/0.52/0.53 on seeds 1-3."""
    rows = []

    def run(regularizer, coefficient, seed, accuracy):
        rows.append({"sweep": "s", "trial_id": f"{regularizer}-{coefficient}-{seed}",
                     "status": "completed" if accuracy is not None else "diverged",
                     "dataset": dataset, "model": "resnet", "depth": 8, "width": 1,
                     "regularizer": regularizer, "coefficient": coefficient, "seed": seed,
                     "epochs": 4, "val_acc": accuracy, "test_acc": accuracy})

    for seed in range(4):
        run("so", 0.1, seed, None if seed < 2 else 0.62)
        run("so", 0.01, seed, 0.60)
        run("dn", 0.1, seed, None if seed == 0 else 0.50 + 0.01 * seed)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("dataset, classes", [("cifar10", 10), ("cifar100", 100)])
def test_a_diverged_run_scores_chance_accuracy_in_selection(dataset, classes):
    """entries.select_entries: a diverged run counts at chance accuracy, 1 / classes, so a
    setting that diverges on some seeds does not win on its survivors' accuracy."""
    trials = _diverging_trials(dataset)
    assert trials.loc[trials["status"] == "diverged", "val_acc"].isna().all()
    chosen = entries.select_entries(trials).set_index("regularizer")
    so = chosen.loc["so"]
    assert so["setting"] == "coefficient=0.01" and so["n_diverged"] == 0
    assert so["cross_fitted"] is True
    assert so["seed_settings"] == {seed: "coefficient=0.01" for seed in range(4)}
    assert so["selection_score"] == pytest.approx(0.60)
    dn = chosen.loc["dn"]
    assert dn["n_diverged"] == 1 and dn["cross_fitted"] is None
    assert dn["selection_score"] == pytest.approx((1 / classes + 0.51 + 0.52 + 0.53) / 4)
    # the chance accuracy itself, per data set
    assert entries.chance_accuracy(trials).unique().tolist() == [pytest.approx(1 / classes)]


# ---------------------------------------------------------------- issue 42: power by hand (make mutation)

def _spread(**changes):
    values = dict(arms=("so",), sd_arm=0.02, sd_base=0.01, cov_pair=0.0001, unit_sd=0.02,
                  df_within=10, cell_sd=0.005, df_cells=3, lack_of_fit_p=0.5, n_cells=5,
                  seeds_per_cell=3.0)
    return power.Spread(**{**values, **changes})


def test_a_designs_standard_error_by_hand():
    """v(s, b) = sd_arm^2/s + (sd_base^2 - 2 cov_pair)/b; the drop's se is sqrt((v + cell_sd^2)
    / Sxx) ptp(x) with the cell offsets, sqrt(v / Sxx) ptp(x) without, and 0 where the
    covariance makes v negative. The slope test's df: C - 2 (random cells), C (s - 1) (fixed)."""
    spread = _spread()
    v = 0.02 ** 2 / 4 + (0.01 ** 2 - 2 * 0.0001) / 8  # 8.75e-5
    assert power.cell_variance(spread, 4, 8) == pytest.approx(8.75e-5, rel=1e-12)
    x = np.array([0.0, 1.0, 2.0, 3.0])  # Sxx = 5, ptp = 3
    assert power.drop_se(x, spread, 4, 8) == pytest.approx(math.sqrt((v + 0.005 ** 2) / 5) * 3)
    assert power.drop_se(x, spread, 4, 8, cell_offsets=False) == pytest.approx(
        math.sqrt(v / 5) * 3)
    assert power.drop_se(x, _spread(cov_pair=0.01), 4, 8, cell_offsets=False) == 0.0
    assert power.test_df("random", 5, 3) == 3 and power.test_df("fixed", 5, 3) == 10


def test_superiority_power_is_the_noncentral_t_tail_at_the_two_sided_critical_value():
    """No true drop: "gains shrink" (one sign of a two-sided test) comes at half the level; a
    drop of 3 se at df 10, level 0.05: the noncentral t's tail beyond t_0.975,10; no df or no
    spread: nan."""
    from scipy import stats as scipy_stats

    assert power.superiority_power(0.0, 0.01, 10, 0.05) == pytest.approx(0.025, rel=1e-9)
    critical = scipy_stats.t.ppf(0.975, 10)
    assert power.superiority_power(0.03, 0.01, 10, 0.05) == pytest.approx(
        scipy_stats.nct.sf(critical, 10, 3.0), rel=1e-9)
    assert 0.7 < power.superiority_power(0.03, 0.01, 10, 0.05) < 0.8
    assert power.superiority_power(0.03, 0.01, 10, 0.01) < power.superiority_power(
        0.03, 0.01, 10, 0.05)
    for drop, se, df in ((0.03, 0.01, 0), (0.03, 0.0, 10), (0.03, math.nan, 10)):
        assert math.isnan(power.superiority_power(drop, se, df, 0.05))
    assert power.superiority_power(0.03, 0.01, 1, 0.05) == pytest.approx(  # one df is a test
        scipy_stats.nct.sf(scipy_stats.t.ppf(0.975, 1), 1, 3.0), rel=1e-9)


def test_equivalence_power_against_numerical_integration():
    """P(|drop_hat| < min(claimed - t se_hat, t se_hat)) with drop_hat ~ N(0, se^2), se_hat^2 =
    se^2 V / df, V ~ chi^2_df: integrated over V's density here (the module takes quantiles).
    A claimed drop far above se leaves only the slope test: 1 - alpha; no claimed drop: 0."""
    from scipy import integrate, stats as scipy_stats

    def by_integration(claimed, se, df, alpha):
        critical = scipy_stats.t.ppf(1 - alpha / 2, df)

        def at(v):
            half = critical * math.sqrt(v / df)
            room = min(claimed / se - half, half)
            return max(2 * scipy_stats.norm.cdf(room) - 1, 0.0) * scipy_stats.chi2.pdf(v, df)
        return integrate.quad(at, 0, np.inf, limit=200)[0]

    for claimed, se, df, alpha in ((0.01, 0.004, 6, 0.05), (0.02, 0.004, 3, 0.1),
                                   (0.008, 0.002, 20, 0.05)):
        assert power.equivalence_power(claimed, se, df, alpha) == pytest.approx(
            by_integration(claimed, se, df, alpha), abs=2e-4)
    assert power.equivalence_power(10.0, 0.001, 8, 0.05) == pytest.approx(0.95, abs=1e-3)
    assert power.equivalence_power(0.0, 0.004, 8, 0.05) == 0.0
    for se, df in ((0.0, 8), (0.004, 0)):
        assert math.isnan(power.equivalence_power(0.01, se, df, 0.05))
    assert power.equivalence_power(0.02, 0.004, 1, 0.05) == pytest.approx(
        by_integration(0.02, 0.004, 1, 0.05), abs=2e-4)


def test_design_power_is_its_parts_at_the_familys_level():
    """design_power: the se (offsets only for random cells that keep them), the test's df, and
    superiority and the detectable drop at alpha / family_size, equivalence at alpha."""
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    spread = _spread()
    fixed = power.design_power(x, spread, 3, 6, 0.02, alpha=0.1, family_size=2, cells="fixed",
                               power=0.9)
    se = power.drop_se(x, spread, 3, 6, cell_offsets=False)
    assert fixed == pytest.approx({
        "se": se, "df": 10, "superiority": power.superiority_power(0.02, se, 10, 0.05),
        "equivalence": power.equivalence_power(0.02, se, 10, 0.1),
        "detectable_drop": collapse.detectable_drop(se, 10, 0.05, 0.9)}, rel=1e-12)
    random_cells = power.design_power(x, spread, 3, 6, 0.02)
    se = power.drop_se(x, spread, 3, 6)
    assert random_cells == pytest.approx({
        "se": se, "df": 3, "superiority": power.superiority_power(0.02, se, 3, 0.05),
        "equivalence": power.equivalence_power(0.02, se, 3, 0.05),
        "detectable_drop": collapse.detectable_drop(se, 3, 0.05, 0.8)}, rel=1e-12)
    on_the_line = power.design_power(x, spread, 3, 6, 0.02, cell_offsets=False)
    assert on_the_line["se"] == pytest.approx(power.drop_se(x, spread, 3, 6, cell_offsets=False))


def test_measure_spread_reads_the_moments_and_the_lack_of_fit_of_the_collapse_test():
    """Spread: the fixed-cell moments of collapse.fixed_cell_gains (sd of A and B, their
    covariance, the paired unit sd sqrt(var A + var B - 2 cov)) and collapse.cell_lack_of_fit's
    cell sd and p on C - 2 df; no runs: every number nan, every count 0, the arms kept."""
    runs = issue37_runs(np.random.default_rng(3), offset_sd=0.004)
    import dataclasses

    cells = collapse.fixed_cell_gains(runs, ["dn", "so"])
    fit = collapse.cell_lack_of_fit(cells)
    var_a, var_b, cov = (cells.attrs[k] for k in ("var_arm", "var_base", "cov_pair"))
    spread = power.measure_spread(runs, ("dn", "so"))
    expected = dict(
        arms=("dn", "so"), sd_arm=math.sqrt(var_a), sd_base=math.sqrt(var_b), cov_pair=cov,
        unit_sd=math.sqrt(var_a + var_b - 2 * cov), df_within=int(cells.attrs["df"]),
        cell_sd=math.sqrt(fit["offset_var"]), df_cells=len(cells) - 2,
        lack_of_fit_p=fit["p_value"], n_cells=len(cells),
        seeds_per_cell=float(cells["arm_seeds"].mean()))
    got = dataclasses.asdict(spread)
    assert got.pop("arms") == expected.pop("arms")
    assert got == pytest.approx(expected, rel=1e-12)
    assert spread.cov_pair != 0 and spread.cell_sd > 0 and spread.df_cells == len(cells) - 2 > 0
    empty = power.measure_spread(runs.iloc[:0], ["so"])
    assert empty.arms == ("so",) and (empty.df_within, empty.df_cells, empty.n_cells) == (0, 0, 0)
    assert all(math.isnan(value) for value in (empty.sd_arm, empty.sd_base, empty.cov_pair,
                                                empty.unit_sd, empty.cell_sd, empty.lack_of_fit_p,
                                                empty.seeds_per_cell))
