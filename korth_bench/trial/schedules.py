"""Learning-rate and coefficient schedules as pure functions of the step or epoch (nanoGPT's get_lr).

Setting the learning rate from a function of the global step keeps the checkpoint small (the step
is all the state there is) and makes a resumed trial follow exactly the same schedule.
"""
from __future__ import annotations

import math

LR_SCHEDULES = ("cosine", "multistep")
COEFFICIENT_SCHEDULES = ("constant", "step")
# [SRIP]'s step schedule: lambda0 times these factors from these epochs of a 200-epoch run.
SRIP_BREAKPOINTS = (0, 20, 50, 70, 120)
SRIP_FACTORS = (1.0, 1e-3, 1e-4, 1e-6, 0.0)
WARMUP_START_FRACTION = 0.1  # warm-up rises linearly from lr/10


def lr_at(step: int, config, steps_per_epoch: int) -> float:
    """Learning rate for global optimizer step ``step`` (0-based) of a trial (a ``TrialConfig``).

    ``lr_schedule``: ``cosine`` (per step, from ``lr`` to 0 over the run after warm-up) or
    ``multistep`` (``lr * lr_gamma**k`` after the k-th of ``lr_milestones``, 0-based epochs);
    ``warmup_epochs``: linear warm-up from ``lr/10`` to ``lr`` over that many epochs, per step.
    """
    lr = config.lr
    total = steps_per_epoch * config.epochs
    warmup = steps_per_epoch * config.warmup_epochs
    if step < warmup:
        return lr * (WARMUP_START_FRACTION + (1 - WARMUP_START_FRACTION) * step / warmup)
    if config.lr_schedule == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        return lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    assert config.lr_schedule == "multistep", config.lr_schedule  # TrialConfig checked LR_SCHEDULES
    epoch = step // steps_per_epoch
    return lr * config.lr_gamma ** sum(epoch >= m for m in config.lr_milestones)


def coefficient_at(epoch: int, config) -> float:
    """Penalty coefficient lambda(epoch) for a 0-based epoch of a trial (a ``TrialConfig``).

    ``constant``: lambda0 (``coefficient``) throughout. ``step`` ([SRIP]): lambda0 times 1, 1e-3,
    1e-4, 1e-6, 0 from epochs 0, 20, 50, 70, 120 of 200, each breakpoint scaled to the run as
    round(b * E / 200).
    """
    if config.coefficient_schedule == "constant":
        return config.coefficient
    assert config.coefficient_schedule == "step", config.coefficient_schedule
    factor = SRIP_FACTORS[0]
    for breakpoint, step_factor in zip(SRIP_BREAKPOINTS, SRIP_FACTORS):
        if epoch >= round(breakpoint * config.epochs / 200):
            factor = step_factor
    return config.coefficient * factor
