"""Error rates of the report's verdicts on simulated sweeps with planted truths (issues 11, 20).

Each scenario draws ``--sweeps`` (default 1,000) sweeps from ``korth_bench.simulation`` (the
design of ``resnet_capacity_cifar10.yaml``: ResNet depth 20/56/110 x width 1/4 with their true
parameter counts, 3 seeds, run-to-run sd 0.2 pt, unless the scenario says otherwise) and runs the
project's own analysis on them: ``collapse_test`` with per-sweep Holm and ``collapse_verdict``,
``select_entries``/``entry_runs``, ``capacity_efficiency``, ``compare_runs``. It prints one
markdown table: the rate measured, its binomial standard error, the issue's bound and whether
the rate meets it; issue 20's scenarios (items 20.1, 20.2, 20.6) print the rate of the rule
before that issue beside it. ``tests/test_analysis.py`` holds the same scenarios at 100-200
sweeps. No timings.

Run: ``.venv/bin/python benchmarks/bench_verdicts.py [--sweeps 1000] [--seed 0] [--items 20.1,20.2]``
"""
from __future__ import annotations

import argparse
import math
from typing import Callable, Dict, List

import numpy as np
import pandas as pd

from korth_bench.analysis import claims, convergence, simulation as sim, stats

REGULARIZERS = ("cs", "dn", "dn_relaxed", "ocnn", "so", "srip")  # six, as the capacity space
SIGNIFICANT = ("gains shrink with capacity", "gains grow")
EIGHT_ARMS = ("cs", "dn", "dn_relaxed", "dso", "mc", "ocnn", "so", "srip")
STUDY_DEPTHS = (8, 14, 20, 26, 32, 44)  # the CPU capacity study's six cells


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


PRIMARY_ARMS = ("so", "dn", "srip")  # issue 20's example declaration


_PRIMARY_TABLES: Dict[tuple, pd.DataFrame] = {}


def primary_rate(verdicts, family, drop=0.0):
    """Issue 20, item 4: how often the primary contrast (family 'primary') or any row of the
    per-arm claim 2 family (family 'claim 2', Holm) reads one of ``verdicts``, 3 strict arms
    sharing one baseline; ``drop`` None plants the primary's own detectable drop. The two
    families of one drop are read from the same simulated sweeps (drawn once)."""
    def measure(rng, sweeps):
        planted = drop
        if planted is None:
            x = np.log2(list(sim.RESNET_PARAMS.values()))
            planted = stats.detectable_drop(x, sim.RUN_SD * math.sqrt(1 + 1 / 3), 3, 0.05)
        if (planted, sweeps) not in _PRIMARY_TABLES:
            _PRIMARY_TABLES[planted, sweeps] = sim.collapse_verdicts(
                [sim.capacity_sweep(rng, regularizers=PRIMARY_ARMS, drop=planted)
                 for _ in range(sweeps)], primary=PRIMARY_ARMS)
        table = _PRIMARY_TABLES[planted, sweeps]
        rows = table[table["test_family"] == family]
        return float(rows["verdict"].isin(verdicts).groupby(rows["sweep"]).any().mean())
    return measure


def extra_baseline_interval(what, seed_sd=0.0):
    """Issue 20, item 5: 3 arm seeds, 6 baseline seeds, true gain 0.5 pt, run sd 0.2 pt, a seed
    effect of sd ``seed_sd`` shared by a seed's runs: the coverage of the pooled-baseline gain
    interval at 95 % ('coverage'), or its mean width over the paired-only interval's on the
    same data ('width ratio')."""
    def measure(rng, sweeps):
        covered, width, paired = [], [], []
        for _ in range(sweeps):
            effect = rng.normal(0, seed_sd, 6)
            control = 0.9 + effect + rng.normal(0, sim.RUN_SD, 6)
            treated = 0.905 + effect[:3] + rng.normal(0, sim.RUN_SD, 3)
            found = stats.pooled_baseline_interval(treated, control[:3], control[3:])
            alone = stats.t_interval(treated - control[:3])
            covered.append(found["low"] <= 0.005 <= found["high"])
            width.append(found["high"] - found["low"])
            paired.append(alone["high"] - alone["low"])
        return float(np.mean(covered) if what == "coverage" else np.mean(width) / np.mean(paired))
    return measure


