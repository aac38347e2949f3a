"""What watching a sweep costs: the smoke space with and without ``logging`` (TensorBoard and
MLflow on a local SQLite store), in interleaved runs (off, on, off, on, ...), each its own
``korth-bench run`` with its own local Ray, so load that drifts over time hits both alike.

Per run: the sweep's wall time, its wall time per epoch (16 trials x 3 epochs, trials two at a
time), and the trials' mean ``epoch_time_s`` (training only; the trackers run in the driver, so
this moves only through CPU contention). Then the trackers' own cost in the driver, timed
directly: ``Tracker.log_epoch`` on the sweep's real epoch rows (the milliseconds a Tune result
waits for MLflow and TensorBoard). Start it inside a loopback-only network namespace. Prints
tables; ``main()`` returns the rows.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import yaml

from korth_bench import results
from korth_bench.spaces.space import find, load
from korth_bench.tracking.mlflow_runs import use_uri
from korth_bench.tracking.settings import TrackingSettings
from korth_bench.tracking.tracker import Tracker

LOGGING = {"tensorboard": True, "mlflow": {"experiment": "bench"}}


def sweep_once(work: Path, logging: bool, index: int) -> Dict:
    raw = yaml.safe_load(Path(find("smoke")).read_text())
    raw["name"] = f"smoke_{'on' if logging else 'off'}_{index}"
    if logging:
        raw["logging"] = LOGGING
    path = work / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "korth-bench"), "run", str(path), "--storage",
                    str(work / "results"), "--quiet"], env=env, cwd=work, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    epochs = results.read_table(str(work / "results" / raw["name"]), "epochs").to_pylist()
    return {"run": index, "logging": "on" if logging else "off", "wall_s": wall,
            "epochs": len(epochs), "wall_per_epoch_s": wall / len(epochs),
            "epoch_time_s_mean": statistics.fmean(r["epoch_time_s"] for r in epochs)}


def tracker_cost(work: Path, sweep_dir: Path) -> Dict:
    """The driver's time per epoch row through a fresh tracker (MLflow SQLite + TensorBoard)."""
    space = load(find("smoke"))
    use_uri(f"sqlite:///{work / 'mlflow-direct.db'}")
    tracker = Tracker(TrackingSettings(tensorboard=True, mlflow=True, experiment="direct"),
                      sweep="direct", tensorboard_root=str(work / "tb-direct"), sweep_uri=str(work))
    rows = {}
    for row in results.read_table(str(sweep_dir), "epochs").to_pylist():
        rows.setdefault(row["trial_id"], []).append(row)
    times = []
    for cfg in space.trials:
        for row in sorted(rows[cfg.trial_id], key=lambda r: r["epoch"]):
            start = time.perf_counter()
            tracker.log_epoch(cfg, row)
            times.append(time.perf_counter() - start)
        tracker.finish(cfg, "completed", {})
    tracker.close()
    first = times[0]  # opens the store, the experiment and the parent run
    rest = sorted(times[1:])
    return {"epoch_rows": len(times), "first_call_s": first,
            "median_ms": 1000 * rest[len(rest) // 2], "p90_ms": 1000 * rest[int(0.9 * len(rest))],
            "mean_ms": 1000 * statistics.fmean(rest)}


def main(argv: List[str] = ()) -> Dict[str, List[Dict]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2, help="off/on pairs of smoke sweeps")
    parser.add_argument("--work", help="keep the sweeps and the MLflow store (mlflow.db) here")
    args = parser.parse_args(list(argv))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        runs = [sweep_once(work, logging, i) for i in range(args.pairs) for logging in (False, True)]
        direct = tracker_cost(work, work / "results" / "smoke_off_0")
    print(f"{'run':>3} {'logging':>7} {'wall s':>8} {'epochs':>6} {'wall/epoch s':>12} {'epoch_time_s':>12}")
    for row in runs:
        print(f"{row['run']:>3} {row['logging']:>7} {row['wall_s']:8.1f} {row['epochs']:6d} "
              f"{row['wall_per_epoch_s']:12.3f} {row['epoch_time_s_mean']:12.3f}")
    for key in ("wall_per_epoch_s", "epoch_time_s_mean"):
        on = statistics.fmean(r[key] for r in runs if r["logging"] == "on")
        off = statistics.fmean(r[key] for r in runs if r["logging"] == "off")
        print(f"mean {key}: off {off:.3f}, on {on:.3f}, on - off {on - off:+.3f} s ({100 * (on / off - 1):+.1f} %)")
    print(f"tracker in the driver, per epoch row ({direct['epoch_rows']} rows): median "
          f"{direct['median_ms']:.1f} ms, p90 {direct['p90_ms']:.1f} ms, mean {direct['mean_ms']:.1f} ms; "
          f"first call (store, experiment, parent run) {direct['first_call_s']:.2f} s")
    return {"sweeps": runs, "tracker": [direct]}


if __name__ == "__main__":
    main(sys.argv[1:])
