"""The analysis tests' build-once fixture helper: a build that raises leaves nothing behind,
so the next worker (or test) builds afresh and meets the real error, not a stale folder."""
import pytest

from build_once import built_once

NAME = "built-once-probe"   # beside the analysis fixtures' folders, under this run's base temp


def test_a_failed_build_is_removed_and_built_again(tmp_path_factory):
    with pytest.raises(RuntimeError, match="build broke"):
        with built_once(tmp_path_factory, NAME) as (path, todo):
            assert todo
            path.mkdir()
            (path / "half").write_text("x")
            raise RuntimeError("build broke")
    assert not path.exists()
    with built_once(tmp_path_factory, NAME) as (path, todo):
        assert todo                      # not marked built: this one builds it
        path.mkdir()                     # no FileExistsError from the failed attempt
    with built_once(tmp_path_factory, NAME) as (path, todo):
        assert not todo                  # built once, reused after
