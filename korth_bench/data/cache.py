"""Where korth-bench keeps decoded data: ``$KORTH_BENCH_CACHE`` or ``~/.cache/korth-bench``."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("KORTH_BENCH_CACHE") or Path.home() / ".cache" / "korth-bench")
