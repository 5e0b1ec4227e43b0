"""Fixtures of the study tests that drive the CLI in subprocesses."""
import os
import shutil
import tempfile

import pytest


@pytest.fixture
def env():
    """The environment of a CLI subprocess that starts its own local Ray: a short temporary
    directory (Ray's socket paths must stay under 107 bytes), no usage stats, undeduplicated
    and unbuffered output (the tests read the console)."""
    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    e = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0",
         "PYTHONUNBUFFERED": "1", "RAY_TMPDIR": ray_tmp}
    yield e
    shutil.rmtree(ray_tmp, ignore_errors=True)
