"""A trial's checkpoint, defined once for save and for restore.

``state.pt`` holds the training objects' states (model, optimizer, the regularizer's random
stream, the data-order generator, torch's global CPU and CUDA generators), the ``Progress`` made
so far (epoch, step, the epochs and layers rows, training seconds) and the resolved configuration.
A trial restored from it continues bit-identically with the epoch after ``Progress.epoch``.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from korth_bench.errors import ConfigError

CHECKPOINT_FILE = "state.pt"


@dataclass
class TrainingObjects:
    """What a checkpoint saves the state of (the rest of a trial is rebuilt from its config)."""
    model: nn.Module
    optimizer: torch.optim.Optimizer
    regularizer: Any                 # a Regularizer: state_dict()/load_state_dict() (srip's stream)
    generator: torch.Generator       # data order and augmentation


@dataclass
class Progress:
    """How far a trial got."""
    epoch: int                       # the last finished epoch (0-based)
    step: int                        # optimizer steps taken (the schedules' position)
    epochs: List[Dict[str, Any]]     # the epochs rows so far
    layers: List[Dict[str, Any]]     # the layers rows so far (measure_every)
    train_time_s: float              # training seconds so far
    compile_time_s: Optional[float] = None  # torch.compile's warm-ups so far (compile: true)
    wall_time_s: float = 0.0         # wall seconds of the trial's processes up to this checkpoint


_WITH_STATE_DICT = ("model", "optimizer", "regularizer")


def save(directory: str, objects: TrainingObjects, progress: Progress, config: Dict[str, Any]) -> None:
    """Write ``directory/state.pt``."""
    state = {name: getattr(objects, name).state_dict() for name in _WITH_STATE_DICT}
    state.update(generator=objects.generator.get_state(), cpu_rng=torch.get_rng_state(),
                 cuda_rng=torch.cuda.get_rng_state() if objects.generator.device.type == "cuda" else None,
                 config=config, **dataclasses.asdict(progress))
    torch.save(state, os.path.join(directory, CHECKPOINT_FILE))


def restore(directory: str, objects: TrainingObjects) -> Progress:
    """Load ``directory/state.pt`` into ``objects`` and the global generators; returns its progress."""
    path = os.path.join(directory, CHECKPOINT_FILE)
    if not os.path.exists(path):
        raise ConfigError(f"resume_from={directory!r} holds no {CHECKPOINT_FILE}")
    state = torch.load(path, map_location="cpu", weights_only=False)
    for name in _WITH_STATE_DICT:
        getattr(objects, name).load_state_dict(state[name])
    objects.generator.set_state(state["generator"])
    torch.set_rng_state(state["cpu_rng"])
    if state.get("cuda_rng") is not None and objects.generator.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"])
    return Progress(**{f.name: state[f.name] for f in dataclasses.fields(Progress) if f.name in state})
