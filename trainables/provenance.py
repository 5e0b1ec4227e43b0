"""Where a result came from: package version and git state, recorded with every result.

``__version__`` is the project's one version: pyproject.toml reads it from here.
"""
from __future__ import annotations

import functools
import hashlib
import os
import socket
import subprocess
from pathlib import Path

__version__ = "0.1.0"

_ROOT = Path(__file__).resolve().parent.parent


def git_state(root: Path | str) -> dict:
    """``git_commit``: the commit of the tree at ``root``, with '+dirty' when tracked files
    differ from it; ``git_diff_sha``: the first 12 hex digits of sha256(``git diff HEAD``)
    when dirty (None when clean), so a result of a dirty tree can be matched to the diff that
    made it. Both 'unknown' where git or the repository is missing."""
    def git(*args: str) -> bytes:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                              timeout=10, check=True).stdout
    try:
        sha = git("rev-parse", "HEAD").decode().strip()
        # binary diffs too, so a changed data file changes the hash
        diff = git("diff", "HEAD", "--binary", "--no-color", "--no-ext-diff")
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_diff_sha": "unknown"}
    if not diff:
        return {"git_commit": sha, "git_diff_sha": None}
    return {"git_commit": sha + "+dirty",
            "git_diff_sha": hashlib.sha256(diff).hexdigest()[:12]}


@functools.lru_cache(maxsize=1)
def _this_tree() -> dict:
    # ELM_GIT_COMMIT: set where the code runs without its .git (a Ray job's copied working
    # dir, an installed wheel); ELM_GIT_DIFF_SHA goes with it
    if os.environ.get("ELM_GIT_COMMIT"):
        return {"git_commit": os.environ["ELM_GIT_COMMIT"],
                "git_diff_sha": os.environ.get("ELM_GIT_DIFF_SHA")}
    return git_state(_ROOT)


def provenance() -> dict:
    return {"package_version": __version__, **_this_tree(), "node": socket.gethostname()}
