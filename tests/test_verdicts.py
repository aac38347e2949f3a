"""korth_bench.analysis.verdicts on small hand-built inputs: the significant rows and the verdict
rule under Holm-adjusted p-values, arm labels, the contrasts between entries (checked against
scipy's t tests), one claim's summary row, and the claim table of a hand-built ``analyze``
result with its exact verdicts, labels and statements."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from korth_bench.analysis import verdicts
from korth_bench.analysis.collapse import PRIMARY_AXIS

CELL = {"dataset": "cifar10", "model": "resnet", "depth": 8, "width": 1}
ROWS = ["label", "effect", "low", "high", "p_value", "seeds", "min_attainable_p"]
COMPARED = ["mean", "low", "high", "p_value", "n", "pairing", "n_treated", "n_control",
            "min_attainable_p"]


def rng():
    return np.random.default_rng(0)


def runs_of(regularizer, seeds=(0, 1, 2, 3), **columns):
    """Runs of one regularizer, one per seed; ``columns``: a list of values per column (one per
    seed), or a cell key's single value."""
    cell = {k: columns.pop(k) for k in list(columns) if k in CELL}
    return [{**CELL, **cell, "regularizer": regularizer, "seed": seed,
             **{name: values[i] for name, values in columns.items()}}
            for i, seed in enumerate(seeds)]


def paired(treated, control):
    """A paired t test by scipy: mean difference, its 95 % interval, two-sided p, pairs."""
    d = np.subtract(treated, control)
    low, high = scipy_stats.t.interval(0.95, d.size - 1, loc=d.mean(), scale=scipy_stats.sem(d))
    return d.mean(), low, high, scipy_stats.ttest_1samp(d, 0).pvalue


def claim_rows(*rows):
    """A claim's rows (ROW_COLUMNS): (label, effect, p_value, seeds, min_attainable_p); the
    interval is effect -+ 0.01."""
    return pd.DataFrame([{"label": label, "effect": effect, "low": effect - 0.01,
                          "high": effect + 0.01, "p_value": p, "seeds": seeds,
                          "min_attainable_p": floor}
                         for label, effect, p, seeds, floor in rows], columns=ROWS)


# ---------------------------------------------------------------- the verdict rule

def test_significant_rows_are_split_by_the_sign_of_their_effect():
    effect = np.array([-0.02, 0.01, -0.03, 0.02, 0.0, -0.01])
    p_holm = np.array([0.01, 0.01, 0.2, np.nan, 0.001, 0.05])
    # significant at 0.05 (p <= alpha, NaN never): rows 0, 1, 4, 5; row 4 has no sign
    supporting, opposing = verdicts.significant_signs(effect, p_holm, -1, 0.05)
    assert supporting.tolist() == [True, False, False, False, False, True]
    assert opposing.tolist() == [False, True, False, False, False, False]
    supporting, opposing = verdicts.significant_signs(effect, p_holm, +1, 0.05)
    assert supporting.tolist() == [False, True, False, False, False, False]
    assert opposing.tolist() == [True, False, False, False, False, True]
    strict, _ = verdicts.significant_signs(effect, p_holm, -1, 0.01)
    assert strict.tolist() == [True] + [False] * 5
    # lists are read as arrays, and a column of objects with None (a missing value) as NaN
    assert verdicts.significant_signs([1.0], [0.5], +1, 0.6)[0].tolist() == [True]
    objects = pd.Series([-0.02, None, 0.01], dtype=object)
    supporting, opposing = verdicts.significant_signs(objects, pd.Series([0.01, 0.01, None],
                                                                         dtype=object), -1, 0.05)
    assert supporting.tolist() == [True, False, False] and not opposing.any()


@pytest.mark.parametrize("effect, p_holm, equivalent, claimed, expected", [
    ([-0.01, 0.002], [0.01, 0.6], [False, False], -1, "supported"),
    ([0.01, -0.002], [0.01, 0.6], [False, False], -1, "contradicted"),
    ([0.01, -0.002], [0.01, 0.6], [False, False], +1, "supported"),
    ([-0.01, 0.01], [0.01, 0.02], [False, False], -1, "inconclusive"),   # both ways
    ([-0.01, 0.002], [0.2, 0.6], [False, True], -1, "contradicted"),     # an equivalence
    ([-0.01, 0.002], [0.2, 0.6], [0, 1], -1, "contradicted"),            # as numbers
    ([-0.01, 0.002], [0.01, 0.6], [False, True], -1, "supported"),
    ([0.01, 0.002], [0.01, 0.6], [False, True], -1, "contradicted"),
    ([-0.01, 0.002], [0.2, 0.6], [False, False], -1, "inconclusive"),    # nothing significant
    ([-0.01], [np.nan], [False], -1, "inconclusive"),
    ([-0.01], [0.05], [False], -1, "supported")])                        # p = alpha rejects
