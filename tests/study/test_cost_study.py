"""Cost and data fingerprints through a real study (the session's shared 2-CPU Ray cluster):
two CE trials of one setting with different img_max at half a CPU each, one of them SIGKILLed
after epoch 1 and retried by Tune. The rows count CPU-seconds at the share Tune gave, the
retried trial's cost includes its first attempt, the end lines and `status` show CPU-hours
per method, the report names the fingerprints and flags the setting, and a dry run projects
a study's time from this one's measured rate."""
import subprocess
import sys
from pathlib import Path

import pytest
from raycluster import job_env

from trainables.config import TrialConfig
from trainables.data.registry import training_counts
from trainables.store import read_results, trial_dirs

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[2]
STUDY = """\
description: "cost test: two trials of one setting, img_max 20 and 30"
base: {dataset: synthetic, ratio: 10, epochs: 2, eval_every: 2, checkpoint_every: 1,
       batch_size: 32, eval_batch_size: 200, device: cpu}
methods: [ce]
grid:
  img_max: [20, 30]
  seed: [0]
"""


def cli(cluster, *args, env=None):
    where = cluster["args"] if args[0] == "run" and "--dry-run" not in args else []
    p = subprocess.run([sys.executable, "-m", *args, *where], env=env or cluster["env"],
                       cwd=REPO, capture_output=True, text=True, timeout=400)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p.stdout


@pytest.fixture(scope="module")
def study(tmp_path_factory, shared_ray):
    tmp = tmp_path_factory.mktemp("cost")
    (tmp / "cost.yaml").write_text(STUDY)
    marker = tmp / "killed"
    out = cli(shared_ray, "study", "run", tmp / "cost.yaml", "--storage", tmp / "results",
              "--name", "cost", "--cpus-per-trial", "0.5",
              env=job_env(shared_ray, ELM_INJECT_FAULT=f"1:{marker}:kill"))
    return tmp, tmp / "results" / "cost", marker.read_text().strip(), out


def test_rows_count_cpu_seconds_at_the_share_tune_gave_over_every_attempt(study):
    _, path, killed, _ = study
    rows = {read_results(d)[-1]["trial_id"]: read_results(d) for d in trial_dirs(path)}
    assert killed in rows and len(rows) == 2
    for trial_id, rs in rows.items():
        for r in rs:
            assert r["cost_kind"] == "cpu" and r["cost_share"] == 0.5 and r["cost_gpu_s"] == 0
            assert r["cost_cpu_s"] == pytest.approx(0.5 * r["cost_wall_s"])
        attempts = [r["cost_attempts"] for r in rs]
        if trial_id == killed:
            assert attempts[0] == 1 and attempts[-1] == 2, attempts
            first = max(r["cost_wall_s"] for r in rs if r["cost_attempts"] == 1)
            assert rs[-1]["cost_wall_s"] > first       # the retry added to attempt 1's
        else:
            assert set(attempts) == {1}


def test_end_lines_and_status_show_cpu_hours_per_method(study, shared_ray):
    tmp, path, _, out = study
    cost = [ln for ln in out.splitlines() if ln.startswith("cost (device-hours")]
    assert len(cost) == 1 and "CPU-h over 2 trials on cpu" in cost[0], out[-2000:]
    assert any(ln.strip().startswith("CE ") and "CPU-h" in ln for ln in out.splitlines())
    status = cli(shared_ray, "study", "status", "cost", "--storage", tmp / "results")
    assert cost[0] in status.splitlines()


def test_the_report_names_each_settings_fingerprint_and_flags_the_disagreement(study,
                                                                               shared_ray):
    tmp, path, _, _ = study
    cli(shared_ray, "analysis", "report", path, "--out", tmp / "report")
    md = (tmp / "report" / "report.md").read_text()
    data = md[md.index("## Data"):md.index("## Cost")]
    prints = {read_results(d)[-1]["data_fingerprint"] for d in trial_dirs(path)}
    assert len(prints) == 2 and all(p in data for p in prints)
    assert "trained on 2 different data sets: img_max 20 vs 30" in data
    table = [ln for ln in md[md.index("## Cost"):md.index("## Runs")].splitlines()
             if ln.startswith("|")]
    assert "CPU-hours" in table[0] and "GPU-hours" not in table[0]   # no column of zeros
    assert table[2].startswith("| CE ") and table[-1].startswith("| Study (all methods)")
    assert table[-1].split("|")[2].strip() == "2"                     # trials


def test_a_dry_run_counts_images_and_projects_from_the_earlier_study(study, shared_ray):
    tmp, _, _, _ = study
    out = cli(shared_ray, "study", "run", tmp / "cost.yaml", "--storage", tmp / "results",
              "--name", "next", "--epochs", "4", "--dry-run")
    images = sum(4 * sum(training_counts(TrialConfig(dataset="synthetic", ratio=10.0,
                                                     img_max=m))) for m in (20, 30))
    assert f"# training images to process: {images:,} (2 trials" in out, out
    line = next(ln for ln in out.splitlines() if ln.startswith("# projected training time"))
    assert "study 'cost' on this machine" in line and "synthetic/resnet32" in line
    empty = cli(shared_ray, "study", "run", tmp / "cost.yaml", "--storage", tmp / "none",
                "--dry-run")
    assert "# projected time: unknown (no earlier study under" in empty
