"""Where korth-bench keeps decoded data: ``$KORTH_BENCH_CACHE`` or ``~/.cache/korth-bench``.

``packed/<hash>/``: a packed Parquet file decoded once into a memory-mapped array (``images.npy``,
``meta.pt``), one entry per file version (path, size and modification time), so a trial maps it
instead of decoding 60,000 JPEGs: about 185 MB for CIFAR-10 (3 x 32 x 32 bytes an image). Nothing
evicts an entry: a file that is packed again, moved or copied adds one. ``torchvision/``: CIFAR
archives downloaded for ``dataset: cifar10``/``cifar100`` without a ``data_root``.
``korth-bench cache`` prints the location and sizes; ``--clear`` empties it (the next trial
decodes again). Trials already running keep their mapped arrays.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import List, Tuple


def cache_root() -> Path:
    return Path(os.environ.get("KORTH_BENCH_CACHE") or Path.home() / ".cache" / "korth-bench")


def tree_size(path: Path) -> int:
    """Bytes of the regular files under ``path``."""
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                continue
    return total


def entries() -> List[Tuple[Path, int, float]]:
    """(path, bytes, last modified) of each cache entry: each decoded file under ``packed/``
    and the ``torchvision/`` downloads."""
    root = cache_root()
    found = []
    for path in sorted((root / "packed").glob("*")) + [root / "torchvision"]:
        if path.is_dir():
            found.append((path, tree_size(path), path.stat().st_mtime))
    return found


def clear() -> int:
    """Remove everything under the cache root; returns the bytes freed."""
    root = cache_root()
    if not root.exists():
        return 0
    freed = tree_size(root)
    shutil.rmtree(root)
    return freed