# (item, scenario, measure, kind, bound): kind 'max' (rate <= bound), 'min' (rate >= bound),
# 'abs' (|mean gain in pt| <= bound), 'ratio' (value < bound) or 'level' (a test whose exact
# level is the bound: rate <= bound + 3 binomial standard errors). Items 20.x: issue 20.
def matched_strength_rate(verdict, **scenario):
    """Claim 1's verdict rate (before: the tuned entries decide; after: matched strength)."""
    def measure(rng, sweeps):
        table = sim.claim1_verdicts([sim.strength_sweep(rng, **scenario) for _ in range(sweeps)],
                                    rng)
        return float((table["tuned"] == verdict).mean()), float((table["matched"] == verdict).mean())
    return measure


def efficiency_anywhere(**scenario):
    """A match in any pair or arm of a sweep (before: unadjusted; after: Holm over them all)."""
    def measure(rng, sweeps):
        sweeps_ = [sim.efficiency_sweep(rng, depths=STUDY_DEPTHS, **scenario)
                   for _ in range(sweeps)]
        return tuple(float((table["status"] == "matched").groupby(table["sweep"]).any().mean())
                     for table in (sim.efficiency_statuses(sweeps_, family_wise=False),
                                   sim.efficiency_statuses(sweeps_)))
    return measure


def under_training_flagged(last_two):
    """Claim 2 flagged 'capacity confounded with under-training' (before: never)."""
    def measure(rng, sweeps):
        runs = [sim.convergence_sweep(rng, last_two=last_two) for _ in range(sweeps)]
        rename = lambda frame, i: frame.assign(trial_id=frame["trial_id"] + f"-{i}")  # noqa: E731
        epochs = pd.concat([rename(r["epochs"], i) for i, r in enumerate(runs)])
        trials = pd.concat([rename(r["trials"], i).assign(dataset=f"sweep{i}")
                            for i, r in enumerate(runs)])
        table = convergence.convergence_by_cell(epochs, trials)
        flags = [convergence.undertraining_check(part, 0.01)["flagged"]
                 for _, part in table.groupby("dataset")]
        return 0.0, float(np.mean(flags))
    return measure


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
    ("20.4", "primary contrast of so, dn, srip, no drop: slope significant (alone)",
     primary_rate(SIGNIFICANT, "primary"), "level", 0.05),
    ("20.3", "the same sweeps: any per-arm row of claim 2's family (Holm over 3) significant",
     primary_rate(SIGNIFICANT, "claim 2"), "level", 0.05),
    ("20.4", "drop = the primary's detectable drop (0.60 pt): primary 'gains shrink'",
     primary_rate(("gains shrink with capacity",), "primary", None), "min", 0.77),
    ("20.4", "the same sweeps: any per-arm row 'gains shrink' after Holm (for comparison)",
     primary_rate(("gains shrink with capacity",), "claim 2", None), "min", 0.0),
    ("20.5", "3 arm seeds + 6 baseline seeds: gain interval coverage",
     extra_baseline_interval("coverage"), "min", 0.93),
    ("20.5", "3 arm seeds + 6 baseline seeds: width / paired-only width",
     extra_baseline_interval("width ratio"), "ratio", 1.0),
    ("20.5", "same, seed effect sd 0.14 pt shared by a seed's runs: coverage",
     extra_baseline_interval("coverage", 0.0014), "min", 0.93),
    ("20.5", "same, seed effect sd 0.14 pt: width / paired-only width",
     extra_baseline_interval("width ratio", 0.0014), "ratio", 1.0),
    ("20.1", "dn = so in form, tuned at 1e-2 vs 1e-3, 3 seeds: claim 1 'supported'",
     matched_strength_rate("supported"), "max", 0.05),
    ("20.1", "dn 0.3 more orthogonal at matched strength, 5 seeds: 'supported'",
     matched_strength_rate("supported", dn_effect=-0.3, seeds=range(5)), "min", 0.80),
    ("20.1", "grids disjoint, ratios 3x apart: 'inconclusive (strengths not matched)'",
     matched_strength_rate("inconclusive (strengths not matched)", grids=((1e-2,), (1e-3,)),
                           reg_loss=(20.0, 60.0)), "min", 1.0),
    ("20.2", "8 zero-effect arms, 6 cells x 3 seeds, baseline +0.5 pt (= M) per cell, "
     "run sd 0.4 pt: a match anywhere",
     efficiency_anywhere(baseline_gap=0.005, run_sd=0.004, regularizers=EIGHT_ARMS), "max",
     0.05),
    ("20.2", "8 arms lift ResNet-8 to M below ResNet-14 (baseline +1 pt per cell), 3 seeds: "
     "a match anywhere", efficiency_anywhere(baseline_gap=0.01, lift=0.005,
                                             regularizers=EIGHT_ARMS), "max", 0.05),
    ("20.2", "one arm lifts ResNet-8 to ResNet-14 (+1.5 pt per cell), 5 seeds: matched",
     efficiency_anywhere(baseline_gap=0.015, lift=0.015, seeds=range(5)), "min", 0.50),
    ("20.6", "every cell's baseline 3 pt short of done: flagged", under_training_flagged(
        (0.03,) * 6), "max", 0.05),
    ("20.6", "the largest cell 2 pt further from done: flagged", under_training_flagged(
        (0.03,) * 5 + (0.05,)), "min", 0.95),
    ("20.6", "the capacity study's last-two-epoch gains (3.0-4.8 pt): flagged",
     under_training_flagged((0.036, 0.031, 0.042, 0.030, 0.043, 0.048)), "min", 0.95),
]


