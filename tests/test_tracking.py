"""Watching a sweep in MLflow and TensorBoard: real stores read back with their own readers.

A local SQLite MLflow store read through ``MlflowClient``, TensorBoard event files read through
TensorBoard's ``EventAccumulator``, the sweep on the shared local Ray (the tracker lives in the
driver, so the trials need neither). The killed-and-resumed driver is a `reliability` test.
"""
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from korth_bench import cli, results, sweep
from korth_bench.spaces import space as spaces
from korth_bench.tracking.mlflow_runs import EPOCH_METRICS, cell_text
from conftest import make_space, processes_mentioning, sigkill, wait_for

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")
from mlflow.tracking import MlflowClient  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

SMOKE = yaml.safe_load((Path(__file__).resolve().parents[1] / "search_spaces" / "smoke.yaml").read_text())
EPOCHS = 3
# the smoke space's 16 trials (its grid and regularizers), on smaller data so they take seconds
SMOKE_GRID = {"grid": SMOKE["grid"], "regularizers": SMOKE["regularizers"],
              "training": {"epochs": EPOCHS, "depth": None}, "data": {"train_size": 128, "test_size": 64},
              "robustness": {"enabled": False}, "resources": {"cpu": 1},
              "search": {"type": "grid", "concurrency": 2}, "checkpoint": {"every": 1, "keep": 1}}


