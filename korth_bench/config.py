"""The trial configuration: a typed, frozen dataclass inside, a flat dict at the edges.

YAML files, ``--set key=value`` and Ray's ``param_space`` all go through ``TrialConfig.from_dict``,
which coerces strings, checks every field and refuses unknown keys (with a close-match suggestion),
so a typo fails at once instead of becoming a silently new setting. ``to_row()`` flattens a config
back for the ``trials`` table; ``trial_id`` is a stable hash of the resolved configuration.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import yaml

CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "gaussian_blur", "contrast",
               "brightness", "jpeg", "pixelate")
ATTACKS = ("fgsm", "pgd")
PRECISIONS = ("auto", "fp32", "bf16")  # auto: korth_bench.precision.resolve_precision


class ConfigError(ValueError):
    """A configuration value that is not allowed; the message names field, value and choices."""


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
    coefficient: float = 0.0           # lambda0; forced to 0 for regularizer none
    coefficient_schedule: str = "constant"  # constant, step ([SRIP]: x1, 1e-3, 1e-4, 1e-6, 0 at 0/20/50/70/120 of 200)
    relaxation: Optional[float] = None      # dn_relaxed only: r in [0, 1)
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
    precision: str = "auto"            # auto (bf16 where native, else fp32), fp32, bf16 (autocast; the penalty stays in float32)
    compile: bool = False              # torch.compile the training forward/backward; compile time -> compile_time_s, not epoch 0
    threads: int = 0                   # CPU torch threads; 0 = leave torch's default
    eval_batch_size: int = 0           # evaluation/attack batch; 0 = auto per device (trial.EVAL_BATCH_AUTO)
    measure_every: int = 0             # layer measures every N epochs as well as at the end; 0 = end only
    probe_size: int = 64               # test images in the fixed feature-map probe batch
    checkpoint_every: int = 1          # epochs between checkpoints handed to report(); 0 = never
    convergence_thresholds: Tuple[float, ...] = (0.5, 0.7, 0.9)  # fixed test accuracies for epochs_to_acc_*
    # --- robustness (on a fixed, seeded test subset, the same for every trial) ---
    robustness: bool = True
    robustness_test_size: int = 1000
    robustness_seed: int = 0
    robustness_corruptions: Tuple[str, ...] = CORRUPTIONS
    robustness_severities: Tuple[int, ...] = (1, 2, 3, 4, 5)
    robustness_attacks: Tuple[str, ...] = ATTACKS
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

    # ------------------------------------------------------------------ export
    def to_dict(self) -> Dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    def to_row(self) -> Dict[str, Any]:
        """The flat config columns of the ``trials`` table (lists stay lists)."""
        return self.to_dict()

    @property
    def config_hash(self) -> str:
        identity = {k: v for k, v in self.to_dict().items() if k not in _NOT_IDENTITY}
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

    def replace(self, **changes: Any) -> "TrialConfig":
        return TrialConfig.from_dict({**self.to_dict(), **changes})


# Settings that change how fast a trial runs or where its data lives, never what it computes.
_NOT_IDENTITY = {"threads", "checkpoint_every", "data_root", "download", "eval_batch_size"}
REGULARIZER_PARAM_KEYS = ("relaxation", "power_iterations", "squared", "pairs", "diag_weight", "corr_weight")


# ---------------------------------------------------------------------- coercion
def _coerce(key: str, value: Any, spec: dataclasses.Field) -> Any:
    """Turn ``value`` into the field's type; strings (from ``--set``) are parsed as YAML literals."""
    kind = _field_kind(spec)
    if value is None:
        if kind.optional:
            return None
        raise ConfigError(f"{key} must not be null")
    if isinstance(value, str) and kind.base is not str:
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            pass
        if value is None and kind.optional:
            return None
    if kind.is_tuple:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list of {kind.base.__name__}, got {value!r}")
        return tuple(_scalar(key, v, kind.base) for v in value)
    return _scalar(key, value, kind.base)


def _scalar(key: str, value: Any, base: type) -> Any:
    expected = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[base]
    if base is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be {expected}, got {value!r}")
    if base is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
            raise ConfigError(f"{key} must be {expected}, got {value!r}")
        return int(value)
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{key} must be {expected} (finite), got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be {expected}, got {value!r}")
    return value


@dataclass
class _Kind:
    base: type
    optional: bool = False
    is_tuple: bool = False


def _field_kind(spec: dataclasses.Field) -> _Kind:
    text = str(spec.type)
    base = re.search(r"\b(bool|int|float|str)\b", text)
    assert base, f"unhandled field type {spec.type} for {spec.name}"
    types = {"bool": bool, "int": int, "float": float, "str": str}
    return _Kind(types[base.group(1)], text.startswith("Optional["), text.startswith("Tuple["))


# ---------------------------------------------------------------------- validation
def _choice(key: str, value: Any, allowed) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; choose from: {', '.join(map(str, allowed))}")


def _at_least(key: str, value: float, low: float, strict: bool = False) -> None:
    if value < low or (strict and value == low):
        raise ConfigError(f"{key}={value!r} must be {'>' if strict else '>='} {low}")


