"""Table III end to end on the session's shared Ray cluster: the `table3` space (15 methods,
ResNet-50, the large-scale recipe) on a tiny Places-LT-format tree, then the report's Table III
layout."""
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.collect import load_study
from trainables.methods import TABLE23_METHODS, label_of

pytestmark = [pytest.mark.ray, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def test_table3_study_runs_end_to_end_and_reports_top135(places_tree, tmp_path, shared_ray):
    p = subprocess.run(
        [sys.executable, "-m", "study", "run", "table3", "--storage", str(tmp_path),
         "--name", "t3", "--set", f"data_root={places_tree}", "--set", "epochs=1",
         "--set", "image_size=32", "--set", "batch_size=128", "--set",
         "eval_batch_size=128", "--set", "num_workers=0",
         "--gpus-per-trial", "0",            # table3 asks a whole GPU per trial; no GPU here
         *shared_ray["args"]],
        env=shared_ray["env"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    df = load_study(tmp_path / "t3")
    assert len(df) == 15 and set(df["status"]) == {"terminated"}
    assert set(df["method"]) == {label_of(m) for m in TABLE23_METHODS}
    assert (df["model"] == "resnet50").all() and (df["dataset"] == "places_lt").all()
    for k in ("test_top1", "test_top3", "test_top5"):
        assert df[k].between(0, 100).all(), k
    assert (df["test_top1"] <= df["test_top3"]).all() and (df["test_top3"] <= df["test_top5"]).all()
    r = subprocess.run([sys.executable, "-m", "analysis", "report", str(tmp_path / "t3")],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    md = (tmp_path / "t3" / "report" / "report.md").read_text()
    assert "Table III layout (Places-LT)" in md and "paper top5" in md
    table = (tmp_path / "t3" / "report" / "places_lt_table.csv").read_text().splitlines()
    assert len(table) == 1 + 15
