"""Search spaces: schema validation, grid expansion with per-regularizer conditions, Optuna
spaces, and `korth-bench run SPACE --dry-run` (no Ray)."""
import math
import os
import re
from pathlib import Path

import optuna
import pytest
import yaml

from korth_bench import sweep
from korth_bench.spaces import space as spaces
from korth_bench.spaces.dryrun import dry_run_text, resource_label
from korth_bench.spaces.sections import resources_section
from korth_bench.errors import ConfigError

SHIPPED = sorted(Path(spaces.SPACES_DIR).glob("*.yaml"))
# Which regularizers take which parameter (docs/regularizers.md, "The penalties").
PARAMETER_OWNERS = {"relaxation": {"dn_relaxed"}, "pairs": {"cs"}, "power_iterations": {"srip"},
                    "squared": {"srip"}, "diag_weight": {"dn", "dn_relaxed"},
                    "corr_weight": {"dn", "dn_relaxed"}}


def expected_trials(raw):
    """The trial count a reader of the YAML expects: per regularizer, the product of the grid
    axes that apply to it (its own lists replacing shared ones), summed over its cases;
    num_samples for Optuna."""
    search = raw.get("search") or {}
    if isinstance(search, dict) and search.get("type") == "optuna":
        return search["num_samples"]
    entries = raw.get("regularizers") or {raw.get("fixed", {}).get("regularizer", "none"): {}}
    if isinstance(entries, list):
        entries = {name: {} for name in entries}
    total = 0
    for regularizer, own in ((name, case) for name, cases in entries.items()
                             for case in (cases if isinstance(cases, list) else [cases])):
        axes = {key: len(values) for key, values in (raw.get("grid") or {}).items()
                if not (key == "coefficient" and regularizer == "none")
                and regularizer in PARAMETER_OWNERS.get(key, {regularizer})}
        axes.update({key: len(v) if isinstance(v, list) else 1 for key, v in (own or {}).items()})
        total += math.prod(axes.values())
    return total


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_dry_run_counts_match_the_yaml_for_every_shipped_space(path, capsys):
    assert sweep.run(str(path), dry_run=True) == 0
    out = capsys.readouterr().out
    raw = yaml.safe_load(path.read_text())
    count = int(re.search(r"search \w+: (\d+) trials", out).group(1))
    assert count == expected_trials(raw) > 0
    assert "cost estimate:" in out
    assert resource_label(spaces.load(str(path)).resources) in out
    if raw.get("search", {}).get("type", "grid") == "grid":  # one table row per trial
        assert len(re.findall(r"^\s+\d+\s+[0-9a-f]{12}\s", out, flags=re.M)) == count


def test_shipped_spaces_are_listed_and_smoke_is_small():
    assert {"smoke", "resnet_capacity_cifar10", "wrn_capacity_cifar100", "relaxation_sweep",
            "optuna_coefficient_asha", "srip_protocol", "cs_protocol"} <= set(spaces.names())
    smoke = spaces.load("smoke")
    assert smoke.num_trials <= 16 and all(c.dataset == "synthetic" and c.device == "cpu"
                                         for c in smoke.trials)


def test_coefficient_skips_none_and_relaxation_only_reaches_dn_relaxed(write_space):
    space = spaces.load(write_space(
        "cond", grid={"seed": [0, 1], "coefficient": [1e-4, 1e-3], "relaxation": [0.1, 0.5]},
        regularizers={"none": {}, "so": {}, "dn_relaxed": {}, "cs": {"coefficient": [1e-5]}}))
    by_reg = {}
    for cfg in space.trials:
        by_reg.setdefault(cfg.regularizer, []).append(cfg)
    assert len(by_reg["none"]) == 2 and {c.coefficient for c in by_reg["none"]} == {0.0}
    assert len(by_reg["so"]) == 4 and all(c.relaxation is None for c in by_reg["so"])
    assert len(by_reg["dn_relaxed"]) == 8
    assert {(c.coefficient, c.relaxation) for c in by_reg["dn_relaxed"]} == \
        {(a, r) for a in (1e-4, 1e-3) for r in (0.1, 0.5)}
    assert {c.coefficient for c in by_reg["cs"]} == {1e-5}  # its own list replaces the shared one
    assert len({c.trial_id for c in space.trials}) == space.num_trials == 16


