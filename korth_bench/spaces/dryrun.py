"""``korth-bench run --dry-run``: the expanded trial table and a rough cost estimate (no Ray here).

The cost is counted, not measured: multiply-accumulates of one forward pass on the meta device,
times the images a trial touches, over a nominal throughput per CPU or GPU.
"""
from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any, List, Optional

from korth_bench.analysis.design import design_limits
from korth_bench.config import TrialConfig
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
