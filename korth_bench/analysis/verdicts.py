"""One verdict per claim of the papers (docs/claims.md, claims 1-4), from the tests the
analysis already ran: the summary a reader sees first.

Each claim is a set of rows (cells, arms, metrics, measures), each an estimated effect with a
two-sided p-value; the claim states the sign it expects. The p-values are Holm-adjusted over the
claim's own rows, then (``decide``):
- 'supported': some row is significant at alpha with the claimed sign and none with the opposite;
- 'contradicted': some row is significant with the opposite sign and none with the claimed one,
  or, for the capacity trend, some row is an equivalence ('no trend' in the collapse table:
  the drop's interval inside the claimed bound) and none is significant with the claimed sign;
- 'inconclusive' otherwise (nothing significant, or significant rows of both signs);
- 'not tested' when the claim has no rows (nothing in the tables could test it).
For the capacity trend an equivalence with no significant row either way reads 'no trend in the
tested range' (NO_TREND), never 'contradicted': it holds for the cells, data and budget tested,
which the row's ``reach`` names (analysis.regime.tested_regime).
Claim 1 is decided at matched strength only (analysis.strength: dn and so settings of one cell,
arm and sweep with the same coefficient or epoch-0 penalty ratios within the match factor);
without a matched pair it is 'inconclusive (strengths not matched)', and the comparison of the
selected entries stays beside it as the row '1, tuned settings', verdict 'descriptive'.
Beside every verdict: the seeds per compared side its rows rest on (seeds_min, seeds_max) and
the smallest p the distribution-free check of its rows can reach (exact_floor: 0.25 for a
sign flip on 3 seeds; NaN where the rows have no such check), the tested range (``reach``), and
caveats in words (claim 2: 'capacity confounded with under-training' where analysis.convergence
flags it, 'convergence not checked ...' where the tables have no reference runs).
Pure functions of the ``analyze`` result; effects are in the rows' own units (accuracies as
fractions, orthogonality and similarity measures as measured).
"""
from __future__ import annotations

import math
from typing import Dict, Sequence

import numpy as np
import pandas as pd

from korth_bench.analysis.collapse import PRIMARY_AXIS
from korth_bench.analysis.entries import ATTACK_PREFIXES, CELL
from korth_bench.analysis.stats import compare_runs, holm_adjust

STRICT = ("so", "dso", "mc", "srip", "ocnn", "dn")
"""Regularizers that push kernels toward strict orthogonality (claims 2-4)."""
ORTHOGONAL = STRICT + ("dn_relaxed",)
ORTHO_COLUMNS = ("ortho_gram_residual_mean", "ortho_diag_deviation_mean", "ortho_cos_mean",
                 "ortho_cos_max")
"""The trial-level near-orthogonality measures (mean over layers; lower is more orthogonal)."""
SIMILARITY = "fm_sim_mean"
COLUMNS = ["claim", "statement", "verdict", "n_rows", "n_supporting", "n_opposing",
           "n_equivalent", "label", "unit", "effect", "low", "high", "p_holm", "seeds_min",
           "seeds_max", "exact_floor", "reach", "caveat"]
ROW_COLUMNS = ["label", "effect", "low", "high", "p_value", "seeds", "min_attainable_p"]
"""A claim's rows: the estimate, its two-sided p, the seeds per compared side it rests on and
the smallest p its distribution-free check can reach (NaN: no such check)."""
UNDERTRAINED = "capacity confounded with under-training"
NOT_MATCHED = "inconclusive (strengths not matched)"
NOT_TESTED = "not tested"
NO_TREND = "no trend in the tested range"


def significant_signs(effect: np.ndarray, p_holm: np.ndarray, claimed_sign: int,
                      alpha: float) -> tuple:
    """(supporting, opposing): the rows significant at alpha with the claimed sign, and with the
    opposite one (boolean arrays; a NaN p is not significant)."""
    significant = np.nan_to_num(np.asarray(p_holm, float), nan=1.0) <= alpha
    sign = np.sign(np.asarray(effect, float))
    return significant & (sign == claimed_sign), significant & (sign == -claimed_sign)


def decide(effect: np.ndarray, p_holm: np.ndarray, claimed_sign: int, alpha: float,
           equivalent: np.ndarray) -> str:
    """The claim's verdict from its rows (module docstring); arrays of one shape."""
    supporting, opposing = (mask.any() for mask in
                            significant_signs(effect, p_holm, claimed_sign, alpha))
    if supporting and not opposing:
        return "supported"
    if not supporting and (opposing or np.asarray(equivalent, bool).any()):
        return "contradicted"
    return "inconclusive"


def base_name(label: str) -> str:
    """'dn [penalty_reduction=sum]' -> 'dn' (an arm label's regularizer)."""
    return label.split(" [", 1)[0]


def arm_suffix(label: str) -> str:
    """'dn [penalty_reduction=sum]' -> ' [penalty_reduction=sum]'; '' without an arm."""
    return label[len(base_name(label)):]


