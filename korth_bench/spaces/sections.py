"""The sections of a search space other than grid and sample (no Ray here).

``resources``, ``search`` and ``scheduler`` become the frozen dataclasses below; ``data``,
``training``, ``robustness`` and ``fixed`` become the shared trial keys; ``regularizers`` the
per-regularizer values. The small checks every section parser shares (a mapping, allowed keys,
numbers, trial keys, absolute data paths, ``${VAR}`` expansion, did-you-mean hints) live here too,
so each error names the section, the key, the value and what is allowed.
"""
from __future__ import annotations

import datetime
import difflib
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from korth_bench import regularizers
from korth_bench.config import TrialConfig, number
from korth_bench.errors import ConfigError

TRIAL_SECTIONS = ("data", "training", "robustness", "fixed")
PATH_KEYS = ("data_path", "data_root")


# ---------------------------------------------------------------------- resources, search, scheduler
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
    wave_size: Optional[int] = None      # grid: trials per Tuner; None: WAVE_SIZE (Space.wave_size)


WAVE_SIZE = 1000
"""Trials per Tuner of a grid sweep with the fifo scheduler when ``search.wave_size`` is not
given: Tune's driver keeps every trial of a Tuner and rewrites their state at each snapshot, so
a larger grid runs as consecutive Tuners of at most this many trials (``sweep.tuner``)."""


@dataclass(frozen=True)
class Scheduler:
    type: str = "fifo"                   # fifo (run every trial to the end) or asha
    grace_period: int = 1                # asha: epochs before a trial can be stopped
    reduction_factor: float = 2.0        # asha: keep the best 1/reduction_factor at each rung
    metric: Optional[str] = None         # asha: an epochs column (default: the first search metric)
    mode: Optional[str] = None


@dataclass(frozen=True)
class Analysis:
    """The ``analysis`` section: claim 2's primary contrast, declared before the data.

    ``arms`` are entry names as the report prints them ('so', or with ``report --arm`` keys
    'so [penalty_reduction=sum]' or 'so [sum]'); the report pools their per-seed gains and
    tests the slope of that pooled gain on log2 parameters alone at ``alpha``, with
    ``claimed_drop`` (accuracy points) as the equivalence bound and the effect to detect.
    ``cells``: 'random' (the slope's error includes the cells' offsets about the line, so the
    inference reaches other architectures) or 'fixed' (the estimand is the slope of these cells'
    mean gains, its error from the seeds within them: analysis.stats.fixed_cells_slope)."""
    arms: Tuple[str, ...]
    metric: str = "test_acc"
    claimed_drop: float = 1.0            # accuracy percentage points
    alpha: float = 0.05
    declared: Optional[str] = None       # ISO date the declaration was written down
    cells: str = "random"                # 'random' or 'fixed' (analysis.power.CELL_MODELS)


def analysis_section(section: Mapping[str, Any], metrics: Sequence[str]) -> Optional[Analysis]:
    """The parsed ``analysis`` section (None when absent); ``metrics``: the trials columns a
    primary metric may name."""
    if not section:
        return None
    only(section, "analysis", ("primary", "declared"))
    primary = section.get("primary")
    if not isinstance(primary, dict):
        raise ConfigError(f"analysis.primary must be a mapping (arms, metric, claimed_drop, "
                          f"alpha), got {primary!r}")
    only(primary, "analysis.primary", ("arms", "metric", "claimed_drop", "alpha", "cells"))
    arms = primary.get("arms")
    if (not isinstance(arms, list) or not arms
            or not all(isinstance(a, str) and a.strip() for a in arms)
            or len(set(arms)) != len(arms)):
        raise ConfigError(f"analysis.primary.arms={arms!r} must be a non-empty list of distinct "
                          "entry names, e.g. [so, dn, srip] or ['so [sum]', 'dn [sum]']")
    metric = primary.get("metric", "test_acc")
    if metric not in metrics:
        raise ConfigError(f"analysis.primary.metric={metric!r} is not a trials column"
                          f"{hint(str(metric), metrics)}; an accuracy such as test_acc")
    drop = number(primary.get("claimed_drop", 1.0), "analysis.primary.claimed_drop")
    if not drop > 0:
        raise ConfigError(f"analysis.primary.claimed_drop={drop!r} must be > 0 "
                          "(accuracy percentage points)")
    alpha = number(primary.get("alpha", 0.05), "analysis.primary.alpha")
    if not 0 < alpha < 1:
        raise ConfigError(f"analysis.primary.alpha={alpha!r} must be between 0 and 1")
    cells = primary.get("cells", "random")
    if cells not in ("random", "fixed"):
        raise ConfigError(f"analysis.primary.cells={cells!r} must be 'random' (inference to other "
                          "architectures) or 'fixed' (the slope over these cells)")
    declared = section.get("declared")
    if declared is not None:
        try:
            declared = datetime.date.fromisoformat(str(declared)).isoformat()
        except ValueError:
            raise ConfigError(f"analysis.declared={declared!r} must be a date, YYYY-MM-DD") from None
    return Analysis(arms=tuple(arms), metric=str(metric), claimed_drop=float(drop),
                    alpha=float(alpha), declared=declared, cells=cells)