def store(tmp_path, monkeypatch):
    """A fresh SQLite tracking store for this test, named by MLFLOW_TRACKING_URI as a user would."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # artifacts of a SQLite store go to ./mlruns
    return MlflowClient(uri)


def runs_of(client, experiment):
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id]) if found else []
    parents = [r for r in runs if r.data.tags.get("kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("kind") == "trial"]
    return parents, children


def epochs_by_trial(sweep_dir):
    rows = results.read_table(str(sweep_dir), "epochs").to_pylist()
    out = {}
    for row in sorted(rows, key=lambda r: r["epoch"]):
        out.setdefault(row["trial_id"], []).append(row)
    return out


@pytest.mark.ray
def test_smoke_sweep_gives_one_parent_run_16_children_and_event_files(ray_session, tmp_path,
                                                                     monkeypatch, capsys):
    client = store(tmp_path, monkeypatch)
    path = make_space(tmp_path, "smoke16", **SMOKE_GRID,
                      logging={"tensorboard": True, "mlflow": {"experiment": "watch"}})
    storage = tmp_path / "results"
    assert sweep.run(path, storage=str(storage), quiet=True) == 0
    sweep_dir = storage / "smoke16"
    trials = {r["trial_id"]: r for r in results.read_table(str(sweep_dir), "trials").to_pylist()}
    epochs = epochs_by_trial(sweep_dir)
    assert len(trials) == 16 and all(len(rows) == EPOCHS for rows in epochs.values())
    assert "tracking:" not in capsys.readouterr().err

    parents, children = runs_of(client, "watch")
    assert [p.info.run_name for p in parents] == [f"smoke16 @ {storage}"]
    parent = parents[0]
    assert parent.data.tags["space_hash"] == hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    assert len(children) == 16
    assert {c.data.tags["trial_id"] for c in children} == set(trials)
    for child in children:
        row = trials[child.data.tags["trial_id"]]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.run_name == f"{row['model']}{row['depth']}x{row['width']}-{row['regularizer']}-s{row['seed']}-{row['trial_id']}"
        assert (child.data.tags["regularizer"], child.data.tags["seed"], child.data.tags["config_hash"]) == (
            row["regularizer"], str(row["seed"]), row["config_hash"])
        assert child.data.params["depth"] == str(row["depth"]) and child.data.params["lr"] == str(row["lr"])
        assert child.info.status == "FINISHED" and child.data.tags["status"] == "completed"
        assert child.data.metrics["final.test_acc"] == pytest.approx(row["test_acc"])
        for key in ("train_loss", "test_acc", "lr", "epoch_time_s"):
            history = client.get_metric_history(child.info.run_id, key)
            table = epochs[row["trial_id"]]
            assert [m.step for m in history] == list(range(EPOCHS)), key
            assert [m.value for m in history] == pytest.approx([r[key] for r in table]), key

    # TensorBoard: one directory per trial, one scalar per epochs column, read by TensorBoard
    for trial_id, row in trials.items():
        name = next(c.info.run_name for c in children if c.data.tags["trial_id"] == trial_id)
        events = EventAccumulator(str(sweep_dir / "tensorboard" / name))
        events.Reload()
        cfg = spaces.load(path).trials[[t.trial_id for t in spaces.load(path).trials].index(trial_id)]
        prefix = f"{cell_text(cfg)}/{row['regularizer']}"
        assert {f"{prefix}/{k}" for k in EPOCH_METRICS if k != "val_loss" and k != "val_acc"} <= set(
            events.Tags()["scalars"])
        scalars = events.Scalars(f"{prefix}/test_acc")
        assert [s.step for s in scalars] == list(range(EPOCHS))
        assert [s.value for s in scalars] == pytest.approx([r["test_acc"] for r in epochs[trial_id]], rel=1e-6)

    # the report on the parent run: files as artifacts, verdicts as tags
    assert cli.main(["report", str(sweep_dir), "--out", str(tmp_path / "report"), "--mlflow"]) == 0
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/leaderboard.html", "report/leaderboard.json", "report/leaderboard.md"} <= artifacts
    assert any(a.endswith(".svg") for a in artifacts)
    tags = client.get_run(parent.info.run_id).data.tags
    # one tag per verdict of the report, "verdict.<claim>" (the claim without its comma), whose
    # value is that verdict: no verdict missing, none extra, none renamed
    import json
    document = json.loads((tmp_path / "report" / "leaderboard.json").read_text())
    expected = {f"verdict.{v['claim'].replace(',', '')}": v["verdict"] for v in document["verdicts"]}
    assert len(expected) == len(document["verdicts"])  # distinct tags
    assert {"verdict.1", "verdict.2", "verdict.2 relaxed", "verdict.3"} <= set(expected), expected
    assert {k: v for k, v in tags.items() if k.startswith("verdict.")} == expected, tags


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.ray
def test_trackers_catch_up_from_the_tables_when_a_driver_stopped_before_logging(
        ray_session, tmp_path, monkeypatch):
    # planted: trial A resumes from its epoch-1 checkpoint (its trials row and newest checkpoint
    # gone, as after a killed driver), so it reports epoch 2 only; trial B is final in the tables
    # while its MLflow run holds epoch 0 and is still RUNNING (its driver died before the rest)
    from korth_bench.sweep.context import sweep_context
    from korth_bench.tracking.mlflow_runs import MlflowRuns

    client = store(tmp_path, monkeypatch)
    sections = {**SMOKE_GRID, "grid": {"seed": [0, 1]}, "regularizers": ["none"],
                "checkpoint": {"every": 1, "keep": 2}}
    path = make_space(tmp_path, "catchup", **sections)
    storage = tmp_path / "results"
    assert sweep.run(path, storage=str(storage), quiet=True) == 0
    sweep_dir = storage / "catchup"
    space = spaces.load(path)
    epochs = epochs_by_trial(sweep_dir)
    trial_a, trial_b = space.trials
    (sweep_dir / "trials" / f"{trial_a.trial_id}.parquet").unlink()
    for newest in (sweep_dir / "checkpoints" / trial_a.trial_id).glob(f"epoch_{EPOCHS - 1:06d}.*"):
        newest.unlink()
    path = make_space(tmp_path, "catchup", **sections,
                      logging={"tensorboard": True, "mlflow": {"experiment": "catch"}})
    context = sweep_context(spaces.load(path), str(storage), None)
    MlflowRuns("catch", "catchup", parent=True, sweep_uri=context.sweep_uri).log_epoch(
        trial_b, epochs[trial_b.trial_id][0])

    assert sweep.run(path, storage=str(storage), quiet=True) == 0
    parents, children = runs_of(client, "catch")
    assert len(parents) == 1 and len(children) == 2
    for child in children:
        trial_id = child.data.tags["trial_id"]
        history = sorted(client.get_metric_history(child.info.run_id, "test_acc"), key=lambda m: m.timestamp)
        assert sorted({m.step for m in history}) == list(range(EPOCHS)), trial_id
        last = {m.step: m.value for m in history}
        assert [last[e] for e in range(EPOCHS)] == pytest.approx(
            [r["test_acc"] for r in epochs_by_trial(sweep_dir)[trial_id]])
        assert child.info.status == "FINISHED" and child.data.tags["status"] == "completed"
        assert "final.test_acc" in child.data.metrics
    for cfg in space.trials:
        events = EventAccumulator(str(sweep_dir / "tensorboard" / cfg.name))
        events.Reload()
        steps = [e.step for e in events.Scalars(f"{cell_text(cfg)}/none/test_acc")]
        assert sorted(set(steps)) == list(range(EPOCHS)) and len(steps) == EPOCHS, (cfg.name, steps)


@pytest.mark.ray
def test_an_unreachable_tracker_leaves_the_tables_complete_and_says_so_once_per_trial(
        ray_session, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    path = make_space(tmp_path, "down", grid={"seed": [0, 1]}, logging={"mlflow": True},
                      search={"type": "grid", "concurrency": 2})
    storage = tmp_path / "results"
    assert sweep.run(path, storage=str(storage), quiet=True) == 0
    trials = results.read_table(str(storage / "down"), "trials").to_pylist()
    assert sorted(r["status"] for r in trials) == ["completed", "completed"]
    assert all(len(rows) == 2 for rows in epochs_by_trial(storage / "down").values())
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("tracking:")]
    assert lines[0].startswith("tracking: MLflow runs left open by an earlier driver not checked")
    lines = lines[1:]  # then one line per trial
    assert len(lines) == 2, lines
    for row in trials:
        assert sum(row["trial_id"] in line for line in lines) == 1, lines
    assert all("MLflow failed, its tables go on without it" in line for line in lines)


def test_report_verdicts_are_tagged_exactly_on_the_sweeps_parent_run(tmp_path, monkeypatch):
    """log_report: one tag `verdict.<claim>` per verdict of the report (the claim without its
    comma), whose value is that verdict, on the parent run of the report's sweep (the smoke
    sweep's verdicts are all 'not tested', so here each claim has its own verdict)."""
    import json

    from korth_bench.tracking.mlflow_runs import MlflowRuns, log_report

    client = store(tmp_path, monkeypatch)
    parent = MlflowRuns("tags", "tagged", parent=True, sweep_uri=str(tmp_path / "tagged")).parent_id()
    verdicts = {"1": "supported", "1, tuned settings": "inconclusive", "2": "no trend in the tested range",
                "2, relaxed": "contradicted", "4, cs": "not tested"}
    document = tmp_path / "leaderboard.json"
    document.write_text(json.dumps({"sweeps": ["tagged"], "sources": [str(tmp_path / "tagged")], "verdicts": [
        {"claim": claim, "verdict": verdict} for claim, verdict in verdicts.items()]}))
    assert log_report({"json": str(document)}) == [parent]
    tags = client.get_run(parent).data.tags
    assert {k: v for k, v in tags.items() if k.startswith("verdict.")} == {
        "verdict.1": "supported", "verdict.1 tuned settings": "inconclusive",
        "verdict.2": "no trend in the tested range", "verdict.2 relaxed": "contradicted",
        "verdict.4 cs": "not tested"}
    assert [a.path for a in client.list_artifacts(parent, "report")] == ["report/leaderboard.json"]


