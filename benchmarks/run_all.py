"""Run every benchmark, print their tables and write them as Parquet under benchmarks/out/.

``make bench`` runs this. Each benchmark module has ``main(argv) -> rows`` (a list of dicts, or a
dict of such lists for several tables); the rows are written as ``out/<benchmark>[_<table>].parquet``
with the machine and the commit in the file metadata. It ends with one summary table, each
measured ratio against its target (``out/summary.parquet``).
"""
from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("bench_penalties", "bench_trial", "bench_tune", "bench_tables", "bench_bf16_kernels")


def write(rows, path: Path, metadata) -> None:
    table = pa.Table.from_pylist(rows)
    pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata}), path)
    print(f"wrote {path}")


def summary_rows(results: dict) -> list:
    """One row per measured ratio with the issue's target: penalties (largest batched overhead of
    the Gram-based ones, cs, ocnn) per model, trial/plain per model, evaluation shares, Tune."""
    from bench_penalties import GRAM_BASED, TARGETS
    from bench_trial import LOOP_TARGET, SPEEDUP_MODELS, SPEEDUP_TARGET

    rows = []

    def add(measure, value, target=None, met=None):
        rows.append({"measure": measure, "value": value, "target": target or "reported",
                     "met": "yes" if met else ("no" if met is not None else "-")})

    penalties = results.get("bench_penalties", [])
    for model, precision in dict.fromkeys((r["model"], r["precision"]) for r in penalties):
        part = {r["regularizer"]: r["batched_overhead"] for r in penalties
                if (r["model"], r["precision"]) == (model, precision)}
        gram_target, cs_target = TARGETS["so"], TARGETS["cs"]
        if any(name in part for name in GRAM_BASED):
            gram = max(part[name] for name in GRAM_BASED if name in part)
            add(f"{model} {precision}: largest Gram-based penalty overhead", f"{100 * gram:.2f} %",
                f"<= {100 * gram_target:g} %", gram <= gram_target)
        if "cs" in part:
            add(f"{model} {precision}: cs penalty overhead", f"{100 * part['cs']:.2f} %",
                f"<= {100 * cs_target:g} %", part["cs"] <= cs_target)
        if "ocnn" in part:
            add(f"{model} {precision}: ocnn penalty overhead", f"{100 * part['ocnn']:.2f} %")
    trial = results.get("bench_trial", {})
    for r in trial.get("trial_loop", []):
        add(f"{r['model']} {r['variant']}: trial / plain loop images/s", f"{r['ratio']:.3f}",
            f">= {LOOP_TARGET}", r["ratio"] >= LOOP_TARGET)
        if r["variant"] != "fp32" and r["speedup"] is not None:
            target = r["model"] in SPEEDUP_MODELS and r["is_default"]  # auto resolves to it here
            add(f"{r['model']} {r['variant']}: trial / fp32 trial images/s after epoch 0",
                f"{r['speedup']:.2f}", f">= {SPEEDUP_TARGET}" if target else None,
                r["speedup"] >= SPEEDUP_TARGET if target else None)
    for r in trial.get("wall", []):
        native = r["auto_resolved"] == "bf16"
        add(f"{r['model']}: {r['epochs']}-epoch trial wall time, fp32 / auto "
            f"(-> {r['auto_resolved']})", f"{r['speedup']:.2f}",
            f">= {SPEEDUP_TARGET}" if native else None, r["speedup"] >= SPEEDUP_TARGET if native else None)
    for r in trial.get("evaluation", []):
        add(f"{r['model']} 30-epoch trial: {r['component']} share", f"{100 * r['share']:.1f} %")
    tune = {r["mode"]: r["ratio"] for r in results.get("bench_tune", [])}
    ratio = next((v for k, v in tune.items() if k.startswith("korth-bench run")), None)
    if ratio is not None:
        add("8 trials: Tune / in-process sequential", f"{ratio:.3f}", "<= 1.15", ratio <= 1.15)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--out", default=str(HERE / "out"))
    parser.add_argument("--short", action="store_true",
                        help="bench_trial and bench_penalties in their short mode (checks that they run)")
    parser.add_argument("--args", default="", metavar="'ARGS'",
                        help="arguments for every benchmark in --only (e.g. '--device cuda --rounds 1')")
    parser.add_argument("--summary", default="summary.parquet", help="file name of the summary table")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from korth_bench.trial.provenance import provenance
    import torch

    info = provenance(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    metadata = {f"korth_bench.{k}": str(v) for k, v in info.items()}
    os.makedirs(args.out, exist_ok=True)
    results = {}
    for name in args.only:
        print(f"\n## {name}\n", flush=True)
        extra = (["--short"] if args.short and name != "bench_tune" else []) + shlex.split(args.args)
        result = results[name] = importlib.import_module(name).main(extra)
        tables = result if isinstance(result, dict) else {"": result}
        for table, rows in tables.items():
            if rows:
                write(rows, Path(args.out) / f"{name}{'_' + table if table else ''}.parquet", metadata)
    summary = summary_rows(results)
    print(f"\n## summary ({info.get('device', 'unknown device')})\n")
    print("| measure | value | target | met |\n| --- | ---: | --- | --- |")
    for r in summary:
        print(f"| {r['measure']} | {r['value']} | {r['target']} | {r['met']} |")
    write(summary, Path(args.out) / args.summary, metadata)


if __name__ == "__main__":
    main()
