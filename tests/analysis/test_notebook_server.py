"""`make notebooks` starts JupyterLab as documented: loopback only, token required, serving
analysis/notebooks, with the study passed in."""
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, tries: int = 40):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # loopback direct
    for _ in range(tries):       # the URL is logged a moment before the port accepts
        try:
            with opener.open(url, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, None
        except urllib.error.URLError:
            time.sleep(0.25)
    raise AssertionError(f"nothing answers at {url}")


@pytest.mark.skipif(not (REPO / ".venv" / "bin" / "jupyter-lab").exists(),
                    reason="JupyterLab is not installed in .venv (make setup installs it)")
def test_make_notebooks_serves_on_loopback_with_a_token(tmp_path):
    port = _free_port()
    # -o: take the installed venv as it is (do not re-run pip from a test)
    proc = subprocess.Popen(["make", "-s", "-o", ".venv/.installed", "notebooks",
                             f"NB_PORT={port}", f"ELM_STUDY={tmp_path}"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")},
                            start_new_session=True)
    try:
        url, deadline = None, time.time() + 90
        while url is None and time.time() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            m = re.search(rf"http://127\.0\.0\.1:{port}/lab\?token=(\w+)", line)
            url = m and m.group(0)
        assert url, "JupyterLab printed no tokened URL"
        token = url.split("token=")[1]
        base = f"http://127.0.0.1:{port}"
        assert _get(f"{base}/api/contents")[0] == 403                  # no token, no access
        status, listing = _get(f"{base}/api/contents?token={token}")
        assert status == 200
        assert {"ablations.ipynb", "table1.ipynb"} <= {f["name"] for f in listing["content"]}
        host = socket.gethostbyname(socket.gethostname())
        if not host.startswith("127."):     # not reachable on the machine's own address
            with pytest.raises(OSError):
                socket.create_connection((host, port), timeout=2).close()
        # the kernel gets the study: Jupyter passes the server's environment on
        out = subprocess.run(["make", "-s", "-n", "-o", ".venv/.installed", "notebooks",
                              f"ELM_STUDY={tmp_path}"], cwd=REPO, capture_output=True,
                             text=True).stdout
        assert f'ELM_STUDY="{tmp_path}"' in out and "--ServerApp.ip=127.0.0.1" in out
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
