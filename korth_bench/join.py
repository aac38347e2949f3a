"""Joining a committed study: a new arm trained on the study's protocol, cells and seeds, in a
results directory of its own, without re-running the study (``korth-bench run SPACE --join DIR``).

The join's trials are the study's baseline rows with the arm keys (``ARM_KEYS``) replaced by
the space's: the data, training and evaluation keys come from the recorded rows, never from a
YAML file that may have changed since. A space may name only what a join varies (the arm), which
cells and seeds it joins (``CELL_KEYS`` and ``seed``, from the study's), and keys that change
where or how fast a trial runs (``FREE_KEYS``); any other key it sets must equal the study's
value. Before anything runs, ``check_arithmetic`` re-runs the first epoch of one committed
baseline trial per joined cell (the same trial id: the same initialisation and data order) and
compares it with the committed row (``trial.first_epoch``). Equal: the new arm's gains pair by
seed with the committed baseline ("same arithmetic"). Different: the join is refused, naming
what differs among the code fingerprint, the kernel path and torch (``korth_bench.protocol``),
unless ``--rebaseline N`` re-runs N baseline seeds per joined cell for the gains to be taken
against. ``JOIN_FILE`` in the join's directory records all of it for the report.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import pandas as pd

from korth_bench import protocol, results
from korth_bench.config import NOT_IDENTITY, REGULARIZER_PARAM_KEYS, TrialConfig
from korth_bench.errors import ConfigError

JOIN_FILE = "join.json"
CELL_KEYS = ("model", "depth", "width", "shortcut", "dropout")
ARM_KEYS = ("regularizer", "coefficient", "coefficient_schedule", *REGULARIZER_PARAM_KEYS,
            "regularize_linear", "penalty_reduction", "init", "init_steps", "init_lr")
FREE_KEYS = frozenset(NOT_IDENTITY | {"data_path", "checkpoint_every"})
"""Keys a join may set freely: where the data lies (its identity is ``data_sha256``) and how
fast a trial runs."""
BASELINE = "none"
TOLERANCE = 1e-6
"""Largest absolute difference of a first-epoch metric still read as the same arithmetic (the
metrics are float32 losses and accuracies; one image of 5,000 moves an accuracy by 2e-4)."""


@dataclass(frozen=True)
class Study:
    directory: str
    name: str
    trials: pd.DataFrame        # the study's completed rows, with the IDENTITY columns filled
    epochs: pd.DataFrame


@dataclass(frozen=True)
class Probe:
    """One committed baseline trial whose first epoch the join re-runs."""
    cell: str
    config: TrialConfig
    committed: Dict[str, Any]   # its committed epoch-0 row
    identity: Dict[str, Any]    # its recorded protocol identity


@dataclass(frozen=True)
class JoinPlan:
    study: Study
    trials: List[TrialConfig]   # the arm trials, then any re-run baseline trials
    probes: List[Probe]
    skipped: List[str]          # trials the study already has
    rebaseline: int


# ---------------------------------------------------------------------- the study
def load_study(directory: str) -> Study:
    """A committed study's completed rows, with their protocol identity (the rows' own columns,
    else its ``protocol.PROTOCOL_FILE`` and kernel-path sidecar)."""
    from korth_bench.plan import kernel_paths, with_kernel_paths

    if os.path.exists(os.path.join(directory, JOIN_FILE)):
        raise ConfigError(f"--join {directory}: that is a join's directory; join the study itself")
    trials = results.read_frame(directory, "trials")
    if trials is None or trials.empty:
        raise ConfigError(f"--join {directory}: no trials rows there; a join needs a study's "
                          "results directory")
    trials = trials[trials["status"] == "completed"].reset_index(drop=True)
    recorded = protocol.read_protocol_file(directory)
    for column in protocol.IDENTITY:
        own = trials[column] if column in trials else pd.Series(None, index=trials.index, dtype=object)
        side = trials["trial_id"].map(lambda t: recorded.get(t, {}).get(column))
        trials[column] = own.where(own.notna(), side)
    trials["kernel_path"] = with_kernel_paths(trials, kernel_paths([directory]))["kernel_path"]
    name = str(trials["sweep"].dropna().iloc[0]) if trials["sweep"].notna().any() \
        else os.path.basename(directory.rstrip("/"))
    return Study(directory, name, trials, results.read_frame(directory, "epochs"))


# ---------------------------------------------------------------------- the plan
def _value(value: Any) -> Any:
    if isinstance(value, (list, tuple)) or getattr(value, "ndim", 0) > 0:
        return tuple(_value(v) for v in value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return results.plain(value)


def _listing(values: Sequence[Any]) -> str:
    distinct = set(values)
    try:
        ordered = sorted(distinct)
    except TypeError:
        ordered = sorted(distinct, key=str)
    return ", ".join(str(v) for v in ordered)


def _template_config(row: Mapping[str, Any], data_path: Optional[str]) -> Dict[str, Any]:
    """A study row's configuration (``results.row_config``) reading the join's data file."""
    cfg = results.row_config(row)
    return (cfg.replace(data_path=data_path) if data_path is not None else cfg).to_dict()


def _local_data(study: Study, space_data_path: Optional[str]) -> Optional[str]:
    """The data file the join reads: the space's, else the study's recorded path where it
    exists here, else ``data/<its file name>``; its SHA-256 must be the study's."""
    recorded = study.trials["data_path"].dropna().unique().tolist() if "data_path" in study.trials else []
    if not recorded:
        return None
    here = os.path.join("data", os.path.basename(recorded[0]))
    path = space_data_path or next((p for p in (recorded[0], here) if os.path.isfile(p)), None)
    if path is None:
        raise ConfigError(f"data_path: the study's file {recorded[0]} is not here; set "
                          f"data.data_path in the space to a copy of it (its SHA-256 must be "
                          f"the study's)")
    expected = study.trials["data_sha256"].dropna().unique().tolist()
    found = protocol.data_sha256(path)
    if expected and found not in expected:
        raise ConfigError(f"data_sha256: {path} hashes to {found}, the study's data to "
                          f"{expected[0]}; a join needs the study's data file")
    return os.path.abspath(path)


