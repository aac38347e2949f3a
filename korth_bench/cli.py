"""The ``korth-bench`` command: list, train, run, status, report, plan, data pack, selfcheck.

Bad input (a ``ConfigError``) ends with one line naming the field, the value and what is allowed,
and exit code 2; a storage fault that stopped a sweep (a ``StorageFault``) with one line naming
the storage, the fault and the ``--resume`` command, and exit code 75; any other exception is a
bug and keeps its traceback (exit 1).
"""
from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import sys
import warnings
from importlib import metadata
from typing import Any, Dict, List, Optional

import yaml
from korth_bench.errors import EXIT_STORAGE_FAULT, ConfigError, IgnoredSetting, StorageFault

EXIT_BAD_INPUT = 2


class Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (the flag and what it takes, no usage block), exit
    code 2; the subcommands' parsers are of this class too (``add_subparsers``' default)."""

    def error(self, message: str):
        # argparse quotes choices and values with repr: "invalid choice: 'x' (choose from 'a', 'b')"
        message = re.sub(r"'([^'\s]*)'", r"\1", message)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (--help lists the flags)\n")


def assignment(text: str) -> str:
    """The argparse ``type`` of ``--set``: a ``KEY=VALUE`` string."""
    key, sep, _ = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"takes KEY=VALUE (e.g. --set epochs=3), got {text}")
    return text


def parse_assignments(assignments: List[str]) -> Dict[str, Any]:
    """``["depth=20", "lr=0.1"]`` -> {"depth": "20", "lr": "0.1"} (types come from the config)."""
    values: Dict[str, Any] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item}: takes KEY=VALUE (e.g. --set epochs=3)")
        values[key.strip()] = value
    return values


def load_yaml_mapping(path: str) -> Dict[str, Any]:
    if not os.path.exists(path):
        raise ConfigError(f"config file {path!r} does not exist")
    try:
        with open(path) as handle:
            loaded = yaml.safe_load(handle)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path!r} is not valid YAML: {str(err).splitlines()[0]}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping of trial keys")
    return loaded


def number_in(low: float, high: float, what: str):
    """An argparse `type` that accepts a float strictly between low and high; the error names
    the allowed range and what the number means (argparse adds the flag and exits with 2)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not low < value < high:
            allowed = (f"a finite number > {low:g}" if high == math.inf
                       else f"a number in ({low:g}, {high:g})")
            raise argparse.ArgumentTypeError(f"must be {allowed} ({what}), got {text}")
        return value
    return parse


