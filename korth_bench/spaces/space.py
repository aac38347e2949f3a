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
    failure: {max_retries: 1, storage_retry_s: 100}
    checkpoint: {every: 1, keep: 2}
    analysis:                        # claim 2's primary contrast, declared before the data
      primary: {arms: [so, dn], metric: test_acc, claimed_drop: 1.0, alpha: 0.05}
      declared: "2026-12-05"
    logging: {tensorboard: true, mlflow: {experiment: korth}}   # korth_bench.tracking.settings

Every trial configuration goes through ``TrialConfig.from_dict``; a grid is expanded completely
and de-duplicated by ``trial_id``; an Optuna space is checked at every bound and choice. A key that
is a regularizer parameter (``relaxation``, ``pairs``, ...) applies only to the regularizers that
take it, and ``coefficient`` never applies to ``none``. ``${VAR}`` and ``${VAR:-default}`` in
strings are replaced from the environment; relative data paths become absolute (against the
current directory), so trials never depend on their working directory.

This module loads and parses a space; ``spaces.sections`` parses the sections other than the trial
axes, ``spaces.expansion`` expands the axes into trials (a grid, or an Optuna define-by-run space)
and ``spaces.dryrun`` prints ``--dry-run``.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

import pyarrow as pa
import yaml

from korth_bench import results
from korth_bench.config import TrialConfig
from korth_bench.errors import ConfigError
from korth_bench.tracking.settings import TrackingSettings, logging_section
from korth_bench.spaces.expansion import OptunaSpace, expand_grid, optuna_entries
from korth_bench.spaces.sections import (Analysis, Resources, Scheduler, Search, analysis_section,
                                        base_keys, expand_env, hint,
                                        integer, mapping, no_overlap, only, regularizer_entries,
                                        resources_section, scheduler_section, search_section, WAVE_SIZE)



def _shipped_spaces_dir() -> str:
    """Where the shipped spaces are: the package data ``korth_bench/search_spaces`` of an
    installed korth-bench (``pyproject.toml`` maps the top-level ``search_spaces/`` there), or,
    for a checkout imported without installing, that top-level folder itself."""
    try:
        import korth_bench.search_spaces as shipped  # a namespace package of YAML files
        return list(shipped.__path__)[0]
    except (ImportError, IndexError):
        return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "search_spaces")


SPACES_DIR = _shipped_spaces_dir()
STORAGE_RETRY_S = 100.0
"""``failure.storage_retry_s``'s default: an S3 request of a sweep that finds the store
unreachable is retried for about this long (``results.s3_retry_budget``: 102 s) before the
sweep stops with a storage fault."""
SECTIONS = ("name", "description", "data", "training", "robustness", "fixed", "grid", "regularizers",
            "sample", "resources", "search", "scheduler", "failure", "checkpoint", "analysis", "logging")


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
    checked: List[TrialConfig]           # what parsing validated: the grid's trials, or the
                                         # configurations at every Optuna bound and choice
    resources: Resources
    search: Search
    scheduler: Scheduler
    max_retries: int = 0
    storage_retry_s: float = STORAGE_RETRY_S   # how long the S3 client rides out an unreachable store
    checkpoint_every: int = 1
    checkpoint_keep: int = 2
    analysis: Optional[Analysis] = None  # the declared primary contrast, read by the report
    tracking: TrackingSettings = TrackingSettings()   # the logging section (off by default)
    tracking_uri: Optional[str] = None                 # its MLflow URI; never stored with a sweep

    @property
    def num_trials(self) -> int:
        return len(self.trials) if self.search.type == "grid" else self.search.num_samples

    @property
    def wave_size(self) -> Optional[int]:
        """Trials per Tuner when the sweep runs as consecutive Tuners (a grid with the fifo
        scheduler: ``search.wave_size``, else ``WAVE_SIZE``); None: one Tuner holds every trial
        (Optuna's sampler and ASHA's rungs need them all)."""
        if self.search.type != "grid" or self.scheduler.type != "fifo":
            return None
        return self.search.wave_size or WAVE_SIZE

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
        return parse(expand_env(raw, ""), path)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def parse(raw: Mapping[str, Any], path: str = "<memory>") -> Space:
    for key in raw:
        if key not in SECTIONS:
            raise ConfigError(f"unknown section {key!r}{hint(key, SECTIONS)}; sections: {', '.join(SECTIONS)}")
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ConfigError(f"name={name!r} must be a word of letters, digits, '_', '.', '-' "
                          "(it names the sweep directory)")
    search = search_section(mapping(raw, "search"))
    base = base_keys(raw)
    entries = regularizer_entries(raw, base)
    grid = mapping(raw, "grid")
    sample = mapping(raw, "sample")
    no_overlap(base, grid, sample)
    checkpoint = mapping(raw, "checkpoint")
    only(checkpoint, "checkpoint", ("every", "keep"))
    every = integer(checkpoint.get("every", 1), "checkpoint.every", 0)
    if "checkpoint_every" in base:
        raise ConfigError("set checkpoint_every through the checkpoint section (checkpoint.every)")
    base["checkpoint_every"] = every
    failure = mapping(raw, "failure")
    only(failure, "failure", ("max_retries", "storage_retry_s"))
    retry_s = failure.get("storage_retry_s", STORAGE_RETRY_S)
    if isinstance(retry_s, bool) or not isinstance(retry_s, (int, float)) or not 0 < retry_s <= 3600:
        raise ConfigError(f"failure.storage_retry_s must be a number of seconds in (0, 3600], got "
                          f"{retry_s!r}")
    tracking, tracking_uri = logging_section(raw.get("logging"))

    if search.type == "grid":
        if sample:
            raise ConfigError("sample needs search.type: optuna (a grid search takes grid lists)")
        points, trials = expand_grid(base, grid, entries)
        search = dataclasses.replace(search, num_samples=len(trials))
        optuna = None
        checked = trials
    else:
        if grid:
            raise ConfigError("grid needs search.type: grid; with optuna write the values as "
                              "sample: {key: {choice: [...]}}")
        optuna = OptunaSpace(optuna_entries(sample, entries))
        points, trials = [], []
        checked = optuna.check(base)
    space = Space(name=name, path=os.path.abspath(path), description=str(raw.get("description", "")).strip(),
                  base=base, points=points, trials=trials, optuna=optuna, checked=checked,
                  resources=resources_section(mapping(raw, "resources")), search=search,
                  scheduler=scheduler_section(mapping(raw, "scheduler"), search),
                  max_retries=integer(failure.get("max_retries", 0), "failure.max_retries", 0),
                  storage_retry_s=float(retry_s),
                  checkpoint_every=every,
                  checkpoint_keep=integer(checkpoint.get("keep", 2), "checkpoint.keep", 1),
                  tracking=tracking, tracking_uri=tracking_uri)
    _check_metrics(space, checked, grid, sample, entries)
    row = checked[0].to_dict() if checked else {}
    return dataclasses.replace(space, analysis=analysis_section(
        mapping(raw, "analysis"), [k for k, t in results.trials_columns(row).items()
                                   if _numeric(t) and k not in TrialConfig.field_names()]))


