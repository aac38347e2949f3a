"""The user-error boundary and the single sources of facts.

Checks of user input raise ``ConfigError``, which the CLI answers in one line with exit code 2;
every other exception is a bug and keeps its traceback. A mistake reads the same from Python, a
trial's ``--set``, a YAML space; a fact (corruption names, statuses, table names, the ``trials``
row) is defined once.
"""
import pytest

from korth_bench import cli, models, results
from korth_bench.config import TrialConfig
from korth_bench.errors import ConfigError
from korth_bench.sweep import ray_compat
from korth_bench.trial import robustness
from korth_bench.trial.summary import HEADLINE, trial_row
from conftest import make_space

DEPTH_21 = "resnet depth=21 must be 6n+2 (8, 14, 20, 26, ...); nearest: 20 or 26"


def test_one_mistake_reads_the_same_from_python_set_and_yaml(tmp_path, capsys):
    with pytest.raises(ConfigError) as from_python:
        models.build("resnet", 21)
    with pytest.raises(ConfigError) as from_config:
        TrialConfig.from_dict({"depth": 21})
    assert str(from_python.value) == str(from_config.value) == DEPTH_21
    assert cli.main(["train", "--set", "depth=21", "--out", str(tmp_path / "out")]) == 2
    from_set = capsys.readouterr().err.strip().splitlines()
    space = make_space(tmp_path, "deep", training={"depth": 21})
    assert cli.main(["run", str(space), "--dry-run"]) == 2
    from_yaml = capsys.readouterr().err.strip().splitlines()
    assert len(from_set) == len(from_yaml) == 1
    assert from_set[0].endswith(DEPTH_21) and from_yaml[0].endswith(DEPTH_21)
    assert not (tmp_path / "out").exists()


def test_a_bug_keeps_its_traceback(monkeypatch, capsys):
    """A ValueError that is not a user error (pandas', torch's, ours) is not bad input."""
    def broken(args):
        raise ValueError("cannot reindex on an axis with duplicate labels")

    monkeypatch.setattr(cli, "cmd_list", broken)
    with pytest.raises(ValueError, match="duplicate labels"):
        cli.main(["list"])
    assert "korth-bench: error" not in capsys.readouterr().err


def test_a_missing_ray_internal_is_named_with_the_checked_versions():
    with pytest.raises(RuntimeError, match=r"ray\._private\.services\.no_such_function.*Ray 2\.60"):
        ray_compat._private("ray._private.services", "no_such_function")


def test_the_corruptions_the_config_allows_are_the_ones_robustness_runs():
    cfg = TrialConfig.from_dict({})
    assert cfg.robustness_corruptions == robustness.CORRUPTIONS == tuple(robustness.SEVERITY_PARAMS)
    assert cfg.robustness_attacks == robustness.ATTACKS
    with pytest.raises(ConfigError, match="robustness_corruptions='fog' is not allowed"):
        TrialConfig.from_dict({"robustness_corruptions": ["fog"]})
    import torch

    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    for name in robustness.CORRUPTIONS:  # every allowed name runs
        assert robustness.corrupt(images, name, 1).shape == images.shape


def test_the_trials_row_is_built_once_and_matches_the_schema():
    cfg = TrialConfig.from_dict({"regularizer": "so", "coefficient": 1e-3})
    epochs = [{"epoch": 0, "test_acc": 0.4, "val_acc": 0.3, "test_loss": 1.5, "elapsed_s": 2.0},
              {"epoch": 1, "test_acc": 0.5, "val_acc": 0.45, "test_loss": 1.2, "elapsed_s": 4.0}]
    stopped = trial_row(cfg, "stopped", None, epochs)
    schema = results.trials_columns(cfg.to_dict())
    assert set(stopped) <= set(schema)
    assert stopped["status"] in results.STATUSES
    assert (stopped["test_acc"], stopped["best_test_acc"], stopped["epochs_completed"],
            stopped["train_time_s"]) == (0.5, 0.5, 2, 4.0)
    assert set(HEADLINE) <= set(schema)