# ---------------------------------------------------------------------- commands
def cmd_list(args: argparse.Namespace) -> int:
    from korth_bench import data, models, regularizers, spaces
    from korth_bench.config import TrialConfig

    print("regularizers (required keys, then parameters and defaults):")
    for name, params in regularizers.describe().items():
        needed = regularizers.required(name)
        shown = ", ".join([f"{k} (required)" for k in needed]
                          + [f"{k}={v!r}" for k, v in params.items() if k not in needed]) or "-"
        print(f"  {name:<12} {shown}")
    print("model families (valid depths):")
    for name in models.names():
        depths = models.valid_depths(name, upto=110)
        print(f"  {name:<12} {', '.join(map(str, depths[:8]))}, ...")
    print(f"datasets: {', '.join(data.names())}")
    print(f"search spaces: {', '.join(spaces.names())}")
    print(f"trial config keys: {', '.join(TrialConfig.field_names())}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from korth_bench import results
    from korth_bench.config import TrialConfig
    from korth_bench.data.packed import check_file, cifar10_parquet
    from korth_bench.trial.checkpoint import CHECKPOINT_FILE
    from korth_bench.trial.loop import resolve_device, train_and_measure
    from korth_bench.trial.precision import bf16_kernels_note
    from korth_bench.tracking.mlflow_runs import use_uri
    from korth_bench.tracking.settings import TrackingSettings, with_flags
    from korth_bench.tracking.tensorboard_runs import TENSORBOARD_DIR
    from korth_bench.tracking.tracker import Tracker

    assigned = parse_assignments(args.set)
    values = {**(load_yaml_mapping(args.config) if args.config else {}), **assigned}
    if values.get("dataset") == "packed" and not values.get("data_path"):
        values["data_path"] = cifar10_parquet()  # the one rule for the packed CIFAR-10 file
    cfg = TrialConfig.from_dict(values)
    tracking = with_flags(TrackingSettings(), args.tensorboard, args.mlflow, args.mlflow_experiment)
    if tracking.mlflow:
        use_uri(None)
    # Every input is checked before the trial directory exists: a refused trial writes nothing.
    device = resolve_device(cfg.device)
    if cfg.dataset == "packed":
        check_file(cfg.data_path)
    note = bf16_kernels_note(cfg.precision, cfg.compile) if device.type == "cpu" else None
    if note:
        print(f"korth-bench: note: {note}", file=sys.stderr)
    results.check_writable(args.out, f"--out {args.out}")
    trial_dir = os.path.join(os.path.abspath(args.out), cfg.name)
    checkpoint_dir = os.path.join(trial_dir, "checkpoint")
    if os.path.isdir(trial_dir) and os.listdir(trial_dir) and not (args.resume or args.overwrite):
        raise ConfigError(f"--out {args.out}: trial {cfg.name} already has output in {trial_dir}; "
                          "allowed: --resume to continue it, --overwrite to replace it, or "
                          "another --out")
    if args.overwrite and not args.resume and os.path.isdir(trial_dir):
        shutil.rmtree(trial_dir)
    os.makedirs(trial_dir, exist_ok=True)
    resume_from = checkpoint_dir if args.resume and os.path.exists(
        os.path.join(checkpoint_dir, CHECKPOINT_FILE)) else None
    print(f"trial {cfg.name}{' (resuming)' if resume_from else ''} -> {trial_dir}")
    # one top-level MLflow run per trial; event files in OUT/tensorboard/<trial name>/
    tracker = Tracker(tracking, sweep=cfg.name, parent=False,
                      tensorboard_root=os.path.join(os.path.abspath(args.out), TENSORBOARD_DIR))

    def report(row: Dict[str, Any], checkpoint: Optional[str]) -> None:
        done = (row["epoch"] + 1) / cfg.epochs
        bar = "#" * round(20 * done) + "." * (20 - round(20 * done))
        test = f"{row['test_acc']:.4f}" if row.get("test_acc") is not None else "-"
        print(f"  [{bar}] epoch {row['epoch'] + 1}/{cfg.epochs}  loss {row['train_loss']:.4f}  "
              f"test_acc {test}  {row['images_per_s']:.0f} img/s", flush=True)
        tracker.log_epoch(cfg, row)
        if checkpoint is not None:  # keep the latest checkpoint beside the tables, for --resume
            os.makedirs(checkpoint_dir, exist_ok=True)
            shutil.copy(os.path.join(checkpoint, CHECKPOINT_FILE),
                        os.path.join(checkpoint_dir, CHECKPOINT_FILE + ".tmp"))
            os.replace(os.path.join(checkpoint_dir, CHECKPOINT_FILE + ".tmp"),
                       os.path.join(checkpoint_dir, CHECKPOINT_FILE))

    record = train_and_measure(cfg, report=report, resume_from=resume_from)
    results.write_trial(trial_dir, record.tables(), sweep=cfg.name)
    tracker.finish(cfg, record.summary["status"], record.summary)
    tracker.close()
    print_summary(record.summary)
    return 0


def print_summary(summary: Dict[str, Any]) -> None:
    from korth_bench.trial.summary import HEADLINE

    width = max(map(len, HEADLINE))
    for key in HEADLINE:
        value = summary.get(key)
        if value is None and key == "error":
            continue
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"  {key:<{width}}  {shown}")


def cmd_run(args: argparse.Namespace) -> int:
    from korth_bench import results, sweep

    if args.storage:
        results.check_scheme(args.storage, f"--storage {args.storage}")
    if args.rebaseline and not args.join:
        raise ConfigError(f"--rebaseline={args.rebaseline} needs --join STUDY_DIR")
    if args.address and not args.dry_run:  # checked before "nothing to run" can be said
        from korth_bench.sweep.cluster import check_address

        check_address(args.address)

    return sweep.run(args.space, address=args.address, storage=args.storage,
                     storage_endpoint=args.storage_endpoint, resume=args.resume,
                     dry_run=args.dry_run, quiet=args.quiet, max_concurrent=args.max_concurrent,
                     pending_timeout=args.pending_timeout, tensorboard=args.tensorboard,
                     mlflow=args.mlflow, mlflow_experiment=args.mlflow_experiment,
                     join=args.join, rebaseline=args.rebaseline)


