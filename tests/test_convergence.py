"""The under-training check (analysis/convergence.py) on tiny hand-built trials and epochs tables.

The expected numbers are worked out here: the doubling gain as a difference of two means, its
Welch interval by scipy.stats.ttest_ind(equal_var=False), the spread of doubling gains and the
flag rule (spread > claimed drop) by hand, Pearson's r by scipy.stats.pearsonr and the slopes
without a cell by scipy.stats.linregress. num_params = 128 x depth (log2: 10, 11, 12, 13 at
depth 8, 16, 32, 64).
"""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from korth_bench.analysis import convergence
from korth_bench.analysis.collapse import collapse_test
from korth_bench.analysis.convergence import (
    CONVERGENCE_COLUMNS, DOUBLING_COLUMNS, NOT_CHECKED, doubling_gains, split_reference,
    undertraining_check)


def trial(depth, regularizer, seed, acc=0.7, *, epochs=20, status="completed", width=1,
          dataset="c10", model="resnet", num_params=None, **extra):
    """One trials row, its id naming the cell, regularizer, seed and budget."""
    return {"trial_id": f"{dataset}-{model}-{depth}x{width}-{regularizer}-s{seed}-e{epochs}",
            "status": status, "dataset": dataset, "model": model, "depth": depth,
            "width": width, "num_params": 128 * depth if num_params is None else num_params,
            "regularizer": regularizer, "seed": seed, "epochs": epochs, "test_acc": acc, **extra}


def curve(row, test, train=None):
    """Epochs rows of one trial: test_acc (and train_acc) at epochs 0, 1, ..."""
    return [{"trial_id": row["trial_id"], "epoch": epoch, "test_acc": value,
             **({} if train is None else {"train_acc": train[epoch]})}
            for epoch, value in enumerate(test)]


def ids(frame):
    return sorted(frame["trial_id"])


def welch(treated, control, confidence=0.95):
    """The Welch interval of mean(treated) - mean(control), by scipy."""
    found = stats.ttest_ind(treated, control, equal_var=False).confidence_interval(confidence)
    return found.low, found.high


# ---------------------------------------------------------------- split_reference

def test_reference_runs_are_baseline_runs_at_a_budget_no_arm_of_the_cell_ran():
    rows = [trial(8, "so", 0), trial(8, "none", 0), trial(8, "none", 0, epochs=40),
            trial(8, "none", 1, epochs=40, status="failed"),
            # another arm ran 40 epochs in this cell: the baseline's 40 is a study budget
            trial(16, "so", 0), trial(16, "dn", 0, epochs=40), trial(16, "none", 0, epochs=40),
            # no arm at all: every baseline budget is the study's
            trial(32, "none", 0), trial(32, "none", 0, epochs=40),
            # the arm ran 40 only: the baseline's 20 is the other budget
            trial(8, "so", 0, epochs=40, width=2), trial(8, "none", 0, width=2),
            trial(8, "none", 0, epochs=40, width=2)]
    trials = pd.DataFrame(rows)
    study, reference = split_reference(trials)
    assert ids(reference) == ["c10-resnet-8x1-none-s0-e40", "c10-resnet-8x1-none-s1-e40",
                              "c10-resnet-8x2-none-s0-e20"]
    assert sorted(study.index.tolist() + reference.index.tolist()) == list(range(len(rows)))
    assert list(reference.columns) == list(trials.columns)


def test_reference_runs_of_another_dataset_or_model_are_their_own_cells():
    rows = [trial(8, "so", 0), trial(8, "none", 0, epochs=40),
            trial(8, "none", 0, epochs=40, model="vgg"), trial(8, "so", 0, epochs=40, model="vgg"),
            trial(8, "none", 0, epochs=40, dataset="c100")]
    study, reference = split_reference(pd.DataFrame(rows))
    assert ids(reference) == ["c10-resnet-8x1-none-s0-e40"]


def test_split_reference_reads_the_named_baseline():
    """With baseline 'ref', 'none' is an arm like so: its 40 epochs are a study budget."""
    rows = [trial(8, "so", 0), trial(8, "ref", 0, epochs=40), trial(8, "none", 0),
            trial(16, "so", 0), trial(16, "ref", 0, epochs=40), trial(16, "none", 0, epochs=40)]
    study, reference = split_reference(pd.DataFrame(rows), baseline="ref")
    assert ids(reference) == ["c10-resnet-8x1-ref-s0-e40"]


