"""A test run keeps its state to itself: its own Ray token and temp folders (tests/conftest.py),
nothing read from or written into the user's home. `.ci/run` also runs the suite with a
fresh, empty HOME and fails if anything was written there."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

RUN_STATE = os.environ["ELM_TEST_RUN_STATE"]


def test_the_run_brings_its_own_ray_token_and_temp_folders():
    token = Path(os.environ["RAY_AUTH_TOKEN_PATH"])
    assert token.is_relative_to(RUN_STATE) and "RAY_AUTH_TOKEN" not in os.environ
    assert len(token.read_text()) == 64 and (token.stat().st_mode & 0o077) == 0
    for var in ("RAY_TMPDIR", "MPLCONFIGDIR", "TORCHINDUCTOR_CACHE_DIR", "XDG_CACHE_HOME",
                "XDG_CONFIG_HOME", "JUPYTER_RUNTIME_DIR"):
        assert Path(os.environ[var]).is_relative_to(RUN_STATE), var
        assert not Path(os.environ[var]).is_relative_to(Path.home()), var


@pytest.mark.ray
def test_a_local_ray_on_an_empty_home_writes_nothing_there(tmp_path):
    """A user-style local `ray.init` (token auth on by default) in a home that never ran Ray:
    with the run's token it starts and leaves the home empty; Ray alone would write
    ~/.ray/auth_token there (and `ray start --head` would refuse)."""
    home = tmp_path / "home"
    home.mkdir()
    code = ("import ray; ray.init(address='local', num_cpus=1, include_dashboard=False); "
            "assert ray.get(ray.put(7)) == 7; ray.shutdown()")
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "HOME": str(home)},
                   check=True, timeout=120, capture_output=True)
    assert list(home.rglob("*")) == []
