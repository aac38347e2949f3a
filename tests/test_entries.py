"""korth_bench.analysis.entries on small hand-built trials tables: the setting labels, the status
grid, chance accuracy, the choice of each regularizer's entry (validation accuracy, diverged runs
at chance, cross-fitting over seeds, ties), the entry's runs, scores and provenance, and the
hardware and precision counts. Every expected number is worked out beside it."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from korth_bench.analysis import entries
from korth_bench.errors import ConfigError

CELL = {"dataset": "cifar10", "model": "resnet", "depth": 8, "width": 1}
KEYS = ["dataset", "model", "depth", "width", "regularizer"]
SELECTED = KEYS + ["setting", "selected_by", "selection_score", "n_settings", "cross_fitted",
                   "n_diverged", "seed_settings"]


def trial(regularizer="so", seed=0, status="completed", **fields):
    """One trials-table row in the cell CELL (``fields`` add columns or override the cell)."""
    return {**CELL, "regularizer": regularizer, "seed": seed, "status": status, **fields}


def scored(regularizer, coefficient, accuracies, **fields):
    """One run per seed 0, 1, ... with val_acc = test_acc = the accuracy; None: a diverged run
    (no accuracy recorded, as loop.train_and_measure writes it)."""
    return [trial(regularizer, seed, "completed" if acc is not None else "diverged",
                  coefficient=coefficient, val_acc=acc, test_acc=acc,
                  trial_id=f"{regularizer}-{coefficient}-{seed}", **fields)
            for seed, acc in enumerate(accuracies) if acc is not False]


def frame(*groups):
    return pd.DataFrame([row for group in groups for row in group])


def flag(value):
    """cross_fitted as Python's True, False or None (a column of booleans holds numpy's; any
    other value, NaN say, is returned as it is)."""
    return bool(value) if isinstance(value, (bool, np.bool_)) else value


def entry(table, regularizer="so", **cell):
    """The one row of select_entries' table for this regularizer (in CELL unless ``cell``)."""
    keys = {**CELL, **cell, "regularizer": regularizer}
    match = np.logical_and.reduce([table[k] == v for k, v in keys.items()])
    assert match.sum() == 1, table
    return table[match].iloc[0]


# ---------------------------------------------------------------- metrics

def test_metric_columns_keep_the_fixed_order_and_sort_attacks_by_kind_then_epsilon():
    # epsilons compare as numbers (2 < 8 < 16), not as text ('16' < '2')
    columns = ["pgd_acc_16_255", "accuracy_auc", "fgsm_acc_8_255", "seed", "pgd_acc_2_255",
               "epochs_to_95pct_best", "pgd_acc_8_255", "clean_acc", "test_acc", "val_acc",
               "epochs_to_90pct_best", "corruption_acc_mean", "best_test_acc", "fgsm_acc_2_255"]
    assert entries.metric_columns(pd.DataFrame(columns=columns)) == [
        "test_acc", "best_test_acc", "clean_acc", "corruption_acc_mean", "fgsm_acc_2_255",
        "fgsm_acc_8_255", "pgd_acc_2_255", "pgd_acc_8_255", "pgd_acc_16_255",
        "epochs_to_90pct_best", "epochs_to_95pct_best", "accuracy_auc"]
    assert entries.metric_columns(pd.DataFrame(columns=["accuracy_auc", "test_acc"])) == [
        "test_acc", "accuracy_auc"]
    assert entries.metric_columns(pd.DataFrame(columns=["seed", "val_acc"])) == []


@pytest.mark.parametrize("metric, higher", [
    ("test_acc", True), ("pgd_acc_8_255", True), ("accuracy_auc", True),
    ("epochs_to_90pct_best", False), ("seconds_to_95pct_best", False)])
def test_only_convergence_times_are_better_when_lower(metric, higher):
    assert entries.higher_is_better(metric) is higher


# ---------------------------------------------------------------- setting labels

