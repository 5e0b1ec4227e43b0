"""The validation-selected epoch in the study table and the report: shown (labelled) where the
trials held out a validation split of TRAIN, absent where they did not or their rows predate
the fields. Uses the shared study (val_fraction 0.2, 1 epoch: tests/analysis/conftest.py)."""
import json
import shutil

from analysis import summary
from analysis.collect import load_study, trial_dirs

LABEL = "Top-1 validation-selected epoch (val split held out of TRAIN) (%)"


def test_rows_of_a_held_out_study_carry_the_validation_selected_epoch(study):
    df = load_study(study)
    assert df["val_selected_top1"].notna().all()
    assert (df["val_best_epoch"] == 1).all()              # one epoch: it is the final one
    assert (df["val_selected_top1"] == df["final_top1"]).all()


def test_report_shows_it_beside_final_and_test_selected(report):
    md = (report / "report.md").read_text()
    assert LABEL in md and "Top-1 best epoch, test-selected (%)" in md
    assert "validation split held out of TRAIN" in md      # the note says what it is
    assert LABEL in (report / "report.html").read_text()


def test_without_the_fields_no_column_and_old_rows_still_read(study, tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(study, copy)
    for d in trial_dirs(copy):      # rows written before the fields existed
        rows = [json.loads(line) for line in (d / "result.json").read_text().splitlines()]
        rows = [{k: v for k, v in r.items() if not k.startswith("val_selected")
                 and k not in ("val_best_epoch", "val_best_top1", "val_split")} for r in rows]
        (d / "result.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    df = load_study(copy)
    assert len(df) == 12 and df["val_selected_top1"].isna().all()
    shown, _, _ = summary.summary(df)
    assert LABEL not in shown.columns and "Top-1 final (%)" in shown.columns
    assert summary.val_selected_note(shown) == ""
    shown, _, _ = summary.summary(load_study(study))
    assert LABEL in shown.columns and summary.val_selected_note(shown)
