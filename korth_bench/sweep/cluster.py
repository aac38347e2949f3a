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
import time
from collections import Counter
from typing import Any, Callable, Dict, Iterator, List, Optional

import pyarrow.fs as pafs
import ray
from ray.autoscaler.sdk import request_resources

from korth_bench import plugins, results
from korth_bench.spaces.sections import Resources

from korth_bench.sweep import ray_compat
from korth_bench.sweep.context import SweepContext
from korth_bench.errors import ConfigError


CONNECT_TIMEOUT_S = 5.0
PENDING_POLL_S = 5.0      # --pending-timeout: seconds between looks at the cluster's nodes
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
def ray_session(address: Optional[str], context: SweepContext, bundles: List[Dict[str, float]],
                pending_timeout: Optional[float] = None) -> Iterator[None]:
    """Connect to Ray for one sweep and check that its storage and a trial's resources
    (``bundles``, see ``check_resources``) suit the cluster before any trial starts; a Ray this
    process already started (tests) is reused."""
    if address:
        _check_reachable(address)
    ray_compat.drop_propagated_env(CREDENTIAL_ENV)  # the trials read them from their node instead
    if ray.is_initialized():
        check_storage(context)
        check_resources(context.resources, bundles, address, pending_timeout)
        yield
        return
    # Workers started on a cluster's nodes do not inherit this shell: hand them the storage
    # settings it holds (a local Ray's workers inherit them anyway), never the credentials.
    if not address:  # refused before a local Ray starts: this machine's own CPUs and GPUs
        check_resources(context.resources, bundles, None, nodes=_this_machine)
    forwarded = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ} if address else {}
    runtime_env = plugins.cluster_runtime_env() if address else {}  # --plugin: files, names
    if forwarded:
        runtime_env["env_vars"] = {**forwarded, **runtime_env.get("env_vars", {})}
    options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                   runtime_env=runtime_env or None)
    changed: Dict[str, Optional[str]] = {}
    if address:
        _connect(address, **options)
    else:  # a private Ray on 127.0.0.1: no node-IP probe, no token notice (ray_compat)
        changed = ray_compat.local_loopback_env()
        try:
            ray.init(address="local", _node_ip_address=ray_compat.LOOPBACK, **options)
        except BaseException:
            ray_compat.restore_env(changed)
            raise
    try:
        check_storage(context)
        check_resources(context.resources, bundles, address, pending_timeout)
        yield
    finally:
        ray.shutdown()
        ray_compat.restore_env(changed)


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


def check_address(address: str) -> None:
    """Refuse in one line an ``--address`` where no Ray cluster answers: ``korth-bench run``
    checks it first, before it can say "nothing to run"."""
    _check_reachable(address)


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


def check_writable(context: SweepContext, storage: Optional[str]) -> None:
    """The sweep's storage takes files (``results.check_writable``), before Ray starts."""
    where = f"--storage {storage or os.path.dirname(context.sweep_uri)}"
    if context.endpoint:
        where += f" (--storage-endpoint {context.endpoint})"
    results.check_writable(context.sweep_uri, where, context.endpoint)


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


def check_resources(resources: Resources, bundles: List[Dict[str, float]], address: Optional[str],
                    pending_timeout: Optional[float] = None,
                    nodes: Optional[Callable[[], List[Dict[str, float]]]] = None) -> None:
    """Refuse a sweep whose trial fits on no node (Tune would wait for one forever).

    ``bundles`` are what one trial holds at once, as Ray resources (``{"CPU": 1, "GPU": 0.5}``;
    a data-parallel trial: its launcher's share and one bundle per worker, which may spread over
    nodes). They must pack onto the alive nodes' total resources. With ``pending_timeout`` the
    sweep asks the autoscaler for them (``request_resources``) and waits up to that many seconds
    for a fitting node before refusing. ``nodes`` gives the nodes' resources (default: Ray's).
    """
    nodes = nodes or alive_nodes
    deadline = time.monotonic() + (pending_timeout or 0.0)
    requested = False
    while True:
        have = nodes()
        if _packs(bundles, have):
            break
        if time.monotonic() >= deadline:
            if requested:
                request_resources(bundles=[])
            raise ConfigError(_unfit_message(resources, bundles, have, address, pending_timeout))
        if not requested:
            request_resources(bundles=bundles)
            requested = True
        time.sleep(max(0.0, min(PENDING_POLL_S, deadline - time.monotonic())))
    if requested:  # a fitting node is there; the trials Tune queues carry the demand from now on
        request_resources(bundles=[])


def alive_nodes() -> List[Dict[str, float]]:
    """The total resources of each alive node of the connected Ray cluster."""
    return [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]


def _this_machine() -> List[Dict[str, float]]:
    """This machine as the one node a local Ray would start: its usable CPUs and visible GPUs."""
    import torch

    return [{"CPU": float(len(os.sched_getaffinity(0))), "GPU": float(torch.cuda.device_count())}]


def _packs(bundles: List[Dict[str, float]], nodes: List[Dict[str, float]]) -> bool:
    """Whether the bundles fit the nodes at once (first fit, largest bundles first)."""
    free = [dict(node) for node in nodes]
    for bundle in sorted(bundles, key=lambda b: (-b.get("GPU", 0.0), -b.get("CPU", 0.0))):
        for node in free:
            if all(node.get(kind, 0.0) + 1e-9 >= amount for kind, amount in bundle.items()):
                for kind, amount in bundle.items():
                    node[kind] = node.get(kind, 0.0) - amount
                break
        else:
            return False
    return True


def _unfit_message(resources: Resources, bundles: List[Dict[str, float]],
                   nodes: List[Dict[str, float]], address: Optional[str],
                   pending_timeout: Optional[float]) -> str:
    short = [f"resources.{kind.lower()}" for kind in ("GPU", "CPU")
             if not _packs([{kind: b.get(kind, 0.0)} for b in bundles], nodes)]
    short = short or ["resources.gpu", "resources.cpu"]  # each fits alone, not both on one node
    asked = ", ".join(f"{name}={getattr(resources, name.split('.')[1]):g}" for name in short)
    if resources.workers > 1:
        asked += f" (resources.workers={resources.workers})"
    shapes = Counter(f"{node.get('CPU', 0.0):g} CPUs, {node.get('GPU', 0.0):g} GPUs" for node in nodes)
    has = "; ".join(f"{count} x {shape}" if count > 1 else shape for shape, count in shapes.items())
    where = f"the cluster at {address}" if address else "this machine"
    waited = f" after waiting {pending_timeout:g} s (--pending-timeout)" if pending_timeout else ""
    advice = (f"lower {' and '.join(short)}, or run on a cluster that has them (--address)"
              if not address else f"lower {' and '.join(short)}, or pass --pending-timeout S to "
              "wait up to S seconds for an autoscaling cluster to add a fitting node")
    return (f"{asked}: a trial fits on no node of {where}{waited}, which has "
            f"{has or 'no alive node'}; {advice}")


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