def test_without_epochs_or_trials_there_are_no_reference_runs():
    trials = pd.DataFrame([trial(8, "so", 0), trial(8, "none", 0, epochs=40)])
    for frame in (trials.drop(columns="epochs"), trials.iloc[0:0]):
        study, reference = split_reference(frame)
        assert study is frame
        assert reference.empty and list(reference.columns) == list(frame.columns)


# ---------------------------------------------------------------- final_epoch_values

def test_final_epoch_values_take_each_trials_last_epoch_in_any_row_order():
    epochs = pd.DataFrame({"trial_id": ["b", "a", "a", "b", "a"], "epoch": [1, 2, 0, 0, 1],
                           "train_acc": [5, 3, 1, 4, 2]})
    values = convergence.final_epoch_values(epochs, "train_acc")
    assert values.to_dict() == {"a": 3.0, "b": 5.0} and values.dtype == float
    assert values.index.tolist() == ["a", "b"] and values.index.name == "trial_id"


@pytest.mark.parametrize("epochs", [None, pd.DataFrame(columns=["trial_id", "epoch", "x"]),
                                    pd.DataFrame({"trial_id": ["a"], "epoch": [0], "y": [1]})])
def test_final_epoch_values_are_empty_without_the_column(epochs):
    values = convergence.final_epoch_values(epochs, "x")
    assert values.empty and values.dtype == float


# ---------------------------------------------------------------- doubling_gains

def test_the_doubling_gain_is_the_baseline_at_2e_minus_at_e_with_its_welch_interval():
    at_e, at_2e = [0.70, 0.72, 0.77], [0.78, 0.81]
    rows = ([trial(8, "none", s, a) for s, a in enumerate(at_e)]
            + [trial(8, "none", s, a, epochs=40) for s, a in enumerate(at_2e)])
    table = doubling_gains(pd.DataFrame(rows))
    assert list(table.columns) == DOUBLING_COLUMNS and len(table) == 1
    row = table.iloc[0]
    assert (row["epochs"], row["reference_epochs"]) == (20, 40)
    assert (row["n_baseline"], row["n_reference"]) == (3, 2)
    assert row["baseline_test_acc"] == pytest.approx(0.73)
    assert row["reference_test_acc"] == pytest.approx(0.795)
    assert row["doubling_gain"] == pytest.approx(0.795 - 0.73)
    low, high = welch(at_2e, at_e)
    assert row["doubling_gain_low"] == pytest.approx(low)
    assert row["doubling_gain_high"] == pytest.approx(high)
    assert (row["setting"], row["num_params"], row["depth"], row["width"]) == (
        "single setting", 1024, 8, 1)
    narrow = doubling_gains(pd.DataFrame(rows), confidence=0.8).iloc[0]
    low, high = welch(at_2e, at_e, 0.8)
    assert narrow["doubling_gain_low"] == pytest.approx(low)
    assert narrow["doubling_gain_high"] == pytest.approx(high)


def test_doubling_gains_count_completed_baseline_runs_with_a_value():
    rows = [trial(8, "none", 0, 0.70), trial(8, "none", 1, 0.72),
            trial(8, "none", 2, 0.10, status="failed"), trial(8, "none", 3, math.nan),
            trial(8, "so", 0, 0.99), trial(8, "none", 0, 0.80, epochs=40),
            trial(8, "none", 1, 0.10, epochs=40, status="diverged"),
            trial(8, "so", 0, 0.10, epochs=40)]
    row = doubling_gains(pd.DataFrame(rows)).iloc[0]
    assert (row["n_baseline"], row["n_reference"]) == (2, 1)
    # one reference run: the gain 0.80 - 0.71, no interval
    assert row["doubling_gain"] == pytest.approx(0.09)
    assert math.isnan(row["doubling_gain_low"]) and math.isnan(row["doubling_gain_high"])


def test_doubling_gains_need_runs_at_exactly_twice_the_budget():
    rows = [trial(8, "none", 0, 0.70), trial(8, "none", 0, 0.75, epochs=30),
            trial(16, "none", 0, 0.70), trial(16, "none", 0, math.nan, epochs=40),
            trial(32, "none", 0, math.nan), trial(32, "none", 0, 0.8, epochs=40)]
    table = doubling_gains(pd.DataFrame(rows))
    assert table.empty and list(table.columns) == DOUBLING_COLUMNS
    assert doubling_gains(pd.DataFrame(rows).iloc[0:0]).empty


