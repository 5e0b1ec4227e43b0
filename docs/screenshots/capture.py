"""Re-make the README's screenshots with headless Chromium (Debian's `chromium` package).

    python docs/screenshots/capture.py [--epochs 30]        # the Ray dashboard, live
    python docs/screenshots/capture.py study results/quickstart   # after `make demo`

The first runs a smoke study with ``--dashboard``; while its trials run, photographs the
dashboard's Jobs and Actors pages (the job named after the study, the trials named after their
method, seed and trial id) and one trial's log. The second photographs a finished study: its
report (top of the page, the per-class figure, the UMAP feature-embedding figure when the study
has checkpoints), TensorBoard's scalars page for it, and the ablation notebook open in
JupyterLab with its plots rendered (executed on the study first).

The dashboard asks for Ray's token (``ray get-auth-token``). Cookies are per host, not per
port, so a throw-away page on another loopback port sets the dashboard's
``ray-authentication-token`` cookie and redirects to the dashboard page to photograph.
"""
from __future__ import annotations

import argparse
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"


def token() -> str:
    path = Path.home() / ".ray" / "auth_token"
    return path.read_text().strip() if path.exists() else ""


def cookie_server(target_base: str, tok: str) -> int:
    """A loopback page that sets the token cookie and redirects to ``target_base + path``."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Set-Cookie", f"ray-authentication-token={tok}; Path=/")
            self.send_header("Location", target_base + self.path.lstrip("/").replace("~", "#"))
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


def shoot(url: str, out: Path, size: str = "1600,1000", wait_ms: int = 12000) -> None:
    profile = tempfile.mkdtemp(prefix="chr")
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={profile}", f"--window-size={size}",
           f"--virtual-time-budget={wait_ms}", f"--screenshot={out}", url]
    subprocess.run(cmd, capture_output=True, timeout=120)
    shutil.rmtree(profile, ignore_errors=True)
    print(f"wrote {out} ({out.stat().st_size if out.exists() else 0} bytes) from {url}")


def wait_for(url: str, seconds: int = 60) -> None:
    for _ in range(seconds):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(1)


def tensorboard(study: Path, env: dict) -> None:
    tb = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(study),
                           "--host", "127.0.0.1", "--port", "6123"], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("http://127.0.0.1:6123/")
        shoot("http://127.0.0.1:6123/?pinnedCards=%5B%5D#timeseries&tagFilter=test%2F",
              HERE / "tensorboard-scalars.png", "1600,1000", 15000)
    finally:
        tb.terminate()


def report_figure(text: str, stem: str, out: Path, size: str) -> bool:
    """One figure of the report (``<figure id="fig-STEM">``) alone on a page with the report's
    styles (a #fragment shot of the long page came out blank); False if the report has none."""
    style = "".join(re.findall(r"<style.*?</style>", text, re.S))
    fig = re.search(rf'<figure id="fig-{stem}">.*?</figure>', text, re.S)
    if fig is None:
        return False
    one = Path(tempfile.mkdtemp(prefix="fig")) / "figure.html"
    one.write_text(f'<!doctype html><html><head><meta charset="utf-8">{style}</head>'
                   f"<body><main>{fig.group(0)}</main></body></html>")
    shoot(one.as_uri(), out, size, 5000)
    return True


def study_shots(study: Path) -> int:
    """Report, TensorBoard and the ablation notebook of a finished study."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run([sys.executable, "-m", "analysis", "report", str(study)], cwd=REPO,
                   check=True)
    page = (study / "report" / "report.html").resolve().as_uri()
    shoot(page, HERE / "report_top.png", "1280,1000", 3000)
    text = (study / "report" / "report.html").read_text()
    report_figure(text, "per_class", HERE / "report_figure.png", "1280,760")
    if not report_figure(text, "embedding", HERE / "report_embedding.png", "1280,900"):
        print("no embedding figure in the report (the study has no checkpoints, or the "
              "dataset's training images are not in memory): report_embedding.png not made")
    tensorboard(study, env)
    import nbformat
    from nbclient import NotebookClient
    work = Path(tempfile.mkdtemp(prefix="nbshow"))
    nb = nbformat.read(REPO / "analysis" / "notebooks" / "ablations.ipynb", as_version=4)
    os.environ["ELM_STUDY"], os.environ["ELM_FIGURES"] = str(study.resolve()), str(work / "f")
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(work)}}).execute()
    nbformat.write(nb, work / "ablations.ipynb")
    tok = f"shots{os.getpid()}"
    lab = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--ServerApp.ip=127.0.0.1",
                            "--ServerApp.port=8931", "--ServerApp.open_browser=False",
                            f"--ServerApp.root_dir={work}", f"--IdentityProvider.token={tok}",
                            "--allow-root"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        wait_for("http://127.0.0.1:8931/api/status?token=" + tok)
        shoot(f"http://127.0.0.1:8931/lab/tree/ablations.ipynb?token={tok}",
              HERE / "notebook_ablations.png", "1400,1800", 30000)
    finally:
        lab.terminate()
    return 0


def main() -> int:
    if sys.argv[1:2] == ["study"]:
        return study_shots(Path(sys.argv[2]))
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--storage", default=tempfile.mkdtemp(prefix="shots"))
    args = ap.parse_args()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1",
           "RAY_TMPDIR": tempfile.mkdtemp(prefix="rs", dir="/tmp")}
    name = "smoke-watch"
    proc = subprocess.Popen([sys.executable, "-m", "study", "run", "smoke", "--dashboard",
                             "--storage", args.storage, "--name", name,
                             "--set", f"epochs={args.epochs}"], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    dash, shot = None, False
    for line in proc.stdout:
        sys.stdout.write(line)
        m = re.search(r"Ray dashboard: (http://\S+)", line)
        if m and not dash:
            dash = m.group(1).rstrip("/") + "/"
        if dash and not shot and re.search(r" ep 2/", line):
            port = cookie_server(dash, token())
            base = f"http://127.0.0.1:{port}/"
            shoot(base + "~/jobs", HERE / "ray-dashboard-jobs.png", "1600,700")
            shoot(base + "~/actors", HERE / "ray-dashboard-actors.png", "1600,900")
            shoot(base + "~/logs", HERE / "ray-dashboard-logs.png", "1600,900")
            shot = True
    proc.wait()
    tensorboard(Path(args.storage) / name, env)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
