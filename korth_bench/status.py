"""``korth-bench status``: where a sweep stands, read from its tables alone (no Ray), so that it
can be watched from any machine that reaches its storage.

Counts by status come from the ``trials`` rows; a trial with an ``epochs`` file but no ``trials``
row is in progress (or was interrupted: the age of its last epoch tells). Given the search space,
the trials not started are the planned ones with neither, and the time left is

    time_left = (epochs not yet run) * (seconds per epoch) / (trials at once)

where seconds per epoch is the finished trials' total ``wall_time_s`` over their epochs (else the
in-progress trials' ``elapsed_s`` over theirs) and trials at once is the number in progress (else
the space's ``search.concurrency``, else 1). An epoch's seconds differ between cells, and not in
proportion to their counted work (a small cell's time is mostly per-image overhead), so the
grid's cells (model, depth, width) that have unfinished trials but no finished one are named
beside the estimate: it prices their epochs as the finished cells'.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from korth_bench import results

SHOWN = 10          # in-progress trials listed
SHOWN_ERRORS = 3    # newest errors listed


@dataclass
class SweepStatus:
    sweep_uri: str
    counts: Dict[str, int]                      # completed, diverged, stopped, error, in progress[, not started]
    in_progress: List[Dict[str, Any]]           # trial_id, epoch (done), epochs, test_acc, elapsed_s, age_s
    errors: List[Dict[str, Any]]                # newest first: trial_id, finished_at, error
    planned: Optional[int] = None               # with the space: its number of trials
    seconds_per_epoch: Optional[float] = None
    epochs_left: Optional[int] = None
    at_once: int = 1
    unmeasured_cells: List[tuple] = field(default_factory=list)  # (model, depth, width) of grid
                                                                  # cells left, none finished

    @property
    def time_left_s(self) -> Optional[float]:
        if self.epochs_left is None or self.seconds_per_epoch is None:
            return None
        return self.epochs_left * self.seconds_per_epoch / max(1, self.at_once)


def sweep_status(sweep_uri: str, endpoint: Optional[str] = None, space: Any = None,
                 now: Optional[float] = None) -> SweepStatus:
    """The status of the sweep directory ``sweep_uri`` (a path or URI); ``space`` (a loaded
    ``spaces.Space``) adds the planned total, the trials not started and the time left."""
    now = time.time() if now is None else now
    rows = results.read_table(sweep_uri, "trials", endpoint=endpoint).to_pylist()
    epoch_files = results.list_table(sweep_uri, "epochs", endpoint=endpoint)
    finished = {row["trial_id"] for row in rows}
    running = sorted(set(epoch_files) - finished)
    epochs = results.read_table(sweep_uri, "epochs", endpoint=endpoint, trial_ids=running).to_pylist()
    last: Dict[str, Dict[str, Any]] = {}
    for row in epochs:
        if row["trial_id"] not in last or row["epoch"] > last[row["trial_id"]]["epoch"]:
            last[row["trial_id"]] = row
    planned_epochs = ({cfg.trial_id: cfg.epochs for cfg in space.trials} if space is not None else {})
    default_epochs = _space_epochs(space)
    in_progress = []
    for trial_id in running:
        row = last.get(trial_id, {})
        in_progress.append({
            "trial_id": trial_id, "epoch": row.get("epoch", -1) + 1,
            "epochs": planned_epochs.get(trial_id, default_epochs), "test_acc": row.get("test_acc"),
            "elapsed_s": row.get("elapsed_s"),
            "age_s": max(0.0, now - epoch_files[trial_id].mtime_ns / 1e9) if epoch_files[trial_id].mtime_ns else None})
    in_progress.sort(key=lambda r: (r["age_s"] is None, r["age_s"] or 0.0))
    counts = {status: sum(row["status"] == status for row in rows) for status in results.STATUSES}
    counts["in progress"] = len(running)
    errors = sorted((r for r in rows if r["status"] == "error"), key=lambda r: r.get("finished_at") or "",
                    reverse=True)[:SHOWN_ERRORS]
    status = SweepStatus(sweep_uri, counts, in_progress,
                         [{k: r.get(k) for k in ("trial_id", "finished_at", "error")} for r in errors])
    status.seconds_per_epoch = _seconds_per_epoch(rows, in_progress)
    if space is not None:
        seen = finished | set(epoch_files)
        if space.search.type == "grid":
            not_started = [cfg for cfg in space.trials if cfg.trial_id not in seen]
            left = sum(cfg.epochs for cfg in not_started)
            counts["not started"] = len(not_started)
            timed = {row["trial_id"] for row in rows if row.get("wall_time_s")}
            status.unmeasured_cells = sorted(
                {_cell(cfg) for cfg in space.trials if cfg.trial_id not in finished}
                - {_cell(cfg) for cfg in space.trials if cfg.trial_id in timed})
        else:
            counts["not started"] = max(0, space.search.num_samples - len(seen))
            left = counts["not started"] * (default_epochs or 0)
        left += sum(max(0, (r["epochs"] or 0) - r["epoch"]) for r in in_progress)
        status.planned = space.num_trials
        status.epochs_left = left
        status.at_once = len(running) or space.search.concurrency or 1
    return status


def _cell(cfg: Any) -> tuple:
    return cfg.model, cfg.depth, cfg.width


def _space_epochs(space: Any) -> Optional[int]:
    if space is None:
        return None
    probe = space.trials or space.optuna.check(space.base)
    return probe[0].epochs if probe else None


def _seconds_per_epoch(rows: List[Dict[str, Any]], in_progress: List[Dict[str, Any]]) -> Optional[float]:
    done = [(r["wall_time_s"], r["epochs_completed"]) for r in rows
            if r.get("wall_time_s") and r.get("epochs_completed")]
    if not done:
        done = [(r["elapsed_s"], r["epoch"]) for r in in_progress if r["elapsed_s"] and r["epoch"] > 0]
    if not done:
        return None
    return sum(s for s, _ in done) / sum(n for _, n in done)


def status_text(status: SweepStatus) -> str:
    """The lines ``korth-bench status`` prints."""
    counts = ", ".join(f"{n} {name}" for name, n in status.counts.items() if n)
    planned = f"{status.planned} planned: " if status.planned is not None else ""
    lines = [f"sweep {status.sweep_uri}", f"  trials: {planned}{counts or 'none yet'}"]
    if status.in_progress:
        lines.append("  in progress (epochs written, no trials row yet; a stale last epoch means "
                     "an interrupted trial):")
        for row in status.in_progress[:SHOWN]:
            acc = f"{row['test_acc']:.4f}" if row["test_acc"] is not None else "-"
            age = f"{_duration(row['age_s'])} ago" if row["age_s"] is not None else "-"
            lines.append(f"    {row['trial_id']}  epoch {row['epoch']}/{row['epochs'] or '?'}  "
                         f"test_acc {acc}  last epoch {age}")
        if len(status.in_progress) > SHOWN:
            lines.append(f"    ... and {len(status.in_progress) - SHOWN} more")
    if status.errors:
        lines.append("  newest errors:")
        for row in status.errors:
            message = (row["error"] or "").strip().splitlines()
            lines.append(f"    {row['trial_id']}  {row['finished_at'] or '-'}  "
                         f"{message[-1] if message else '(no message)'}")
    if status.seconds_per_epoch is not None:
        lines.append(f"  seconds per epoch: {status.seconds_per_epoch:.1f}")
    if status.time_left_s is not None:
        lines.append(f"  time left: about {_duration(status.time_left_s)} ({status.epochs_left} "
                     f"epochs to run, {status.at_once} trial(s) at once)")
        if status.unmeasured_cells and status.seconds_per_epoch is not None:
            lines.append(f"    {len(status.unmeasured_cells)} cell(s) with trials left have no "
                         f"finished trial yet ({', '.join(f'{m}-{d}x{w}' for m, d, w in status.unmeasured_cells)}): "
                         "their epochs are priced at the finished cells' seconds, so the estimate "
                         "is low where they are larger")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
