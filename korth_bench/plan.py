"""``korth-bench plan``: designs of a capacity-collapse study that reach a power, from measured
spread and trial times, with their cost.

The spread (analysis.power.measure_spread) comes from completed trials of one or more result
directories: the seed spread of the pooled primary arms and of the baseline, their same-seed
covariance and the cells' offsets about the line. The cells, arms and protocol of the design come
from a candidate search space (``--space``) or, without one, are those measured. A trial's time is
priced by a cost model fit to the result directories' completed trials (CostModel: its forward-pass
equivalents times a fixed cost per pass plus a cost per FLOP of the network), so a candidate with
other epochs, images or cells is priced from the same machine; seconds per FLOP alone would
price a small cell at half its time. Every design is shown under each way
the slope test can treat the cells (CELL_MODELS): the report's random-cells test with the cell
offsets as measured, the same without offsets, and the fixed-cells test of the named cells.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd
import yaml

from korth_bench import results
from korth_bench.analysis import power
from korth_bench.analysis.claims import arm_labels
from korth_bench.analysis.entries import BASELINE, CELL, entry_runs, select_entries
from korth_bench.analysis.verdicts import STRICT, base_name
from korth_bench.config import TrialConfig
from korth_bench.errors import ConfigError

MAX_SEEDS = 64
"""The most seeds per arm a design may use (beyond it a study is not a seed problem)."""
BASELINE_RATIOS = (1, 2)
"""Baseline seeds per arm seed considered: paired only, or twice the arms' seeds."""
CELL_MODELS = {"random": ("random", True), "random, no offsets": ("random", False),
               "fixed": ("fixed", False)}
"""How a design's slope test treats the cells (analysis.power): random cells with the offsets as
measured (the report's default test), random cells that sit on the line (what a protocol without
offsets would give), fixed cells (the slope of the named cells, offsets part of the estimand)."""


@dataclasses.dataclass(frozen=True)
class Cell:
    """One cell of the design: its capacity and the seconds of one arm and one baseline trial."""
    label: str
    log2_params: float
    arm_trials_per_seed: int
    arm_seconds: float
    baseline_seconds: float


def measured_runs(dirs: Sequence[str], arms: Sequence[str], endpoint: Optional[str] = None
                  ) -> pd.DataFrame:
    """The runs of each cell's selected entries, as the report chooses them (entries.
    select_entries on validation accuracy, then entry_runs), with ``regularizer`` holding the
    entry name (arm_labels): so a grid of coefficients contributes its chosen setting only."""
    trials = results.read_frame(list(dirs), "trials", endpoint=endpoint)
    if trials.empty or "status" not in trials:
        raise ConfigError(f"results {', '.join(dirs)}: no trials rows to plan from")
    trials = trials.assign(regularizer=arm_labels(trials, list(arms)))
    if "num_params" not in trials:
        raise ConfigError(f"results {', '.join(dirs)}: the trials rows have no num_params")
    return entry_runs(trials, select_entries(trials))


def default_primary(runs: pd.DataFrame) -> List[str]:
    """The strict-orthogonality entries present (analysis.verdicts.STRICT), the pooled arms of
    the primary contrast unless ``--primary`` names them."""
    return sorted(name for name in runs["regularizer"].unique() if base_name(name) in STRICT)


@dataclasses.dataclass(frozen=True)
class CostModel:
    """Seconds of one trial on the measured machine,

        seconds = P * (per_pass_s + per_flop_s * F)

    with P the trial's forward-pass equivalents (spaces.dryrun.trial_passes) and F one forward
    pass's FLOPs (spaces.dryrun.forward_flops): per_pass_s is what an image costs whatever the
    network (loading, augmentation, the step's fixed overheads), which dominates a small cell."""
    per_pass_s: float
    per_flop_s: float
    n_cells: int            # distinct (F, P) groups of completed trials it was fit to

    def seconds(self, cfg: TrialConfig) -> float:
        from korth_bench.spaces.dryrun import forward_flops, trial_passes

        return trial_passes(cfg) * (self.per_pass_s + self.per_flop_s * forward_flops(cfg))

    def text(self) -> str:
        return (f"{self.per_pass_s * 1e6:.3g} us per image pass + {self.per_flop_s * 1e9:.3g} s "
                f"per GFLOP, fit to the median times of {self.n_cells} measured cell(s)")


