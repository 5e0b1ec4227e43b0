"""Watching a real study (one shared smoke study on a local Ray, run through the CLI with
``--log mlflow`` while ``status --watch`` follows it): the console's progress lines, the trial
gauges on the node's Prometheus endpoint while it runs, TensorBoard event files and MLflow runs
afterwards, each checked against the trials' own result.json rows."""
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from trainables.methods import flatten_trial

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[2]
NAME = "watched"
LABELS = {"CE", "ELM + DRW (λ=0.5)"}


def _env():
    ray_tmp = tempfile.mkdtemp(prefix="rw", dir="/tmp")    # short: Ray's socket paths
    return ray_tmp, {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0",
                     "PYTHONUNBUFFERED": "1", "RAY_TMPDIR": ray_tmp,
                     # export gauges every second (default 10 s) so a smoke trial shows up
                     "RAY_metrics_report_interval_ms": "1000"}


def _cli(*args):
    return [sys.executable, "-m", "study", *args]


def _scrape(url: str, seen: list, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            body = urllib.request.urlopen(url, timeout=2).read().decode()
            if "elm_trial_test_top1" in body:
                seen.append(body)
        except OSError:
            pass
        stop.wait(0.5)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Runs the study once; returns its console output, scrapes, watcher output and folder."""
    storage = tmp_path_factory.mktemp("watch")
    ray_tmp, env = _env()
    proc = subprocess.Popen(_cli("run", "smoke", "--storage", str(storage), "--name", NAME,
                                 "--log", "mlflow", "--seeds", "0"), cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines, scrapes, stop, watcher = [], [], threading.Event(), None
    deadline = time.time() + 240
    for line in proc.stdout:
        lines.append(line)
        m = re.search(r"trial metrics \(Prometheus\): (\S+)", line)
        if m:
            threading.Thread(target=_scrape, args=(m.group(1), scrapes, stop),
                             daemon=True).start()
        if watcher is None and (storage / NAME / "study.json").exists():
            watcher = subprocess.Popen(_cli("status", NAME, "--storage", str(storage),
                                            "--watch", "--interval", "2"), cwd=REPO, env=env,
                                       text=True, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT)
        if time.time() > deadline:
            proc.kill()
    proc.wait(timeout=60)
    stop.set()
    watched = watcher.communicate(timeout=60)[0] if watcher else ""
    yield {"out": "".join(lines), "rc": proc.returncode, "scrapes": scrapes,
           "watch": watched, "watch_rc": watcher.returncode if watcher else None,
           "path": storage / NAME}
    shutil.rmtree(ray_tmp, ignore_errors=True)


def _results(path: Path) -> dict:
    """trial_id -> its result.json rows (the numbers every view must agree with)."""
    out = {}
    for f in path.glob("*/result.json"):
        rows = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
        out[rows[-1]["trial_id"]] = {"dir": f.parent, "rows": rows}
    return out


def test_console_has_one_line_per_evaluation_and_no_ray_chatter(study):
    out = study["out"]
    assert study["rc"] == 0, out[-3000:]
    pat = re.compile(r"^(.+?) synthetic LT ρ=10 seed (\d)  ep (\d+)/2  top-1 (\d+\.\d\d) "
                     r"\(best (\d+\.\d\d) @\d+\)  many \S+  med \S+  few \S+  \S+ s/ep  eta ",
                     re.M)
    got = {(m[0], int(m[1]), int(m[2])): float(m[3]) for m in pat.findall(out)}
    expected = {}
    for t in _results(study["path"]).values():
        for r in t["rows"]:
            if "test_top1" in r:
                seed = flatten_trial(r["config"])["seed"]
                expected[(r["method"], seed, r["epoch"])] = round(r["test_top1"], 2)
    assert len(expected) == 4 and {k[0] for k in expected} == LABELS
    assert got == expected, out[-4000:]
    assert len(pat.findall(out)) == 4            # once each: no duplicate lines
    for chatter in ("Checkpoint successfully created", "Configuration for experiment",
                    "Tuner.restore", "Trial status:", "╭"):
        assert chatter not in out
    assert len(re.findall(r"^done   ", out, re.M)) == 2
    assert re.search(r"^study watched: 2 done · 0 running · 0 pending · 0 failed · "
                     r"epochs 4/4", out, re.M)


def test_prometheus_endpoint_serves_trial_gauges_with_tags(study):
    assert study["scrapes"], "no scrape of the metrics endpoint showed a trial gauge"
    results = _results(study["path"])
    tops = {round(r["test_top1"], 6) for t in results.values() for r in t["rows"]
            if "test_top1" in r}
    gauge = re.compile(r'^ray_elm_trial_test_top1\{([^}]*)\} (\S+)$', re.M)
    found = []
    for body in study["scrapes"]:
        for tags, value in gauge.findall(body):
            found.append((dict(re.findall(r'(\w+)="([^"]*)"', tags)), float(value)))
    assert found
    for tags, value in found:
        assert tags["study"] == NAME and tags["trial"] in results
        assert tags["method"] in {"CE", "ELM + DRW (lambda=0.5)"}
        assert tags["seed"] == "0" and tags["dataset"] == "synthetic-lt"
        assert round(value, 6) in tops
    for name in ("ray_elm_trial_best_top1", "ray_elm_trial_train_loss", "ray_elm_trial_epoch",
                 "ray_elm_trial_images_per_s"):
        assert any(name + "{" in body for body in study["scrapes"]), name


def test_tensorboard_events_hold_test_top1_for_every_evaluated_epoch(study):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    results = _results(study["path"])
    assert len(results) == 2
    for t in results.values():
        runs = [p.parent for p in t["dir"].glob("events.out.tfevents.*")]
        assert len(runs) == 1 and not list(t["dir"].glob("*/events.out.tfevents.*")), runs
        # the trial folder, TensorBoard's run name, says what the trial is
        assert re.fullmatch(r"(CE|ELM\+DRW_lam0\.5)_seed0_\w+_\d{5}", runs[0].name), runs[0].name
        acc = EventAccumulator(str(runs[0]))
        acc.Reload()
        assert {"test/top1", "test/few", "train/loss"} <= set(acc.Tags()["scalars"])
        evals = [r for r in t["rows"] if "test_top1" in r]
        top1 = acc.Scalars("test/top1")
        assert [e.step for e in top1] == [r["epoch"] for r in evals]
        for e, r in zip(top1, evals):
            assert math.isclose(e.value, r["test_top1"], rel_tol=1e-6)


def test_mlflow_has_one_run_per_trial_with_params_and_history(study):
    import mlflow
    results = _results(study["path"])
    uri = f"sqlite:///{study['path'] / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    every = mlflow.search_runs(experiment_names=[NAME])
    parent = every[every["tags.kind"] == "study"]
    runs = every[every["tags.kind"] != "study"]
    assert len(parent) == 1 and len(runs) == 2
    assert set(runs["tags.mlflow.parentRunId"]) == {parent["run_id"].iloc[0]}
    # the study's run holds the study record and its report, as analysis writes it
    client = mlflow.MlflowClient(uri)
    stored = {a.path for a in client.list_artifacts(parent["run_id"].iloc[0])}
    assert {"study.json", "report"} <= stored, stored
    report = {a.path for a in client.list_artifacts(parent["run_id"].iloc[0], "report")}
    assert {"report/report.html", "report/report.md", "report/summary.csv"} <= report, report
    assert set(runs["tags.trial_id"]) == set(results)
    assert set(runs["tags.method_label"]) == LABELS
    assert set(runs["tags.study"]) == {NAME}
    client = mlflow.MlflowClient(uri)
    for _, run in runs.iterrows():
        rows = results[run["tags.trial_id"]]["rows"]
        assert run["params.loss"] in {"ce", "elm"} and run["params.seed"] == run["tags.seed"]
        assert run["params.dataset"] == "synthetic" and run["params.epochs"] == "2"
        hist = client.get_metric_history(run["run_id"], "test_top1")
        assert sorted((m.step, m.value) for m in hist) == [
            (r["epoch"], r["test_top1"]) for r in rows if "test_top1" in r]
        assert run["status"] == "FINISHED"


def test_status_watch_follows_the_study_until_it_ends(study):
    assert study["watch_rc"] == 0, study["watch"]
    refreshes = re.findall(r"^\[\d\d:\d\d:\d\d\] ", study["watch"], re.M)
    assert len(refreshes) >= 2, study["watch"]
    assert "study ended" in study["watch"]
    last = study["watch"].rsplit("[", 1)[-1]
    assert "terminated 2" in last
    assert re.search(r"CE\s+\d+\.\d\d\s+\(n=1\)", last), last


def test_ctrl_c_ends_with_the_resume_command(tmp_path):
    ray_tmp, env = _env()
    proc = subprocess.Popen(_cli("run", "smoke", "--storage", str(tmp_path), "--name", "cut",
                                 "--set", "epochs=50", "--max-concurrent", "1"),
                            cwd=REPO, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if " ep 1/50 " in line:
                proc.send_signal(signal.SIGINT)   # what Ctrl-C sends the driver
                break
        lines.extend(proc.communicate(timeout=120)[0].splitlines(keepends=True))
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    out = "".join(lines)
    assert out.splitlines()[-1] == f"continue with: elm-study resume cut --storage {tmp_path}", \
        out[-2000:]
    assert re.search(r"^interrupted: \d+ trial\(s\) unfinished$", out, re.M), out[-2000:]
    assert "Tuner.restore" not in out and "FileNotFoundError" not in out