def test_doubling_gains_sort_by_capacity_and_budget_and_read_float_budgets():
    """Depth 8 at width 4 has more parameters than depth 16 at width 1: it comes after it."""
    rows = [trial(8, "none", 0, 0.60, width=4, num_params=9000, epochs=10.0),
            trial(8, "none", 0, 0.70, width=4, num_params=9000, epochs=20.0),
            trial(8, "none", 0, 0.75, width=4, num_params=9000, epochs=40.0),
            trial(16, "none", 0, 0.50, num_params=2000), trial(16, "none", 0, 0.56, epochs=40),
            trial(8, "none", 0, 0.40, dataset="a", num_params=99999),
            trial(8, "none", 0, 0.41, dataset="a", num_params=99999, epochs=40)]
    table = doubling_gains(pd.DataFrame(rows))
    assert table[["dataset", "depth", "epochs", "reference_epochs"]].values.tolist() == [
        ["a", 8, 20, 40], ["c10", 16, 20, 40], ["c10", 8, 10, 20], ["c10", 8, 20, 40]]
    assert table["doubling_gain"].to_numpy() == pytest.approx([0.01, 0.06, 0.10, 0.05])
    assert table.index.tolist() == [0, 1, 2, 3]


def test_doubling_gains_keep_each_setting_of_the_baseline_apart():
    """Two learning rates at 20 and 40 epochs: two series, labelled by the key that differs."""
    rows = [trial(8, "none", 0, a, epochs=e, lr=lr, num_params=1000)
            for lr, e, a in ((0.1, 20, 0.70), (0.1, 40, 0.74), (0.2, 20, 0.60),
                             (0.2, 40, 0.70))]
    rows.append(trial(8, "none", 1, 0.80, epochs=40, lr=0.1, num_params=3000))
    table = doubling_gains(pd.DataFrame(rows)).sort_values("setting")
    assert table["setting"].tolist() == ["lr=0.1", "lr=0.2"]
    assert table["doubling_gain"].to_numpy() == pytest.approx([0.77 - 0.70, 0.10])
    # the median parameter count of the setting's runs (lr=0.1: 1000, 1000, 3000)
    assert (table["num_params"] == 1000).all()


def test_doubling_gains_of_a_cell_without_a_recorded_width():
    rows = [trial(8, "none", 0, 0.70, width=math.nan), trial(8, "none", 0, 0.75, epochs=40,
                                                              width=math.nan)]
    table = doubling_gains(pd.DataFrame(rows))
    assert table["doubling_gain"].to_numpy() == pytest.approx([0.05])
    assert table["width"].isna().all()


def test_doubling_gains_read_the_named_baseline():
    rows = [trial(8, "ref", 0, 0.70), trial(8, "ref", 0, 0.73, epochs=40),
            trial(8, "none", 0, 0.10), trial(8, "none", 0, 0.90, epochs=40)]
    table = doubling_gains(pd.DataFrame(rows), baseline="ref")
    assert table["doubling_gain"].to_numpy() == pytest.approx([0.03])


# ---------------------------------------------------------------- convergence_by_cell

def two_cells():
    """Cell 8: so and the baseline at 4 epochs (seeds 0, 1), reference runs at 8 epochs (seeds
    0, 1, 2); cell 16: so and the baseline at 4 epochs, no reference runs. Plus a failed so run
    and a failed reference run, which count nowhere."""
    base8 = [trial(8, "none", s, a, epochs=4) for s, a in ((0, 0.70), (1, 0.74))]
    so8 = [trial(8, "so", s, a, epochs=4) for s, a in ((0, 0.71), (1, 0.73))]
    ref8 = [trial(8, "none", s, a, epochs=8) for s, a in ((0, 0.80), (1, 0.81), (2, 0.84))]
    base16 = [trial(16, "none", s, a, epochs=4) for s, a in ((0, 0.60), (1, 0.62))]
    so16 = [trial(16, "so", s, 0.65, epochs=4) for s in (0, 1)]
    failed = [trial(8, "so", 2, 0.1, epochs=4, status="failed"),
              trial(8, "none", 3, 0.1, epochs=8, status="failed")]
    curves = (curve(base8[0], [0.50, 0.60, 0.66, 0.70], [0.6, 0.7, 0.8, 0.90])
              + curve(base8[1], [0.50, 0.70, 0.73, 0.74], [0.6, 0.7, 0.8, 0.92])
              + curve(so8[0], [0.50, 0.72, 0.70, 0.71], [0.6, 0.7, 0.8, 0.9])
              + curve(so8[1], [0.50, 0.60, 0.70, 0.73], [0.6, 0.7, 0.8, 0.9])
              + curve(base16[0], [0.40, 0.50, 0.59, 0.60], [0.5, 0.6, 0.7, 0.80])
              + curve(base16[1], [0.40, 0.63, 0.61, 0.62], [0.5, 0.6, 0.7, 0.84])
              + curve(so16[0], [0.4, 0.5, 0.6, 0.65], [0.5, 0.6, 0.7, 0.8])
              + curve(so16[1], [0.4, 0.66, 0.6, 0.65], [0.5, 0.6, 0.7, 0.8])
              + curve(failed[0], [0.1, 0.9, 0.1, 0.1], [0.1] * 4)
              + [{"trial_id": r["trial_id"], "epoch": 7, "test_acc": r["test_acc"],
                  "train_acc": 0.99} for r in ref8])
    trials = pd.DataFrame(base16 + so16 + base8 + so8 + ref8 + failed)
    return trials, pd.DataFrame(curves)


