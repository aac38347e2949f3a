"""The trial configuration: a typed, frozen dataclass inside, a flat dict at the edges.

YAML files, ``--set key=value`` and Ray's ``param_space`` all go through ``TrialConfig.from_dict``,
which coerces strings, checks every field and refuses unknown keys (with a close-match suggestion),
so a typo fails at once instead of becoming a silently new setting. The checks of each part belong
to that part (``models.check``, ``data.check``, ``regularizers.check``, ``robustness.check``): the
config only delegates, so a mistake reads the same from ``--set``, YAML and Python. ``to_dict()``
flattens a config back for the ``trials`` table; ``trial_id`` is a stable hash of the resolved
configuration.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import yaml

from korth_bench.errors import ConfigError


@dataclass(frozen=True)
class TrialConfig:
    # --- model ---
    model: str = "resnet"              # resnet (depth 6n+2), wrn (depth 6n+4), plain (depth conv layers)
    depth: int = 20
    width: int = 1                     # channel multiplier (resnet, plain) or widen factor (wrn)
    dropout: float = 0.0               # dropout probability (resnet, wrn: between the two convs of a block; plain: before the classifier)
    shortcut: Optional[str] = None     # A identity+zero padding, B 1x1 projection; None = family default (resnet A, wrn B)
    # --- data ---
    dataset: str = "synthetic"         # cifar10, cifar100, packed, synthetic
    data_path: Optional[str] = None    # packed Parquet file (local path or URI); required for dataset=packed
    data_root: Optional[str] = None    # torchvision root for cifar10/cifar100
    download: bool = False             # let torchvision download cifar10/cifar100 (needs network)
    num_classes: Optional[int] = None  # synthetic only (default 10); others take it from the data
    image_size: int = 32               # synthetic only
    train_size: int = 0                # seeded stratified training subset; 0 = all (synthetic: 2000)
    val_size: int = 0                  # held out of the training images, seeded and stratified; 0 = none
    test_size: int = 0                 # seeded stratified test subset; 0 = all (synthetic: 500)
    augment: bool = True               # random crop (4-pixel padding) + horizontal flip, on the device
    # --- optimization ---
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    lr_schedule: str = "cosine"        # cosine, multistep
    lr_milestones: Tuple[int, ...] = ()  # multistep epochs (0-based); empty = 50% and 75% of epochs
    lr_gamma: float = 0.1              # multistep factor
    warmup_epochs: int = 0             # linear warm-up from lr/10, per step
    # --- regularization ---
    regularizer: str = "none"          # korth-bench list shows the names and their parameters
    coefficient: float = 0.0           # lambda0 > 0, required by every regularizer but none (regularizers.required); 0 for none
    coefficient_schedule: str = "constant"  # constant, step ([SRIP]: x1, 1e-3, 1e-4, 1e-6, 0 at 0/20/50/70/120 of 200)
    relaxation: Optional[float] = None      # dn_relaxed only, required: r in [0, 1)
    power_iterations: Optional[int] = None  # srip only (default 2)
    squared: Optional[bool] = None          # srip only (default True)
    pairs: Optional[str] = None             # cs only: all, adjacent (default all)
    diag_weight: Optional[float] = None     # dn, dn_relaxed: alpha (default 1)
    corr_weight: Optional[float] = None     # dn, dn_relaxed: beta (default 1)
    regularize_linear: bool = False    # also penalize the classifier's weight
    penalty_reduction: str = "sum"     # sum over layers (as every reference code) or mean
    # --- initialization ---
    init: str = "default"              # default (PyTorch), orthogonal (reshaped kernels), cs_iterative ([CS])
    init_steps: int = 0                # cs_iterative: Adam steps on the cs penalty alone
    init_lr: float = 2e-3              # cs_iterative: Adam learning rate
    # --- run ---
    seed: int = 0
    device: str = "auto"               # auto (cuda when available), cpu, cuda
    precision: str = "fp32"            # fp32, bf16 (autocast; the penalty stays in float32), auto (bf16 where native, else fp32); auto becomes the default once benchmarks/precision_accuracy.py shows it within +-1 pt
    compile: bool = False              # torch.compile the training forward/backward; compile time -> compile_time_s, not epoch 0
    threads: int = 0                   # CPU torch threads; 0 = leave torch's default
    eval_batch_size: int = 0           # evaluation/attack batch; 0 = auto per device (trial.EVAL_BATCH_AUTO)
    measure_every: int = 0             # layer measures every N epochs as well as at the end; 0 = end only
    probe_size: int = 64               # images in the fixed feature-map probe batch (the fixed subset's first ones)
    checkpoint_every: int = 1          # epochs between checkpoints handed to report(); 0 = never
    convergence_thresholds: Tuple[float, ...] = (0.5, 0.7, 0.9)  # fixed test accuracies for epochs_to_acc_*
    # --- robustness (on a fixed subset of the whole test pool drawn by robustness_seed alone: the same for every trial) ---
    robustness: bool = True
    robustness_test_size: int = 1000
    robustness_seed: int = 0
    robustness_corruptions: Optional[Tuple[str, ...]] = None  # None = every corruption (trial.robustness.CORRUPTIONS)
    robustness_severities: Tuple[int, ...] = (1, 2, 3, 4, 5)
    robustness_attacks: Optional[Tuple[str, ...]] = None      # None = fgsm and pgd (trial.robustness.ATTACKS)
    robustness_pgd_eps: Tuple[int, ...] = (1, 2, 8)  # attack radii in units of 1/255
    robustness_pgd_steps: int = 10
    robustness_pgd_step_ratio: float = 0.25          # PGD step size as a fraction of eps

    # ------------------------------------------------------------------ construction
    @classmethod
    def field_names(cls) -> List[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "TrialConfig":
        """Coerce and validate a flat dict (dotted ``robustness.x`` keys accepted) into a config."""
        if not isinstance(values, dict):
            raise ConfigError(f"a trial configuration must be a mapping, got {type(values).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: Dict[str, Any] = {}
        for raw_key, value in values.items():
            key = str(raw_key).replace(".", "_")
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"unknown config key {raw_key!r}{hint} (korth-bench list shows every key)")
            kwargs[key] = _coerce(key, value, known[key])
        return _resolve(cls(**kwargs))

    @classmethod
    def coerce(cls, key: str, value: Any) -> Any:
        """One trial key's value in its field's type, as ``from_dict`` reads it (a search space's
        ``choice`` values go through here, so Optuna samples numbers, not their text)."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        return _coerce(key, value, known[key])

    # ------------------------------------------------------------------ export
    def to_dict(self) -> Dict[str, Any]:
        """The flat config columns of the ``trials`` table (tuples become lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @property
    def config_hash(self) -> str:
        identity = {k: v for k, v in self.to_dict().items() if k not in NOT_IDENTITY}
        if identity.get("data_path"):
            identity["data_path"] = os.path.basename(str(identity["data_path"]).rstrip("/"))
        blob = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def trial_id(self) -> str:
        return self.config_hash[:12]

    @property
    def name(self) -> str:
        """A readable trial name: model, depth, width, regularizer, seed and the id."""
        return f"{self.model}{self.depth}x{self.width}-{self.regularizer}-s{self.seed}-{self.trial_id}"

    def regularizer_params(self) -> Dict[str, Any]:
        """The parameters handed to ``regularizers.get(self.regularizer, **params)``; a
        regularizer with its own random stream (srip's ``seed``) is seeded with the trial seed."""
        from korth_bench import regularizers

        params = {k: getattr(self, k) for k in REGULARIZER_PARAM_KEYS if getattr(self, k) is not None}
        if "seed" in regularizers.describe().get(self.regularizer, {}):
            params["seed"] = self.seed
        return params

    def data_options(self):
        """The ``data.SourceOptions`` of this trial (what ``data.load`` and ``data.check`` take)."""
        from korth_bench.data import SourceOptions

        return SourceOptions(seed=self.seed, train_size=self.train_size, val_size=self.val_size,
                             test_size=self.test_size, data_path=self.data_path,
                             data_root=self.data_root, download=self.download,
                             num_classes=self.num_classes, image_size=self.image_size,
                             fixed_size=max(self.robustness_test_size, self.probe_size),
                             fixed_seed=self.robustness_seed)

    def robustness_options(self):
        """The ``trial.robustness.RobustnessOptions`` of this trial (the ``robustness_*`` keys)."""
        from korth_bench.trial.robustness import RobustnessOptions

        return RobustnessOptions(corruptions=self.robustness_corruptions,
                                 severities=self.robustness_severities,
                                 attacks=self.robustness_attacks, pgd_eps=self.robustness_pgd_eps,
                                 pgd_steps=self.robustness_pgd_steps,
                                 pgd_step_ratio=self.robustness_pgd_step_ratio,
                                 seed=self.robustness_seed)

    def replace(self, **changes: Any) -> "TrialConfig":
        return TrialConfig.from_dict({**self.to_dict(), **changes})


# Settings that change how fast a trial runs or where its data lives, never what it computes.
NOT_IDENTITY = {"threads", "checkpoint_every", "data_root", "download", "eval_batch_size"}
REGULARIZER_PARAM_KEYS = ("relaxation", "power_iterations", "squared", "pairs", "diag_weight", "corr_weight")


# ---------------------------------------------------------------------- coercion
def _coerce(key: str, value: Any, spec: dataclasses.Field) -> Any:
    """Turn ``value`` into the field's type: a string (from ``--set``, or YAML 1.1's ``1e-3``) is
    read by ``number`` for a numeric field and as a YAML literal for a list or boolean field."""
    kind = field_kind(spec)
    if value is None:
        if kind.optional:
            return None
        raise ConfigError(f"{key} must not be null")
    if isinstance(value, str) and kind.base is not str:
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        if parsed is None and kind.optional:
            return None
        if kind.is_tuple or kind.base is bool:  # a number keeps its text for number()
            value = parsed
    if kind.is_tuple:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list of {kind.base.__name__}, got {value!r}")
        return tuple(_scalar(key, v, kind.base) for v in value)
    return _scalar(key, value, kind.base)


def number(value: Any, where: str) -> float:
    """A finite number as people write it: an int or float as it is, a string as Python's
    ``float()`` reads it (``1e-3``, ``1E-3``, ``1e+3``, ``.5``: PyYAML follows YAML 1.1, which
    leaves ``1e-3`` a string). Booleans, ``nan``, ``inf`` and other text raise ``ConfigError``
    naming ``where``. The one place numbers are read from text: trial keys (``--set``, YAML,
    grids), distribution bounds and resources all call it."""
    parsed = value
    if isinstance(value, str):
        try:
            parsed = float(value)
        except ValueError:
            pass
    if isinstance(parsed, bool) or not isinstance(parsed, (int, float)) or not math.isfinite(parsed):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    return parsed


def _scalar(key: str, value: Any, base: type) -> Any:
    if base is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if base is int:
        parsed = number(value, key)
        if parsed != int(parsed):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return int(parsed)
    if base is float:
        return float(number(value, key))
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, got {value!r}")
    return value


@dataclass(frozen=True)
class FieldKind:
    """What a ``TrialConfig`` field holds: a scalar type, maybe None, maybe a tuple of it."""
    base: type
    optional: bool = False
    is_tuple: bool = False


def field_kind(spec: dataclasses.Field) -> FieldKind:
    """The kind of a field, read from its annotation (``Optional[Tuple[str, ...]]`` and so on);
    the config coerces values by it and the ``trials`` schema types its column by it."""
    text = str(spec.type)
    base = re.search(r"\b(bool|int|float|str)\b", text)
    assert base, f"unhandled field type {spec.type} for {spec.name}"
    types = {"bool": bool, "int": int, "float": float, "str": str}
    return FieldKind(types[base.group(1)], text.startswith("Optional["), "Tuple[" in text)


# ---------------------------------------------------------------------- validation
def _choice(key: str, value: Any, allowed) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; choose from: {', '.join(map(str, allowed))}")


def _at_least(key: str, value: float, low: float, strict: bool = False) -> None:
    if value < low or (strict and value == low):
        raise ConfigError(f"{key}={value!r} must be {'>' if strict else '>='} {low}")


def _resolve(cfg: TrialConfig) -> TrialConfig:
    """Check every field (each part checks its own) and fill in the resolved defaults."""
    from korth_bench import data, models, regularizers  # imported here to keep config light
    from korth_bench.trial import precision, robustness, schedules

    changes: Dict[str, Any] = {}
    models.check(cfg.model, cfg.depth, cfg.width, dropout=cfg.dropout, shortcut=cfg.shortcut)
    data.check(cfg.dataset, cfg.data_options())

    _at_least("epochs", cfg.epochs, 1)
    _at_least("batch_size", cfg.batch_size, 1)
    _at_least("lr", cfg.lr, 0.0, strict=True)
    if not 0.0 <= cfg.momentum < 1.0:
        raise ConfigError(f"momentum={cfg.momentum!r} must be in [0, 1)")
    if cfg.nesterov and cfg.momentum == 0:
        raise ConfigError("nesterov=true needs momentum > 0")
    _at_least("weight_decay", cfg.weight_decay, 0.0)
    _choice("lr_schedule", cfg.lr_schedule, schedules.LR_SCHEDULES)
    if cfg.lr_schedule == "multistep" and not cfg.lr_milestones:
        changes["lr_milestones"] = (round(0.5 * cfg.epochs), round(0.75 * cfg.epochs))
    if list(cfg.lr_milestones) != sorted(set(cfg.lr_milestones)) or any(m < 0 for m in cfg.lr_milestones):
        raise ConfigError(f"lr_milestones={list(cfg.lr_milestones)} must be increasing epochs >= 0")
    _at_least("lr_gamma", cfg.lr_gamma, 0.0, strict=True)
    _at_least("warmup_epochs", cfg.warmup_epochs, 0)

    _choice("coefficient_schedule", cfg.coefficient_schedule, schedules.COEFFICIENT_SCHEDULES)
    _choice("penalty_reduction", cfg.penalty_reduction, regularizers.REDUCTIONS)
    changes.update(regularizers.check(cfg.regularizer,
                                      {key: getattr(cfg, key) for key in REGULARIZER_PARAM_KEYS},
                                      coefficient=cfg.coefficient,
                                      include_linear=cfg.regularize_linear))

    _choice("init", cfg.init, ("default", "orthogonal", "cs_iterative"))
    _at_least("init_steps", cfg.init_steps, 0)
    if cfg.init == "cs_iterative" and cfg.init_steps == 0:
        raise ConfigError("init=cs_iterative needs init_steps > 0")
    _at_least("init_lr", cfg.init_lr, 0.0, strict=True)
    _choice("device", cfg.device, ("auto", "cpu", "cuda"))
    _choice("precision", cfg.precision, precision.PRECISIONS)
    for key in ("threads", "measure_every", "checkpoint_every", "seed", "eval_batch_size"):
        _at_least(key, getattr(cfg, key), 0)
    for key in ("probe_size", "robustness_test_size"):
        _at_least(key, getattr(cfg, key), 1)
    for t in cfg.convergence_thresholds:
        if not 0.0 < t <= 1.0:
            raise ConfigError(f"convergence_thresholds entry {t!r} must be in (0, 1]")
    if cfg.robustness_corruptions is None:
        changes["robustness_corruptions"] = robustness.CORRUPTIONS
    if cfg.robustness_attacks is None:
        changes["robustness_attacks"] = robustness.ATTACKS
    merged = dataclasses.replace(cfg, **changes)
    robustness.check(merged.robustness_options())
    return merged
