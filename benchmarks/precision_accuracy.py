"""Does ``precision: auto`` cost accuracy? ResNet-20 on real CIFAR-10, fp32 vs auto, paired by seed.

For each seed, two trials that differ only in ``precision`` (``fp32`` and ``auto``, which resolves
to bf16 where the device computes it natively): the same images, initialization and data order.
The measure is the paired difference d_s = acc_auto(s) - acc_fp32(s) of the final test accuracy,
in points; its mean with the Student-t interval (n - 1 degrees of freedom, 90 % by default) over
the seeds. The decision rule of issue 14: ``auto`` stays the default only if the whole interval
lies within +-1.0 point.

Each finished trial is written at once to ``OUT/{trials,epochs,...}/<trial_id>.parquet``; a rerun
skips the trials already there, so an interrupted run resumes. ``--jobs`` trials run at a time,
each with ``--threads`` torch threads (run the script under ``nice`` on a shared machine).

Run: ``python benchmarks/precision_accuracy.py --out benchmarks/out/precision_accuracy``
(``--summarize`` prints the table of what is there without training).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List

import numpy as np

from korth_bench import results
from korth_bench.analysis import stats
from korth_bench.config import TrialConfig

CIFAR = Path(os.environ.get("KORTH_CIFAR10_PARQUET", Path(__file__).resolve().parents[2]
                            / "shared/data/cifar10-jpeg.parquet"))
PRECISIONS = ("fp32", "auto")
MARGIN_POINTS = 1.0


def configs(args) -> List[TrialConfig]:
    base = {"model": "resnet", "depth": 20, "dataset": "packed", "data_path": str(args.data),
            "train_size": args.train_size, "test_size": args.test_size, "epochs": args.epochs,
            "device": "cpu", "threads": args.threads, "robustness": False,
            "checkpoint_every": 0}
    return [TrialConfig.from_dict({**base, "seed": seed, "precision": precision})
            for seed in range(args.seeds) for precision in PRECISIONS]


def run_one(cfg: TrialConfig, out: str) -> str:
    from korth_bench.trial import train_and_measure

    record = train_and_measure(cfg)
    results.write_trial(out, record.tables(), sweep="precision_accuracy")
    print(f"  seed {cfg.seed} {cfg.precision} (-> {record.summary['precision_resolved']}): "
          f"test_acc {record.summary['test_acc']:.4f}, train {record.summary['train_time_s']:.0f} s",
          flush=True)
    return cfg.trial_id


def summarize(out: str, confidence: float) -> Dict[str, float]:
    """Pair the finished trials by seed and print the paired differences and their interval."""
    rows = results.read_table(out, "trials").to_pylist()
    by = {(r["seed"], r["precision"]): r for r in rows if r["status"] == "completed"}
    seeds = sorted(s for s in {s for s, _ in by} if all((s, p) in by for p in PRECISIONS))
    print("| seed | fp32 test_acc | auto test_acc (resolved) | auto - fp32 (points) |\n"
          "| ---: | ---: | ---: | ---: |")
    differences = []
    for seed in seeds:
        fp32, auto = by[(seed, "fp32")], by[(seed, "auto")]
        differences.append(100 * (auto["test_acc"] - fp32["test_acc"]))
        print(f"| {seed} | {fp32['test_acc']:.4f} | {auto['test_acc']:.4f} "
              f"({auto['precision_resolved']}) | {differences[-1]:+.2f} |")
    interval = stats.t_interval(np.array(differences), confidence)
    keep = (abs(interval["low"]) <= MARGIN_POINTS and abs(interval["high"]) <= MARGIN_POINTS)
    print(f"\nmean paired difference {interval['mean']:+.2f} points (sd {interval['sd']:.2f}, "
          f"n {interval['n']}), {100 * confidence:.0f} % t interval [{interval['low']:+.2f}, "
          f"{interval['high']:+.2f}]; within +-{MARGIN_POINTS} point: "
          f"{'yes, auto stays the default' if keep else 'NO'}")
    return {**interval, "within_margin": keep}


def main(argv=None) -> Dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "precision_accuracy"))
    parser.add_argument("--data", default=str(CIFAR), help="the packed CIFAR-10 Parquet file")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-size", type=int, default=10000)
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per trial")
    parser.add_argument("--jobs", type=int, default=2, help="trials at a time")
    parser.add_argument("--confidence", type=float, default=0.90)
    parser.add_argument("--summarize", action="store_true", help="only print the summary")
    args = parser.parse_args(argv)
    if not args.summarize:
        done = set(results.trial_statuses(args.out)) if os.path.isdir(args.out) else set()
        todo = [cfg for cfg in configs(args) if cfg.trial_id not in done]
        print(f"{len(todo)} trials to run ({len(done)} done) in {args.out}", flush=True)
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for future in [pool.submit(run_one, cfg, args.out) for cfg in todo]:
                future.result()
    return summarize(args.out, args.confidence)


if __name__ == "__main__":
    main()
