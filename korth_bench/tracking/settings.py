"""The ``logging:`` section of a search space (and the ``--tensorboard`` / ``--mlflow`` flags).

::

    logging:
      tensorboard: true                 # <storage>/<sweep>/tensorboard/<trial name>/
      mlflow:                           # or `mlflow: true`
        experiment: korth               # default: korth-bench
        tracking_uri: ${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}   # default: where MLflow reads it

Off by default. The tracking URI is applied in the driver's process only (``mlflow_runs.use_uri``),
never stored with the sweep; credentials come from the environment variables MLflow reads
(``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD`` / ``_TOKEN``), so a URI holding ``user:password@``
is refused.
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from korth_bench.errors import ConfigError

DEFAULT_EXPERIMENT = "korth-bench"
EXTRA = "pip install 'korth-bench[tracking]'"


@dataclass(frozen=True)
class TrackingSettings:
    """What a sweep or a ``train`` run logs; it holds no URI and no credential, so it may be
    pickled with Tune's state."""
    tensorboard: bool = False
    mlflow: bool = False
    experiment: str = DEFAULT_EXPERIMENT

    @property
    def enabled(self) -> bool:
        return self.tensorboard or self.mlflow


def logging_section(section: Any) -> "tuple[TrackingSettings, Optional[str]]":
    """The settings and the tracking URI (None: MLflow's own rule) of a ``logging:`` mapping."""
    if section is None:
        return TrackingSettings(), None
    if not isinstance(section, Mapping):
        raise ConfigError(f"section logging must be a mapping (tensorboard, mlflow), got {section!r}")
    for key in section:
        if key not in ("tensorboard", "mlflow"):
            raise ConfigError(f"unknown key logging.{key}; allowed: tensorboard, mlflow")
    tensorboard = section.get("tensorboard", False)
    if not isinstance(tensorboard, bool):
        raise ConfigError(f"logging.tensorboard={tensorboard!r} must be true or false")
    mlflow = section.get("mlflow", False)
    experiment, uri = DEFAULT_EXPERIMENT, None
    if isinstance(mlflow, Mapping):
        for key in mlflow:
            if key not in ("experiment", "tracking_uri"):
                raise ConfigError(f"unknown key logging.mlflow.{key}; allowed: experiment, tracking_uri")
        experiment = mlflow.get("experiment", DEFAULT_EXPERIMENT)
        if not isinstance(experiment, str) or not experiment.strip():
            raise ConfigError(f"logging.mlflow.experiment={experiment!r} must be a non-empty name")
        uri = mlflow.get("tracking_uri")
        if uri is not None:
            uri = checked_uri(uri, "logging.mlflow.tracking_uri")
        mlflow = True
    elif not isinstance(mlflow, bool):
        raise ConfigError(f"logging.mlflow={mlflow!r} must be true, false or a mapping "
                          "(experiment, tracking_uri)")
    return checked(TrackingSettings(tensorboard=tensorboard, mlflow=mlflow, experiment=experiment)), uri


def with_flags(settings: TrackingSettings, tensorboard: bool = False, mlflow: bool = False,
               experiment: Optional[str] = None) -> TrackingSettings:
    """The settings with the ``--tensorboard``, ``--mlflow`` and ``--mlflow-experiment`` flags
    of ``run`` / ``train`` on top (a flag turns logging on; none turns it off)."""
    if experiment is not None and not experiment.strip():
        raise ConfigError(f"--mlflow-experiment={experiment!r} must be a non-empty name")
    return checked(TrackingSettings(
        tensorboard=settings.tensorboard or tensorboard,
        mlflow=settings.mlflow or mlflow or experiment is not None,
        experiment=experiment or settings.experiment))


def checked(settings: TrackingSettings) -> TrackingSettings:
    """The settings, once the packages they need are installed (else one line naming the extra)."""
    for wanted, package in ((settings.mlflow, "mlflow"), (settings.tensorboard, "tensorboard")):
        if wanted and importlib.util.find_spec(package) is None:
            raise ConfigError(f"logging.{package}: the {package} package is not installed; {EXTRA}")
    return settings


def checked_uri(uri: Any, where: str) -> str:
    """A tracking URI without credentials in it."""
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(f"{where}={uri!r} must be a URI (http://host:5000, sqlite:///mlflow.db, ...)")
    if re.match(r"^[a-z][a-z0-9+.-]*://[^/@]*:[^/@]*@", uri, re.IGNORECASE):
        raise ConfigError(f"{where} holds a user name and password; give them in "
                          "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or "
                          "MLFLOW_TRACKING_TOKEN) instead")
    return uri
