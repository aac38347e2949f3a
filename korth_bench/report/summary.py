"""The verdict summary at the top of the report: one line per claim (analysis.verdicts) and the
rule behind the three verdicts, one sentence each, the same in Markdown, HTML and JSON."""
from __future__ import annotations

import math
from typing import List

import pandas as pd

from korth_bench.report.formatting import number_text, p_text

SCALES = {"pp": 100.0, "pp per doubling": 100.0, "measure": 1.0}
"""Effects are stored as fractions (accuracies) or raw measures; pp units print times 100."""


def summary_rules(settings: dict) -> List[str]:
    """How a claim's verdict is decided, one sentence per verdict."""
    alpha = settings["alpha"]
    return [
        f"Rule, 'supported': at least one of the claim's rows (its cells, arms and metrics) is "
        f"significant at alpha {alpha} after Holm's adjustment over that claim's rows, with the "
        f"sign the claim states, and no row is significant with the opposite sign.",
        "Rule, 'contradicted': a row is significant with the opposite sign and none with the "
        "claimed one; for the capacity trend (claim 2) also an equivalence, the drop's interval "
        f"inside ±{100 * settings['claimed_drop']:.1f} pp ('no trend' in the collapse table), "
        "with no row significant for the claim.",
        "Rule, 'inconclusive': every other case, in particular no significant row, or significant "
        "rows of both signs: the design could not tell, which is not evidence of no effect.",
    ]


def effect_text(row: dict) -> str:
    """'-0.82 pp per doubling [-1.40, -0.24], p Holm 0.003' for a verdicts row."""
    if row["label"] is None or not math.isfinite(row["effect"]):
        return "no rows to test"
    scale = SCALES[row["unit"]]
    unit = "" if row["unit"] == "measure" else f" {row['unit']}"
    digits = 2 if scale > 1 else 4
    return (f"{row['label']}: {number_text(scale * row['effect'], digits, True)}{unit} "
            f"[{number_text(scale * row['low'], digits, True)}, "
            f"{number_text(scale * row['high'], digits, True)}], p Holm {p_text(row['p_holm'])}")


def verdict_text(row: dict, alpha: float) -> str:
    """'supported; 3 seeds per side; the exact sign-flip/permutation check cannot reach alpha
    0.05 at that n (smallest p 0.250); capacity confounded with under-training' for a verdicts
    row: the verdict, the seeds it rests on, the distribution-free check's reach, the caveat."""
    parts = [row["verdict"]]
    if row["n_rows"]:
        low, high = int(row["seeds_min"]), int(row["seeds_max"])
        parts.append(f"{low if low == high else f'{low}-{high}'} seeds per side")
    floor = row.get("exact_floor", math.nan)
    if floor is not None and math.isfinite(floor) and floor > alpha:
        parts.append(f"the exact sign-flip/permutation check cannot reach alpha {alpha} at that n "
                     f"(smallest p {p_text(floor)}); the t p rests on the normal model")
    if row.get("caveat"):
        parts.append(row["caveat"])
    return "; ".join(parts)


def verdict_table(verdicts: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """The summary as report text: claim, verdict (verdict_text), rows tested, the deciding row."""
    return pd.DataFrame([
        {"claim": row["claim"], "statement": row["statement"],
         "verdict": verdict_text(row, alpha),
         "rows (significant for / against)":
             f"{row['n_rows']} ({row['n_supporting']} / {row['n_opposing']}"
             + (f", {row['n_equivalent']} equivalent" if row["n_equivalent"] else "") + ")",
         "most significant row": effect_text(row)}
        for row in verdicts.to_dict("records")])
