"""``korth-bench run --dry-run``: the expanded trial table and a rough cost estimate (no Ray here).

The cost is counted, not measured: multiply-accumulates of one forward pass on the meta device,
times the images a trial touches, over a nominal throughput per CPU or GPU.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, List, Optional

from korth_bench.analysis.design import design_limits
from korth_bench.config import TrialConfig
from korth_bench.faults import size_text
from korth_bench.spaces.sections import Resources, show_point

if TYPE_CHECKING:
    from korth_bench.spaces.space import Space

# Nominal sustained throughputs for the cost estimate (rough: small CIFAR convolutions in fp32/TF32
# reach a fraction of a device's peak). The estimate is for planning, never a measurement.
CPU_CORE_FLOPS = 5e10   # per logical CPU
GPU_FLOPS = 1e13        # per GPU


def trial_flops(cfg: TrialConfig) -> float:
    """Rough floating-point operations of one trial: forward_flops(cfg) * trial_passes(cfg)."""
    return forward_flops(cfg) * trial_passes(cfg)


def forward_flops(cfg: TrialConfig) -> float:
    """Floating-point operations of one image's forward pass (2 per multiply-accumulate)."""
    return 2 * _forward_macs(cfg.model, cfg.depth, cfg.width, cfg.dropout, cfg.shortcut,
                             _num_classes(cfg), cfg.image_size)


def trial_passes(cfg: TrialConfig) -> float:
    """Forward-pass equivalents of one trial: training (forward + backward, 3x a forward),
    evaluation on the validation and test images every epoch, and the robustness suite."""
    from korth_bench import data

    train_full, test_full = data.pool_sizes(cfg.dataset)
    train = cfg.train_size or max(train_full - cfg.val_size, 1)
    test = cfg.test_size or test_full
    images = cfg.epochs * (3 * train + cfg.val_size + test)
    if cfg.robustness:
        per_image = (1 + len(cfg.robustness_corruptions) * len(cfg.robustness_severities)
                     + len(cfg.robustness_pgd_eps) * sum(
                         3 * (cfg.robustness_pgd_steps if a == "pgd" else 1) + 1
                         for a in cfg.robustness_attacks))
        pool = test if cfg.dataset == "synthetic" else test_full  # synthetic: the pool is test_size
        images += per_image * min(cfg.robustness_test_size, pool)
    return float(images)


def parameter_count(cfg: TrialConfig) -> int:
    """Trainable parameters of the trial's model, counted on the meta device (no memory)."""
    return _parameters(cfg.model, cfg.depth, cfg.width, cfg.dropout, cfg.shortcut,
                       _num_classes(cfg))


@functools.lru_cache(maxsize=None)
def _parameters(model: str, depth: int, width: int, dropout: float, shortcut: Optional[str],
                num_classes: int) -> int:
    import torch
    from korth_bench import models

    options = {"dropout": dropout, **({"shortcut": shortcut} if shortcut else {})}
    with torch.device("meta"):
        network = models.build(model, depth, width, num_classes, **options)
    return sum(p.numel() for p in network.parameters())


def _num_classes(cfg: TrialConfig) -> int:
    return 100 if cfg.dataset == "cifar100" else (cfg.num_classes or 10)


@functools.lru_cache(maxsize=None)
def _forward_macs(model: str, depth: int, width: int, dropout: float, shortcut: Optional[str],
                  num_classes: int, image_size: int) -> int:
    """Multiply-accumulates of one image's forward pass, counted on the meta device (no memory)."""
    import torch
    from korth_bench import models

    options = {"dropout": dropout, **({"shortcut": shortcut} if shortcut else {})}
    macs = 0

    def count(module, inputs, output):
        nonlocal macs
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            macs += output.numel() * module.in_channels // module.groups * kh * kw
        elif isinstance(module, torch.nn.Linear):
            macs += output.numel() * module.in_features

    with torch.device("meta"):
        network = models.build(model, depth, width, num_classes, **options).eval()
        for module in network.modules():
            module.register_forward_hook(count)
        network(torch.empty(1, 3, image_size, image_size))
    return macs


