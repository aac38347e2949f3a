"""Sweeps survive a lost worker node, a killed driver and bad clients, and lose nothing.

Every test here runs real Ray processes (`ray start` nodes or the driver's own local Ray) with
their files in a short temp dir, stops them by PID (never `ray stop`), keeps results and
checkpoints on a SeaweedFS S3 server (conftest.s3_server) as on a real cluster, and reads the
Parquet files back to check that every key is there exactly once. Slow: `make test-reliability`.
"""
import os
import secrets
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from ray.tune import ExperimentAnalysis

from korth_bench import results
from korth_bench.spaces import space as spaces
from korth_bench.sweep.checkpoints import CHECKPOINTS_DIR, TrialCheckpoints
from korth_bench.sweep.tuner import TUNE_DIR
from conftest import (alive_nodes, descendants, free_port, make_space, processes_mentioning,
                      sigkill, wait_for, wait_for_port)

pytestmark = pytest.mark.reliability
BIN = Path(sys.executable).parent
EPOCHS = 12
# long enough (about 0.5 s an epoch on one core) that a kill lands mid-trial
SLOW = {"training": {"epochs": EPOCHS}, "data": {"train_size": 1024},
        "grid": {"seed": [0, 1]}, "regularizers": {"none": {}, "so": {"coefficient": 1e-3}},
        "resources": {"cpu": 1}, "checkpoint": {"every": 1, "keep": 2}}


# ---------------------------------------------------------------------- helpers
def environment(ray_dir, **extra):
    """The environment of a `korth-bench` or `ray` process: Ray's files under ``ray_dir``."""
    env = {**os.environ, "RAY_TMPDIR": ray_dir, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1",
           "RAY_USAGE_STATS_ENABLED": "0", **extra}
    return {k: v for k, v in env.items() if v is not None}


def korth_bench(*args, env, log):
    """Start `korth-bench run ...`; its output goes to the file ``log``."""
    return subprocess.Popen([str(BIN / "korth-bench"), "run", *map(str, args), "--quiet"], env=env,
                            stdout=open(log, "a"), stderr=subprocess.STDOUT)


def start_node(temp_dir, env, log, *args):
    """`ray start --block` on 127.0.0.1 with its own temp dir; returns the Popen."""
    head = ["--include-dashboard=false"] if "--head" in args else []
    return subprocess.Popen([str(BIN / "ray"), "start", "--block", "--node-ip-address=127.0.0.1",
                             f"--temp-dir={temp_dir}", *head, *args],
                            env=env, stdout=open(log, "a"), stderr=subprocess.STDOUT)


def stop_tree(process):
    """SIGKILL a process and everything below it (gcs_server and raylet ignore SIGTERM)."""
    pids = descendants(process.pid)
    sigkill(pids)
    process.wait(timeout=60)
    wait_for(lambda: not any(os.path.exists(f"/proc/{pid}") and _running(pid) for pid in pids),
             60, "the killed processes to go")


