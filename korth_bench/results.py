"""The Parquet tables of a sweep: schema, writer and reader (pyarrow only).

A sweep directory (a local path or a URI such as ``s3://bucket/sweeps/smoke``) holds one directory
per table, and each trial writes one file per table, named by its ``trial_id``::

    <sweep dir>/trials/<trial_id>.parquet      one row per trial
    <sweep dir>/epochs/<trial_id>.parquet      one row per trial x epoch
    <sweep dir>/layers/<trial_id>.parquet      one row per trial x measured epoch x layer
    <sweep dir>/robustness/<trial_id>.parquet  one row per trial x perturbation

A file is replaced whole, so a retried or resumed trial never leaves duplicate or half-written
rows: locally it is written to a hidden temporary file and renamed over the old one; on an object
store (where a rename is a copy plus a delete) it is one upload to its final key, which readers see
either entirely or not at all. The ``trials`` file is written last, so a ``trials`` row means the
other tables of that trial are complete.

Every file of a table carries the same columns in the same order (the canonical columns below,
filled with nulls where a trial has no value), so DuckDB and ``pyarrow.dataset`` read a table
directory as one dataset; the file metadata carries ``korth_bench.schema_version``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import math
import os
import re
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from korth_bench.config import TrialConfig, field_kind
from korth_bench.errors import ConfigError

SCHEMA_VERSION = "1"
METADATA_KEY = b"korth_bench.schema_version"
TABLES = ("trials", "epochs", "layers", "robustness")
KEYS = {
    "trials": ("trial_id",),
    "epochs": ("trial_id", "epoch"),
    "layers": ("trial_id", "epoch", "layer"),
    "robustness": ("trial_id", "kind", "name", "severity"),
}
STATUSES = ("completed", "diverged", "stopped", "error")
FINAL_STATUSES = ("completed", "diverged", "stopped")  # a re-run of a grid skips these

F64, I64, STR, BOOL = pa.float64(), pa.int64(), pa.string(), pa.bool_()

# Trial columns that do not depend on the configuration, in table order (config fields follow
# ``status``/``error``; per-configuration columns such as ``pgd_acc_8_255`` follow these).
_TRIAL_OUTCOMES = {
    "num_params": I64, "test_acc": F64, "test_loss": F64, "val_acc": F64, "best_test_acc": F64,
    "best_test_epoch": I64, "epochs_completed": I64, "epochs_to_90pct_best": I64,
    "epochs_to_95pct_best": I64, "seconds_to_90pct_best": F64, "seconds_to_95pct_best": F64,
    "accuracy_auc": F64, "clean_acc": F64, "corruption_acc_mean": F64,
    "ortho_gram_residual_mean": F64, "ortho_diag_deviation_mean": F64, "ortho_cos_mean": F64,
    "ortho_cos_max": F64, "ortho_spectral_mean": F64, "cs_mean": F64, "cs_normalized_mean": F64,
    "fm_sim_mean": F64, "fm_sim_post_mean": F64, "dead_channels": I64, "wall_time_s": F64,
    "train_time_s": F64, "compile_time_s": F64, "precision_resolved": STR, "device": STR,
    "torch_version": STR, "cuda_version": STR, "ray_version": STR, "korth_bench_version": STR,
    "git_commit": STR, "git_dirty": BOOL, "config_hash": STR, "started_at": STR, "finished_at": STR,
}
_EPOCHS = {
    "trial_id": STR, "epoch": I64, "train_loss": F64, "reg_loss": F64, "train_acc": F64,
    "val_loss": F64, "val_acc": F64, "test_loss": F64, "test_acc": F64, "lr": F64,
    "coefficient": F64, "epoch_time_s": F64, "elapsed_s": F64, "images_per_s": F64,
}
_LAYERS = {
    "trial_id": STR, "epoch": I64, "layer": STR, "kind": STR, "shape": pa.list_(I64),
    "out_channels": I64, "fan_in": I64, "overdetermined": BOOL, "gram_residual_fro": F64,
    "diag_deviation": F64, "offdiag_fro": F64, "cos_mean": F64, "cos_max": F64,
    "spectral_norm": F64, "cs_mean": F64, "cs_normalized_mean": F64, "fm_sim": F64,
    "dead_channels": I64,
}
_ROBUSTNESS = {
    "trial_id": STR, "kind": STR, "name": STR, "severity": I64, "eps": F64, "accuracy": F64,
    "num_examples": I64,
}
_TRIAL_ADDED = {"kernel_path": STR, "data_sha256": STR, "split_sha256": STR,
                "code_fingerprint": STR}
"""Trial columns added after the first files were written: they come after every other column
(the per-configuration ones included), so the earlier files keep their order and read as they
are (a reader fills the column with nulls for them). kernel_path: the kernels a trial ran on
(``trial.precision.kernel_path``: native bf16, bf16 through float32 kernels, fp32);
data_sha256, split_sha256, code_fingerprint: the rest of the protocol identity
(``korth_bench.protocol``)."""
_PER_CONFIG = re.compile(r"^(epochs_to_acc_\d+|(fgsm|pgd)_acc_\d+_255)$")


# ---------------------------------------------------------------------- schema
def _config_type(spec: dataclasses.Field) -> pa.DataType:
    kind = field_kind(spec)
    base = {bool: BOOL, int: I64, float: F64, str: STR}[kind.base]
    return pa.list_(base) if kind.is_tuple else base


def per_config_columns(config_row: Mapping[str, Any]) -> List[str]:
    """Trial columns named after configuration values: ``epochs_to_acc_<pct>`` per convergence
    threshold, ``<attack>_acc_<k>_255`` per attack and radius k/255."""
    thresholds = config_row.get("convergence_thresholds") or ()
    attacks = config_row.get("robustness_attacks") or ()
    radii = config_row.get("robustness_pgd_eps") or ()
    return ([f"epochs_to_acc_{round(100 * t)}" for t in thresholds]
            + [f"{attack}_acc_{k}_255" for attack in attacks for k in radii])


def trials_columns(config_row: Mapping[str, Any] = {}) -> Dict[str, pa.DataType]:
    """The ``trials`` columns (name -> type) for a trial with this configuration row."""
    columns = {"sweep": STR, "trial_id": STR, "status": STR, "error": STR}
    columns.update((f.name, _config_type(f)) for f in dataclasses.fields(TrialConfig))
    columns.update(_TRIAL_OUTCOMES)
    for name in per_config_columns(config_row):
        columns[name] = I64 if name.startswith("epochs_to_acc_") else F64
    columns.update(_TRIAL_ADDED)
    return columns


def columns(table: str, config_row: Mapping[str, Any] = {}) -> Dict[str, pa.DataType]:
    """Canonical columns (name -> type) of ``table``; ``trials`` depends on the configuration."""
    if table == "trials":
        return trials_columns(config_row)
    try:
        return {"epochs": _EPOCHS, "layers": _LAYERS, "robustness": _ROBUSTNESS}[table]
    except KeyError:
        raise ConfigError(f"unknown table {table!r}; choose from: {', '.join(TABLES)}") from None


def to_arrow(table: str, rows: Sequence[Mapping[str, Any]],
             config_row: Mapping[str, Any] = {}) -> pa.Table:
    """Rows (dicts) -> a table with the canonical columns first (nulls where a row has no value),
    then any further keys of the rows in sorted order (their type inferred)."""
    schema = dict(columns(table, config_row))
    extra = sorted({key for row in rows for key in row} - set(schema))
    arrays = {name: _array([row.get(name) for row in rows], kind, table, name)
              for name, kind in schema.items()}
    for name in extra:
        arrays[name] = _array([row.get(name) for row in rows], None, table, name)
    result = pa.table(arrays)
    return result.replace_schema_metadata({METADATA_KEY: SCHEMA_VERSION, b"korth_bench.table": table})


def _array(values: List[Any], kind: Optional[pa.DataType], table: str, name: str) -> pa.Array:
    values = [plain(v) for v in values]
    try:
        if kind is None:  # a column beyond the canonical ones: infer, all-null as float64
            array = pa.array(values)
            return array.cast(F64) if pa.types.is_null(array.type) else array
        return pa.array(values, type=kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as err:
        raise ValueError(f"{table}.{name}: cannot store {values[:3]!r} as {kind}: {err}") from None


def plain(value: Any) -> Any:
    """numpy scalars and arrays, tuples -> plain Python values (sequences as lists, element-wise),
    which pyarrow and ``json`` convert without surprises."""
    if isinstance(value, (list, tuple)) or getattr(value, "ndim", 0) > 0:
        return [plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


# ---------------------------------------------------------------------- storage
def resolve(uri: str, endpoint: Optional[str] = None,
            retry_s: Optional[float] = None) -> Tuple[pafs.FileSystem, str]:
    """A local path or URI -> (filesystem, path inside it).

    Local paths become absolute. ``s3://bucket/key`` uses ``endpoint`` (or ``AWS_ENDPOINT_URL``)
    for an S3-compatible server (MinIO, SeaweedFS, Ceph) and the usual AWS credential variables.
    Other URIs (``gs://``, ``hdfs://``, ``file://``) go to ``pyarrow.fs.FileSystem.from_uri``.
    ``retry_s``: an S3 request that finds the store unreachable is retried for this long
    (``s3_retry_budget``: exponential backoff from 25 ms, so at least ``retry_s`` and less than
    twice it) before it fails; None keeps pyarrow's three attempts (about a second), for commands
    that should answer at once (``status``, ``report``, the sweep's checks before it starts).
    """
    uri = str(uri)
    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(uri))
    if uri.startswith("s3://"):
        endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL")
        # allow_delayed_open: a small file becomes one PutObject instead of a multipart upload
        options: Dict[str, Any] = {"allow_delayed_open": True}
        if retry_s is not None:
            options["retry_strategy"] = pafs.AwsDefaultS3RetryStrategy(
                max_attempts=s3_retry_budget(retry_s)[0])
        if endpoint:
            options["endpoint_override"] = endpoint
        if endpoint and endpoint.startswith("http://"):
            options["scheme"] = "http"
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            options["region"] = region
        return pafs.S3FileSystem(**options), uri[len("s3://"):].rstrip("/")
    scheme = uri.split("://", 1)[0]
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, ValueError) as err:
        known = scheme.lower() in STORAGE_SCHEMES
        reason = (f"{' '.join(str(err).split())}" if known
                  else f"the scheme {scheme}:// is not supported")
        raise ConfigError(f"storage {uri}: {reason}; allowed: a local path or a URI with one of "
                          f"the schemes {', '.join(s + '://' for s in STORAGE_SCHEMES)}") from None


def check_scheme(uri: str, where: str) -> None:
    """Refuse a URI whose scheme no results location has, naming ``where`` (the flag and value)
    and the schemes allowed; a local path passes."""
    scheme = uri.split("://", 1)[0] if "://" in uri else None
    if scheme is not None and scheme.lower() not in STORAGE_SCHEMES:
        raise ConfigError(f"{where}: the scheme {scheme}:// is not supported; allowed: a local "
                          f"path or a URI with one of the schemes "
                          f"{', '.join(s + '://' for s in STORAGE_SCHEMES)}")


STORAGE_SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "file")
"""The URI schemes of a results location: ``s3`` here, the others ``pyarrow.fs`` opens."""
PSEUDO_FILE_SYSTEMS = {"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs",
                       "securityfs", "tracefs", "configfs", "pstore", "bpf", "efivarfs", "mqueue",
                       "hugetlbfs", "binfmt_misc", "fusectl", "autofs", "nsfs"}
"""Kernel interfaces mounted as file systems: no directory of results can be made in them."""


def _mount_of(path: str) -> Tuple[str, str, bool]:
    """(mount point, file-system type, mounted read-only) of the mount holding ``path``, from
    /proc/self/mountinfo; ("", "", False) where that cannot be read."""
    best = ("", "", False)
    try:
        with open("/proc/self/mountinfo") as handle:
            for line in handle:
                fields = line.split()
                point = fields[4].replace("\\040", " ")
                fstype = fields[fields.index("-") + 1]
                inside = path == point or path.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best[0]):
                    best = (point, fstype, "ro" in fields[5].split(","))
    except (OSError, ValueError, IndexError):
        pass
    return best


def _unwritable_reason(directory: str, err: OSError) -> str:
    """Why files cannot be created in ``directory``: a kernel pseudo file system or a read-only
    mount is named as such, since their errno (ENOENT in /proc) would mislead."""
    point, fstype, read_only = _mount_of(os.path.realpath(directory))
    if fstype in PSEUDO_FILE_SYSTEMS:
        where = directory if point == directory else f"{directory} is on {point}, which"
        return f"{where} is a {fstype} file system of the kernel: it holds no files"
    if read_only or err.errno == errno.EROFS:
        return f"{directory} is on a read-only file system ({point or directory})"
    return f"cannot create files in {directory}: {err.strerror or err}"


S3_BACKOFF_S = 0.025
"""The first wait of the S3 client's retries (the AWS SDK's default strategy doubles it)."""


def s3_retry_budget(retry_s: float) -> Tuple[int, float]:
    """(retries, seconds they span) of the AWS SDK's default strategy that ride out at least
    ``retry_s`` seconds of an unreachable store: n retries wait 25 ms x (2^n - 1) in all."""
    retries = max(3, math.ceil(math.log2(retry_s / S3_BACKOFF_S + 1)))
    return retries, S3_BACKOFF_S * (2 ** retries - 1)


def check_writable(uri: str, where: str, endpoint: Optional[str] = None) -> None:
    """Refuse, before anything is written, a results location this process cannot write to.

    A local path must be (under) a directory this process can create files in, probed with a
    temporary directory that is removed at once. An object store must answer a listing of the
    location and hold its bucket (nothing is written to it). Raises ``ValueError`` starting with ``where`` (the flag and its
    value, as the user gave them) and saying what failed.
    """
    filesystem, path = resolve(uri, endpoint)
    if isinstance(filesystem, pafs.LocalFileSystem):
        existing = path
        while not os.path.exists(existing) and os.path.dirname(existing) != existing:
            existing = os.path.dirname(existing)
        problem = None
        if not os.path.isdir(existing):
            problem = f"{existing} is not a directory"
        else:
            try:
                os.rmdir(tempfile.mkdtemp(prefix=".korth-probe-", dir=existing))
            except OSError as err:
                problem = _unwritable_reason(existing, err)
        if problem:
            raise ConfigError(f"{where}: results directory is not writable ({problem}); allowed: "
                             "a writable local directory or a URI such as s3://bucket/prefix")
        return
    bucket = path.split("/", 1)[0]
    try:
        found = filesystem.get_file_info([bucket, path])[0].type
    except OSError as err:
        message = " ".join(str(err).split()) or type(err).__name__
        raise ConfigError(f"{where}: the store did not answer a listing of {uri} ({message}); "
                         "check the endpoint URL, that the server runs and the credentials") from None
    if found == pafs.FileType.NotFound:
        raise ConfigError(f"{where}: bucket {bucket!r} does not exist on this store; create it or "
                         "name an existing one")


def _filesystem(uri: str, filesystem: Optional[pafs.FileSystem],
                endpoint: Optional[str] = None) -> Tuple[pafs.FileSystem, str]:
    if filesystem is None:
        return resolve(uri, endpoint)
    return filesystem, (os.path.abspath(uri) if isinstance(filesystem, pafs.LocalFileSystem)
                        else str(uri).split("://", 1)[-1].rstrip("/"))


def sweep_location(storage: Optional[str], name: str) -> str:
    """The sweep directory ``<storage>/<name>``: ``storage`` a path (default ``./results``, made
    absolute) or a URI."""
    storage = storage or os.path.join(os.getcwd(), "results")
    if "://" not in storage:
        storage = os.path.abspath(os.path.expanduser(storage))
    return f"{storage.rstrip('/')}/{name}"


def table_path(sweep_path: str, table: str, trial_id: str) -> str:
    return f"{sweep_path.rstrip('/')}/{table}/{trial_id}.parquet"


# ---------------------------------------------------------------------- writer
def write_trial(sweep_uri: str, record_or_tables: Union[Any, Mapping[str, List[dict]]],
                sweep: Optional[str] = None, filesystem: Optional[pafs.FileSystem] = None) -> str:
    """Write one trial's tables, each to ``<sweep_uri>/<table>/<trial_id>.parquet``.

    Args:
        sweep_uri: the sweep directory, a local path or a URI.
        record_or_tables: a ``TrialRecord`` (its ``tables()``) or a dict ``{table: [row, ...]}``
            holding any of the four tables; an empty list writes an empty file (so an earlier
            file of the same trial is replaced). All rows must carry the same ``trial_id``.
        sweep: the value of the ``sweep`` column of the ``trials`` row.
        filesystem: a ``pyarrow.fs.FileSystem`` to use instead of resolving ``sweep_uri``.

    Returns the ``trial_id``. The ``trials`` table is written last.
    """
    tables = record_or_tables.tables() if hasattr(record_or_tables, "tables") else record_or_tables
    unknown = set(tables) - set(TABLES)
    if unknown:
        raise ValueError(f"unknown tables {sorted(unknown)}; choose from: {', '.join(TABLES)}")
    ids = {row.get("trial_id") for rows in tables.values() for row in rows}
    if len(ids) != 1 or None in ids:
        raise ValueError(f"a trial's rows must all carry one trial_id, got {sorted(map(str, ids))}")
    trial_id = ids.pop()
    trials = [{**row, "sweep": sweep if sweep is not None else row.get("sweep")}
              for row in tables.get("trials", [])]
    for row in trials:
        if row.get("status") not in STATUSES:
            raise ValueError(f"trials.status={row.get('status')!r}; choose from: {', '.join(STATUSES)}")
    fs, root = _filesystem(sweep_uri, filesystem)
    config_row = trials[0] if trials else {}
    for table in sorted(tables, key=lambda t: t == "trials"):
        rows = trials if table == "trials" else tables[table]
        _write_file(fs, table_path(root, table, trial_id), to_arrow(table, rows, config_row))
    return trial_id


def write_rows(sweep_uri: str, table: str, trial_id: str, rows: Sequence[Mapping[str, Any]],
               filesystem: Optional[pafs.FileSystem] = None) -> None:
    """Replace one table file of one trial (an ``epochs`` file as a trial goes, for instance)."""
    fs, root = _filesystem(sweep_uri, filesystem)
    _write_file(fs, table_path(root, table, trial_id),
                to_arrow(table, [{**row, "trial_id": trial_id} for row in rows]))


def _write_file(fs: pafs.FileSystem, path: str, table: pa.Table) -> None:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    write_bytes(fs, path, buffer.getvalue())


def write_bytes(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Put ``data`` at ``path`` so that a reader sees the whole file or none (or the old one)."""
    directory = path.rsplit("/", 1)[0]
    if isinstance(fs, pafs.LocalFileSystem):  # temp file + rename: atomic on one file system
        fs.create_dir(directory, recursive=True)
        temp = f"{directory}/.{path.rsplit('/', 1)[1]}.{uuid.uuid4().hex}.tmp"
        try:
            with fs.open_output_stream(temp) as out:
                out.write(data)
            fs.move(temp, path)
        except OSError:  # a full disk, a quota: leave no partial file behind
            with contextlib.suppress(OSError):
                fs.delete_file(temp)
            raise
    else:  # object stores: one upload to the final key (their rename is copy + delete)
        with fs.open_output_stream(path) as out:
            out.write(data)


# ---------------------------------------------------------------------- reader
READ_THREADS = 32
"""Table files read at once. An object store answers each GET after a round trip (5 ms on a
loopback SeaweedFS, tens across a network) while pyarrow releases the GIL, so a 10,000-trial
table is read with many requests in flight; bounded, so a store is not flooded."""


@dataclass(frozen=True)
class TableFile:
    """The newest file of one trial in one table (``list_table``)."""
    trial_id: str
    path: str                      # inside ``filesystem``
    mtime_ns: int                  # 0 where the store gives none
    filesystem: pafs.FileSystem


def result_roots(fs: pafs.FileSystem, root: str) -> List[str]:
    """The result directories a directory stands for: itself when it holds a ``trials`` folder
    (a sweep, or one ``korth-bench train`` output), else each subfolder that does (the folder
    of ``train`` outputs, ``results/train/<trial name>/``, read as one result set), else itself
    (a sweep whose trials have written epochs but no trials row yet)."""
    if fs.get_file_info(f"{root}/trials").type == pafs.FileType.Directory:
        return [root]
    children = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    return sorted(info.path for info in children if info.type == pafs.FileType.Directory
                  and fs.get_file_info(f"{info.path}/trials").type == pafs.FileType.Directory
                  ) or [root]


def list_table(dirs: Union[str, Iterable[str]], table: str,
               filesystem: Optional[pafs.FileSystem] = None,
               endpoint: Optional[str] = None) -> Dict[str, TableFile]:
    """trial_id -> its newest file of ``table`` over one or more result directories
    (``result_roots`` of each): one listing per directory, the snapshot a read works on. The most
    recently written file wins, then the later directory in ``dirs``."""
    columns(table)  # validates the name
    dirs = [dirs] if isinstance(dirs, str) else list(dirs)
    newest: Dict[str, Tuple[Tuple[int, int], TableFile]] = {}
    for order, uri in enumerate(dirs):
        fs, root = _filesystem(uri, filesystem, endpoint)
        infos = [info for base in result_roots(fs, root) for info in fs.get_file_info(
            pafs.FileSelector(f"{base}/{table}", allow_not_found=True))]
        for info in infos:
            name = info.base_name
            if info.type != pafs.FileType.File or not name.endswith(".parquet") or name.startswith("."):
                continue
            stamp = (info.mtime_ns or 0, order)
            trial_id = name[: -len(".parquet")]
            if trial_id not in newest or stamp >= newest[trial_id][0]:
                newest[trial_id] = (stamp, TableFile(trial_id, info.path, stamp[0], fs))
    return {trial_id: entry for trial_id, (_, entry) in newest.items()}


def read_table(dirs: Union[str, Iterable[str]], table: str,
               filesystem: Optional[pafs.FileSystem] = None, endpoint: Optional[str] = None,
               trial_ids: Optional[Iterable[str]] = None,
               columns: Optional[Sequence[str]] = None) -> pa.Table:
    """One table of one or more result directories, merged by column name.

    When a trial appears in several directories the most recently written file wins (then the
    later directory in ``dirs``), and rows are unique by the table key (``KEYS[table]``). The
    files of one listing (``list_table``) are read ``READ_THREADS`` at a time; ``trial_ids``
    restricts the read to those trials and ``columns`` (the key included) to those columns, which
    a wide ``trials`` file decodes much faster. ``endpoint``: an S3-compatible server for ``s3://`` URIs.
    """
    files = list_table(dirs, table, filesystem, endpoint)
    if trial_ids is not None:
        wanted = set(trial_ids)
        files = {k: v for k, v in files.items() if k in wanted}
    return read_files(table, sorted(files.values(), key=lambda f: f.path), columns)


def read_files(table: str, files: Sequence[TableFile],
               columns: Optional[Sequence[str]] = None) -> pa.Table:
    """The listed files of one table (``columns`` of them), read concurrently and merged in the
    given order."""
    if not files:
        empty = to_arrow(table, [])
        return empty.select(list(columns)) if columns else empty
    with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(files))) as pool:
        parts = list(pool.map(lambda f: _read_file(f.filesystem, f.path, columns), files))
    merged = pa.concat_tables(parts, promote_options="permissive")
    return _unique_by_key(merged, KEYS[table])


