"""Ray Tune's orchestration overhead: the same 8 short trials through ``korth-bench run`` and run
sequentially in one process, at equal concurrency (one trial at a time, the same torch threads).

- ``in-process``: ``train_and_measure`` then ``results.write_trial`` for each trial, in a loop;
- ``tune``: ``korth_bench.sweep.run`` on a search space of the same 8 trials (``concurrency: 1``),
  its wall time minus a separately measured Ray start-up and shutdown (``ray.init``, one worker
  importing the trial code as the first trial's actor does, ``ray.shutdown``), which is reported
  on its own line. The trials' own wall times, summed, split the rest into time inside the trials
  (checkpoints, reports) and time between them (scheduling).
The target: tune / in-process <= 1.15. Start Ray benchmarks inside a loopback-only network
namespace (``make bench`` does). Prints a table; ``main()`` returns the rows.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import yaml

from korth_bench import results
from korth_bench.spaces.space import load
from korth_bench.trial.loop import train_and_measure

TRIAL = {"model": "resnet", "depth": 8, "dataset": "synthetic", "image_size": 32,
         "train_size": 2048, "val_size": 256, "test_size": 512, "epochs": 3, "batch_size": 64, "device": "cpu",
         "robustness": False, "probe_size": 8}


def space_yaml(name: str, threads: int) -> Dict:
    return {"name": name, "fixed": {**TRIAL, "threads": threads},
            "grid": {"seed": [0, 1, 2, 3], "coefficient": [1e-3]},
            "regularizers": {"none": {}, "so": {}},
            "resources": {"cpu": threads}, "search": {"type": "grid", "metric": "val_acc",
                                                      "mode": "max", "concurrency": 1},
            "checkpoint": {"every": 1, "keep": 1}}


def ray_startup_s(num_cpus: int) -> float:
    """Ray's fixed cost: ``ray.init``, one worker process importing the trial code (torch
    included, as the first trial's actor does) and ``ray.shutdown``."""
    import ray

    def import_trial() -> None:  # nested: shipped by value, whatever imported this module
        import korth_bench.trial  # noqa: F401

    start = time.perf_counter()
    ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level="ERROR")
    ray.get(ray.remote(import_trial).remote())
    ray.shutdown()
    return time.perf_counter() - start


def main(argv=None) -> List[Dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    from korth_bench import sweep

    with tempfile.TemporaryDirectory(prefix="korth-bench-tune-") as tmp:
        space_path = Path(tmp) / "bench_tune.yaml"
        space_path.write_text(yaml.safe_dump(space_yaml("bench_tune", args.threads)))
        space = load(str(space_path))
        assert len(space.trials) == 8, len(space.trials)

        start = time.perf_counter()
        for cfg in space.trials:
            record = train_and_measure(cfg)
            results.write_trial(f"{tmp}/sequential", record.tables(), sweep="sequential")
        sequential = time.perf_counter() - start

        startup = ray_startup_s(args.threads)
        start = time.perf_counter()
        code = sweep.run(str(space_path), storage=f"{tmp}/tune", quiet=True)
        tune_total = time.perf_counter() - start
        assert code == 0, f"the sweep failed with exit code {code}"
        inside = {mode: sum(results.read_table(f"{tmp}/{path}", "trials").column("wall_time_s")
                            .to_pylist())
                  for mode, path in (("sequential", "sequential"), ("tune", "tune/bench_tune"))}

    tune_net = tune_total - startup
    rows = [{"mode": "in-process sequential", "seconds": sequential, "ratio": 1.0},
            {"mode": "korth-bench run (Tune), Ray's fixed start-up excluded", "seconds": tune_net,
             "ratio": tune_net / sequential},
            {"mode": "sum of trial wall times, in-process", "seconds": inside["sequential"],
             "ratio": inside["sequential"] / sequential},
            {"mode": "sum of trial wall times, inside Tune", "seconds": inside["tune"],
             "ratio": inside["tune"] / sequential},
            {"mode": "Ray start-up (init, first worker imports torch) + shutdown, separately", "seconds": startup, "ratio": None}]
    print("\n8 trials (ResNet-8, synthetic 32x32, 1,792 training images, 3 epochs), one at a time, "
          f"{args.threads} torch threads")
    print("| mode | seconds | vs in-process |\n| --- | ---: | ---: |")
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3f}"
        print(f"| {r['mode']} | {r['seconds']:.1f} | {ratio} |")
    return rows


if __name__ == "__main__":
    main()