# What a trial writes, for the storage estimate (measured on the smoke sweep's files: a trials
# file of about 110 columns is 32 KB; a checkpoint is the model's state and the optimizer's
# momentum in float32, plus about 150 bytes a tensor and the rows so far).
TABLE_FILE_BYTES = 12_000     # one table file's fixed part (Parquet footer and schema), x 4
TRIALS_FILE_BYTES = 32_000    # the trials file (one wide row)
ROW_BYTES = 150               # an epochs, layers or robustness row
TUNE_TRIAL_BYTES = 20_000     # Tune's state of one trial (its directory, its experiment-state entry)
TUNE_EPOCH_BYTES = 1_500      # Tune's record of one reported epoch
CHECKPOINT_FIXED_BYTES = 16_000
CHECKPOINT_TENSOR_BYTES = 300
CHECKPOINT_ROW_BYTES = 500    # an epochs or layers row kept in the checkpoint's progress


@dataclass(frozen=True)
class StorageEstimate:
    """What a sweep's trials write to its storage at most, in bytes (``storage_estimate``)."""
    trials: int                   # trials counted
    checkpoint: int               # the largest trial's checkpoint
    keep: int                     # checkpoints each trial keeps (``checkpoint.keep``)
    concurrency: int              # trials that hold one more checkpoint while storing a new one
    checkpoints: int              # every trial's kept checkpoints, plus the ones in flight
    tables: int                   # the four tables' files and Tune's state

    @property
    def total(self) -> int:
        return self.checkpoints + self.tables

    def text(self) -> str:
        return (f"about {size_text(self.total)}: checkpoints {size_text(self.checkpoints)} "
                f"({self.trials} trials x keep {self.keep} x up to {size_text(self.checkpoint)}, "
                f"+ {self.concurrency} in flight), tables and Tune state {size_text(self.tables)}")


def storage_estimate(space: Space, trials: Optional[List[TrialConfig]] = None) -> StorageEstimate:
    """What the sweep writes at most: each trial keeps ``checkpoint.keep`` checkpoints after it
    ends (they are not deleted), and a running trial holds one more while it stores a new one
    (``search.concurrency`` of them at once); plus its four table files and Tune's state.
    ``trials``: the trials still to run (default: every trial; an Optuna space counts
    ``num_samples`` of its largest checked configuration). Counted, not measured: rough."""
    if trials is None:
        trials = (space.trials if space.search.type == "grid"
                  else [max(space.checked, key=checkpoint_bytes)] * space.search.num_samples)
    sizes = [checkpoint_bytes(cfg) if cfg.checkpoint_every else 0 for cfg in trials]
    largest = max(sizes, default=0)
    concurrency = min(space.search.concurrency or len(trials), len(trials))
    tables = sum(table_bytes(cfg) for cfg in trials)
    return StorageEstimate(trials=len(trials), checkpoint=largest, keep=space.checkpoint_keep,
                           concurrency=concurrency,
                           checkpoints=space.checkpoint_keep * sum(sizes) + concurrency * largest,
                           tables=tables)


def checkpoint_bytes(cfg: TrialConfig) -> int:
    """One checkpoint of the trial, at its last epoch: the model's state and the optimizer's
    momentum in float32, the generators and the rows so far."""
    parameters, state, tensors, parameter_tensors = _state_sizes(
        cfg.model, cfg.depth, cfg.width, cfg.dropout, cfg.shortcut, _num_classes(cfg))
    momentum = cfg.momentum > 0
    rows = cfg.epochs + _layer_rows(cfg)
    return (4 * (state + (parameters if momentum else 0)) + CHECKPOINT_FIXED_BYTES
            + CHECKPOINT_TENSOR_BYTES * (tensors + (parameter_tensors if momentum else 0))
            + CHECKPOINT_ROW_BYTES * rows)


