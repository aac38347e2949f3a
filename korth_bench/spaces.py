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

This module loads a space and expands it into trials (a grid, or an Optuna define-by-run space);
``space_sections`` parses the other sections, ``space_dryrun`` prints ``--dry-run``.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import pyarrow as pa
import yaml

from korth_bench import regularizers, results
from korth_bench.config import REGULARIZER_PARAM_KEYS, ConfigError, TrialConfig, number
# Re-exported, so that spaces.X keeps naming everything the loader offers.
from korth_bench.space_dryrun import (CPU_CORE_FLOPS, GPU_FLOPS, device_hours, dry_run_text,
                                      resource_label, trial_flops)
from korth_bench.space_sections import (PATH_KEYS, TRIAL_SECTIONS, Resources, Scheduler, Search,
                                        _absolute, _base, _expand_env, _hint, _integer, _mapping,
                                        _no_overlap, _only, _regularizer_entries, _resources,
                                        _scheduler, _search, _show, _trial_key)

SPACES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "search_spaces")
SECTIONS = ("name", "description", "data", "training", "robustness", "fixed", "grid", "regularizers",
            "sample", "resources", "search", "scheduler", "failure", "checkpoint")
DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")


# ---------------------------------------------------------------------- the parsed space
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
    """Every packed data file the trials of ``space`` read is a packed Parquet file
    (``data.packed.check_file``: only the footer is read, decoding stays with the trials)."""
    from korth_bench.data.packed import check_file

    configs = space.trials if space.search.type == "grid" else space.optuna.check(space.base)
    for data_path in sorted({cfg.data_path for cfg in configs if cfg.dataset == "packed" and cfg.data_path}):
        check_file(data_path)


# ---------------------------------------------------------------------- expansion

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


# ---------------------------------------------------------------------- the Optuna space
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


def _distribution(spec: Any, where: str, key: str) -> Distribution:
    """A distribution of trial key ``key``; its bounds and choices are read in the key's type
    (``TrialConfig.coerce``: ``1e-3`` written in YAML is a number)."""
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
        return Distribution(kind, tuple(_choice_value(key, v, where) for v in values))
    if len(values) != 2:
        raise ConfigError(f"{where}.{kind} must be [low, high], got {values!r}")
    low, high = (number(v, f"{where}.{kind}") for v in values)
    if not low < high:
        raise ConfigError(f"{where}.{kind}: low={low!r} must be below high={high!r}")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}.loguniform: low={low!r} must be > 0")
    if kind == "int" and not all(float(v).is_integer() for v in values):
        raise ConfigError(f"{where}.int bounds must be integers, got {values!r}")
    return Distribution(kind, (int(low), int(high)) if kind == "int" else (float(low), float(high)))


def _choice_value(key: str, value: Any, where: str) -> Any:
    """A choice in the key's type; a list-valued key's choice stays as written (the trial
    configuration makes it a one-element list)."""
    if value is None:
        return None
    try:
        coerced = TrialConfig.coerce(key, value)
    except ConfigError as err:
        raise ConfigError(f"{where}.choice: {err}") from None
    return value if isinstance(coerced, tuple) else coerced


def _optuna_entries(sample, entries) -> Dict[str, Dict[str, Any]]:
    """regularizer -> {key: Distribution or fixed value}, the shared sample filtered per regularizer."""
    shared = {_trial_key(k, "sample"): _distribution(v, f"sample.{k}", _trial_key(k, "sample"))
              for k, v in sample.items()}
    per_regularizer = {}
    for regularizer, own in entries.items():
        space = {k: d for k, d in shared.items() if _applies(k, regularizer)}
        for key, value in own.items():
            where = f"regularizers.{regularizer}.{key}"
            space[key] = _distribution(value, where, key) if isinstance(value, (dict, list)) else value
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


# ---------------------------------------------------------------------- metrics
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
