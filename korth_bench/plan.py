"""``korth-bench plan``: designs of a capacity-collapse study that reach a power, from measured
spread and trial times, with their cost.

The spread (analysis.power.measure_spread) comes from completed trials of one or more result
directories: the seed spread of the pooled primary arms and of the baseline, their same-seed
covariance and the cells' offsets about the line. The cells, arms and protocol of the design come
from a candidate search space (``--space``) or, without one, are those measured. A trial's time is
priced by a cost model fit to the result directories' completed trials (CostModel: its forward-pass
equivalents times a fixed cost per pass plus a cost per FLOP of the network), so a candidate with
other epochs, images or cells is priced from the same machine; seconds per FLOP alone would
price a small cell at half its time. The model is fit to the rows of one kernel path (native bf16
where the rows have it) and every other path is priced at its own rate: measured from the rows
of that path where there are some, else a stated factor (KERNEL_PATH_FACTORS); a trial is priced
at the path its row records (the ``kernel_path`` column, or the study's ``kernel_paths.json``
sidecar for rows written before that column), a trial not yet run at the path a new trial of its
precision takes where bf16 is native. Every design is shown under each way
the slope test can treat the cells (CELL_MODELS): the report's random-cells test with the cell
offsets as measured, the same without offsets, and the fixed-cells test of the named cells.
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

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

NATIVE_BF16, BF16_THROUGH_FP32, BF16_EMULATED, FP32 = (
    "native bf16", "bf16 through float32 kernels", "bf16 on kernels without native bf16", "fp32")
"""The kernel paths a trial runs on (trial.precision.KERNEL_PATHS, the ``kernel_path`` column)."""
KERNEL_PATH_FACTORS = {NATIVE_BF16: 1.0, BF16_THROUGH_FP32: 1.7, FP32: 1.7, BF16_EMULATED: 17.0}
"""Modelled seconds per unit of the cost model of each kernel path, relative to native bf16, for
a path the rows do not measure: bf16 through float32 kernels costs about 1.7x native bf16 on
ResNet-20..110 (1.7-4.5x on smaller nets: the factor measured from rows replaces it wherever
there are some); fp32 runs at the speed of those float32 kernels; bf16 on oneDNN's kernels
without bf16 instructions about 10x fp32 (trial.precision)."""
KERNEL_PATHS_FILE = "kernel_paths.json"
"""The sidecar of a study whose rows predate the ``kernel_path`` column: {trial_id: kernel path},
beside its tables (the committed Parquet files are never rewritten)."""
MODEL_MISMATCH = 0.20
"""Modelled and measured machine-hours of the same trials further apart than this get a line."""
MAX_SEEDS = 64
"""The most seeds per arm a design may use (beyond it a study is not a seed problem)."""
BASELINE_RATIOS = (1, 2)
"""Baseline seeds per arm seed considered: paired only, or twice the arms' seeds."""
CELL_MODELS = {"random": ("random", True), "random, no offsets": ("random", False),
               "fixed": ("fixed", False)}
BASELINE_LABELS = {1: "= arm seeds", 2: "2 x arm seeds"}
"""The ``baseline`` column of the designs: what tells the two rows of a test and cell model apart."""
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
    reference_seconds: float = math.nan   # one reference run: a baseline trial at 2x the epochs


def kernel_paths(dirs: Sequence[str], endpoint: Optional[str] = None) -> Dict[str, str]:
    """{trial_id: kernel path} from the KERNEL_PATHS_FILE sidecars of ``dirs`` (absent: none)."""
    import pyarrow.fs as pafs

    found: Dict[str, str] = {}
    for directory in dirs:
        fs, root = results.resolve(directory, endpoint)
        path = f"{root.rstrip('/')}/{KERNEL_PATHS_FILE}"
        if fs.get_file_info(path).type != pafs.FileType.File:
            continue
        with fs.open_input_stream(path) as stream:
            try:
                recorded = json.loads(stream.read().decode())
            except ValueError as error:
                raise ConfigError(f"{directory}/{KERNEL_PATHS_FILE}: not JSON ({error})") from None
        unknown = sorted(set(recorded.values()) - set(KERNEL_PATH_FACTORS))
        if not isinstance(recorded, dict) or unknown:
            raise ConfigError(f"{directory}/{KERNEL_PATHS_FILE}: kernel path {unknown[0]!r}; "
                              f"choose from: {', '.join(KERNEL_PATH_FACTORS)}" if unknown else
                              f"{directory}/{KERNEL_PATHS_FILE}: must map trial ids to paths")
        found.update({str(k): str(v) for k, v in recorded.items()})
    return found


