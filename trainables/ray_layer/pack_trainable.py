"""The Tune function trainable of a trial pack: K trials of a grid as ONE Tune trial, trained
as one fused network (trainables.pack.PackTrainer; docs/packing.md).

The pack's Tune config holds its members (``{"base": ..., "pack": [member fields, ...]}``,
built by study.packs). Each member is written as an ordinary trial folder of the study, beside
the pack's own Tune trial folder (trainables.ray_layer.pack_storage): its params.json, a
result.json row per epoch carrying the fields an unpacked trial's rows carry (its own
``trial_id`` '<pack id>_m<k>', and ``pack_trial_id``), and its checkpoints through the one
sink (trainables.checkpoints.write_epoch). Readers skip the pack's folder
(trainables.results), so a packed study reads as the same study unpacked.

To Tune the pack reports one row per epoch: counts, and the members' rows under
``pack_rows`` ({member folder name: row}) for the driver's progress lines and TensorBoard,
with a small checkpoint whenever the members checkpointed. When Tune restarts the pack (a
SIGKILLed worker, ``resume``), every member resumes from its own newest good checkpoint in
its folder, not from the pack's checkpoint (which only names the epoch).
"""
from __future__ import annotations

import json
import os
import posixpath
import socket
import tempfile
import time
from pathlib import Path

from trainables.checkpoints import write_epoch
from trainables.config import TrialConfig
from trainables.faults import maybe_inject_fault
from trainables.methods import flatten_trial
from trainables.ray_layer.dashboard import trial_gauges
from trainables.ray_layer.pack_storage import MemberFolder, common_restart, local_storage
from trainables.ray_layer.private import node_id, trial_storage
from trainables.results import (PACK_ID_FIELD, PACK_MEMBER_FIELD, PACK_ROWS_KEY, cost_totals,
                                member_trial_id, pack_members, trial_static_fields)

PACK_STATE_FILE = "pack.json"   # the pack's own (small) Tune checkpoint: its epoch


def _default_dirname(config: dict, trial_id: str) -> str:
    return trial_id


def train_pack(config: dict, member_dirname=_default_dirname) -> None:
    """Tune entry point for a pack (dispatch.trainable_for(..., pack=K)). ``member_dirname``
    (config, member trial id) -> folder name: the study's trial-folder convention
    (study.launcher.member_dirname), so members are named as unpacked trials are."""
    import ray
    from ray import tune

    from trainables.devices import refuse_unusable_gpus
    refuse_unusable_gpus(ray.get_gpu_ids())    # a GPU torch cannot use: say so, not train on CPU
    pack_id = _trial_id()
    pack, cfgs, folders, statics = _open_pack(config, pack_id, member_dirname)
    gauges = [trial_gauges(cfg, s["method"], s["trial_id"]) for cfg, s in zip(cfgs, statics)]
    started = t0 = time.time()
    for rows in pack.epochs():
        # when one member's checkpoint is due, all save: a retry restarts them at one epoch
        due = any(m is not None and cfg.checkpoint_due(m) for m, cfg in zip(rows, cfgs))
        reported = {}
        for k, (member, m, f) in enumerate(zip(pack.members, rows, folders)):
            if m is None:   # stopped before this epoch: nothing to report, as a trial
                continue
            if gauges[k] is not None:
                gauges[k].update(m)
            row = {**m, **statics[k], **_tune_like(m["epoch"], t0, started)}
            reported[posixpath.basename(f.path)] = write_epoch(
                member, row, cfgs[k], lambda r, folder, f=f: _emit(f, r, folder), force=due)
        _report(tune, rows, reported, due)
        t0 = time.time()
        running = [m for m in pack.members if m.status == "running"]
        maybe_inject_fault(max(r["epoch"] for r in rows if r), pack_id,
                           running[0] if running else None)


