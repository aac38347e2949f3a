"""The report at a glance: plain sentences under the verdict table, generated from the results,
and what the design cannot show (analysis.design), printed at the top.

`headline_sentences(result)`: the largest gain in final test accuracy with its interval; claim 2's
deciding row (the declared primary contrast, else the most significant strict arm's row: the one
the verdict table prints) as the drop of the gain over the capacity
range with its interval, against the equivalence bound and the drop the design could detect; and
what would decide claim 2 while it is inconclusive and the design cannot detect a drop of the
claimed size (`deciding_sentence`, the hook where a sample-size plan adds its answer).
"""
from __future__ import annotations

from typing import Dict, List, Optional

from korth_bench.analysis.design import design_limits
from korth_bench.analysis.entries import precisions
from korth_bench.analysis.verdicts import claim2_rows
from korth_bench.report.formatting import cell_name, gain_text, number_text, params_text


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


def headline_sentences(result: dict) -> List[str]:
    """The sentences under the verdict table, each standing alone; none for what is missing."""
    return [s for s in (largest_gain_sentence(result), trend_sentence(result),
                        deciding_sentence(result)) if s]


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


def _trend_row(result: dict) -> Optional[dict]:
    """Claim 2's deciding row: the declared primary contrast, else the strict arm's row with the
    smallest Holm p (verdicts.claim2_rows; the verdict table's 'most significant row')."""
    rows = claim2_rows(result["collapse"])
    return None if rows.empty else rows.sort_values(["p_holm", "p_value"]).iloc[0].to_dict()


def trend_sentence(result: dict) -> Optional[str]:
    row = _trend_row(result)
    if row is None:
        return ("Claim 2 (gains of strict orthogonality shrink as capacity grows): no slope "
                "could be tested (it needs a baseline and 3 capacities with gains).")
    verdict = _claim_verdict(result) or row["verdict"]
    gains = result["gains"]
    family = gains[(gains["dataset"] == row["dataset"]) & (gains["model"] == row["model"])]
    span = (f"{params_text(family['num_params'].min())} to "
            f"{params_text(family['num_params'].max())} parameters")
    confidence = round(100 * (1 - row["alpha"]))
    bound, detectable = 100 * row["claimed_drop"], 100 * row["detectable_drop"]
    reach = "" if verdict != "inconclusive" else (
        ", so a drop of the claimed size lies below what it can detect" if detectable > bound
        else ", enough to detect a drop of the claimed size")
    return (f"Claim 2 (gains of strict orthogonality shrink as capacity grows): "
            f"{verdict}. {_row_name(row)} on {row['model']} ({row['dataset']}): the gain drops by "
            f"{number_text(100 * row['drop'], 2, True)} pp "
            f"[{number_text(100 * row['drop_low'], 2, True)}, "
            f"{number_text(100 * row['drop_high'], 2, True)}] ({confidence} % interval) from "
            f"{span}, against an equivalence bound of ±{number_text(bound)} pp; this design "
            f"detects a drop of {number_text(detectable)} pp with 80 % power{reach}.")


def _row_name(row: dict) -> str:
    if row["test_family"] == "primary":
        return f"Its primary contrast, the {row['regularizer'].removeprefix('primary: ')},"
    return f"Its most significant row, {row['regularizer']}"


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
    row = _trend_row(result)
    if (row is None or _claim_verdict(result) != "inconclusive"
            or not row["detectable_drop"] > row["claimed_drop"]):
        return None
    return (f"What would decide claim 2: a design whose detectable drop is below the "
            f"±{number_text(100 * row['claimed_drop'])} pp bound; it shrinks about as one over "
            f"the square root of the seeds per cell, and with more cells spread over the "
            f"capacity range.")
