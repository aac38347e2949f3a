"""Sweeps on Ray Tune: the only module of korth-bench that imports Ray.

``run(space)`` loads and validates a search space (``spaces.py``), connects to Ray (a local
instance started and stopped here, or a running cluster at ``address``), and hands Tune a plain
function trainable. Resources, storage, search, scheduling, retries and checkpoints are Tune
configuration built from the YAML, never branches in the trainable:

* a trial runs ``trial.train_and_measure`` with a ``report`` callback that forwards each epoch
  row to ``tune.report`` (with ``Checkpoint.from_directory`` when the trial hands a checkpoint)
  and keeps ``<sweep>/epochs/<trial_id>.parquet`` current; when the trial returns it writes its
  four tables (``results.write_trial``) and reports its summary once more, so that Optuna can
  optimize trials-table metrics such as ``pgd_acc_8_255``;
* a trial with several workers (``resources.gpu >= 2`` or ``resources.workers``) launches a Ray
  Train ``TorchTrainer`` from inside the Tune trial; every worker runs the same trial function
  under ``torch.distributed`` (DDP, each rank a slice of the global batch), rank 0 writes, and
  ``TuneReportCallback`` forwards rank 0's reports to Tune;
* ``TableRecorder``, a Tune callback, writes the ``trials`` row of a trial that ASHA stopped
  (status ``stopped``) or that failed for good (status ``error``, with the message), since such a
  trial never returns to write it;
* ``Progress``, a Tune callback, keeps one live status line on a terminal and prints a line per
  finished trial (only a summary with ``quiet``); Ray's own console output is switched off.

Tune's experiment state and checkpoints live in ``<sweep>/tune`` (data-parallel trials' Ray Train
runs in ``<sweep>/train``), beside the tables, on the same storage (a local path, or a URI such
as ``s3://bucket/prefix`` through ``pyarrow.fs``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import pickle
import socket
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import pyarrow.fs as pafs
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from korth_bench import results, spaces, trial
from korth_bench.config import TrialConfig

TUNE_DIR = "tune"          # <sweep>/tune: Tune's experiment state and trial checkpoints
TRAIN_DIR = "train"        # <sweep>/train: Ray Train runs of data-parallel trials
LAUNCHER_CPU = 0.01        # a data-parallel trial's own share; its workers hold the real resources
CONNECT_TIMEOUT_S = 5.0
# Storage settings handed to a cluster's trials. Credentials are not among them: Ray logs a
# runtime environment in clear text (runtime_env_agent.log), so on a cluster every node holds the
# credentials in its own environment (exported before `ray start`, or an instance role).
FORWARDED_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")
CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN",
                  "AWS_SESSION_TOKEN")
SHARED_FILE_SYSTEMS = {"nfs", "nfs4", "cifs", "smb3", "lustre", "gpfs", "beegfs", "ceph", "cephfs",
                       "glusterfs", "fuse.glusterfs", "fuse.juicefs", "fuse.gcsfuse", "fuse.s3fs",
                       "fuse.mountpoint-s3", "wekafs", "virtiofs", "9p"}


# ---------------------------------------------------------------------- entry point
def run(space_path: str, address: Optional[str] = None, storage: Optional[str] = None,
        storage_endpoint: Optional[str] = None, resume: bool = False, dry_run: bool = False,
        quiet: Optional[bool] = None, max_concurrent: Optional[int] = None) -> int:
    """Run (or with ``dry_run`` only describe) the sweep of a search-space YAML.

    Args:
        space_path: a YAML file or the name of one in ``search_spaces/``.
        address: a running Ray cluster (``host:port``, ``ray://host:port`` or ``auto``); None
            starts a local Ray for this command and stops it at the end.
        storage: where the sweep directory ``<storage>/<name>`` goes: a local path (default
            ``./results``) or a URI (``s3://bucket/prefix``). A multi-node cluster needs storage
            every node reaches: a URI or a shared file system.
        storage_endpoint: the endpoint of an S3-compatible server (default ``AWS_ENDPOINT_URL``).
        resume: continue the interrupted sweep with Tune's saved state (searcher included).
        dry_run: print the expanded trial table, per-trial resources and a cost estimate; no Ray.
        quiet: no per-trial lines, only the summary; None: a live line on a terminal, plain
            lines elsewhere (CI).
        max_concurrent: overrides ``search.concurrency``.
    Returns:
        the exit code: 0 when no trial of this run ended with an error, 1 otherwise.
    Raises:
        ConfigError / ValueError: a bad search space, address or storage, before anything runs.
    """
    space = spaces.load(space_path)
    if max_concurrent is not None:
        if max_concurrent < 1:
            raise ValueError(f"--max-concurrent={max_concurrent} must be >= 1")
        space = dataclasses.replace(space, search=dataclasses.replace(space.search,
                                                                        concurrency=max_concurrent))
    if dry_run:
        print(spaces.dry_run_text(space))
        return 0
    spaces.check_data(space)
    context = _context(space, storage, storage_endpoint)
    _check_writable(context)
    points = space.points
    if space.search.type == "grid" and not resume:
        points = _missing(space, context)
        if not points:
            print(f"sweep {space.name}: all {len(space.points)} trials already have final rows in "
                  f"{context.sweep_uri}; nothing to run")
            return 0
        if len(points) < len(space.points):
            print(f"sweep {space.name}: {len(space.points) - len(points)} of {len(space.points)} "
                  f"trials already have final rows in {context.sweep_uri}; running the other "
                  f"{len(points)}")
    with _ray(address, context):
        tuner = _tuner(space, context, points, resume, quiet)
        grid = tuner.fit()
    print(_summary(space, context), file=sys.stderr)
    if _interrupted(space, context, grid):  # Ctrl-C: Tune saved its state and returned
        print(f"sweep {space.name} was interrupted; continue it with: korth-bench run {space_path}"
              + "".join(f" --{flag} {value}" for flag, value in (
                  ("address", address), ("storage", storage), ("storage-endpoint", storage_endpoint))
                  if value) + " --resume", file=sys.stderr)
        return 130
    return 1 if grid.num_errors else 0


def _interrupted(space: spaces.Space, context: "SweepContext", grid: Any) -> bool:
    """Whether trials of the sweep were left unfinished (a grid point without any trials row,
    or fewer finished Optuna trials than asked for)."""
    if space.search.type == "optuna":
        return grid.num_terminated + grid.num_errors < space.search.num_samples
    statuses = results.trial_statuses(context.sweep_uri, context.filesystem())
    return any(cfg.trial_id not in statuses for cfg in space.trials)


def _missing(space: spaces.Space, context: "SweepContext") -> List[Dict[str, Any]]:
    """Grid points without a final ``trials`` row (completed, stopped, diverged) in the sweep."""
    statuses = results.trial_statuses(context.sweep_uri, context.filesystem())
    return [point for point, cfg in zip(space.points, space.trials)
            if statuses.get(cfg.trial_id) not in results.FINAL_STATUSES]


# ---------------------------------------------------------------------- what every trial needs
@dataclass(frozen=True)
class SweepContext:
    """The sweep-wide facts a trial needs, shipped to it with ``tune.with_parameters``."""
    sweep: str                              # the sweep name (the trials table's sweep column)
    sweep_uri: str                          # <storage>/<name>, a local path or a URI
    endpoint: Optional[str]                 # S3-compatible endpoint, if any
    base: Dict[str, Any]                    # fixed trial keys; a trial's Tune config adds its own
    metrics: Tuple[str, ...]                # search and scheduler metrics every report must carry
    resources: spaces.Resources
    checkpoint_keep: int

    def filesystem(self) -> pafs.FileSystem:
        return results.resolve(self.sweep_uri, self.endpoint)[0]

    def path(self, *parts: str) -> str:
        """A path inside the sweep directory, in the storage's file system."""
        return "/".join([results.resolve(self.sweep_uri, self.endpoint)[1], *parts])

    def trial_config(self, point: Mapping[str, Any]) -> TrialConfig:
        cfg = TrialConfig.from_dict({**self.base, **point})
        if cfg.threads == 0:  # one torch thread per CPU the worker holds, never the whole machine
            cfg = cfg.replace(threads=max(1, int(self.resources.per_worker["cpu"])))
        return cfg


def _context(space: spaces.Space, storage: Optional[str], endpoint: Optional[str]) -> SweepContext:
    storage = storage or os.path.join(os.getcwd(), "results")
    if "://" not in storage:
        storage = os.path.abspath(os.path.expanduser(storage))
    metrics = tuple(dict.fromkeys([*space.search.metrics,
                                   *([space.scheduler.metric] if space.scheduler.metric else [])]))
    return SweepContext(sweep=space.name, sweep_uri=f"{storage.rstrip('/')}/{space.name}",
                        endpoint=endpoint, base=space.base, metrics=metrics,
                        resources=space.resources, checkpoint_keep=space.checkpoint_keep)


# ---------------------------------------------------------------------- the trainables
def trial_function(config: Dict[str, Any], context: SweepContext) -> None:
    """The Tune trainable of a one-process trial: ``config`` holds this trial's own keys."""
    cfg = context.trial_config(config)

    def send(metrics: Dict[str, Any], checkpoint_dir: Optional[str]) -> None:
        checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        tune.report(metrics, checkpoint=checkpoint)

    with _local_directory(tune.get_checkpoint()) as resume_from:
        _train(cfg, context, send, resume_from, write=True)


def data_parallel_function(config: Dict[str, Any], context: SweepContext) -> None:
    """The Tune trainable of a data-parallel trial: a ``TorchTrainer`` whose workers run the
    trial together; its reports reach Tune through ``TuneReportCallback``."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    cfg = context.trial_config(config)
    per_worker = context.resources.per_worker
    local = isinstance(context.filesystem(), pafs.LocalFileSystem)
    trainer = TorchTrainer(
        _train_worker, train_loop_config={"point": dict(config), "context": context},
        scaling_config=ScalingConfig(num_workers=context.resources.workers,
                                     use_gpu=per_worker["gpu"] > 0,
                                     resources_per_worker={"CPU": per_worker["cpu"],
                                                           "GPU": per_worker["gpu"]}),
        torch_config=TorchConfig(backend="nccl" if per_worker["gpu"] > 0 else "gloo"),
        run_config=RunConfig(
            # the Tune trial's id is kept by retries and --resume, so Ray Train resumes its run
            name=f"{cfg.trial_id}-{tune.get_context().get_trial_id()}",
            storage_path=context.path(TRAIN_DIR),
            storage_filesystem=None if local else context.filesystem(),
            checkpoint_config=CheckpointConfig(num_to_keep=kept_checkpoints(context.checkpoint_keep)),
            failure_config=FailureConfig(max_failures=0),  # Tune retries the whole trial
            callbacks=[TuneReportCallback()]))
    trainer.fit()


def _train_worker(loop_config: Dict[str, Any]) -> None:
    """One Ray Train worker of a data-parallel trial (torch.distributed is set up)."""
    import ray.train

    context: SweepContext = loop_config["context"]
    cfg = context.trial_config(loop_config["point"])
    rank = ray.train.get_context().get_world_rank()

    def send(metrics: Dict[str, Any], checkpoint_dir: Optional[str]) -> None:
        checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint)

    with _local_directory(ray.train.get_checkpoint()) as resume_from:
        _train(cfg, context, send, resume_from, write=rank == 0)


def _train(cfg: TrialConfig, context: SweepContext,
           send: Callable[[Dict[str, Any], Optional[str]], None],
           resume_from: Optional[str], write: bool) -> None:
    """Train one trial, reporting each epoch through ``send`` and writing the tables."""
    filesystem = context.filesystem()
    # A resumed trial reports only its new epochs: start from the rows written before.
    epochs = (results.read_trial_rows(context.sweep_uri, "epochs", cfg.trial_id, filesystem)
              if write and resume_from else [])

    def report(row: Dict[str, Any], checkpoint_dir: Optional[str]) -> None:
        nonlocal epochs
        if write:
            epochs = [r for r in epochs if r["epoch"] < row["epoch"]] + [row]
            results.write_rows(context.sweep_uri, "epochs", cfg.trial_id, epochs, filesystem)
        send(_metrics(row, context.metrics), checkpoint_dir)

    record = trial.train_and_measure(cfg, report=report, resume_from=resume_from)
    if write:
        results.write_trial(context.sweep_uri, record.tables(), sweep=context.sweep,
                            filesystem=filesystem)
    last = record.epochs[-1] if record.epochs else {}
    send(_metrics({**last, **record.summary}, context.metrics), None)


def _metrics(row: Mapping[str, Any], required: Tuple[str, ...]) -> Dict[str, Any]:
    """The numbers of a row for Tune: None -> NaN (schedulers compare numbers), every search and
    scheduler metric present (NaN until known, e.g. pgd_acc_8_255 before the trial ends).
    ``trial_id`` stays out: Tune's own trial id takes that key."""
    out: Dict[str, Any] = {k: float("nan") for k in required}
    for key, value in row.items():
        if key != "trial_id" and (value is None or isinstance(value, (bool, int, float))):
            out[key] = float("nan") if value is None else value
    if "status" in row:
        out["status"] = row["status"]
    return out


@contextlib.contextmanager
def _local_directory(checkpoint: Optional[tune.Checkpoint]) -> Iterator[Optional[str]]:
    if checkpoint is None:
        yield None
    else:
        with checkpoint.as_directory() as directory:
            yield directory


# ---------------------------------------------------------------------- callbacks
class TableRecorder(tune.Callback):
    """Writes the ``trials`` row of a trial that never returns to write it itself: stopped by
    the scheduler (``stopped``) or failed after its last retry (``error`` with the message)."""

    def __init__(self, *, context: SweepContext):
        self.context = context
        self._stopped: set = set()

    def on_trial_result(self, iteration: int, trials: List, trial: Any, result: Dict, **info):
        if result.get("done"):  # Tune marks the result on which the scheduler stopped a trial
            self._stopped.add(trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: List, trial: Any, **info):
        if trial.trial_id in self._stopped:
            self._write(trial, "stopped", None)

    def on_trial_error(self, iteration: int, trials: List, trial: Any, **info):
        self._write(trial, "error", error_message(trial))

    def _write(self, tune_trial: Any, status: str, error: Optional[str]) -> None:
        cfg = self.context.trial_config(tune_trial.config)
        row = unfinished_row(cfg, status, error, tune_trial.last_result or {},
                             (tune_trial.metric_analysis.get("test_acc") or {}).get("max"))
        results.write_trial(self.context.sweep_uri, {"trials": [row], "layers": [], "robustness": []},
                            sweep=self.context.sweep, filesystem=self.context.filesystem())


def unfinished_row(cfg: TrialConfig, status: str, error: Optional[str], last: Mapping[str, Any],
                   best_test_acc: Optional[float]) -> Dict[str, Any]:
    """The ``trials`` row of a trial that did not finish: its configuration, what its last
    report said, and nulls for what it never measured."""
    def number(value: Any) -> Optional[float]:
        return value if isinstance(value, (int, float)) and math.isfinite(value) else None

    epoch = last.get("epoch")
    return {**cfg.to_row(), "trial_id": cfg.trial_id, "status": status, "error": error,
            "test_acc": number(last.get("test_acc")), "test_loss": number(last.get("test_loss")),
            "val_acc": number(last.get("val_acc")), "best_test_acc": number(best_test_acc),
            "epochs_completed": epoch + 1 if isinstance(epoch, int) else 0,
            "train_time_s": number(last.get("elapsed_s")), "config_hash": cfg.config_hash,
            "ray_version": ray.__version__,
            "finished_at": datetime.now(timezone.utc).isoformat()}


def error_message(tune_trial: Any) -> str:
    """``Type: message`` of the exception that ended a trial (Tune keeps it beside the driver)."""
    path = tune_trial.pickled_error_file
    if path and os.path.exists(path):
        with open(path, "rb") as saved:
            error = ray.cloudpickle.load(saved)
        cause = getattr(error, "cause", None) or error
        return f"{type(cause).__name__}: {cause}".strip()[:2000]
    path = tune_trial.error_file
    lines = open(path).read().strip().splitlines() if path and os.path.exists(path) else []
    return lines[-1][:2000] if lines else "unknown error"


class Progress(tune.Callback):
    """A live view of a sweep: running / done / failed counts and the best result so far."""

    def __init__(self, *, total: int, metric: str, mode: str, quiet: Optional[bool]):
        self.total, self.metric, self.mode, self.quiet = total, metric, mode, quiet
        self._live = False  # decided in setup(), when the sweep starts (or resumes)
        self._reset()

    def _reset(self) -> None:
        self._start = time.monotonic()
        self._shown = 0.0
        self._best: Optional[Tuple[float, str]] = None
        self._stopped: set = set()
        self._done: set = set()
        self._failed: set = set()
        self._width = 0

    def setup(self, **info):
        self._reset()
        self._live = (not self.quiet and sys.stderr.isatty() and not os.environ.get("CI"))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            better = self._best is None or (value > self._best[0] if self.mode == "max"
                                            else value < self._best[0])
            if better:
                self._best = (value, describe_point(trial.config))
        if result.get("done"):
            self._stopped.add(trial.trial_id)
        self._refresh(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._done.add(trial.trial_id)
        status = "stopped" if trial.trial_id in self._stopped else (
            trial.last_result.get("status") or "completed")
        shown = trial.last_result.get(self.metric)
        value = f"{self.metric} {shown:.4f}" if isinstance(shown, float) and math.isfinite(shown) else ""
        self._line(f"{status:<9} {describe_point(trial.config)}  {value}", trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._failed.add(trial.trial_id)
        self._line(f"{'error':<9} {describe_point(trial.config)}  {error_message(trial)}", trials)

    def on_step_end(self, iteration, trials, **info):
        self._refresh(trials)

    def on_experiment_end(self, trials, **info):
        self._clear()

    def _line(self, text: str, trials: List) -> None:
        if self.quiet:
            return
        self._clear()
        print(f"  {text}", file=sys.stderr, flush=True)
        self._refresh(trials, force=True)

    def _refresh(self, trials: List, force: bool = False) -> None:
        now = time.monotonic()
        if not self._live or (not force and now - self._shown < 0.5):
            return
        self._shown = now
        # Tune updates a trial's status after the callbacks (and restored trials never pass them)
        done = self._done | {t.trial_id for t in trials if t.status == "TERMINATED"}
        failed = self._failed | {t.trial_id for t in trials if t.status == "ERROR"}
        running = sum(t.status == "RUNNING" and t.trial_id not in done | failed for t in trials)
        best = (f" | best {self.metric} {self._best[0]:.4f} ({self._best[1]})" if self._best else "")
        minutes, seconds = divmod(int(now - self._start), 60)
        text = (f"[{minutes:02d}:{seconds:02d}] {len(done) + len(failed)}/{self.total} | running "
                f"{running} | done {len(done)} (stopped {len(self._stopped & done)}) | failed "
                f"{len(failed)}{best}")
        self._clear()
        sys.stderr.write(text[:200])
        sys.stderr.flush()
        self._width = len(text[:200])

    def _clear(self) -> None:
        if self._live and self._width:
            sys.stderr.write("\r" + " " * self._width + "\r")
            sys.stderr.flush()
            self._width = 0


def describe_point(point: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" if k != "regularizer" else str(v) for k, v in point.items())


def _summary(space: spaces.Space, context: SweepContext) -> str:
    """One paragraph on the sweep's tables: trials per status and the best one."""
    trials = results.read_table(context.sweep_uri, "trials", context.filesystem()).to_pylist()
    counts: Dict[str, int] = {}
    for row in trials:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    metric, mode = space.search.metrics[0], space.search.modes[0]
    scored = [r for r in trials if isinstance(r.get(metric), (int, float))
              and math.isfinite(r[metric]) and r["status"] != "error"]
    text = (f"sweep {space.name}: {len(trials)} trials ("
            + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + f"); tables in {context.sweep_uri}")
    if scored:
        best = (max if mode == "max" else min)(scored, key=lambda r: r[metric])
        text += (f"\n  best {metric} {best[metric]:.4f}: {best['regularizer']} {best['model']}-"
                 f"{best['depth']}x{best['width']} seed {best['seed']} ({best['trial_id']})")
    errors = [r for r in trials if r["status"] == "error"]
    for row in errors[:5]:
        text += f"\n  error {row['trial_id']}: {row['error']}"
    return text


# ---------------------------------------------------------------------- Ray and Tune setup
@contextlib.contextmanager
def _ray(address: Optional[str], context: SweepContext) -> Iterator[None]:
    """Connect to Ray for one sweep; a Ray this process already started (tests) is reused."""
    if address:
        _check_reachable(address)
    _keep_credentials_out_of_runtime_envs()
    _tolerate_already_deleted_checkpoints()
    if ray.is_initialized():
        _check_storage(context)
        yield
        return
    # Workers started on a cluster's nodes do not inherit this shell: hand them the storage
    # settings it holds (a local Ray's workers inherit them anyway), never the credentials.
    forwarded = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ} if address else {}
    options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                   runtime_env={"env_vars": forwarded} if forwarded else None)
    if address:
        _connect(address, **options)
    else:
        ray.init(address="local", **options)
    try:
        _check_storage(context)
        yield
    finally:
        ray.shutdown()


def _keep_credentials_out_of_runtime_envs() -> None:
    """Tune copies the driver's AWS credential variables into each trainable's runtime
    environment, which Ray's runtime-env agent writes to its log in clear text. The trials get
    them from their node's environment instead (a local Ray's workers inherit this process's)."""
    from ray.tune.execution import class_cache

    class_cache.ENV_VARS_TO_PROPAGATE = frozenset(class_cache.ENV_VARS_TO_PROPAGATE) - set(CREDENTIAL_ENV)


def kept_checkpoints(keep: int) -> int:
    """Checkpoints kept per trial: ``checkpoint.keep``, but at least 2. Tune's saved experiment
    state can lag the storage by one checkpoint, so after a killed driver ``--resume`` restores
    the one before the newest; with only one kept, that one is already gone."""
    return max(2, keep)


def _tolerate_already_deleted_checkpoints() -> None:
    """Tune's saved experiment state can lag the storage by a checkpoint. After ``--resume`` it
    may evict (``checkpoint.keep``) a checkpoint that was already deleted before the driver died,
    and Ray then fails the trial on the missing path; a checkpoint that is gone needs no deleting."""
    from ray.train._internal import checkpoint_manager

    delete = checkpoint_manager._delete_fs_path
    if getattr(delete, "tolerates_missing", False):
        return

    def delete_if_present(fs: pafs.FileSystem, fs_path: str) -> None:
        if fs.get_file_info(fs_path).type != pafs.FileType.NotFound:
            delete(fs=fs, fs_path=fs_path)

    delete_if_present.tolerates_missing = True
    checkpoint_manager._delete_fs_path = delete_if_present


def _connect(address: str, **options: Any) -> None:
    """``ray.init`` on a running cluster. Ray's client logs each refused attempt to file
    descriptor 2 for about 20 s before a bare ConnectionError; that log is kept aside and turned
    into one line (a missing or wrong authentication token is the usual cause)."""
    sys.stderr.flush()
    saved = os.dup(2)
    error: Optional[ConnectionError] = None
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            ray.init(address=address, **options)
        except ConnectionError as err:
            error = err
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        log = captured.read().decode(errors="replace")
    if error is None:
        sys.stderr.write(log)  # a connected client's warnings stay visible
        return
    if "InvalidAuthToken" in log or "Unauthenticated" in log:
        raise ValueError(f"--address {address}: the cluster refused this client's authentication "
                         "token (InvalidAuthToken); set RAY_AUTH_MODE=token and give the cluster's "
                         "token in RAY_AUTH_TOKEN_PATH (a file) or RAY_AUTH_TOKEN (`ray "
                         "get-auth-token` on the head node prints it)") from None
    raise ValueError(f"--address {address}: Ray refused the connection ({error}); check that "
                     "this is the cluster's GCS address and that Ray's versions match") from None


def _check_reachable(address: str) -> None:
    """Fail within seconds, naming the address, when nothing listens there (``ray.init``
    would retry for minutes)."""
    target = address.split("://", 1)[-1]
    if address == "auto":  # the cluster `ray start` last recorded on this machine (or RAY_ADDRESS)
        from ray._private.services import canonicalize_bootstrap_address_or_die

        try:
            target = canonicalize_bootstrap_address_or_die("auto")
        except ConnectionError as err:
            raise ValueError(f"--address auto: {err}") from None
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit() or target.endswith("]"):
        host, port = target, "10001" if address.startswith("ray://") else "6379"
    host = host.strip("[]")  # an IPv6 literal
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise ValueError(f"--address {address}: no Ray cluster answers at {host}:{port} "
                         f"({err.strerror or err}); start one with `ray start --head` or leave "
                         "--address out to run on a local Ray") from None


def _check_writable(context: SweepContext) -> None:
    """A local results directory must be one this process can create files in; probed with a
    temporary directory that is removed at once, so a refused sweep leaves nothing behind."""
    if not isinstance(context.filesystem(), pafs.LocalFileSystem):
        return
    path = existing = context.path()
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    problem = None
    if not os.path.isdir(existing):
        problem = f"{existing} is not a directory"
    else:
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".korth-probe-", dir=existing))
        except OSError as err:
            problem = f"cannot create files in {existing}: {err.strerror or err}"
    if problem:
        raise ValueError(f"--storage {os.path.dirname(path)}: results directory is not writable "
                         f"({problem}); allowed: a writable local directory or a URI such as "
                         "s3://bucket/prefix")


def _check_storage(context: SweepContext) -> None:
    """A multi-node cluster needs storage every node reaches (Ray Tune's own rule)."""
    if not isinstance(context.filesystem(), pafs.LocalFileSystem):
        return
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    path = context.path()
    if len(nodes) > 1 and not _on_shared_file_system(path):
        raise ValueError(f"--storage {os.path.dirname(path)} is local to this machine, but the "
                         f"cluster has {len(nodes)} nodes whose trials must write checkpoints and "
                         "tables there: pass --storage s3://bucket/prefix (with --storage-endpoint "
                         "for an S3-compatible server), gs://..., or a path on a shared file "
                         "system (NFS, Lustre, ...)")


def _on_shared_file_system(path: str) -> bool:
    """Whether the (nearest existing parent of) ``path`` is on a network file system."""
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    path = os.path.realpath(path)
    best, kind = "", ""
    with contextlib.suppress(OSError), open("/proc/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) > 2 and (path == fields[1] or path.startswith(fields[1].rstrip("/") + "/")):
                if len(fields[1]) > len(best):
                    best, kind = fields[1], fields[2]
    return kind in SHARED_FILE_SYSTEMS


class PointSearcher(Searcher):
    """Hands out a fixed list of trial configurations, one per trial (the expanded grid).

    Ray's grid search takes Cartesian products only; the grid of a search space is expanded,
    conditioned per regularizer and de-duplicated by ``spaces.py`` already.
    """

    def __init__(self, points: List[Dict[str, Any]]):
        super().__init__()
        self.points = [dict(p) for p in points]
        self.handed = 0

    def suggest(self, trial_id: str) -> Optional[Dict[str, Any]]:
        if self.handed >= len(self.points):
            return Searcher.FINISHED
        self.handed += 1
        return dict(self.points[self.handed - 1])

    def on_trial_complete(self, trial_id: str, result: Optional[Dict] = None, error: bool = False):
        pass

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as out:
            pickle.dump({"points": self.points, "handed": self.handed}, out)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as saved:
            self.__dict__.update(pickle.load(saved))


class PrunedAwareOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that tells Optuna a trial without a finite value for every objective
    (stopped by ASHA before its trials-table metrics exist, or diverged) was pruned, instead of
    failing to record it and leaving it running in the study."""

    def on_trial_complete(self, trial_id: str, result: Optional[Dict] = None, error: bool = False):
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        if result and any(not _finite(result.get(m)) for m in metrics):
            result = None  # OptunaSearch records a finished trial without a result as pruned
        super().on_trial_complete(trial_id, result=result, error=error)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _tuner(space: spaces.Space, context: SweepContext, points: List[Dict[str, Any]],
           resume: bool, quiet: Optional[bool]) -> tune.Tuner:
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's console tables off (verbose=0)
    # A trial resumed from a checkpoint reports its epoch again; Optuna keeps the first value.
    warnings.filterwarnings("ignore", message="The reported value is ignored", category=UserWarning)
    logging.getLogger("ray.tune").setLevel(logging.ERROR)
    logging.getLogger("ray.train").setLevel(logging.ERROR)
    resources = space.resources
    if resources.workers > 1:
        trainable = tune.with_resources(
            tune.with_parameters(data_parallel_function, context=context), {"cpu": LAUNCHER_CPU})
    else:
        trainable = tune.with_resources(tune.with_parameters(trial_function, context=context),
                                        {"cpu": resources.cpu, "gpu": resources.gpu})
    local = isinstance(context.filesystem(), pafs.LocalFileSystem)
    filesystem = None if local else context.filesystem()
    experiment = context.path(TUNE_DIR)
    if resume:
        if not tune.Tuner.can_restore(experiment, storage_filesystem=filesystem):
            raise ValueError(f"--resume: no interrupted sweep at {context.sweep_uri}/{TUNE_DIR}; "
                             "run without --resume to start it")
        # The run configuration (callbacks, storage, failure and checkpoint settings) and the
        # searcher's state (an Optuna study included) come back from the saved experiment.
        return tune.Tuner.restore(experiment, trainable, resume_unfinished=True,
                                  restart_errored=True, storage_filesystem=filesystem)
    search, scheduler = space.search, space.scheduler
    if search.type == "grid":
        searcher: Searcher = PointSearcher(points)
        num_samples = len(points)
    else:
        single = len(search.metrics) == 1
        searcher = PrunedAwareOptunaSearch(space=space.optuna, metric=search.metrics[0] if single else list(search.metrics),
                                mode=search.modes[0] if single else list(search.modes), seed=search.seed)
        num_samples = search.num_samples
    asha = None
    if scheduler.type == "asha":
        epochs = space.trials[0].epochs if space.trials else space.optuna.check(space.base)[0].epochs
        # max_t below the last epoch and stop_last_trials off: ASHA stops a trial only before
        # its last epoch, so a surviving trial always finishes its measurements.
        asha = ASHAScheduler(time_attr="training_iteration", metric=scheduler.metric,
                             mode=scheduler.mode, max_t=epochs - 1,
                             grace_period=scheduler.grace_period,
                             reduction_factor=scheduler.reduction_factor, stop_last_trials=False)
    callbacks = [TableRecorder(context=context),
                 Progress(total=num_samples, metric=search.metrics[0], mode=search.modes[0], quiet=quiet)]
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=asha, num_samples=num_samples,
                                    max_concurrent_trials=search.concurrency, reuse_actors=True),
        run_config=tune.RunConfig(
            name=TUNE_DIR, storage_path=context.path(), storage_filesystem=filesystem,
            failure_config=tune.FailureConfig(max_failures=space.max_retries),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=kept_checkpoints(space.checkpoint_keep)),
            callbacks=callbacks, verbose=0))