def contrasts(runs: pd.DataFrame, pairs: Sequence[tuple], columns: Sequence[str],
              rng: np.random.Generator) -> pd.DataFrame:
    """treated minus control per cell and column (compare_runs: paired by seed where seeds
    match). ``pairs``: (treated label, control label). One row per measured comparison
    (ROW_COLUMNS)."""
    rows = []
    for key, cell in runs.groupby(list(CELL), dropna=False):
        by_name = {name: part.set_index("seed") for name, part in cell.groupby("regularizer")}
        for treated, control in pairs:
            if treated not in by_name or control not in by_name:
                continue
            for column in (c for c in columns if c in cell):
                found = compare_runs(by_name[treated][column], by_name[control][column], rng)
                if found["n_treated"] and found["n_control"] and math.isfinite(found["p_value"]):
                    rows.append({"label": f"{treated} - {control}, {key[1]}-{key[2]}x{key[3]}, "
                                          f"{column}", "effect": found["mean"],
                                 "low": found["low"], "high": found["high"],
                                 "p_value": found["p_value"], "seeds": seeds_per_side(found),
                                 "min_attainable_p": found["min_attainable_p"]})
    return pd.DataFrame(rows, columns=ROW_COLUMNS)


def seeds_per_side(found) -> int:
    """The seeds a compare_runs result rests on: matched pairs, else the smaller side."""
    return int(found["n"] if found["pairing"] == "paired"
               else min(found["n_treated"], found["n_control"]))


def _claim(claim: str, statement: str, rows: pd.DataFrame, claimed_sign: int, alpha: float,
           unit: str, equivalent: Sequence[bool] = (), caveat: str = "",
           reach: str = "") -> Dict[str, object]:
    """One summary row: Holm over ``rows`` (ROW_COLUMNS; or their own p_holm when ``rows`` has
    that column: a table whose family is already adjusted), the verdict, the row that decides it
    (the most significant one), the seeds the rows rest on and the floor of their exact check."""
    floors = rows["min_attainable_p"].dropna() if len(rows) else pd.Series(dtype=float)
    out = {"claim": claim, "statement": statement, "unit": unit, "n_rows": len(rows),
           "n_supporting": 0, "n_opposing": 0, "n_equivalent": int(np.sum(equivalent)),
           "verdict": NOT_TESTED, "label": None, "effect": math.nan, "low": math.nan,
           "high": math.nan, "p_holm": math.nan,
           "seeds_min": int(rows["seeds"].min()) if len(rows) else 0,
           "seeds_max": int(rows["seeds"].max()) if len(rows) else 0,
           "exact_floor": float(floors.min()) if len(floors) else math.nan, "caveat": caveat,
           "reach": reach if len(rows) else ""}
    if not len(rows):
        return out
    p_holm = (rows["p_holm"].to_numpy(float) if "p_holm" in rows
              else holm_adjust(rows["p_value"].to_numpy(float)))
    effect = rows["effect"].to_numpy(float)
    supporting, opposing = significant_signs(effect, p_holm, claimed_sign, alpha)
    equivalent = np.asarray(equivalent, bool) if len(equivalent) else np.zeros(len(rows), bool)
    best = int(np.argmin(np.where(np.isnan(p_holm), np.inf, p_holm)))
    out.update(n_supporting=int(supporting.sum()), n_opposing=int(opposing.sum()),
               verdict=decide(effect, p_holm, claimed_sign, alpha, equivalent),
               label=rows["label"].iloc[best], effect=effect[best],
               low=rows["low"].iloc[best], high=rows["high"].iloc[best], p_holm=p_holm[best])
    return out


def _rows(frame: pd.DataFrame, labels: pd.Series, effect: str) -> pd.DataFrame:
    """The claim rows (ROW_COLUMNS) of an analysis table: compare_runs rows (gains,
    strict_vs_relaxed, matched_strength) or collapse rows (seeds: units per cell, no exact
    check)."""
    if "n_units" in frame:
        seeds = frame["n_units"] // frame["n_cells"].clip(lower=1)
        floor = pd.Series(math.nan, index=frame.index)
    else:
        seeds = frame["n"].where(frame["pairing"] == "paired",
                                 frame[["n_treated", "n_control"]].min(axis=1))
        floor = frame["min_attainable_p"]
    return pd.DataFrame({"label": labels, "effect": frame[effect], "low": frame["low"],
                         "high": frame["high"], "p_value": frame["p_value"],
                         "seeds": seeds.astype(float), "min_attainable_p": floor},
                        columns=ROW_COLUMNS)


def _cell_text(frame: pd.DataFrame) -> pd.Series:
    return frame["model"] + "-" + frame["depth"].astype(str) + "x" + frame["width"].astype(str)


def claim2_rows(collapse: pd.DataFrame) -> pd.DataFrame:
    """The collapse rows that decide claim 2: the declared primary contrast when there is one,
    else the per-arm family of the strict arms; on the primary axis, tested. Either way each row
    keeps the collapse table's own p_holm (one family, stated there)."""
    if collapse.empty:
        return collapse
    decides = "primary" if (collapse["test_family"] == "primary").any() else "claim 2"
    return collapse[(collapse["axis"] == PRIMARY_AXIS) & collapse["p_value"].notna()
                    & (collapse["test_family"] == decides)]