def read_frame(dirs: Union[str, Iterable[str]], table: str,
               filesystem: Optional[pafs.FileSystem] = None, endpoint: Optional[str] = None):
    """``read_table`` as a pandas DataFrame."""
    return read_table(dirs, table, filesystem, endpoint).to_pandas()


READ_ATTEMPTS = 5
"""Reads of one table file before an incomplete body counts as a corrupt file (``_read_file``)."""


def _read_file(fs: pafs.FileSystem, path: str, columns: Optional[Sequence[str]] = None) -> pa.Table:
    # One sequential GET of the whole object: a random-access file on S3 reads ranges after a
    # size probe, and a trial replacing the file in between would mix two versions of it. Some
    # S3-compatible stores (SeaweedFS, seen in the reliability tests) can still serve a partial
    # body while an object is being replaced; the write takes milliseconds, so read again.
    for attempt in range(READ_ATTEMPTS):
        with fs.open_input_stream(path) as stream:
            body = stream.read()
        try:
            # ParquetFile.read decodes a wide footer about 2.5x faster than pq.read_table (no
            # dataset machinery); a requested column the file lacks is left out, not an error
            data = pq.ParquetFile(pa.BufferReader(body)).read(
                columns=list(columns) if columns else None)
            break
        except pa.ArrowInvalid as err:
            if attempt == READ_ATTEMPTS - 1:
                raise ConfigError(f"{path}: not a complete Parquet file after {READ_ATTEMPTS} "
                                 f"reads ({err})") from None
            time.sleep(0.1 * 2 ** attempt)
    version = (data.schema.metadata or {}).get(METADATA_KEY, b"").decode()
    if version != SCHEMA_VERSION:
        raise ConfigError(f"{path}: schema version {version or 'missing'!r}; this korth-bench reads "
                         f"version {SCHEMA_VERSION!r}")
    return data


