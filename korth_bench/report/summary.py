"""The verdict summary at the top of the report: one line per claim (analysis.verdicts) and the
rule behind each verdict, one sentence each, the same in Markdown, HTML and JSON. Verdicts print
as the analysis names them; claim 2's cell adds the range it holds for (the verdicts frame's
``reach``), and its deciding effect is the drop of the gain over the tested range in accuracy
points (the collapse row), not the slope per doubling."""
from __future__ import annotations

import math
from typing import List, Optional

import pandas as pd

from korth_bench.report.formatting import (
    bound_text, interval_text, number_text, p_text, points_text)

SCALES = {"pp": 100.0, "pp per doubling": 100.0, "pt": 100.0, "pt per doubling": 100.0,
          "measure": 1.0}
"""Effects are stored as fractions (accuracies) or raw measures; point units print times 100."""
UNITS = {"pp": "pt", "pp per doubling": "pt per doubling", "measure": ""}
"""How a verdicts row's unit prints: accuracy points (pt), as the READMEs write them."""


def unit_text(unit: str) -> str:
    """' pt' / ' pt per doubling' / '' (a raw measure) for a verdicts row's unit."""
    shown = UNITS.get(unit, unit)
    return f" {shown}" if shown else ""


def summary_rules(settings: dict) -> List[str]:
    """How a claim's verdict is decided, one sentence per verdict."""
    alpha = settings["alpha"]
    bound = bound_text(settings["claimed_drop"])
    return [
        f"Rule, 'supported': at least one of the claim's rows (its cells, arms and metrics) is "
        f"significant at alpha {alpha} after Holm's adjustment over that claim's rows, with the "
        f"sign the claim states, and no row is significant with the opposite sign.",
        "Rule, 'contradicted': a row is significant with the opposite sign and none with the "
        "claimed one.",
        f"Rule, 'no trend in the tested range' (claim 2): the interval of the drop over the "
        f"capacity range lies inside {bound} ('no trend' in the collapse table) and no row is "
        f"significant either way: an equivalence, which holds for the cells, data and training "
        f"budget tested (the range printed beside it), not beyond them.",
        "Rule, 'inconclusive': every other case, in particular no significant row, or significant "
        "rows of both signs: the design could not tell, which is not evidence of no effect.",
        "Rule, 'not tested': nothing in these results could test the claim (no rows); it gets "
        "no sentence above the table.",
    ]


def effect_text(row: dict, trend: Optional[dict] = None, span: Optional[str] = None) -> str:
    """'so - none, resnet-8x2, fm_sim_mean: -0.0280 [-0.0322, -0.0238], p Holm <0.001' for a
    verdicts row; for claim 2 with its deciding collapse row ``trend``, the drop over the range
    in points: 'primary: mean of ..., test_acc: drop 0.00 pt [-0.40, +0.39] over 75 k-1.07 M
    parameters (14x), bound ±1 pt, p 0.989 (tested alone)'."""
    if row["label"] is None or not math.isfinite(row["effect"]):
        return "no rows to test"
    if trend is not None and math.isfinite(trend.get("drop", math.nan)):
        capacity = f"over {span}" if span else "over the capacity range"
        tested = ("tested alone" if trend["test_family"] == "primary"
                  else f"Holm over {int(trend['family_size'])}")
        return (f"{row['label']}: drop {points_text(trend['drop'])} pt "
                f"{interval_text(trend['drop_low'], trend['drop_high'])} {capacity}, bound "
                f"{bound_text(trend['claimed_drop'])}, p {p_text(trend['p_holm'])} ({tested})")
    scale = SCALES.get(row["unit"], 1.0)
    digits = 2 if scale > 1 else 4
    return (f"{row['label']}: {number_text(scale * row['effect'], digits, True)}"
            f"{unit_text(row['unit'])} "
            f"[{number_text(scale * row['low'], digits, True)}, "
            f"{number_text(scale * row['high'], digits, True)}], p Holm {p_text(row['p_holm'])}")


def verdict_text(row: dict, alpha: float, with_reach: bool = False) -> str:
    """'supported; 3 seeds per side; the exact sign-flip/permutation check cannot reach alpha
    0.05 at that n (smallest p 0.250); capacity confounded with under-training' for a verdicts
    row: the verdict (with its reach after a colon when ``with_reach`` and the row has one), the
    seeds it rests on, the distribution-free check's reach, the caveat."""
    reach = row.get("reach")
    verdict = row["verdict"]
    if with_reach and isinstance(reach, str) and reach:
        verdict += f": {reach}"
    parts = [verdict]
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


def verdict_table(verdicts: pd.DataFrame, alpha: float, trend: Optional[dict] = None,
                  span: Optional[str] = None) -> pd.DataFrame:
    """The summary as report text: claim, verdict (verdict_text; claim 2's with its reach),
    rows tested, the deciding row (claim 2's: the drop over ``span`` of its collapse row
    ``trend``, when given)."""
    return pd.DataFrame([
        {"claim": row["claim"], "statement": row["statement"],
         "verdict": verdict_text(row, alpha, with_reach=row["claim"] == "2"),
         "rows (significant for / against)":
             f"{row['n_rows']} ({row['n_supporting']} / {row['n_opposing']}"
             + (f", {row['n_equivalent']} equivalent" if row["n_equivalent"] else "") + ")",
         "most significant row": effect_text(row, trend if row["claim"] == "2" else None, span)}
        for row in verdicts.to_dict("records")])
