"""A local study (``--address local``) keeps every Ray listener on loopback.

A study runs as a user runs it (the CLI in a subprocess, with the dashboard), and, cheaper, a
driver that only calls ``init_ray`` and runs one task; meanwhile the listening TCP sockets of
the driver and of every process it started (GCS, raylet, agents, dashboard, workers) are
sampled with psutil. Ray 2.60's defaults put several of them on the host's address or on
0.0.0.0 (docs/security.md); any such socket fails the test.
"""
import ipaddress
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[2]


def is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    if getattr(addr, "ipv4_mapped", None) is not None:      # ::ffff:127.0.0.1
        addr = addr.ipv4_mapped
    return addr.is_loopback


def listeners(root: psutil.Process) -> set[tuple[str, int, str]]:
    """(ip, port, process name) of every listening TCP socket in root's process tree."""
    out = set()
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return out
    for p in procs:
        try:
            name = p.name()
            for c in p.net_connections(kind="tcp"):
                if c.status == psutil.CONN_LISTEN:
                    out.add((c.laddr.ip, c.laddr.port, name))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def test_is_loopback_classifies_addresses():
    assert all(map(is_loopback, ["127.0.0.1", "::1", "::ffff:127.0.0.1", "127.0.1.1"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.0.2.2", "::ffff:10.0.0.1"]))


# plain: init_ray itself with a task running (cheap); dashboard: a whole study through the CLI
# (Tune's trial workers, the dashboard and its agents: the most listeners a study starts)
INIT_ONLY = """
import ray, time
from study.launcher import init_ray
init_ray("local", False, "127.0.0.1")
@ray.remote
def hold():
    time.sleep(4)
ray.get(hold.remote())
"""
STUDY = ["-m", "study", "run", "smoke", "--seeds", "0", "--set", "epochs=1", "--dashboard"]


@pytest.mark.parametrize("dashboard", [False, True], ids=["plain", "dashboard"])
def test_local_study_listens_on_loopback_only(tmp_path, dashboard):
    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")    # short: Ray's socket paths
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)      # the launcher must set it itself
    cmd = [sys.executable, *(STUDY + ["--storage", str(tmp_path)] if dashboard
                             else ["-c", INIT_ONLY])]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen: set[tuple[str, int, str]] = set()
    try:
        root = psutil.Process(proc.pid)
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            seen |= listeners(root)
            time.sleep(0.3)
        out = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 0, out[-3000:]
    names = {name for _, _, name in seen}
    # the sampling saw the Ray session (otherwise an empty set would pass)
    assert {"gcs_server", "raylet"} <= names, sorted(seen)
    if dashboard:
        assert "ray::DashboardAgent" in names, sorted(seen)
        assert "Ray dashboard: http://127.0.0.1:" in out, out[-2000:]
    exposed = sorted(s for s in seen if not is_loopback(s[0]))
    assert not exposed, f"listening off loopback: {exposed}"