def cmd_status(args: argparse.Namespace) -> int:
    from korth_bench import results, spaces, status

    target, space = args.target, None
    for flag, value in (("--storage", args.storage), ("", target)):
        if value:
            results.check_scheme(value, f"{flag} {value}".strip())
    if target.endswith((".yaml", ".yml")) or (not os.path.exists(target) and "://" not in target):
        space = spaces.load(target)  # a file or a shipped space's name, else a ConfigError
        sweep_uri = results.sweep_location(args.storage, space.name)
        space = _joined_space_of(space, sweep_uri)
    elif args.storage:
        raise ConfigError(f"--storage applies to a search space; {target!r} is a sweep directory")
    else:
        sweep_uri = target if "://" in target else os.path.abspath(target)
    try:
        found = status.sweep_status(sweep_uri, endpoint=args.storage_endpoint, space=space)
    except OSError as err:
        where = f"--storage {args.storage}" if args.storage else target
        endpoint = f" (--storage-endpoint {args.storage_endpoint})" if args.storage_endpoint else ""
        raise ConfigError(f"{where}{endpoint}: cannot read the sweep's tables at {sweep_uri} "
                         f"({' '.join(str(err).split())})") from None
    print(status.status_text(found))
    return 0


def _joined_space_of(space, sweep_uri: str):
    """A join's space as the join ran it (the study's rows with the space's arms), when the
    sweep directory holds a join's record; else the space itself."""
    from korth_bench import join

    manifest = join.read_manifest(sweep_uri) if "://" not in sweep_uri else None
    if manifest is None:
        return space
    plan = join.plan_join(space, join.load_study(manifest["study_directory"]),
                          int(manifest.get("rebaseline") or 0))
    return join.joined_space(space, plan)