def test_a_claim_is_decided_by_its_significant_rows_and_equivalences(effect, p_holm, equivalent,
                                                                     claimed, expected):
    assert verdicts.decide(np.array(effect), np.array(p_holm), claimed, 0.05,
                           equivalent) == expected


# ---------------------------------------------------------------- arm labels

@pytest.mark.parametrize("label, name, suffix", [
    ("so [penalty_reduction=sum]", "so", " [penalty_reduction=sum]"),
    ("dn_relaxed", "dn_relaxed", ""),
    ("dn [penalty_reduction=sum] [init=orthogonal]", "dn",
     " [penalty_reduction=sum] [init=orthogonal]"),
    ("so[x]", "so[x]", ""),
    # the registry takes any name, spaces included: the arm starts at the first " ["
    ("my plugin [penalty_reduction=sum]", "my plugin", " [penalty_reduction=sum]")])
def test_an_arm_label_is_its_regularizer_then_the_arm(label, name, suffix):
    assert verdicts.base_name(label) == name
    assert verdicts.arm_suffix(label) == suffix
    assert verdicts.base_name(label) + verdicts.arm_suffix(label) == label


@pytest.mark.parametrize("found, seeds", [
    ({"pairing": "paired", "n": 3, "n_treated": 4, "n_control": 5}, 3),
    ({"pairing": "unpaired", "n": 9, "n_treated": 5, "n_control": 4}, 4),
    ({"pairing": "unpaired", "n": 9, "n_treated": 3, "n_control": 6}, 3),
    ({"pairing": "paired + 2 baseline seeds", "n": 3, "n_treated": 3, "n_control": 5}, 3)])
def test_seeds_per_side_are_the_pairs_else_the_smaller_side(found, seeds):
    got = verdicts.seeds_per_side(found)
    assert got == seeds and type(got) is int


# ---------------------------------------------------------------- contrasts

def test_contrasts_are_treated_minus_control_per_cell_and_measure():
    dn = [0.05, 0.05, 0.07, 0.06]
    so = [0.10, 0.11, 0.12, 0.10]
    runs = pd.DataFrame(
        runs_of("dn", ortho_cos_mean=dn, fm_sim_mean=[0.3, 0.32, 0.31, 0.3])
        + runs_of("so", ortho_cos_mean=so, fm_sim_mean=[0.3, 0.3, 0.3, 0.3])
        # seeds not shared: Welch, seeds = the smaller side
        + runs_of("dn", (0, 1, 2), depth=14, width=2, ortho_cos_mean=[0.05, 0.06, 0.08],
                  fm_sim_mean=[0.3] * 3)
        + runs_of("so", (5, 6), depth=14, width=2, ortho_cos_mean=[0.10, 0.12],
                  fm_sim_mean=[0.3] * 2)
        # so alone: nothing to compare
        + runs_of("so", depth=20, ortho_cos_mean=so, fm_sim_mean=[0.3] * 4)
        # differences that agree exactly: no p-value, no row; a side without values: no row
        + runs_of("dn", (0, 1), depth=26, ortho_cos_mean=[0.25, 0.5], fm_sim_mean=[None] * 2)
        + runs_of("so", (0, 1), depth=26, ortho_cos_mean=[0.125, 0.375], fm_sim_mean=[0.3] * 2))
    rows = verdicts.contrasts(runs, [("mc", "so"), ("dn", "so")],
                              ["ortho_cos_mean", "ortho_cos_max", "fm_sim_mean"], rng())
    assert list(rows.columns) == ROWS
    assert rows["label"].tolist() == [
        "dn - so, resnet-8x1, ortho_cos_mean", "dn - so, resnet-8x1, fm_sim_mean",
        "dn - so, resnet-14x2, ortho_cos_mean"]
    mean, low, high, p = paired(dn, so)
    first = rows.iloc[0]
    assert (first["effect"], first["low"], first["high"], first["p_value"]) == (
        pytest.approx(mean), pytest.approx(low), pytest.approx(high), pytest.approx(p))
    assert first["seeds"] == 4 and first["min_attainable_p"] == 2 / 2 ** 4
    welch = scipy_stats.ttest_ind([0.05, 0.06, 0.08], [0.10, 0.12], equal_var=False)
    last = rows.iloc[2]
    assert last["effect"] == pytest.approx(np.mean([0.05, 0.06, 0.08]) - 0.11)
    assert last["p_value"] == pytest.approx(welch.pvalue)
    # 3 vs 2 runs: the observed split is 1 of C(5, 3) = 10 relabellings
    assert last["seeds"] == 2 and last["min_attainable_p"] == pytest.approx(1 / 10)
    none = verdicts.contrasts(runs, [("mc", "so")], ["ortho_cos_mean"], rng())
    assert none.empty and list(none.columns) == ROWS