def test_convergence_by_cell_measures_each_cell_at_the_study_budget():
    trials, epochs = two_cells()
    study, reference = split_reference(trials)
    table = convergence.convergence_by_cell(epochs, study, reference)
    assert list(table.columns) == CONVERGENCE_COLUMNS
    assert table["depth"].tolist() == [8, 16] and table["num_params"].tolist() == [1024, 2048]
    first, second = table.iloc[0], table.iloc[1]
    # cell 8: baseline 0.70, 0.74 at E = 4; reference 0.80, 0.81, 0.84 at 8
    assert (first["epochs"], first["reference_epochs"]) == (4, 8)
    assert (first["n_baseline"], first["n_reference"]) == (2, 3)
    assert first["baseline_test_acc"] == pytest.approx(0.72)
    assert first["reference_test_acc"] == pytest.approx(0.8166666667)
    assert first["doubling_gain"] == pytest.approx(0.8166666667 - 0.72)
    low, high = welch([0.80, 0.81, 0.84], [0.70, 0.74])
    assert first["doubling_gain_low"] == pytest.approx(low)
    assert first["doubling_gain_high"] == pytest.approx(high)
    # last epoch minus one and two before, over the baseline's runs: (0.04 + 0.01) / 2 and
    # (0.10 + 0.04) / 2; train accuracy at the last epoch (0.90 + 0.92) / 2
    assert first["last_epoch_gain"] == pytest.approx(0.025)
    assert first["last_two_epoch_gain"] == pytest.approx(0.07)
    assert first["final_train_acc"] == pytest.approx(0.91)
    # four completed trials; the best test accuracy at the last epoch for 3 (so seed 0 peaked
    # at epoch 1)
    assert first["n_trials"] == 4 and first["best_is_last_share"] == pytest.approx(0.75)
    # cell 16: no reference runs
    assert (second["epochs"], second["n_reference"], second["n_baseline"]) == (4, 0, 2)
    for field in ("reference_epochs", "reference_test_acc", "doubling_gain",
                  "doubling_gain_low", "doubling_gain_high"):
        assert math.isnan(second[field])
    assert second["baseline_test_acc"] == pytest.approx(0.61)
    assert second["last_epoch_gain"] == pytest.approx(0.01)
    assert second["last_two_epoch_gain"] == pytest.approx((0.10 - 0.01) / 2)
    assert second["final_train_acc"] == pytest.approx(0.82)
    assert second["n_trials"] == 4 and second["best_is_last_share"] == pytest.approx(0.5)


def test_convergence_by_cell_takes_the_arms_budget_and_only_baseline_runs_that_reached_it():
    """The baseline also ran 2 epochs at seed 5 (a study budget of its own, no arm there): the
    cell's budget is the arm's 4 epochs, and that run is no baseline run at the budget."""
    trials, epochs = two_cells()
    short = trial(8, "none", 5, 0.5, epochs=2)
    trials = pd.concat([trials, pd.DataFrame([short])], ignore_index=True)
    epochs = pd.concat([epochs, pd.DataFrame(curve(short, [0.3, 0.5], [0.4, 0.5]))])
    study = trials[trials["epochs"] != 8]
    reference = trials[trials["epochs"] == 8]
    first = convergence.convergence_by_cell(epochs, study, reference).iloc[0]
    assert first["epochs"] == 4 and first["n_baseline"] == 2 and first["n_trials"] == 5
    assert first["baseline_test_acc"] == pytest.approx(0.72)
    assert first["doubling_gain"] == pytest.approx(0.8166666667 - 0.72)


