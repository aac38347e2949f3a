"""benchmarks/device_check.sh: its CPU dry run (every step at tiny sizes) and its budget guard."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "device_check.sh"


def run(*args, cwd=ROOT):
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


def steps(directory: Path):
    with open(directory / "steps.tsv") as handle:
        return {row["step"]: row["status"] for row in csv.DictReader(handle, delimiter="\t")}


def test_dry_run_runs_every_step_and_writes_every_table(tmp_path):
    done = run("--dry", "--budget-s", 900, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert steps(tmp_path) == {name: "ok" for name in ("selfcheck", "trial", "penalties", "train")}
    assert "0 failing check(s)" in (tmp_path / "selfcheck.log").read_text()
    loop = pq.read_table(tmp_path / "bench_trial_trial_loop.parquet").to_pylist()
    assert {r["variant"] for r in loop} == {"fp32", "bf16"} and all(r["trial_images_per_s"] > 0 for r in loop)
    penalties = pq.read_table(tmp_path / "bench_penalties.parquet").to_pylist()
    assert {r["precision"] for r in penalties} == {"fp32", "bf16"}
    for summary in ("summary_trial.parquet", "summary_penalties.parquet"):
        assert pq.read_table(tmp_path / summary).num_rows > 0
    trials = list((tmp_path / "train").glob("*/trials/*.parquet"))
    assert len(trials) == 1
    row = pq.read_table(trials[0]).to_pylist()[0]
    assert row["status"] == "completed" and row["precision"] == "auto" and row["precision_resolved"]
    assert "device: cpu" in (tmp_path / "device.txt").read_text()


def test_budget_guard_skips_what_is_left_and_keeps_the_record(tmp_path):
    done = run("--dry", "--budget-s", 0, tmp_path)
    assert done.returncode == 0, done.stderr
    assert all(status.startswith("skipped (budget") for status in steps(tmp_path).values())
    assert len(steps(tmp_path)) == 4 and (tmp_path / "device.txt").exists()
    bad = run("--budget-s", "soon", tmp_path)
    assert bad.returncode == 2 and "--budget-s" in bad.stderr