def test_contrasts_on_many_seeds_are_checked_by_sampled_sign_flips():
    # 17 pairs: past the exact sign-flip enumeration (2^16), the check draws from the generator
    seeds = tuple(range(17))
    dn = [0.05 + 0.001 * (s % 5) for s in seeds]
    so = [0.10 + 0.002 * (s % 3) for s in seeds]
    runs = pd.DataFrame(runs_of("dn", seeds, ortho_cos_mean=dn)
                        + runs_of("so", seeds, ortho_cos_mean=so))
    rows = verdicts.contrasts(runs, [("dn", "so")], ["ortho_cos_mean"], rng())
    assert rows["p_value"].tolist() == [pytest.approx(paired(dn, so)[3])]
    assert rows["seeds"].tolist() == [17] and rows["min_attainable_p"].tolist() == [2 / 2 ** 17]


def test_a_cell_without_a_recorded_width_is_compared_too():
    runs = pd.DataFrame(runs_of("dn", width=None, ortho_cos_mean=[0.05, 0.05, 0.07, 0.06])
                        + runs_of("so", width=None, ortho_cos_mean=[0.10, 0.11, 0.12, 0.10]))
    rows = verdicts.contrasts(runs, [("dn", "so")], ["ortho_cos_mean"], rng())
    assert rows["label"].tolist() == ["dn - so, resnet-8xnan, ortho_cos_mean"]


# ---------------------------------------------------------------- one claim's row

def test_a_claim_row_is_holm_over_its_rows_with_the_most_significant_one_shown():
    rows = claim_rows(("a", -0.02, 0.01, 3, 0.25), ("b", 0.01, 0.04, 5, np.nan),
                      ("c", -0.005, 0.5, 4, 0.125), ("d", 0.3, np.nan, 6, 0.5))
    # Holm over the 3 finite p: 3 x 0.01 = 0.03, 2 x 0.04 = 0.08, max(0.08, 1 x 0.5) = 0.5
    out = verdicts._claim("9", "a statement", rows, -1, 0.05, "pp", caveat="a caveat",
                          reach="the tested range")
    assert list(out) == verdicts.COLUMNS[:2] + ["unit", "n_rows", "n_supporting", "n_opposing",
                                                "n_equivalent", "verdict", "label", "effect",
                                                "low", "high", "p_holm", "seeds_min",
                                                "seeds_max", "exact_floor", "caveat", "reach"]
    assert {k: out[k] for k in ("claim", "statement", "unit", "n_rows", "n_supporting",
                                "n_opposing", "n_equivalent", "verdict", "label", "seeds_min",
                                "seeds_max", "caveat", "reach")} == {
        "claim": "9", "statement": "a statement", "unit": "pp", "n_rows": 4, "n_supporting": 1,
        "n_opposing": 0, "n_equivalent": 0, "verdict": "supported", "label": "a",
        "seeds_min": 3, "seeds_max": 6, "caveat": "a caveat", "reach": "the tested range"}
    assert (out["effect"], out["low"], out["high"]) == (-0.02, pytest.approx(-0.03),
                                                         pytest.approx(-0.01))
    assert out["p_holm"] == pytest.approx(0.03) and out["exact_floor"] == 0.125
    # at alpha 0.01 nothing is significant
    assert verdicts._claim("9", "", rows, -1, 0.01, "pp")["verdict"] == "inconclusive"
    # the opposite claim: row a opposes it
    opposite = verdicts._claim("9", "", rows, +1, 0.05, "pp")
    assert opposite["verdict"] == "contradicted" and opposite["n_opposing"] == 1
    assert opposite["n_supporting"] == 0


def test_a_claim_row_keeps_an_adjusted_family_and_counts_equivalences():
    # the rows' own p_holm (a family adjusted elsewhere) is used as it is
    rows = claim_rows(("a", -0.02, 0.01, 3, np.nan), ("b", 0.01, 0.02, 2, np.nan)).assign(
        p_holm=[0.2, 0.04])
    out = verdicts._claim("2", "", rows, -1, 0.05, "pp per doubling", equivalent=[True, False])
    assert out["verdict"] == "contradicted" and out["label"] == "b"
    assert out["p_holm"] == 0.04 and out["n_equivalent"] == 1 and out["n_opposing"] == 1
    assert math.isnan(out["exact_floor"]) and out["seeds_min"] == 2 and out["seeds_max"] == 3
    # an equivalence alone contradicts
    flat = rows.assign(p_holm=[0.2, 0.3])
    assert verdicts._claim("2", "", flat, -1, 0.05, "", equivalent=[False, True])[
        "verdict"] == "contradicted"
    assert verdicts._claim("2", "", flat, -1, 0.05, "")["verdict"] == "inconclusive"