def test_a_label_names_only_the_keys_that_vary_within_its_cell_and_regularizer():
    trials = pd.DataFrame([
        trial("so", 0, coefficient=0.01, lr=0.1, device="cpu", trial_id="a"),
        trial("so", 0, coefficient=0.1, lr=0.1, device="cuda", trial_id="b"),
        trial("so", 1, coefficient=0.1, lr=0.05, device="cpu", trial_id="c"),
        trial("none", 0, coefficient=0.0, lr=0.1, device="cpu", trial_id="d"),
        trial("none", 1, coefficient=0.0, lr=0.1, device="cuda", trial_id="e"),
        # one coefficient per cell: each cell's entry has a single setting
        trial("dn", 0, coefficient=0.1, lr=0.1, device="cpu", trial_id="f"),
        trial("dn", 0, coefficient=0.01, lr=0.1, device="cpu", trial_id="g", depth=14),
    ], index=[10, 11, 12, 13, 14, 15, 16])
    labels = entries.setting_labels(trials)
    # the columns in SETTING_COLUMNS' order (lr before coefficient); seed, device and trial_id
    # are not settings
    assert labels.to_dict() == {
        10: "lr=0.1, coefficient=0.01", 11: "lr=0.1, coefficient=0.1",
        12: "lr=0.05, coefficient=0.1", 13: "single setting", 14: "single setting",
        15: "single setting", 16: "single setting"}
    # only the columns asked for
    assert entries.setting_labels(trials, ["coefficient"]).to_list() == [
        "coefficient=0.01", "coefficient=0.1", "coefficient=0.1"] + ["single setting"] * 4
    assert (entries.setting_labels(trials, ["absent_key"]) == "single setting").all()


def test_a_null_value_varies_but_is_left_out_of_the_label():
    trials = pd.DataFrame([
        trial("dn", coefficient=0.01, relaxation=0.3),
        trial("dn", coefficient=0.1, relaxation=None),
        trial("dn", coefficient=0.01, relaxation=None),
        trial("so", coefficient=0.01, relaxation=0.3),
        trial("so", coefficient=0.01, relaxation=None)])
    assert entries.setting_labels(trials).to_list() == [
        "coefficient=0.01, relaxation=0.3", "coefficient=0.1", "coefficient=0.01",
        "relaxation=0.3", "single setting"]


def test_list_values_are_settings_shown_as_tuples():
    trials = pd.DataFrame([trial(lr_milestones=[30, 60]), trial(lr_milestones=[30, 80]),
                           trial(seed=1, lr_milestones=[30, 60])])
    assert entries.setting_labels(trials).to_list() == [
        "lr_milestones=(30, 60)", "lr_milestones=(30, 80)", "lr_milestones=(30, 60)"]


def test_list_values_read_back_from_parquet_are_labelled_like_lists(tmp_path):
    """Parquet returns a list column as numpy arrays of numpy scalars: the labels (and so the
    settings that selection groups by) are those of the lists, not 'np.int64(30)'."""
    written = pd.DataFrame([trial(lr_milestones=[30, 60]), trial(lr_milestones=[30, 80])])
    written.to_parquet(tmp_path / "trials.parquet")
    read = pd.read_parquet(tmp_path / "trials.parquet")
    assert isinstance(read["lr_milestones"].iloc[0], np.ndarray)
    assert entries.setting_labels(read).to_list() == [
        "lr_milestones=(30, 60)", "lr_milestones=(30, 80)"]
    mixed = pd.concat([pd.DataFrame([trial(seed=1, lr_milestones=[30, 60])]), read.iloc[:1]],
                      ignore_index=True)
    assert entries.setting_labels(mixed).to_list() == ["single setting"] * 2


@pytest.mark.parametrize("value, expected", [
    ([30, 60], (30, 60)), ((1, [2, 3]), (1, (2, 3))), (np.array([1, 2]), (1, 2)),
    ("s3://bucket/data/cifar.parquet", "cifar.parquet"), ("/local/cifar.parquet/", "cifar.parquet"),
    ("/data/SETX/", "SETX"),
    (["/a/x.npz", "y"], ("x.npz", "y")), ("cosine", "cosine"), (0.1, 0.1), (None, None)])
def test_comparable_values_are_hashable_and_paths_compare_by_file_name(value, expected):
    assert entries._comparable(value) == expected


