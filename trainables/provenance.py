"""Where a result came from: package version and git commit, recorded with every result."""
from __future__ import annotations

import functools
import os
import socket
import subprocess
from pathlib import Path

__version__ = "0.1.0"


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The source tree's commit (with '+dirty' when modified), ELM_GIT_COMMIT if set, else
    'unknown' (e.g. an installed wheel or a Ray job's copied working dir without .git)."""
    if os.environ.get("ELM_GIT_COMMIT"):
        return os.environ["ELM_GIT_COMMIT"]
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance() -> dict:
    return {"package_version": __version__, "git_commit": git_commit(),
            "node": socket.gethostname()}