def test_a_cell_of_baseline_runs_alone_is_measured_at_its_own_budget():
    """No arm in the cell: its budget is its runs' last epoch + 1 (the longest)."""
    base = [trial(8, "none", s, a, epochs=3) for s, a in ((0, 0.6), (1, 0.7))]
    epochs = pd.DataFrame(curve(base[0], [0.3, 0.5, 0.6]) + curve(base[1], [0.3, 0.8, 0.7]))
    table = convergence.convergence_by_cell(epochs, pd.DataFrame(base),
                                             pd.DataFrame(base).iloc[0:0])
    row = table.iloc[0]
    assert (row["epochs"], row["n_baseline"], row["n_reference"]) == (3, 2, 0)
    assert row["baseline_test_acc"] == pytest.approx(0.65)
    assert row["last_epoch_gain"] == pytest.approx((0.1 - 0.1) / 2)
    assert row["last_two_epoch_gain"] == pytest.approx((0.3 + 0.4) / 2)
    assert row["best_is_last_share"] == pytest.approx(0.5)
    assert math.isnan(row["final_train_acc"])  # no train_acc column


def test_curves_too_short_for_the_epochs_before_leave_those_gains_missing():
    base = [trial(8, "none", 0, 0.6, epochs=1), trial(8, "none", 1, 0.7, epochs=1)]
    epochs = pd.DataFrame(curve(base[0], [0.6]) + curve(base[1], [0.7]))
    row = convergence.convergence_by_cell(epochs, pd.DataFrame(base),
                                          pd.DataFrame(base).iloc[0:0]).iloc[0]
    assert row["baseline_test_acc"] == pytest.approx(0.65)
    assert math.isnan(row["last_epoch_gain"]) and math.isnan(row["last_two_epoch_gain"])


def test_a_cell_with_a_reference_at_another_budget_has_no_doubling_gain():
    """Reference runs at 6 epochs are not 2 x 4: the cell is not measured."""
    trials, epochs = two_cells()
    reference = trials[trials["epochs"] == 8].assign(epochs=6)
    study = trials[trials["epochs"] != 8]
    table = convergence.convergence_by_cell(epochs, study, reference)
    assert table["n_reference"].tolist() == [0, 0] and table["doubling_gain"].isna().all()


def test_convergence_by_cell_reads_the_named_baseline():
    trials, epochs = two_cells()
    trials = trials.replace({"regularizer": {"none": "ref"}})
    study, reference = split_reference(trials, baseline="ref")
    first = convergence.convergence_by_cell(epochs, study, reference, baseline="ref").iloc[0]
    assert first["n_baseline"] == 2 and first["n_reference"] == 3
    assert first["last_epoch_gain"] == pytest.approx(0.025)
    narrow = convergence.convergence_by_cell(epochs, study, reference, baseline="ref",
                                             confidence=0.5).iloc[0]
    low, high = welch([0.80, 0.81, 0.84], [0.70, 0.74], 0.5)
    assert narrow["doubling_gain_low"] == pytest.approx(low)
    assert narrow["doubling_gain_high"] == pytest.approx(high)


@pytest.mark.parametrize("case", ["no epochs", "empty epochs", "no test_acc", "none completed"])
def test_convergence_by_cell_without_curves_or_completed_trials_is_empty(case):
    trials, epochs = two_cells()
    study, reference = split_reference(trials)
    if case == "no epochs":
        epochs = None
    elif case == "empty epochs":
        epochs = epochs.iloc[0:0]
    elif case == "no test_acc":
        epochs = epochs.drop(columns="test_acc")
    else:
        study = study.assign(status="failed")
    table = convergence.convergence_by_cell(epochs, study, reference)
    assert table.empty and list(table.columns) == CONVERGENCE_COLUMNS


# ---------------------------------------------------------------- undertraining_check

def measured(gains, *, depths=(8, 16, 32, 64), dataset="c10", model="resnet", num_params=None):
    """convergence_by_cell-like rows: the cells' doubling gains (NaN: no reference runs)."""
    return pd.DataFrame({"dataset": dataset, "model": model, "depth": list(depths), "width": 1,
                         "num_params": ([128 * d for d in depths] if num_params is None
                                        else num_params),
                         "doubling_gain": gains})