def _open_pack(config: dict, pack_id: str, member_dirname) -> tuple:
    """(PackTrainer, member configs, member folders, each member's static row fields), the
    members restored from their folders' checkpoints and their rows made whole."""
    from trainables.ray_layer.trainable import TrialSetupError
    trial_configs = pack_members(config)
    cfgs = [TrialConfig.from_dict(flatten_trial(c)) for c in trial_configs]
    fs, exp = _experiment_folder()
    ids = [member_trial_id(pack_id, k) for k in range(len(cfgs))]
    folders = [MemberFolder(fs, f"{exp}/{member_dirname(c, i)}", c)
               for c, i in zip(trial_configs, ids)]
    for f in folders:   # first: a pack that cannot start still shows its trials (errored)
        f.open()
    try:
        from trainables.pack import PackTrainer
        pack = PackTrainer(cfgs)   # seeds and builds each member as its single trial
    except (FileNotFoundError, ValueError, OSError) as e:
        raise TrialSetupError(f"pack {pack_id} could not start on node "
                              f"{socket.gethostname()}: {e}") from None
    _restore(pack, folders)
    from trainables.cost import hold_of
    from trainables.ray_layer.trainable import trial_resources
    pack.hold(*hold_of(trial_resources(), pack.device))   # shared by its members (cost.py)
    for member, f in zip(pack.members, folders):   # earlier attempts' rows, dropped ones too
        member.meter.credit(cost_totals(f.rows))
    statics = [{**trial_static_fields(cfg), "node_id": node_id(), "trial_id": i,
                PACK_ID_FIELD: pack_id, PACK_MEMBER_FIELD: k, "pack_size": len(cfgs),
                "resumed_from_epoch": m.epoch}
               for k, (cfg, i, m) in enumerate(zip(cfgs, ids, pack.members))]
    for f, m, s in zip(folders, pack.members, statics):   # whole epochs, each once
        f.keep_rows_up_to(m.epoch, m.history, s)
    return pack, cfgs, folders, statics


def pack_entry(member_dirname=None):
    """``train_pack`` with the study's folder naming bound: a function of the config alone,
    as Tune's function trainables are, named so that its actors read as packs."""
    name = member_dirname or _default_dirname

    def train_pack_trial(config: dict) -> None:
        train_pack(config, member_dirname=name)
    return train_pack_trial


def _trial_id() -> str:
    try:
        from ray import tune
        return tune.get_context().get_trial_id() or "pack"
    except Exception:   # outside Tune
        return "pack"


def _experiment_folder() -> tuple:
    """(filesystem, experiment folder): the parent of the pack's Tune trial folder, where
    Tune puts its trial folders (outside Tune, a temporary folder)."""
    fs, path = trial_storage() or local_storage()
    return fs, posixpath.dirname(path.rstrip("/"))


def _restore(pack, folders: list[MemberFolder]) -> None:
    """Load each member's checkpoint (trainables.ray_layer.pack_storage.common_restart):
    the running members at one common epoch, the stopped ones as they ended."""
    _, states = common_restart(folders)
    for member, state in zip(pack.members, states):
        if state is not None:
            member.load_state_dict(state)


def _tune_like(epoch: int, t0: float, started: float) -> dict:
    """What Tune adds to an unpacked trial's rows (its iteration, time, host, pid)."""
    now = time.time()
    return {"training_iteration": epoch, "timestamp": int(now), "time_this_iter_s": now - t0,
            "time_total_s": now - started, "hostname": socket.gethostname(),
            "pid": os.getpid()}


def _emit(folder: MemberFolder, row: dict, checkpoint) -> None:
    """The member's writer: its checkpoint (if due) before its row, so a row never names
    an epoch whose checkpoint was lost; a retry re-adds a row lost after its checkpoint."""
    if checkpoint is not None:
        folder.put_checkpoint(int(row["epoch"]), Path(checkpoint))
    folder.append(row)


def _report(tune, rows: list, reported: dict, due: bool) -> None:
    """One row per pack epoch to Tune; a small checkpoint (the epoch) when members saved."""
    done = [r for r in rows if r is not None]
    out = {"epoch": max(r["epoch"] for r in done), "members": len(rows),
           "members_reporting": len(done),
           "members_running": sum(r.get("status") == "running" for r in done),
           PACK_ROWS_KEY: reported}
    if not due:
        tune.report(out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / PACK_STATE_FILE).write_text(json.dumps(
            {"epoch": out["epoch"], "members": sorted(reported)}))
        tune.report(out, checkpoint=tune.Checkpoint.from_directory(tmp))
