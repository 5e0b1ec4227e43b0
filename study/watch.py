"""Watching a study from its storage folder, without Ray: ``elm-study status STUDY --watch``
(refreshes until every trial has ended) and ``elm-study optuna-dashboard STUDY`` (their flags
are in :mod:`study.cli`'s parser)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from analysis.formats import mean_std
from study.store import StudyError
from trainables.store import StudyRecord, read_study

ENDED = ("terminated", "diverged", "stopped", "errored")


# =========================================================================================
# status --watch
# =========================================================================================
def status_view(path: Path, study: StudyRecord) -> tuple[list[str], bool]:
    """(lines to show, whether the study has ended): counts, per-method mean ± std of the
    last evaluated top-1 so far, and every running trial with its epoch."""
    from analysis.collect import load_study
    df = load_study(path)
    expected = study.expected_trials or len(df)
    lines = []
    if not len(df):
        return [f"study {study.name}: no trial has reported yet (0/{expected})"], False
    counts = df["status"].value_counts().to_dict()
    lines.append(f"study {study.name}: {len(df)}/{expected} trials seen; " + ", ".join(
        f"{k} {v}" for k, v in sorted(counts.items())))
    lines.append("method                     top-1 so far (mean ± std, n)   epochs")
    for method, g in df.groupby("method", sort=False):
        top = g["test_top1"].dropna().astype(float)
        mean = mean_std(top.mean() if len(top) else None, top.std(ddof=1), len(top), width=6)
        lines.append(f"  {str(method):<24s} {mean:<20s} (n={len(top)})  "
                     f"{int(g['epochs_done'].fillna(0).sum())}/"
                     f"{int(g['epochs'].fillna(0).sum())}")
    running = df[df["status"] == "running"]
    for _, r in running.iterrows():
        top = r.get("test_top1")
        top = f"top-1 {top:.2f}" if isinstance(top, float) and top == top else "no eval yet"
        lines.append(f"  running: {r['method']} seed {r.get('seed')} [{r['trial_id']}]  "
                     f"ep {r['epochs_done']}/{r.get('epochs')}  {top}")
    ended = len(df) >= expected and bool(df["status"].isin(ENDED).all())
    return lines, ended


def watch_status(path: Path, interval: float, out=None) -> int:
    """Print the view every ``interval`` s until the study ends; 0 then, 130 on Ctrl-C."""
    out = out or sys.stdout
    tty = out.isatty()
    try:
        while True:
            lines, ended = status_view(path, read_study(path))
            stamp = time.strftime("%H:%M:%S")
            if tty:
                out.write("\033[H\033[J")   # redraw in place
            out.write(f"[{stamp}] " + "\n".join(lines) + "\n")
            if not tty:
                out.write("\n")
            out.flush()
            if ended:
                out.write(f"study ended; results: {path}\n")
                return 0
            time.sleep(max(interval, 0.5))
    except KeyboardInterrupt:
        return 130


# =========================================================================================
# optuna-dashboard
# =========================================================================================
def optuna_db(path: Path) -> Path:
    """The study's Optuna sqlite database (an Optuna search keeps one in its folder)."""
    dbs = sorted(p for ext in ("*.db", "*.sqlite", "*.sqlite3") for p in Path(path).rglob(ext)
                 if p.name != "mlflow.db")
    if not dbs:
        raise StudyError(f"{path} holds no Optuna database (*.db): only Optuna studies "
                         "(e.g. optuna_elm) have one")
    return dbs[0]


def optuna_dashboard(path: Path, port: int) -> int:
    exe = shutil.which("optuna-dashboard") or str(Path(sys.executable).with_name(
        "optuna-dashboard"))
    if not Path(exe).exists():
        raise StudyError("optuna-dashboard is not installed (pip install optuna-dashboard)")
    url = f"sqlite:///{optuna_db(path)}"
    print(f"optuna-dashboard on http://127.0.0.1:{port} for {url} (Ctrl-C to stop)", flush=True)
    return subprocess.call([exe, url, "--host", "127.0.0.1", "--port", str(port)])