def test_doubling_gains_further_apart_than_the_claimed_drop_are_flagged():
    """0.02 and 0.035 differ by 1.5 pt > 1 pt: flagged; the least trained cell is the one twice
    the epochs helped most (depth 16)."""
    found = undertraining_check(measured([0.02, 0.035], depths=(8, 16)), 0.01)
    assert found["checked"] and found["flagged"]
    assert found["spread"] == pytest.approx(0.015) and found["claimed_drop"] == 0.01
    assert found["least_trained"] == ("c10", "resnet", 16, 1)
    assert math.isnan(found["correlation"])  # two cells: no correlation
    assert found["unchecked_cells"] == []
    assert found["message"] == (
        "flagged: capacity confounded with under-training (the baseline's doubling gains "
        "differ between cells by 1.50 pt, more than the 1 pt claimed drop)")


def test_a_spread_equal_to_the_claimed_drop_is_not_flagged():
    """0.5 and 0.75 (exact in binary) differ by exactly the claimed 0.25: not more than it."""
    found = undertraining_check(measured([0.75, 0.5], depths=(8, 16)), 0.25)
    assert found["checked"] and not found["flagged"] and found["spread"] == 0.25
    assert found["least_trained"] == ("c10", "resnet", 8, 1)
    assert found["message"] == (
        "not flagged: the baseline's doubling gains differ between cells by at most 25.00 pt, "
        "within the 25 pt claimed drop")
    assert undertraining_check(measured([0.75, 0.5], depths=(8, 16)), 0.2499)["flagged"]


def test_the_correlation_with_capacity_needs_three_cells_spread_and_distinct_sizes():
    gains = [0.030, 0.024, 0.026, 0.012]
    found = undertraining_check(measured(gains), 0.01)
    assert found["flagged"] and found["spread"] == pytest.approx(0.018)
    assert found["correlation"] == pytest.approx(stats.pearsonr([10, 11, 12, 13], gains)[0])
    assert found["least_trained"] == ("c10", "resnet", 8, 1)
    three = undertraining_check(measured(gains[:3], depths=(8, 16, 32)), 0.01)
    assert three["correlation"] == pytest.approx(stats.pearsonr([10, 11, 12], gains[:3])[0])
    flat = undertraining_check(measured([0.02] * 3, depths=(8, 16, 32)), 0.01)
    assert flat["checked"] and flat["spread"] == 0.0 and math.isnan(flat["correlation"])
    same_size = undertraining_check(measured(gains[:3], depths=(8, 16, 32),
                                             num_params=[1024] * 3), 0.01)
    assert math.isnan(same_size["correlation"]) and same_size["checked"]


def test_the_family_with_the_largest_spread_decides_and_cells_without_reference_are_listed():
    """c10/resnet differs by 0.5 pt, c10/vgg by 2 pt (a cell without reference runs there),
    c100 has one measured cell only (no spread)."""
    table = pd.concat([measured([0.020, 0.025], depths=(8, 16)),
                       measured([0.01, math.nan, 0.03], depths=(8, 16, 32), model="vgg"),
                       measured([0.5, math.nan], depths=(8, 16), dataset="c100")])
    found = undertraining_check(table, 0.01)
    assert found["flagged"] and found["spread"] == pytest.approx(0.02)
    assert found["least_trained"] == ("c10", "vgg", 32, 1)
    assert math.isnan(found["correlation"])  # two measured cells in that family
    assert found["unchecked_cells"] == [("c10", "vgg", 16, 1), ("c100", "resnet", 16, 1)]
    assert found["message"] == (
        "flagged: capacity confounded with under-training (the baseline's doubling gains "
        "differ between cells by 2.00 pt, more than the 1 pt claimed drop; 2 cell(s) without "
        "reference runs not checked)")
    # the same families, the widest first: a narrower one after it does not replace it
    reordered = undertraining_check(pd.concat([table.iloc[2:5], table.iloc[:2]]), 0.01)
    assert reordered["least_trained"] == ("c10", "vgg", 32, 1)


def test_families_of_equal_spread_keep_the_first():
    table = pd.concat([measured([0.5, 0.75], depths=(8, 16), model="a"),
                       measured([0.25, 0.5], depths=(8, 16), model="b")])
    found = undertraining_check(table, 0.5)
    assert found["least_trained"] == ("c10", "a", 16, 1) and not found["flagged"]
    assert found["message"].endswith("at most 25.00 pt, within the 50 pt claimed drop")


def test_a_wider_later_family_replaces_a_flagged_narrower_one():
    table = pd.concat([measured([0.02, 0.035], depths=(8, 16), model="a"),
                       measured([0.01, 0.04, 0.02], depths=(8, 16, 32), model="b")])
    found = undertraining_check(table, 0.01)
    assert found["spread"] == pytest.approx(0.03)
    assert found["least_trained"] == ("c10", "b", 16, 1)
    assert found["correlation"] == pytest.approx(
        stats.pearsonr([10, 11, 12], [0.01, 0.04, 0.02])[0])


