"""Tune callbacks of a sweep (``sweep.py`` hands them to the tuner) and its closing summary.

* ``TableRecorder`` writes the ``trials`` row of a trial that ASHA stopped (status ``stopped``) or
  that failed for good (status ``error``, with the message), since such a trial never returns to
  write it; a trial that failed on a storage fault (``korth_bench.faults``) gets no row: it stops
  the sweep (``StorageStop``), whose ``--resume`` runs the trial again;
* ``Progress`` keeps one live status line on a terminal and prints a line per finished trial
  (only a summary with ``quiet``);
* ``summary_text`` is the paragraph printed when the sweep ends: trials per status and the best one.
"""
from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple

import ray
from ray import tune

from korth_bench import results
from korth_bench.faults import storage_fault
from korth_bench.spaces.space import Space
from korth_bench.sweep.context import SweepContext
from korth_bench.trial.summary import trial_row



class StorageStop(Exception):
    """Ends a sweep's Tuner from the driver: a trial failed on a storage fault (its error is the
    ``__cause__``), not on its own; ``sweep.run`` turns it into one line and exit code 75."""


class TableRecorder(tune.Callback):
    """Writes the ``trials`` row of a trial that never returns to write it itself: stopped by
    the scheduler (``stopped``) or failed after its last retry (``error`` with the message).
    A trial whose failure is a storage fault stops the sweep instead (``StorageStop``), before
    Tune retries it or records it as an error: the storage is what failed, for every trial."""

    def __init__(self, *, context: SweepContext):
        self.context = context
        self._stopped: set = set()

    def on_trial_result(self, iteration: int, trials: List, trial: Any, result: Dict, **info):
        if result.get("done"):  # Tune marks the result on which the scheduler stopped a trial
            self._stopped.add(trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: List, trial: Any, **info):
        if trial.trial_id in self._stopped:
            self._write(trial, "stopped", None)

    def on_trial_recover(self, iteration: int, trials: List, trial: Any, **info):
        _stop_on_storage_fault(trial)

    def on_trial_error(self, iteration: int, trials: List, trial: Any, **info):
        _stop_on_storage_fault(trial)
        self._write(trial, "error", error_message(trial))

    def _write(self, tune_trial: Any, status: str, error: Optional[str]) -> None:
        """The trial's ``trials`` row from its ``epochs`` file (written after every epoch), with
        nulls for what it never measured."""
        cfg = self.context.trial_config(tune_trial.config)
        epoch_rows = results.read_trial_rows(self.context.sweep_uri, "epochs", cfg.trial_id,
                                             self.context.filesystem())
        row = trial_row(cfg, status, error, epoch_rows, run={"ray_version": ray.__version__})
        results.write_trial(self.context.sweep_uri, {"trials": [row], "layers": [], "robustness": []},
                            sweep=self.context.sweep, filesystem=self.context.filesystem())


def _stop_on_storage_fault(tune_trial: Any) -> None:
    error = trial_error(tune_trial)
    if storage_fault(error):
        raise StorageStop(f"trial {tune_trial.trial_id} failed on a storage fault") from error


def trial_error(tune_trial: Any) -> Optional[BaseException]:
    """The exception that ended a trial (Tune keeps it pickled beside the driver), or None."""
    path = tune_trial.pickled_error_file
    if not path or not os.path.exists(path):
        return None
    with open(path, "rb") as saved:
        return ray.cloudpickle.load(saved)


def error_message(tune_trial: Any) -> str:
    """``Type: message`` of the exception that ended a trial (Tune keeps it beside the driver)."""
    error = trial_error(tune_trial)
    if error is not None:
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


def summary_text(space: Space, context: SweepContext) -> str:
    """One paragraph on the sweep's tables: trials per status and the best one. Only the
    columns it prints are read: whole rows of 10,000 trials as Python objects were the driver's
    largest use of memory (about 0.2 MiB a trial, ``benchmarks/bench_scale.py``)."""
    metric, mode = space.search.metrics[0], space.search.modes[0]
    trials = results.read_table(context.sweep_uri, "trials", context.filesystem(), columns=list(dict.fromkeys(
        ["trial_id", "status", "error", metric, "regularizer", "model", "depth", "width", "seed"]))).to_pylist()
    counts: Dict[str, int] = {}
    for row in trials:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
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