def cmd_report(args: argparse.Namespace) -> int:
    from korth_bench import report

    for directory in args.results_dirs:
        if not os.path.isdir(directory) and "://" not in directory:
            raise ConfigError(f"results directory {directory!r} does not exist")
    out = args.out or os.path.join(args.results_dirs[0], "report")
    # Flags not given are left out, so analysis.analyze's defaults stay the only defaults.
    options = {"selection": args.selection, "alpha": args.alpha,
               "claimed_drop": None if args.claimed_drop is None else args.claimed_drop / 100,
               "efficiency_margin": None if args.efficiency_margin is None
               else args.efficiency_margin / 100,
               "collapse_metrics": args.collapse_metric, "arms": args.arm,
               "primary": primary_contrast(args)}
    declared = options["primary"] and options["primary"].pop("declared_values", None)
    if declared:  # the space's level and bound, unless the flags override them
        options["alpha"] = args.alpha if args.alpha is not None else declared["alpha"]
        options["claimed_drop"] = (args.claimed_drop if args.claimed_drop is not None
                                   else declared["claimed_drop"]) / 100
    written = report.build_report(args.results_dirs, out, endpoint=args.storage_endpoint,
                                  **{k: v for k, v in options.items() if v is not None})
    for kind, path in written.items():
        if kind != "html":
            print(f"  {kind}: {path}")
    print(f"HTML leaderboard: {os.path.abspath(written['html'])}")
    if args.mlflow:
        from korth_bench.tracking.mlflow_runs import log_report

        runs = log_report(written)
        print(f"logged to MLflow: the report's files and verdicts on sweep run(s) {', '.join(runs)}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from korth_bench import plan
    from korth_bench.analysis import power
    from korth_bench import spaces

    for directory in args.results_dirs:
        if not os.path.isdir(directory) and "://" not in directory:
            raise ConfigError(f"results directory {directory!r} does not exist")
    if args.out and not args.space:
        raise ConfigError(f"--out {args.out}: a design is written from a candidate --space")
    if args.parallel < 1:
        raise ConfigError(f"--parallel {args.parallel}: must be a whole number >= 1 (trials at a "
                          "time)")
    if args.reference_seeds < 0:
        raise ConfigError(f"--reference-seeds {args.reference_seeds}: must be a whole number >= 0 "
                          "(baseline seeds per cell at 2x the epochs)")
    runs = plan.measured_runs(args.results_dirs, args.arm or (), args.storage_endpoint)
    primary = args.primary or plan.default_primary(runs)
    unknown = sorted(set(primary) - set(runs["regularizer"]))
    if unknown:
        raise ConfigError(f"--primary {unknown[0]!r} is not an entry of the results; choose from: "
                          f"{', '.join(sorted(set(runs['regularizer'])))}")
    spread = power.measure_spread(runs, primary, args.metric)
    if not spread.df_within:
        raise ConfigError(f"--primary {', '.join(primary)}: no cell has two seeds of these arms "
                          "and the baseline to measure a spread from")
    arm_spread = plan.per_arm_spread(runs, primary, args.metric)
    cost = None
    if args.space:
        candidate = spaces.load(args.space)
        if candidate.search.type != "grid":
            raise ConfigError(f"--space {args.space}: plan prices a grid space")
        cost = plan.cost_model(runs)
        cells = plan.candidate_cells(candidate.trials, cost)
    else:
        cells = plan.measured_cells(runs)
    if len(cells) < 3:
        raise ConfigError(f"{len(cells)} cells: a slope test on cell means needs 3")
    claimed, parallel = args.claimed_drop / 100, args.parallel
    rows = plan.design_rows(cells, spread, arm_spread, claimed, args.power, args.alpha, parallel,
                            args.budget_hours, args.reference_seeds)
    print(plan.plan_text(spread, arm_spread, cells, rows, cost, claimed, args.power, args.alpha,
                         parallel, args.reference_seeds))
    if args.space:
        cells_as = candidate.analysis.cells if candidate.analysis else "random"
        print(plan.written_design_text(plan.written_design(
            candidate.trials, cells, spread, cells_as, claimed, args.alpha, args.power, cost,
            parallel, args.reference_seeds), claimed, parallel))
    if args.out:
        design = plan.chosen_design(rows)
        if design is None:
            raise ConfigError("no primary-contrast design reaches the power within the budget: "
                              "nothing written")
        print(f"wrote {plan.write_space(args.space, design, args.out)}: {design['arm seeds']} seeds "
              f"per arm, {design['baseline seeds']} baseline seeds, cells {design['cells']}, "
              f"{design['machine-hours']:.1f} machine-hours")
    return 0
def primary_contrast(args: argparse.Namespace) -> Optional[dict]:
    """Claim 2's primary contrast for ``report``: the ``analysis`` section of ``--space``,
    ``--primary`` arms overriding its arms (or naming them without a space: then it is not
    pre-registered), ``--alpha`` / ``--claimed-drop`` overriding its level and bound; each
    override is listed, and the report prints it. None when neither is given."""
    from korth_bench import spaces

    if not args.space:
        return {"arms": args.primary, "metric": "test_acc", "cells": "random", "declared": None,
                "source": None, "overrides": []} if args.primary else None
    space = spaces.load(args.space)
    analysis = space.analysis
    if analysis is None:
        raise ConfigError(f"--space {args.space}: the space has no analysis section "
                          "(analysis.primary declares claim 2's primary contrast)")
    overrides = [f"{flag} {given} (declared {declared})" for flag, given, declared in (
        ("--primary", args.primary and ", ".join(args.primary), ", ".join(analysis.arms)),
        ("--alpha", args.alpha, analysis.alpha),
        ("--claimed-drop", args.claimed_drop, analysis.claimed_drop))
        if given is not None and given != declared]
    return {"arms": list(args.primary or analysis.arms), "metric": analysis.metric,
            "cells": analysis.cells, "declared": analysis.declared, "source": _shown_path(space.path),
            "overrides": overrides,
            "declared_values": {"alpha": analysis.alpha, "claimed_drop": analysis.claimed_drop}}


def _shown_path(path: str) -> str:
    """A path relative to the current directory when it lies below it, else absolute."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def cmd_data_pack(args: argparse.Namespace) -> int:
    from korth_bench import data

    packed = data.pack(args.source, args.out)
    print(f"packed {args.source} -> {packed['path']} ({packed['train_images']} training and "
          f"{packed['test_images']} test images, {len(packed['classes'])} classes)")
    return 0


def cmd_selfcheck(args: argparse.Namespace) -> int:
    from korth_bench import selfcheck

    return selfcheck.main(device=args.device, data_path=args.data_path,
                          overrides=parse_assignments(args.set))


def cmd_cache(args: argparse.Namespace) -> int:
    import datetime

    from korth_bench.data import cache
    from korth_bench.faults import size_text

    root = cache.cache_root()
    if args.clear:
        print(f"cleared {root}: {size_text(cache.clear())} freed")
        return 0
    found = cache.entries()
    print(f"decode cache: {root} ({size_text(cache.tree_size(root)) if root.exists() else 'empty'};"
          f" KORTH_BENCH_CACHE moves it; korth-bench cache --clear empties it)")
    for path, size, mtime in found:
        when = datetime.datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M")
        print(f"  {size_text(size):>10}  {when}  {path.relative_to(root)}")
    return 0


def cmd_protocol(args: argparse.Namespace) -> int:
    import json

    from korth_bench import protocol

    if not os.path.isfile(args.data):
        raise ConfigError(f"--data {args.data}: no such file (a copy of the data file the "
                          "study's rows name)")
    if not os.path.isdir(os.path.join(args.results_dir, "trials")):
        raise ConfigError(f"RESULTS_DIR {args.results_dir}: no trials table there")
    document = protocol.study_protocol(args.results_dir, args.data)
    path = os.path.join(args.results_dir, protocol.PROTOCOL_FILE)
    with open(path, "w") as handle:
        json.dump(document, handle, indent=1)
        handle.write("\n")
    print(f"wrote {path}: the protocol identity of {len(document['trials'])} trials")
    return 0


# ---------------------------------------------------------------------- parser
def tracking_flags(command: argparse.ArgumentParser, event_dirs: str) -> None:
    """The flags of the ``logging:`` section (korth_bench.tracking.settings)."""
    command.add_argument("--tensorboard", action="store_true",
                         help=f"write TensorBoard event files to {event_dirs}")
    command.add_argument("--mlflow", action="store_true",
                         help="log to MLflow at MLFLOW_TRACKING_URI (credentials from MLflow's "
                              "environment variables)")
    command.add_argument("--mlflow-experiment", metavar="NAME",
                         help="the MLflow experiment (implies --mlflow; default korth-bench)")


def plugin_flag(command: argparse.ArgumentParser) -> None:
    command.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_FILE",
                         help="import a module (by name) or a .py file first: its registered "
                              "regularizers become usable, in Ray's workers too; repeatable")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="korth-bench",
        description="Benchmarks for kernel-orthogonality regularization of CNNs.")
    parser.add_argument("--version", action="version",
                        version=f"korth-bench {metadata.version('korth-bench')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="regularizers, models, data sets, search spaces")
    plugin_flag(listing)
    listing.set_defaults(func=cmd_list)

    train = commands.add_parser("train", help="one trial, no Ray")
    train.add_argument("config", nargs="?", help="YAML file of trial keys")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", type=assignment,
                       help="override one trial key (repeatable)")
    train.add_argument("--out", default="results/train",
                       help="tables go to OUT/<trial name>/ (default results/train)")
    train.add_argument("--resume", action="store_true",
                       help="continue from OUT/<trial name>/checkpoint if there is one")
    train.add_argument("--overwrite", action="store_true",
                       help="replace OUT/<trial name>/ when it already holds output (without it "
                            "such a trial is refused)")
    plugin_flag(train)
    tracking_flags(train, "OUT/tensorboard/<trial name>/")
    train.set_defaults(func=cmd_train)

    run = commands.add_parser("run", help="a sweep from a search-space YAML, on Ray Tune")
    run.add_argument("space", help="search_spaces/<name>.yaml")
    run.add_argument("--address", help="join a running Ray cluster (default: start a local one)")
    run.add_argument("--storage", help="results and Tune state: a path or URI (s3://bucket/prefix)")
    run.add_argument("--storage-endpoint", help="S3-compatible endpoint URL (or AWS_ENDPOINT_URL)")
    run.add_argument("--resume", action="store_true", help="continue an interrupted sweep")
    run.add_argument("--dry-run", action="store_true",
                     help="print the expanded trial table and a cost estimate, then exit")
    run.add_argument("--max-concurrent", type=int, help="override the space's search.concurrency")
    run.add_argument("--pending-timeout", metavar="S", type=number_in(0, math.inf, "seconds"),
                     help="wait up to S seconds for a node that fits a trial (an autoscaling "
                          "cluster adding one); default: refuse at once a trial that fits no node")
    run.add_argument("--quiet", action="store_true", default=None, help="no live progress view")
    run.add_argument("--join", metavar="STUDY_DIR",
                     help="run only the arms a committed study lacks, on its protocol, cells and "
                          "seeds, into the space's own directory (korth_bench.join)")
    run.add_argument("--rebaseline", metavar="N", type=int, default=0,
                     help="with --join: re-run N baseline seeds per joined cell and take the new "
                          "arm's gains against them (when the first epoch shows another arithmetic)")
    tracking_flags(run, "<storage>/<sweep>/tensorboard/<trial name>/")
    plugin_flag(run)
    run.set_defaults(func=cmd_run)

    state = commands.add_parser("status", help="where a sweep stands, from its tables (no Ray)")
    state.add_argument("target", metavar="SPACE.yaml|SWEEP_URI",
                       help="a search space (its sweep under --storage) or a sweep directory/URI")
    state.add_argument("--storage", help="where the space's sweep is (as for run; default ./results)")
    state.add_argument("--storage-endpoint", metavar="URL",
                       help="S3-compatible endpoint URL (or AWS_ENDPOINT_URL)")
    state.set_defaults(func=cmd_status)

    report = commands.add_parser("report", help="leaderboards from one or more result directories")
    report.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR")
    report.add_argument("--out", help="output directory (default RESULTS_DIR/report)")
    report.add_argument("--storage-endpoint", metavar="URL",
                        help="S3-compatible endpoint URL for s3:// directories (or AWS_ENDPOINT_URL)")
    report.add_argument("--selection", choices=("val", "test"),
                        help="how each regularizer's entry is chosen per cell: best mean "
                             "validation accuracy (val, the default; test accuracy where a cell "
                             "has no validation split) or test accuracy (test: optimistic)")
    report.add_argument("--claimed-drop", metavar="POINTS",
                        type=number_in(0, math.inf, "accuracy percentage points"),
                        help="the collapse test's equivalence bound: 'no trend' only when the "
                             "interval of the drop in gain over the capacity range lies inside "
                             "+-POINTS accuracy percentage points: 1.0 = one point = 0.01 as a "
                             "fraction (default 1.0)")
    report.add_argument("--efficiency-margin", metavar="POINTS",
                        type=number_in(0, math.inf, "accuracy percentage points"),
                        help="capacity efficiency: a small regularized model matches a larger "
                             "baseline when it is shown within POINTS of it and that baseline is "
                             "shown more than POINTS above the small baseline (default 0.5)")
    report.add_argument("--alpha", type=number_in(0, 1, "significance level"),
                        help="level of the collapse test (Holm-adjusted) and of the efficiency "
                             "tests; the slope interval covers 1 - ALPHA (default 0.05)")
    report.add_argument("--collapse-metric", action="append", metavar="METRIC",
                        help="an accuracy column whose gains the collapse test regresses on "
                             "capacity; repeat for several, Holm-adjusted together (default "
                             "test_acc; also best_test_acc, clean_acc, corruption_acc_mean, "
                             "fgsm_acc_<k>_255, pgd_acc_<k>_255)")
    report.add_argument("--arm", action="append", metavar="KEY",
                        help="a trial key whose values become part of an entry's identity "
                             "(dn [penalty_reduction=mean]); each arm is compared with the one "
                             "baseline and gets its own collapse and strict-vs-relaxed rows, "
                             "Holm-adjusted together; repeatable")
    report.add_argument("--space", metavar="SPACE.yaml",
                        help="read claim 2's primary contrast from the space's analysis section "
                             "(declared before the data): the pooled gain of its arms, tested "
                             "alone, decides claim 2; its alpha and claimed drop apply unless "
                             "--alpha / --claimed-drop override them (the report says so)")
    report.add_argument("--primary", action="append", metavar="ARM",
                        help="an entry of the primary contrast as the report names it ('so', or "
                             "with --arm 'so [penalty_reduction=sum]' or 'so [sum]'); repeat for "
                             "each; overrides the space's arms, or names a contrast at report "
                             "time (then reported as not pre-registered)")
    report.add_argument("--mlflow", action="store_true",
                        help="also log the report's files as artifacts of each sweep's MLflow "
                             "parent run and its verdicts as tags (MLFLOW_TRACKING_URI)")
    plugin_flag(report)
    report.set_defaults(func=cmd_report)

    planning = commands.add_parser(
        "plan", help="study designs that reach a power, from measured spread and trial times")
    planning.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR")
    planning.add_argument("--claimed-drop", metavar="P", default=1.0,
                          type=number_in(0, math.inf, "accuracy percentage points"),
                          help="the drop in gain over the capacity range to detect, and the "
                               "'no trend' bound +-P, in accuracy points (default 1.0)")
    planning.add_argument("--power", type=number_in(0, 1, "probability"), default=0.8,
                          help="the power each design must reach for both (default 0.8)")
    planning.add_argument("--alpha", type=number_in(0, 1, "significance level"), default=0.05,
                          help="level of the slope test; the drop's interval covers 1 - ALPHA "
                               "(default 0.05)")
    planning.add_argument("--budget-hours", metavar="H", type=number_in(0, math.inf, "hours"),
                          help="mark the designs that fit H machine-hours")
    planning.add_argument("--parallel", metavar="N", type=int, default=1,
                          help="trials at a time, for machine-hours (default 1)")
    planning.add_argument("--reference-seeds", metavar="N", type=int, default=0,
                          help="add N baseline seeds per cell trained at 2x the epochs (the "
                               "reference runs of the convergence check) to every priced design, "
                               "shown as their own line of the cost (default 0)")
    planning.add_argument("--space", metavar="SPACE.yaml",
                          help="the candidate design (cells, arms, protocol), priced from the "
                               "measured seconds per FLOP (default: the measured cells)")
    planning.add_argument("--out", metavar="OUT.yaml",
                          help="write the chosen design as a search space (needs --space)")
    planning.add_argument("--primary", action="append", metavar="ENTRY",
                          help="an entry pooled by the primary contrast, as the results name it "
                               "(with --arm: 'so [penalty_reduction=sum]'); repeatable (default: "
                               "every strict-orthogonality entry)")
    planning.add_argument("--arm", action="append", metavar="KEY",
                          help="a trial key whose values are part of an entry's name (as report)")
    planning.add_argument("--metric", default="test_acc", help="the accuracy column (default test_acc)")
    planning.add_argument("--storage-endpoint", metavar="URL",
                          help="S3-compatible endpoint URL for s3:// directories")
    planning.set_defaults(func=cmd_plan)

    data = commands.add_parser("data", help="data-set tools")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    pack = data_commands.add_parser("pack", help="pack CIFAR or an image folder into Parquet")
    pack.add_argument("source", help="a torchvision CIFAR root or an image folder (class subfolders)")
    pack.add_argument("out", help="output .parquet file")
    pack.set_defaults(func=cmd_data_pack)

    selfcheck = commands.add_parser("selfcheck", help="exercise the trial's device path, no Ray")
    selfcheck.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    selfcheck.add_argument("--data-path", help="a packed Parquet file (default: synthetic data)")
    selfcheck.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", type=assignment,
                           help="override a key in every check (e.g. train_size=256); repeatable")
    selfcheck.set_defaults(func=cmd_selfcheck)

    caching = commands.add_parser("cache", help="where the decoded-data cache is and its size")
    caching.add_argument("--clear", action="store_true", help="remove everything in it")
    caching.set_defaults(func=cmd_cache)
    recording = commands.add_parser(
        "protocol", help="record the protocol identity (data and split hashes, code fingerprint) "
                         "of a study written before its rows carried it, in RESULTS_DIR/protocol.json")
    recording.add_argument("results_dir", metavar="RESULTS_DIR")
    recording.add_argument("--data", required=True, metavar="FILE",
                           help="a copy of the data file the study's rows name")
    recording.set_defaults(func=cmd_protocol)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, *rest, **options):  # a setting without effect: one line
            if issubclass(category, IgnoredSetting):
                print(f"korth-bench: note: {message}", file=sys.stderr)
            else:
                shown(message, category, *rest, **options)

        warnings.showwarning = show
        try:
            if getattr(args, "plugin", None):
                from korth_bench import plugins

                plugins.use(args.plugin)
            return args.func(args)
        except ConfigError as err:  # bad input: one line, exit 2; anything else keeps its traceback
            print(f"korth-bench: error: {err}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except StorageFault as err:  # the storage failed mid-run: one line, exit 75, resumable
            print(f"korth-bench: storage fault: {err}", file=sys.stderr)
            return EXIT_STORAGE_FAULT
        except KeyboardInterrupt:
            return 130


if __name__ == "__main__":
    sys.exit(main())
