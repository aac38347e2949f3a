"""Mutation testing of the modules whose errors change a verdict or a number (``make mutation``).

mutmut 3 reads its configuration from the ``pyproject.toml`` of the directory it runs in and
copies the project into ``mutants/`` there. To run each module against only the tests that cover
it, this script gives every group of ``GROUPS`` (modules, tests) its own directory,
``mutants/<group>/``: links to ``korth_bench/`` and ``tests/``, and a copy of the project's
``pyproject.toml`` with a ``[tool.mutmut]`` table naming the group's modules (``only_mutate``) and
tests (``pytest_add_cli_args_test_selection``). mutmut then maps each function to the selected
tests that call it and runs, for each mutant, only those. One mutant runs at a time
(``--max-children 1``), in a child forked from a fork server (the tests import torch, which is
not fork-safe once its thread pools have started). No selected test starts Ray.

Results stay in ``mutants/<group>/mutants/`` (git-ignored), so a second run tests only the
mutants of functions that changed, and the survivors of the last run again (against the tests
added since); ``rm -rf mutants`` starts afresh. mutmut learns which tests call a function only
from new tests: after changing an existing test, delete
``mutants/<group>/mutants/mutmut-stats.json`` so that the next run maps every test again.
The table (per module: killed, survived, timeout, no tests, total, % killed) is printed and
written to
``mutants/mutation-table.md``; ``docs/mutation.md`` holds the last recorded one, with the
surviving mutants judged equivalent. A surviving mutant is shown with
``cd mutants/<group> && ../../.venv/bin/mutmut show <name>``.

Usage: ``python benchmarks/mutation.py [group ...] [--only MODULE ...]`` (default: every group,
in the order below; ``--only korth_bench.analysis.power`` tests that module's mutants alone).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
MUTMUT = Path(sys.executable).parent / "mutmut"

# The Monte Carlo checks of a test's level and power, and the browser rendering: 5-40 s each.
SLOW_ANALYSIS = ("not (holds_its_level or no_trend_is_rare or do_not_inflate"
                 " or no_trend_under_the_null or detected_at_the_stated_power"
                 " or gains_shrink_under or under_training_is_flagged or chromium)")
# group -> (modules to mutate, pytest arguments selecting the tests that cover them). Ordered by
# size: the small modules first, so that an interrupted run has their figures. Tests that train
# a model are left out where the unit tests state the same rules.
GROUPS = {
    "schedules": (["korth_bench/trial/schedules.py"], ["tests/test_trial.py", "-k", "schedule"]),
    "measures": (["korth_bench/measures.py"], ["tests/test_measures.py"]),
    # Not the two tests that train three and one trials (10-15 s each, for every mutant they
    # cover): what they check of precision.py the unit tests state too. kernel_path's unit test
    # is test_plan's (the cost model prices a trial by it).
    "precision": (["korth_bench/trial/precision.py"],
                  ["tests/test_precision.py",
                   "tests/test_plan.py::test_the_kernel_path_a_trial_records", "-k", "not trains"]),
    # test_config states the checks of a regularizer's settings (regularizers.check).
    "regularizers": (["korth_bench/regularizers/*"],
                     ["tests/test_regularizers.py", "tests/test_config.py"]),
    # The analysis modules behind the verdicts and their numbers, each against its own unit tests
    # (milliseconds each: the report and simulation tests of test_analysis.py and test_report.py
    # take 13-22 s per mutant), power.py against the analysis tests without SLOW_ANALYSIS's.
    "stats": (["korth_bench/analysis/stats.py"], ["tests/test_stats.py"]),
    "verdicts": (["korth_bench/analysis/verdicts.py"], ["tests/test_verdicts.py"]),
    "entries": (["korth_bench/analysis/entries.py"], ["tests/test_entries.py"]),
    "collapse": (["korth_bench/analysis/collapse.py"], ["tests/test_collapse.py"]),
    "convergence": (["korth_bench/analysis/convergence.py"], ["tests/test_convergence.py"]),
    # power.py: tests/test_power.py, its unit tests in test_analysis.py (issue 42's "power by
    # hand") and test_plan.py's (simulate_design's seeded checks take 0.15 s each), not the CLI
    # runs of `korth-bench plan` (3-10 s each) nor those that read a committed study (mutmut
    # runs the tests in a copy that has no results/). -k applies to every file named.
    "power": (["korth_bench/analysis/power.py"],
              [f"tests/test_analysis.py::test_{name}" for name in (
                  "a_designs_standard_error_by_hand",
                  "superiority_power_is_the_noncentral_t_tail_at_the_two_sided_critical_value",
                  "equivalence_power_against_numerical_integration",
                  "design_power_is_its_parts_at_the_familys_level",
                  "measure_spread_reads_the_moments_and_the_lack_of_fit_of_the_collapse_test")]
              + ["tests/test_plan.py", "tests/test_power.py", "-k",
                 "planted or no_drop or power_grows or spread_recovers or by_hand or power_is"
                 " or against_numerical or parts_at or moments_and or test_power.py"]),
    "analysis-other": ([f"korth_bench/analysis/{name}.py" for name in
                        ("claims", "decomposition", "design", "regime", "simulation", "strength")],
                       ["tests/test_analysis.py", "tests/test_report.py", "-k", SLOW_ANALYSIS]),
}

# Shared by every group. Tests run under pytest's own configuration from the copied
# pyproject.toml (``-m 'not reliability'``); none of the selected files uses the Ray fixture, and
# ``-m 'not ray'`` keeps it so should one be marked later.
MUTMUT_SETTINGS = {
    "source_paths": ["korth_bench"],
    "pytest_add_cli_args": ["-m", "not reliability and not ray", "-p", "no:cacheprovider"],
    "process_isolation": "forkserver",
    "timeout_multiplier": 10.0,
    "use_git_change_detection": False,
}

# The table's columns, and mutmut's exit codes of a tested mutant that fall in them (as in
# mutmut.stats.status_by_exit_code of mutmut 3.8); any other code (a segfault, say)
# tested) counts as "other"; "not run": mutants not tested yet (a module none of whose mutants
# was tested is left out of the table).
COLUMNS = ("killed", "survived", "timeout", "no tests", "other", "not run")
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests",
          36: "timeout", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout"}


def toml_value(value) -> str:
    """A TOML literal of a string, number, bool or list of strings (JSON's forms are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def group_pyproject(modules, tests) -> str:
    """The project's pyproject.toml with a ``[tool.mutmut]`` table for one group."""
    text = (ROOT / "pyproject.toml").read_text()
    text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", text)  # none today; never two
    settings = {**MUTMUT_SETTINGS, "only_mutate": modules,
                "pytest_add_cli_args_test_selection": tests}
    lines = [f"{key} = {toml_value(value)}" for key, value in settings.items()]
    return text.rstrip("\n") + "\n\n[tool.mutmut]\n" + "\n".join(lines) + "\n"


def prepare(group: str) -> Path:
    """``mutants/<group>/``: links to the sources and tests, and the group's pyproject.toml."""
    modules, tests = GROUPS[group]
    work = MUTANTS / group
    work.mkdir(parents=True, exist_ok=True)
    for name in ("korth_bench", "tests"):
        link = work / name
        if not link.is_symlink():
            link.symlink_to(ROOT / name)
    (work / "pyproject.toml").write_text(group_pyproject(modules, tests))
    return work


def mutant_statuses(work: Path) -> dict:
    """module path -> Counter of the table's columns, from mutmut's ``.meta`` files."""
    counts = {}
    for meta in sorted((work / "mutants").rglob("*.py.meta")):
        exit_codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
        if all(code is None for code in exit_codes.values()):
            continue
        module = str(meta.relative_to(work / "mutants"))[:-len(".meta")]
        counter = counts.setdefault(module, Counter())
        for code in exit_codes.values():
            counter["not run" if code is None else STATUS.get(code, "other")] += 1
    return counts


def survivors(work: Path, statuses=("survived",)) -> list:
    """The names of a group's mutants of these statuses, from mutmut's ``.meta`` files."""
    return [name for meta in sorted((work / "mutants").rglob("*.py.meta"))
            for name, code in json.loads(meta.read_text()).get("exit_code_by_key", {}).items()
            if STATUS.get(code) in statuses]


def table(rows) -> str:
    header = "| module | " + " | ".join(COLUMNS) + " | total | % killed |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 3)]
    for module, counter in rows:
        total = sum(counter.values())
        caught = counter["killed"] + counter["timeout"]
        lines.append(f"| {module} | " + " | ".join(str(counter[c]) for c in COLUMNS)
                     + f" | {total} | {100 * caught / total:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("groups", nargs="*", metavar="group",
                        help=f"any of {', '.join(GROUPS)} (default: all)")
    parser.add_argument("--only", action="append", default=[], metavar="MODULE",
                        help="test only the mutants of this module of the groups (a dotted name, "
                             "e.g. korth_bench.analysis.power; repeatable), all of them again")
    args = parser.parse_args(argv)
    unknown = set(args.groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown group(s) {', '.join(sorted(unknown))}; "
                     f"choose from {', '.join(GROUPS)}")
    # One OpenMP thread: a worker forked from the fork server after torch started its OpenMP
    # pool waits forever on that pool's lock (futex), and is counted as a timeout.
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    failed = []
    for group in args.groups or list(GROUPS):
        work = prepare(group)
        start = time.monotonic()
        print(f"== {group}: mutmut run --max-children 1 in {work.relative_to(ROOT)}",
              flush=True)
        open_statuses = ("survived", "no tests")
        before = survivors(work, open_statuses)
        run = [str(MUTMUT), "run", "--max-children", "1"]
        code = subprocess.run(run + [f"{module}.*" for module in args.only], cwd=work,
                              env=env).returncode
        # mutmut keeps a verdict until the mutated function changes: the survivors (and the
        # mutants no test reached) of an earlier run are tested again, against tests added since.
        again = sorted(name for name in set(before) & set(survivors(work, open_statuses))
                       if not args.only or any(name.startswith(m + ".") for m in args.only))
        if code == 0 and again:
            print(f"== {group}: {len(again)} survivors of the last run, tested again",
                  flush=True)
            code = subprocess.run(run + again, cwd=work, env=env).returncode
        minutes = (time.monotonic() - start) / 60
        print(f"== {group}: exit {code}, {minutes:.1f} min", flush=True)
        if code != 0:
            failed.append(group)
        for name in survivors(work):
            print(f"   survived: {name}")
    # The table covers every group run so far, this time or before.
    rows = [row for group in GROUPS if (MUTANTS / group / "mutants").is_dir()
            for row in sorted(mutant_statuses(MUTANTS / group).items())]
    text = table(rows)
    print(text)
    MUTANTS.mkdir(exist_ok=True)
    (MUTANTS / "mutation-table.md").write_text(text + "\n")
    if failed:
        print(f"mutmut failed for: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