def test_without_two_measured_cells_in_a_family_nothing_is_checked():
    table = pd.concat([measured([0.02, math.nan], depths=(8, 16)),
                       measured([0.05], depths=(8,), model="vgg")])
    found = undertraining_check(table, 0.01)
    assert not found["checked"] and not found["flagged"]
    assert math.isnan(found["spread"]) and math.isnan(found["correlation"])
    assert found["least_trained"] is None and found["claimed_drop"] == 0.01
    assert found["unchecked_cells"] == [("c10", "resnet", 16, 1)]
    assert found["message"] == NOT_CHECKED
    assert NOT_CHECKED == "convergence not checked (no baseline at a second budget)"
    empty = undertraining_check(measured([], depths=()), 0.01)
    assert empty["message"] == NOT_CHECKED and empty["unchecked_cells"] == []


def test_the_message_states_the_spread_and_bound_in_points():
    found = {"checked": True, "flagged": False, "spread": 0.001234, "claimed_drop": 0.005,
             "unchecked_cells": [("c10", "resnet", 8, 1)]}
    assert convergence.undertraining_message(found) == (
        "not flagged: the baseline's doubling gains differ between cells by at most 0.12 pt, "
        "within the 0.5 pt claimed drop; 1 cell(s) without reference runs not checked")
    assert convergence.undertraining_message({**found, "checked": False}) == NOT_CHECKED


# ---------------------------------------------------------------- slopes_without

FALLING = {8: [0.030, 0.026], 16: [0.022, 0.028], 32: [0.020, 0.018], 64: [0.014, 0.018]}


def gain_runs(gains, baseline="none", metric="test_acc"):
    """Baseline and arm runs (arm -> depth -> per-seed gains), paired by seed."""
    rows = []
    for arm, per_depth in gains.items():
        for depth, values in per_depth.items():
            for seed, gain in enumerate(values):
                base = 0.70 + 0.01 * seed + 0.001 * depth
                rows.append(trial(depth, arm, seed, math.nan, **{metric: base + gain}))
                rows.append(trial(depth, baseline, seed, math.nan, **{metric: base}))
    return pd.DataFrame(rows).drop_duplicates("trial_id")


def test_slopes_without_the_least_trained_cell_refit_on_the_other_cells():
    runs = gain_runs({"so": FALLING, "dn": {64: [0.01, 0.02]}})
    table = collapse_test(runs)
    found = convergence.slopes_without(runs, table, ("c10", "resnet", 64, 1))
    assert found.columns.tolist() == [
        "dataset", "model", "regularizer", "metric", "slope", "low", "high", "p_value",
        "n_cells", "slope_without", "low_without", "high_without", "p_value_without",
        "n_cells_without"]
    so = found.set_index("regularizer").loc["so"]
    means = [0.028, 0.025, 0.019, 0.016]
    assert so["slope"] == pytest.approx(stats.linregress([10, 11, 12, 13], means).slope)
    without = stats.linregress([10, 11, 12], means[:3])
    assert so["slope_without"] == pytest.approx(without.slope)
    assert so["p_value_without"] == pytest.approx(without.pvalue)
    half = stats.t.ppf(0.975, 1) * without.stderr
    assert so["low_without"] == pytest.approx(without.slope - half)
    assert so["high_without"] == pytest.approx(without.slope + half)
    assert (so["n_cells"], so["n_cells_without"]) == (4, 3)
    # dn ran only in the left-out cell: its row stays, with nothing without it
    dn = found.set_index("regularizer").loc["dn"]
    assert dn["n_cells"] == 1 and math.isnan(dn["slope_without"])
    assert len(found) == 2


def test_slopes_without_pass_the_collapse_options_on():
    runs = gain_runs({"so": FALLING}, baseline="ref", metric="clean_acc")
    options = {"metric": "clean_acc", "baseline": "ref", "alpha": 0.2}
    table = collapse_test(runs, **options)
    found = convergence.slopes_without(runs, table, ("c10", "resnet", 8, 1), **options).iloc[0]
    without = stats.linregress([11, 12, 13], [0.025, 0.019, 0.016])
    assert found["metric"] == "clean_acc" and found["n_cells_without"] == 3
    assert found["high_without"] == pytest.approx(without.slope
                                                  + stats.t.ppf(0.9, 1) * without.stderr)


