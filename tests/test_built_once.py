"""The analysis tests' build-once fixture helper: a build that raises leaves nothing behind,
so the next worker (or test) builds afresh and meets the real error, not a stale folder."""
import pytest

from build_once import built_once


class _Base:
    def __init__(self, root):
        self.root = root

    def getbasetemp(self):
        return self.root


def test_a_failed_build_is_removed_and_built_again(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    base = _Base(tmp_path)
    with pytest.raises(RuntimeError, match="build broke"):
        with built_once(base, "thing") as (path, todo):
            assert todo
            path.mkdir()
            (path / "half").write_text("x")
            raise RuntimeError("build broke")
    assert not (tmp_path / "thing").exists()
    with built_once(base, "thing") as (path, todo):
        assert todo                      # not marked built: this one builds it
        path.mkdir()                     # no FileExistsError from the failed attempt
    with built_once(base, "thing") as (path, todo):
        assert not todo                  # built once, reused after
