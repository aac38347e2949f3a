"""Ray for one sweep: connecting (a local Ray or a running cluster), and the checks that a
sweep's address and storage work before any trial starts.

A cluster's trials get the storage settings of this shell (``FORWARDED_ENV``), never its
credentials; a multi-node cluster needs storage every node reaches (a URI or a shared file
system), as Ray Tune itself requires.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import tempfile
from typing import Any, Iterator, Optional

import pyarrow.fs as pafs
import ray

from korth_bench.sweep import ray_compat
from korth_bench.sweep.context import SweepContext
from korth_bench.errors import ConfigError


CONNECT_TIMEOUT_S = 5.0
# Storage settings handed to a cluster's trials. Credentials are not among them: Ray logs a
# runtime environment in clear text (runtime_env_agent.log), so on a cluster every node holds the
# credentials in its own environment (exported before `ray start`, or an instance role).
FORWARDED_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")
CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN",
                  "AWS_SESSION_TOKEN")
SHARED_FILE_SYSTEMS = {"nfs", "nfs4", "cifs", "smb3", "lustre", "gpfs", "beegfs", "ceph", "cephfs",
                       "glusterfs", "fuse.glusterfs", "fuse.juicefs", "fuse.gcsfuse", "fuse.s3fs",
                       "fuse.mountpoint-s3", "wekafs", "virtiofs", "9p"}


@contextlib.contextmanager
def ray_session(address: Optional[str], context: SweepContext) -> Iterator[None]:
    """Connect to Ray for one sweep; a Ray this process already started (tests) is reused."""
    if address:
        _check_reachable(address)
    ray_compat.drop_propagated_env(CREDENTIAL_ENV)  # the trials read them from their node instead
    ray_compat.tolerate_missing_checkpoint_deletes()  # saved state can lag the storage by one
    if ray.is_initialized():
        check_storage(context)
        yield
        return
    # Workers started on a cluster's nodes do not inherit this shell: hand them the storage
    # settings it holds (a local Ray's workers inherit them anyway), never the credentials.
    forwarded = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ} if address else {}
    options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                   runtime_env={"env_vars": forwarded} if forwarded else None)
    if address:
        _connect(address, **options)
    else:
        ray.init(address="local", **options)
    try:
        check_storage(context)
        yield
    finally:
        ray.shutdown()


def _connect(address: str, **options: Any) -> None:
    """``ray.init`` on a running cluster. Ray's client logs each refused attempt to file
    descriptor 2 for about 20 s before a bare ConnectionError; that log is kept aside and turned
    into one line (a missing or wrong authentication token is the usual cause)."""
    sys.stderr.flush()
    saved = os.dup(2)
    error: Optional[ConnectionError] = None
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            ray.init(address=address, **options)
        except ConnectionError as err:
            error = err
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        log = captured.read().decode(errors="replace")
    if error is None:
        sys.stderr.write(log)  # a connected client's warnings stay visible
        return
    if "InvalidAuthToken" in log or "Unauthenticated" in log:
        raise ConfigError(f"--address {address}: the cluster refused this client's authentication "
                         "token (InvalidAuthToken); set RAY_AUTH_MODE=token and give the cluster's "
                         "token in RAY_AUTH_TOKEN_PATH (a file) or RAY_AUTH_TOKEN (`ray "
                         "get-auth-token` on the head node prints it)") from None
    raise ConfigError(f"--address {address}: Ray refused the connection ({error}); check that "
                     "this is the cluster's GCS address and that Ray's versions match") from None


def _check_reachable(address: str) -> None:
    """Fail within seconds, naming the address, when nothing listens there (``ray.init``
    would retry for minutes)."""
    target = address.split("://", 1)[-1]
    if address == "auto":  # the cluster `ray start` last recorded on this machine (or RAY_ADDRESS)
        try:
            target = ray_compat.resolve_auto_address()
        except ConnectionError as err:
            raise ConfigError(f"--address auto: {err}") from None
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit() or target.endswith("]"):
        host, port = target, "10001" if address.startswith("ray://") else "6379"
    host = host.strip("[]")  # an IPv6 literal
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise ConfigError(f"--address {address}: no Ray cluster answers at {host}:{port} "
                         f"({err.strerror or err}); start one with `ray start --head` or leave "
                         "--address out to run on a local Ray") from None


def check_writable(context: SweepContext) -> None:
    """A local results directory must be one this process can create files in; probed with a
    temporary directory that is removed at once, so a refused sweep leaves nothing behind."""
    if not isinstance(context.filesystem(), pafs.LocalFileSystem):
        return
    path = existing = context.path()
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    problem = None
    if not os.path.isdir(existing):
        problem = f"{existing} is not a directory"
    else:
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".korth-probe-", dir=existing))
        except OSError as err:
            problem = f"cannot create files in {existing}: {err.strerror or err}"
    if problem:
        raise ConfigError(f"--storage {os.path.dirname(path)}: results directory is not writable "
                         f"({problem}); allowed: a writable local directory or a URI such as "
                         "s3://bucket/prefix")


def check_storage(context: SweepContext) -> None:
    """A multi-node cluster needs storage every node reaches (Ray Tune's own rule)."""
    if not isinstance(context.filesystem(), pafs.LocalFileSystem):
        return
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    path = context.path()
    if len(nodes) > 1 and not _on_shared_file_system(path):
        raise ConfigError(f"--storage {os.path.dirname(path)} is local to this machine, but the "
                         f"cluster has {len(nodes)} nodes whose trials must write checkpoints and "
                         "tables there: pass --storage s3://bucket/prefix (with --storage-endpoint "
                         "for an S3-compatible server), gs://..., or a path on a shared file "
                         "system (NFS, Lustre, ...)")


def _on_shared_file_system(path: str) -> bool:
    """Whether the (nearest existing parent of) ``path`` is on a network file system."""
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    path = os.path.realpath(path)
    best, kind = "", ""
    with contextlib.suppress(OSError), open("/proc/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) > 2 and (path == fields[1] or path.startswith(fields[1].rstrip("/") + "/")):
                if len(fields[1]) > len(best):
                    best, kind = fields[1], fields[2]
    return kind in SHARED_FILE_SYSTEMS