def test_a_list_of_cases_pairs_values_instead_of_crossing_them(write_space):
    space = spaces.load(write_space(
        "cases", grid={"seed": [0, 1]},
        regularizers={"none": {}, "so": [{"coefficient": "1e-3", "penalty_reduction": "sum"},
                                         {"coefficient": 9e-3, "penalty_reduction": "mean"}]}))
    so = {(c.coefficient, c.penalty_reduction, c.seed) for c in space.trials if c.regularizer == "so"}
    assert so == {(1e-3, "sum", 0), (1e-3, "sum", 1), (9e-3, "mean", 0), (9e-3, "mean", 1)}
    assert space.num_trials == 6
    with pytest.raises(ConfigError, match=r"regularizers.so: a list of cases needs search.type: grid"):
        spaces.load(write_space("cases_optuna", search={"type": "optuna", "num_samples": 2,
                                                               "metric": "val_acc", "mode": "max"},
                                regularizers={"so": [{"coefficient": 1e-3}, {"coefficient": 1e-2}]}))
    with pytest.raises(ConfigError, match=r"regularizers.so must be a mapping of trial keys or a "
                                          r"non-empty list of such mappings"):
        spaces.load(write_space("cases_bad", regularizers={"so": [1e-3]}))


def test_duplicate_configurations_are_run_once(write_space):
    space = spaces.load(write_space("dups", grid={"seed": [0, 0, 1]}))
    assert space.num_trials == 2


def test_sections_map_to_trial_keys_env_vars_and_absolute_paths(write_space, monkeypatch, tmp_path):
    monkeypatch.setenv("KORTH_TEST_DATA", "rel/cifar.parquet")
    monkeypatch.chdir(tmp_path)
    space = spaces.load(write_space(
        "paths", data={"dataset": "packed", "data_path": "${KORTH_TEST_DATA}",
                       "data_root": "${KORTH_UNSET_ROOT:-roots/cifar}"},
        robustness={"enabled": False, "pgd_eps": [2]}, checkpoint={"every": 2, "keep": 3}))
    cfg = space.trials[0]
    assert cfg.data_path == str(tmp_path / "rel/cifar.parquet")
    assert cfg.data_root == str(tmp_path / "roots/cifar")
    assert (cfg.robustness, cfg.robustness_pgd_eps, cfg.checkpoint_every) == (False, (2,), 2)
    assert space.checkpoint_keep == 3


