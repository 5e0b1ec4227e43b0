"""trainables.checkpoints: the atomic save, the newest good checkpoint of a folder, and the sink
every writer (Tune trainable, Ray Train worker, trainables.run, decoupled) reports through."""
from pathlib import Path

import pytest
import torch

from trainables.checkpoints import (CONFUSION_FILE, LAST_FILE, CheckpointError, load_checkpoint,
                                    newest_good_in, newest_in, save_checkpoint, write_epoch)
from trainables.config import TrialConfig

CFG = TrialConfig(dataset="synthetic", epochs=4, checkpoint_every=2, device="cpu")


class FakeTrainer:
    """What the sink uses of a Trainer: save, confusion, dist."""

    def __init__(self, rank=None):
        self.confusion = {"test": [[1, 0], [0, 1]]}
        self.dist = None if rank is None else type("D", (), {"rank": rank})()

    def save(self, path):
        save_checkpoint({"model": {}, "epoch": 1}, path)


def _row(epoch, done=False):
    return {"epoch": epoch, "done": done, "test_top1": float("nan")}


def test_save_is_atomic_and_load_names_a_bad_file(tmp_path):
    save_checkpoint({"model": {"w": torch.ones(2)}, "epoch": 3}, tmp_path / "a.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]          # no temporary left
    assert load_checkpoint(tmp_path / "a.pt")["epoch"] == 3
    (tmp_path / "b.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"b\.pt is unreadable"):
        load_checkpoint(tmp_path / "b.pt")


def test_newest_good_in_a_folder_skips_a_truncated_newest(tmp_path):
    for e in (1, 2, 10):
        (tmp_path / f"checkpoint_{e:06d}").mkdir()
        save_checkpoint({"model": {}, "epoch": e}, tmp_path / f"checkpoint_{e:06d}" / "trial.pt")
    assert newest_in(tmp_path).parent.name == "checkpoint_000010"   # zero-padded: name order
    (tmp_path / "checkpoint_000010" / "trial.pt").write_bytes(b"torn")
    path, state = newest_good_in(tmp_path)
    assert state["epoch"] == 2 and path.parent.name == "checkpoint_000002"
    run = tmp_path / "run"
    run.mkdir()
    assert newest_in(run) is None and newest_good_in(run) is None
    save_checkpoint({"model": {}, "epoch": 1}, run / LAST_FILE)      # a trainables.run folder
    assert newest_in(run) == run / LAST_FILE


def test_write_epoch_checkpoints_when_due_and_only_on_rank_0(tmp_path):
    seen = []

    def emit(row, folder):   # what the folder holds while the writer has it
        seen.append((row, folder and sorted(p.name for p in folder.iterdir())))

    write_epoch(FakeTrainer(), _row(1), CFG, emit, folder=tmp_path)  # not due
    write_epoch(FakeTrainer(), _row(2), CFG, emit)                   # due: a temporary folder
    write_epoch(FakeTrainer(), _row(4, done=True), CFG, emit)        # the end: confusion too
    write_epoch(FakeTrainer(rank=1), _row(4, done=True), CFG, emit)  # other ranks only emit
    assert seen[0] == ({"epoch": 1, "done": False, "test_top1": None}, None)   # strict JSON
    assert seen[1][1] == ["trial.pt"] and seen[2][1] == [CONFUSION_FILE, "trial.pt"]
    assert seen[3][1] is None and not list(Path(tmp_path).iterdir())
