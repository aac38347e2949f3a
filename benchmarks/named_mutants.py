"""The mutants a review of the tests found surviving (issue 42), each applied to a fresh copy of
the committed code, with the test that must now kill it.

For every mutant: `git archive HEAD` into a temporary directory, one textual edit of one
module, then the named tests run against that copy (``PYTHONPATH`` puts the copy's package ahead
of the installed one). A mutant is killed when the tests fail; the table says which. The
unmutated copy runs the same tests first, and they must pass there.

    .venv/bin/python benchmarks/named_mutants.py            # every mutant
    .venv/bin/python benchmarks/named_mutants.py chance      # those whose name contains 'chance'
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str           # the module, relative to the repository
    old: str            # text that must occur exactly once
    new: str
    tests: Sequence[str]


MUTANTS = (
    Mutant("Holm per metric, not over every collapse metric and arm",
           "korth_bench/analysis/collapse.py",
           '''        rows_of = primary_axis & (table["test_family"] == name).to_numpy()
        table.loc[rows_of, "p_holm"] = holm_adjust(table.loc[rows_of, "p_value"].to_numpy(float))''',
           '''        for one in table["metric"].unique():
            rows_of = (primary_axis & (table["test_family"] == name).to_numpy()
                       & (table["metric"] == one).to_numpy())
            table.loc[rows_of, "p_holm"] = holm_adjust(table.loc[rows_of, "p_value"].to_numpy(float))''',
           ["tests/test_analysis.py::test_holm_runs_over_every_collapse_metric_and_arm_together"]),
    Mutant("a diverged run no longer scores chance accuracy in selection",
           "korth_bench/analysis/entries.py",
           '''.where(
            group["status"] == "completed", group["chance"])''',
           '''.where(
            group["status"] == "completed")''',
           ["tests/test_analysis.py::test_a_diverged_run_scores_chance_accuracy_in_selection"]),
    Mutant("precision auto cannot read /proc/cpuinfo (a typo in the path)",
           "korth_bench/trial/precision.py",
           'open("/proc/cpuinfo")', 'open("/proc/cpuinf")',
           ["tests/test_precision.py::test_the_machine_itself_is_read_from_proc_cpuinfo"]),
    Mutant("initialize() returns at once (no orthogonal or cs_iterative init)",
           "korth_bench/trial/loop.py",
           '''    """Apply ``cfg.init``: PyTorch's default, orthogonal kernels, or [CS]'s iterative init."""
''',
           '''    """Apply ``cfg.init``: PyTorch's default, orthogonal kernels, or [CS]'s iterative init."""
    return
''',
           ["tests/test_trial.py::test_each_init_mode_changes_the_kernels_as_stated"]),
    Mutant("a one-line change to a statistic (the t interval on n - 1 instead of n)",
           "korth_bench/analysis/stats.py",
           "half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)\n",
           "half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n - 1)\n",
           ["tests/test_report.py::test_every_committed_report_is_what_the_current_code_computes"]),
)


def copy_of_head(directory: str) -> None:
    archive = subprocess.run(["git", "-C", ROOT, "archive", "HEAD"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", directory], input=archive, check=True)


def run_tests(directory: str, tests: Sequence[str]) -> bool:
    env = {**os.environ, "PYTHONPATH": directory, "RAY_AUTH_MODE": "disabled",
           "RAY_USAGE_STATS_ENABLED": "0",
           "KORTH_CIFAR10_PARQUET": os.path.abspath(os.environ.get(
               "KORTH_CIFAR10_PARQUET", os.path.join(ROOT, "data", "cifar10-jpeg.parquet")))}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                           *tests], cwd=directory, env=env, capture_output=True, text=True)
    return done.returncode == 0


def main(patterns: Sequence[str]) -> int:
    chosen = [m for m in MUTANTS if not patterns or any(p in m.name for p in patterns)]
    print(f"{'mutant':<74} {'module':<34} {'clean':<6} {'mutant':<7} seconds")
    failures = 0
    for mutant in chosen:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="korth-mutant-") as directory:
            copy_of_head(directory)
            clean = run_tests(directory, mutant.tests)
            path = os.path.join(directory, mutant.path)
            with open(path) as handle:
                text = handle.read()
            if text.count(mutant.old) != 1:
                raise SystemExit(f"{mutant.path}: the mutant's text occurs {text.count(mutant.old)} "
                                 f"times, not once: {mutant.name}")
            with open(path, "w") as handle:
                handle.write(text.replace(mutant.old, mutant.new))
            killed = not run_tests(directory, mutant.tests)
        failures += not (clean and killed)
        print(f"{mutant.name:<74} {mutant.path:<34} {'pass' if clean else 'FAIL':<6} "
              f"{'killed' if killed else 'LIVES':<7} {time.perf_counter() - start:.0f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
