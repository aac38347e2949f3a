"""What a design lets the analysis say, in sentences printed at the dry run and at the top of the
report: without the baseline regularizer there are no gains (every gain is a regularizer minus
the baseline in the same cell, so the collapse test, the robustness gains and the capacity
efficiency have nothing to work on); with one seed per cell there is no seed spread, so no
interval, no p and no verdict other than 'inconclusive'."""
from __future__ import annotations

from typing import Iterable, List

from korth_bench.analysis.entries import BASELINE


def design_limits(regularizers: Iterable[str], max_seeds: int,
                  baseline: str = BASELINE) -> List[str]:
    """One sentence per thing the design cannot deliver; empty when it can deliver them all.

    Args:
        regularizers: the regularizers the design trains.
        max_seeds: the most seeds any cell and regularizer gets.
        baseline: the regularizer gains are measured against.
    """
    limits = []
    if baseline not in set(regularizers):
        limits.append(f"no '{baseline}' (the baseline) in this design: the report can show no "
                      "gains, hence no gain-vs-capacity test (claim 2), no robustness gains and "
                      f"no capacity efficiency; add regularizer '{baseline}' to get them")
    if max_seeds <= 1:
        limits.append("one seed per cell: the report can show no seed spread, hence no "
                      "intervals, no p-values and no verdict other than 'inconclusive'; give "
                      "each cell 3 or more seeds")
    return limits
