"""``korth-bench plan``'s power against seeded simulations of the report's own collapse test
(issue 20, item 7).

For designs at the spread measured on ``results/cifar10_cpu_capacity`` (so, dn, srip under sum
pooled against the baseline: arms sd 0.69 pt, baseline sd 0.57 pt, same-seed correlation 0.5;
cell offsets 0.57 pt where a scenario keeps them) and the six cells of the collapse study
(ResNet-8/14/20 x width 1/2), each scenario draws ``--sweeps`` studies with
``analysis.power.simulate_design`` and decides each with ``stats.slope_t_test`` (random cells) or
``stats.fixed_cells_slope`` (fixed cells) and ``collapse.collapse_verdict``. A drop planted at the
design's detectable size (80 % power) must read "gains shrink" 80 +- 3 % of the time; a zero drop
must read "no trend" at the rate ``design_power`` plans. One markdown table; no timings.

Run: ``.venv/bin/python benchmarks/bench_plan.py [--sweeps 2000] [--seed 0]``
"""
from __future__ import annotations

import argparse
import math
from typing import List

import numpy as np

from korth_bench.analysis import power

CELLS = np.log2([75_290, 172_506, 269_722, 298_026, 685_994, 1_073_962])  # resnet-8,14,20 x 1; x 2
MEASURED = power.Spread(("so", "dn", "srip"), 0.00689, 0.00575, 0.0000198, 0.0064, 12, 0.00573,
                        4, 0.044, 6, 3.0)
SCENARIOS = [  # (cells, arm seeds, baseline seeds, cell offsets kept)
    ("random", 4, 4, False), ("random", 14, 14, False), ("random", 8, 16, True),
    ("fixed", 4, 4, True), ("fixed", 8, 8, True), ("fixed", 8, 16, True),
]


def main(argv=None) -> List[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    rows = []
    for cells, arm_seeds, base_seeds, offsets in SCENARIOS:
        truth = MEASURED if offsets else power.Spread(**{**MEASURED.__dict__, "cell_sd": 0.0})
        planned = power.design_power(CELLS, truth, arm_seeds, base_seeds, 0.01, cells=cells)
        for planted, verdict, plan_rate in (
                (planned["detectable_drop"], "gains shrink with capacity", 0.8),
                (0.0, "no trend", planned["equivalence"])):
            rates = power.simulate_design(CELLS, truth, arm_seeds, base_seeds, planted, 0.01, 0.05,
                                          args.sweeps, rng, cells=cells)
            se = math.sqrt(max(plan_rate * (1 - plan_rate), 1e-12) / args.sweeps)
            rows.append({"cells": cells, "offsets": "0.57 pt" if offsets else "none",
                         "arm seeds": arm_seeds, "baseline seeds": base_seeds,
                         "planted drop (pt)": round(planted * 100, 2), "verdict": verdict,
                         "sweeps": args.sweeps, "planned": round(plan_rate, 3),
                         "simulated": rates[verdict],
                         "within 3 se": abs(rates[verdict] - plan_rate) <= 3 * se})
    header = list(rows[0])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in header) + " |")
    return rows


if __name__ == "__main__":
    main()