def test_data_paths_compare_by_their_recorded_sha256_else_by_file_name():
    trials = pd.DataFrame([
        # one file at two places, the same SHA-256: one setting
        trial("so", data_path="s3://bucket/data/cifar.parquet", data_sha256="aaa"),
        trial("so", 1, data_path="/local/copy/cifar.parquet/", data_sha256="aaa"),
        # the same file name, different contents: two settings, named by the hash
        trial("dn", data_path="/a/cifar.parquet", data_sha256="aaa"),
        trial("dn", 1, data_path="/b/cifar.parquet", data_sha256="bbb"),
        # no hash recorded: the file name
        trial("none", data_path="/a/x.parquet", data_sha256=None),
        trial("none", 1, data_path="/b/y.parquet", data_sha256=None),
        trial("mc", data_path="/a/x.parquet", data_sha256=None),
        trial("mc", 1, data_path="/b/x.parquet", data_sha256="ccc")])
    assert entries.setting_labels(trials).to_list() == [
        "single setting", "single setting", "data_path=aaa", "data_path=bbb",
        "data_path=x.parquet", "data_path=y.parquet", "data_path=x.parquet", "data_path=ccc"]
    # without the hash column: by file name
    by_name = trials.drop(columns="data_sha256")
    assert entries.setting_labels(by_name).to_list()[:4] == ["single setting"] * 4
    no_slash = pd.DataFrame([trial(data_path="cifar.parquet"),
                             trial(seed=1, data_path="/local/cifar.parquet")])
    assert (entries.setting_labels(no_slash) == "single setting").all()
    # a hash column is not read when data_path is not among the columns compared
    assert entries.setting_labels(trials, ["coefficient"]).eq("single setting").all()


def test_an_entry_whose_cell_has_a_null_key_is_labelled_too():
    trials = pd.DataFrame([trial(coefficient=0.01, width=None), trial(coefficient=0.1, width=None)])
    assert entries.setting_labels(trials).to_list() == ["coefficient=0.01", "coefficient=0.1"]


def test_no_trials_no_labels():
    labels = entries.setting_labels(pd.DataFrame())
    assert labels.empty and labels.dtype == object


# ---------------------------------------------------------------- status grid

def test_the_status_grid_is_every_cell_times_every_regularizer_with_its_counts():
    trials = pd.DataFrame([
        *[trial("none", s, depth=8, num_params=100) for s in (0, 1, 2)],
        trial("so", 0, depth=8, num_params=100),
        trial("so", 1, "diverged", depth=8, num_params=100),
        trial("dn", 0, "error", depth=8, num_params=160),       # cell 8: median 100, mean 110
        *[trial("none", s, depth=14, num_params=200) for s in (0, 1, 2)],
        trial("so", 0, "diverged", depth=14, num_params=200),
        trial("so", 0, "completed", depth=14, num_params=200),  # its rerun
    ])                                                          # dn never ran at depth 14
    grid = entries.status_grid(trials)
    expected = pd.DataFrame({
        "dataset": ["cifar10"] * 6, "model": ["resnet"] * 6, "depth": [8, 8, 8, 14, 14, 14],
        "width": [1] * 6, "num_params": [100.0, 100.0, 100.0, 200.0, 200.0, 200.0],
        "regularizer": ["dn", "none", "so"] * 2,
        # the distinct seeds each regularizer ran with anywhere: dn {0}, none {0,1,2}, so {0,1}
        "n_seeds_expected": [1, 3, 2] * 2,
        "n_completed": [0, 3, 1, 0, 3, 1], "n_diverged": [0, 0, 1, 0, 0, 1],
        "n_stopped": [0] * 6, "n_error": [1, 0, 0, 0, 0, 0]})
    pd.testing.assert_frame_equal(grid, expected)
    assert (entries.status_grid(trials, expected_seeds=5)["n_seeds_expected"] == 5).all()
    assert entries.status_grid(trials, expected_seeds=0)["n_seeds_expected"].eq(0).all()


def test_a_cell_without_a_recorded_width_stays_in_the_grid():
    trials = pd.DataFrame([trial("none", 0, width=None, num_params=50),
                           trial("so", 0, "stopped", width=None, num_params=50),
                           trial("none", 0, num_params=70)])
    grid = entries.status_grid(trials)
    unknown = grid[grid["width"].isna()].set_index("regularizer")
    assert unknown.loc["so", "n_stopped"] == 1 and unknown.loc["none", "n_completed"] == 1
    assert unknown["num_params"].tolist() == [50.0, 50.0] and len(grid) == 4


# ---------------------------------------------------------------- chance accuracy

def test_chance_accuracy_is_one_over_the_number_of_classes():
    trials = pd.DataFrame({
        "dataset": ["cifar10", "cifar100", "emnist", "tiny", "packed", "cifar100", "svhn"],
        "num_classes": [10, None, 47, "200", "bad", 10, None]}, index=list("abcdefg"))
    # cifar100: 100 whatever num_classes says; else num_classes (text read as a number); else 10
    expected = pd.Series([1 / 10, 1 / 100, 1 / 47, 1 / 200, 1 / 10, 1 / 100, 1 / 10],
                         index=list("abcdefg"))
    pd.testing.assert_series_equal(entries.chance_accuracy(trials), expected, check_names=False)
    no_column = entries.chance_accuracy(pd.DataFrame({"dataset": ["cifar10", "cifar100", "x"]}))
    assert no_column.tolist() == [pytest.approx(0.1), pytest.approx(0.01), pytest.approx(0.1)]