def test_logging_mlflow_without_the_package_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    path = make_space(tmp_path, "nomlflow", logging={"mlflow": {"experiment": "x"}})
    assert cli.main(["run", path, "--storage", str(tmp_path / "results")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["korth-bench: error: " + f"{path}: logging.mlflow: the mlflow package is not "
                     "installed; pip install 'korth-bench[tracking]'"], lines
    assert not (tmp_path / "results").exists()


def test_a_tracking_uri_with_a_password_is_refused_without_printing_it(tmp_path, capsys):
    path = make_space(tmp_path, "pw", logging={"mlflow": {"tracking_uri": "https://me:hunter2@mlflow.example"}})
    assert cli.main(["run", path, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "MLFLOW_TRACKING_PASSWORD" in err and "hunter2" not in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------- a killed driver
@pytest.mark.reliability
def test_killed_and_resumed_driver_leaves_16_child_runs_and_no_credential(tmp_path, ray_temp_dir):
    """SIGKILL `korth-bench run` (and its Ray) mid-sweep, `--resume`: still one parent and 16
    child runs, each with every epoch; the MLflow password is in no table, Tune state or log."""
    password = secrets.token_hex(16)
    path = make_space(tmp_path, "killed16", **{**SMOKE_GRID, "training": {"epochs": 6, "depth": None},
                                               "data": {"train_size": 512}},
                      logging={"tensorboard": True, "mlflow": {"experiment": "killed"}})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "RAY_TMPDIR": ray_temp_dir, "RAY_AUTH_MODE": "disabled",
           "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1", "MLFLOW_TRACKING_URI": uri,
           "MLFLOW_TRACKING_USERNAME": "korth", "MLFLOW_TRACKING_PASSWORD": password}
    storage = tmp_path / "results"
    log = tmp_path / "driver.log"
    command = [str(Path(sys.executable).parent / "korth-bench"), "run", path, "--storage",
               str(storage), "--quiet"]
    driver = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=open(log, "a"),
                              stderr=subprocess.STDOUT)
    client = MlflowClient(uri)
    wait_for(lambda: len(runs_of(client, "killed")[1]) >= 3, 600, "three child runs", driver)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=60)
    sigkill(processes_mentioning(ray_temp_dir))
    wait_for(lambda: not processes_mentioning(ray_temp_dir), 60, "the driver's Ray to go")

    resumed = subprocess.run([*command, "--resume"], env=env, cwd=tmp_path, stdout=open(log, "a"),
                             stderr=subprocess.STDOUT, timeout=900)
    assert resumed.returncode == 0, log.read_text()[-3000:]
    parents, children = runs_of(client, "killed")
    assert len(parents) == 1 and len(children) == 16
    assert len({c.data.tags["trial_id"] for c in children}) == 16
    epochs = epochs_by_trial(storage / "killed16")
    for child in children:
        history = client.get_metric_history(child.info.run_id, "test_acc")
        assert sorted({m.step for m in history}) == list(range(6))
        last = {m.step: m.value for m in sorted(history, key=lambda m: m.timestamp)}
        assert [last[e] for e in range(6)] == pytest.approx(
            [r["test_acc"] for r in epochs[child.data.tags["trial_id"]]])
    needle = password.encode()
    for root in (storage, log, Path(ray_temp_dir)):
        for file in [root] if root.is_file() else root.rglob("*"):
            if file.is_file() and not file.is_socket():
                try:
                    assert needle not in file.read_bytes(), str(file)
                except OSError:
                    continue


def test_report_mlflow_touches_only_the_parent_run_of_the_sweep_it_reports(tmp_path, monkeypatch):
    """Two sweeps of one name in two storages: the report of one logs its files and verdicts to
    that sweep's parent run alone, matched by the storage URI, never by the name."""
    pytest.importorskip("mlflow")
    from korth_bench.report import documents
    from korth_bench.tracking.mlflow_runs import MlflowRuns, log_report
    from test_analysis import make_tables

    client = store(tmp_path, monkeypatch)
    frames = make_tables(depths=(8, 14, 20))
    name = frames["trials"]["sweep"].iloc[0]
    reported, other = tmp_path / "a" / name, tmp_path / "b" / name
    parents = {str(where): MlflowRuns("watch", name, parent=True,
                                      sweep_uri=str(where)).parent_id()
               for where in (reported, other)}
    monkeypatch.chdir(tmp_path)  # the report records its source as given: a relative path
    written = documents.build_report_from_frames(frames, str(tmp_path / "report"),
                                                 sources=[os.path.join("a", name)])
    assert log_report(written) == [parents[str(reported)]]
    touched, untouched = (client.get_run(parents[str(where)]) for where in (reported, other))
    with open(written["json"]) as handle:
        verdicts = {f"verdict.{v['claim'].replace(',', '')}": v["verdict"]
                    for v in json.load(handle)["verdicts"]}
    assert {k: v for k, v in touched.data.tags.items() if k.startswith("verdict.")} == verdicts
    assert not [k for k in untouched.data.tags if k.startswith("verdict.")]
    assert client.list_artifacts(parents[str(reported)], "report")
    assert not client.list_artifacts(parents[str(other)])
    assert touched.info.run_name == f"{name} @ {tmp_path / 'a'}"
    assert untouched.info.run_name == f"{name} @ {tmp_path / 'b'}"


# ---------------------------------------------------------------------- a tracked run of a final sweep
@pytest.mark.ray
def test_a_tracked_run_of_a_final_sweep_backfills_the_trackers_from_the_tables(
        ray_session, tmp_path, monkeypatch, capsys):
    """`make demo`, then the README's tracking command: every trial is final, so nothing runs,
    and the trackers are filled from the tables (the parent gets its children, TensorBoard its
    event files); run again, it says in one line that nothing was logged and why. The experiment
    opens on MLflow 3's runs view (mlflow.experimentKind)."""
    client = store(tmp_path, monkeypatch)
    sections = {**SMOKE_GRID, "grid": {"seed": [0]}, "regularizers": ["none", "so"]}
    path = make_space(tmp_path, "final", **{k: v for k, v in sections.items() if k != "regularizers"},
                      regularizers={"none": {}, "so": {"coefficient": 1e-3}})
    storage = tmp_path / "results"
    assert sweep.run(path, storage=str(storage), quiet=True) == 0  # untracked
    ids = set(results.trial_statuses(str(storage / "final")))
    assert len(ids) == 2
    capsys.readouterr()

    assert sweep.run(path, storage=str(storage), quiet=True, tensorboard=True, mlflow=True) == 0
    out = capsys.readouterr().out
    assert "nothing to run" in out
    line = [l for l in out.splitlines() if l.startswith("tracking:")]
    assert line == [f"tracking: logged 2 final trial(s) from the tables to MLflow run 'final @ "
                    f"{storage}' in experiment 'korth-bench' and TensorBoard at "
                    f"{storage / 'final' / 'tensorboard'}"], out
    parents, children = runs_of(client, "korth-bench")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert {c.data.tags["trial_id"] for c in children} == ids
    assert all(c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for c in children)
    assert {c.data.tags["status"] for c in children} == {"completed"}
    for child in children:
        assert [m.step for m in client.get_metric_history(child.info.run_id, "test_acc")] == list(range(EPOCHS))
    experiment = client.get_experiment_by_name("korth-bench")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    event_dirs = sorted(p.name for p in (storage / "final" / "tensorboard").iterdir())
    assert len(event_dirs) == 2
    for directory in (storage / "final" / "tensorboard").iterdir():
        events = EventAccumulator(str(directory), size_guidance={"scalars": 0})
        events.Reload()
        tags = [t for t in events.Tags()["scalars"] if t.endswith("/test_acc")]
        assert len(tags) == 1 and len(events.Scalars(tags[0])) == EPOCHS

    assert sweep.run(path, storage=str(storage), quiet=True, tensorboard=True, mlflow=True) == 0
    out = capsys.readouterr().out
    assert [l for l in out.splitlines() if l.startswith("tracking:")] == [
        f"tracking: nothing logged: all 2 final trial(s) are already in MLflow run 'final @ "
        f"{storage}' in experiment 'korth-bench' and TensorBoard at "
        f"{storage / 'final' / 'tensorboard'}"], out
    assert len(runs_of(client, "korth-bench")[1]) == 2  # no second child