def _running(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def s3_location(endpoint, name):
    """A fresh ``s3://korth/<unique>`` storage URI, its file system and the sweep's path in it."""
    prefix = f"korth/{name}-{uuid.uuid4().hex[:8]}"
    filesystem, _ = results.resolve(f"s3://{prefix}", endpoint)
    return f"s3://{prefix}", filesystem, f"{prefix}/{name}"


def raw_table(filesystem, root, table):
    """Every file of a table as written (no de-duplication): (file names, concatenated rows)."""
    infos = [i for i in filesystem.get_file_info(pafs.FileSelector(f"{root}/{table}", allow_not_found=True))
             if i.type == pafs.FileType.File]
    parts = []
    for info in infos:
        with filesystem.open_input_file(info.path) as handle:
            parts.append(pq.read_table(handle))
    rows = pa.concat_tables(parts, promote_options="permissive").to_pylist() if parts else []
    return sorted(i.base_name for i in infos), rows


def epochs_by_trial(filesystem, root):
    rows = results.read_table(root, "epochs", filesystem).to_pylist()
    by_trial = {}
    for row in sorted(rows, key=lambda r: r["epoch"]):
        by_trial.setdefault(row["trial_id"], []).append(row)
    return by_trial


def assert_complete(filesystem, root, space):
    """Every table holds each key exactly once, in one file per trial; every trial completed."""
    ids = sorted(cfg.trial_id for cfg in space.trials)
    for table in results.TABLES:
        names, rows = raw_table(filesystem, root, table)
        assert names == [f"{i}.parquet" for i in ids], (table, names)  # nothing else, no temp keys
        keys = [tuple(row[k] for k in results.KEYS[table]) for row in rows]
        assert len(keys) == len(set(keys)), f"{table}: duplicated keys"
        assert {k[0] for k in keys} == set(ids), table
        if table == "epochs":
            assert sorted(keys) == [(i, e) for i in ids for e in range(EPOCHS)]
        if table == "trials":
            assert {r["status"] for r in rows} == {"completed"}, [(r["trial_id"], r["status"], r["error"]) for r in rows]
            assert {r["epochs_completed"] for r in rows} == {EPOCHS}


def checkpoint_epochs(filesystem, root):
    """trial_id -> the epochs of its checkpoints on storage that have a manifest."""
    trial_dirs = filesystem.get_file_info(pafs.FileSelector(f"{root}/{CHECKPOINTS_DIR}", allow_not_found=True))
    return {info.base_name: set(TrialCheckpoints(filesystem, info.path, keep=1).complete())
            for info in trial_dirs}


def tune_recorded_checkpoints(filesystem, root):
    """The checkpoints Tune's saved experiment state names as each trial's latest."""
    analysis = ExperimentAnalysis(f"{root}/{TUNE_DIR}", storage_filesystem=filesystem)
    return [trial.checkpoint for trial in analysis.trials if trial.checkpoint is not None]


def kept_epochs(before, after):
    """How many leading epoch rows the finished trial kept unchanged from before the kill
    (an epoch computed again has a new epoch_time_s)."""
    kept = 0
    for old, new in zip(before, after):
        if (old["epoch"], old["epoch_time_s"]) != (new["epoch"], new["epoch_time_s"]):
            break
        kept += 1
    return kept


def assert_resumed_from_checkpoints(before, after, checkpoints):
    """Interrupted trials restarted from one of their checkpoints, not from epoch 0, and kept
    every epoch up to it; returns trial_id -> epochs recomputed."""
    redone = {}
    for trial_id, rows in before.items():
        if len(rows) == EPOCHS:
            continue
        kept = kept_epochs(rows, after[trial_id])
        assert kept - 1 in checkpoints.get(trial_id, ()), (trial_id, kept, checkpoints.get(trial_id))
        assert kept >= 1, trial_id
        redone[trial_id] = len(rows) - kept
    return redone


def assert_secret_absent(secret, filesystem, root, paths):
    """No object under the sweep on S3 and no file under ``paths`` (logs, Ray's session files)
    contains the storage secret."""
    needle = secret.encode()
    for info in filesystem.get_file_info(pafs.FileSelector(root, recursive=True)):
        if info.type == pafs.FileType.File:
            with filesystem.open_input_file(info.path) as handle:
                assert needle not in handle.read(), info.path
    for path in paths:
        for file in [Path(path)] if Path(path).is_file() else Path(path).rglob("*"):
            if file.is_file() and not file.is_socket():
                try:
                    assert needle not in file.read_bytes(), str(file)
                except OSError:
                    continue


def kill_driver(driver, ray_temp_dir):
    """SIGKILL `korth-bench run` and its local Ray (raylet, gcs_server, trial workers)."""
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=60)
    sigkill(processes_mentioning(ray_temp_dir))
    wait_for(lambda: not processes_mentioning(ray_temp_dir), 60, "the driver's Ray to go")


def running_epochs(filesystem, root, at_least, trials):
    """Whether ``trials`` epochs files each hold at least ``at_least`` rows (and fewer than all)."""
    counts = [len(rows) for rows in epochs_by_trial(filesystem, root).values()]
    return sum(at_least <= n < EPOCHS for n in counts) >= trials


