"""The protocol identity of a trial: what two runs must share for their numbers to be compared.

Two rows with the same configuration are one experiment only if they also trained on the same
bytes, with the same images in each split, through the same training code and arithmetic. The
``trials`` table records, besides ``torch_version`` and ``kernel_path`` (``trial.precision``):

- ``data_sha256``: SHA-256 of the data file (``dataset: packed``; null for torchvision roots and
  the synthetic set, whose identity is their name and options);
- ``split_sha256``: SHA-256 over the indices of the training, validation, test and fixed
  (robustness, probe) subsets, in that order, each as little-endian int64;
- ``code_fingerprint``: SHA-256 over the path and bytes of every file of ``TRAINING_CODE``, the
  code a trial executes (configuration, data, models, regularizers, measures, the trial loop),
  so a report or a join tells data and code apart without the machine-local ``data_path``.

Studies whose rows predate these columns keep their Parquet files byte-identical: their
identity lives in ``PROTOCOL_FILE`` beside the tables (``study_protocol`` writes it, from the
rows' git commit and the data file), and ``recorded_identity`` reads either.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
from typing import Callable, Dict, Iterable, Mapping, Optional, Sequence

import torch

IDENTITY = ("data_sha256", "split_sha256", "code_fingerprint", "torch_version", "kernel_path")
"""The columns that make two runs of one configuration the same protocol."""
PROTOCOL_FILE = "protocol.json"
TRAINING_CODE = ("korth_bench/config.py", "korth_bench/errors.py", "korth_bench/measures.py",
                 "korth_bench/registry.py", "korth_bench/data/", "korth_bench/models/",
                 "korth_bench/regularizers/", "korth_bench/trial/")
"""What a trial executes, relative to the repository root (a folder: its ``.py`` files)."""
SPLITS = ("train", "val", "test", "fixed")
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _hash_stream(chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    def chunks():
        with open(path, "rb") as handle:
            while block := handle.read(1 << 22):
                yield block
    return _hash_stream(chunks())


def data_sha256(data_path: Optional[str]) -> Optional[str]:
    """SHA-256 of a local data file (cached per file, size and modification time); None for
    no file or a URI (hashing it would download it)."""
    if not data_path or "://" in data_path or not os.path.isfile(data_path):
        return None
    stat = os.stat(data_path)
    return _file_sha256(os.path.abspath(data_path), stat.st_size, stat.st_mtime_ns)


def split_sha256(indices: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the subsets' indices (``SPLITS`` order, int64 little-endian, each prefixed by
    its name and length, so that moving an image from one split to the next changes it)."""
    def chunks():
        for name in SPLITS:
            values = indices[name].to(torch.int64).cpu().contiguous().numpy().astype("<i8")
            yield f"{name}:{values.size}:".encode()
            yield values.tobytes()
    return _hash_stream(chunks())


def _code_files(list_files: Callable[[str], Sequence[str]]) -> list:
    """The ``.py`` files of TRAINING_CODE that exist (``list_files(entry)``: the files under a
    folder, or the file itself; nothing for an entry the checkout lacks)."""
    return sorted({path for entry in TRAINING_CODE for path in list_files(entry)
                   if path.endswith(".py")})


def fingerprint(files: Mapping[str, bytes]) -> str:
    """SHA-256 over ``path\\0bytes\\0`` of each file, in path order."""
    return _hash_stream(part for path in sorted(files) for part in
                        (path.encode(), b"\0", files[path], b"\0"))


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """The fingerprint of the training code this process imported."""
    def list_files(entry: str) -> Sequence[str]:
        if os.path.isfile(os.path.join(_ROOT, entry)):
            return [entry]
        found = []
        for parent, _, names in os.walk(os.path.join(_ROOT, entry)):
            found += [os.path.relpath(os.path.join(parent, n), _ROOT).replace(os.sep, "/")
                      for n in names]
        return found

    def read(path: str) -> bytes:
        with open(os.path.join(_ROOT, path), "rb") as handle:
            return handle.read()
    return fingerprint({path: read(path) for path in _code_files(list_files)})


def code_fingerprint_at(commit: str, repository: str = _ROOT) -> str:
    """The fingerprint of the training code at a git commit (for rows written before the column
    existed: their ``git_commit``)."""
    def git(*args: str) -> bytes:
        return subprocess.run(["git", "-C", repository, *args], check=True,
                              capture_output=True).stdout

    def list_files(entry: str) -> Sequence[str]:
        return git("ls-tree", "-r", "--name-only", commit, entry).decode().split()
    return fingerprint({path: git("show", f"{commit}:{path}")
                        for path in _code_files(list_files)})


def trial_identity(data_path: Optional[str], indices: Mapping[str, torch.Tensor]) -> Dict[str, str]:
    """The identity columns a trial computes itself (``torch_version`` and ``kernel_path`` come
    with its provenance)."""
    return {"data_sha256": data_sha256(data_path), "split_sha256": split_sha256(indices),
            "code_fingerprint": code_fingerprint()}


def read_protocol_file(directory: str) -> Dict[str, Dict[str, str]]:
    """{trial_id: {column: value}} of a study's ``PROTOCOL_FILE`` ({} without one)."""
    path = os.path.join(directory, PROTOCOL_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path) as handle:
        return json.load(handle)["trials"]


def study_protocol(directory: str, data_path: Optional[str],
                   repository: str = _ROOT) -> Dict[str, object]:
    """The PROTOCOL_FILE document of a study whose rows predate the identity columns: per trial,
    the SHA-256 of ``data_path`` (a copy of the file its rows name), its subsets' indices drawn
    again from that file with its recorded sizes and seeds, and the fingerprint of the training
    code at its ``git_commit``."""
    from korth_bench import data, results

    trials = results.read_frame(directory, "trials")
    digest = data_sha256(data_path)
    splits_of: Dict[tuple, str] = {}
    code_of: Dict[str, str] = {}
    recorded: Dict[str, Dict[str, str]] = {}
    for row in trials.to_dict("records"):
        cfg = results.row_config(row).replace(data_path=data_path)
        options = cfg.data_options()
        key = (cfg.dataset, options)
        if key not in splits_of:
            splits_of[key] = split_sha256(data.load(cfg.dataset, options, "cpu").indices)
        commit = row.get("git_commit")
        if commit not in code_of:  # rows from outside a git checkout have no commit to read
            code_of[commit] = code_fingerprint_at(commit, repository) if commit else None
        recorded[row["trial_id"]] = {"data_sha256": digest, "split_sha256": splits_of[key],
                                     "code_fingerprint": code_of[commit]}
    return {"written_by": "korth-bench protocol",
            "data_file": os.path.basename(data_path) if data_path else None,
            "trials": dict(sorted(recorded.items()))}