# ---------------------------------------------------------------- entry selection

def test_the_entry_is_chosen_on_validation_accuracy_or_on_test_when_asked():
    # coefficient 0.01: val 0.70, 0.72 / test 0.60, 0.60; 0.1: val 0.65, 0.66 / test 0.70, 0.70
    trials = frame(
        [{**r, "test_acc": 0.60} for r in scored("so", 0.01, [0.70, 0.72])],
        [{**r, "test_acc": 0.70} for r in scored("so", 0.1, [0.65, 0.66])])
    by_val = entry(entries.select_entries(trials, "val"))
    # cross-fitted, 2 settings x 2 seeds: seed 0 takes the better on seed 1 (0.72 > 0.66),
    # seed 1 the better on seed 0 (0.70 > 0.65); score (0.72 + 0.70) / 2
    assert by_val["setting"] == "coefficient=0.01" and by_val["selected_by"] == "val_acc"
    assert by_val["selection_score"] == pytest.approx(0.71) and by_val["n_settings"] == 2
    assert by_val["seed_settings"] == {0: "coefficient=0.01", 1: "coefficient=0.01"}
    by_test = entry(entries.select_entries(trials, "test"))
    assert by_test["setting"] == "coefficient=0.1" and by_test["selected_by"] == "test_acc"
    assert by_test["selection_score"] == pytest.approx(0.70)
    assert entry(entries.select_entries(trials))["selected_by"] == "val_acc"   # the default
    # no validation split: test accuracy, and the table says so
    for no_val in (trials.drop(columns="val_acc"), trials.assign(val_acc=None)):
        chosen = entry(entries.select_entries(no_val, "val"))
        assert chosen["selected_by"] == "test_acc" and chosen["setting"] == "coefficient=0.1"
    with pytest.raises(ConfigError, match=r"^selection must be 'val' or 'test', got 'train'$"):
        entries.select_entries(trials, "train")


def test_cross_fitting_gives_each_seed_the_setting_best_on_the_other_seeds():
    # A = coefficient 0.01: 0.70 0.60 0.60; B = coefficient 0.1: 0.62 0.66 0.63
    # seed 0: A (0.60 + 0.60)/2 = 0.60 < B (0.66 + 0.63)/2 = 0.645 -> B
    # seed 1: A (0.70 + 0.60)/2 = 0.65 > B (0.62 + 0.63)/2 = 0.625 -> A
    # seed 2: A (0.70 + 0.60)/2 = 0.65 > B (0.62 + 0.66)/2 = 0.64 -> A
    trials = frame(scored("so", 0.01, [0.70, 0.60, 0.60]), scored("so", 0.1, [0.62, 0.66, 0.63]))
    chosen = entry(entries.select_entries(trials))
    assert chosen["setting"] == "per seed: coefficient=0.01 (seeds 1, 2); coefficient=0.1 (seeds 0)"
    assert chosen["seed_settings"] == {0: "coefficient=0.1", 1: "coefficient=0.01",
                                       2: "coefficient=0.01"}
    assert chosen["selection_score"] == pytest.approx((0.645 + 0.65 + 0.65) / 3)
    assert flag(chosen["cross_fitted"]) is True and chosen["n_settings"] == 2
    assert chosen["n_diverged"] == 0 and chosen["selected_by"] == "val_acc"


def test_tied_settings_go_to_the_first_label_in_sorted_order():
    for order in (1, -1):
        # so: both settings 0.6 on seeds 0, 1 (cross-fitted); dn: 0.1 on seeds 0, 1 and 0.01
        # on seeds 2, 3, both with mean 0.6 (not cross-fitted)
        trials = frame(*[scored("so", c, [0.6, 0.6]) for c in (0.1, 0.01)][::order],
                       *[scored("dn", 0.1, [0.5, 0.7]),
                         scored("dn", 0.01, [False, False, 0.7, 0.5])][::order])
        table = entries.select_entries(trials)
        so, dn = entry(table, "so"), entry(table, "dn")
        assert so["setting"] == "coefficient=0.01" and flag(so["cross_fitted"]) is True
        assert dn["setting"] == "coefficient=0.01" and dn["selection_score"] == pytest.approx(0.6)


