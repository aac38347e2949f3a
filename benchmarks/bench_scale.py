"""Sweeps of many tiny trials through the real ``korth-bench run``: what grows with the trial count.

For each size N (``--trials 100 1000 3000``) a grid of N tiny trials (synthetic 8x8 images, 64
training images, ResNet-8, one epoch, robustness off, one thread, ``resources.cpu: 1``) runs as
``korth-bench run SPACE --storage DIR --quiet`` in its own process with its own local Ray, and
this script measures:

- wall time per trial: the command's wall time / N (Ray's start-up included, amortized over N);
- overhead per trial: (wall time - the trials' summed ``wall_time_s`` / concurrency) / N, the
  time the sweep adds to the trials' own work;
- the driver's peak RSS (``VmHWM`` of the ``korth-bench`` process, read from /proc while it runs;
  Ray's raylet, GCS and workers are other processes);
- the size of Tune's state on storage (``<sweep>/tune``: the experiment state file rewritten with
  every trial, the searcher's state) and Tune's snapshots: how many, their total and largest time
  (``TuneController.save_to_dir``, the part that blocks the driver's loop, timed in the driver);
- ``korth-bench status`` and ``korth-bench report`` on the finished sweep's tables.

A grid runs as consecutive Tuners of at most ``--wave-size`` trials (``search.wave_size``), so the
driver's memory and the snapshots are those of one wave; ``--wave-size`` larger than the sweep
measures one Tuner holding every trial.

``korth-bench report`` on 10,000 trials is measured on a simulated table set by
``bench_tables.py`` (the real trials here are too small to be worth a report). Targets, printed
and never asserted: at 10,000 trials the driver needs <= 2 GiB and the overhead per trial is within
1.3x of 100 trials'. Start it inside a loopback-only network namespace (``make bench`` does).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import pyarrow.fs as pafs
import yaml

from korth_bench import results
from korth_bench.spaces.sections import WAVE_SIZE

TRIAL = {"dataset": "synthetic", "image_size": 8, "train_size": 64, "val_size": 32, "test_size": 32,
         "model": "resnet", "depth": 8, "epochs": 1, "batch_size": 64, "device": "cpu",
         "threads": 1, "robustness": False, "probe_size": 4}


def space_yaml(name: str, trials: int, concurrency: int, wave_size: int) -> Dict[str, Any]:
    return {"name": name, "fixed": TRIAL, "grid": {"seed": list(range(trials))},
            "regularizers": ["none"], "resources": {"cpu": 1},
            "search": {"type": "grid", "metric": "val_acc", "mode": "max", "concurrency": concurrency,
                       "wave_size": wave_size},
            "checkpoint": {"every": 1, "keep": 1}}


def driver(argv: List[str]) -> None:
    """Run ``korth-bench`` (``argv[1:]``) in this process with Tune's snapshots timed; their
    durations go to the JSON file ``argv[0]``."""
    from ray.tune.execution.tune_controller import TuneController

    from korth_bench.cli import main as korth_bench

    durations: List[float] = []
    save_to_dir = TuneController.save_to_dir

    def timed_save(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return save_to_dir(self, *args, **kwargs)
        finally:
            durations.append(time.perf_counter() - start)

    TuneController.save_to_dir = timed_save
    try:
        code = korth_bench(argv[1:])
    finally:
        Path(argv[0]).write_text(json.dumps(durations))
    sys.exit(code)


def peak_rss_while_running(process: subprocess.Popen) -> int:
    """The process's peak resident set (bytes), polled from /proc until it exits."""
    peak = 0
    while process.poll() is None:
        try:
            with open(f"/proc/{process.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) * 1024)
        except OSError:
            pass
        time.sleep(0.5)
    return peak


def timed_command(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "korth-bench"), *args], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def directory_bytes(path: str) -> int:
    infos = pafs.LocalFileSystem().get_file_info(pafs.FileSelector(path, recursive=True))
    return sum(i.size for i in infos if i.type == pafs.FileType.File)


def measure(trials: int, concurrency: int, wave_size: int, root: str) -> Dict[str, Any]:
    name = f"scale{trials}"
    space = Path(root) / f"{name}.yaml"
    space.write_text(yaml.safe_dump(space_yaml(name, trials, concurrency, wave_size)))
    storage = Path(root) / "results"
    snapshots = Path(root) / f"{name}-snapshots.json"
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, __file__, "--driver", str(snapshots), "run",
                                str(space), "--storage", str(storage), "--quiet"],
                               stdout=subprocess.DEVNULL, stderr=open(Path(root) / f"{name}.log", "w"))
    peak = peak_rss_while_running(process)
    wall = time.perf_counter() - start
    assert process.returncode == 0, (Path(root) / f"{name}.log").read_text()[-3000:]
    sweep = str(storage / name)
    trials_table = results.read_table(sweep, "trials").to_pylist()
    assert len(trials_table) == trials and {r["status"] for r in trials_table} == {"completed"}
    inside = sum(r["wall_time_s"] for r in trials_table)
    durations = json.loads(snapshots.read_text())
    state_files = [i for i in pafs.LocalFileSystem().get_file_info(
        pafs.FileSelector(f"{sweep}/tune", recursive=True)) if i.base_name.startswith("experiment_state")]
    return {"trials": trials, "wave_size": wave_size, "wall_s": wall, "wall_per_trial_s": wall / trials,
            "overhead_per_trial_s": (wall - inside / concurrency) / trials,
            "trial_mean_s": inside / trials, "driver_peak_rss_mib": peak / 2**20,
            "tune_state_mib": directory_bytes(f"{sweep}/tune") / 2**20,
            "experiment_state_mib": max((i.size for i in state_files), default=0) / 2**20,
            "snapshots": len(durations), "snapshot_total_s": sum(durations),
            "snapshot_max_s": max(durations, default=0.0),
            "status_s": timed_command("status", sweep),
            "report_s": timed_command("report", sweep, "--out", f"{root}/{name}-report")}


def main(argv=None) -> List[Dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--wave-size", type=int, default=WAVE_SIZE,
                        help="search.wave_size: trials per Tuner (default %(default)s)")
    args = parser.parse_args(argv)
    rows = []
    print("\n| trials | wave size | wall s | wall/trial s | overhead/trial s | trial mean s | driver peak RSS MiB "
          "| Tune state MiB | experiment_state MiB | snapshots | snapshot total s | snapshot max s "
          "| status s | report s |\n|" + " ---: |" * 14, flush=True)
    for trials in args.trials:
        with tempfile.TemporaryDirectory(prefix="korth-bench-scale-") as root:
            row = measure(trials, args.concurrency, args.wave_size, root)
        rows.append(row)
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values())
              + " |", flush=True)
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["--driver"]:
        driver(sys.argv[2:])
    else:
        main()