def plan_join(space, study: Study, rebaseline: int = 0) -> JoinPlan:
    """The trials a join runs: per point of the space (a grid), the study's baseline rows of
    the cells and seeds it names (all of them where it names none) with its arm keys.

    Raises ConfigError (one line) for a space that sets a protocol key to another value than the
    study's rows, names a cell or seed the study lacks, or is not a grid."""
    if space.search.type != "grid":
        raise ConfigError("search.type: a join runs a grid over the study's cells and seeds, "
                          f"not {space.search.type}")
    if rebaseline < 0:
        raise ConfigError(f"--rebaseline={rebaseline} must be >= 0")
    base_rows = study.trials[study.trials["regularizer"] == BASELINE]
    if base_rows.empty:
        raise ConfigError(f"--join {study.directory}: the study has no completed baseline "
                          f"({BASELINE}) rows to join")
    chosen = []
    for point, cfg in zip(space.points, space.trials):
        explicit = {k for k in {**space.base, **point}}
        wanted = cfg.to_dict()
        rows = base_rows
        for key in [*CELL_KEYS, "seed"]:
            if key in explicit:
                rows = rows[rows[key].map(_value) == _value(wanted[key])]
                if rows.empty:
                    raise ConfigError(f"{key}={wanted[key]}: the study {study.name} has {key} "
                                      f"{_listing(base_rows[key].map(_value))}; a join runs the "
                                      "study's cells and seeds")
        for key in sorted(explicit - set(CELL_KEYS) - {"seed"} - set(ARM_KEYS) - FREE_KEYS):
            ran = rows[key].map(_value).unique().tolist()
            if ran != [_value(wanted[key])]:
                raise ConfigError(f"{key}: the space sets {wanted[key]!r}, the study "
                                  f"{study.name} ran {_listing(ran)}; a join takes the data, "
                                  "training and evaluation keys from the study's rows (leave "
                                  f"{key} out of the space)")
        chosen.append((cfg, explicit, rows))
    data_path = _local_data(study, space.base.get("data_path"))
    have = set(study.trials["trial_id"])
    trials, skipped, joined_cells = [], [], {}
    for cfg, explicit, rows in chosen:
        wanted = cfg.to_dict()
        for row in rows.to_dict("records"):
            template = _template_config(row, data_path)
            joined = TrialConfig.from_dict({**template, **{k: wanted[k] for k in ARM_KEYS},
                                            "checkpoint_every": cfg.checkpoint_every,
                                            **{k: wanted[k] for k in explicit & NOT_IDENTITY}})
            if joined.trial_id in have:
                skipped.append(joined.name)
                continue
            trials.append(joined)
            joined_cells.setdefault(_cell_label(row), []).append(row)
    if not trials:
        raise ConfigError(f"--join {study.directory}: the study already has every trial of "
                          f"{space.name}; nothing to join")
    probes, extra = [], []
    for cell, rows in joined_cells.items():
        seeds = sorted({int(r["seed"]) for r in rows})
        by_seed = {int(r["seed"]): r for r in rows}
        first = by_seed[seeds[0]]
        committed = study.epochs[(study.epochs["trial_id"] == first["trial_id"])
                                 & (study.epochs["epoch"] == 0)]
        if committed.empty:
            raise ConfigError(f"--join {study.directory}: trial {first['trial_id']} has no "
                              "epoch-0 row to compare with")
        probes.append(Probe(cell, TrialConfig.from_dict(_template_config(first, data_path)),
                            committed.iloc[0].to_dict(),
                            {k: _value(first.get(k)) for k in protocol.IDENTITY}))
        if rebaseline > len(seeds):
            raise ConfigError(f"--rebaseline={rebaseline}: cell {cell} joins only {len(seeds)} "
                              "seeds")
        extra += [TrialConfig.from_dict({**_template_config(by_seed[s], data_path),
                                         "checkpoint_every": trials[0].checkpoint_every})
                  for s in seeds[:rebaseline]]
    unique = {cfg.trial_id: cfg for cfg in [*trials, *extra]}
    return JoinPlan(study, list(unique.values()), probes, skipped, rebaseline)


