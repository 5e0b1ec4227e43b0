"""A pack member's trial folder in the study's storage (docs/packing.md, "The study folder").

Tune writes the folders of its own trials; a pack is one Tune trial, so the pack trainable
writes each member's folder itself, beside the pack's in the same experiment folder, in the
layout of an unpacked trial: ``params.json`` (the member's Tune-form config), ``result.json``
(one JSON line per epoch) and ``checkpoint_<epoch>/trial.pt`` (the newest two kept, as Tune's
``num_to_keep=2`` does). Everything goes through the storage's pyarrow filesystem (a local
path, NFS, ``s3://``...), and every file is replaced whole (a temporary name, then a move), so
a reader never sees half a file and a SIGKILL leaves the previous version.

On a retry :func:`restore_members` puts every member back at its newest good checkpoint (the
running members at one common epoch: a pack trains them in step) and drops the rows of
epochs after it, so each member's epochs are whole and not duplicated.
"""
from __future__ import annotations

import json
import posixpath
import tempfile
import uuid
from pathlib import Path

from trainables.checkpoints import CHECKPOINT_FILE, newest_good
from trainables.ray_layer.storage import checkpoints_on_storage, load_any
from trainables.results import epoch_rows, parse_json_lines

KEEP_CHECKPOINTS = 2   # as the study's Tune CheckpointConfig(num_to_keep=2) for trials


class MemberFolder:
    """One member's trial folder: ``fs`` (pyarrow) and the folder's path on it."""

    def __init__(self, fs, path: str, trial_config: dict):
        self.fs, self.path, self.trial_config = fs, path, trial_config
        self.rows: list[dict] = []

    @property
    def where(self) -> tuple:
        return self.fs, self.path     # what trainables.ray_layer.storage reads

    # ---- files ------------------------------------------------------------------------
    def _put(self, rel: str, data: bytes) -> None:
        """``data`` as ``rel`` under the folder, replaced whole (temporary name, then move)."""
        dest = f"{self.path}/{rel}"
        tmp = f"{posixpath.dirname(dest)}/.{posixpath.basename(dest)}.{uuid.uuid4().hex}.tmp"
        with self.fs.open_output_stream(tmp) as f:
            f.write(data)
        self.fs.move(tmp, dest)

    def _read(self, rel: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(f"{self.path}/{rel}") as f:
                return f.read()
        except (FileNotFoundError, OSError):
            return None

    def open(self) -> None:
        """Create the folder with its params.json (once), and read the rows it holds."""
        self.fs.create_dir(self.path, recursive=True)
        if self._read("params.json") is None:
            self._put("params.json", json.dumps(self.trial_config, indent=2).encode())
        text = self._read("result.json")
        self.rows = parse_json_lines(text.decode("utf-8", "replace")) if text else []

    def write_rows(self) -> None:
        self._put("result.json", "".join(json.dumps(r) + "\n" for r in self.rows).encode())

    def append(self, row: dict) -> None:
        self.rows.append(row)
        self.write_rows()

    # ---- checkpoints ------------------------------------------------------------------
    def put_checkpoint(self, epoch: int, local: Path) -> None:
        """Copy a checkpoint folder written by the sink (trainables.checkpoints.write_epoch)
        to ``checkpoint_<epoch>/``, its weights last (readers look for them), then drop all
        but the newest KEEP_CHECKPOINTS."""
        rel = f"checkpoint_{epoch:06d}"
        self.fs.create_dir(f"{self.path}/{rel}", recursive=True)
        files = sorted(p for p in Path(local).iterdir() if p.is_file())
        for p in sorted(files, key=lambda p: p.name == CHECKPOINT_FILE):
            self._put(f"{rel}/{p.name}", p.read_bytes())
        old = [posixpath.dirname(p) for _, p in checkpoints_on_storage(self.where)]
        for d in old[:-KEEP_CHECKPOINTS]:
            try:
                self.fs.delete_dir(d)
            except OSError:   # deleted meanwhile: nothing to keep
                pass

    def states(self) -> dict[int, dict]:
        """epoch -> state of every readable checkpoint (a torn one is skipped, named)."""
        out = {}
        for src in checkpoints_on_storage(self.where):
            state = newest_good([src], load=load_any)
            if state is not None:
                out[int(state["epoch"])] = state
        return out

    def keep_rows_up_to(self, epoch: int, history: list[dict], static: dict) -> None:
        """The rows of epochs 1..``epoch`` only, one per epoch: rows of later epochs (trained
        after the checkpoint the member resumes from) go, and an epoch the checkpoint holds
        but result.json lost (killed between the two writes) comes back from its history."""
        rows = [r for r in epoch_rows(self.rows)
                if isinstance(r.get("epoch"), int) and r["epoch"] <= epoch]
        have = {r["epoch"] for r in rows}
        rows += [{**h, **static} for h in history
                 if isinstance(h.get("epoch"), int) and h["epoch"] <= epoch
                 and h["epoch"] not in have]
        rows.sort(key=lambda r: r["epoch"])
        if rows != self.rows:
            self.rows = rows
            self.write_rows()


def common_restart(folders: list[MemberFolder]) -> tuple[int, list[dict | None]]:
    """(the epoch the running members restart from, the state each member loads or None).

    A member whose newest good checkpoint says it stopped (finished, diverged) loads that.
    The others must restart at one epoch: the newest at which every one of them has a good
    checkpoint (the pack checkpoints all running members together, so that is normally the
    newest; a torn file moves it back), else 0: those start again from scratch."""
    every = [f.states() for f in folders]
    newest = [s[max(s)] if s else None for s in every]
    running = [i for i, s in enumerate(newest) if s is None or s["status"] == "running"]
    shared = set.intersection(*(set(every[i]) for i in running)) if running else set()
    epoch = max((e for e in shared if all(every[i][e]["status"] == "running"
                                          for i in running)), default=0)
    states = [every[i].get(epoch) if i in running else newest[i] for i in range(len(folders))]
    return epoch, [s if s is not None and (i not in running or epoch > 0) else None
                   for i, s in enumerate(states)]


def local_storage() -> tuple:
    """Outside Tune (a direct call, a test): a fresh temporary folder on the local disk."""
    import pyarrow.fs as pafs
    return pafs.LocalFileSystem(), f"{tempfile.mkdtemp(prefix='elm_pack_')}/pack"