@pytest.mark.parametrize("dataset, setting, seed_settings, score", [
    # A = coefficient 0.1 diverges on seed 0 (scores chance), 0.95 on seeds 1 and 2; B = 0.01
    # at 0.5. cifar10, chance 0.1: seed 0 -> A (0.95); seeds 1, 2 -> A ((0.1 + 0.95)/2 = 0.525)
    ("cifar10", "coefficient=0.1", {0: "coefficient=0.1", 1: "coefficient=0.1",
                                    2: "coefficient=0.1"}, (0.95 + 0.525 + 0.525) / 3),
    # cifar100, chance 0.01: seeds 1, 2 -> B, since (0.01 + 0.95)/2 = 0.48 < 0.5
    ("cifar100", "per seed: coefficient=0.01 (seeds 1, 2); coefficient=0.1 (seeds 0)",
     {0: "coefficient=0.1", 1: "coefficient=0.01", 2: "coefficient=0.01"}, (0.95 + 0.5 + 0.5) / 3)])
def test_a_diverged_run_scores_chance_and_counts_where_its_setting_is_chosen(
        dataset, setting, seed_settings, score):
    trials = frame(scored("so", 0.1, [None, 0.95, 0.95], dataset=dataset),
                   scored("so", 0.01, [0.5, 0.5, 0.5], dataset=dataset))
    chosen = entry(entries.select_entries(trials), dataset=dataset)
    assert chosen["setting"] == setting and chosen["seed_settings"] == seed_settings
    assert chosen["selection_score"] == pytest.approx(score)
    assert chosen["n_diverged"] == 1   # A's run at seed 0, chosen for seed 0 either way


def test_settings_on_different_seeds_are_not_cross_fitted():
    # A = 0.01 on seeds 0, 1 (0.60, 0.70: mean 0.65); B = 0.1 on seeds 2, 3, 4 (0.70, 0.72,
    # diverged at chance 0.1: mean 0.50666)
    trials = frame(scored("so", 0.01, [0.60, 0.70]),
                   scored("so", 0.1, [False, False, 0.70, 0.72, None]))
    chosen = entry(entries.select_entries(trials))
    assert chosen["setting"] == "coefficient=0.01" and flag(chosen["cross_fitted"]) is False
    assert chosen["selection_score"] == pytest.approx(0.65) and chosen["seed_settings"] == {}
    assert chosen["n_diverged"] == 0 and chosen["n_settings"] == 2
    # B's mean counts its diverged run: (0.70 + 0.72 + 0.1)/3 < 0.65 < (0.70 + 0.72)/2
    assert entry(entries.select_entries(trials[trials["status"] == "completed"]))[
        "setting"] == "coefficient=0.1"
    # the best setting's own diverged runs are counted: B on 3 seeds with one diverged, A lower
    low = frame(scored("so", 0.01, [0.30, 0.30]),
                scored("so", 0.1, [False, False, 0.70, 0.72, None]))
    best = entry(entries.select_entries(low))
    assert best["setting"] == "coefficient=0.1" and best["n_diverged"] == 1
    assert best["selection_score"] == pytest.approx((0.70 + 0.72 + 0.1) / 3)


@pytest.mark.parametrize("seeds_a, seeds_b, cross_fitted", [
    ([0.6, 0.7], [0.5, 0.5], True),          # 2 settings x 2 seeds: the smallest cross-fit
    ([0.6], [0.5], False),                   # one seed: nothing to hold out
    ([0.6, 0.7], [0.5, None], True),         # a diverged run has a score: still a full table
])
def test_cross_fitting_needs_two_settings_on_the_same_two_or_more_seeds(seeds_a, seeds_b,
                                                                        cross_fitted):
    trials = frame(scored("so", 0.01, seeds_a), scored("so", 0.1, seeds_b))
    chosen = entry(entries.select_entries(trials))
    assert flag(chosen["cross_fitted"]) is cross_fitted and chosen["setting"] == "coefficient=0.01"
    assert chosen["selection_score"] == pytest.approx(np.mean(seeds_a))


