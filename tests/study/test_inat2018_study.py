"""iNaturalist 2018 as a study (issue 40): the shipped `inat2018` study plans its 15 methods with
the iNaturalist recipe; two trials on a tiny fabricated tree in Decoupling's list format run
end to end on the session's Ray cluster, and the report shows them without inventing paper
numbers (the paper has no iNaturalist results)."""
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.collect import load_study
from fabricate import fabricate_inat2018
from study.cli import main
from trainables.methods import TABLE23_METHODS, label_of

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def inat(tmp_path_factory):
    return fabricate_inat2018(tmp_path_factory.mktemp("inat"))


def test_the_shipped_study_plans_table_ii_methods_with_the_inat_recipe(inat, tmp_path, capsys):
    rc = main(["run", "inat2018", "--dry-run", "--storage", str(tmp_path), "--set",
               f"data_root={inat}", "--gpus-per-trial", "0"])
    out, err = capsys.readouterr()
    assert rc == 0 and err == "", err
    assert "# 15 trials" in out and "missing data" not in out
    assert not any(tmp_path.iterdir())
    from search_spaces import get_space
    space = get_space("inat2018")
    assert "no iNaturalist results" in space.description
    assert {label_of(c.to_dict()) for c in space.configs()} == \
        {label_of(m) for m in TABLE23_METHODS}
    for c in space.configs():
        assert (c.dataset, c.model, c.lr_milestones, c.weight_decay) == \
            ("inat2018", "resnet50", (30, 60), 1e-4)


@pytest.mark.ray
@pytest.mark.slow
def test_two_trials_from_the_lists_run_and_report_without_paper_numbers(inat, tmp_path,
                                                                         shared_ray):
    # ResNet32 at 16 px: an epoch holds all 8,142 classes (test_inat2018.py says why not 50)
    study = tmp_path / "inat_two.yaml"
    study.write_text(
        "description: two iNaturalist 2018 trials on a fabricated tree\n"
        f"base: {{dataset: inat2018, seed: 0, data_root: '{inat}', model: resnet32, "
        f"train_list: '{inat / 'iNaturalist18_train.txt'}', "
        f"test_list: '{inat / 'iNaturalist18_val.txt'}', epochs: 1, image_size: 16, "
        "batch_size: 256, eval_batch_size: 64, num_workers: 0}\n"
        "methods: [ce, elm+drw(lam=0.5)]\n")
    p = subprocess.run(
        [sys.executable, "-m", "study", "run", str(study), "--storage", str(tmp_path),
         "--name", "i18", "--gpus-per-trial", "0", *shared_ray["args"]],
        env=shared_ray["env"], cwd=REPO, capture_output=True, text=True, timeout=1500)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    df = load_study(tmp_path / "i18")
    assert len(df) == 2 and set(df["status"]) == {"terminated"}
    assert set(df["method"]) == {"CE", "ELM + DRW (λ=0.5)"}, set(df["method"])
    assert (df["dataset"] == "inat2018").all() and df["test_top1"].between(0, 100).all()
    # 8,142 classes: the final confusion matrix (199 MB a trial) is not written beside the
    # weights (trainables.checkpoints.CONFUSION_FILE_MAX); the weights are
    assert list((tmp_path / "i18").rglob("trial.pt")) and \
        not list((tmp_path / "i18").rglob("confusion.json"))
    r = subprocess.run([sys.executable, "-m", "analysis", "report", str(tmp_path / "i18")],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = tmp_path / "i18" / "report"
    md = (report / "report.md").read_text()
    assert "iNaturalist 2018" in md and "inat2018 LT" not in md   # its rows, its title
    # no Table II/III layout and no paper column: the paper has no iNaturalist cell to show
    assert "Table II layout" not in md and "Table III layout" not in md
    assert "Paper top-1" not in md and "paper top" not in md
    assert "Paper" not in (report / "summary.csv").read_text()
    assert not list(report.glob("*_table.csv"))