def test_slopes_without_no_cell_or_no_collapse_rows_are_empty():
    runs = gain_runs({"so": FALLING})
    table = collapse_test(runs)
    for cell, collapse in ((None, table), (("c10", "resnet", 8, 1), table.iloc[0:0])):
        found = convergence.slopes_without(runs, collapse, cell)
        assert found.empty and "slope_without" in found.columns and len(found.columns) == 14


# ---------------------------------------------------------------- tables as they come

def test_doubling_gains_skip_a_budget_without_its_double_and_go_on():
    """Budgets 15, 20, 40: 15 has no 30, 20 has its 40."""
    rows = [trial(8, "none", 0, 0.60, epochs=15), trial(8, "none", 0, 0.70),
            trial(8, "none", 0, 0.76, epochs=40)]
    table = doubling_gains(pd.DataFrame(rows))
    assert table["epochs"].tolist() == [20]
    assert table["doubling_gain"].to_numpy() == pytest.approx([0.06])


def test_the_cells_budget_is_the_arms_even_where_their_curves_are_missing():
    """so ran 8 epochs (no curve recorded), the baseline 4: the cell's budget is 8, at which
    the baseline has no run."""
    base = [trial(8, "none", s, 0.7, epochs=4) for s in (0, 1)]
    arm = trial(8, "so", 0, 0.8, epochs=8)
    epochs = pd.DataFrame(curve(base[0], [0.5, 0.6, 0.65, 0.7])
                          + curve(base[1], [0.5, 0.6, 0.65, 0.7]))
    trials = pd.DataFrame(base + [arm])
    row = convergence.convergence_by_cell(epochs, trials, trials.iloc[0:0]).iloc[0]
    assert (row["epochs"], row["n_baseline"], row["n_trials"]) == (8, 0, 2)
    assert math.isnan(row["baseline_test_acc"])


def test_a_cell_without_a_recorded_width_gets_its_row():
    trials, epochs = two_cells()
    trials = trials.assign(width=math.nan)
    study, reference = trials[trials["epochs"] != 8], trials[trials["epochs"] == 8]
    table = convergence.convergence_by_cell(epochs, study, reference)
    assert table["depth"].tolist() == [8, 16] and table["width"].isna().all()
    assert table["baseline_test_acc"].to_numpy() == pytest.approx([0.72, 0.61])


def test_undertraining_reads_cells_with_other_fields_missing_and_python_numbers():
    """A measured cell with one reference run has no interval (NaN low and high): it still
    counts; parameter counts stored as Python numbers read as numbers."""
    table = measured([0.030, 0.024, 0.010], depths=(8, 11, 16),
                     num_params=pd.Series([1024, 1448, 2048], dtype=object))
    table["doubling_gain_low"] = [0.01, math.nan, 0.0]
    found = undertraining_check(table, 0.01)
    assert found["spread"] == pytest.approx(0.02) and found["flagged"]
    # cells less than a doubling apart (log2 range 1): still a correlation
    x = np.log2([1024, 1448, 2048])
    assert found["correlation"] == pytest.approx(stats.pearsonr(x, [0.030, 0.024, 0.010])[0])


def test_undertraining_checks_a_family_without_a_recorded_model_after_a_one_cell_family():
    table = pd.concat([measured([0.02], depths=(8,), dataset="a"),
                       measured([0.01, 0.03], depths=(8, 16), model=math.nan)])
    found = undertraining_check(table, 0.01)
    assert found["checked"] and found["flagged"] and found["spread"] == pytest.approx(0.02)
    assert found["least_trained"][2] == 16


def test_a_cell_with_a_missing_width_keeps_its_reference_runs_apart():
    """With width NaN in every row (a table written before the column), split_reference still
    finds the 4 reference runs of cell 8 (3 completed, 1 failed), and convergence_by_cell reads
    the study's budget of 4 epochs, as with width 1."""
    trials, epochs = two_cells()
    trials["width"] = math.nan
    study, reference = split_reference(trials)
    assert len(reference) == 4 and set(reference["epochs"]) == {8}
    table = convergence.convergence_by_cell(epochs, study, reference)
    row = table[table["depth"] == 8].iloc[0]
    assert (row["epochs"], row["n_baseline"], row["n_reference"]) == (4, 2, 3)
    assert row["baseline_test_acc"] == pytest.approx(0.72)
    assert row["doubling_gain"] == pytest.approx((0.80 + 0.81 + 0.84) / 3 - 0.72)
