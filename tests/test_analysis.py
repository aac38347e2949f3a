"""Statistics of the leaderboard: small deterministic inputs, properties, and simulations with
fixed seeds (vectorized, so the whole file runs in seconds)."""
import math

import numpy as np
import pandas as pd
import pytest

from korth_bench.analysis import claims, entries, stats

REPS = 199  # permutation / bootstrap resamples in tests; reports use 9999 / 1999


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
    return claims.analyze(frames, n_permutations=REPS, n_bootstrap=REPS, **options)


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


def test_minimum_detectable_slope_has_the_stated_power():
    x = np.repeat(np.arange(4.0), 5)
    detectable = float(stats.minimum_detectable_slope(1.0, x, alpha=0.05, power=0.8))
    # the central-t approximation behind the formula is close to the exact noncentral power
    assert stats.slope_power(-detectable, 1.0, x)["two_sided"] == pytest.approx(0.8, abs=0.02)
    assert math.isinf(stats.minimum_detectable_slope(np.nan, x))


def test_verdict_is_inconclusive_when_the_design_cannot_see_the_claim():
    verdicts = claims.collapse_verdict(
        slope=np.array([-1.0, 1.0, -1.0, -1.0, -1.0]),
        p_adjusted=np.array([0.01, 0.01, 0.5, 0.5, np.nan]),
        detectable_drop=np.array([0.1, 0.1, 0.005, 0.05, np.inf]), claimed_drop=0.01, alpha=0.05)
    assert list(verdicts) == ["gains shrink with capacity", "gains grow", "no trend",
                              "inconclusive", "inconclusive"]


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
    so = collapse.loc[("so", "log2_params")]
    assert so["low"] <= 0 <= so["high"] and so["verdict"] != "gains shrink with capacity"
    assert np.isfinite(collapse["detectable_drop"]).all()
    assert (collapse["alpha"] == 0.05).all()


def _simulated_gains(rng, slope, sims, cells=4, seeds=5, heteroscedastic=False):
    """[sims, cells * seeds] per-seed gains with the given slope per unit of x = 0..cells-1."""
    x = np.repeat(np.arange(float(cells)), seeds)
    if heteroscedastic:  # heavy tails and a spread that grows with capacity
        noise = rng.standard_t(3, (sims, x.size)) * (1 + x)
    else:
        noise = rng.standard_normal((sims, x.size))
    return x, slope * x + noise


def _shrink_rate(x, y, rng, alpha=0.05):
    p = stats.slope_permutation_p(x, y, rng, REPS)
    verdicts = claims.collapse_verdict(stats.ols_slope(x, y), p, np.zeros(len(p)), 1.0, alpha)
    return float(np.mean(verdicts == "gains shrink with capacity"))


def test_detection_rate_matches_the_computed_power():
    rng = np.random.default_rng(2024)
    slope = -0.46  # noncentrality about 2.3 with 4 cells x 5 seeds and unit spread
    x, y = _simulated_gains(rng, slope, sims=100)
    expected = stats.slope_power(slope, 1.0, x)["negative"]
    observed = _shrink_rate(x, y, rng)
    print(f"power: computed {expected:.3f}, detected {observed:.2f} of 100 simulations")
    assert 0.5 < expected < 0.75
    assert abs(observed - expected) < 0.15


@pytest.mark.parametrize("heteroscedastic", [False, True])
def test_false_shrink_rate_is_at_most_alpha_under_the_null(heteroscedastic):
    rng = np.random.default_rng(7)
    x, y = _simulated_gains(rng, 0.0, sims=200, cells=4, seeds=3, heteroscedastic=heteroscedastic)
    rate = _shrink_rate(x, y, rng)
    print(f"false 'shrink' rate over 200 null data sets (heteroscedastic={heteroscedastic}): "
          f"{rate:.3f}")
    assert rate <= 0.096


def test_bootstrap_t_interval_covers_at_close_to_nominal_with_three_seeds():
    rng = np.random.default_rng(11)
    x, y = _simulated_gains(rng, -0.3, sims=200, cells=4, seeds=3)
    cells = np.repeat(np.arange(4), 3)
    low, high = stats.slope_bootstrap_ci(x, y, cells, rng, 0.95, REPS)
    coverage = np.mean((low <= -0.3) & (-0.3 <= high))
    print(f"bootstrap-t coverage over 200 simulations: {coverage:.3f}")
    assert 0.9 <= coverage <= 0.99


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
    units = claims.unit_gains(result["runs"], "so", "test_acc")
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
    efficiency = result["efficiency"].set_index("regularizer")
    # dn is 2 points up at depth 8; the baseline gains 1 point per doubling and reaches that at
    # depth 32 (4x the parameters)
    assert efficiency.loc["dn", "status"] == "matched" and efficiency.loc["dn", "depth"] == 8
    assert efficiency.loc["dn", "base_depth"] == 32 and efficiency.loc["dn", "params_ratio"] == 4
    # with no capacity effect a larger baseline is no better, so nothing counts as a saving
    flat = run_analysis(make_tables(depths=(8, 32), capacity_effect=0.0, planted={
        "none": (0.0, 0.0), "so": (0.0, 0.0)}))["efficiency"]
    assert (flat["status"] == "no match").all()


def test_learning_curves_and_robustness_profile_carry_counts():
    result = run_analysis(make_tables(depths=(8, 14)))
    curves = result["curves"]
    assert set(curves["epoch"]) == {0, 1, 2, 3} and (curves["n"] == 6).all()
    profile = result["robustness"]
    assert (profile["n"] == 12).all() and (profile["n_cells"] == 2).all()
    assert set(profile["name"]) == {"gaussian_noise", "pgd"}


def test_identical_seeds_give_an_inconclusive_verdict_not_no_trend():
    """Every seed of a cell gives the same gain (e.g. all at chance): no spread, so no interval,
    no power and no 'no trend'; a single within-cell degree of freedom is refused likewise."""
    rows = [{"dataset": "c", "model": "resnet", "depth": depth, "width": 1,
             "num_params": 1000 * depth, "regularizer": regularizer, "seed": seed,
             "test_acc": 0.1 + (0.01 * (depth == 14) if regularizer == "so" else 0.0)}
            for depth in (8, 14) for seed in (0, 1) for regularizer in ("none", "so")]
    table = claims.collapse_test(pd.DataFrame(rows), np.random.default_rng(0),
                                   n_permutations=99, n_bootstrap=99)
    assert len(table) and (table["verdict"] == "inconclusive").all()
    assert np.isinf(table["detectable_drop"]).all() and np.isinf(table["low"]).all()
    assert table["note"].str.contains("no seed spread").all()
    three = pd.DataFrame([r for r in rows if not (r["depth"] == 14 and r["seed"] == 1)])
    table = claims.collapse_test(three, np.random.default_rng(0), n_permutations=99,
                                   n_bootstrap=99)
    assert (table["verdict"] == "inconclusive").all()
    assert table["note"].str.contains("1 within-cell degree").all()
