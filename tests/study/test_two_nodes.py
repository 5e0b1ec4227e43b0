"""A real two-node Ray cluster on this machine (two `ray start` processes on loopback, each
with its own temp dir and ports, started under their own session ids and stopped by PID —
never `ray stop`, which would kill every Ray here), a study submitted with `ray job submit`."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from analysis.collect import load_study, read_results, trial_dirs

pytestmark = [pytest.mark.ray, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))


# Ray 2.60's `ray start` refuses a second node unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1, and
# then rewrites 127.0.0.1 to the machine's external address. This runs the same `ray start`
# CLI with that one rewrite disabled, so the second node stays on loopback like the head.
LOOPBACK_RAY = ("import sys, ray._private.services as s; s.resolve_ip_for_localhost = lambda h: h;"
                " from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_pids(sids) -> list[tuple[int, str]]:
    out = subprocess.run(["ps", "-eo", "pid=,sid=,comm="], capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        pid, sid, comm = line.split(None, 2)
        if int(sid) in sids and int(pid) != os.getpid():
            rows.append((int(pid), comm))
    return rows


def stop(sids) -> None:
    """Ray's order: raylets, then the rest, then gcs_server; SIGTERM, then SIGKILL."""
    def order(p):
        return 0 if "raylet" in p[1] else 2 if "gcs_server" in p[1] else 1
    for pid, _ in sorted(session_pids(sids), key=order):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        time.sleep(0.2)
    deadline = time.time() + 10
    while session_pids(sids) and time.time() < deadline:
        time.sleep(0.5)
    for pid, _ in session_pids(sids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def agent_ports() -> list[str]:
    """Each node's dashboard agent on its own free port: the default (52365) is one fixed
    port, so two nodes on one machine, or any other Ray still holding it, leave the job
    server with no agent ("No available agent to submit job")."""
    return ["--dashboard-agent-listen-port", str(free_port()),
            "--dashboard-agent-grpc-port", str(free_port()),
            "--metrics-export-port", str(free_port())]


@pytest.fixture
def cluster():
    tmp = tempfile.mkdtemp(prefix="rc", dir="/tmp")
    port, dash = free_port(), free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "RAY_AUTH_MODE": "token"}
    sids = set()
    head = subprocess.Popen(
        ["setsid", RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--num-cpus", "1", "--num-gpus", "0", "--temp-dir", f"{tmp}/head",
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
         "--include-dashboard", "true", "--disable-usage-stats", *agent_ports()],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        sids.add(head.pid)
        out, _ = head.communicate(timeout=120)
        assert head.returncode == 0, out
        worker = subprocess.Popen(
            ["setsid", sys.executable, "-c", LOOPBACK_RAY, "start", "--address", f"127.0.0.1:{port}", "--node-ip-address",
             "127.0.0.1", "--num-cpus", "1", "--num-gpus", "0", "--temp-dir", f"{tmp}/worker",
             "--disable-usage-stats", *agent_ports()],
            # the joining node must be told that a second node on loopback is intended
            env={**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        sids.add(worker.pid)
        out, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0, out
        yield {"address": f"127.0.0.1:{port}", "dashboard": f"http://127.0.0.1:{dash}",
               "env": env}
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
