"""Sweeps on Ray Tune: the tuner, with ``sweep.callbacks`` and ``sweep.cluster`` the only Ray code.

``run(space)`` loads and validates a search space (``korth_bench.spaces``), connects to Ray (a local
instance started and stopped here, or a running cluster at ``address``), and hands Tune a plain
function trainable. Resources, storage, search, scheduling, retries and checkpoints are Tune
configuration built from the YAML, never branches in the trainable:

* a trial starts from the newest complete checkpoint of its own ``trial_id`` on the sweep's
  storage (``sweep.checkpoints``; from scratch when there is none), whether Tune started it
  fresh, retried it or resumed it; it runs ``train_and_measure`` with a ``report`` callback
  that stores each checkpoint the trial hands there, keeps ``<sweep>/epochs/<trial_id>.parquet``
  current and forwards the epoch row to ``tune.report`` (Tune is handed no checkpoint, so its
  saved state can never point at one that is gone); when the trial returns it writes its four
  tables (``results.write_trial``) and reports its summary once more, so that Optuna can
  optimize trials-table metrics such as ``pgd_acc_8_255``;
* a trial with several workers (``resources.gpu >= 2`` or ``resources.workers``) launches a Ray
  Train ``TorchTrainer`` from inside the Tune trial; every worker runs the same trial function
  under ``torch.distributed`` (DDP, each rank a slice of the global batch), rank 0 writes, and
  ``TuneReportCallback`` forwards rank 0's reports to Tune;
* ``TableRecorder`` and ``Progress`` (``sweep.callbacks``), Tune callbacks, write the
  ``trials`` row of a trial that ASHA stopped or that failed for good, and keep a live view of
  the sweep; Ray's own console output is switched off; with a ``logging`` section,
  ``TrackingCallback`` (``sweep.tracking``) feeds MLflow and TensorBoard from the driver;
* a grid with the fifo scheduler runs as consecutive Tuners of at most ``search.wave_size``
  trials (``_fit``), so the driver never holds more than one wave's Trial objects;
* ``sweep.cluster`` connects to Ray and checks the address, the resources and the storage first;
  ``sweep.context.SweepContext`` is what every trial is shipped.

Tune's experiment state lives in ``<sweep>/tune`` (data-parallel trials' Ray Train runs in
``<sweep>/train``) and the trials' checkpoints in ``<sweep>/checkpoints``, beside the tables, on
the same storage (a local path, or a URI such
as ``s3://bucket/prefix`` through ``pyarrow.fs``).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import pickle
import sys
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import pyarrow.fs as pafs
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from korth_bench import results
from korth_bench.faults import (NO_SPACE, PERMISSION, QUOTA, READ_ONLY, UNREACHABLE, Fault,
                                fault_text, free_space, size_text, storage_fault)
from korth_bench.spaces.dryrun import dry_run_text, bf16_precision_note, storage_estimate
from korth_bench.spaces.sections import Resources
from korth_bench.spaces.space import Space, check_data, load
from korth_bench.trial.loop import train_and_measure
from korth_bench.config import TrialConfig
from korth_bench.join import (check_arithmetic, check_lines, difference_line, joined_space,
                              load_study, manifest, plan_join, write_manifest)
from korth_bench.sweep.context import SweepContext, sweep_context
from korth_bench.sweep.callbacks import Progress, TableRecorder, summary_text
from korth_bench.sweep.cluster import check_writable, ray_session
from korth_bench.sweep.driver_log import driver_log
from korth_bench.sweep.lease import DriverLease
from korth_bench.sweep.tracking import TrackingCallback, backfill, end_open_runs
from korth_bench.tracking.mlflow_runs import space_hash, use_uri
from korth_bench.tracking.settings import with_flags
from korth_bench.tracking.tracker import Tracker
from korth_bench.tracking.tensorboard_runs import TENSORBOARD_DIR
from korth_bench.errors import ConfigError, StorageFault

TUNE_DIR = "tune"          # <sweep>/tune: Tune's experiment state
TRAIN_DIR = "train"        # <sweep>/train: Ray Train runs of data-parallel trials
LAUNCHER_CPU = 0.01        # a data-parallel trial's own share; its workers hold the real resources


# ---------------------------------------------------------------------- entry point
def run(space_path: str, address: Optional[str] = None, storage: Optional[str] = None,
        storage_endpoint: Optional[str] = None, resume: bool = False, dry_run: bool = False,
        quiet: Optional[bool] = None, max_concurrent: Optional[int] = None,
        pending_timeout: Optional[float] = None, tensorboard: bool = False, mlflow: bool = False,
        mlflow_experiment: Optional[str] = None, join: Optional[str] = None,
        rebaseline: int = 0) -> int:
    """Run (or with ``dry_run`` only describe) the sweep of a search-space YAML.

    Args:
        space_path: a YAML file or the name of one in ``search_spaces/``.
        address: a running Ray cluster (``host:port``, ``ray://host:port`` or ``auto``); None
            starts a local Ray for this command and stops it at the end.
        storage: where the sweep directory ``<storage>/<name>`` goes: a local path (default
            ``./results``) or a URI (``s3://bucket/prefix``). A multi-node cluster needs storage
            every node reaches: a URI or a shared file system.
        storage_endpoint: the endpoint of an S3-compatible server (default ``AWS_ENDPOINT_URL``).
        resume: continue the interrupted sweep: a grid with the fifo scheduler runs its trials
            without a final row again, each from its own newest checkpoint; an Optuna or ASHA
            sweep continues from Tune's saved state (searcher and scheduler included).
        dry_run: print the expanded trial table, per-trial resources and a cost estimate; no Ray.
        quiet: no per-trial lines, only the summary; None: a live line on a terminal, plain
            lines elsewhere (CI).
        max_concurrent: overrides ``search.concurrency``.
        pending_timeout: seconds to wait for a node that fits a trial (an autoscaling cluster
            adding one); None refuses at once a sweep whose trial fits on no node.
        tensorboard, mlflow, mlflow_experiment: turn on the ``logging`` section's trackers
            (``korth_bench.tracking``); a resumed sweep keeps the trackers it started with.
        join: a committed study's results directory: run only the arms the study lacks, on its
            protocol, cells and seeds (``korth_bench.join``), after the first-epoch check.
        rebaseline: with ``join``, re-run this many baseline seeds per joined cell and take the
            gains against them (needed when the first epoch shows another arithmetic).
    Returns:
        the exit code: 0 when no trial of this run ended with an error, 1 otherwise.
    Raises:
        ConfigError / ValueError: a bad search space, address, storage or resources (a trial that
            fits on no node), or local storage with clearly too little free space for what the
            sweep will write (``spaces.dryrun.storage_estimate``), before anything runs.
        StorageFault: the storage failed mid-sweep (``korth_bench.faults``: full, over quota,
            read-only, refusing permission, or an object store unreachable beyond
            ``failure.storage_retry_s``); its one line names the storage, the fault, the
            ``--resume`` command and the log holding the trials' tracebacks.
    """
    space = load(space_path)
    if max_concurrent is not None:
        if max_concurrent < 1:
            raise ConfigError(f"--max-concurrent={max_concurrent} must be >= 1")
        space = dataclasses.replace(space, search=dataclasses.replace(space.search,
                                                                        concurrency=max_concurrent))
    space = dataclasses.replace(space, tracking=with_flags(space.tracking, tensorboard, mlflow,
                                                           mlflow_experiment))
    joined = None
    if join is not None:
        space, joined = _join(space, space_path, join, rebaseline, storage, dry_run)
    if dry_run:
        print(dry_run_text(space))
        if storage is None or "://" not in storage:
            space_left = free_space(results.sweep_location(storage, space.name))
            if space_left:
                print(f"free space at {results.sweep_location(storage, space.name)}: "
                      f"{size_text(space_left[0])}")
        return 0
    note = bf16_precision_note(space)
    if note:
        print(f"korth-bench: note: {note}", file=sys.stderr)
    check_data(space)
    context = sweep_context(space, storage, storage_endpoint)
    check_writable(context, storage)
    if joined is not None:
        write_manifest(context.sweep_uri, joined, context.endpoint)
    if space.tracking.tensorboard and not isinstance(context.filesystem(), pafs.LocalFileSystem):
        raise ConfigError(f"logging.tensorboard needs local storage or a shared file system (the "
                          f"event files go to <storage>/{space.name}/{TENSORBOARD_DIR}); --storage "
                          f"is {storage}")
    # one driver per sweep: a second one is refused here, before it touches the sweep
    lease = DriverLease(context.sweep_uri, context.endpoint, command=f"korth-bench run {space_path}")
    taken = lease.acquire()
    if taken:
        print(f"korth-bench: note: {taken}", file=sys.stderr)
    try:
        return _run_held(space, space_path, context, address, storage, storage_endpoint, resume,
                         quiet, pending_timeout)
    finally:
        lease.release()


def _join(space: Space, space_path: str, study_dir: str, rebaseline: int,
          storage: Optional[str], dry_run: bool):
    """The join's space and its JOIN_FILE document (None for a dry run, which trains nothing);
    refuses (ConfigError) a space that changes the study's protocol or, without
    ``rebaseline``, a first epoch that differs from the committed one."""
    study = load_study(study_dir)
    target = results.sweep_location(storage, space.name)
    if "://" not in target and os.path.abspath(target) == os.path.abspath(study_dir):
        raise ConfigError(f"name: {space.name} is the study's own directory; a join writes to "
                          "a directory of its own (rename the space)")
    plan = plan_join(space, study, rebaseline)
    if plan.skipped:
        print(f"join: {len(plan.skipped)} trial(s) the study already has are not run again")
    if dry_run:
        return joined_space(space, plan), None
    checks = check_arithmetic(plan)
    for line in check_lines(checks):
        print(f"join: {line}")
    if not all(c["same"] for c in checks) and not rebaseline:
        raise ConfigError(difference_line(study, checks))
    return joined_space(space, plan), manifest(plan, checks, space_path)


def _run_held(space: Space, space_path: str, context: SweepContext, address: Optional[str],
              storage: Optional[str], storage_endpoint: Optional[str], resume: bool,
              quiet: Optional[bool], pending_timeout: Optional[float]) -> int:
    """``run`` once this driver holds the sweep's lease (``sweep.lease``)."""
    if space.tracking.mlflow:
        use_uri(space.tracking_uri)
        _end_open_runs(space, context)
    if resume:
        _check_resumable(context)
    points = space.points
    if space.search.type == "grid" and (not resume or space.wave_size):
        points = _missing(space, context)
        if not points:
            print(f"sweep {space.name}: all {len(space.points)} trials already have final rows in "
                  f"{context.sweep_uri}; nothing to run")
            if space.tracking.enabled:  # the trackers get what the tables hold, or one line why not
                print(_backfill(space, context, [cfg.trial_id for cfg in space.trials]))
            return 0
        if len(points) < len(space.points):
            print(f"sweep {space.name}: {len(space.points) - len(points)} of {len(space.points)} "
                  f"trials already have final rows in {context.sweep_uri}; running the other "
                  f"{len(points)}")
            if space.tracking.enabled:
                running = {id(point) for point in points}
                print(_backfill(space, context, [cfg.trial_id for point, cfg in
                                                 zip(space.points, space.trials)
                                                 if id(point) not in running]))
    configs = {id(point): cfg for point, cfg in zip(space.points, space.trials)}
    _check_free_space(space, context, storage, [configs[id(point)] for point in points]
                      if space.search.type == "grid" else None)
    again = f"korth-bench run {space_path}" + "".join(f" --{flag} {value}" for flag, value in (
        ("address", address), ("storage", storage), ("storage-endpoint", storage_endpoint))
        if value) + " --resume"
    with driver_log(context) as log:
        try:
            with ray_session(address, context, trial_bundles(space.resources), pending_timeout):
                errors, interrupted = _fit(space, context, points, resume, quiet)
            summary = summary_text(space, context)
        except Exception as err:  # a storage fault, anywhere in the chain: one line; else a bug
            fault = storage_fault(err)
            if fault is None:
                raise
            log.faulted = True
            log.write_exception(err, "the sweep stopped on a storage fault")
            raise StorageFault(_fault_line(fault, context, again, log.where())) from None
    print(summary, file=sys.stderr)
    if interrupted:  # Ctrl-C: Tune saved its state and returned
        print(f"sweep {space.name} was interrupted; continue it with: {again}", file=sys.stderr)
        return 130
    return 1 if errors else 0


_REMEDY = {NO_SPACE: "free space", QUOTA: "free space or raise the quota",
           READ_ONLY: "make the storage writable again", PERMISSION: "restore write access",
           UNREACHABLE: "wait until the store answers"}


def _fault_line(fault: Fault, context: SweepContext, again: str, log: Optional[str]) -> str:
    """The one line of a sweep stopped by a storage fault."""
    budget = None if context.local else results.s3_retry_budget(context.storage_retry_s)[1]
    remedy = _REMEDY[fault.kind] if context.local or fault.kind != PERMISSION else (
        "renew the storage credentials")
    return (f"{fault_text(fault, context.sweep_uri, context.local, budget)}; the sweep stopped and "
            f"what it wrote is complete; {remedy}, then continue with: {again}"
            + (f" (the trials' tracebacks: {log})" if log else " (no log could be written)"))


def _check_free_space(space: Space, context: SweepContext, storage: Optional[str],
                      trials: Optional[List[TrialConfig]]) -> None:
    """Refuse, before Ray starts, a sweep on local storage with clearly too little free space
    for what its ``trials`` (None: all) will write (``spaces.dryrun.storage_estimate``)."""
    if not context.local:
        return
    space_left = free_space(context.path())
    needed = storage_estimate(space, trials)
    if space_left and space_left[0] < needed.total:
        raise ConfigError(f"--storage {storage or os.path.dirname(context.sweep_uri)}: "
                          f"{size_text(space_left[0])} free, the sweep needs {needed.text()}; "
                          "free space, lower checkpoint.keep, or pass another --storage")


def _fit(space: Space, context: SweepContext, points: List[Dict[str, Any]], resume: bool,
         quiet: Optional[bool]) -> Tuple[int, bool]:
    """Run the sweep's Tuners; returns (trials that ended with an error, interrupted).

    Tune's driver holds every Trial of a Tuner and rewrites their state at each snapshot, so its
    memory and the time of a snapshot grow with the Tuner's size (``benchmarks/bench_scale.py``).
    A grid with the fifo scheduler (``space.wave_size`` set) therefore runs ``points`` as
    consecutive Tuners of at most ``wave_size`` trials, each started fresh: a trial's progress
    lives in its own checkpoints and rows, never in Tune's state, so a resumed or retried trial
    continues wherever it runs. An Optuna or ASHA sweep runs in one Tuner (its sampler and rungs
    compare every trial), restored from Tune's state by ``resume``. Ctrl-C stops after the
    running Tuner."""
    if space.wave_size is None:
        grid = _tuner(space, context, points, resume, quiet).fit()
        return grid.num_errors, _interrupted(space, context, grid, points)
    size = space.wave_size
    waves = [points[start:start + size] for start in range(0, len(points), size)]
    errors = 0
    for number, wave in enumerate(waves, 1):
        if len(waves) > 1:
            print(f"sweep {space.name}: wave {number} of {len(waves)} ({len(wave)} trials)",
                  file=sys.stderr)
        grid = _tuner(space, context, wave, False, quiet).fit()
        errors += grid.num_errors
        if _interrupted(space, context, grid, wave):
            return errors, True
    return errors, False


def _end_open_runs(space: Space, context: SweepContext) -> None:
    """The MLflow runs of trials that finished while no driver logged them, ended from the
    tables before anything runs (``sweep.tracking.end_open_runs``)."""
    tracker = Tracker(space.tracking, sweep=context.sweep, tensorboard_root=context.path(TENSORBOARD_DIR),
                      sweep_uri=context.sweep_uri, space_file_hash=space_hash(space.path))
    end_open_runs(context, tracker)
    tracker.close()


def _backfill(space: Space, context: SweepContext, trial_ids: List[str]) -> str:
    """Log the final trials ``trial_ids`` that the trackers lack, from the tables
    (``sweep.tracking.backfill``); returns its one line."""
    tracker = Tracker(space.tracking, sweep=context.sweep, tensorboard_root=context.path(TENSORBOARD_DIR),
                      sweep_uri=context.sweep_uri, space_file_hash=space_hash(space.path))
    try:
        return backfill(context, tracker, trial_ids)
    finally:
        tracker.close()


def _interrupted(space: Space, context: SweepContext, grid: Any,
                 points: List[Dict[str, Any]]) -> bool:
    """Whether trials of a Tuner were left unfinished (one of its grid ``points`` without any
    trials row, or fewer finished Optuna trials than asked for)."""
    if space.search.type == "optuna":
        return grid.num_terminated + grid.num_errors < space.search.num_samples
    written = results.list_table(context.sweep_uri, "trials", context.filesystem())
    return any(context.trial_config(point).trial_id not in written for point in points)


def _check_resumable(context: SweepContext) -> None:
    """``--resume`` needs an interrupted sweep: Tune's state of its (last) Tuner."""
    local = isinstance(context.filesystem(), pafs.LocalFileSystem)
    if not tune.Tuner.can_restore(context.path(TUNE_DIR),
                                  storage_filesystem=None if local else context.filesystem()):
        raise ConfigError(f"--resume: no interrupted sweep at {context.sweep_uri}/{TUNE_DIR}; "
                          "run without --resume to start it")


def _missing(space: Space, context: SweepContext) -> List[Dict[str, Any]]:
    """Grid points without a final ``trials`` row (completed, stopped, diverged) in the sweep."""
    statuses = results.trial_statuses(context.sweep_uri, context.filesystem())
    return [point for point, cfg in zip(space.points, space.trials)
            if statuses.get(cfg.trial_id) not in results.FINAL_STATUSES]


# ---------------------------------------------------------------------- the trainables
def trial_function(config: Dict[str, Any], context: SweepContext) -> None:
    """The Tune trainable of a one-process trial: ``config`` holds this trial's own keys."""
    cfg = context.trial_config(config)
    with context.checkpoints(cfg.trial_id).newest() as resume_from:
        _train(cfg, context, tune.report, resume_from, write=True)


def data_parallel_function(config: Dict[str, Any], context: SweepContext) -> None:
    """The Tune trainable of a data-parallel trial: a ``TorchTrainer`` whose workers run the
    trial together; its reports reach Tune through ``TuneReportCallback``."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
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
            failure_config=FailureConfig(max_failures=0),  # Tune retries the whole trial
            callbacks=[TuneReportCallback()]))
    trainer.fit()


def _train_worker(loop_config: Dict[str, Any]) -> None:
    """One Ray Train worker of a data-parallel trial (torch.distributed is set up). Every rank
    restores the newest complete checkpoint (none is written before all ranks have read: the
    first epoch's gradient all-reduce waits for every rank); rank 0 writes them."""
    import ray.train

    context: SweepContext = loop_config["context"]
    cfg = context.trial_config(loop_config["point"])
    rank = ray.train.get_context().get_world_rank()
    with context.checkpoints(cfg.trial_id).newest() as resume_from:
        _train(cfg, context, ray.train.report, resume_from, write=rank == 0)


def _train(cfg: TrialConfig, context: SweepContext,
           send: Callable[[Dict[str, Any]], None], resume_from: Optional[str], write: bool) -> None:
    """Train one trial, reporting each epoch through ``send`` and, where ``write``, storing its
    checkpoints (before the epoch's row: a written row always has a checkpoint at or after it
    when ``checkpoint.every`` is 1) and writing the tables."""
    filesystem = context.filesystem()
    store = context.checkpoints(cfg.trial_id)
    # A resumed trial reports only its new epochs: start from the rows written before.
    epochs = (results.read_trial_rows(context.sweep_uri, "epochs", cfg.trial_id, filesystem)
              if write and resume_from else [])

    def report(row: Dict[str, Any], checkpoint_dir: Optional[str]) -> None:
        nonlocal epochs
        if write:
            if checkpoint_dir:
                store.save(row["epoch"], checkpoint_dir)
            epochs = [r for r in epochs if r["epoch"] < row["epoch"]] + [row]
            results.write_rows(context.sweep_uri, "epochs", cfg.trial_id, epochs, filesystem)
        # epochs_completed is ASHA's clock: Tune's training_iteration restarts at 1 when a trial
        # restarts, since Tune holds no checkpoint of it
        send(_metrics({**row, "epochs_completed": row["epoch"] + 1}, context))

    record = train_and_measure(cfg, report=report, resume_from=resume_from)
    if write:
        results.write_trial(context.sweep_uri, record.tables(), sweep=context.sweep,
                            filesystem=filesystem)
    last = record.epochs[-1] if record.epochs else {}
    send(_metrics({**last, **record.summary}, context))


TUNE_KEYS = ("epochs_completed", "status")
"""What Tune gets of a row besides the search and scheduler metrics: ASHA's clock and the status
the progress lines print. Tune keeps a history and running statistics of every number a trial
reports, in the driver and in the experiment state it rewrites at each snapshot (about 60 KB a
trial with whole rows, ``benchmarks/bench_scale.py``); the rows themselves are in the tables.
A sweep with a ``logging`` section sends whole rows: its trackers run in the driver and log them
(``sweep.tracking``), at that cost in Tune's state."""


def _metrics(row: Mapping[str, Any], context: SweepContext) -> Dict[str, Any]:
    """What Tune gets of a row: every search and scheduler metric (None or not known yet, e.g.
    pgd_acc_8_255 before the trial ends -> NaN, since schedulers compare numbers) and
    ``TUNE_KEYS`` where the row has them; the whole row too where ``context.whole_rows``."""
    out: Dict[str, Any] = dict(row) if context.whole_rows else {}
    for key in context.metrics:
        value = row.get(key)
        out[key] = value if isinstance(value, (bool, int, float)) else float("nan")
    out.update((key, row[key]) for key in TUNE_KEYS if key in row)
    return out


# ---------------------------------------------------------------------- search and the tuner
class PointSearcher(Searcher):
    """Hands out a fixed list of trial configurations, one per trial (the expanded grid).

    Ray's grid search takes Cartesian products only; the grid of a search space is expanded,
    conditioned per regularizer and de-duplicated by ``spaces.expansion`` already.
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


def trial_bundles(resources: Resources) -> List[Dict[str, float]]:
    """What one trial holds at once, as Ray resource bundles: its own share, or for a
    data-parallel trial the launcher's share and one bundle per worker."""
    if resources.workers == 1:
        return [{"CPU": resources.cpu, "GPU": resources.gpu}]
    worker = {"CPU": resources.per_worker["cpu"], "GPU": resources.per_worker["gpu"]}
    return [{"CPU": LAUNCHER_CPU}] + [dict(worker) for _ in range(resources.workers)]


def _tuner(space: Space, context: SweepContext, points: List[Dict[str, Any]],
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
        epochs = space.checked[0].epochs
        # max_t below the last epoch and stop_last_trials off: ASHA stops a trial only before
        # its last epoch, so a surviving trial always finishes its measurements.
        asha = ASHAScheduler(time_attr="epochs_completed", metric=scheduler.metric,
                             mode=scheduler.mode, max_t=epochs - 1,
                             grace_period=scheduler.grace_period,
                             reduction_factor=scheduler.reduction_factor, stop_last_trials=False)
    callbacks = [TableRecorder(context=context),
                 Progress(total=num_samples, metric=search.metrics[0], mode=search.modes[0], quiet=quiet)]
    if space.tracking.enabled:
        callbacks.append(TrackingCallback(context=context, settings=space.tracking,
                                          tensorboard_root=context.path(TENSORBOARD_DIR),
                                          space_file_hash=space_hash(space.path)))
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=asha, num_samples=num_samples,
                                    max_concurrent_trials=search.concurrency, reuse_actors=True),
        run_config=tune.RunConfig(
            name=TUNE_DIR, storage_path=context.path(), storage_filesystem=filesystem,
            failure_config=tune.FailureConfig(max_failures=space.max_retries),
            callbacks=callbacks, verbose=0))
