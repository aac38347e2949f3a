"""Error rates of the report's verdicts on simulated sweeps with planted truths (issue 11).

Each scenario draws ``--sweeps`` (default 1,000) sweeps from ``korth_bench.simulation`` (the
design of ``resnet_capacity_cifar10.yaml``: ResNet depth 20/56/110 x width 1/4 with their true
parameter counts, 3 seeds, run-to-run sd 0.2 pt, unless the scenario says otherwise) and runs the
project's own analysis on them: ``collapse_test`` with per-sweep Holm and ``collapse_verdict``,
``select_entries``/``entry_runs``, ``capacity_efficiency``, ``compare_runs``. It prints one
markdown table: the rate measured, its binomial standard error, the issue's bound and whether
the rate meets it. ``tests/test_analysis.py`` holds the same scenarios at 200 sweeps. No timings.

Run: ``.venv/bin/python benchmarks/bench_verdicts.py [--sweeps 1000] [--seed 0]``
"""
from __future__ import annotations

import argparse
import math
from typing import Callable, Dict, List

import numpy as np
import pandas as pd

from korth_bench.analysis import claims, simulation as sim, stats

REGULARIZERS = ("cs", "dn", "dn_relaxed", "ocnn", "so", "srip")  # six, as the capacity space


def collapse_rate(verdict: str, **scenario) -> Callable[[np.random.Generator, int], float]:
    def measure(rng, sweeps):
        table = sim.collapse_verdicts([sim.capacity_sweep(rng, **scenario) for _ in range(sweeps)])
        return float((table["verdict"] == verdict).mean())
    return measure


def family_wise_error(rng, sweeps):
    table = sim.collapse_verdicts([sim.capacity_sweep(rng, regularizers=REGULARIZERS,
                                                      cell_offset_sd=0.002)
                                   for _ in range(sweeps)])
    false = table["verdict"].isin(["gains shrink with capacity", "gains grow"])
    return float(false.groupby(table["sweep"]).any().mean())


def slope_coverage(rng, sweeps):
    table = sim.collapse_verdicts([sim.capacity_sweep(rng, cell_offset_sd=0.002)
                                   for _ in range(sweeps)])
    return float(((table["low"] <= 0) & (0 <= table["high"])).mean())


def efficiency_match(baseline_gap, lift=0.0):
    def measure(rng, sweeps):
        trials = pd.concat([sim.efficiency_sweep(rng, baseline_gap=baseline_gap, lift=lift)
                            .assign(dataset=f"sweep{i}") for i in range(sweeps)], ignore_index=True)
        return float((claims.capacity_efficiency(trials)["status"] == "matched").mean())
    return measure


def null_gain_points(run_sd):
    def measure(rng, sweeps):
        gains, _ = sim.entry_gains([sim.selection_sweep(rng, run_sd=run_sd) for _ in range(sweeps)])
        return float(100 * gains.mean())
    return measure


def chosen_share(setting, **scenario):
    def measure(rng, sweeps):
        _, entries = sim.entry_gains([sim.selection_sweep(rng, **scenario) for _ in range(sweeps)])
        choices = [s == setting for choice in entries.loc[entries["regularizer"] == "so",
                                                          "seed_settings"]
                   for s in choice.values()]
        return float(np.mean(choices))
    return measure


def sampled_lr_gain(rng, sweeps):
    gains, _ = sim.entry_gains([sim.sampled_lr_sweep(rng) for _ in range(sweeps)])
    return float(100 * gains.mean())


def gain_t_p_rejects(rng, sweeps):
    rows = [stats.compare_runs(pd.Series(0.905 + rng.normal(0, 0.002, 3)),
                                  pd.Series(0.9 + rng.normal(0, 0.002, 3)), rng)
            for _ in range(sweeps)]
    return float(np.mean([row["p_value"] <= 0.05 for row in rows]))


# (item, scenario, measure, kind, bound): kind 'max' (rate <= bound), 'min' (rate >= bound) or
# 'abs' (|mean gain in pt| <= bound).
SCENARIOS: List[tuple] = [
    (1, "true drop = D (1 pp): 'no trend'", collapse_rate("no trend", drop=0.01), "max", 0.03),
    (1, "true drop = D, 0.2-pt cell offsets: 'no trend'",
     collapse_rate("no trend", drop=0.01, cell_offset_sd=0.002), "max", 0.03),
    (1, "no slope, no offsets: 'no trend'", collapse_rate("no trend"), "min", 0.85),
    (1, "2 cells x 3 seeds, 1.5-pt drop: 'no trend'",
     collapse_rate("no trend", cells=((20, 1), (56, 1)), drop=0.015), "max", 0.0),
    (2, "6 regularizers, 0.2-pt cell offsets, no slope: family-wise error", family_wise_error,
     "max", 0.07),
    (2, "0.2-pt cell offsets, no slope: slope interval coverage", slope_coverage, "min", 0.95),
    (2, "true 1-pt drop, no offsets: 'gains shrink'",
     collapse_rate("gains shrink with capacity", drop=0.01), "min", 0.60),
    (3, "zero-effect regularizer, baseline gap 0 pt: matched", efficiency_match(0.0), "max", 0.05),
    (3, "zero-effect, gap 0.5 pt: matched", efficiency_match(0.005), "max", 0.05),
    (3, "zero-effect, gap 1 pt: matched", efficiency_match(0.01), "max", 0.05),
    (3, "zero-effect, gap 2 pt: matched", efficiency_match(0.02), "max", 0.05),
    (3, "lifts ResNet-20 to ResNet-56 (1.8 pt): matched", efficiency_match(0.018, 0.018), "min",
     0.60),
    (4, "lr sampled per trial, null: mean gain (pt)", sampled_lr_gain, "abs", 0.1),
    (5, "K = 10 null settings, run sd 0.2: mean gain (pt)", null_gain_points(0.002), "abs", 0.03),
    (5, "K = 10 null settings, run sd 0.4: mean gain (pt)", null_gain_points(0.004), "abs", 0.03),
    (5, "one setting 1 pt better: its share of cross-fitted choices",
     chosen_share("coefficient=0.1", better=0.01), "min", 0.85),
    (6, "setting diverging on half its seeds: its share of choices",
     chosen_share("coefficient=0.01", settings=2, diverging=1, diverging_lift=0.003,
                  seeds=(0, 1, 2, 3)), "max", 0.10),
    (7, "0.5-pt gain, 3 seeds: t p <= 0.05 (= interval excludes 0)", gain_t_p_rejects, "min",
     0.0),
]


def main(argv=None) -> List[Dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = []
    for index, (item, scenario, measure, kind, bound) in enumerate(SCENARIOS):
        rng = np.random.default_rng([args.seed, index])
        value = measure(rng, args.sweeps)
        if kind == "abs":
            met, error = abs(value) <= bound, math.nan
        else:
            error = math.sqrt(max(value * (1 - value), 0.0) / args.sweeps)
            met = value <= bound if kind == "max" else value >= bound
        rows.append({"item": item, "scenario": scenario, "sweeps": args.sweeps, "value": value,
                     "binomial_se": error, "bound": f"{'<=' if kind != 'min' else '>='} {bound}",
                     "met": "yes" if met else "no"})
        print(f"| {item} | {scenario} | {args.sweeps} | {value:.4f} | {error:.4f} | "
              f"{rows[-1]['bound']} | {rows[-1]['met']} |", flush=True)
    return rows


if __name__ == "__main__":
    print("| item | scenario | sweeps | value | binomial se | bound | met |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    main()
