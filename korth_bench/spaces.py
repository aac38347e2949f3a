"""Search spaces: a YAML file -> validated, expanded trial configurations (no Ray here).

The schema (docs/search_spaces.md has the full reference)::

    name: smoke                      # sweep name: tables go to <storage>/<name>/
    description: ...                 # free text, shown by --dry-run
    data: {dataset: synthetic}       # fixed trial keys, grouped for reading: data, training,
    training: {epochs: 2}            #   fixed (anything else); robustness takes the keys
    robustness: {enabled: true, pgd_eps: [1, 8]}   # without the robustness_ prefix
    fixed: {model: resnet}
    grid: {depth: [8, 14], seed: [0, 1], coefficient: [1e-4, 1e-3]}   # Cartesian product
    regularizers:                    # the regularizer axis, with per-regularizer values
      none: {}                       #   coefficient is never multiplied into none
      so: {}
      dn_relaxed: {relaxation: [0.1, 0.5]}   # own axes/values replace the shared ones
    sample: {lr: {loguniform: [0.01, 0.3]}}  # Optuna distributions: uniform, loguniform, int, choice
    resources: {cpu: 1, gpu: 0.25}   # per trial; gpu >= 2 (or workers > 1): data-parallel trial
    search: {type: optuna, metric: [val_acc, pgd_acc_8_255], mode: [max, max], num_samples: 20,
             concurrency: 4, seed: 0}
    scheduler: {type: asha, grace_period: 2, reduction_factor: 3}
    failure: {max_retries: 1}
    checkpoint: {every: 1, keep: 2}

Every trial configuration goes through ``TrialConfig.from_dict``; a grid is expanded completely
and de-duplicated by ``trial_id``; an Optuna space is checked at every bound and choice. A key that
is a regularizer parameter (``relaxation``, ``pairs``, ...) applies only to the regularizers that
take it, and ``coefficient`` never applies to ``none``. ``${VAR}`` and ``${VAR:-default}`` in
strings are replaced from the environment; relative data paths become absolute (against the
current directory), so trials never depend on their working directory.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import itertools
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import yaml

from korth_bench import regularizers, results
from korth_bench.config import REGULARIZER_PARAM_KEYS, ConfigError, TrialConfig

SPACES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "search_spaces")
SECTIONS = ("name", "description", "data", "training", "robustness", "fixed", "grid", "regularizers",
            "sample", "resources", "search", "scheduler", "failure", "checkpoint")
TRIAL_SECTIONS = ("data", "training", "robustness", "fixed")
DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")
PATH_KEYS = ("data_path", "data_root")


# ---------------------------------------------------------------------- the parsed space
@dataclass(frozen=True)
class Resources:
    """Per trial: ``cpu`` logical CPUs and ``gpu`` GPUs in all, split over ``workers``
    data-parallel workers (a fraction of a GPU packs several trials on one)."""
    cpu: float = 1.0
    gpu: float = 0.0
    workers: int = 1

    @property
    def per_worker(self) -> Dict[str, float]:
        return {"cpu": self.cpu / self.workers, "gpu": self.gpu / self.workers}


@dataclass(frozen=True)
class Search:
    type: str = "grid"                   # grid (every configuration once) or optuna
    metrics: Tuple[str, ...] = ("test_acc",)
    modes: Tuple[str, ...] = ("max",)
    num_samples: int = 0                 # optuna: trials to sample; grid: the grid's size
    concurrency: Optional[int] = None    # trials at once; None: as many as resources allow
    seed: int = 0                        # optuna sampler seed


@dataclass(frozen=True)
class Scheduler:
    type: str = "fifo"                   # fifo (run every trial to the end) or asha
    grace_period: int = 1                # asha: epochs before a trial can be stopped
    reduction_factor: float = 2.0        # asha: keep the best 1/reduction_factor at each rung
    metric: Optional[str] = None         # asha: an epochs column (default: the first search metric)
    mode: Optional[str] = None


@dataclass(frozen=True)
class Space:
    name: str
    path: str
    description: str
    base: Dict[str, Any]                 # fixed trial keys shared by every trial
    points: List[Dict[str, Any]]         # grid: per trial, the keys set on top of ``base``
    trials: List[TrialConfig]            # grid: the resolved configuration of each point
    optuna: Optional["OptunaSpace"]      # optuna: the define-by-run space
    resources: Resources
    search: Search
    scheduler: Scheduler
    max_retries: int = 0
    checkpoint_every: int = 1
    checkpoint_keep: int = 2

    @property
    def num_trials(self) -> int:
        return len(self.trials) if self.search.type == "grid" else self.search.num_samples

    def config(self, point: Mapping[str, Any]) -> TrialConfig:
        """The trial configuration of one point (a grid entry or an Optuna sample)."""
        return TrialConfig.from_dict({**self.base, **point})


# ---------------------------------------------------------------------- loading
def names(directory: str = SPACES_DIR) -> List[str]:
    """The search spaces shipped in ``search_spaces/`` (file names without .yaml)."""
    if not os.path.isdir(directory):
        return []
    return sorted(f[: -len(".yaml")] for f in os.listdir(directory) if f.endswith(".yaml"))


def find(name_or_path: str) -> str:
    """A path to a YAML file, or the name of one in ``search_spaces/``."""
    if os.path.exists(name_or_path):
        return name_or_path
    shipped = os.path.join(SPACES_DIR, f"{name_or_path}.yaml")
    if os.path.exists(shipped):
        return shipped
    raise ConfigError(f"search space {name_or_path!r} is neither a file nor one of: {', '.join(names())}")


def load(name_or_path: str) -> Space:
    """Read, validate and expand a search space; raises ``ConfigError`` naming the bad field."""
    path = find(name_or_path)
    try:
        with open(path) as handle:
            raw = yaml.safe_load(handle)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}; a search space is a YAML "
                          f"mapping of sections ({', '.join(SECTIONS)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a search space must be a mapping of sections ({', '.join(SECTIONS)})")
    try:
        return parse(_expand_env(raw, ""), path)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def parse(raw: Mapping[str, Any], path: str = "<memory>") -> Space:
    for key in raw:
        if key not in SECTIONS:
            raise ConfigError(f"unknown section {key!r}{_hint(key, SECTIONS)}; sections: {', '.join(SECTIONS)}")
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ConfigError(f"name={name!r} must be a word of letters, digits, '_', '.', '-' "
                          "(it names the sweep directory)")
    search = _search(_mapping(raw, "search"))
    base = _base(raw)
    entries = _regularizer_entries(raw, base)
    grid = _mapping(raw, "grid")
    sample = _mapping(raw, "sample")
    _no_overlap(base, grid, sample)
    checkpoint = _mapping(raw, "checkpoint")
    _only(checkpoint, "checkpoint", ("every", "keep"))
    every = _integer(checkpoint.get("every", 1), "checkpoint.every", 0)
    if "checkpoint_every" in base:
        raise ConfigError("set checkpoint_every through the checkpoint section (checkpoint.every)")
    base["checkpoint_every"] = every
    failure = _mapping(raw, "failure")
    _only(failure, "failure", ("max_retries",))

    if search.type == "grid":
        if sample:
            raise ConfigError("sample needs search.type: optuna (a grid search takes grid lists)")
        points, trials = _expand_grid(base, grid, entries)
        search = dataclasses.replace(search, num_samples=len(trials))
        optuna = None
        probe = trials
    else:
        if grid:
            raise ConfigError("grid needs search.type: grid; with optuna write the values as "
                              "sample: {key: {choice: [...]}}")
        optuna = OptunaSpace(_optuna_entries(sample, entries))
        points, trials = [], []
        probe = optuna.check(base)
    space = Space(name=name, path=os.path.abspath(path), description=str(raw.get("description", "")).strip(),
                  base=base, points=points, trials=trials, optuna=optuna,
                  resources=_resources(_mapping(raw, "resources")), search=search,
                  scheduler=_scheduler(_mapping(raw, "scheduler"), search),
                  max_retries=_integer(failure.get("max_retries", 0), "failure.max_retries", 0),
                  checkpoint_every=every,
                  checkpoint_keep=_integer(checkpoint.get("keep", 2), "checkpoint.keep", 1))
    _check_metrics(space, probe, grid, sample, entries)
    return space


# ---------------------------------------------------------------------- inputs a sweep reads
def check_data(space: Space) -> None:
    """Every packed data file the trials of ``space`` read exists and is a Parquet file with the
    packed columns (only the footer is read: decoding stays with the trials)."""
    from korth_bench.data.packed import COLUMNS, open_location

    configs = space.trials if space.search.type == "grid" else space.optuna.check(space.base)
    for data_path in sorted({cfg.data_path for cfg in configs if cfg.dataset == "packed" and cfg.data_path}):
        allowed = f"a packed Parquet file with columns {', '.join(COLUMNS)} (korth-bench data pack makes one)"
        try:
            filesystem, path = open_location(data_path)
            if filesystem.get_file_info(path).type != pafs.FileType.File:
                raise ConfigError(f"data_path={data_path!r}: no such file; expected {allowed}")
            with filesystem.open_input_file(path) as handle:
                names = pq.ParquetFile(handle).schema_arrow.names
        except (pa.ArrowException, OSError) as err:
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConfigError(f"data_path={data_path!r}: not a readable Parquet file ({message}); "
                              f"expected {allowed}") from None
        missing = [name for name in COLUMNS if name not in names]
        if missing:
            raise ConfigError(f"data_path={data_path!r}: missing column(s) {', '.join(missing)} "
                              f"(found {', '.join(names) or 'none'}); expected {allowed}")


# ---------------------------------------------------------------------- sections
def _base(raw: Mapping[str, Any]) -> Dict[str, Any]:
    """The fixed trial keys of the data, training, robustness and fixed sections."""
    base: Dict[str, Any] = {}
    origin: Dict[str, str] = {}
    for section in TRIAL_SECTIONS:
        for key, value in _mapping(raw, section).items():
            if section == "robustness":
                key = "robustness" if key == "enabled" else f"robustness_{key}"
            key = _trial_key(key, section)
            if key in base:
                raise ConfigError(f"{key} is set in both {origin[key]} and {section}")
            base[key], origin[key] = _absolute(key, value), section
    return base


def _regularizer_entries(raw: Mapping[str, Any], base: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """regularizer name -> its own values (scalars, lists or distributions)."""
    entries = raw.get("regularizers")
    if entries is None:
        return {base.pop("regularizer", "none"): {}}
    if "regularizer" in base:
        raise ConfigError("regularizer is set both as a fixed key and in the regularizers section")
    if isinstance(entries, list):
        entries = {name: {} for name in entries}
    if not isinstance(entries, dict) or not entries:
        raise ConfigError("regularizers must be a non-empty list of names or a mapping name -> values")
    known = regularizers.names()
    parsed = {}
    for name, values in entries.items():
        if name not in known:
            raise ConfigError(f"regularizers: unknown regularizer {name!r}{_hint(name, known)}; "
                              f"choose from: {', '.join(known)}")
        values = values or {}
        if not isinstance(values, dict):
            raise ConfigError(f"regularizers.{name} must be a mapping of trial keys, got {values!r}")
        parsed[name] = {_trial_key(k, f"regularizers.{name}"): _absolute(k, v) for k, v in values.items()}
        if "regularizer" in parsed[name]:
            raise ConfigError(f"regularizers.{name} must not set regularizer")
    return parsed


def _applies(key: str, regularizer: str) -> bool:
    """Whether a shared grid/sample key applies to a regularizer."""
    if key == "coefficient":
        return regularizer != "none"
    if key in REGULARIZER_PARAM_KEYS:
        return key in regularizers.describe().get(regularizer, {})
    return True


def _expand_grid(base, grid, entries) -> Tuple[List[Dict[str, Any]], List[TrialConfig]]:
    for key, values in grid.items():
        _trial_key(key, "grid")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{key} must be a non-empty list of values, got {values!r}")
        if key == "regularizer":
            raise ConfigError("the regularizer axis is the regularizers section, not grid.regularizer")
    points, trials, seen = [], [], set()
    for regularizer, own in entries.items():
        axes = {k: [_absolute(k, v) for v in vs] for k, vs in grid.items() if _applies(k, regularizer)}
        for key, value in own.items():
            if isinstance(value, dict):
                raise ConfigError(f"regularizers.{regularizer}.{key}: distributions need "
                                  "search.type: optuna; a grid takes a list of values")
            axes[key] = value if isinstance(value, list) else [value]
        for combo in itertools.product(*axes.values()):
            point = {"regularizer": regularizer, **dict(zip(axes, combo))}
            try:
                cfg = TrialConfig.from_dict({**base, **point})
            except ConfigError as err:
                raise ConfigError(f"trial {_show(point)}: {err}") from None
            if cfg.trial_id not in seen:
                seen.add(cfg.trial_id)
                points.append(point)
                trials.append(cfg)
    return points, trials


@dataclass(frozen=True)
class Distribution:
    kind: str                      # uniform, loguniform, int, choice
    values: Tuple[Any, ...]        # (low, high) or the choices

    def suggest(self, trial: Any, name: str) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(name, list(self.values))
        if self.kind == "int":
            return trial.suggest_int(name, *self.values)
        return trial.suggest_float(name, *self.values, log=self.kind == "loguniform")

    def corners(self) -> Tuple[Any, ...]:
        """The values validation checks: the bounds, or every choice."""
        return self.values

    def __str__(self) -> str:
        return f"{self.kind}{list(self.values)}"


def _distribution(spec: Any, where: str) -> Distribution:
    if isinstance(spec, list):
        spec = {"choice": spec}
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(f"{where} must be one distribution, e.g. {{loguniform: [1e-5, 1e-2]}}; "
                          f"choose from: {', '.join(DISTRIBUTIONS)}; got {spec!r}")
    (kind, values), = spec.items()
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{where}: unknown distribution {kind!r}; choose from: {', '.join(DISTRIBUTIONS)}")
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}.{kind} must be a list, got {values!r}")
    if kind == "choice":
        for value in values:
            if value is not None and not isinstance(value, (bool, int, float, str)):
                raise ConfigError(f"{where}.choice values must be numbers, strings or booleans "
                                  f"(Optuna's categorical values), got {value!r}")
        return Distribution(kind, tuple(values))
    if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"{where}.{kind} must be [low, high], got {values!r}")
    low, high = values
    if not low < high:
        raise ConfigError(f"{where}.{kind}: low={low!r} must be below high={high!r}")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}.loguniform: low={low!r} must be > 0")
    if kind == "int" and not all(float(v).is_integer() for v in values):
        raise ConfigError(f"{where}.int bounds must be integers, got {values!r}")
    return Distribution(kind, (int(low), int(high)) if kind == "int" else (float(low), float(high)))


def _optuna_entries(sample, entries) -> Dict[str, Dict[str, Any]]:
    """regularizer -> {key: Distribution or fixed value}, the shared sample filtered per regularizer."""
    shared = {_trial_key(k, "sample"): _distribution(v, f"sample.{k}") for k, v in sample.items()}
    per_regularizer = {}
    for regularizer, own in entries.items():
        space = {k: d for k, d in shared.items() if _applies(k, regularizer)}
        for key, value in own.items():
            where = f"regularizers.{regularizer}.{key}"
            space[key] = _distribution(value, where) if isinstance(value, (dict, list)) else value
        per_regularizer[regularizer] = space
    kinds: Dict[str, Tuple[str, str]] = {}  # sampled names only: fixed values are not Optuna's
    for regularizer, space in per_regularizer.items():
        for key, value in space.items():
            if not isinstance(value, Distribution):
                continue
            kind = "float" if value.kind in ("uniform", "loguniform") else value.kind
            kind += " (log)" if value.kind == "loguniform" else ""
            if kinds.setdefault(key, (kind, regularizer))[0] != kind:
                raise ConfigError(f"{key} is {kinds[key][0]} for {kinds[key][1]} but {kind} for "
                                  f"{regularizer}; Optuna needs one kind of distribution per name")
    return per_regularizer


class OptunaSpace:
    """A define-by-run space for ``OptunaSearch``: pick the regularizer, then its own values.

    A module-level class (not a closure) so that the searcher's saved state can be pickled.
    """

    def __init__(self, per_regularizer: Dict[str, Dict[str, Any]]):
        self.per_regularizer = per_regularizer

    def __call__(self, trial: Any) -> Dict[str, Any]:
        choices = list(self.per_regularizer)
        regularizer = (trial.suggest_categorical("regularizer", choices) if len(choices) > 1
                       else choices[0])
        fixed = {"regularizer": regularizer}
        for key, value in self.per_regularizer[regularizer].items():
            if isinstance(value, Distribution):
                value.suggest(trial, key)
            else:
                fixed[key] = value
        return fixed

    def check(self, base: Dict[str, Any]) -> List[TrialConfig]:
        """Validate every bound and choice of every key; returns the configurations checked."""
        checked = []
        for regularizer, space in self.per_regularizer.items():
            fixed = {"regularizer": regularizer, **{k: v for k, v in space.items()
                                                   if not isinstance(v, Distribution)}}
            sampled = {k: d for k, d in space.items() if isinstance(d, Distribution)}
            for corner in (0, -1):  # every low together, then every high together
                point = {**fixed, **{k: d.corners()[corner] for k, d in sampled.items()}}
                checked.append(_checked(base, point))
            for key, dist in sampled.items():
                for value in dist.corners():
                    checked.append(_checked(base, {**fixed, **{k: d.corners()[0] for k, d in sampled.items()},
                                                   key: value}))
        return checked

    def describe(self) -> Dict[str, Dict[str, str]]:
        return {r: {k: str(v) for k, v in space.items()} for r, space in self.per_regularizer.items()}


def _checked(base: Dict[str, Any], point: Dict[str, Any]) -> TrialConfig:
    try:
        return TrialConfig.from_dict({**base, **point})
    except ConfigError as err:
        raise ConfigError(f"sampled trial {_show(point)}: {err}") from None


def _resources(section: Mapping[str, Any]) -> Resources:
    _only(section, "resources", ("cpu", "gpu", "workers"))
    cpu = _number(section.get("cpu", 1), "resources.cpu")
    gpu = _number(section.get("gpu", 0), "resources.gpu")
    if cpu <= 0:
        raise ConfigError(f"resources.cpu={cpu!r} must be > 0 (Ray needs a positive CPU share per trial)")
    if gpu < 0:
        raise ConfigError(f"resources.gpu={gpu!r} must be >= 0")
    if gpu > 1 and not float(gpu).is_integer():
        raise ConfigError(f"resources.gpu={gpu!r}: above 1 it must be a whole number of GPUs "
                          "(fractions below 1 pack several trials on one GPU)")
    workers = _integer(section.get("workers", int(gpu) if gpu >= 2 else 1), "resources.workers", 1)
    if workers > 1 and gpu and (gpu % workers or gpu < workers):
        raise ConfigError(f"resources.gpu={gpu!r} must be a multiple of resources.workers={workers} "
                          "(each data-parallel worker holds whole GPUs)")
    if workers > 1 and cpu < workers * 0.01:
        raise ConfigError(f"resources.cpu={cpu!r} is too small for {workers} workers")
    return Resources(cpu=float(cpu), gpu=float(gpu), workers=workers)


def _search(section: Mapping[str, Any]) -> Search:
    if isinstance(section, str):
        section = {"type": section}
    _only(section, "search", ("type", "metric", "mode", "num_samples", "concurrency", "seed"))
    kind = section.get("type", "grid")
    if kind not in ("grid", "optuna"):
        raise ConfigError(f"search.type={kind!r} is not allowed; choose from: grid, optuna")
    metrics = section.get("metric", "test_acc" if kind == "grid" else None)
    if metrics is None:
        raise ConfigError("search.metric is required for optuna (a trials or epochs column, "
                          "or a list of them for several objectives)")
    metrics = tuple(metrics) if isinstance(metrics, list) else (metrics,)
    modes = section.get("mode", "max")
    modes = tuple(modes) if isinstance(modes, list) else (modes,) * len(metrics)
    if len(modes) != len(metrics):
        raise ConfigError(f"search.mode={list(modes)} must give one mode per metric {list(metrics)}")
    for mode in modes:
        if mode not in ("max", "min"):
            raise ConfigError(f"search.mode={mode!r} is not allowed; choose from: max, min")
    if kind == "grid" and "num_samples" in section:
        raise ConfigError("search.num_samples applies to optuna; a grid runs each configuration "
                          "once (add a seed axis to repeat it)")
    num_samples = _integer(section.get("num_samples", 1 if kind == "optuna" else 0),
                           "search.num_samples", 1 if kind == "optuna" else 0)
    concurrency = section.get("concurrency")
    if concurrency is not None:
        concurrency = _integer(concurrency, "search.concurrency", 1)
    return Search(type=kind, metrics=tuple(map(str, metrics)), modes=modes, num_samples=num_samples,
                  concurrency=concurrency, seed=_integer(section.get("seed", 0), "search.seed", 0))


def _scheduler(section: Mapping[str, Any], search: Search) -> Scheduler:
    if isinstance(section, str):
        section = {"type": section}
    _only(section, "scheduler", ("type", "grace_period", "reduction_factor", "metric", "mode"))
    kind = section.get("type", "fifo")
    if kind not in ("fifo", "asha"):
        raise ConfigError(f"scheduler.type={kind!r} is not allowed; choose from: fifo, asha")
    if kind == "fifo":
        extra = set(section) - {"type"}
        if extra:
            raise ConfigError(f"scheduler.{sorted(extra)[0]} applies to asha, not fifo")
        return Scheduler()
    factor = _number(section.get("reduction_factor", 2), "scheduler.reduction_factor")
    if factor <= 1:
        raise ConfigError(f"scheduler.reduction_factor={factor!r} must be > 1")
    mode = section.get("mode", search.modes[0])
    if mode not in ("max", "min"):
        raise ConfigError(f"scheduler.mode={mode!r} is not allowed; choose from: max, min")
    return Scheduler(type="asha", grace_period=_integer(section.get("grace_period", 1),
                                                        "scheduler.grace_period", 1),
                     reduction_factor=float(factor), metric=str(section.get("metric", search.metrics[0])),
                     mode=mode)


def _check_metrics(space: Space, probe: Sequence[TrialConfig], grid, sample, entries) -> None:
    """Search and scheduler metrics must be columns the trials report; ASHA needs fixed epochs."""
    epoch_metrics = [k for k, t in results.columns("epochs").items() if _numeric(t)]
    row = probe[0].to_row() if probe else {}
    trial_metrics = [k for k, t in results.trials_columns(row).items()
                     if _numeric(t) and k not in TrialConfig.field_names()]
    for metric in space.search.metrics:
        if metric not in epoch_metrics and metric not in trial_metrics:
            raise ConfigError(f"search.metric {metric!r} is not a reported metric{_hint(metric, trial_metrics)}; "
                              f"choose an epochs column ({', '.join(epoch_metrics[1:])}) or a trials "
                              "column such as pgd_acc_8_255")
    uses_val = {"val_acc", "val_loss"} & {*space.search.metrics, space.scheduler.metric}
    if uses_val and any(cfg.val_size == 0 for cfg in probe):
        raise ConfigError(f"search/scheduler metric {sorted(uses_val)[0]} needs val_size > 0")
    if space.scheduler.type != "asha":
        return
    if space.scheduler.metric not in epoch_metrics:
        raise ConfigError(f"scheduler.metric {space.scheduler.metric!r} must be an epochs column "
                          f"(ASHA compares trials after each epoch): {', '.join(epoch_metrics[1:])}")
    varied = set(grid) | set(sample) | {k for own in entries.values() for k in own}
    if "epochs" in varied:
        raise ConfigError("scheduler.type asha needs one fixed epochs for every trial")
    epochs = probe[0].epochs if probe else TrialConfig().epochs
    if space.scheduler.grace_period >= epochs:
        raise ConfigError(f"scheduler.grace_period={space.scheduler.grace_period} must be below "
                          f"epochs={epochs} (ASHA stops trials only before their last epoch)")


def _numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


# ---------------------------------------------------------------------- dry run
# Nominal sustained throughputs for the cost estimate (rough: small CIFAR convolutions in fp32/TF32
# reach a fraction of a device's peak). The estimate is for planning, never a measurement.
CPU_CORE_FLOPS = 5e10   # per logical CPU
GPU_FLOPS = 1e13        # per GPU
_FULL_SIZES = {"cifar10": (50000, 10000), "cifar100": (50000, 10000), "packed": (50000, 10000)}


def trial_flops(cfg: TrialConfig) -> float:
    """Rough floating-point operations of one trial: training (forward + backward, 3x a forward),
    evaluation on the validation and test images every epoch, and the robustness suite."""
    from korth_bench.data.synthetic import DEFAULT_TEST_SIZE, DEFAULT_TRAIN_SIZE

    train_full, test_full = _FULL_SIZES.get(cfg.dataset, (DEFAULT_TRAIN_SIZE, DEFAULT_TEST_SIZE))
    train = cfg.train_size or max(train_full - cfg.val_size, 1)
    test = cfg.test_size or test_full
    forward = 2 * _forward_macs(cfg.model, cfg.depth, cfg.width, cfg.dropout, cfg.shortcut,
                                _num_classes(cfg), cfg.image_size)
    images = cfg.epochs * (3 * train + cfg.val_size + test)
    if cfg.robustness:
        per_image = (1 + len(cfg.robustness_corruptions) * len(cfg.robustness_severities)
                     + len(cfg.robustness_pgd_eps) * sum(
                         3 * (cfg.robustness_pgd_steps if a == "pgd" else 1) + 1
                         for a in cfg.robustness_attacks))
        images += per_image * min(cfg.robustness_test_size, test)
    return forward * images


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
        lines.append(f"cost estimate: {total:.3g} {unit} in all ({len(rows)} trials x {label}; "
                     f"nominal {GPU_FLOPS / 1e12:g} TFLOP/s per GPU, {CPU_CORE_FLOPS / 1e9:g} GFLOP/s "
                     "per CPU; rough)")
    else:
        lines.append(f"fixed: {_show(space.base)}")
        for regularizer, values in space.optuna.describe().items():
            lines.append(f"  {regularizer}: {_show(values) or '(no sampled keys)'}")
        checked = space.optuna.check(space.base)
        hours = max(device_hours(trial_flops(cfg), space.resources) * scale for cfg in checked)
        lines.append(f"resources per trial: {label}")
        lines.append(f"cost estimate: at most {hours * search.num_samples:.3g} {unit} "
                     f"({search.num_samples} trials x up to {hours:.3g} {unit}"
                     + ("; ASHA stops some early" if scheduler.type == "asha" else "")
                     + f"; nominal {GPU_FLOPS / 1e12:g} TFLOP/s per GPU, "
                       f"{CPU_CORE_FLOPS / 1e9:g} GFLOP/s per CPU; rough)")
    return "\n".join(lines)


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


# ---------------------------------------------------------------------- small checks
def _mapping(raw: Mapping[str, Any], section: str) -> Any:
    value = raw.get(section)
    if value is None:
        return {}
    if section in ("search", "scheduler") and isinstance(value, str):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"section {section} must be a mapping, got {value!r}")
    return value


def _only(section: Any, name: str, allowed: Sequence[str]) -> None:
    if isinstance(section, str):
        return
    for key in section:
        if key not in allowed:
            raise ConfigError(f"unknown key {name}.{key}{_hint(key, allowed)}; allowed: {', '.join(allowed)}")


def _trial_key(key: Any, where: str) -> str:
    key = str(key).replace(".", "_")
    fields = TrialConfig.field_names()
    if key not in fields:
        raise ConfigError(f"{where}: unknown trial key {key!r}{_hint(key, fields)}; allowed: "
                          f"{', '.join(fields)} (korth-bench list shows them too)")
    return key


def _no_overlap(base, grid, sample) -> None:
    for key in set(base) & (set(grid) | set(sample)):
        raise ConfigError(f"{key} is both fixed and in {'grid' if key in grid else 'sample'}")
    for key in set(grid) & set(sample):
        raise ConfigError(f"{key} is in both grid and sample")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    return value


def _integer(value: Any, where: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{where} must be an integer >= {low}, got {value!r}")
    return value


def _absolute(key: str, value: Any) -> Any:
    """Relative local data paths -> absolute, so a trial's working directory never matters."""
    if key in PATH_KEYS and isinstance(value, str) and "://" not in value:
        return os.path.abspath(os.path.expanduser(value))
    return value


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value: Any, where: str) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of the YAML tree."""
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{where}.{k}".lstrip(".")) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, where) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise ConfigError(f"{where}: environment variable {name} is not set "
                              f"(write ${{{name}:-default}} for a default)")
        return default

    return _ENV.sub(replace, value)


def _hint(key: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(key), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _show(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())