def test_optuna_space_samples_valid_configurations(write_space):
    space = spaces.load(write_space(
        "opt", training={"epochs": 3, "lr": None, "batch_size": None}, data={"val_size": 64},
        sample={"lr": {"loguniform": [0.01, 0.3]}, "batch_size": {"choice": [32, 64]}},
        regularizers={"none": {}, "so": {"coefficient": {"loguniform": [1e-5, 1e-2]}},
                      "dn_relaxed": {"coefficient": {"loguniform": [1e-5, 1e-2]},
                                     "relaxation": {"uniform": [0.0, 0.9]}},
                      "cs": {"coefficient": 1e-4, "pairs": ["all", "adjacent"]}},
        search={"type": "optuna", "metric": ["val_acc", "pgd_acc_8_255"], "mode": ["max", "max"],
                "num_samples": 12, "concurrency": 2},
        scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2}))
    assert space.num_trials == 12 and space.scheduler.metric == "val_acc"
    study = optuna.create_study(directions=["maximize", "maximize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        ask = study.ask()
        fixed = space.optuna(ask)  # Ray merges what was suggested with what is returned
        point = {**ask.params, **fixed}
        cfg = space.config(point)
        seen.add(cfg.regularizer)
        assert 0.01 <= cfg.lr <= 0.3 and cfg.batch_size in (32, 64)
        if cfg.regularizer == "none":
            assert cfg.coefficient == 0.0 and "coefficient" not in point
        if cfg.regularizer != "dn_relaxed":
            assert "relaxation" not in point
        if cfg.regularizer == "cs":
            assert cfg.coefficient == 1e-4 and cfg.pairs in ("all", "adjacent")
    assert seen == {"none", "so", "dn_relaxed", "cs"}


@pytest.mark.parametrize("sections, pattern", [
    ({"grids": {}}, r"unknown section 'grids' \(did you mean 'grid'\?\)"),
    ({"grid": {"depht": [8]}}, r"grid: unknown trial key 'depht' \(did you mean 'depth'\?\)"),
    ({"grid": {"width": 2}}, r"grid.width must be a non-empty list"),
    ({"grid": {"width": [1, 0]}}, r"trial regularizer=none, width=0: resnet width=0 must be an integer >= 1"),
    ({"grid": {"regularizer": ["so"]}}, r"regularizers section"),
    ({"regularizers": {"sro": {}}}, r"unknown regularizer 'sro' \(did you mean 'so'\?\)"),
    ({"regularizers": {"so": {"relaxation": [0.1]}}}, r"relaxation=0.1 does not apply to regularizer 'so'"),
    ({"sample": {"momentum": {"uniform": [0.5, 0.9]}}}, r"sample needs search.type: optuna"),
    ({"grid": {"width": [1]}, "search": {"type": "optuna", "metric": "test_acc"}}, r"grid needs search.type: grid"),
    ({"search": {"type": "optuna"}, "sample": {"momentum": {"uniform": [0.1, 0.9]}}}, r"search.metric is required"),
    ({"search": {"type": "optuna", "metric": "test_acc"}, "sample": {"weight_decay": {"loguniform": [0, 1]}}},
     r"sample.weight_decay.loguniform: low=0 must be > 0"),
    ({"search": {"type": "optuna", "metric": "test_acc"}, "sample": {"momentum": {"normal": [0, 1]}}},
     r"unknown distribution 'normal'; choose from: uniform, loguniform, int, choice"),
    ({"search": {"type": "optuna", "metric": "test_acc"},
      "regularizers": {"dn_relaxed": {"coefficient": 0.1, "relaxation": {"uniform": [0.0, 1.0]}}}},
     r"sampled trial .*relaxation=1.0.*must be a number in \[0, 1\)"),
    ({"search": {"type": "optuna", "metric": "test_acc"},
      "regularizers": {"so": {"coefficient": {"loguniform": [1e-5, 1e-2]}},
                       "dn": {"coefficient": {"uniform": [0.0, 1e-2]}}}},
     r"coefficient is float \(log\) for so but float for dn"),
    ({"search": {"type": "grid", "metric": "accuracy"}}, r"search.metric 'accuracy' is not a reported metric"),
    ({"search": {"type": "grid", "num_samples": 3}}, r"add a seed axis"),
    ({"search": {"type": "grid", "wave_size": 0}}, r"search.wave_size must be an integer >= 1, got 0"),
    ({"search": {"type": "optuna", "metric": "test_acc", "wave_size": 10}},
     r"search.wave_size=10 applies to grid search"),
    ({"search": {"type": "grid", "wave_size": 10}, "scheduler": {"type": "asha", "grace_period": 1}},
     r"search.wave_size=10 applies with scheduler fifo"),
    ({"search": {"metric": "val_acc"}, "data": {"val_size": 0}}, r"val_acc needs val_size > 0"),
    ({"scheduler": {"type": "asha", "grace_period": 2}}, r"grace_period=2 must be below epochs=2"),
    ({"scheduler": {"type": "asha", "metric": "pgd_acc_8_255"}}, r"scheduler.metric 'pgd_acc_8_255' must be an epochs column"),
    ({"scheduler": {"type": "asha"}, "training": {"epochs": None}, "grid": {"epochs": [2, 3]}},
     r"asha needs one fixed epochs"),
    ({"scheduler": {"type": "fifo", "grace_period": 1}}, r"scheduler.grace_period applies to asha"),
    ({"resources": {"gpu": 1.5}}, r"resources.gpu=1.5: above 1 it must be a whole number"),
    ({"resources": {"cpu": 0}}, r"resources.cpu=0 must be > 0"),
    ({"resources": {"gpu": 3, "workers": 2}}, r"multiple of resources.workers=2"),
    ({"resources": {"gpus": 1}}, r"unknown key resources.gpus \(did you mean 'gpu'\?\)"),
    ({"failure": {"max_retries": -1}}, r"failure.max_retries must be an integer >= 0"),
    ({"grid": {"lr": [0.2]}}, r"lr is both fixed and in grid"),
    ({"fixed": {"lr": 0.2}}, r"lr is set in both training and fixed"),
    ({"data": {"data_path": "${KORTH_SURELY_UNSET}"}}, r"KORTH_SURELY_UNSET is not set"),
    ({"name": "has space"}, r"name='has space' must be a word"),
])
def test_bad_spaces_fail_before_anything_runs_naming_the_field(write_space, sections, pattern):
    path = write_space("bad", **sections) if "name" not in sections else None
    if path is None:
        path = write_space("bad")
        raw = yaml.safe_load(Path(path).read_text())
        raw.update(sections)
        Path(path).write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=pattern) as error:
        sweep.run(path, dry_run=True)
    assert os.path.basename(path) in str(error.value)


def test_resources_choose_data_parallel_workers():
    assert resources_section({"gpu": 4}).workers == 4
    assert resources_section({"gpu": 0.25}).per_worker == {"cpu": 1.0, "gpu": 0.25}
    two = resources_section({"cpu": 2, "workers": 2})
    assert two.per_worker == {"cpu": 1.0, "gpu": 0.0}
    assert resource_label(two) == "2 workers x (1 cpu)"


def _typed_space(tmp_path, text):
    """A search space on conftest.TINY with ``text`` (hand-written YAML sections) appended."""
    from conftest import make_space

    path = Path(make_space(tmp_path, "typed", training={"lr": None}))
    path.write_text(path.read_text() + text)
    return spaces.load(str(path))


def test_numbers_as_people_write_them_in_yaml_keys_grids_choices_and_bounds(tmp_path):
    # PyYAML reads 1e-3 (YAML 1.1) as a string; every numeric entry point reads it as a number
    grid = _typed_space(tmp_path, "regularizers: {so: {coefficient: [1e-4, 1E-3]}}\n"
                                  "grid: {lr: [.5, 1e-1]}\ndata: {data_root: 1e3}\n")
    assert sorted({cfg.coefficient for cfg in grid.trials}) == [1e-4, 1e-3]
    assert sorted({cfg.lr for cfg in grid.trials}) == [0.1, 0.5]
    assert grid.trials[0].data_root.endswith("1e3")  # a string field keeps its text
    fixed = _typed_space(tmp_path, "regularizers: {so: {coefficient: 1e-3}}\n")
    assert fixed.trials[0].coefficient == 1e-3
    sampled = _typed_space(tmp_path, "search: {type: optuna, metric: test_acc, num_samples: 2}\n"
                                     "sample: {lr: {loguniform: [1e-3, 1e-1]}}\n"
                                     "regularizers: {so: {coefficient: {choice: [1e-4, 1e-3]}}}\n")
    lr = sampled.optuna.per_regularizer["so"]["lr"]
    coefficient = sampled.optuna.per_regularizer["so"]["coefficient"]
    assert lr.values == (1e-3, 1e-1) and coefficient.values == (1e-4, 1e-3)
    assert all(isinstance(v, float) for v in coefficient.values)


@pytest.mark.parametrize("text, pattern", [
    ("regularizers: {so: {coefficient: [nan]}}\n", r"coefficient must be a finite number, got 'nan'"),
    ("regularizers: {so: {coefficient: [.inf]}}\n", r"coefficient must be a finite number, got inf"),
    ("search: {type: optuna, metric: test_acc}\nsample: {lr: {loguniform: [1e-3, inf]}}\n",
     r"sample.lr.loguniform must be a finite number, got 'inf'"),
    ("search: {type: optuna, metric: test_acc}\nsample: {lr: {choice: [1e-3, lots]}}\n",
     r"sample.lr.choice: lr must be a finite number, got 'lots'"),
])
def test_non_numbers_in_yaml_are_refused(tmp_path, text, pattern):
    with pytest.raises(ConfigError, match=pattern):
        _typed_space(tmp_path, text)


def test_a_case_runs_the_baseline_at_more_seeds_and_the_analysis_section_is_read(write_space,
                                                                                 capsys):
    path = write_space("more_baseline", grid={"seed": [0, 1, 2]},
                       regularizers={"none": {"seed": [0, 1, 2, 3, 4, 5]},
                                     "so": {"coefficient": 0.001}},
                       analysis={"primary": {"arms": ["so"], "claimed_drop": 1.5},
                                 "declared": "2026-12-05"})
    space = spaces.load(path)
    seeds = {name: sorted(c.seed for c in space.trials if c.regularizer == name)
             for name in ("none", "so")}
    assert seeds == {"none": [0, 1, 2, 3, 4, 5], "so": [0, 1, 2]}
    assert space.analysis.arms == ("so",) and space.analysis.claimed_drop == 1.5
    assert space.analysis.metric == "test_acc" and space.analysis.declared == "2026-12-05"
    text = dry_run_text(space)
    assert "per regularizer: none 6 trials at 6 seeds; so 3 trials at 3 seeds" in text
    assert "primary contrast (claim 2): mean gain of so in test_acc" in text
    assert spaces.load(write_space("plain")).analysis is None
@pytest.mark.parametrize("regularizers, seeds, said", [
    ({"so": {}, "dn": {}}, [0, 1, 2], ["no 'none' (the baseline)"]),
    ({"none": {}, "so": {}}, [0], ["one seed per cell"]),
    ({"so": {}}, [0], ["no 'none' (the baseline)", "one seed per cell"]),
    ({"none": {}, "so": {}}, [0, 1], []),
])
def test_dry_run_says_what_the_report_cannot_do(write_space, capsys, regularizers, seeds, said):
    path = write_space("limits", grid={"seed": seeds, "coefficient": [1e-3]},
                       regularizers=regularizers)
    assert sweep.run(path, dry_run=True) == 0
    limits = [line for line in capsys.readouterr().out.splitlines()
              if line.startswith("report limit: ")]
    assert len(limits) == len(said) and all(text in line for text, line in zip(said, limits))