def test_a_claim_without_rows_is_not_tested():
    out = verdicts._claim("4, cs", "s", claim_rows(), -1, 0.05, "measure", caveat="c",
                          reach="ignored without rows")
    assert out["verdict"] == "not tested" == verdicts.NOT_TESTED
    assert out["n_rows"] == 0 and out["label"] is None
    assert out["reach"] == "" and out["caveat"] == "c"
    assert out["seeds_min"] == 0 == out["seeds_max"] and out["n_supporting"] == 0
    assert out["n_opposing"] == 0 and out["n_equivalent"] == 0
    assert all(math.isnan(out[k]) for k in ("effect", "low", "high", "p_holm", "exact_floor"))


def test_a_claim_row_reads_columns_of_objects_with_none_as_missing():
    # a table built from records keeps None in object columns: the p of row b is missing
    rows = claim_rows(("a", -0.02, 0.01, 3, 0.25), ("b", -0.03, None, 3, 0.25)).assign(
        p_holm=[0.02, None]).astype(object)
    out = verdicts._claim("1", "", rows, -1, 0.05, "")
    assert out["verdict"] == "supported" and out["label"] == "a" and out["p_holm"] == 0.02


def test_a_claim_whose_p_values_are_all_missing_shows_its_first_row():
    rows = claim_rows(("a", -0.02, np.nan, 3, 0.25), ("b", 0.01, np.nan, 3, 0.25))
    out = verdicts._claim("1", "", rows, -1, 0.05, "")
    assert out["verdict"] == "inconclusive" and out["label"] == "a" and math.isnan(out["p_holm"])


# ---------------------------------------------------------------- claim rows of the tables

def compared(**fields):
    """One compare_runs-shaped row (COMPARED) in CELL: paired on 3 seeds unless overridden."""
    base = {"mean": 0.01, "low": 0.0, "high": 0.02, "p_value": 0.01, "n": 3, "pairing": "paired",
            "n_treated": 3, "n_control": 3, "min_attainable_p": 0.25}
    return {**CELL, **base, **fields}


def test_claim_rows_from_comparisons_and_from_collapse_rows():
    # seeds: the pairs when paired (3 pairs, one more treated and two more control runs),
    # else the smaller side of each row
    frame = pd.DataFrame([compared(mean=0.02, low=0.01, high=0.03, p_value=0.04, n_treated=4,
                                   n_control=5),
                          compared(pairing="unpaired", n=7, n_treated=4, n_control=3,
                                   min_attainable_p=1 / 35),
                          compared(pairing="unpaired", n=11, n_treated=6, n_control=5,
                                   min_attainable_p=1 / 462)])
    rows = verdicts._rows(frame, pd.Series(["x", "y", "z"]), "mean")
    expected = pd.DataFrame({"label": ["x", "y", "z"], "effect": [0.02, 0.01, 0.01],
                             "low": [0.01, 0.0, 0.0], "high": [0.03, 0.02, 0.02],
                             "p_value": [0.04, 0.01, 0.01], "seeds": [3.0, 3.0, 5.0],
                             "min_attainable_p": [0.25, 1 / 35, 1 / 462]})
    pd.testing.assert_frame_equal(rows, expected)
    # collapse rows: units per cell (n_units // n_cells, no cells counted as one), no exact check
    collapse = pd.DataFrame({"slope": [-0.01, 0.02], "low": [-0.02, 0.01], "high": [0.0, 0.03],
                             "p_value": [0.01, 0.2], "n_units": [14, 5], "n_cells": [4, 0]})
    rows = verdicts._rows(collapse, pd.Series(["s", "t"]), "slope")
    # 14 units in 4 cells: 3 whole seeds per cell
    assert rows["seeds"].tolist() == [3.0, 5.0] and rows["min_attainable_p"].isna().all()
    assert rows["effect"].tolist() == [-0.01, 0.02] and list(rows.columns) == ROWS


def test_cell_text_is_model_depth_x_width():
    frame = pd.DataFrame({"model": ["resnet", "wrn"], "depth": [8, 16], "width": [1, 4]})
    assert verdicts._cell_text(frame).tolist() == ["resnet-8x1", "wrn-16x4"]