def _cell_label(row: Mapping[str, Any]) -> str:
    return f"{row['model']}{int(row['depth'])}x{int(row['width'])}"


def joined_space(space, plan: JoinPlan):
    """The space with the join's trials in place of its own (each point a whole configuration)."""
    points = [cfg.to_dict() for cfg in plan.trials]
    return dataclasses.replace(space, base={}, points=points, trials=list(plan.trials),
                               checked=list(plan.trials),
                               search=dataclasses.replace(space.search, num_samples=len(points)))


# ---------------------------------------------------------------------- the arithmetic check
def check_arithmetic(plan: JoinPlan) -> List[Dict[str, Any]]:
    """Per probe, the committed and re-run first-epoch metrics side by side, and whether every
    one agrees within TOLERANCE (``same``)."""
    from korth_bench.trial.first_epoch import COMPARED, first_epoch
    from korth_bench.trial.precision import kernel_path, resolve_precision
    from korth_bench.trial.loop import resolve_device
    import torch

    checks = []
    for probe in plan.probes:
        rerun = first_epoch(probe.config)
        device = resolve_device(probe.config.device)
        precision = resolve_precision(probe.config.precision, device)
        here = {"code_fingerprint": protocol.code_fingerprint(), "torch_version": torch.__version__,
                "kernel_path": kernel_path(precision, device, compile=probe.config.compile)}
        values = {}
        for column in COMPARED:
            old, new = _value(probe.committed.get(column)), _value(rerun.get(column))
            if old is None and new is None:
                continue
            values[column] = {"committed": old, "rerun": new}
        same = all(v["committed"] is not None and v["rerun"] is not None
                   and abs(v["committed"] - v["rerun"]) <= TOLERANCE for v in values.values())
        checks.append({"cell": probe.cell, "trial_id": probe.config.trial_id,
                       "seed": probe.config.seed, "values": values, "same": same,
                       "recorded": probe.identity, "here": here})
    return checks


