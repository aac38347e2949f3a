"""Storage faults and the storage estimate (fast; the sweeps that hit a full disk and an S3
outage are in test_reliability.py).

Only real storage faults are classified, found also inside Ray's and Tune's wrappers; anything
else stays a bug. The estimate of what a sweep writes matches a real trial's checkpoint, and
`run` refuses, in one line and before anything is written, local storage that is clearly short.
"""
import errno
import functools
import os
import socket

import pyarrow.fs as pafs
import pytest

from korth_bench import cli, faults, results
from korth_bench.errors import ConfigError
from korth_bench.faults import NO_SPACE, PERMISSION, QUOTA, READ_ONLY, UNREACHABLE, storage_fault
from korth_bench.spaces.dryrun import checkpoint_bytes, storage_estimate
from korth_bench.spaces.space import load
from korth_bench.trial.checkpoint import CHECKPOINT_FILE
from korth_bench.trial.loop import train_and_measure
from conftest import make_space


def full_device_error():
    """A real ENOSPC from pyarrow: /dev/full takes no byte."""
    try:
        with pafs.LocalFileSystem().open_output_stream("/dev/full") as out:
            out.write(b"x" * 65536)
    except OSError as err:
        return err
    pytest.skip("/dev/full accepted a write")


@functools.lru_cache(maxsize=None)
def unreachable_store_error():
    """A real error of pyarrow's S3 client after its retries: nothing listens on the port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    filesystem, _ = results.resolve("s3://korth/x", f"http://127.0.0.1:{port}")
    try:
        filesystem.get_file_info("korth/x/a.parquet")
    except OSError as err:
        return err
    pytest.fail("a closed port answered")


def test_storage_faults_are_found_in_their_wrappers_and_bugs_are_not():
    from ray.exceptions import RayTaskError
    from ray.tune.error import TuneError

    full = full_device_error()
    assert storage_fault(full).kind == NO_SPACE and "No space left on device" in str(full)
    unreachable = unreachable_store_error()
    assert storage_fault(unreachable).kind == UNREACHABLE
    # a trial's error as Tune's driver holds it, and a driver error raised while handling one
    wrapped = RayTaskError("ImplicitFunc.train", "Traceback ...", full)
    assert storage_fault(wrapped).kind == NO_SPACE
    assert storage_fault(wrapped.as_instanceof_cause()).kind == NO_SPACE
    try:
        try:
            raise wrapped
        except RayTaskError as err:
            raise TuneError("The Ray Tune run failed") from err
    except TuneError as err:
        assert storage_fault(err).kind == NO_SPACE
    for number, kind in ((errno.EDQUOT, QUOTA), (errno.EROFS, READ_ONLY), (errno.EACCES, PERMISSION)):
        found = storage_fault(OSError(number, os.strerror(number), "/storage/sweep/epochs/x.parquet"))
        assert (found.kind, found.path) == (kind, "/storage/sweep/epochs/x.parquet")
    pyarrow_style = OSError("Failed to open local file '/storage/sweep/x'. Detail: [errno 30] "
                            "Read-only file system")
    assert storage_fault(pyarrow_style).path == "/storage/sweep/x"
    denied = OSError("When uploading object with key 'x' in bucket 'korth': AWS Error "
                     "ACCESS_DENIED during PutObject operation: Access Denied")
    assert storage_fault(denied).kind == PERMISSION
    try:  # bad input that names an unreachable store (before a sweep starts) stays bad input
        try:
            raise unreachable
        except OSError:
            raise ConfigError("--storage s3://korth/x: the store did not answer") from None
    except ConfigError as err:
        assert storage_fault(err) is None
    # not storage faults: a bug, a missing file, os.kill's EPERM (no path), a wrapped bug
    for error in (ValueError("cannot reindex on an axis with duplicate labels"),
                  FileNotFoundError(errno.ENOENT, "No such file or directory", "/x"),
                  PermissionError(errno.EPERM, "Operation not permitted"),
                  RayTaskError("ImplicitFunc.train", "Traceback ...", KeyError("epoch")),
                  OSError("AWS Error NO_SUCH_BUCKET during HeadBucket operation")):
        assert storage_fault(error) is None, error


def test_the_fault_text_names_the_storage_its_free_space_and_where_else(tmp_path):
    fault = storage_fault(OSError(errno.ENOSPC, "No space left on device"))
    text = faults.fault_text(fault, str(tmp_path / "sweep"), local=True)
    assert text.startswith(f"{tmp_path / 'sweep'}: no space left on the device (")
    assert " free of " in text
    elsewhere = storage_fault(OSError(errno.ENOSPC, "No space left on device", "/elsewhere/x"))
    assert faults.fault_text(elsewhere, str(tmp_path), local=True).endswith("at /elsewhere/x")
    gone = storage_fault(unreachable_store_error())
    assert faults.fault_text(gone, "s3://korth/sweep", local=False, retry_s=102.4) == (
        "s3://korth/sweep: the object store is unreachable after the client's retries (102 s)")
    assert results.s3_retry_budget(100) == (12, pytest.approx(102.375))


def test_the_checkpoint_estimate_matches_a_real_checkpoint(tmp_path):
    """The estimate of one checkpoint against the state.pt a real (tiny) trial writes."""
    space = load(make_space(tmp_path, "sized", grid={"seed": [0]}, regularizers={"so": {"coefficient": 1e-3}}))
    cfg = space.trials[0]
    sizes = []

    def report(row, checkpoint_dir):
        if checkpoint_dir:
            sizes.append(os.path.getsize(os.path.join(checkpoint_dir, CHECKPOINT_FILE)))

    train_and_measure(cfg.replace(robustness=False), report=report)
    assert sizes and abs(checkpoint_bytes(cfg) - sizes[-1]) < 0.1 * sizes[-1], (checkpoint_bytes(cfg), sizes)
    estimate = storage_estimate(space)
    assert estimate.checkpoints == (space.checkpoint_keep * 1 + 1) * checkpoint_bytes(cfg)


def test_run_refuses_local_storage_clearly_short_of_space_and_dry_run_prints_the_estimate(tmp_path, capsys):
    """A space whose checkpoints alone need twice the free space: one line naming --storage, the
    free space and the need, exit code 2, nothing written, Ray never started."""
    storage = tmp_path / "results"
    probe = load(make_space(tmp_path, "huge", grid={"seed": [0]}, regularizers=["none"],
                            training={"model": "wrn", "depth": 28, "width": 10}))
    free = faults.free_space(str(tmp_path))[0]
    keep = max(1, -(-2 * free // checkpoint_bytes(probe.trials[0])))
    path = make_space(tmp_path, "huge", grid={"seed": [0]}, regularizers=["none"],
                      training={"model": "wrn", "depth": 28, "width": 10},
                      checkpoint={"every": 1, "keep": int(keep)})
    assert cli.main(["run", path, "--dry-run"]) == 0
    shown = [line for line in capsys.readouterr().out.splitlines() if line.startswith("storage estimate")]
    assert len(shown) == 1 and f"keep {keep}" in shown[0]
    assert cli.main(["run", path, "--storage", str(storage)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"korth-bench: error: --storage {storage}: ") and " free, the sweep needs about " in lines[0]
    assert not storage.exists()