def collapse_row(regularizer, slope, p_holm, verdict, family="claim 2", axis=PRIMARY_AXIS,
                 p_value=0.01, metric="test_acc"):
    return {"dataset": "cifar10", "model": "resnet", "regularizer": regularizer, "metric": metric,
            "axis": axis, "test_family": family, "n_units": 12, "n_cells": 4, "slope": slope,
            "low": slope - 0.01, "high": slope + 0.01, "p_value": p_value, "p_holm": p_holm,
            "verdict": verdict}


def test_claim_2_is_decided_by_the_primary_contrast_when_declared_else_by_its_family():
    rows = [collapse_row("so", -0.01, 0.02, "gains shrink with capacity"),
            collapse_row("dn", 0.0, 0.3, "no trend"),
            collapse_row("so", -0.01, math.nan, "descriptive", axis="depth"),
            collapse_row("dn", 0.0, math.nan, "inconclusive", p_value=math.nan),
            collapse_row("cs", 0.01, 0.4, "no trend", family="outside claim 2")]
    family = verdicts.claim2_rows(pd.DataFrame(rows))
    assert family["regularizer"].tolist() == ["so", "dn"]
    primary = verdicts.claim2_rows(pd.DataFrame(rows + [
        collapse_row("so + dn", -0.01, 0.01, "gains shrink with capacity", family="primary")]))
    assert primary["regularizer"].tolist() == ["so + dn"]
    empty = pd.DataFrame(columns=list(rows[0]))
    assert verdicts.claim2_rows(empty).empty


# ---------------------------------------------------------------- the claim table

STATEMENTS = {
    "1": "[DN] dn reaches better near-orthogonality than so at matched strength (lower "
         "layer-mean Gram residual, diagonal deviation and cosines; same coefficient or epoch-0 "
         "penalty ratio within 1.5x)",
    "1, tuned settings": "[DN] the same comparison between the selected entries "
                         "(validation-tuned coefficients, strengths not matched): descriptive only",
    "2": "[DN] the gains of strict orthogonality shrink as capacity grows (slope of the gain per "
         "doubling of parameters < 0; Holm over the strict-orthogonality arms)",
    "2, relaxed": "[DN] a relaxed penalty recovers the gains at the largest capacity "
                  "(dn_relaxed minus dn > 0)",
    "3": "[DN] orthogonality-regularized models are more robust (gain in corruption and attack "
         "accuracy > 0)",
    "4, cs": "[CS] minimizing the Convolutional Similarity lowers feature-map similarity (cs "
             "minus none in fm_sim_mean < 0)",
    "4, orthogonality": "[CS] kernel orthogonality does not necessarily reduce feature-map "
                        "similarity (an orthogonality regularizer minus none in fm_sim_mean > 0)"}
UNITS = {"1": "measure", "1, tuned settings": "measure", "2": "pp per doubling",
         "2, relaxed": "pp", "3": "pp", "4, cs": "measure", "4, orthogonality": "measure"}
NONE_FM = [0.30, 0.32, 0.31, 0.35]
DN_ORTHO, SO_ORTHO = [0.05, 0.05, 0.07, 0.06], [0.10, 0.11, 0.12, 0.10]
SO_FM = [v + d for v, d in zip(NONE_FM, [0.05, 0.06, 0.04, 0.05])]
DN_FM = [v + d for v, d in zip(NONE_FM, [0.02, 0.03, 0.01, 0.02])]
CS_FM = [v - d for v, d in zip(NONE_FM, [0.10, 0.12, 0.11, 0.09])]
SUM, MEAN = " [penalty_reduction=sum]", " [penalty_reduction=mean]"