def difference_line(study: Study, checks: Sequence[Mapping[str, Any]]) -> str:
    """The one line refusing a join whose first epoch differs: the metric and what differs."""
    check = next(c for c in checks if not c["same"])
    column, pair = next((k, v) for k, v in check["values"].items()
                        if v["committed"] is None or v["rerun"] is None
                        or abs(v["committed"] - v["rerun"]) > TOLERANCE)
    names = {"code_fingerprint": "code fingerprint", "kernel_path": "kernel path",
             "torch_version": "torch"}
    differs = [f"{names[k]} {str(check['recorded'].get(k))[:12]} (study) vs "
               f"{str(check['here'][k])[:12]} (here)" for k in names
               if check["recorded"].get(k) != check["here"][k]]
    cause = "; ".join(differs) if differs else "code fingerprint, kernel path and torch all match"
    return (f"--join {study.directory}: not the same arithmetic: the first epoch of trial "
            f"{check['trial_id']} ({check['cell']}, seed {check['seed']}) gives {column} "
            f"{pair['rerun']!r}, the committed row {pair['committed']!r}; {cause}; re-run the "
            f"baseline with --rebaseline N")


# ---------------------------------------------------------------------- the record
def manifest(plan: JoinPlan, checks: Sequence[Mapping[str, Any]], space_path: str) -> Dict[str, Any]:
    """The JOIN_FILE document: which study, when, which code, same arithmetic or re-baselined."""
    same = all(c["same"] for c in checks)
    mode = ("same arithmetic" if same and not plan.rebaseline else
            f"re-baselined ({plan.rebaseline} seeds)")
    return {"study": plan.study.name, "study_directory": _portable(plan.study.directory),
            "joined_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "space": _portable(space_path), "code_fingerprint": protocol.code_fingerprint(),
            "git_commit": _git_commit(), "mode": mode, "rebaseline": plan.rebaseline,
            "arms": sorted({cfg.regularizer for cfg in plan.trials if cfg.regularizer != BASELINE}),
            "trial_ids": [cfg.trial_id for cfg in plan.trials], "first_epoch": list(checks)}


def _portable(path: str) -> str:
    """A path relative to the working directory when it lies below it (a checkout's
    ``results/<study>``: the record then reads the same in every clone), else absolute."""
    absolute, here = os.path.abspath(path), os.getcwd()
    return os.path.relpath(absolute, here) if absolute.startswith(here + os.sep) else absolute


def _git_commit() -> Optional[str]:
    from korth_bench.trial.provenance import provenance
    import torch
    return provenance(torch.device("cpu"))["git_commit"]


def check_lines(checks: Sequence[Mapping[str, Any]]) -> List[str]:
    """The first-epoch comparison, one line per probe: each metric committed / re-run."""
    return [f"first epoch of {c['trial_id']} ({c['cell']}, seed {c['seed']}): "
            + ", ".join(f"{k} {v['committed']!r} / {v['rerun']!r}" for k, v in c["values"].items())
            + (" (committed / re-run): same arithmetic" if c["same"] else
               " (committed / re-run): different") for c in checks]


def write_manifest(sweep_uri: str, document: Mapping[str, Any],
                   endpoint: Optional[str] = None) -> None:
    fs, root = results.resolve(sweep_uri, endpoint)
    fs.create_dir(root, recursive=True)
    results.write_bytes(fs, f"{root.rstrip('/')}/{JOIN_FILE}",
                        json.dumps(document, indent=1, default=str).encode())


def read_manifest(directory: str) -> Optional[Dict[str, Any]]:
    path = os.path.join(directory, JOIN_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return json.load(handle)
