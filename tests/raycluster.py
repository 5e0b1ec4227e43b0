"""Real Ray clusters for tests, started with `ray start` on loopback and stopped by PID.

Each node runs under its own session id (`setsid`), so a cluster's processes are exactly the
processes of its sessions: stopping it never touches another Ray on this machine (never
`ray stop`, which kills every Ray here). Used by the session's shared cluster
(tests/conftest.py: ``shared_ray``) and by the two-node test."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

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


def cluster_env() -> dict:
    """The environment of a cluster's nodes and of every client (CLI, `ray job submit`):
    Ray's token auth as users run it (the token is this test run's own, RAY_AUTH_TOKEN_PATH,
    made by tests/conftest.py: never the user's ~/.ray), everything on loopback, no usage
    stats."""
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "RAY_AUTH_MODE": "token", "RAY_DEDUP_LOGS": "0", "PYTHONUNBUFFERED": "1"}


def job_env(cluster: dict, **env_vars: str) -> dict:
    """The environment of a CLI study joining ``cluster`` whose trials must see ``env_vars``
    (a fault to inject): on a cluster a trial's worker inherits its raylet's environment,
    not the driver's, so they travel as the job's runtime_env, the way `ray job submit
    --runtime-env-json` hands its own to a driver (Ray merges the job config it finds in
    RAY_JOB_CONFIG_JSON_ENV_VAR)."""
    return {**cluster["env"], "RAY_JOB_CONFIG_JSON_ENV_VAR": json.dumps(
        {"runtime_env": {"env_vars": env_vars}})}


def agent_ports() -> list[str]:
    """Each node's dashboard agent on its own free port: the default (52365) is one fixed
    port, so two nodes on one machine, or any other Ray still holding it, leave the job
    server with no agent ("No available agent to submit job")."""
    return ["--dashboard-agent-listen-port", str(free_port()),
            "--dashboard-agent-grpc-port", str(free_port()),
            "--metrics-export-port", str(free_port())]


def _started(cmd: list[str], env: dict, sids: set) -> None:
    p = subprocess.Popen(["setsid", *cmd], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    sids.add(p.pid)                      # setsid execs in place: the pid is the session id
    out, _ = p.communicate(timeout=180)
    assert p.returncode == 0, out


def start_head(tmp: str, sids: set, *, num_cpus: int, dashboard: bool = False,
               num_gpus: int = 0) -> dict:
    """A head node on 127.0.0.1; returns its address, dashboard URL (if any) and env."""
    env = cluster_env()
    port, dash = free_port(), free_port()
    cmd = [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
           "--num-cpus", str(num_cpus), "--num-gpus", str(num_gpus), "--temp-dir", f"{tmp}/head",
           "--disable-usage-stats", *agent_ports()]
    cmd += (["--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
             "--dashboard-port", str(dash)] if dashboard else ["--include-dashboard", "false"])
    _started(cmd, env, sids)
    return {"address": f"127.0.0.1:{port}", "env": env,
            "dashboard": f"http://127.0.0.1:{dash}" if dashboard else None}


def join_worker(tmp: str, sids: set, address: str, *, num_cpus: int, env: dict) -> None:
    """A second node on loopback joining ``address`` (the joining node must be told that a
    second node on loopback is intended)."""
    _started([sys.executable, "-c", LOOPBACK_RAY, "start", "--address", address,
              "--node-ip-address", "127.0.0.1", "--num-cpus", str(num_cpus), "--num-gpus", "0",
              "--temp-dir", f"{tmp}/worker", "--disable-usage-stats", *agent_ports()],
             {**env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1"}, sids)


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


def sigkill_driver_when(cmd: list[str], env: dict, cwd, ready, timeout: float = 240,
                        settle: float = 0.0):
    """Starts a study driver and SIGKILLs it (the driver only: its job's actors go with it)
    as soon as ``ready()`` returns a truthy state, polled every 0.2 s, or at ``timeout``,
    ``settle`` seconds after that state was seen. Returns the last state, so the test can
    assert the kill came at the moment it meant."""
    driver = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    state, deadline = None, time.time() + timeout
    try:
        while time.time() < deadline:
            state = ready()
            if state:
                time.sleep(settle)
                break
            time.sleep(0.2)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    return state
