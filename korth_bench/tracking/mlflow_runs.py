"""MLflow runs of a sweep: one parent run per sweep, one child run per trial (no Ray here).

The parent run is named after the sweep and its storage (``parent_run_name``) and tagged
``sweep``, ``sweep_uri`` and ``space_hash``
(the search-space file's SHA-256, 12 hex digits); a child run is named after the trial and tagged
``trial_id``, ``regularizer``, ``cell``, ``seed``, ``config_hash`` and ``sweep``, its params are
the trial's configuration keys (the ``trials`` table's names), its metrics the ``epochs`` columns
at step = epoch, and at the end the headline numbers of the ``trials`` row (``final.test_acc``,
...) and its ``status`` tag.
Runs are found again by their tags, so a resumed sweep and a retried trial continue their own
runs instead of opening second ones.

The URI is the driver's own (``use_uri``, else ``MLFLOW_TRACKING_URI``, else MLflow's default);
credentials are read by MLflow from its environment variables and never pass through here.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set

from korth_bench.analysis.entries import CELL
from korth_bench.config import TrialConfig
from korth_bench.errors import ConfigError
from korth_bench.results import columns
from korth_bench.tracking.settings import checked_uri

EPOCH_METRICS = tuple(k for k in columns("epochs") if k not in ("trial_id", "epoch"))
FINAL = "final."             # prefix of the trials row's headline metrics
STEP_METRIC = "train_loss"   # an epochs column every logged epoch has (catching up reads its steps)
PARAMS_PER_CALL = 100        # MLflow's log_batch limit
RUN_STATUS = {"completed": "FINISHED", "diverged": "FINISHED", "stopped": "KILLED", "error": "FAILED"}
# A tracker that does not answer should cost seconds, not MLflow's minutes of retries.
# MLflow 3's UI opens an experiment on its GenAI traces page unless this tag says it holds model
# training runs (the UI's ExperimentKind enum: custom_model_development -> the runs table).
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
FAST_FAILURE_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def use_uri(uri: Optional[str]) -> None:
    """Point this process's MLflow client at ``uri`` (None: MLflow's own rule) and make a tracker
    that does not answer fail within seconds. Nothing is written to the environment."""
    import mlflow

    for key, value in FAST_FAILURE_ENV.items():
        os.environ.setdefault(key, value)
    if os.environ.get("MLFLOW_TRACKING_URI"):
        checked_uri(os.environ["MLFLOW_TRACKING_URI"], "MLFLOW_TRACKING_URI")
    if uri:
        mlflow.set_tracking_uri(uri)


def space_hash(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()[:12]


def cell_text(cfg: TrialConfig) -> str:
    """The trial's cell (``analysis.entries.CELL``) as one word: ``synthetic-resnet-8-1``."""
    row = cfg.to_dict()
    return "-".join(str(row[key]) for key in CELL)


def finite_metrics(row: Mapping[str, Any], keys: Iterable[str]) -> Dict[str, float]:
    """The finite numbers of ``row`` among ``keys`` (None and NaN are what was not measured)."""
    out = {}
    for key in keys:
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


