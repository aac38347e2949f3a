"""Simulated sweeps with planted truths: the trials tables the verdict tests and
benchmarks/bench_verdicts.py feed to the analysis, so that each verdict's error rate is measured
on the project's own functions end to end.

The default design is `search_spaces/resnet_capacity_cifar10.yaml`: CIFAR ResNet depth 20/56/110
x width 1/4 (their true parameter counts), 3 seeds, a run-to-run sd of 0.2 accuracy points.
Accuracies are fractions. Pure functions of an explicit numpy Generator.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from korth_bench.analysis.claims import efficiency_matches, efficiency_tests
from korth_bench.analysis.collapse import PRIMARY_AXIS, collapse_test, collapse_verdict
from korth_bench.analysis.entries import entry_runs, select_entries
from korth_bench.analysis.stats import holm_adjust
from korth_bench.analysis.strength import matched_strength
from korth_bench.analysis.verdicts import NOT_MATCHED, ORTHO_COLUMNS, contrasts, decide

RESNET_PARAMS: Dict[Tuple[int, int], int] = {
    (20, 1): 269_722, (56, 1): 853_018, (110, 1): 1_727_962,
    (20, 4): 4_286_026, (56, 4): 13_586_506, (110, 4): 27_537_226}
RUN_SD = 0.002  # run-to-run spread of one accuracy: 0.2 points


def trial_row(depth: int, width: int, regularizer: str, seed: int, test_acc: float,
              val_acc: float, status: str = "completed", **config) -> dict:
    """One simulated ``trials`` row (the columns the analysis reads)."""
    trial_id = "-".join(str(v) for v in (depth, width, regularizer, seed, *config.values()))
    return {"sweep": "simulated", "trial_id": trial_id, "status": status, "dataset": "cifar10",
            "model": "resnet", "depth": depth, "width": width,
            "num_params": RESNET_PARAMS.get((depth, width), 17_000 * depth * width ** 2),
            "regularizer": regularizer, "seed": seed, "coefficient": 0.0 if regularizer == "none"
            else 0.01, "epochs": 10, "test_acc": test_acc, "val_acc": val_acc,
            "best_test_acc": test_acc, "device": "simulated", **config}


def capacity_sweep(rng: np.random.Generator, *, gain: float = 0.01, drop: float = 0.0,
                   cell_offset_sd: float = 0.0, run_sd: float = RUN_SD,
                   seeds: Sequence[int] = (0, 1, 2), cells: Sequence[Tuple[int, int]] =
                   tuple(RESNET_PARAMS), regularizers: Sequence[str] = ("so",),
                   baseline_per_doubling: float = 0.0,
                   baseline_seeds: Optional[Sequence[int]] = None) -> pd.DataFrame:
    """A sweep of ``none`` and ``regularizers`` over ``cells`` x ``seeds`` (the baseline over
    ``baseline_seeds`` when given: a space whose ``none`` case has its own seed list).

    Gain of each regularizer at log2 parameter count x: ``gain - drop * (x - x_min) / range``
    (a drop of ``drop`` from the smallest to the largest cell) plus a per-cell offset
    N(0, cell_offset_sd) of that regularizer; the baseline's accuracy is 0.9 +
    baseline_per_doubling * (x - x_min); every run adds N(0, run_sd) to test and to val
    accuracy independently.
    """
    x = {cell: math.log2(RESNET_PARAMS.get(cell, 17_000 * cell[0] * cell[1] ** 2))
         for cell in cells}
    low, span = min(x.values()), max(x.values()) - min(x.values())
    rows = []
    for cell in cells:
        base = 0.9 + baseline_per_doubling * (x[cell] - low)
        for regularizer in ("none", *regularizers):
            planted = 0.0 if regularizer == "none" else (
                gain - drop * (x[cell] - low) / span + rng.normal(0, cell_offset_sd))
            runs = seeds if regularizer != "none" or baseline_seeds is None else baseline_seeds
            for seed in runs:
                rows.append(trial_row(*cell, regularizer, seed,
                                      base + planted + rng.normal(0, run_sd),
                                      base + planted + rng.normal(0, run_sd)))
    return pd.DataFrame(rows)


def rate(flags: Sequence[bool]) -> Tuple[float, float]:
    """Observed rate of a list of outcomes and its binomial standard error."""
    flags = np.asarray(flags, dtype=float)
    p = float(flags.mean())
    return p, math.sqrt(max(p * (1 - p), 1e-12) / flags.size)


def bound_with_error(bound: float, sweeps: int) -> float:
    """A rate bound plus 3 binomial standard errors at the bound for ``sweeps`` simulations."""
    return bound + 3 * math.sqrt(bound * (1 - bound) / sweeps)


def floor_with_error(floor: float, sweeps: int) -> float:
    """A rate floor minus 3 binomial standard errors at the floor."""
    return floor - 3 * math.sqrt(floor * (1 - floor) / sweeps)


def collapse_verdicts(sweeps: Sequence[pd.DataFrame], alpha: float = 0.05,
                      claimed_drop: float = 0.01, family: Optional[Sequence[str]] = None,
                      primary: Sequence[str] = (), primary_cells: str = "random"
                      ) -> pd.DataFrame:
    """The collapse table's primary rows of every simulated sweep, each sweep on its own.

    The sweeps are analysed in one ``collapse_test`` call (each as its own data set,
    for speed; ``family``, ``primary`` and ``primary_cells`` as there), then Holm and
    ``collapse_verdict`` are
    applied within each sweep and test family, as a report of that sweep alone does. Returns
    the primary-axis rows with ``sweep`` (index into ``sweeps``), ``p_holm`` and ``verdict``
    per sweep.
    """

    trials = pd.concat([t.assign(dataset=f"sweep{i}") for i, t in enumerate(sweeps)],
                       ignore_index=True)
    table = collapse_test(trials, alpha=alpha, claimed_drop=claimed_drop, family=family,
                          primary=primary, primary_cells=primary_cells)
    table = table[table["axis"] == PRIMARY_AXIS].copy()
    table["sweep"] = table["dataset"].str.slice(5).astype(int)
    parts = []
    for _, part in table.groupby(["sweep", "test_family"]):
        part = part.copy()
        part["p_holm"] = holm_adjust(part["p_value"].to_numpy(float))
        part["verdict"] = collapse_verdict(
            part["slope"].to_numpy(float), part["p_holm"].to_numpy(float),
            part["drop_low"].to_numpy(float), part["drop_high"].to_numpy(float),
            part["min_attainable_p"].fillna(1.0).to_numpy(float),
            np.full(len(part), alpha / len(part)), claimed_drop, alpha)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def selection_sweep(rng: np.random.Generator, *, settings: int = 10, better: float = 0.0,
                    run_sd: float = RUN_SD, seeds: Sequence[int] = (0, 1, 2),
                    diverging: int = 0, diverging_lift: float = 0.0,
                    cell: Tuple[int, int] = (20, 1)) -> pd.DataFrame:
    """One cell: ``none`` (one setting) and ``so`` with ``settings`` coefficients, all of true
    accuracy 0.9 except coefficient index 0, which is ``better`` higher. The last ``diverging``
    settings diverge on a random half of the seeds (test/val at chance, status 'diverged') and
    are ``diverging_lift`` better where they survive."""
    rows = [trial_row(*cell, "none", seed, 0.9 + rng.normal(0, run_sd),
                      0.9 + rng.normal(0, run_sd)) for seed in seeds]
    for k in range(settings):
        is_diverging = k >= settings - diverging
        lost = set(rng.choice(list(seeds), len(seeds) // 2, replace=False)) if is_diverging else set()
        truth = 0.9 + (better if k == 0 else 0.0) + (diverging_lift if is_diverging else 0.0)
        for seed in seeds:
            row = trial_row(*cell, "so", seed, truth + rng.normal(0, run_sd),
                            truth + rng.normal(0, run_sd), coefficient=10.0 ** -(k + 1))
            if seed in lost:
                row.update(status="diverged", test_acc=0.1, val_acc=0.1)
            rows.append(row)
    return pd.DataFrame(rows)


def sampled_lr_sweep(rng: np.random.Generator, *, trials_per_regularizer: int = 12,
                     run_sd: float = RUN_SD, cell: Tuple[int, int] = (20, 1)) -> pd.DataFrame:
    """optuna_coefficient_asha.yaml's shape: every trial of ``none`` and ``so`` samples its own
    lr (log-uniform 0.01-0.3; accuracy peaks at lr 0.1, 1 point lower per half decade away), no
    regularizer effect, seeds 0, 1, 2 in turn."""
    rows = []
    for regularizer in ("none", "so"):
        for i in range(trials_per_regularizer):
            lr = 10 ** rng.uniform(-2, math.log10(0.3))
            truth = 0.9 - 0.04 * (math.log10(lr) + 1) ** 2
            rows.append(trial_row(*cell, regularizer, i % 3, truth + rng.normal(0, run_sd),
                                  truth + rng.normal(0, run_sd), lr=lr))
    return pd.DataFrame(rows)


def entry_gains(sweeps: Sequence[pd.DataFrame], regularizer: str = "so"
                ) -> Tuple[np.ndarray, pd.DataFrame]:
    """Per sweep, the mean test-accuracy gain of ``regularizer``'s selected entry over ``none``
    (the analysis's own selection and per-seed entry runs), and the entries of every sweep
    (column ``sweep``). The sweeps go through one call, each as its own data set."""

    trials = pd.concat([t.assign(dataset=f"sweep{i}") for i, t in enumerate(sweeps)],
                       ignore_index=True)
    entries = select_entries(trials)
    runs = entry_runs(trials, entries)
    means = runs.groupby(["dataset", "regularizer"])["test_acc"].mean().unstack()
    gains = (means[regularizer] - means["none"]).to_numpy()
    order = np.argsort([int(d[5:]) for d in means.index])
    return gains[order], entries.assign(sweep=entries["dataset"].str.slice(5).astype(int))


def efficiency_sweep(rng: np.random.Generator, *, baseline_gap: float, lift: float = 0.0,
                     run_sd: float = RUN_SD, seeds: Sequence[int] = (0, 1, 2),
                     depths: Sequence[int] = (20, 56),
                     regularizers: Sequence[str] = ("so",)) -> pd.DataFrame:
    """CIFAR ResNets of ``depths`` (width 1), the baseline ``baseline_gap`` better at each
    depth than at the one before; every regularizer adds ``lift`` at the smallest depth only
    when more than two depths are given (a lift to the next baseline's accuracy is then
    ``lift = baseline_gap``), at every depth otherwise (the two-cell design of issue 11)."""
    rows = []
    for step, depth in enumerate(depths):
        base = 0.9 + baseline_gap * step
        for regularizer in ("none", *regularizers):
            lifted = regularizer != "none" and (step == 0 or len(depths) == 2)
            truth = base + (lift if lifted else 0.0)
            rows += [trial_row(depth, 1, regularizer, seed, truth + rng.normal(0, run_sd),
                               truth + rng.normal(0, run_sd)) for seed in seeds]
    return pd.DataFrame(rows)


def efficiency_statuses(sweeps: Sequence[pd.DataFrame], alpha: float = 0.05,
                        family_wise: bool = True) -> pd.DataFrame:
    """capacity_efficiency's table for every simulated sweep, each sweep its own Holm family
    (as a report of that sweep alone), in one efficiency_tests call; column ``sweep``.
    ``family_wise=False``: every pair at alpha unadjusted (the rule before issue 20)."""
    trials = pd.concat([t.assign(dataset=f"sweep{i}") for i, t in enumerate(sweeps)],
                       ignore_index=True)
    tests = efficiency_tests(trials)
    tests["p_holm"] = tests.groupby("dataset")["p_iut"].transform(
        lambda p: holm_adjust(p.to_numpy(float)) if family_wise else p)
    table = efficiency_matches(tests, alpha)
    return table.assign(sweep=table["dataset"].str.slice(5).astype(int))


def strength_sweep(rng: np.random.Generator, *, dn_effect: float = 0.0,
                   grids: Tuple[Sequence[float], Sequence[float]] = ((1e-4, 1e-3, 1e-2),
                                                                     (1e-5, 1e-4, 1e-3)),
                   reg_loss: Tuple[float, float] = (20.0, 20.0), seeds: Sequence[int] = (0, 1, 2),
                   measure_sd: float = 0.1) -> Dict[str, pd.DataFrame]:
    """Claim 1's planted truth, one cell (ResNet-20): dn and so over coefficient grids (``grids``:
    dn's, so's, as the CPU pilot's), their layer-mean Gram residual ``2 - log10(coefficient)``
    (a stronger penalty, a lower residual) plus ``dn_effect`` for dn and N(0, measure_sd) per
    run; validation prefers dn's largest and so's largest coefficient by 1 pt. The epoch-0
    penalty ratio is coefficient x reg_loss / 2 (``reg_loss``: dn's, so's). Returns the trials
    and epochs tables."""
    rows, epochs = [], []
    for seed in seeds:
        rows.append(trial_row(20, 1, "none", seed, 0.9 + rng.normal(0, RUN_SD),
                              0.9 + rng.normal(0, RUN_SD), ortho_gram_residual_mean=4.0))
    for name, grid, loss, effect in (("dn", grids[0], reg_loss[0], dn_effect),
                                     ("so", grids[1], reg_loss[1], 0.0)):
        for coefficient in grid:
            tuned = 0.01 if coefficient == max(grid) else 0.0
            for seed in seeds:
                row = trial_row(20, 1, name, seed, 0.9 + rng.normal(0, RUN_SD),
                                0.9 + tuned + rng.normal(0, RUN_SD), coefficient=coefficient,
                                ortho_gram_residual_mean=2 - math.log10(coefficient) + effect
                                + rng.normal(0, measure_sd))
                row["trial_id"] += f"-{coefficient:g}"
                rows.append(row)
                epochs.append({"trial_id": row["trial_id"], "epoch": 0, "train_loss": 2.0,
                               "reg_loss": loss, "coefficient": coefficient,
                               "test_acc": row["test_acc"]})
    return {"trials": pd.DataFrame(rows), "epochs": pd.DataFrame(epochs)}


def claim1_verdicts(sweeps: Sequence[Dict[str, pd.DataFrame]], rng: np.random.Generator,
                    alpha: float = 0.05) -> pd.DataFrame:
    """Claim 1's verdict in every simulated sweep (each its own data set, one analysis call):
    'matched' from strength.matched_strength (the rule), 'tuned' from the selected entries
    (the comparison that decided claim 1 before issue 20). One row per sweep."""
    trials = pd.concat([s["trials"].assign(dataset=f"sweep{i}") for i, s in enumerate(sweeps)],
                       ignore_index=True)
    epochs = pd.concat([s["epochs"] for s in sweeps], ignore_index=True)
    runs = entry_runs(trials, select_entries(trials))
    rows = []
    by_sweep = {"matched": dict(list(matched_strength(trials, epochs, rng, ORTHO_COLUMNS)
                                     .groupby("dataset"))),
                "tuned": dict(list(runs.groupby("dataset")))}
    for i in range(len(sweeps)):
        row = {"sweep": i}
        matched = by_sweep["matched"].get(f"sweep{i}")
        row["matched"] = NOT_MATCHED if matched is None else decide(
            matched["mean"].to_numpy(float), holm_adjust(matched["p_value"].to_numpy(float)),
            -1, alpha, np.zeros(len(matched), bool))
        tuned = contrasts(by_sweep["tuned"][f"sweep{i}"], [("dn", "so")], ORTHO_COLUMNS, rng)
        row["tuned"] = decide(tuned["effect"].to_numpy(float),
                              holm_adjust(tuned["p_value"].to_numpy(float)), -1, alpha,
                              np.zeros(len(tuned), bool))
        rows.append(row)
    return pd.DataFrame(rows)


def convergence_sweep(rng: np.random.Generator, *, doubling: Sequence[float],
                      run_sd: float = 0.005, seeds: Sequence[int] = tuple(range(12)),
                      reference_seeds: Sequence[int] = (0, 1, 2), epochs: int = 20,
                      last_two: float = 0.002) -> Dict[str, pd.DataFrame]:
    """A study of CIFAR ResNets of depth 8, 14, ... (one per entry of ``doubling``) trained for
    ``epochs`` under a decaying schedule: per cell the baseline at ``seeds`` ends at test
    accuracy 0.8 + N(0, run_sd); its reference runs at ``reference_seeds``, trained for 2 x
    ``epochs``, end at 0.8 + doubling[c] + N(0, run_sd); one ``so`` run at the study's budget
    makes the cell's other budget a reference. Every learning curve gains ``last_two`` over its
    last two epochs in every cell, as a schedule decaying to zero makes it (so the last-epoch
    figures cannot tell the cells apart). Returns the trials and epochs tables."""
    rows, curves = [], []
    for index, more in enumerate(doubling):
        depth = 8 + 6 * index
        runs = ([("none", seed, epochs, 0.0) for seed in seeds]
                + [("none", seed, 2 * epochs, more) for seed in reference_seeds]
                + [("so", seeds[0], epochs, 0.0)])
        for regularizer, seed, budget, extra in runs:
            final = 0.8 + extra + rng.normal(0, run_sd)
            row = trial_row(depth, 1, regularizer, seed, final, final, epochs=budget)
            rows.append(row)
            for epoch in range(budget):
                curves.append({"trial_id": row["trial_id"], "epoch": epoch, "train_acc": 0.95,
                               "test_acc": final - last_two * (budget - 1 - epoch) / 2})
    return {"trials": pd.DataFrame(rows), "epochs": pd.DataFrame(curves)}