def result_of(**changes):
    """A hand-built ``analyze`` result, what claim_verdicts reads of it, in one cell at 4 seeds:
    arms 'sum' (dn, so) and 'mean' (so only); dn has lower cosines than so; cs lowers fm_sim_mean
    and dn and so raise it (paired differences as listed). The tables: a matched dn-so pair, the
    claim-2 collapse rows, strict-vs-relaxed and gains rows, each with rows to leave out."""
    runs = pd.DataFrame(
        runs_of("none", fm_sim_mean=NONE_FM)
        + runs_of("dn" + SUM, ortho_cos_mean=DN_ORTHO, fm_sim_mean=DN_FM)
        + runs_of("so" + SUM, ortho_cos_mean=SO_ORTHO, fm_sim_mean=SO_FM)
        + runs_of("so" + MEAN, ortho_cos_mean=SO_ORTHO, fm_sim_mean=[None] * 4)
        + runs_of("cs", fm_sim_mean=CS_FM))
    matched = pd.DataFrame([
        {**compared(mean=-0.05, low=-0.07, high=-0.03, p_value=0.01), "treated": "dn",
         "control": "so", "treated_coefficient": 1e-05, "control_coefficient": 2e-05,
         "matched_by": "ratio", "measure": "ortho_cos_mean"},
        {**compared(mean=-0.02, low=-0.05, high=0.01, p_value=0.3, pairing="unpaired", n=6,
                    n_treated=4, n_control=2, min_attainable_p=1 / 15, depth=14),
         "treated": "dn", "control": "so", "treated_coefficient": 0.01,
         "control_coefficient": 0.01, "matched_by": "coefficient", "measure": "ortho_cos_max"}])
    collapse = pd.DataFrame([collapse_row("so" + SUM, -0.01, 0.02, "gains shrink with capacity"),
                             collapse_row("dn" + SUM, 0.0, 0.3, "no trend"),
                             collapse_row("dn" + SUM, -0.02, 0.001, "descriptive", axis="depth")])
    relaxed = pd.DataFrame([
        {**compared(mean=0.01, p_value=0.02, depth=20), "status": "measured",
         "arm": "penalty_reduction=sum"},
        {**compared(mean=-0.01, p_value=0.5, depth=20), "status": "measured", "arm": None},
        {**compared(mean=-0.05, p_value=0.001, depth=20), "status": "missing: no dn runs",
         "arm": "penalty_reduction=mean"}])
    gains = pd.DataFrame([
        {**compared(mean=0.02, p_value=0.001), "regularizer": "so" + SUM,
         "metric": "corruption_acc_mean", "status": "measured"},
        {**compared(mean=-0.01, p_value=0.3), "regularizer": "dn" + SUM,
         "metric": "pgd_acc_8_255", "status": "measured"},
        {**compared(mean=-0.03, p_value=0.3), "regularizer": "dn_relaxed",
         "metric": "fgsm_acc_2_255", "status": "measured"},
        # not claim 3's: an accuracy, a regularizer that is not an orthogonality one, unmeasured
        {**compared(mean=-0.03, p_value=0.001), "regularizer": "so" + SUM, "metric": "test_acc",
         "status": "measured"},
        {**compared(mean=-0.03, p_value=0.001), "regularizer": "cs",
         "metric": "corruption_acc_mean", "status": "measured"},
        {**compared(mean=-0.03, p_value=0.001), "regularizer": "so" + SUM,
         "metric": "pgd_acc_2_255", "status": "missing: 1 seed"}])
    result = {"settings": {"alpha": 0.05, "baseline": "none", "match_factor": 1.5,
                           "primary": None},
              "runs": runs, "collapse": collapse, "strict_vs_relaxed": relaxed,
              "matched_strength": matched, "gains": gains,
              "undertraining": {"flagged": False, "checked": True, "message": "unused"},
              "regime": {"text": "136 k-340 k parameters"}}
    for key, value in changes.items():
        if key in result["settings"]:
            result["settings"][key] = value
        else:
            result[key] = value
    return result


def table(result):
    out = verdicts.claim_verdicts(result, rng())
    assert list(out.columns) == verdicts.COLUMNS
    return out.set_index("claim")


