"""Where and with what a trial ran: device name and package versions, for every trials row."""
from __future__ import annotations

import functools
import importlib.metadata
import os
import subprocess
from typing import Dict, Optional

import torch

import korth_bench


def _version(package: str) -> Optional[str]:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def _git_state() -> Dict[str, Optional[object]]:
    """Commit and dirty flag of the checkout korth_bench was imported from, if it is one."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(korth_bench.__file__)))

    def git(*args: str) -> Optional[str]:
        try:
            done = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True,
                                  timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": bool(status) if status is not None else None}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"cpu ({os.cpu_count()} cores, {threads} thread{'' if threads == 1 else 's'})"


def provenance(device: torch.device) -> Dict[str, object]:
    """device, torch/CUDA/Ray/korth-bench versions, git commit and dirty flag."""
    return {"device": device_name(device), "torch_version": torch.__version__,
            "cuda_version": torch.version.cuda, "ray_version": _version("ray"),
            "korth_bench_version": korth_bench.__version__, **_git_state()}
