"""TrialConfig: coercion of --set strings, validation messages, stable trial ids."""
import pytest

from korth_bench.config import TrialConfig
from korth_bench.errors import ConfigError, IgnoredSetting


def test_strings_are_coerced_to_field_types():
    cfg = TrialConfig.from_dict({"depth": "14", "lr": "0.05", "nesterov": "true",
                                 "lr_milestones": "[2, 4]", "lr_schedule": "multistep",
                                 "robustness.pgd_eps": "[2]"})
    assert (cfg.depth, cfg.lr, cfg.nesterov) == (14, 0.05, True)
    assert cfg.lr_milestones == (2, 4) and cfg.robustness_pgd_eps == (2,)


def test_unknown_key_suggests_close_match():
    with pytest.raises(ConfigError, match=r"unknown config key 'coeficient'.*'coefficient'"):
        TrialConfig.from_dict({"coeficient": 0.1})


@pytest.mark.parametrize("values, pattern", [
    ({"model": "vgg"}, r"unknown model family 'vgg'; choose from: .*resnet"),
    ({"depth": 21}, r"depth=21 .*nearest: 20 or 26"),
    ({"regularizer": "sro"}, r"unknown regularizer 'sro'; choose from: .*so"),
    ({"regularizer": "so", "coefficient": -1}, r"coefficient=-1.0 must be >= 0"),
    ({"coefficient": "abc"}, r"coefficient must be a finite number"),
    ({"regularizer": "dn_relaxed", "relaxation": 1.0, "coefficient": 0.1}, r"relaxation"),
    ({"regularizer": "so", "relaxation": 0.3}, r"relaxation=0.3 does not apply to regularizer 'so'"),
    ({"regularizer": "dn_relaxed", "relaxation": 0.3}, r"regularizer='dn_relaxed' needs a coefficient > 0, got "
                                    r"coefficient=0.0.*give a coefficient.*or use regularizer=none"),
    ({"regularizer": "so", "coefficient": 0}, r"regularizer='so' needs a coefficient > 0"),
    ({"regularizer": "dn_relaxed", "coefficient": 1e-3},
     r"regularizer='dn_relaxed' needs relaxation, which has no default: give relaxation"),
    ({"lr_schedule": "linear"}, r"lr_schedule='linear'.*cosine, multistep"),
    ({"dataset": "packed"}, r"needs data_path"),
    ({"epochs": 0}, r"epochs=0 must be >= 1"),
    ({"robustness_corruptions": ["fog"]}, r"robustness_corruptions='fog'.*gaussian_noise"),
])
def test_bad_values_name_field_value_and_choices(values, pattern):
    with pytest.raises(ConfigError, match=pattern):
        TrialConfig.from_dict(values)


def test_trial_id_is_stable_and_depends_on_what_changes_results():
    a = TrialConfig.from_dict({"regularizer": "so", "coefficient": 1e-3, "seed": 1})
    b = TrialConfig.from_dict({"seed": "1", "coefficient": "0.001", "regularizer": "so"})
    assert a.trial_id == b.trial_id and len(a.trial_id) == 12
    assert a.trial_id != a.replace(seed=2).trial_id
    assert a.trial_id == a.replace(threads=2, checkpoint_every=5).trial_id  # speed only


def test_precision_defaults_to_fp32_and_the_identity_hashes_the_requested_value():
    # fp32 stays the default until the accuracy check puts auto within +-1 point (issue 14)
    default = TrialConfig.from_dict({})
    assert default.precision == "fp32"
    assert default.trial_id == TrialConfig.from_dict({"precision": "fp32"}).trial_id
    # auto is never resolved in the config: a driver and a GPU worker must agree on the id.
    assert len({default.replace(precision=p).trial_id for p in ("auto", "fp32", "bf16")}) == 3
    with pytest.raises(ConfigError, match=r"precision='fp16'.*auto, fp32, bf16"):
        TrialConfig.from_dict({"precision": "fp16"})


def test_none_ignores_coefficient_and_regularizer_defaults_are_resolved():
    with pytest.warns(IgnoredSetting, match=r"coefficient=0.5 is ignored: regularizer='none'"):
        assert TrialConfig.from_dict({"regularizer": "none", "coefficient": 0.5}).coefficient == 0.0
    assert TrialConfig.from_dict({"regularizer": "dn_relaxed", "coefficient": 1e-3,
                                  "relaxation": 0}).relaxation == 0.0  # given: allowed
    srip = TrialConfig.from_dict({"regularizer": "srip", "coefficient": 0.01})
    assert srip.power_iterations == 2 and srip.squared is True
    assert srip.regularizer_params()["power_iterations"] == 2


def test_row_round_trip():
    cfg = TrialConfig.from_dict({"regularizer": "dn_relaxed", "relaxation": 0.3, "coefficient": 1e-3})
    again = TrialConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.trial_id == cfg.trial_id


@pytest.mark.parametrize("text, value", [("1e-3", 1e-3), ("1E-3", 1e-3), ("1e+3", 1e3), (".5", 0.5),
                                         ("2", 2.0)])
def test_numbers_as_people_write_them_from_set(text, value):
    from korth_bench.cli import parse_assignments

    cfg = TrialConfig.from_dict(parse_assignments(["regularizer=so", f"coefficient={text}",
                                                   "epochs=1e1"]))
    assert cfg.coefficient == value and isinstance(cfg.coefficient, float) and cfg.epochs == 10


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", ".nan", "lots", "1e-3x"])
def test_non_finite_and_non_numbers_are_refused_in_one_line(text):
    with pytest.raises(ConfigError, match=rf"^coefficient must be a finite number, got '{text}'$"):
        TrialConfig.from_dict({"regularizer": "so", "coefficient": text})
    with pytest.raises(ConfigError, match=r"epochs must be an integer, got"):
        TrialConfig.from_dict({"epochs": "2.5"})


def test_string_fields_keep_their_text():
    cfg = TrialConfig.from_dict({"data_root": "1e-3", "regularizer": "cs", "pairs": "adjacent",
                                  "coefficient": 1e-4})
    assert cfg.data_root == "1e-3" and cfg.pairs == "adjacent"