def test_a_single_setting_is_its_entry_with_its_diverged_runs():
    # one setting, diverged on seed 0: score (0.1 + 0.51 + 0.52 + 0.53) / 4
    trials = frame(scored("dn", 0.1, [None, 0.51, 0.52, 0.53]))
    chosen = entry(entries.select_entries(trials), "dn")
    assert chosen["setting"] == "single setting" and flag(chosen["cross_fitted"]) is None
    assert chosen["n_settings"] == 1 and chosen["n_diverged"] == 1
    assert chosen["selection_score"] == pytest.approx((0.1 + 0.51 + 0.52 + 0.53) / 4)


def test_stopped_failed_and_all_diverged_runs_choose_nothing():
    trials = frame(scored("so", 0.01, [0.6, 0.6]), scored("so", 0.1, [0.5, 0.5]),
                   [trial("so", 0, "error", coefficient=0.5, val_acc=0.99, test_acc=0.99),
                    trial("so", 1, "stopped", coefficient=0.5, val_acc=0.99, test_acc=0.99)],
                   scored("dn", 0.1, [None, None]))
    table = entries.select_entries(trials)
    assert table["regularizer"].tolist() == ["so"]   # dn only diverged: no entry
    so = entry(table)
    assert so["setting"] == "coefficient=0.01" and so["n_settings"] == 2
    empty = entries.select_entries(frame(scored("dn", 0.1, [None])))
    assert empty.empty and list(empty.columns) == SELECTED


def test_without_any_score_the_first_setting_is_the_entry():
    trials = frame(scored("so", 0.01, [False, 0.5]), scored("so", 0.1, [0.5, False])).assign(
        val_acc=None, test_acc=None)
    chosen = entry(entries.select_entries(trials))
    assert chosen["setting"] == "coefficient=0.01" and math.isnan(chosen["selection_score"])
    assert flag(chosen["cross_fitted"]) is False


def test_an_accuracy_that_is_not_a_number_is_not_scored():
    # coefficient 0.01: 0.6 and a text where the accuracy should be (no score: the mean is
    # 0.6, and the table has a hole, so no cross-fitting); 0.1: 0.55, 0.55
    trials = frame(scored("so", 0.01, [0.6, "n/a"]), scored("so", 0.1, [0.55, 0.55]))
    chosen = entry(entries.select_entries(trials))
    assert chosen["setting"] == "coefficient=0.01" and chosen["selection_score"] == 0.6
    assert flag(chosen["cross_fitted"]) is False


def test_selection_compares_only_the_setting_columns_asked_for():
    # lr varies too; compared by coefficient alone, the two lr runs at one seed are averaged:
    # coefficient 0.01: seed 0 (0.5 + 0.9)/2 = 0.7, seed 1 0.7; coefficient 0.1: 0.65, 0.65
    trials = frame(scored("so", 0.01, [0.5, 0.7], lr=0.1), scored("so", 0.01, [0.9], lr=0.05),
                   scored("so", 0.1, [0.65, 0.65], lr=0.1))
    chosen = entry(entries.select_entries(trials, setting_columns=["coefficient"]))
    assert chosen["setting"] == "coefficient=0.01" and chosen["n_settings"] == 2
    assert chosen["selection_score"] == pytest.approx(0.7) and flag(chosen["cross_fitted"]) is True
    assert entry(entries.select_entries(trials))["n_settings"] == 3


def test_one_entry_per_cell_and_regularizer_in_sorted_order_even_without_a_width():
    trials = frame(scored("so", 0.1, [0.5], width=None), scored("none", 0.0, [0.4], width=None),
                   scored("so", 0.1, [0.6], depth=14), scored("so", 0.1, [0.7]))
    table = entries.select_entries(trials)
    assert list(table.columns) == SELECTED
    assert list(zip(table["depth"], table["width"].fillna(-1), table["regularizer"],
                    table["selection_score"])) == [
        (8, 1, "so", 0.7), (8, -1, "none", 0.4), (8, -1, "so", 0.5), (14, 1, "so", 0.6)]


# ---------------------------------------------------------------- an entry's runs

def entries_table(*rows):
    """select_entries' table by hand: (regularizer, setting, selected_by, seed_settings)."""
    return pd.DataFrame([{**CELL, "regularizer": r, "setting": s, "selected_by": by,
                          "selection_score": 0.5, "n_settings": 2, "cross_fitted": None,
                          "n_diverged": 0, "seed_settings": seeds} for r, s, by, seeds in rows])


