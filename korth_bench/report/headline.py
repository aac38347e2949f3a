"""The report at a glance: the answer, one bold sentence per decided claim above the verdict
table (`claim_sentences`), plain sentences under it, all generated from the results, and what
the design cannot show (analysis.design), printed at the top.

`claim_sentences(result)`: per claim whose verdict is not 'not tested' (nor 'descriptive', nor a
claim without rows), the verdict as the analysis names it (never renamed) and how many of its
rows are significant either way; claim 2's (first when a primary contrast is declared) is the
drop of its deciding row's gain over the tested range of parameters in accuracy points, with its
interval against the equivalence bound, followed by the regime it was tested in
(analysis.regime).

`headline_sentences(result)`: the largest gain in final test accuracy with its interval; claim 2's
test (its deciding row: the declared primary contrast, else the most significant strict arm's
row, the one the verdict table prints; how it is tested, the drop with its interval against the
bound and the drop the design could detect); the analysis's sentence on whether claim 2's gains
look like an aid to optimisation or like regularization; and what would decide claim 2 while it
is inconclusive and the design cannot detect a drop of the claimed size (`deciding_sentence`, the
hook where a sample-size plan adds its answer).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

from korth_bench.analysis.design import design_limits
from korth_bench.analysis.entries import precisions
from korth_bench.analysis.verdicts import claim2_rows
from korth_bench.report.formatting import (
    arms_text, bound_text, cell_name, gain_text, interval_text, p_text, params_range, points_text)

UNDECIDED = ("not tested", "descriptive")
"""Verdicts that get no sentence above the table: the table lists them."""


def report_limits(result: dict) -> List[str]:
    """What this result set cannot show: no baseline, or one seed per cell (as designed), and
    completed trials that ran at more than one precision."""
    grid = result["grid"]
    limits = design_limits(set(grid["regularizer"]), int(grid["n_seeds_expected"].max()),
                           result["settings"]["baseline"])
    return limits + ([mixed] if (mixed := precision_limit(precisions(result["completed"]))) else [])


def precision_limit(counts: Dict[str, int]) -> Optional[str]:
    """The sentence for completed trials at more than one resolved precision ({precision: n}):
    a gain or a slope may then be a precision difference; None for one precision."""
    if len(counts) <= 1:
        return None
    mix = ", ".join(f"{name} {n}" for name, n in counts.items())
    return (f"completed trials ran at more than one precision ({mix} trials, precision_resolved): "
            "a gain or a trend may be a precision difference; pin one precision (bf16 only where "
            "the hardware runs it natively) and report each precision on its own")


def claim_sentences(result: dict) -> List[Tuple[str, str]]:
    """The answer, above the verdict table: (sentence, what follows it) per decided claim, the
    sentence printed in bold; claims 'not tested' (or without rows) get none."""
    sentences = []
    for row in result["verdicts"].to_dict("records"):
        if row["verdict"] in UNDECIDED:
            continue
        if row["claim"] == "2" and row["n_rows"]:
            found = claim2_sentence(result, row)
            if found:
                # the question a declared primary contrast was registered for comes first
                first = bool(result["settings"].get("primary"))
                sentences.insert(0 if first else len(sentences), found)
                continue
        sentences.append((claim_sentence(row, result["settings"]["alpha"]), ""))
    return sentences


def claim_gist(statement: str) -> str:
    """'[DN] dn reaches ... at matched strength (lower layer-mean ...)' -> 'dn reaches ... at
    matched strength': a verdicts row's statement without its source and its details."""
    text = (statement.split("] ", 1)[1] if statement.startswith("[") and "] " in statement
            else statement)
    return text.split(" (", 1)[0]


def claim_sentence(row: dict, alpha: float) -> str:
    """'Claim 1 (dn reaches better near-orthogonality than so at matched strength): inconclusive:
    of its 20 rows, 3 are significant for the claim and 10 against (Holm, alpha 0.05).' The
    deciding row with its numbers is in the table beneath."""
    if not row["n_rows"]:  # e.g. 'inconclusive (strengths not matched)': nothing to count
        return f"Claim {row['claim']} ({claim_gist(row['statement'])}): {row['verdict']}."
    if row["n_rows"] == 1:
        count = ("its one row is " + ("significant for the claim" if row["n_supporting"] else
                                      "significant against it" if row["n_opposing"] else
                                      "not significant"))
    else:
        count = (f"of its {row['n_rows']} rows, {row['n_supporting']} are significant for the "
                 f"claim and {row['n_opposing']} against")
    return (f"Claim {row['claim']} ({claim_gist(row['statement'])}): {row['verdict']}: {count} "
            f"(Holm, alpha {alpha}).")


def trend_row(result: dict, verdict: Optional[dict] = None) -> Optional[dict]:
    """Claim 2's deciding row: the verdicts row's own (its label names it), else the declared
    primary contrast, else the strict arm's row with the smallest Holm p (verdicts.claim2_rows;
    the verdict table's 'most significant row')."""
    rows = claim2_rows(result["collapse"])
    if rows.empty:
        return None
    if verdict is None:
        verdicts = result["verdicts"]
        found = verdicts[verdicts["claim"] == "2"]
        verdict = found.iloc[0].to_dict() if len(found) else None
    if verdict is not None and verdict.get("label"):
        labels = rows["regularizer"] + ", " + rows["model"] + ", " + rows["metric"]
        named = rows[labels == verdict["label"]]
        if len(named):
            return named.iloc[0].to_dict()
    return rows.sort_values(["p_holm", "p_value"]).iloc[0].to_dict()


_trend_row = trend_row  # the name earlier callers used