def with_kernel_paths(trials: pd.DataFrame, sidecar: Mapping[str, str]) -> pd.DataFrame:
    """``trials`` with ``kernel_path`` (the row's own, else the sidecar's, else fp32 for an fp32
    row; a bf16 row with neither is taken as native bf16) and ``kernel_path_recorded`` (False
    where that last assumption was made)."""
    own = (trials["kernel_path"] if "kernel_path" in trials
           else pd.Series(None, index=trials.index, dtype=object))
    ids = trials["trial_id"] if "trial_id" in trials else pd.Series("", index=trials.index)
    precision = (trials["precision_resolved"] if "precision_resolved" in trials
                 else trials["precision"] if "precision" in trials
                 else pd.Series(None, index=trials.index, dtype=object))
    paths, recorded = [], []
    for value, trial_id, resolved in zip(own, ids, precision):
        path = value if isinstance(value, str) and value else sidecar.get(str(trial_id))
        recorded.append(path is not None or resolved == "fp32")
        paths.append(path or (FP32 if resolved == "fp32" else NATIVE_BF16))
    return trials.assign(kernel_path=paths, kernel_path_recorded=recorded)


def measured_runs(dirs: Sequence[str], arms: Sequence[str], endpoint: Optional[str] = None
                  ) -> pd.DataFrame:
    """The runs of each cell's selected entries, as the report chooses them (entries.
    select_entries on validation accuracy, then entry_runs), with ``regularizer`` holding the
    entry name (arm_labels): so a grid of coefficients contributes its chosen setting only; and
    each run's kernel path (with_kernel_paths, from the rows and the dirs' sidecars)."""
    trials = results.read_frame(list(dirs), "trials", endpoint=endpoint)
    if trials.empty or "status" not in trials:
        raise ConfigError(f"results {', '.join(dirs)}: no trials rows to plan from")
    trials = with_kernel_paths(trials, kernel_paths(dirs, endpoint))
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
    network (loading, augmentation, the step's fixed overheads), which dominates a small cell.
    The two rates are those of ``path``, the kernel path of the rows they were fit to; a trial
    on another path costs ``factor(path)`` times as much: ``factors`` measured from the rows of
    that path (``measured_rows`` of them), else KERNEL_PATH_FACTORS relative to ``path`` (with
    ``path`` None, every path at the same rates).
    ``recorded`` and ``measured_s`` hold each measured trial's kernel path and wall_time_s."""
    per_pass_s: float
    per_flop_s: float
    n_cells: int            # distinct (F, P) groups of completed trials it was fit to
    path: Optional[str] = None
    factors: Mapping[str, float] = dataclasses.field(default_factory=dict)
    measured_rows: Mapping[str, int] = dataclasses.field(default_factory=dict)
    recorded: Mapping[str, str] = dataclasses.field(default_factory=dict)
    measured_s: Mapping[str, float] = dataclasses.field(default_factory=dict)
    unrecorded: int = 0     # bf16 rows without a kernel path, taken as native bf16

    def factor(self, path: str) -> float:
        """Seconds of a trial on ``path`` per second of the same trial on ``self.path``."""
        if self.path is None or path == self.path:
            return 1.0
        if path in self.factors:
            return self.factors[path]
        return KERNEL_PATH_FACTORS[path] / KERNEL_PATH_FACTORS[self.path]

    @staticmethod
    def planned_path(cfg: TrialConfig) -> str:
        """The path a new trial of ``cfg`` takes on a machine with native bf16."""
        return FP32 if cfg.precision == "fp32" else NATIVE_BF16

    def path_of(self, cfg: TrialConfig) -> str:
        """The path the rows record for ``cfg``'s trial, else planned_path."""
        return self.recorded.get(cfg.trial_id) or self.planned_path(cfg)

    def seconds(self, cfg: TrialConfig, path: Optional[str] = None) -> float:
        """Seconds of ``cfg``'s trial on ``path`` (default path_of: as it ran, if it did)."""
        from korth_bench.spaces.dryrun import forward_flops, trial_passes

        return (trial_passes(cfg) * (self.per_pass_s + self.per_flop_s * forward_flops(cfg))
                * self.factor(path or self.path_of(cfg)))

    def text(self) -> str:
        rates = []
        for name in KERNEL_PATH_FACTORS:
            if name == self.path or self.path is None:
                continue
            how = (f"measured on {self.measured_rows[name]} rows" if name in self.factors
                   else "modelled")
            rates.append(f"{name} {self.factor(name):.2g}x ({how})")
        unrecorded = (f"; {self.unrecorded} bf16 rows record no kernel path, taken as "
                      f"{NATIVE_BF16}" if self.unrecorded else "")
        return (f"{self.per_pass_s * 1e6:.3g} us per image pass + {self.per_flop_s * 1e9:.3g} s "
                f"per GFLOP on {self.path}, fit to the median times of {self.n_cells} measured "
                f"cell(s) of {self.measured_rows.get(self.path, 0)} rows; other kernel paths: "
                + ", ".join(rates) + unrecorded)


def cost_model(runs: pd.DataFrame) -> CostModel:
    """The cost model fit to completed trials' wall_time_s, on the rows of one kernel path
    (native bf16 where there are such rows, else the most frequent path; ``runs`` without a
    ``kernel_path`` column (with_kernel_paths) are one path, by their precision): per group of
    equal forward FLOPs F and passes P, the median of wall_time_s / P (so one odd row, such as a
    trial resumed by an older version whose wall_time_s counted its last process only, does not
    move it); then the least-squares line of those medians on F, kept non-negative (a negative
    intercept or slope is set to 0 and the other term refit). One group alone gives no
    intercept: the seconds per FLOP of that group. Each other path the rows have gets its own
    factor, the median over its rows of wall_time_s / the fitted seconds."""
    from korth_bench.spaces.dryrun import forward_flops, trial_passes

    if "kernel_path" not in runs:
        runs = with_kernel_paths(runs, {})
    timed = [(forward_flops(cfg), trial_passes(cfg), row["wall_time_s"], row["kernel_path"],
              cfg, row.get("trial_id"))
             for _, row in runs.iterrows() if pd.notna(row.get("wall_time_s"))
             and row["wall_time_s"] > 0 for cfg in (config_of(row),)]
    if not timed:
        raise ConfigError("the trials rows have no wall_time_s to price a design with")
    counts: Dict[str, int] = {}
    for *_, path, _, _ in timed:
        counts[path] = counts.get(path, 0) + 1
    reference = NATIVE_BF16 if NATIVE_BF16 in counts else max(counts, key=counts.get)
    groups: Dict[tuple, List[float]] = {}
    for flops, passes, seconds, path, _, _ in timed:
        if path == reference:
            groups.setdefault((flops, passes), []).append(seconds / passes)
    x = np.array([flops for flops, _ in groups])
    y = np.array([float(np.median(values)) for values in groups.values()])
    line = len(set(x)) > 1
    slope, intercept = np.polyfit(x, y, 1) if line else (0.0, 0.0)
    if not line or intercept < 0:      # through the origin: seconds per FLOP alone
        slope, intercept = np.dot(x, y) / np.dot(x, x), 0.0
    elif slope < 0:                    # flat: seconds per pass alone
        slope, intercept = 0.0, np.mean(y)
    base = CostModel(float(intercept), float(slope), len(groups), reference)
    ratios: Dict[str, List[float]] = {}
    for _, _, seconds, path, cfg, _ in timed:
        if path != reference:
            ratios.setdefault(path, []).append(seconds / base.seconds(cfg, reference))
    recorded = {str(row["trial_id"]): row["kernel_path"] for _, row in runs.iterrows()
                if "trial_id" in row and pd.notna(row["trial_id"])}
    unrecorded = int((~runs["kernel_path_recorded"].astype(bool)).sum()
                     if "kernel_path_recorded" in runs else 0)
    return dataclasses.replace(
        base, factors={path: float(np.median(r)) for path, r in ratios.items()},
        measured_rows=counts, recorded=recorded,
        measured_s={str(trial_id): float(seconds) for _, _, seconds, _, _, trial_id in timed
                    if trial_id is not None and pd.notna(trial_id)}, unrecorded=unrecorded)


def config_of(row: pd.Series) -> TrialConfig:
    """The trial configuration a ``trials`` row records (its config columns; the ``device``
    column holds the device's description, so the default stands in for it)."""
    fields = {f.name for f in dataclasses.fields(TrialConfig)} - {"device"}
    values = {key: results.plain(value) for key, value in row.items() if key in fields}
    values = {key: value for key, value in values.items()
              if not (np.isscalar(value) and pd.isna(value))}
    values["regularizer"] = base_name(str(row["regularizer"]))
    return TrialConfig.from_dict(values)


def reference_config(cfg: TrialConfig) -> TrialConfig:
    """A reference run of ``cfg``'s cell: the baseline at twice its epochs (a convergence check's
    run at an epoch count no regularized arm of the cell has); for pricing only."""
    return dataclasses.replace(cfg, regularizer=BASELINE, epochs=2 * cfg.epochs)


def candidate_cells(configs: Sequence[TrialConfig], cost: CostModel) -> List[Cell]:
    """The cells of a candidate design's trials, each trial priced by ``cost`` at the path a new
    trial takes (CostModel.planned_path: these are the seeds a design would add), with the price
    of one reference run (reference_config)."""
    from korth_bench.spaces.dryrun import parameter_count

    cells: Dict[tuple, Dict[str, Any]] = {}
    for cfg in configs:
        key = (cfg.dataset, cfg.model, cfg.depth, cfg.width)
        cell = cells.setdefault(key, {"arm": [], "base": [], "seeds": set(), "cfg": cfg})
        seconds = cost.seconds(cfg, cost.planned_path(cfg))
        if cfg.regularizer == BASELINE:
            cell["base"].append(seconds)
            cell["cfg"] = cfg
        else:
            cell["arm"].append(seconds)
            cell["seeds"].add(cfg.seed)
    out = []
    for (dataset, model, depth, width), cell in cells.items():
        seeds = max(len(cell["seeds"]), 1)
        arm_seconds = float(np.mean(cell["arm"])) if cell["arm"] else 0.0
        base_seconds = float(np.mean(cell["base"])) if cell["base"] else arm_seconds
        reference = reference_config(cell["cfg"])
        out.append(Cell(f"{model}-{depth}x{width}", math.log2(parameter_count(cell["cfg"])),
                        len(cell["arm"]) // seeds, arm_seconds, base_seconds,
                        cost.seconds(reference, cost.planned_path(reference))))
    return sorted(out, key=lambda c: c.log2_params)


def measured_cells(runs: pd.DataFrame) -> List[Cell]:
    """The measured cells, each priced at its own mean wall time per trial (a reference run at
    twice the baseline's)."""
    out = []
    for (dataset, model, depth, width), part in runs.groupby(list(CELL), dropna=False):
        arms = part[part["regularizer"] != BASELINE]
        base = part[part["regularizer"] == BASELINE]
        seeds = max(arms["seed"].nunique(), 1)
        arm_seconds = float(arms["wall_time_s"].mean()) if len(arms) else 0.0
        base_seconds = float(base["wall_time_s"].mean()) if len(base) else arm_seconds
        out.append(Cell(f"{model}-{depth}x{width}", math.log2(float(part["num_params"].median())),
                        len(arms) // seeds, arm_seconds, base_seconds, 2 * base_seconds))
    return sorted(out, key=lambda c: c.log2_params)


def reference_cost(cells: Sequence[Cell], reference_seeds: int) -> Dict[str, float]:
    """The reference runs a design adds: ``reference_seeds`` baseline seeds per cell at twice
    the epochs (trials and trial-seconds)."""
    return {"trials": reference_seeds * len(cells),
            "seconds": reference_seeds * sum(c.reference_seconds for c in cells)
            if reference_seeds else 0.0}


def design_rows(cells: Sequence[Cell], spread: power.Spread, arm_spread: power.Spread,
                claimed_drop: float, target: float, alpha: float, parallel: int,
                budget_hours: Optional[float], reference_seeds: int = 0) -> pd.DataFrame:
    """For each test (the primary contrast alone, or each arm in a Holm family over the arms),
    each cell-offset model and each baseline ratio (the ``baseline`` column, BASELINE_LABELS):
    the fewest seeds per arm whose superiority (a drop of claimed_drop detected) and equivalence
    ("no trend" when there is none) power both reach ``target``, with its cost, the reference
    runs (reference_cost) included; None where no design up to MAX_SEEDS does."""
    x = np.array([c.log2_params for c in cells])
    extra = reference_cost(cells, reference_seeds)
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
                                 + extra["seconds"] if seeds else math.nan)
                trials = (sum(c.arm_trials_per_seed * seeds + ratio * seeds for c in cells)
                          + extra["trials"] if seeds else None)
                machine = trial_seconds / 3600 / parallel
                rows.append({"test": test, "cells": model, "baseline": BASELINE_LABELS[ratio],
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
                   cost: CostModel, parallel: int, reference_seeds: int = 0) -> Dict[str, Any]:
    """The candidate space's own design at the measured spread: its seeds per arm and baseline
    seeds (the fewest of any cell), the power of its primary contrast under ``cells_as``
    (the space's analysis.primary.cells) and its cost, every trial priced by ``cost`` at the
    kernel path its row records (CostModel.path_of), plus the reference runs (reference_cost).
    For the trials the rows measured, the measured machine-hours (sum of wall_time_s /
    ``parallel``) beside the modelled ones of the same trials."""
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
    extra = reference_cost(cells, reference_seeds)
    paths: Dict[str, int] = {}
    for cfg in configs:
        paths[cost.path_of(cfg)] = paths.get(cost.path_of(cfg), 0) + 1
    ran = [cfg for cfg in configs if cfg.trial_id in cost.measured_s]
    return {"arm seeds": arms, "baseline seeds": base, "cells": cells_as, "trials": len(configs),
            "machine-hours": (sum(cost.seconds(cfg) for cfg in configs) + extra["seconds"])
            / 3600 / parallel, "paths": paths,
            "reference trials": extra["trials"],
            "reference machine-hours": extra["seconds"] / 3600 / parallel,
            "measured trials": len(ran),
            "measured machine-hours": sum(cost.measured_s[cfg.trial_id] for cfg in ran)
            / 3600 / parallel,
            "modelled measured machine-hours": sum(cost.seconds(cfg) for cfg in ran)
            / 3600 / parallel,
            "superiority": got["superiority"], "equivalence": got["equivalence"],
            "detectable drop": got["detectable_drop"], "target": target}


def written_design_text(design: Dict[str, Any], claimed_drop: float, parallel: int) -> str:
    """The candidate space as written, at the measured spread: one line; a line for its
    reference runs when it has some; one for its kernel paths and measured hours when the rows
    measured its trials, and one more when modelled and measured machine-hours differ by more
    than MODEL_MISMATCH."""
    reference = (f" + {design['reference trials']} reference runs"
                 if design.get("reference trials") else "")
    lines = [f"This space as written ({design['arm seeds']} seeds per arm, "
             f"{design['baseline seeds']} baseline seeds, cells {design['cells']}; "
             f"{design['trials']} trials{reference}, {design['machine-hours']:.1f} machine-hours "
             f"at {parallel} at a time): power {design['superiority']:.0%} for a drop of "
             f"{claimed_drop * 100:g} pt, {design['equivalence']:.0%} for 'no trend' within "
             f"+-{claimed_drop * 100:g} pt; drop detected with {design['target']:.0%} power "
             f"{design['detectable drop'] * 100:.2f} pt"]
    if design.get("reference trials"):
        lines.append(f"  of which reference runs: {design['reference trials']} trials, "
                     f"{design['reference machine-hours']:.1f} machine-hours")
    measured = design.get("measured trials", 0)
    if measured:
        paths = ", ".join(f"{n} {path}" for path, n in sorted(
            design["paths"].items(), key=lambda item: -item[1]))
        modelled, spent = design["modelled measured machine-hours"], design["measured machine-hours"]
        lines.append(f"  priced at the kernel path each trial ran on ({paths}); the rows measured "
                     f"{measured} of its trials: {spent:.1f} machine-hours (sum of wall_time_s / "
                     f"{parallel}), modelled {modelled:.1f}")
        if spent > 0 and abs(modelled / spent - 1) > MODEL_MISMATCH:
            lines.append(f"  the cost model is off for these trials: modelled {modelled:.1f} "
                         f"against measured {spent:.1f} machine-hours "
                         f"({modelled / spent - 1:+.0%}, beyond +-{MODEL_MISMATCH:.0%})")
    return "\n".join(lines)


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
              alpha: float, parallel: int, reference_seeds: int = 0) -> str:
    """The printed plan: the measured spread, the cells priced, the designs (with the line of
    their reference runs when ``reference_seeds``)."""
    pt = lambda value: f"{value * 100:.2f}"
    lines = [f"Spread of the primary contrast ({', '.join(spread.arms)} pooled, against "
             f"{BASELINE}), from {spread.n_cells} cells x {spread.seeds_per_cell:.3g} seeds, in "
             "accuracy points:",
             f"  per-seed gain sd {pt(spread.unit_sd)} (arms {pt(spread.sd_arm)}, baseline "
             f"{pt(spread.sd_base)}, same-seed correlation "
             f"{spread.cov_pair / spread.sd_arm / spread.sd_base:+.2f}; {spread.df_within} df)",
             f"  cell-offset sd {pt(spread.cell_sd)} (lack of fit about the line: the cell "
             f"means against their own variance, F test on {spread.df_cells} and "
             f"{spread.df_within} df, p {spread.lack_of_fit_p:.3f})",
             f"One arm (mean over those arms): per-seed gain sd {pt(arm_spread.unit_sd)}, "
             f"cell-offset sd {pt(arm_spread.cell_sd)}",
             "Cells of the design" + (f" (priced at {cost.text()}; new trials at the path "
                                      "their precision takes where bf16 is native)" if cost
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
    if reference_seeds:
        extra = reference_cost(cells, reference_seeds)
        lines.append(f"Reference runs, in every design's cost above: {reference_seeds} baseline "
                     f"seed(s) per cell at 2x the epochs, {extra['trials']} trials, "
                     f"{extra['seconds'] / 3600:.1f} trial-hours, "
                     f"{extra['seconds'] / 3600 / parallel:.1f} machine-hours")
    lines.append("cells: random = the report's slope test on cell means (C - 2 df; the offsets "
                 "as measured are noise, and no seed count removes them); random, no offsets = "
                 "the same test if the cells sat on the line; fixed = the slope of these named "
                 f"cells (within-cell df). baseline: its seeds per cell, equal to the arms' "
                 "(every one paired) or twice them (the first shared). "
                 f"'> {MAX_SEEDS}': no design up to {MAX_SEEDS} seeds "
                 "reaches the power; the power shown is at that size.")
    return "\n".join(lines)