def table_bytes(cfg: TrialConfig) -> int:
    """The trial's four table files and Tune's record of it."""
    robustness = (1 + len(cfg.robustness_corruptions) * len(cfg.robustness_severities)
                  + len(cfg.robustness_attacks) * len(cfg.robustness_pgd_eps)) if cfg.robustness else 0
    rows = cfg.epochs + _layer_rows(cfg) + robustness
    return (3 * TABLE_FILE_BYTES + TRIALS_FILE_BYTES + ROW_BYTES * rows + TUNE_TRIAL_BYTES
            + TUNE_EPOCH_BYTES * cfg.epochs)


def _layer_rows(cfg: TrialConfig) -> int:
    """The layers table's rows: a row per measured layer (convolutions, linear layers and
    ReLUs) at the end, and every ``measure_every`` epochs."""
    measured = 1 + ((cfg.epochs - 1) // cfg.measure_every if cfg.measure_every else 0)
    return measured * _measured_layers(cfg.model, cfg.depth, cfg.width, cfg.dropout, cfg.shortcut,
                                       _num_classes(cfg))


def _network(model: str, depth: int, width: int, dropout: float, shortcut: Optional[str],
             num_classes: int):
    import torch
    from korth_bench import models

    options = {"dropout": dropout, **({"shortcut": shortcut} if shortcut else {})}
    with torch.device("meta"):
        return models.build(model, depth, width, num_classes, **options)


@functools.lru_cache(maxsize=None)
def _state_sizes(*key: Any) -> tuple:
    """(parameters, numbers in the state dict, its tensors, the parameter tensors)."""
    network = _network(*key)
    state = network.state_dict()
    parameters = list(network.parameters())
    return (sum(p.numel() for p in parameters), sum(t.numel() for t in state.values()),
            len(state), len(parameters))


@functools.lru_cache(maxsize=None)
def _measured_layers(*key: Any) -> int:
    import torch

    return sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.ReLU))
               for m in _network(*key).modules())


def resource_label(resources: Resources) -> str:
    one = f"{resources.per_worker['cpu']:g} cpu" + (
        f", {resources.per_worker['gpu']:g} gpu" if resources.gpu else "")
    return one if resources.workers == 1 else f"{resources.workers} workers x ({one})"


def device_hours(flops: float, resources: Resources) -> float:
    rate = resources.gpu * GPU_FLOPS if resources.gpu else resources.cpu * CPU_CORE_FLOPS
    return flops / rate / 3600


def bf16_precision_note(space: Space) -> Optional[str]:
    """``precision.bf16_kernels_note`` for a space whose trials run bf16 on CPUs (no GPU in
    ``resources``), judged on this machine's CPU; None otherwise."""
    from korth_bench.trial.precision import bf16_kernels_note

    trials = space.trials if space.search.type == "grid" else space.checked
    bf16 = [cfg for cfg in trials if cfg.precision == "bf16"]
    if space.resources.gpu or not bf16:
        return None
    return bf16_kernels_note("bf16", compile=any(cfg.compile for cfg in bf16))