def contrast_name(row: dict, result: dict) -> str:
    """'the primary contrast (so, dn, srip [sum])' or 'so [sum] (the most significant strict
    arm, Holm over 3)': what claim 2's deciding row is, in words."""
    primary = result["settings"].get("primary") or {}
    if row["test_family"] == "primary":
        return f"the primary contrast ({arms_text(primary.get('arms') or [])})"
    return (f"{arms_text([row['regularizer']])} (the most significant strict arm, Holm over "
            f"{int(row['family_size'])})")


def tested_span(result: dict, row: dict) -> str:
    """'75 k-1.07 M parameters (14x)': the regime's parameter range (analysis.regime), else the
    measured gains' cells of the row's family."""
    regime = result.get("regime") or {}
    low, high = regime.get("params_min", math.nan), regime.get("params_max", math.nan)
    if not (low and high and math.isfinite(low) and math.isfinite(high)):
        gains = result["gains"]
        family = gains[(gains["dataset"] == row["dataset"]) & (gains["model"] == row["model"])
                       & (gains["status"] == "measured")]
        low, high = family["num_params"].min(), family["num_params"].max()
    return params_range(float(low), float(high))


def claim2_sentence(result: dict, verdict: dict) -> Optional[Tuple[str, str]]:
    """Claim 2's answer: the drop over the tested range with its interval, against the bound,
    and the regime after it."""
    row = trend_row(result, verdict)
    if row is None or not math.isfinite(row.get("drop", math.nan)):
        return None
    bound = row["claimed_drop"]
    inside = -bound < row["drop_low"] and row["drop_high"] < bound
    confidence = round(100 * (1 - row["alpha"]))
    sentence = (f"Claim 2: {verdict['verdict']}: the gain of {contrast_name(row, result)} drops "
                f"by {points_text(row['drop'])} pt "
                f"{interval_text(row['drop_low'], row['drop_high'])}"
                f" ({confidence} %) over {tested_span(result, row)}, "
                f"{'inside' if inside else 'not inside'} the {bound_text(bound)} bound.")
    regime = (result.get("regime") or {}).get("text")
    return sentence, (f"Tested regime: {regime}." if regime else "")


def headline_sentences(result: dict) -> List[str]:
    """The sentences under the verdict table, each standing alone; none for what is missing."""
    return [s for s in (largest_gain_sentence(result), trend_sentence(result),
                        result.get("decomposition_sentence"), deciding_sentence(result)) if s]


def largest_gain_sentence(result: dict) -> Optional[str]:
    gains = result["gains"]
    measured = gains[(gains["metric"] == "test_acc") & (gains["status"] == "measured")]
    if measured.empty:
        return None
    best = measured.loc[measured["mean"].idxmax()].to_dict()
    confidence = round(100 * result["settings"]["confidence"])
    covers = "includes" if best["low"] <= 0 <= best["high"] else "excludes"
    return (f"Largest gain in final test accuracy: {best['regularizer']} at {cell_name(best)}, "
            f"{gain_text(best, 'test_acc')} ({confidence} % t interval); the largest of "
            f"{len(measured)} gains, picked for being largest, so its interval ({covers} 0) is "
            f"not adjusted for that choice.")


def trend_sentence(result: dict) -> Optional[str]:
    """Claim 2's test in one sentence: which row decides it, how it is tested, the drop with
    its interval, and the drop the design could detect."""
    row = trend_row(result)
    if row is None:
        return ("Claim 2 (gains of strict orthogonality shrink as capacity grows): no slope "
                "could be tested (it needs a baseline and 3 capacities with gains).")
    verdict = _claim_verdict(result) or row["verdict"]
    confidence = round(100 * (1 - row["alpha"]))
    bound, detectable = row["claimed_drop"], row["detectable_drop"]
    reach = "" if verdict != "inconclusive" else (
        ", so a drop of the claimed size lies below what it can detect" if detectable > bound
        else ", enough to detect a drop of the claimed size")
    how = ("tested alone" if row["test_family"] == "primary"
           else f"Holm over {int(row['family_size'])}")
    cells = ("the cells fixed" if (result["settings"].get("primary") or {}).get("cells") == "fixed"
             and row["test_family"] == "primary" else "the cells random")
    return (f"Claim 2's test: {contrast_name(row, result)} on {row['model']} ({row['dataset']}), "
            f"the slope of its cell means on log2 parameters, {cells}, {how} at alpha "
            f"{row['alpha']:g} (p {p_text(row['p_holm'])}); the drop over the range "
            f"{points_text(row['drop'])} pt {interval_text(row['drop_low'], row['drop_high'])} "
            f"({confidence} % interval) against the equivalence bound {bound_text(bound)}; this "
            f"design detects a drop of {points_text(detectable, signed=False)} pt with 80 % "
            f"power{reach}.")


def _claim_verdict(result: dict) -> Optional[str]:
    verdicts = result["verdicts"]
    verdict = verdicts.loc[verdicts["claim"] == "2", "verdict"]
    return verdict.iloc[0] if len(verdict) else None


def deciding_sentence(result: dict) -> Optional[str]:
    """What would decide claim 2. THE PLAN HOOK: where ``result`` carries a sample-size plan
    (``result['plan_sentence']``, a sentence from ``korth-bench plan``), it is printed here;
    otherwise the generic rule below."""
    if result.get("plan_sentence"):
        return result["plan_sentence"]
    row = trend_row(result)
    if (row is None or _claim_verdict(result) != "inconclusive"
            or not row["detectable_drop"] > row["claimed_drop"]):
        return None
    return (f"What would decide claim 2: a design whose detectable drop is below the "
            f"{bound_text(row['claimed_drop'])} bound; it shrinks about as one over "
            f"the square root of the seeds per cell, and with more cells spread over the "
            f"capacity range.")