def _unique_by_key(data: pa.Table, key: Tuple[str, ...]) -> pa.Table:
    """Keep the last row of each key, in the original row order."""
    if data.num_rows == 0:
        return data
    rows = data.select(list(key)).append_column("_row", pa.array(range(data.num_rows)))
    last = rows.group_by(list(key), use_threads=False).aggregate([("_row", "max")])
    return data.take(sorted(last["_row_max"].to_pylist()))


def read_trial_rows(sweep_uri: str, table: str, trial_id: str,
                    filesystem: Optional[pafs.FileSystem] = None) -> List[Dict[str, Any]]:
    """The rows of one trial's file of one table (empty when the file does not exist)."""
    fs, root = _filesystem(sweep_uri, filesystem)
    path = table_path(root, table, trial_id)
    if fs.get_file_info(path).type != pafs.FileType.File:
        return []
    return _read_file(fs, path).to_pylist()


def trial_statuses(sweep_uri: str, filesystem: Optional[pafs.FileSystem] = None,
                   endpoint: Optional[str] = None) -> Dict[str, str]:
    """trial_id -> status of every ``trials`` row of a sweep directory (empty when none): the
    status scan at every start and ``--resume`` of a sweep."""
    trials = read_table(sweep_uri, "trials", filesystem, endpoint, columns=["trial_id", "status"]).to_pylist()
    return {row["trial_id"]: row["status"] for row in trials}


def row_config(row: Mapping[str, Any]) -> TrialConfig:
    """The configuration a ``trials`` row was run with, rebuilt from its config columns and
    checked against its ``config_hash``. The row's ``device`` column holds the device's name
    (``cpu (2 cores, 1 thread)``), not the ``device`` key, so each key value is tried."""
    names = set(TrialConfig.field_names())
    values = {k: plain(v) for k, v in row.items() if k in names}
    values = {k: v for k, v in values.items()
              if v is not None and not (isinstance(v, float) and math.isnan(v))}
    for device in ("cpu", "auto", "cuda"):
        cfg = TrialConfig.from_dict({**values, "device": device})
        if cfg.config_hash == row.get("config_hash"):
            return cfg
    raise ValueError(f"trial {row.get('trial_id')}: its config columns do not give its "
                     f"config_hash {row.get('config_hash')}")