# ---------------------------------------------------------------------- inputs a sweep reads
def check_data(space: Space) -> None:
    """Every packed data file the trials of ``space`` read exists and has the packed columns."""
    from korth_bench.data.packed import check_file

    for data_path in sorted({cfg.data_path for cfg in space.checked
                             if cfg.dataset == "packed" and cfg.data_path}):
        check_file(data_path)


# ---------------------------------------------------------------------- metrics
def _check_metrics(space: Space, checked: Sequence[TrialConfig], grid, sample, entries) -> None:
    """Search and scheduler metrics must be columns the trials report; ASHA needs fixed epochs."""
    epoch_metrics = [k for k, t in results.columns("epochs").items() if _numeric(t)]
    row = checked[0].to_dict() if checked else {}
    trial_metrics = [k for k, t in results.trials_columns(row).items()
                     if _numeric(t) and k not in TrialConfig.field_names()]
    for metric in space.search.metrics:
        if metric not in epoch_metrics and metric not in trial_metrics:
            raise ConfigError(f"search.metric {metric!r} is not a reported metric{hint(metric, trial_metrics)}; "
                              f"choose an epochs column ({', '.join(epoch_metrics[1:])}) or a trials "
                              "column such as pgd_acc_8_255")
    uses_val = {"val_acc", "val_loss"} & {*space.search.metrics, space.scheduler.metric}
    if uses_val and any(cfg.val_size == 0 for cfg in checked):
        raise ConfigError(f"search/scheduler metric {sorted(uses_val)[0]} needs val_size > 0")
    if space.scheduler.type != "asha":
        return
    if space.scheduler.metric not in epoch_metrics:
        raise ConfigError(f"scheduler.metric {space.scheduler.metric!r} must be an epochs column "
                          f"(ASHA compares trials after each epoch): {', '.join(epoch_metrics[1:])}")
    varied = set(grid) | set(sample) | {k for cases in entries.values() for own in cases for k in own}
    if "epochs" in varied:
        raise ConfigError("scheduler.type asha needs one fixed epochs for every trial")
    epochs = checked[0].epochs if checked else TrialConfig().epochs
    if space.scheduler.grace_period >= epochs:
        raise ConfigError(f"scheduler.grace_period={space.scheduler.grace_period} must be below "
                          f"epochs={epochs} (ASHA stops trials only before their last epoch)")


def _numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind)