def _resolve(cfg: TrialConfig) -> TrialConfig:
    """Check every field against the registries and fill in the resolved defaults."""
    from korth_bench import data, models, regularizers  # registries; imported here to keep config light

    changes: Dict[str, Any] = {}
    _choice("model", cfg.model, models.names())
    valid = models.valid_depths(cfg.model, upto=max(cfg.depth, 200))
    if cfg.depth not in valid:
        nearest = sorted(valid, key=lambda d: (abs(d - cfg.depth), d))[:2]
        raise ConfigError(f"depth={cfg.depth} is not valid for model {cfg.model!r} "
                          f"(valid: {', '.join(map(str, valid[:6]))}, ...); nearest: "
                          f"{' or '.join(map(str, sorted(nearest)))}")
    _at_least("width", cfg.width, 1)
    if not 0.0 <= cfg.dropout < 1.0:
        raise ConfigError(f"dropout={cfg.dropout!r} must be in [0, 1)")
    if cfg.shortcut is not None:
        _choice("shortcut", cfg.shortcut, ("A", "B"))

    _choice("dataset", cfg.dataset, data.names())
    if cfg.dataset == "packed" and not cfg.data_path:
        raise ConfigError("dataset=packed needs data_path (a packed Parquet file, local path or URI)")
    if cfg.num_classes is not None:
        if cfg.dataset != "synthetic":
            raise ConfigError(f"num_classes applies only to dataset=synthetic, got dataset={cfg.dataset!r}")
        _at_least("num_classes", cfg.num_classes, 2)
    for key in ("train_size", "val_size", "test_size"):
        _at_least(key, getattr(cfg, key), 0)
    _at_least("image_size", cfg.image_size, 8)

    _at_least("epochs", cfg.epochs, 1)
    _at_least("batch_size", cfg.batch_size, 1)
    _at_least("lr", cfg.lr, 0.0, strict=True)
    if not 0.0 <= cfg.momentum < 1.0:
        raise ConfigError(f"momentum={cfg.momentum!r} must be in [0, 1)")
    if cfg.nesterov and cfg.momentum == 0:
        raise ConfigError("nesterov=true needs momentum > 0")
    _at_least("weight_decay", cfg.weight_decay, 0.0)
    _choice("lr_schedule", cfg.lr_schedule, ("cosine", "multistep"))
    if cfg.lr_schedule == "multistep" and not cfg.lr_milestones:
        changes["lr_milestones"] = (round(0.5 * cfg.epochs), round(0.75 * cfg.epochs))
    if list(cfg.lr_milestones) != sorted(set(cfg.lr_milestones)) or any(m < 0 for m in cfg.lr_milestones):
        raise ConfigError(f"lr_milestones={list(cfg.lr_milestones)} must be increasing epochs >= 0")
    _at_least("lr_gamma", cfg.lr_gamma, 0.0, strict=True)
    _at_least("warmup_epochs", cfg.warmup_epochs, 0)

    _choice("regularizer", cfg.regularizer, regularizers.names())
    _at_least("coefficient", cfg.coefficient, 0.0)
    if cfg.regularizer == "none":
        changes["coefficient"] = 0.0
    _choice("coefficient_schedule", cfg.coefficient_schedule, ("constant", "step"))
    _choice("penalty_reduction", cfg.penalty_reduction, ("sum", "mean"))
    accepted = regularizers.describe().get(cfg.regularizer, {})
    for key in REGULARIZER_PARAM_KEYS:
        value = getattr(cfg, key)
        if key not in accepted:
            if value is not None:
                takers = sorted(n for n, p in regularizers.describe().items() if key in p)
                raise ConfigError(f"{key}={value!r} does not apply to regularizer {cfg.regularizer!r} "
                                  f"(it applies to: {', '.join(takers) or 'none'})")
        elif value is None:
            if accepted[key] is None:
                raise ConfigError(f"regularizer {cfg.regularizer!r} needs {key}")
            changes[key] = accepted[key]
    if cfg.relaxation is not None and not 0.0 <= cfg.relaxation < 1.0:
        raise ConfigError(f"relaxation={cfg.relaxation!r} must be in [0, 1)")
    merged = dataclasses.replace(cfg, **changes)
    try:  # the regularizer's own checks (ranges, choices) with the exact message it gives
        regularizers.get(merged.regularizer, **merged.regularizer_params())
    except ValueError as err:
        raise ConfigError(str(err)) from None

    _choice("init", cfg.init, ("default", "orthogonal", "cs_iterative"))
    _at_least("init_steps", cfg.init_steps, 0)
    if cfg.init == "cs_iterative" and cfg.init_steps == 0:
        raise ConfigError("init=cs_iterative needs init_steps > 0")
    _at_least("init_lr", cfg.init_lr, 0.0, strict=True)
    _choice("device", cfg.device, ("auto", "cpu", "cuda"))
    _choice("precision", cfg.precision, PRECISIONS)
    for key in ("threads", "measure_every", "checkpoint_every", "seed", "robustness_seed",
                "eval_batch_size"):
        _at_least(key, getattr(cfg, key), 0)
    for key in ("probe_size", "robustness_test_size", "robustness_pgd_steps"):
        _at_least(key, getattr(cfg, key), 1)
    for t in cfg.convergence_thresholds:
        if not 0.0 < t <= 1.0:
            raise ConfigError(f"convergence_thresholds entry {t!r} must be in (0, 1]")
    for name in cfg.robustness_corruptions:
        _choice("robustness_corruptions", name, CORRUPTIONS)
    for severity in cfg.robustness_severities:
        _choice("robustness_severities", severity, range(1, 6))
    for name in cfg.robustness_attacks:
        _choice("robustness_attacks", name, ATTACKS)
    for eps in cfg.robustness_pgd_eps:
        _at_least("robustness_pgd_eps", eps, 1)
    if not 0.0 < cfg.robustness_pgd_step_ratio <= 1.0:
        raise ConfigError(f"robustness_pgd_step_ratio={cfg.robustness_pgd_step_ratio!r} must be in (0, 1]")
    return merged