def claim_verdicts(result: dict, rng: np.random.Generator) -> pd.DataFrame:
    """The summary of the ``analyze`` result ``result``: one row per claim (COLUMNS)."""
    alpha, baseline = result["settings"]["alpha"], result["settings"]["baseline"]
    runs = result["runs"]
    names = sorted(set(runs["regularizer"]))
    same_arm = lambda a, b: [(x, y) for x in names for y in names  # noqa: E731
                             if base_name(x) == a and base_name(y) == b
                             and arm_suffix(x) == arm_suffix(y)]
    versus_baseline = lambda group: [(x, baseline) for x in names  # noqa: E731
                                     if base_name(x) in group]
    trend = claim2_rows(result["collapse"])
    primary = result["settings"].get("primary")
    relaxed = result["strict_vs_relaxed"]
    relaxed = relaxed[relaxed["status"] == "measured"]
    matched = result["matched_strength"]
    matched_rows = _rows(matched, matched["treated"] + " at " + matched["treated_coefficient"].map(
        "{:g}".format) + " - " + matched["control"] + " at " + matched["control_coefficient"].map(
        "{:g}".format) + " (" + matched["matched_by"] + "), " + _cell_text(matched) + ", "
        + matched["measure"], "mean")
    tuned = _claim("1, tuned settings", "[DN] the same comparison between the selected entries "
                   "(validation-tuned coefficients, strengths not matched): descriptive only",
                   contrasts(runs, same_arm("dn", "so"), ORTHO_COLUMNS, rng), -1, alpha,
                   "measure")
    tuned["verdict"] = "descriptive"
    gains = result["gains"]
    robust = gains[(gains["status"] == "measured")
                   & gains["regularizer"].map(base_name).isin(ORTHOGONAL)
                   & (gains["metric"].eq("corruption_acc_mean")
                      | gains["metric"].str.startswith(ATTACK_PREFIXES))]
    at_matched = _claim("1", "[DN] dn reaches better near-orthogonality than so at matched "
                        "strength (lower layer-mean Gram residual, diagonal deviation and "
                        "cosines; same coefficient or epoch-0 penalty ratio within "
                        f"{result['settings']['match_factor']:g}x)", matched_rows, -1, alpha, "measure")
    if not len(matched) and same_arm("dn", "so"):
        at_matched["verdict"] = NOT_MATCHED
    if tuned["n_rows"] == 0:
        tuned["verdict"] = NOT_TESTED
    reach = (result.get("regime") or {}).get("text", "")
    check = result["undertraining"]
    trend_claim = _claim(
        "2", "[DN] the gains of strict orthogonality shrink as capacity grows "
        "(slope of the gain per doubling of parameters < 0" + (
            "; the primary contrast, tested alone: " + (
                f"declared on {primary['declared']})" if primary.get("declared")
                else "named at report time, not pre-registered)") if primary
            else "; Holm over the strict-orthogonality arms)"),
        _rows(trend, trend["regularizer"] + ", " + trend["model"] + ", " + trend["metric"],
              "slope").assign(p_holm=trend["p_holm"]), -1, alpha, "pp per doubling",
        (trend["verdict"] == "no trend").to_numpy(),
        caveat=UNDERTRAINED if check["flagged"] else
        "" if check.get("checked", True) else check.get("message", ""), reach=reach)
    if trend_claim["verdict"] == "contradicted" and trend_claim["n_opposing"] == 0:
        trend_claim["verdict"] = NO_TREND
    if at_matched["n_rows"]:
        at_matched["reach"] = reach
    return pd.DataFrame([
        at_matched, tuned,
        trend_claim,
        _claim("2, relaxed", "[DN] a relaxed penalty recovers the gains at the largest capacity "
               "(dn_relaxed minus dn > 0)",
               _rows(relaxed, "dn_relaxed - dn" + relaxed["arm"].fillna("").map(
                   lambda a: f" [{a}]" if a else "") + ", " + _cell_text(relaxed), "mean"),
               +1, alpha, "pp", reach=reach),
        _claim("3", "[DN] orthogonality-regularized models are more robust (gain in corruption "
               "and attack accuracy > 0)",
               _rows(robust, robust["regularizer"] + f" - {baseline}, " + _cell_text(robust)
                     + ", " + robust["metric"], "mean"), +1, alpha, "pp", reach=reach),
        _claim("4, cs", "[CS] minimizing the Convolutional Similarity lowers feature-map "
               "similarity (cs minus none in fm_sim_mean < 0)",
               contrasts(runs, versus_baseline(("cs",)), (SIMILARITY,), rng), -1, alpha,
               "measure", reach=reach),
        _claim("4, orthogonality", "[CS] kernel orthogonality does not necessarily reduce "
               "feature-map similarity (an orthogonality regularizer minus none in fm_sim_mean "
               "> 0)", contrasts(runs, versus_baseline(ORTHOGONAL), (SIMILARITY,), rng), +1,
               alpha, "measure", reach=reach),
    ], columns=COLUMNS)