def resources_section(section: Mapping[str, Any]) -> Resources:
    only(section, "resources", ("cpu", "gpu", "workers"))
    cpu = number(section.get("cpu", 1), "resources.cpu")
    gpu = number(section.get("gpu", 0), "resources.gpu")
    if cpu <= 0:
        raise ConfigError(f"resources.cpu={cpu!r} must be > 0 (Ray needs a positive CPU share per trial)")
    if gpu < 0:
        raise ConfigError(f"resources.gpu={gpu!r} must be >= 0")
    if gpu > 1 and not float(gpu).is_integer():
        raise ConfigError(f"resources.gpu={gpu!r}: above 1 it must be a whole number of GPUs "
                          "(fractions below 1 pack several trials on one GPU)")
    workers = integer(section.get("workers", int(gpu) if gpu >= 2 else 1), "resources.workers", 1)
    if workers > 1 and gpu and (gpu % workers or gpu < workers):
        raise ConfigError(f"resources.gpu={gpu!r} must be a multiple of resources.workers={workers} "
                          "(each data-parallel worker holds whole GPUs)")
    if workers > 1 and cpu < workers * 0.01:
        raise ConfigError(f"resources.cpu={cpu!r} is too small for {workers} workers")
    return Resources(cpu=float(cpu), gpu=float(gpu), workers=workers)


def search_section(section: Mapping[str, Any]) -> Search:
    if isinstance(section, str):
        section = {"type": section}
    only(section, "search", ("type", "metric", "mode", "num_samples", "concurrency", "seed",
                             "wave_size"))
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
    num_samples = integer(section.get("num_samples", 1 if kind == "optuna" else 0),
                           "search.num_samples", 1 if kind == "optuna" else 0)
    concurrency = section.get("concurrency")
    if concurrency is not None:
        concurrency = integer(concurrency, "search.concurrency", 1)
    wave_size = section.get("wave_size")
    if wave_size is not None:
        if kind != "grid":
            raise ConfigError(f"search.wave_size={wave_size!r} applies to grid search; an optuna "
                              "search runs in one Tuner (its sampler learns from every trial)")
        wave_size = integer(wave_size, "search.wave_size", 1)
    return Search(type=kind, metrics=tuple(map(str, metrics)), modes=modes, num_samples=num_samples,
                  concurrency=concurrency, seed=integer(section.get("seed", 0), "search.seed", 0),
                  wave_size=wave_size)


def scheduler_section(section: Mapping[str, Any], search: Search) -> Scheduler:
    if isinstance(section, str):
        section = {"type": section}
    only(section, "scheduler", ("type", "grace_period", "reduction_factor", "metric", "mode"))
    kind = section.get("type", "fifo")
    if kind not in ("fifo", "asha"):
        raise ConfigError(f"scheduler.type={kind!r} is not allowed; choose from: fifo, asha")
    if kind == "fifo":
        extra = set(section) - {"type"}
        if extra:
            raise ConfigError(f"scheduler.{sorted(extra)[0]} applies to asha, not fifo")
        return Scheduler()
    if search.wave_size is not None:
        raise ConfigError(f"search.wave_size={search.wave_size} applies with scheduler fifo; ASHA "
                          "compares the trials of one Tuner, so an asha sweep runs in one")
    factor = number(section.get("reduction_factor", 2), "scheduler.reduction_factor")
    if factor <= 1:
        raise ConfigError(f"scheduler.reduction_factor={factor!r} must be > 1")
    mode = section.get("mode", search.modes[0])
    if mode not in ("max", "min"):
        raise ConfigError(f"scheduler.mode={mode!r} is not allowed; choose from: max, min")
    return Scheduler(type="asha", grace_period=integer(section.get("grace_period", 1),
                                                        "scheduler.grace_period", 1),
                     reduction_factor=float(factor), metric=str(section.get("metric", search.metrics[0])),
                     mode=mode)


