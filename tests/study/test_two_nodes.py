"""A real two-node Ray cluster on this machine (two `ray start` processes on loopback, each
with its own temp dir and ports, started under their own session ids and stopped by PID —
never `ray stop`, which would kill every Ray here), a study submitted with `ray job submit`."""
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from raycluster import RAY, join_worker, start_head, stop

from analysis.collect import load_study, read_results, trial_dirs

pytestmark = [pytest.mark.ray, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cluster():
    tmp = tempfile.mkdtemp(prefix="rc", dir="/tmp")
    sids = set()
    try:
        head = start_head(tmp, sids, num_cpus=1, dashboard=True)
        join_worker(tmp, sids, head["address"], num_cpus=1, env=head["env"])
        yield head
    finally:
        stop(sids)


def test_study_submitted_as_a_job_runs_on_both_nodes(cluster, tmp_path):
    env = cluster["env"]
    # the dashboard/job server listens on loopback only
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
    dash_port = cluster["dashboard"].rsplit(":", 1)[1]
    binds = [ln.split()[3] for ln in listening.splitlines() if ln.split()[3].endswith(
        f":{dash_port}")]
    assert binds and all(b.startswith(("127.0.0.1", "[::1]", "localhost")) for b in binds), binds
    runtime_env = json.dumps({"working_dir": str(REPO), "excludes": [
        ".venv", "data", "results", ".git", "**/__pycache__"]})
    deadline = time.time() + 180
    while True:     # the job agent comes up a little after `ray start` returns
        p = subprocess.run(
            [RAY, "job", "submit", "--address", cluster["dashboard"], "--runtime-env-json",
             runtime_env, "--", sys.executable, "-m", "study", "run", "smoke", "--address",
             "auto", "--storage", str(tmp_path), "--name", "twonode"],
            env=env, capture_output=True, text=True, timeout=600)
        if ("No available agent to submit job" not in p.stdout + p.stderr
                or time.time() > deadline):
            break
        time.sleep(2)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    df = load_study(tmp_path / "twonode")
    assert len(df) == 4 and set(df["status"]) == {"terminated"}
    nodes = {read_results(d)[-1]["node_id"] for d in trial_dirs(tmp_path / "twonode")}
    assert len(nodes) == 2, nodes