# ---------------------------------------------------------------------- the tests
def test_killed_driver_resumes_from_s3_without_lost_or_recomputed_epochs(s3_server, ray_temp_dir, tmp_path):
    """SIGKILL `korth-bench run` (and its local Ray) mid-sweep; `--resume` restarts the
    interrupted trials from their own newest checkpoints on S3 and finishes."""
    path = make_space(tmp_path, "killed", **SLOW, search={"type": "grid", "concurrency": 2})
    space = spaces.load(path)
    storage, filesystem, root = s3_location(s3_server, "killed")
    env = environment(ray_temp_dir)
    log = tmp_path / "driver.log"
    args = [path, "--storage", storage, "--storage-endpoint", s3_server]
    driver = korth_bench(*args, env=env, log=log)
    wait_for(lambda: running_epochs(filesystem, root, 3, 2), 300, "two trials in their 3rd epoch", driver)
    kill_driver(driver, ray_temp_dir)
    before = epochs_by_trial(filesystem, root)
    checkpoints = checkpoint_epochs(filesystem, root)
    unfinished = [i for i, rows in before.items() if len(rows) < EPOCHS]
    assert unfinished and len(results.trial_statuses(root, filesystem)) < len(space.trials)

    resumed = korth_bench(*args, "--resume", env=env, log=log)
    assert resumed.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert_complete(filesystem, root, space)
    after = epochs_by_trial(filesystem, root)
    redone = assert_resumed_from_checkpoints(before, after, checkpoints)
    # a trial checkpoints each epoch before writing its row: no written epoch is computed again
    assert all(n <= SLOW["checkpoint"]["every"] for n in redone.values()), redone
    assert_secret_absent(os.environ["AWS_SECRET_ACCESS_KEY"], filesystem, root, [log, ray_temp_dir])

    rerun = subprocess.run([str(BIN / "korth-bench"), "run", *args, "--quiet"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0 and "nothing to run" in rerun.stdout, rerun.stdout + rerun.stderr


def test_resume_when_the_checkpoint_tunes_state_names_is_gone(s3_server, ray_temp_dir, tmp_path):
    """Ray's race (ray-project/ray #27790, #30073), planted: the driver is SIGKILLed mid-sweep
    and every checkpoint that Tune's saved experiment state names as a trial's latest is
    deleted from S3 (as eviction does when that state lags the storage). `--resume` completes
    every trial, no trial ends `error`, every table key is there once, and each interrupted
    trial recomputes at most `checkpoint.every` of the epochs it had written."""
    path = make_space(tmp_path, "race", **SLOW, search={"type": "grid", "concurrency": 2})
    space = spaces.load(path)
    storage, filesystem, root = s3_location(s3_server, "race")
    env = environment(ray_temp_dir)
    log = tmp_path / "driver.log"
    args = [path, "--storage", storage, "--storage-endpoint", s3_server]
    driver = korth_bench(*args, env=env, log=log)
    wait_for(lambda: running_epochs(filesystem, root, 3, 2), 300, "two trials in their 3rd epoch", driver)
    kill_driver(driver, ray_temp_dir)
    for checkpoint in tune_recorded_checkpoints(filesystem, root):
        checkpoint.filesystem.delete_dir(checkpoint.path)
    before = epochs_by_trial(filesystem, root)
    assert any(len(rows) < EPOCHS for rows in before.values())

    resumed = korth_bench(*args, "--resume", env=env, log=log)
    assert resumed.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert_complete(filesystem, root, space)
    after = epochs_by_trial(filesystem, root)
    redone = {trial_id: len(rows) - kept_epochs(rows, after[trial_id])
              for trial_id, rows in before.items() if len(rows) < EPOCHS}
    assert all(n <= SLOW["checkpoint"]["every"] for n in redone.values()), redone


def test_lost_worker_node_trials_retry_from_their_checkpoints(s3_server, ray_temp_dir, tmp_path):
    """A head and a worker node (`ray start`, each its own temp dir); the worker node's
    processes are SIGKILLed mid-trial; its trials are retried on the head from their last
    checkpoint on S3 and every trial completes once."""
    path = make_space(tmp_path, "nodeloss", **{**SLOW, "failure": {"max_retries": 3}},
                      search={"type": "grid", "concurrency": 4})
    space = spaces.load(path)
    storage, filesystem, root = s3_location(s3_server, "nodeloss")
    port = free_port()
    address = f"127.0.0.1:{port}"
    # as the README's recipe says, each node holds the storage credentials in its environment
    node_env = environment(ray_temp_dir, RAY_health_check_period_ms="1000",
                           RAY_health_check_failure_threshold="3")
    head = start_node(f"{ray_temp_dir}/h", node_env, tmp_path / "head.log", "--head", f"--port={port}",
                      "--num-cpus=1")
    wait_for_port(port, head)
    worker = start_node(f"{ray_temp_dir}/w", node_env, tmp_path / "worker.log", f"--address={address}",
                        "--num-cpus=3")
    wait_for(lambda: alive_nodes(address, node_env) == 2, 120, "the worker node to join", worker)

    log = tmp_path / "driver.log"
    driver = korth_bench(path, "--address", address, "--storage", storage, "--storage-endpoint",
                         s3_server, env=environment(ray_temp_dir), log=log)
    # the head holds one CPU, so at least two trials in their 3rd epoch run on the worker
    wait_for(lambda: running_epochs(filesystem, root, 3, 3), 300, "three trials in their 3rd epoch", driver)
    stop_tree(worker)
    before = epochs_by_trial(filesystem, root)
    checkpoints = checkpoint_epochs(filesystem, root)

    assert driver.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert_complete(filesystem, root, space)
    redone = assert_resumed_from_checkpoints(before, epochs_by_trial(filesystem, root), checkpoints)
    assert len(redone) >= 2  # the worker's trials were interrupted and retried
    assert_secret_absent(os.environ["AWS_SECRET_ACCESS_KEY"], filesystem, root,
                         [log, tmp_path / "head.log", ray_temp_dir])
    stop_tree(head)


def test_token_authentication_refuses_clients_without_the_token(ray_temp_dir, tmp_path):
    """A head node with RAY_AUTH_MODE=token: a client with a wrong token or none is refused in
    one line naming the token variables; one with the token runs the sweep."""
    token, wrong = Path(ray_temp_dir) / "token", Path(ray_temp_dir) / "wrong"
    token.write_text(secrets.token_hex(32))
    wrong.write_text(secrets.token_hex(32))
    port = free_port()
    address = f"127.0.0.1:{port}"
    head = start_node(f"{ray_temp_dir}/h", environment(ray_temp_dir, RAY_AUTH_MODE="token",
                                                       RAY_AUTH_TOKEN_PATH=str(token)),
                      tmp_path / "head.log", "--head", f"--port={port}", "--num-cpus=2")
    wait_for_port(port, head)
    path = make_space(tmp_path, "authed", grid={"seed": [0]}, regularizers=["none"])
    storage = tmp_path / "results"

    def run(**auth):
        return subprocess.run([str(BIN / "korth-bench"), "run", path, "--address", address,
                               "--storage", str(storage), "--quiet"],
                              env=environment(ray_temp_dir, **auth), capture_output=True, text=True,
                              timeout=300)

    for auth in ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(wrong)},
                 {"RAY_AUTH_MODE": "disabled"}):
        refused = run(**auth)
        lines = refused.stderr.strip().splitlines()
        assert refused.returncode == 2 and len(lines) == 1, refused.stdout + refused.stderr
        assert "InvalidAuthToken" in lines[0] and "RAY_AUTH_TOKEN_PATH" in lines[0]
        assert "RAY_AUTH_MODE=token" in lines[0]
        assert not storage.exists()

    allowed = run(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert set(results.trial_statuses(str(storage / "authed")).values()) == {"completed"}
    stop_tree(head)


def test_a_diverging_trial_is_recorded_and_the_sweep_goes_on(ray_session, tmp_path, capsys):
    """lr 1e6 diverges: its trials row says so and keeps its epoch rows; the other trial
    completes; a re-run runs nothing; an added seed runs only the new trials."""
    from korth_bench import sweep

    sections = {"grid": {"seed": [0], "lr": [0.05, 1e6]}, "regularizers": ["none"],
                "training": {"lr": None, "epochs": 3}, "search": {"type": "grid", "concurrency": 2}}
    path = make_space(tmp_path, "diverge", **sections)
    storage = tmp_path / "results"
    sweep_dir = str(storage / "diverge")
    assert sweep.run(path, storage=str(storage), quiet=True) == 0
    trials = {r["lr"]: r for r in results.read_table(sweep_dir, "trials").to_pylist()}
    assert trials[1e6]["status"] == "diverged" and "non-finite" in trials[1e6]["error"]
    assert trials[0.05]["status"] == "completed" and trials[0.05]["epochs_completed"] == 3
    epochs = results.read_table(sweep_dir, "epochs").to_pylist()
    diverged = [r for r in epochs if r["trial_id"] == trials[1e6]["trial_id"]]
    assert diverged and not all(map(_finite, (r["train_loss"] for r in diverged[-1:])))

    capsys.readouterr()
    assert sweep.run(path, storage=str(storage), quiet=True) == 0
    assert "nothing to run" in capsys.readouterr().out
    make_space(tmp_path, "diverge", **{**sections, "grid": {"seed": [0, 1], "lr": [0.05, 1e6]}})
    assert sweep.run(path, storage=str(storage), quiet=True) == 0
    assert "2 of 4 trials already have final rows" in capsys.readouterr().out
    again = {r["trial_id"]: r for r in results.read_table(sweep_dir, "trials").to_pylist()}
    assert len(again) == 4 and {r["seed"] for r in again.values()} == {0, 1}
    for row in trials.values():  # the first two were not run again
        assert again[row["trial_id"]]["finished_at"] == row["finished_at"]


def _finite(value):
    return value is not None and value == value and abs(value) != float("inf")