def main(argv=None) -> List[Dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--items", default="",
                        help="comma-separated items to run, e.g. 20.4,20.5 (default all)")
    args = parser.parse_args(argv)
    chosen = {item.strip() for item in args.items.split(",") if item.strip()}
    rows = []
    for index, (item, scenario, measure, kind, bound) in enumerate(SCENARIOS):
        if chosen and str(item) not in chosen:
            continue
        rng = np.random.default_rng([args.seed, index])
        value = measure(rng, args.sweeps)
        before, value = value if isinstance(value, tuple) else (math.nan, value)
        if kind == "abs":
            met, error = abs(value) <= bound, math.nan
        elif kind == "ratio":  # a ratio of means, below the bound
            met, error = value < bound, math.nan
        elif kind == "level":  # a test's exact level: the bound plus 3 binomial standard errors
            error = math.sqrt(max(value * (1 - value), 0.0) / args.sweeps)
            met = value <= sim.bound_with_error(bound, args.sweeps)
        else:
            error = math.sqrt(max(value * (1 - value), 0.0) / args.sweeps)
            met = value <= bound if kind == "max" else value >= bound
        rows.append({"item": item, "scenario": scenario, "sweeps": args.sweeps,
                     "before": before, "value": value, "binomial_se": error,
                     "bound": f"{'>=' if kind == 'min' else '<' if kind == 'ratio' else '<='} {bound}"
                     + (f" + 3 se ({sim.bound_with_error(bound, args.sweeps):.4f})"
                        if kind == "level" else ""),
                     "met": "yes" if met else "no"})
        before_text = "n/a" if math.isnan(before) else f"{before:.4f}"
        print(f"| {item} | {scenario} | {args.sweeps} | {before_text} | {value:.4f} | "
              f"{error:.4f} | {rows[-1]['bound']} | {rows[-1]['met']} |", flush=True)
    return rows


if __name__ == "__main__":
    print("| item | scenario | sweeps | rate before issue 20 | value (after) | binomial se | bound "
          "| met |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    main()
