"""``korth-bench selfcheck``: run the trial's device path end to end, without Ray, and print a table.

On a GPU machine this exercises what CI (CPU only) cannot: bf16 autocast, channels_last,
``torch.compile``, on-device augmentation, every regularizer's penalty on the device and a short
robustness pass. Each check is a short real trial; a failure is printed, not raised, so one run
shows everything.
"""
from __future__ import annotations

import time
import traceback
from typing import Any, Dict, List, Optional

import torch

from korth_bench import regularizers
from korth_bench.config import TrialConfig
from korth_bench.trial.loop import resolve_device, train_and_measure

SHORT = {"model": "resnet", "depth": 8, "epochs": 2, "batch_size": 128, "train_size": 2048,
         "test_size": 512, "robustness_test_size": 256, "robustness_severities": [3],
         "robustness_pgd_steps": 3, "probe_size": 32}


def checks(device: str) -> List[Dict[str, Any]]:
    """The configurations to run: precision/compile variants, then every regularizer."""
    variants = [{"precision": "fp32"}, {"precision": "bf16"},
                {"precision": "bf16", "compile": True}]
    if device == "cpu":  # keep the CPU run short; the checks below run the default, auto
        variants = variants[:1]
    runs = [{"check": f"{v['precision']}{' + compile' if v.get('compile') else ''}", **v}
            for v in variants]
    for name in regularizers.names():
        if name == "none":
            continue
        params = {"relaxation": 0.3} if name == "dn_relaxed" else {}
        runs.append({"check": f"penalty {name}", "regularizer": name, "coefficient": 1e-3,
                     "precision": "auto", "robustness": False, "epochs": 1, **params})
    runs.append({"check": "init cs_iterative", "init": "cs_iterative", "init_steps": 5,
                 "regularizer": "cs", "coefficient": 1e-3, "robustness": False, "epochs": 1,
                 "precision": "auto"})
    return runs


def main(device: str = "auto", data_path: Optional[str] = None,
         overrides: Optional[Dict[str, Any]] = None) -> int:
    """Run every check; ``overrides`` (``--set``) replace keys of every check's configuration
    (smaller sizes for a dry run, say). Returns the exit code: 1 if any check failed."""
    resolved = resolve_device(device)
    if overrides:  # a bad key or value fails once, here, as a ConfigError
        TrialConfig.from_dict({**SHORT, **overrides})
    data = {"dataset": "packed", "data_path": data_path} if data_path else {"dataset": "synthetic"}
    name = torch.cuda.get_device_name(resolved) if resolved.type == "cuda" else "cpu"
    print(f"korth-bench selfcheck on {name} (torch {torch.__version__}, data {data['dataset']})")
    header = (f"{'check':<22} {'status':<10} {'precision':<9} {'test_acc':>8} {'img/s':>9} "
              f"{'pgd@2':>6} {'time_s':>7}")
    print(header)
    print("-" * len(header))
    failures = 0
    for run in checks(resolved.type):
        label = run.pop("check")
        start = time.perf_counter()
        try:
            record = train_and_measure({**SHORT, **data, "device": resolved.type, **run,
                                        **(overrides or {})})
            summary = record.summary
            images_per_s = max(r["images_per_s"] for r in record.epochs)
            pgd = summary.get("pgd_acc_2_255")
            print(f"{label:<22} {summary['status']:<10} {summary['precision_resolved']:<9} "
                  f"{summary['test_acc'] or 0:>8.4f} "
                  f"{images_per_s:>9.0f} {'-' if pgd is None else f'{pgd:.3f}':>6} "
                  f"{time.perf_counter() - start:>7.1f}", flush=True)
            failures += summary["status"] != "completed"
        except Exception as err:  # report every failing path in one run
            failures += 1
            print(f"{label:<22} {'ERROR':<10} {type(err).__name__}: {err}", flush=True)
            traceback.print_exc()
    print(f"{failures} failing check(s)")
    return 1 if failures else 0