class MlflowRuns:
    """The runs of one sweep (``parent``: True) or of ``train`` runs (one top-level run each)."""

    def __init__(self, experiment: str, sweep: str, *, parent: bool, sweep_uri: str = "",
                 space_file_hash: str = ""):
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient()
        self.sweep, self.sweep_uri, self.space_file_hash = sweep, sweep_uri, space_file_hash
        self.experiment_name, self.with_parent = experiment, parent
        self._experiment_id: Optional[str] = None
        self._parent_id: Optional[str] = None
        self._children: Dict[str, str] = {}

    # ------------------------------------------------------------------ runs
    def experiment_id(self) -> str:
        """The experiment, created if need be, marked for MLflow 3's classic runs view
        (``EXPERIMENT_KIND``) unless it already says what kind it is."""
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment_name)
            if found is None:
                self._experiment_id = self.client.create_experiment(
                    self.experiment_name, tags={EXPERIMENT_KIND[0]: EXPERIMENT_KIND[1]})
            else:
                self._experiment_id = found.experiment_id
                if EXPERIMENT_KIND[0] not in (found.tags or {}):
                    self.client.set_experiment_tag(self._experiment_id, *EXPERIMENT_KIND)
        return self._experiment_id

    def parent_id(self) -> str:
        """The sweep's parent run: found by its tags (a resumed sweep), else created."""
        if self._parent_id is None:
            found = self._search(f"tags.kind = 'sweep' and tags.sweep = '{_quoted(self.sweep)}' "
                                 f"and tags.sweep_uri = '{_quoted(self.sweep_uri)}'")
            if found:
                self._parent_id = found[0].info.run_id
                self.client.update_run(self._parent_id, status="RUNNING")
            else:
                self._parent_id = self.client.create_run(
                    self.experiment_id(), run_name=parent_run_name(self.sweep, self.sweep_uri),
                    tags={"kind": "sweep", "sweep": self.sweep, "sweep_uri": self.sweep_uri}
                ).info.run_id
            if self.space_file_hash:
                self.client.set_tag(self._parent_id, "space_hash", self.space_file_hash)
        return self._parent_id

    def child_id(self, cfg: TrialConfig) -> str:
        """The trial's run: found by its ``trial_id`` tag (resumed or retried), else created with
        its tags and params."""
        if cfg.trial_id in self._children:
            return self._children[cfg.trial_id]
        where = f"tags.kind = 'trial' and tags.trial_id = '{cfg.trial_id}' and tags.sweep = '{_quoted(self.sweep)}'"
        parent = self.parent_id() if self.with_parent else None
        if parent:
            where += f" and tags.`mlflow.parentRunId` = '{parent}'"
        found = self._search(where)
        if found:
            run_id = found[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
        else:
            tags = {"kind": "trial", "sweep": self.sweep, "trial_id": cfg.trial_id,
                    "regularizer": cfg.regularizer, "cell": cell_text(cfg), "seed": str(cfg.seed),
                    "config_hash": cfg.config_hash}
            if parent:
                tags["mlflow.parentRunId"] = parent
            run_id = self.client.create_run(self.experiment_id(), run_name=cfg.name,
                                            tags=tags).info.run_id
            self._log_params(run_id, cfg)
        self._children[cfg.trial_id] = run_id
        return run_id

    def _search(self, where: str) -> List[Any]:
        return list(self.client.search_runs([self.experiment_id()], filter_string=where,
                                            max_results=1, order_by=["attributes.start_time ASC"]))

    def _log_params(self, run_id: str, cfg: TrialConfig) -> None:
        from mlflow.entities import Param

        params = [Param(key, _param_text(value)) for key, value in cfg.to_dict().items()]
        for start in range(0, len(params), PARAMS_PER_CALL):
            self.client.log_batch(run_id, params=params[start:start + PARAMS_PER_CALL])

    # ------------------------------------------------------------------ what a trial logs
    def log_epoch(self, cfg: TrialConfig, row: Mapping[str, Any]) -> None:
        """One ``epochs`` row as metrics at step = epoch."""
        self._log_metrics(self.child_id(cfg), finite_metrics(row, EPOCH_METRICS), int(row["epoch"]))

    def logged_epochs(self, cfg: TrialConfig) -> Set[int]:
        """The epochs the trial's run holds (the steps of its ``STEP_METRIC``)."""
        history = self.client.get_metric_history(self.child_id(cfg), STEP_METRIC)
        return {int(metric.step) for metric in history}

    def _trial_runs(self, condition: str = "") -> Iterable[Any]:
        """Every trial run of this sweep (under its parent, when it has one) matching the extra
        filter ``condition``, page after page."""
        where = f"tags.kind = 'trial' and tags.sweep = '{_quoted(self.sweep)}'{condition}"
        if self.with_parent:
            where += f" and tags.`mlflow.parentRunId` = '{self.parent_id()}'"
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id()], filter_string=where,
                                           max_results=1000, page_token=token)
            yield from page
            token = page.token
            if not token:
                return

    def open_trial_runs(self) -> Set[str]:
        """The trial ids of this sweep's runs still marked RUNNING: trials whose end no driver
        logged (one stopped between a trial's last rows and their logging)."""
        return {run.data.tags["trial_id"]
                for run in self._trial_runs(" and attributes.status = 'RUNNING'")}

    def finished_trial_ids(self) -> Set[str]:
        """The trial ids of this sweep's runs that hold their end (a ``status`` tag)."""
        return {run.data.tags["trial_id"] for run in self._trial_runs()
                if "status" in run.data.tags}

    def where(self) -> str:
        """The parent run and experiment, as a user finds them in the UI."""
        return (f"MLflow run '{parent_run_name(self.sweep, self.sweep_uri)}' in experiment "
                f"'{self.experiment_name}'")

    def finish(self, cfg: TrialConfig, status: str, summary: Mapping[str, Any],
               headline: Iterable[str]) -> None:
        """The final ``trials`` row's headline numbers as ``final.<column>`` (apart from the
        epoch curves of the same names) and its status; the run ends."""
        run_id = self.child_id(cfg)
        final = finite_metrics(summary, headline)
        self._log_metrics(run_id, {f"{FINAL}{key}": value for key, value in final.items()}, 0)
        self.client.set_tag(run_id, "status", status)
        self.client.set_terminated(run_id, status=RUN_STATUS.get(status, "FINISHED"))
        self._children.pop(cfg.trial_id, None)

    def end_sweep(self) -> None:
        if self._parent_id is not None:
            self.client.set_terminated(self._parent_id, status="FINISHED")

    def _log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        if metrics:
            self.client.log_batch(run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])