def test_the_claim_table_states_each_claims_verdict_rows_and_statement():
    out = table(result_of())
    assert out.index.tolist() == list(STATEMENTS)
    assert out["statement"].to_dict() == STATEMENTS and out["unit"].to_dict() == UNITS
    assert out["verdict"].to_dict() == {
        "1": "supported", "1, tuned settings": "descriptive", "2": "supported",
        "2, relaxed": "supported", "3": "supported", "4, cs": "supported",
        "4, orthogonality": "supported"}
    assert out["n_rows"].to_dict() == {"1": 2, "1, tuned settings": 1, "2": 2, "2, relaxed": 2,
                                       "3": 3, "4, cs": 1, "4, orthogonality": 2}
    assert out["reach"].tolist() == ["136 k-340 k parameters"] + [""] + [
        "136 k-340 k parameters"] * 5
    assert (out["caveat"] == "").all()
    # 1: Holm over 2: 0.01 x 2 = 0.02 (supporting), max(0.02, 0.3) = 0.3
    one = out.loc["1"]
    assert one["label"] == "dn at 1e-05 - so at 2e-05 (ratio), resnet-8x1, ortho_cos_mean"
    assert one["p_holm"] == pytest.approx(0.02) and one["effect"] == -0.05
    assert (one["seeds_min"], one["seeds_max"], one["exact_floor"]) == (2, 3, pytest.approx(1 / 15))
    # 1, tuned: dn - so of the 'sum' arm only (the 'mean' arm has no dn)
    mean, low, high, p = paired(DN_ORTHO, SO_ORTHO)
    tuned = out.loc["1, tuned settings"]
    assert tuned["label"] == f"dn{SUM} - so{SUM}, resnet-8x1, ortho_cos_mean"
    assert (tuned["effect"], tuned["low"], tuned["high"], tuned["p_holm"]) == (
        pytest.approx(mean), pytest.approx(low), pytest.approx(high), pytest.approx(p))
    assert tuned["n_supporting"] == 1 and tuned["exact_floor"] == 2 / 2 ** 4
    # 2: the collapse table's own p_holm on the primary axis; so's slope supports, dn's is an
    # equivalence
    two = out.loc["2"]
    assert two["label"] == f"so{SUM}, resnet, test_acc" and two["p_holm"] == 0.02
    assert (two["n_supporting"], two["n_equivalent"], two["seeds_min"]) == (1, 1, 3)
    assert math.isnan(two["exact_floor"])
    # 2, relaxed: Holm over the 2 measured rows: 0.02 x 2 = 0.04, max(0.04, 0.5) = 0.5
    relaxed = out.loc["2, relaxed"]
    assert relaxed["label"] == "dn_relaxed - dn [penalty_reduction=sum], resnet-20x1"
    assert relaxed["p_holm"] == pytest.approx(0.04) and relaxed["n_supporting"] == 1
    # 3: corruption and attack gains of orthogonality arms: 0.001 x 3, then 0.3 x 2 twice
    robust = out.loc["3"]
    assert (robust["n_supporting"], robust["n_opposing"]) == (1, 0)
    assert robust["label"] == f"so{SUM} - none, resnet-8x1, corruption_acc_mean"
    assert robust["p_holm"] == pytest.approx(0.003)
    # 4: paired differences against the baseline
    cs = out.loc["4, cs"]
    mean, low, high, p = paired(CS_FM, NONE_FM)
    assert cs["label"] == "cs - none, resnet-8x1, fm_sim_mean"
    assert (cs["effect"], cs["p_holm"]) == (pytest.approx(mean), pytest.approx(p))
    ortho = out.loc["4, orthogonality"]
    p_dn, p_so = paired(DN_FM, NONE_FM)[3], paired(SO_FM, NONE_FM)[3]
    best = min(p_dn, p_so)
    assert ortho["p_holm"] == pytest.approx(2 * best)
    assert ortho["label"] == (f"dn{SUM}" if p_dn < p_so else f"so{SUM}") + \
        " - none, resnet-8x1, fm_sim_mean"
    assert ortho["n_supporting"] == 2


@pytest.mark.parametrize("arm", [None, ""])
def test_the_relaxed_comparison_without_an_arm_is_labelled_without_brackets(arm):
    result = result_of()
    result["strict_vs_relaxed"] = pd.DataFrame([
        {**compared(mean=0.01, p_value=0.001, depth=20), "status": "measured", "arm": arm},
        {**compared(mean=0.01, p_value=0.2, depth=20), "status": "measured",
         "arm": "penalty_reduction=sum"}])
    assert table(result).loc["2, relaxed", "label"] == "dn_relaxed - dn, resnet-20x1"


def test_claims_on_many_seeds_draw_their_checks_from_the_generator():
    # 17 paired seeds: the sign-flip checks sample (past 2^16 patterns), so the generator is used
    seeds = tuple(range(17))
    none = [0.30 + 0.001 * (s % 4) for s in seeds]
    result = result_of()
    result["runs"] = pd.DataFrame(
        runs_of("none", seeds, fm_sim_mean=none)
        + runs_of("dn", seeds, ortho_cos_mean=[0.05 + 0.001 * (s % 5) for s in seeds],
                  fm_sim_mean=[v + 0.02 + 0.001 * (s % 3) for s, v in zip(seeds, none)])
        + runs_of("so", seeds, ortho_cos_mean=[0.10 + 0.002 * (s % 3) for s in seeds],
                  fm_sim_mean=[v + 0.01 * (s % 2) for s, v in zip(seeds, none)])
        + runs_of("cs", seeds,
                  fm_sim_mean=[v - 0.1 - 0.001 * (s % 4) for s, v in zip(seeds, none)]))
    out = table(result)
    assert out.loc[["1, tuned settings", "4, cs", "4, orthogonality"], "seeds_min"].tolist() == [
        17, 17, 17]
    assert out.loc["4, cs", "verdict"] == "supported"
    assert out.loc["4, orthogonality", "verdict"] == "supported"