# ---------------------------------------------------------------------- trial keys, regularizers
def base_keys(raw: Mapping[str, Any]) -> Dict[str, Any]:
    """The fixed trial keys of the data, training, robustness and fixed sections."""
    base: Dict[str, Any] = {}
    origin: Dict[str, str] = {}
    for section in TRIAL_SECTIONS:
        for key, value in mapping(raw, section).items():
            if section == "robustness":
                key = "robustness" if key == "enabled" else f"robustness_{key}"
            key = trial_key(key, section)
            if key in base:
                raise ConfigError(f"{key} is set in both {origin[key]} and {section}")
            base[key], origin[key] = absolute_path(key, value), section
    return base


def regularizer_entries(raw: Mapping[str, Any], base: Dict[str, Any]) -> Dict[str, List[Dict[str, Any]]]:
    """regularizer name -> its cases, each a mapping of its own values (scalars, lists or
    distributions). A name mapped to a list of mappings has several cases, expanded one after the
    other: ``so: [{coefficient: 1e-3, penalty_reduction: sum}, {coefficient: 9e-3,
    penalty_reduction: mean}]`` pairs each value of one key with its own value of another."""
    entries = raw.get("regularizers")
    if entries is None:
        return {base.pop("regularizer", "none"): [{}]}
    if "regularizer" in base:
        raise ConfigError("regularizer is set both as a fixed key and in the regularizers section")
    if isinstance(entries, list):
        if not all(isinstance(name, str) for name in entries):
            raise ConfigError(f"regularizers must be a list of names or a mapping name -> values, "
                              f"got {entries!r}")
        entries = {name: {} for name in entries}
    if not isinstance(entries, dict) or not entries:
        raise ConfigError("regularizers must be a non-empty list of names or a mapping name -> values")
    known = regularizers.names()
    parsed = {}
    for name, values in entries.items():
        if name not in known:
            raise ConfigError(f"regularizers: unknown regularizer {name!r}{hint(name, known)}; "
                              f"choose from: {', '.join(known)}")
        cases = values if isinstance(values, list) and values else [values or {}]
        if not all(isinstance(case, dict) for case in cases):
            raise ConfigError(f"regularizers.{name} must be a mapping of trial keys or a non-empty "
                              f"list of such mappings (cases), got {values!r}")
        parsed[name] = [{trial_key(k, f"regularizers.{name}"): absolute_path(k, v)
                         for k, v in case.items()} for case in cases]
        if any("regularizer" in case for case in parsed[name]):
            raise ConfigError(f"regularizers.{name} must not set regularizer")
    return parsed

# ---------------------------------------------------------------------- small checks
def mapping(raw: Mapping[str, Any], section: str) -> Any:
    value = raw.get(section)
    if value is None:
        return {}
    if section in ("search", "scheduler") and isinstance(value, str):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"section {section} must be a mapping, got {value!r}")
    return value


def only(section: Any, name: str, allowed: Sequence[str]) -> None:
    if isinstance(section, str):
        return
    for key in section:
        if key not in allowed:
            raise ConfigError(f"unknown key {name}.{key}{hint(key, allowed)}; allowed: {', '.join(allowed)}")


def trial_key(key: Any, where: str) -> str:
    key = str(key).replace(".", "_")
    fields = TrialConfig.field_names()
    if key not in fields:
        raise ConfigError(f"{where}: unknown trial key {key!r}{hint(key, fields)}; allowed: "
                          f"{', '.join(fields)} (korth-bench list shows them too)")
    return key


def no_overlap(base, grid, sample) -> None:
    for key in set(base) & (set(grid) | set(sample)):
        raise ConfigError(f"{key} is both fixed and in {'grid' if key in grid else 'sample'}")
    for key in set(grid) & set(sample):
        raise ConfigError(f"{key} is in both grid and sample")


def integer(value: Any, where: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{where} must be an integer >= {low}, got {value!r}")
    return value


def absolute_path(key: str, value: Any) -> Any:
    """Relative local data paths -> absolute, so a trial's working directory never matters."""
    if key in PATH_KEYS and isinstance(value, str) and "://" not in value:
        return os.path.abspath(os.path.expanduser(value))
    return value


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, where: str) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of the YAML tree."""
    if isinstance(value, dict):
        return {k: expand_env(v, f"{where}.{k}".lstrip(".")) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, where) for v in value]
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


def hint(key: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(key), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def show_point(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())