def parent_run_name(sweep: str, sweep_uri: str) -> str:
    """The parent run's name in the MLflow UI: the sweep and where it is stored, so that two
    sweeps of one name in two storages are told apart ('smoke @ /scratch/a/results')."""
    storage = sweep_uri[: -len(sweep) - 1] if sweep_uri.endswith("/" + sweep) else sweep_uri
    return f"{sweep} @ {storage}" if storage else sweep


def _param_text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _quoted(text: str) -> str:
    return text.replace("'", "\\'")


# ---------------------------------------------------------------------- reports
def report_sweep_uris(document: Mapping[str, Any]) -> List[str]:
    """The storage locations a report's sweeps were written to, as the parent runs' ``sweep_uri``
    tag records them (``results.sweep_location``: absolute local paths, URIs as given): each
    source directory itself, and each of its sweeps below it (a folder of sweep directories)."""
    uris = []
    for source in document.get("sources", []):
        source = str(source).rstrip("/")
        if "://" not in source:
            source = os.path.abspath(os.path.expanduser(source))
        uris += [source] + [f"{source}/{sweep}" for sweep in document.get("sweeps", [])]
    return list(dict.fromkeys(uris))


def log_report(written: Mapping[str, str], uri: Optional[str] = None) -> List[str]:
    """Log a report's files (HTML, JSON, Markdown, figures) as artifacts of the parent run of
    each sweep it covers, and its verdicts as tags ``verdict.<claim>`` (``verdict.1``,
    ``verdict.2 relaxed``); returns the run ids. A parent run is matched by the storage its
    sweep wrote to (its ``sweep_uri`` tag against ``report_sweep_uris``), never by the sweep's
    name alone: a sweep of the same name in another storage is another sweep.

    Raises:
        ConfigError: no sweep of the report has a parent run in the tracking store.
    """
    use_uri(uri)
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    with open(written["json"]) as handle:
        document = json.load(handle)
    experiments = [e.experiment_id for e in client.search_experiments()]
    locations = report_sweep_uris(document)
    run_ids = []
    for sweep in document["sweeps"]:
        for location in locations:
            runs = client.search_runs(experiments, filter_string=(
                f"tags.kind = 'sweep' and tags.sweep = '{_quoted(sweep)}' and "
                f"tags.sweep_uri = '{_quoted(location)}'")) if experiments else []
            run_ids += [run.info.run_id for run in runs if run.info.run_id not in run_ids]
    if not run_ids:
        raise ConfigError(f"--mlflow: no MLflow run of sweep(s) {', '.join(document['sweeps'])} "
                          f"stored at {', '.join(document.get('sources', []))} in the tracking "
                          "store (MLFLOW_TRACKING_URI); run the sweep with logging.mlflow first")
    for run_id in run_ids:
        for path in written.values():
            client.log_artifact(run_id, path, artifact_path="report")
        for verdict in document["verdicts"]:
            claim = re.sub(r"[^\w\-. :/]", "", str(verdict["claim"]))  # "2, relaxed" -> "2 relaxed"
            client.set_tag(run_id, f"verdict.{claim}", verdict["verdict"])
    return run_ids