def test_a_lower_alpha_and_another_baseline_are_read_from_the_settings():
    out = table(result_of(alpha=0.01))
    # 1: 0.02 > 0.01; 2, relaxed: 0.04 > 0.01; 2: so's own p_holm 0.02 > 0.01 and dn's
    # equivalence decides
    assert out.loc["1", "verdict"] == "inconclusive"
    assert out.loc["2, relaxed", "verdict"] == "inconclusive"
    assert out.loc["2", "verdict"] == verdicts.NO_TREND == "no trend in the tested range"
    renamed = result_of(baseline="plain")
    renamed["runs"] = renamed["runs"].replace({"regularizer": {"none": "plain"}})
    out = table(renamed)
    assert out.loc["4, cs", "label"] == "cs - plain, resnet-8x1, fm_sim_mean"
    assert out.loc["3", "label"] == f"so{SUM} - plain, resnet-8x1, corruption_acc_mean"


def test_claim_1_without_a_matched_pair_is_not_matched_or_not_tested():
    result = result_of()
    result["matched_strength"] = pd.DataFrame(columns=result["matched_strength"].columns)
    out = table(result)
    assert out.loc["1", "verdict"] == verdicts.NOT_MATCHED == "inconclusive (strengths not matched)"
    assert out.loc["1", "n_rows"] == 0 and out.loc["1", "reach"] == ""
    assert out.loc["1, tuned settings", "verdict"] == "descriptive"
    # no dn-so pair at all (dn only in the 'mean' arm, so only in 'sum'): neither is tested
    result["runs"] = result["runs"][~result["runs"]["regularizer"].isin(["dn" + SUM, "so" + MEAN])]
    result["runs"] = pd.concat([result["runs"], pd.DataFrame(runs_of(
        "dn" + MEAN, ortho_cos_mean=DN_ORTHO, fm_sim_mean=DN_FM))])
    out = table(result)
    assert out.loc["1", "verdict"] == "not tested"
    assert out.loc["1, tuned settings", "verdict"] == "not tested"


@pytest.mark.parametrize("collapse, verdict", [
    # only an equivalence: no trend in the tested range, not contradicted
    ([collapse_row("dn", 0.0, 0.3, "no trend")], "no trend in the tested range"),
    # a significant rise and an equivalence: contradicted
    ([collapse_row("dn", 0.0, 0.3, "no trend"), collapse_row("so", 0.02, 0.01, "gains grow")],
     "contradicted"),
    ([collapse_row("so", 0.02, 0.01, "gains grow")], "contradicted"),
    ([collapse_row("so", -0.02, 0.2, "inconclusive")], "inconclusive"),
    ([], "not tested")])
def test_claim_2_reads_an_equivalence_as_no_trend_in_the_tested_range(collapse, verdict):
    frame = pd.DataFrame(collapse, columns=list(collapse_row("so", 0, 0, "")))
    out = table(result_of(collapse=frame))
    assert out.loc["2", "verdict"] == verdict


@pytest.mark.parametrize("primary, ending", [
    (None, "; Holm over the strict-orthogonality arms)"),
    ({"arms": ["so"], "declared": "2026-01-05"},
     "; the primary contrast, tested alone: declared on 2026-01-05)"),
    ({"arms": ["so"], "declared": None},
     "; the primary contrast, tested alone: named at report time, not pre-registered)"),
    ({"arms": ["so"]}, "; the primary contrast, tested alone: named at report time, "
                       "not pre-registered)")])
def test_claim_2_states_whether_its_primary_contrast_was_declared(primary, ending):
    out = table(result_of(primary=primary))
    assert out.loc["2", "statement"] == ("[DN] the gains of strict orthogonality shrink as "
                                         "capacity grows (slope of the gain per doubling of "
                                         "parameters < 0" + ending)


@pytest.mark.parametrize("check, caveat", [
    ({"flagged": True, "checked": True, "message": "m"}, "capacity confounded with under-training"),
    ({"flagged": False, "checked": False,
      "message": "convergence not checked (no baseline at a second budget)"},
     "convergence not checked (no baseline at a second budget)"),
    ({"flagged": False, "checked": False}, ""),
    ({"flagged": False, "message": "m"}, "")])
def test_claim_2_carries_the_under_training_caveat(check, caveat):
    out = table(result_of(undertraining=check))
    assert out.loc["2", "caveat"] == caveat
    assert (out.drop(index="2")["caveat"] == "").all()


def test_without_a_tested_regime_no_reach_is_named():
    for regime in (None, {"other": 1}):
        assert (table(result_of(regime=regime))["reach"] == "").all()
    result = result_of()
    del result["regime"]
    assert (table(result)["reach"] == "").all()