def cost_model(runs: pd.DataFrame) -> CostModel:
    """The cost model fit to completed trials' wall_time_s: per group of equal forward FLOPs F
    and passes P, the median of wall_time_s / P (so one odd row, such as a trial resumed by an
    older version whose wall_time_s counted its last process only, does not move it); then the
    least-squares line of those medians on F, kept non-negative (a negative intercept or slope
    is set to 0 and the other term refit). One group alone gives no intercept: the seconds per
    FLOP of that group."""
    from korth_bench.spaces.dryrun import forward_flops, trial_passes

    timed = [(forward_flops(cfg), trial_passes(cfg), row["wall_time_s"])
             for _, row in runs.iterrows() if pd.notna(row.get("wall_time_s"))
             and row["wall_time_s"] > 0 for cfg in (config_of(row),)]
    if not timed:
        raise ConfigError("the trials rows have no wall_time_s to price a design with")
    groups: Dict[tuple, List[float]] = {}
    for flops, passes, seconds in timed:
        groups.setdefault((flops, passes), []).append(seconds / passes)
    x = np.array([flops for flops, _ in groups])
    y = np.array([float(np.median(values)) for values in groups.values()])
    line = len(set(x)) > 1
    slope, intercept = np.polyfit(x, y, 1) if line else (0.0, 0.0)
    if not line or intercept < 0:      # through the origin: seconds per FLOP alone
        slope, intercept = np.dot(x, y) / np.dot(x, x), 0.0
    elif slope < 0:                    # flat: seconds per pass alone
        slope, intercept = 0.0, np.mean(y)
    return CostModel(float(intercept), float(slope), len(groups))


def config_of(row: pd.Series) -> TrialConfig:
    """The trial configuration a ``trials`` row records (its config columns; the ``device``
    column holds the device's description, so the default stands in for it)."""
    fields = {f.name for f in dataclasses.fields(TrialConfig)} - {"device"}
    values = {key: results.plain(value) for key, value in row.items() if key in fields}
    values = {key: value for key, value in values.items()
              if not (np.isscalar(value) and pd.isna(value))}
    values["regularizer"] = base_name(str(row["regularizer"]))
    return TrialConfig.from_dict(values)


