"""TrialStorage.lost_epochs: which rows a restarted trial re-reports, judged by the stored
result.json (the copy Tune restores over the driver's on restart)."""
import json

import pyarrow.fs as pafs

from trainables.ray_layer.storage import TrialStorage

HISTORY = [{"epoch": e, "train_loss": 1.0 / e} for e in (1, 2, 3, 4)]


def _storage(tmp_path, rows=None):
    if rows is not None:
        (tmp_path / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return TrialStorage(where=(pafs.LocalFileSystem(), str(tmp_path)))


def test_rows_missing_from_the_stored_result_json_are_reported_again(tmp_path):
    # the worker died after reporting epoch 2, before the driver synced it; then a restored
    # epoch-4 checkpoint found on storage (newer than Tune's epoch 2) re-reports 3 and 4 too
    lost = _storage(tmp_path, rows=HISTORY[:1]).lost_epochs({"history": HISTORY}, tune_epoch=2)
    assert [h["epoch"] for h in lost] == [2, 3, 4]


def test_no_stored_result_json_yet_re_reports_only_what_tune_cannot_know(tmp_path):
    # no sync has happened yet: Tune keeps the driver's copy, which has every row up to its
    # checkpoint, so re-reporting epochs 1 and 2 would put them in twice
    lost = _storage(tmp_path).lost_epochs({"history": HISTORY}, tune_epoch=2)
    assert [h["epoch"] for h in lost] == [3, 4]


def test_a_fully_synced_result_json_re_reports_nothing(tmp_path):
    lost = _storage(tmp_path, rows=HISTORY).lost_epochs({"history": HISTORY}, tune_epoch=4)
    assert lost == []


def test_outside_tune_only_epochs_after_tunes_checkpoint(tmp_path):
    lost = TrialStorage(where=None).lost_epochs({"history": HISTORY}, tune_epoch=3)
    assert [h["epoch"] for h in lost] == [4]