def test_entry_runs_take_the_chosen_setting_or_each_seeds_choice():
    trials = frame(scored("so", 0.1, [0.5, 0.6, None]), scored("so", 0.01, [0.5, 0.6, 0.7]),
                   scored("none", 0.0, [0.4, 0.4]),
                   scored("dn", 0.1, [0.5, 0.5]), scored("dn", 0.01, [0.5, 0.5]),
                   [trial("dn", 2, "error", coefficient=0.1, trial_id="dn-0.1-2"),
                    trial("dn", 3, "stopped", coefficient=0.1, trial_id="dn-0.1-3")],
                   scored("cs", 0.1, [0.5]))                        # no entry chosen
    split = "per seed: coefficient=0.01 (seeds 1); coefficient=0.1 (seeds 0, 2)"
    chosen = entries_table(
        ("none", "single setting", "val_acc", {}),
        ("dn", "coefficient=0.1", "test_acc", {}),
        ("mc", "coefficient=0.1", "val_acc", {}),                  # no such runs
        ("so", split, "val_acc", {0: "coefficient=0.1", 1: "coefficient=0.01",
                                  2: "coefficient=0.1"}))          # seed 2's run diverged
    runs = entries.entry_runs(trials, chosen)
    got = sorted(zip(runs["trial_id"], runs["setting"], runs["selected_by"]))
    assert got == [("dn-0.1-0", "coefficient=0.1", "test_acc"),
                   ("dn-0.1-1", "coefficient=0.1", "test_acc"),
                   ("none-0.0-0", "single setting", "val_acc"),
                   ("none-0.0-1", "single setting", "val_acc"),
                   ("so-0.01-1", split, "val_acc"), ("so-0.1-0", split, "val_acc")]
    assert set(trials.columns) | {"setting", "selected_by"} == set(runs.columns)
    assert (runs["status"] == "completed").all() and len(runs) == 6
    # entries with only whole settings, or only per-seed choices
    whole = entries.entry_runs(trials, chosen[chosen["regularizer"] == "dn"])
    assert sorted(whole["trial_id"]) == ["dn-0.1-0", "dn-0.1-1"]
    per_seed = entries.entry_runs(trials, chosen[chosen["regularizer"] == "so"])
    assert sorted(per_seed["trial_id"]) == ["so-0.01-1", "so-0.1-0"]
    assert per_seed["seed"].tolist() in ([0, 1], [1, 0])


def test_entry_runs_compare_only_the_setting_columns_asked_for():
    trials = frame(scored("so", 0.1, [0.5], lr=0.1), scored("so", 0.1, [0.6], lr=0.05),
                   scored("so", 0.01, [0.7], lr=0.1))
    chosen = entries_table(("so", "coefficient=0.1", "val_acc", {}))
    runs = entries.entry_runs(trials, chosen, setting_columns=["coefficient"])
    assert sorted(runs["val_acc"]) == [0.5, 0.6]
    assert entries.entry_runs(trials, chosen).empty   # by default lr is a setting too


# ---------------------------------------------------------------- scores and provenance

def test_entry_scores_are_t_intervals_over_the_seeds_per_metric():
    runs = pd.DataFrame([
        trial("so", 0, test_acc=0.6, ortho_cos_mean="0.2"),
        trial("so", 1, test_acc=0.7, ortho_cos_mean="bad"),
        trial("so", 2, test_acc=0.8, ortho_cos_mean="0.4"),
        trial("none", 0, test_acc=0.5, ortho_cos_mean=None, width=None)])
    scores = entries.entry_scores(runs, ["test_acc", "ortho_cos_mean"])
    assert list(scores.columns) == KEYS + ["metric", "mean", "sd", "low", "high", "n"]
    by = scores.assign(width=scores["width"].fillna(-1)).set_index(
        ["width", "regularizer", "metric"])
    so = by.loc[(1, "so", "test_acc")]
    half = scipy_stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)   # sd of 0.6, 0.7, 0.8 is 0.1
    assert so["n"] == 3 and so["mean"] == pytest.approx(0.7) and so["sd"] == pytest.approx(0.1)
    assert (so["low"], so["high"]) == (pytest.approx(0.7 - half), pytest.approx(0.7 + half))
    ortho = by.loc[(1, "so", "ortho_cos_mean")]   # 'bad' is not a number: 0.2 and 0.4
    assert ortho["n"] == 2 and ortho["mean"] == pytest.approx(0.3)
    one = by.loc[(-1, "none", "test_acc")]
    assert one["n"] == 1 and one["mean"] == 0.5 and math.isnan(one["low"])
    assert by.loc[(-1, "none", "ortho_cos_mean"), "n"] == 0
    narrow = entries.entry_scores(runs, ["test_acc"], confidence=0.90)
    half90 = scipy_stats.t.ppf(0.95, 2) * 0.1 / math.sqrt(3)
    row = narrow[narrow["regularizer"] == "so"].iloc[0]
    assert row["high"] - row["mean"] == pytest.approx(half90)
    empty = entries.entry_scores(runs.iloc[:0], ["test_acc"])
    assert empty.empty and empty.columns.tolist() == list(scores.columns)


