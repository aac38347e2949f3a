"""Expansion of a search space into trial configurations: a grid's Cartesian product, or an
Optuna define-by-run space checked at every bound and choice (no Ray here).

For each regularizer (and each of its cases) the trials are the product of the ``grid`` lists that
apply to it, with its own entries replacing or adding axes; ``coefficient`` never applies to
``none`` and a regularizer parameter (``relaxation``, ``pairs``, ...) only to the regularizers
that take it. A grid is de-duplicated by ``trial_id``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

from korth_bench import regularizers
from korth_bench.config import REGULARIZER_PARAM_KEYS, TrialConfig, number
from korth_bench.errors import ConfigError
from korth_bench.spaces.sections import absolute_path, show_point, trial_key

DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")


# ---------------------------------------------------------------------- expansion

def applies(key: str, regularizer: str) -> bool:
    """Whether a shared grid/sample key applies to a regularizer."""
    if key == "coefficient":
        return regularizer != "none"
    if key in REGULARIZER_PARAM_KEYS:
        return key in regularizers.describe().get(regularizer, {})
    return True


def expand_grid(base, grid, entries) -> Tuple[List[Dict[str, Any]], List[TrialConfig]]:
    for key, values in grid.items():
        trial_key(key, "grid")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{key} must be a non-empty list of values, got {values!r}")
        if key == "regularizer":
            raise ConfigError("the regularizer axis is the regularizers section, not grid.regularizer")
    points, trials, seen = [], [], set()
    for regularizer, own in ((name, case) for name, cases in entries.items() for case in cases):
        axes = {k: [absolute_path(k, v) for v in vs] for k, vs in grid.items() if applies(k, regularizer)}
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
                raise ConfigError(f"trial {show_point(point)}: {err}") from None
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


def distribution(spec: Any, where: str, key: str) -> Distribution:
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
        return Distribution(kind, tuple(choice_value(key, v, where) for v in values))
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


def choice_value(key: str, value: Any, where: str) -> Any:
    """A choice in the key's type; a list-valued key's choice stays as written (the trial
    configuration makes it a one-element list)."""
    if value is None:
        return None
    try:
        coerced = TrialConfig.coerce(key, value)
    except ConfigError as err:
        raise ConfigError(f"{where}.choice: {err}") from None
    return value if isinstance(coerced, tuple) else coerced


def optuna_entries(sample, entries) -> Dict[str, Dict[str, Any]]:
    """regularizer -> {key: Distribution or fixed value}, the shared sample filtered per regularizer."""
    shared = {trial_key(k, "sample"): distribution(v, f"sample.{k}", trial_key(k, "sample"))
              for k, v in sample.items()}
    per_regularizer = {}
    for regularizer, cases in entries.items():
        if len(cases) > 1:
            raise ConfigError(f"regularizers.{regularizer}: a list of cases needs search.type: grid; "
                              "Optuna samples one space per regularizer")
        own = cases[0]
        space = {k: d for k, d in shared.items() if applies(k, regularizer)}
        for key, value in own.items():
            where = f"regularizers.{regularizer}.{key}"
            space[key] = distribution(value, where, key) if isinstance(value, (dict, list)) else value
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
                checked.append(checked_config(base, point))
            for key, dist in sampled.items():
                for value in dist.corners():
                    checked.append(checked_config(base, {**fixed, **{k: d.corners()[0] for k, d in sampled.items()},
                                                   key: value}))
        return checked

    def describe(self) -> Dict[str, Dict[str, str]]:
        return {r: {k: str(v) for k, v in space.items()} for r, space in self.per_regularizer.items()}


def checked_config(base: Dict[str, Any], point: Dict[str, Any]) -> TrialConfig:
    try:
        return TrialConfig.from_dict({**base, **point})
    except ConfigError as err:
        raise ConfigError(f"sampled trial {show_point(point)}: {err}") from None
