"""Learning-rate and coefficient schedules as pure functions of the step or epoch (nanoGPT's get_lr).

Setting the learning rate from a function of the global step keeps the checkpoint small (the step
is all the state there is) and makes a resumed trial follow exactly the same schedule.
"""
from __future__ import annotations

import math
from typing import Sequence

# [SRIP]'s step schedule: lambda0 times these factors from these epochs of a 200-epoch run.
SRIP_BREAKPOINTS = (0, 20, 50, 70, 120)
SRIP_FACTORS = (1.0, 1e-3, 1e-4, 1e-6, 0.0)
WARMUP_START_FRACTION = 0.1  # warm-up rises linearly from lr/10


def lr_at(step: int, *, lr: float, schedule: str, steps_per_epoch: int, epochs: int,
          milestones: Sequence[int] = (), gamma: float = 0.1, warmup_epochs: int = 0) -> float:
    """Learning rate for global optimizer step ``step`` (0-based).

    Args:
        schedule: ``cosine`` (per step, from ``lr`` to 0 over the run after warm-up) or
            ``multistep`` (``lr * gamma**k`` after the k-th milestone epoch, 0-based).
        warmup_epochs: linear warm-up from ``lr/10`` to ``lr`` over this many epochs, per step.
    """
    total = steps_per_epoch * epochs
    warmup = steps_per_epoch * warmup_epochs
    if step < warmup:
        return lr * (WARMUP_START_FRACTION + (1 - WARMUP_START_FRACTION) * step / warmup)
    if schedule == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        return lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    if schedule == "multistep":
        epoch = step // steps_per_epoch
        return lr * gamma ** sum(epoch >= m for m in milestones)
    raise ValueError(f"lr_schedule={schedule!r} is not allowed; choose from: cosine, multistep")


def coefficient_at(epoch: int, *, coefficient: float, schedule: str, epochs: int) -> float:
    """Penalty coefficient lambda(epoch) for a 0-based epoch.

    ``constant``: lambda0 throughout. ``step`` ([SRIP]): lambda0 times 1, 1e-3, 1e-4, 1e-6, 0 from
    epochs 0, 20, 50, 70, 120 of 200, each breakpoint scaled to the run as round(b * E / 200).
    """
    if schedule == "constant":
        return coefficient
    if schedule == "step":
        factor = SRIP_FACTORS[0]
        for breakpoint, step_factor in zip(SRIP_BREAKPOINTS, SRIP_FACTORS):
            if epoch >= round(breakpoint * epochs / 200):
                factor = step_factor
        return coefficient * factor
    raise ValueError(f"coefficient_schedule={schedule!r} is not allowed; choose from: constant, step")