def test_entry_provenance_lists_the_distinct_sorted_values_of_each_entry():
    runs = pd.DataFrame([
        trial("so", 2, epochs=4, device="cuda:0", config_hash="h2", trial_id="t2", sweep="s"),
        trial("so", 0, epochs=4, device="cpu", config_hash="h0", trial_id="t0", sweep="s"),
        trial("so", 1, epochs=8, device=None, config_hash="h1", trial_id="t1", sweep="s"),
        trial("none", 0, epochs=4, device="cpu", config_hash="n0", trial_id="n0", sweep="r",
              width=None)])
    table = entries.entry_provenance(runs)
    assert list(table.columns) == KEYS + ["seeds", "epochs", "devices", "config_hashes",
                                          "sweeps", "trial_ids"]
    so = entry(table)
    assert so[["seeds", "epochs", "devices", "config_hashes", "sweeps", "trial_ids"]].tolist() == [
        [0, 1, 2], [4, 8], ["cpu", "cuda:0"], ["h0", "h1", "h2"], ["s"], ["t0", "t1", "t2"]]
    none = table[table["width"].isna()].iloc[0]
    assert none["regularizer"] == "none" and none["seeds"] == [0] and none["sweeps"] == ["r"]
    bare = entries.entry_provenance(runs.drop(columns=["sweep", "device", "config_hash"]))
    assert entry(bare)[["devices", "config_hashes", "sweeps", "seeds"]].tolist() == [
        [], [], [], [0, 1, 2]]
    assert entries.entry_provenance(runs.iloc[:0]).columns.tolist() == list(table.columns)


# ---------------------------------------------------------------- hardware

def test_hardware_counts_trials_per_device_and_precision_with_unknowns():
    trials = pd.DataFrame([
        trial(device="cuda", precision_resolved="bf16"),
        trial(device="cuda", precision_resolved="bf16", status="error"),
        trial(device="cuda", precision_resolved="fp32"),
        trial(device=None, precision_resolved="fp32"),
        trial(device="cpu", precision_resolved=None)])
    table = entries.hardware(trials)
    assert list(table.columns) == ["device", "precision", "n_trials"]
    assert table.iloc[0].tolist() == ["cuda", "bf16", 2]   # the most trials first
    assert sorted(map(tuple, table.to_numpy().tolist())) == [
        ("cpu", "unknown", 1), ("cuda", "bf16", 2), ("cuda", "fp32", 1), ("unknown", "fp32", 1)]
    bare = entries.hardware(trials.drop(columns=["device", "precision_resolved"]))
    assert bare.to_numpy().tolist() == [["unknown", "unknown", 5]]
    numbers = entries.hardware(pd.DataFrame({"device": [0, 0], "precision_resolved": [16, 16]}))
    assert numbers.to_numpy().tolist() == [["0", "16", 2]]


def test_precisions_count_trials_per_resolved_precision_in_sorted_order():
    trials = pd.DataFrame({"precision_resolved": ["fp32", "bf16", None, "fp32", "bf16", "fp32"]})
    counts = entries.precisions(trials)
    assert counts == {"bf16": 2, "fp32": 3, "unknown": 1}
    assert list(counts) == ["bf16", "fp32", "unknown"]
    assert all(type(v) is int for v in counts.values())
    assert entries.precisions(pd.DataFrame({"seed": [0, 1]})) == {"unknown": 2}


def test_a_cell_key_reads_every_missing_value_as_one_none():
    nan_a, nan_b = float("nan"), np.float64("nan")
    assert entries.cell_key(["cifar10", "resnet", 8, nan_a]) == ("cifar10", "resnet", 8, None)
    assert entries.cell_key((1, nan_b, None)) == entries.cell_key([1, nan_a, pd.NA]) == (1, None, None)
    assert entries.cell_key(iter(["c", 0, 1.5])) == ("c", 0, 1.5)