def candidate_cells(configs: Sequence[TrialConfig], cost: CostModel) -> List[Cell]:
    """The cells of a candidate design's trials, each trial priced by ``cost``."""
    from korth_bench.spaces.dryrun import parameter_count

    cells: Dict[tuple, Dict[str, Any]] = {}
    for cfg in configs:
        key = (cfg.dataset, cfg.model, cfg.depth, cfg.width)
        cell = cells.setdefault(key, {"arm": [], "base": [], "seeds": set(), "cfg": cfg})
        if cfg.regularizer == BASELINE:
            cell["base"].append(cost.seconds(cfg))
        else:
            cell["arm"].append(cost.seconds(cfg))
            cell["seeds"].add(cfg.seed)
    out = []
    for (dataset, model, depth, width), cell in cells.items():
        seeds = max(len(cell["seeds"]), 1)
        arm_seconds = float(np.mean(cell["arm"])) if cell["arm"] else 0.0
        base_seconds = float(np.mean(cell["base"])) if cell["base"] else arm_seconds
        out.append(Cell(f"{model}-{depth}x{width}", math.log2(parameter_count(cell["cfg"])),
                        len(cell["arm"]) // seeds, arm_seconds, base_seconds))
    return sorted(out, key=lambda c: c.log2_params)


def measured_cells(runs: pd.DataFrame) -> List[Cell]:
    """The measured cells, each priced at its own mean wall time per trial."""
    out = []
    for (dataset, model, depth, width), part in runs.groupby(list(CELL), dropna=False):
        arms = part[part["regularizer"] != BASELINE]
        base = part[part["regularizer"] == BASELINE]
        seeds = max(arms["seed"].nunique(), 1)
        arm_seconds = float(arms["wall_time_s"].mean()) if len(arms) else 0.0
        out.append(Cell(f"{model}-{depth}x{width}", math.log2(float(part["num_params"].median())),
                        len(arms) // seeds, arm_seconds,
                        float(base["wall_time_s"].mean()) if len(base) else arm_seconds))
    return sorted(out, key=lambda c: c.log2_params)


def design_rows(cells: Sequence[Cell], spread: power.Spread, arm_spread: power.Spread,
                claimed_drop: float, target: float, alpha: float, parallel: int,
                budget_hours: Optional[float]) -> pd.DataFrame:
    """For each test (the primary contrast alone, or each arm in a Holm family over the arms),
    each cell-offset model and each baseline ratio: the fewest seeds per arm whose superiority
    (a drop of claimed_drop detected) and equivalence ("no trend" when there is none) power both
    reach ``target``, with its cost; None where no design up to MAX_SEEDS does."""
    x = np.array([c.log2_params for c in cells])
    arms_per_seed = max(c.arm_trials_per_seed for c in cells)
    rows = []
    for test, use, family in (("primary contrast", spread, 1),
                              (f"each arm, Holm over {arms_per_seed}", arm_spread, arms_per_seed)):
        for model, (cells_as, offsets) in CELL_MODELS.items():
            for ratio in BASELINE_RATIOS:
                found = None
                for seeds in range(2, MAX_SEEDS + 1):
                    got = power.design_power(x, use, seeds, ratio * seeds, claimed_drop, alpha,
                                             family, cells_as, offsets, target)
                    if got["superiority"] >= target and got["equivalence"] >= target:
                        found = (seeds, got)
                        break
                if found is None:
                    got = power.design_power(x, use, MAX_SEEDS, ratio * MAX_SEEDS, claimed_drop,
                                             alpha, family, cells_as, offsets, target)
                seeds = found[0] if found else None
                trial_seconds = (sum(c.arm_trials_per_seed * c.arm_seconds * seeds
                                     + c.baseline_seconds * ratio * seeds for c in cells)
                                 if seeds else math.nan)
                trials = (sum(c.arm_trials_per_seed * seeds + ratio * seeds for c in cells)
                          if seeds else None)
                machine = trial_seconds / 3600 / parallel
                rows.append({"test": test, "cells": model,
                             "n cells": len(cells), "arm seeds": seeds,
                             "baseline seeds": ratio * seeds if seeds else None,
                             "trials": trials, "trial-hours": trial_seconds / 3600,
                             "machine-hours": machine,
                             "superiority": got["superiority"], "equivalence": got["equivalence"],
                             "detectable drop": got["detectable_drop"],
                             "within budget": (None if budget_hours is None or not seeds
                                               else machine <= budget_hours)})
    return pd.DataFrame(rows)


def written_design(configs: Sequence[TrialConfig], cells: Sequence[Cell], spread: power.Spread,
                   cells_as: str, claimed_drop: float, alpha: float, target: float,
                   cost: CostModel, parallel: int) -> Dict[str, Any]:
    """The candidate space's own design at the measured spread: its seeds per arm and baseline
    seeds (the fewest of any cell), the power of its primary contrast under ``cells_as``
    (the space's analysis.primary.cells) and its cost, every trial priced by ``cost``."""
    arm_seeds: Dict[tuple, set] = {}
    base_seeds: Dict[tuple, set] = {}
    for cfg in configs:
        key = (cfg.dataset, cfg.model, cfg.depth, cfg.width)
        (base_seeds if cfg.regularizer == BASELINE else arm_seeds).setdefault(key, set()).add(
            cfg.seed)
    arms = min((len(seeds) for seeds in arm_seeds.values()), default=0)
    base = min((len(seeds) for seeds in base_seeds.values()), default=0)
    x = np.array([c.log2_params for c in cells])
    got = (power.design_power(x, spread, arms, base, claimed_drop, alpha, 1, cells_as, False
                              if cells_as == "fixed" else True, target)
           if arms and base else {"superiority": math.nan, "equivalence": math.nan,
                                  "detectable_drop": math.nan})
    return {"arm seeds": arms, "baseline seeds": base, "cells": cells_as, "trials": len(configs),
            "machine-hours": sum(cost.seconds(cfg) for cfg in configs) / 3600 / parallel,
            "superiority": got["superiority"], "equivalence": got["equivalence"],
            "detectable drop": got["detectable_drop"], "target": target}


def written_design_text(design: Dict[str, Any], claimed_drop: float, parallel: int) -> str:
    """One line: the candidate space as written, at the measured spread."""
    return (f"This space as written ({design['arm seeds']} seeds per arm, "
            f"{design['baseline seeds']} baseline seeds, cells {design['cells']}; "
            f"{design['trials']} trials, {design['machine-hours']:.1f} machine-hours at "
            f"{parallel} at a time): power {design['superiority']:.0%} for a drop of "
            f"{claimed_drop * 100:g} pt, {design['equivalence']:.0%} for 'no trend' within "
            f"+-{claimed_drop * 100:g} pt; drop detected with {design['target']:.0%} power "
            f"{design['detectable drop'] * 100:.2f} pt")


def per_arm_spread(runs: pd.DataFrame, primary: Sequence[str], metric: str) -> power.Spread:
    """One arm's spread, averaged over the primary arms (variances and covariances averaged)."""
    each = [power.measure_spread(runs, [arm], metric) for arm in primary]
    each = [s for s in each if s.df_within > 0]
    if not each:
        return power.measure_spread(runs, list(primary), metric)
    mean = lambda name: float(np.mean([getattr(s, name) ** 2 for s in each]))
    return dataclasses.replace(
        each[0], arms=tuple(primary), sd_arm=math.sqrt(mean("sd_arm")),
        sd_base=math.sqrt(mean("sd_base")), cov_pair=float(np.mean([s.cov_pair for s in each])),
        unit_sd=math.sqrt(mean("unit_sd")),
        cell_sd=math.sqrt(float(np.nanmean([s.cell_sd ** 2 for s in each]))))


def chosen_design(rows: pd.DataFrame) -> Optional[pd.Series]:
    """The design to write: the cheapest primary-contrast row that reaches the power within the
    budget, preferring the cell models in CELL_MODELS order."""
    primary = rows[(rows["test"] == "primary contrast") & rows["arm seeds"].notna()
                   & (rows["within budget"] != False)]  # noqa: E712 (None: no budget given)
    for model in CELL_MODELS:
        fitting = primary[primary["cells"] == model]
        if len(fitting):
            return fitting.sort_values("machine-hours").iloc[0]
    return None


def write_space(template: str, design: pd.Series, out: str) -> str:
    """The template space with the design's seeds: grid.seed gets the arm seeds (starting at the
    template's first seed) and the baseline entry its own, longer seed list."""
    from korth_bench import spaces

    with open(spaces.find(template)) as handle:
        raw = yaml.safe_load(handle)
    grid = raw.setdefault("grid", {})
    first = min(grid.get("seed", [0]) or [0])
    arm_seeds, base_seeds = int(design["arm seeds"]), int(design["baseline seeds"])
    grid["seed"] = list(range(first, first + arm_seeds))
    if base_seeds > arm_seeds:
        regularizers = raw.setdefault("regularizers", {})
        entry = regularizers.get(BASELINE) or {}
        if not isinstance(entry, dict):
            raise ConfigError(f"{template}: regularizers.{BASELINE} must be a mapping to get its "
                              "own seeds")
        regularizers[BASELINE] = {**entry, "seed": list(range(first, first + base_seeds))}
    with open(out, "w") as handle:
        handle.write(f"# written by korth-bench plan from {template}: {arm_seeds} seeds per arm, "
                     f"{base_seeds} baseline seeds\n")
        yaml.safe_dump(raw, handle, sort_keys=False)
    spaces.load(out)  # the written space must load like any other
    return out


def plan_text(spread: power.Spread, arm_spread: power.Spread, cells: Sequence[Cell],
              rows: pd.DataFrame, cost: Optional[CostModel], claimed_drop: float, target: float,
              alpha: float, parallel: int) -> str:
    """The printed plan: the measured spread, the cells priced, the designs."""
    pt = lambda value: f"{value * 100:.2f}"
    lines = [f"Spread of the primary contrast ({', '.join(spread.arms)} pooled, against "
             f"{BASELINE}), from {spread.n_cells} cells x {spread.seeds_per_cell:.3g} seeds, in "
             "accuracy points:",
             f"  per-seed gain sd {pt(spread.unit_sd)} (arms {pt(spread.sd_arm)}, baseline "
             f"{pt(spread.sd_base)}, same-seed correlation "
             f"{spread.cov_pair / spread.sd_arm / spread.sd_base:+.2f}; {spread.df_within} df)",
             f"  cell-offset sd {pt(spread.cell_sd)} (lack of fit about the line, "
             f"{spread.df_cells} df, F test p {spread.lack_of_fit_p:.3f})",
             f"One arm (mean over those arms): per-seed gain sd {pt(arm_spread.unit_sd)}, "
             f"cell-offset sd {pt(arm_spread.cell_sd)}",
             "Cells of the design" + (f" (priced at {cost.text()})" if cost
                                      else " (priced at their measured times)")
             + ":"]
    for c in cells:
        lines.append(f"  {c.label}: log2 parameters {c.log2_params:.2f}, {c.arm_trials_per_seed} "
                     f"arm trials per seed at {c.arm_seconds / 60:.1f} min, baseline "
                     f"{c.baseline_seconds / 60:.1f} min")
    lines.append(f"Designs reaching {target:.0%} power for a drop of {claimed_drop * 100:g} pt "
                 f"over the capacity range and for 'no trend' within +-{claimed_drop * 100:g} pt "
                 f"(alpha {alpha:g}; machine-hours at {parallel} trials at a time):")
    shown = rows.copy()
    for column in ("trial-hours", "machine-hours"):
        shown[column] = shown[column].map(lambda v: "-" if pd.isna(v) else f"{v:.1f}")
    for column in ("superiority", "equivalence"):
        shown[column] = shown[column].map(lambda v: f"{v:.0%}")
    shown["detectable drop"] = shown["detectable drop"].map(lambda v: f"{v * 100:.2f} pt")
    for column in ("arm seeds", "baseline seeds", "trials"):
        shown[column] = shown[column].map(lambda v: f"> {MAX_SEEDS}" if pd.isna(v) and
                                          column == "arm seeds" else "-" if pd.isna(v)
                                          else str(int(v)))
    shown["within budget"] = shown["within budget"].map(
        lambda v: "-" if v is None or pd.isna(v) else "yes" if v else "no")
    table = [list(shown.columns)] + shown.astype(str).values.tolist()
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
              for row in table]
    lines.append("cells: random = the report's slope test on cell means (C - 2 df; the offsets "
                 "as measured are noise, and no seed count removes them); random, no offsets = "
                 "the same test if the cells sat on the line; fixed = the slope of these named "
                 f"cells (within-cell df). '> {MAX_SEEDS}': no design up to {MAX_SEEDS} seeds "
                 "reaches the power; the power shown is at that size.")
    return "\n".join(lines)
