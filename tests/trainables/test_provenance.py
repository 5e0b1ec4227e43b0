"""Provenance of a result: the commit, '+dirty', and a hash of the diff of a dirty tree,
measured on a real temporary git repository."""
from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest

from trainables.provenance import __version__, git_state, provenance

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(repo, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def repo(tmp_path):
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@example.org")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", "a.py")
    git(tmp_path, "commit", "-q", "-m", "one")
    return tmp_path


def test_clean_tree_has_no_diff_hash(repo):
    sha = git(repo, "rev-parse", "HEAD").strip()
    assert git_state(repo) == {"git_commit": sha, "git_diff_sha": None}


def test_dirty_tree_records_a_hash_of_its_diff(repo):
    sha = git(repo, "rev-parse", "HEAD").strip()
    (repo / "a.py").write_text("x = 2\n")
    state = git_state(repo)
    diff = subprocess.run(["git", "-C", str(repo), "diff", "HEAD", "--binary"],
                          capture_output=True, check=True).stdout
    assert state == {"git_commit": sha + "+dirty",
                     "git_diff_sha": hashlib.sha256(diff).hexdigest()[:12]}
    (repo / "a.py").write_text("x = 3\n")          # another edit: another hash
    assert git_state(repo)["git_diff_sha"] != state["git_diff_sha"]
    (repo / "a.py").write_text("x = 2\n")          # the same edit again: the same hash
    assert git_state(repo) == state
    git(repo, "add", "a.py")                       # staged changes count too (diff HEAD)
    assert git_state(repo) == state


def test_untracked_files_do_not_make_a_tree_dirty(repo):
    (repo / "notes.txt").write_text("scratch")
    assert git_state(repo)["git_diff_sha"] is None


def test_not_a_repository(tmp_path):
    assert git_state(tmp_path) == {"git_commit": "unknown", "git_diff_sha": "unknown"}


def test_provenance_carries_version_and_git_state():
    p = provenance()
    assert p["package_version"] == __version__
    assert {"git_commit", "git_diff_sha", "node"} <= set(p)
    if p["git_commit"] != "unknown":                # a clone without .git says unknown
        assert (p["git_diff_sha"] is None) == (not p["git_commit"].endswith("+dirty"))


def test_the_version_lives_in_one_place():
    tomllib = pytest.importorskip("tomllib")   # Python >= 3.11
    from pathlib import Path
    meta = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert "version" not in meta["project"] and "version" in meta["project"]["dynamic"]
    attr = meta["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "trainables.provenance.__version__"