def dry_run_text(space: Space) -> str:
    """The expanded trial table, per-trial resources and a cost estimate, for ``--dry-run``."""
    search, scheduler = space.search, space.scheduler
    objective = ", ".join(f"{m} ({o})" for m, o in zip(search.metrics, search.modes))
    lines = [f"search space {space.name} ({space.path})"]
    if space.description:
        lines.append(f"  {space.description}")
    lines.append(f"search {search.type}: {space.num_trials} trials, objective {objective}, concurrency "
                 f"{search.concurrency or 'as resources allow'}; scheduler {scheduler.type}"
                 + (f" (grace {scheduler.grace_period} epochs, reduction {scheduler.reduction_factor:g},"
                    f" on {scheduler.metric})" if scheduler.type == "asha" else "")
                 + f"; retries {space.max_retries}; checkpoint every {space.checkpoint_every} "
                   f"epoch(s), keep {space.checkpoint_keep}")
    if space.wave_size and space.num_trials > space.wave_size:
        lines.append(f"  runs as {math.ceil(space.num_trials / space.wave_size)} consecutive Tuners of "
                     f"at most {space.wave_size} trials (search.wave_size)")
    label = resource_label(space.resources)
    unit = "GPU-h" if space.resources.gpu else "CPU-h"
    scale = space.resources.gpu or space.resources.cpu
    if search.type == "grid":
        varying = [k for k in dict.fromkeys(k for p in space.points for k in p)
                   if len({repr(p.get(k)) for p in space.points}) > 1 or k == "regularizer"]
        header = ["#", "trial_id", *varying, "epochs", "resources", "est_time"]
        rows, total = [], 0.0
        for number, (point, cfg) in enumerate(zip(space.points, space.trials), 1):
            hours = device_hours(trial_flops(cfg), space.resources)
            total += hours * scale
            rows.append([str(number), cfg.trial_id, *[_cell(getattr(cfg, k)) for k in varying],
                         str(cfg.epochs), label, _duration(hours)])
        lines += _columns([header, *rows])
        lines.append("per regularizer: " + "; ".join(
            f"{name} {len(seeds)} trials at {len(set(seeds))} seeds"
            for name, seeds in _seeds_by_regularizer(space.trials).items()))
        lines.append(f"cost estimate: {total:.3g} {unit} in all ({len(rows)} trials x {label}; "
                     f"nominal {GPU_FLOPS / 1e12:g} TFLOP/s per GPU, {CPU_CORE_FLOPS / 1e9:g} GFLOP/s "
                     "per CPU; rough)")
    else:
        lines.append(f"fixed: {show_point(space.base)}")
        for regularizer, values in space.optuna.describe().items():
            lines.append(f"  {regularizer}: {show_point(values) or '(no sampled keys)'}")
        checked = space.checked
        hours = max(device_hours(trial_flops(cfg), space.resources) * scale for cfg in checked)
        lines.append(f"resources per trial: {label}")
        lines.append(f"cost estimate: at most {hours * search.num_samples:.3g} {unit} "
                     f"({search.num_samples} trials x up to {hours:.3g} {unit}"
                     + ("; ASHA stops some early" if scheduler.type == "asha" else "")
                     + f"; nominal {GPU_FLOPS / 1e12:g} TFLOP/s per GPU, "
                       f"{CPU_CORE_FLOPS / 1e9:g} GFLOP/s per CPU; rough)")
    lines.append(f"storage estimate: {storage_estimate(space).text()} (rough)")
    if space.analysis:
        analysis = space.analysis
        lines.append(f"primary contrast (claim 2): mean gain of {', '.join(analysis.arms)} in "
                     f"{analysis.metric}, claimed drop {analysis.claimed_drop:g} pt, alpha "
                     f"{analysis.alpha:g}, declared {analysis.declared or '(no date)'}")
    lines += [f"report limit: {limit}" for limit in space_limits(space)]
    note = bf16_precision_note(space)
    if note:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _seeds_by_regularizer(trials: List[TrialConfig]) -> dict:
    """regularizer -> the seed of each of its trials (a case may run the baseline at more)."""
    found: dict = {}
    for cfg in trials:
        found.setdefault(cfg.regularizer, []).append(cfg.seed)
    return found


def space_limits(space: Space) -> List[str]:
    """What the report of this space cannot do (analysis.design.design_limits): a grid counts the
    seeds of each cell, regularizer and setting; an Optuna space is checked for its baseline only
    (its seeds are the sampler's to choose)."""
    if space.search.type != "grid":
        return design_limits(space.optuna.describe(), max_seeds=2)
    seeds = {}
    for cfg in space.trials:
        setting = repr(sorted((k, v) for k, v in cfg.to_dict().items() if k != "seed"))
        seeds.setdefault(setting, set()).add(cfg.seed)
    return design_limits({cfg.regularizer for cfg in space.trials},
                         max(map(len, seeds.values()), default=0))


def _duration(hours: float) -> str:
    seconds = hours * 3600
    return (f"{seconds:.0f}s" if seconds < 90 else f"{seconds / 60:.0f}min" if seconds < 5400
            else f"{hours:.1f}h")


def _cell(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "-"
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _columns(rows: List[List[str]]) -> List[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in rows]
