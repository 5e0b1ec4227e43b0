"""Trial packs in a study before Ray starts (issue 21): grouping by pack key, the Tune param
space over packs, the dry run's lines, the refusals (search, bad --pack, unpackable trials),
``resources: {pack: K}``; and the readers' view of a packed study folder (no Ray)."""
import json
import re

import pytest

from search_spaces import get_space
from search_spaces.base import expand_grid
from study.cli import main
from study.packs import group_packs, pack_lines, packed
from study.plan import plan_run
from trainables.config import TrialConfig
from trainables.methods import flatten_trial
from trainables.results import pack_members
from trainables.store import PackMembership, StudyRecord, study_trials, trial_dirs

TWO_BATCHES = """\
description: "packs split by batch size"
base: {dataset: synthetic, ratio: 10, epochs: 1, device: cpu}
methods: [ce, elm+drw(lam=0.5)]
grid:
  batch_size: [16, 32]
  seed: [0, 1, 2]
resources: {pack: 2}
"""


def run_cli(capsys, *argv):
    rc = main(list(map(str, argv)))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_trials_are_grouped_by_pack_key_in_grid_order():
    cfgs = [TrialConfig(dataset="synthetic", batch_size=b, seed=s) for s in range(3)
            for b in (16, 32)]
    # batch_size splits: the 16s in seed order, then the 32s; each group cut at 2
    assert group_packs(cfgs, 2) == [[0, 2], [4], [1, 3], [5]]
    assert group_packs(cfgs, 4) == [[0, 2, 4], [1, 3, 5]]
    assert group_packs(cfgs, 1) == [[0], [2], [4], [1], [3], [5]]


def test_packed_space_is_a_grid_over_packs_that_still_lists_its_trials():
    space = get_space("smoke", seeds=[0, 1, 2])
    p = packed(space, 4)
    assert packed(space, 1) is space
    assert p.expected_trials == 6 and len(p.trial_dicts()) == 6
    assert sorted(p.trial_keys()) == sorted(space.trial_keys())      # members, not packs
    packs = expand_grid(p.param_space)
    assert [len(c["pack"]) for c in packs] == [4, 2]                 # one Tune trial a pack
    members = [flatten_trial(m) for c in packs for m in pack_members(c)]
    assert sorted(TrialConfig.from_dict(m).trial_key() for m in members) == sorted(
        space.trial_keys())
    # a member's config has the form of an unpacked trial's (params.json): base + method
    assert set(pack_members(packs[0])[0]) == {"base", "method"}


def test_dry_run_says_packs_sizes_and_the_fields_that_split_them(capsys, tmp_path):
    rc, out, err = run_cli(capsys, "run", "smoke", "--seeds", "0,1,2", "--pack", "4",
                           "--dry-run", "--storage", tmp_path)
    assert rc == 0, err
    assert "# packs: 6 trials in 2 packs of at most 4 (1 of 4, 1 of 2)" in out, out
    assert "# one pack key" in out
    rc, out, err = run_cli(capsys, "run", "smoke", "--seeds", "0,1,2", "--pack", "4",
                           "--grid", "batch_size=16,32", "--set", "lr=0.05",
                           "--dry-run", "--storage", tmp_path)
    assert rc == 0, err
    assert "12 trials in 4 packs of at most 4 (2 of 4, 2 of 2)" in out, out
    assert "2 pack keys; the fields that split them: batch_size (16 vs 32)" in out, out
    assert not any(tmp_path.iterdir()), "a dry run must create nothing"


def test_pack_in_a_study_file_and_its_record(capsys, tmp_path):
    f = tmp_path / "two.yaml"
    f.write_text(TWO_BATCHES)
    rc, out, err = run_cli(capsys, "run", f, "--dry-run", "--storage", tmp_path / "s")
    assert rc == 0, err
    assert "12 trials in 6 packs of at most 2 (6 of 2)" in out, out
    plan = plan_run(get_space(str(f)), {}, storage=str(tmp_path / "s"))
    assert plan.options.pack == 2 and plan.study.options.pack == 2 and \
        plan.study.runs[0].options.pack == 2
    assert plan.study.expected_trials == 12 and plan.study.runs[0].launched == 12
    flagged = plan_run(get_space(str(f)), {"pack": 3}, storage=str(tmp_path / "s"))
    assert flagged.options.pack == 3                          # the flag wins over the file
    f.write_text(TWO_BATCHES.replace("{pack: 2}", "{pack: 0}"))
    rc, out, err = run_cli(capsys, "run", f, "--dry-run", "--storage", tmp_path / "s")
    assert rc == 2 and "pack" in err and ">= 1" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, match", [
    (["optuna_elm", "--pack", "2"], r"--pack 2: 'optuna_elm' is a search"),
    (["smoke", "--pack", "0"], r"--pack must be >= 1, got 0"),
    (["smoke", "--pack", "2", "--workers-per-trial", "2"],
     r"--pack 2 cannot be combined with --workers-per-trial 2"),
    (["smoke", "--pack", "2", "--set", "model=resnet50"],
     r"--pack 2: .*smoke.yaml: trial 0 \(loss=ce, drw=False, seed=0\): model 'resnet50' "
     r"cannot be packed: trial packs cover \['resnet32'\]"),
    (["smoke", "--pack", "2", "--set", "compile=true"], r"trial 0 .*compile=True"),
])
def test_what_cannot_be_packed_exits_2_in_one_line_before_ray(capsys, tmp_path, argv, match):
    rc, out, err = run_cli(capsys, "run", *argv, "--storage", tmp_path)
    assert rc == 2 and re.search(match, err) and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.iterdir())


def test_a_bad_pack_value_names_the_flag(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["run", "smoke", "--pack", "four", "--storage", str(tmp_path)])
    assert e.value.code == 2 and "--pack" in capsys.readouterr().err


def test_into_packs_only_the_new_trials_and_keeps_the_studys_pack(tmp_path):
    """An extension of a packed study launches the members whose key is new, packed anew,
    with the study's --pack unless the flag is given."""
    study = tmp_path / "grow"
    study.mkdir()
    meta = {"space": "smoke", "name": "grow", "storage": str(tmp_path), "expected_trials": 4,
            "cpus_per_trial": 1.0, "gpus_per_trial": None, "max_concurrent": None,
            "max_failures": 3, "workers_per_trial": 1, "pack": 3,
            "runs": [{"run": 1, "dir": ".", "launched": 4, "pack": 3}]}
    (study / "study.json").write_text(json.dumps(meta))
    plan = plan_run(get_space("smoke", seeds=[5, 6]), {}, storage=str(tmp_path),
                    into=str(study))
    assert plan.options.pack == 3 and plan.space.expected_trials == 4
    assert [len(c["pack"]) for c in expand_grid(plan.space.param_space)] == [3, 1]
    assert plan.study.runs[-1].options.pack == 3 and plan.study.expected_trials == 8
    plan = plan_run(get_space("smoke", seeds=[5, 6]), {"pack": 1}, storage=str(tmp_path),
                    into=str(study))
    assert "--pack 1 (was 3)" in plan.headline and "pack" not in plan.space.param_space


# ---- the readers' view of a packed study (fabricated folders, no Ray) ---------------------
def _member(exp, name, config, rows):
    d = exp / name
    d.mkdir()
    (d / "params.json").write_text(json.dumps(config))
    (d / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def test_readers_skip_the_packs_folder_and_give_members_their_packs_status(tmp_path):
    exp = tmp_path / "study"
    exp.mkdir()
    base = {"dataset": "synthetic", "epochs": 2, "device": "cpu"}
    pack_cfg = {"base": base, "pack": [{"seed": 0}, {"seed": 1}, {"seed": 2}]}
    for pid, status in (("abcde_00000", "ERROR"), ("abcde_00001", "TERMINATED")):
        (exp / f"pack3_{pid}").mkdir()
        (exp / f"pack3_{pid}" / "params.json").write_text(json.dumps(pack_cfg))
    (exp / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps(
        {"trial_data": [[json.dumps({"trial_id": t, "status": s}), ""]
                        for t, s in (("abcde_00000", "ERROR"), ("abcde_00001", "RUNNING"))]}))
    members = pack_members(pack_cfg)

    def rows(pid, k, statuses):
        return [{"epoch": e, "status": s, "trial_id": f"{pid}_m{k}", "pack_trial_id": pid,
                 "done": s != "running"} for e, s in enumerate(statuses, 1)]
    _member(exp, "CE_seed0_abcde_00000_m0", members[0], rows("abcde_00000", 0,
                                                             ["running", "finished"]))
    _member(exp, "CE_seed1_abcde_00000_m1", members[1], rows("abcde_00000", 1, ["running"]))
    _member(exp, "CE_seed2_abcde_00001_m0", members[2], rows("abcde_00001", 0, ["running"]))
    assert [d.name for d in trial_dirs(exp)] == ["CE_seed0_abcde_00000_m0",
                                                 "CE_seed1_abcde_00000_m1",
                                                 "CE_seed2_abcde_00001_m0"]
    damage = []
    trials = {t.trial_id: t for t in study_trials(exp, damage)}
    assert damage == [] and len(trials) == 3
    assert trials["abcde_00000_m0"].status == "terminated"    # finished before the error
    assert trials["abcde_00000_m1"].status == "errored"       # its pack errored
    assert trials["abcde_00001_m0"].status == "running"       # its pack still runs
    assert trials["abcde_00000_m0"].config["seed"] == 0 and trials[
        "abcde_00000_m0"].trial_key == TrialConfig.from_dict(flatten_trial(members[0])).trial_key()
    assert [trials[i].pack for i in ("abcde_00000_m1", "abcde_00001_m0")] == [
        PackMembership("abcde_00000", 1), PackMembership("abcde_00001", 0)]   # from the rows


def test_dry_run_lines_come_from_one_function():
    lines = pack_lines(get_space("smoke", seeds=[0, 1, 2]), 4)
    assert lines[0].startswith("# packs: 6 trials in 2 packs") and len(lines) == 2
    assert pack_lines(get_space("smoke"), 1) == []


def test_member_folders_keep_two_checkpoints_and_restart_at_a_common_epoch(tmp_path):
    """pack_storage on a local pyarrow filesystem: the newest two checkpoints stay; the
    running members restart at the newest epoch all of them hold (a torn newest file moves it
    back); a stopped member loads its own end; rows after the restart epoch go."""
    import pyarrow.fs as pafs

    from trainables.checkpoints import save_checkpoint
    from trainables.ray_layer.pack_storage import MemberFolder, common_restart
    fs = pafs.LocalFileSystem()
    folders = [MemberFolder(fs, str(tmp_path / f"m{k}"), {"base": {}, "method": {"seed": k}})
               for k in range(3)]
    for f in folders:
        f.open()
    for epoch in (1, 2, 3):
        for k, f in enumerate(folders):
            status = "finished" if (k == 2 and epoch == 3) else "running"
            local = tmp_path / f"ck{k}{epoch}"
            local.mkdir()
            save_checkpoint({"model": {}, "epoch": epoch, "status": status}, local / "trial.pt")
            f.put_checkpoint(epoch, local)
            f.append({"epoch": epoch, "status": status})
    assert sorted(p.name for p in (tmp_path / "m0").iterdir() if p.is_dir()) == [
        "checkpoint_000002", "checkpoint_000003"]
    assert json.loads((tmp_path / "m1" / "params.json").read_text())["method"]["seed"] == 1
    epoch, states = common_restart(folders)
    assert epoch == 3 and [s["epoch"] for s in states] == [3, 3, 3]
    (tmp_path / "m1" / "checkpoint_000003" / "trial.pt").write_bytes(b"torn")
    epoch, states = common_restart(folders)
    assert epoch == 2 and [s["epoch"] for s in states] == [2, 2, 3]   # m2 had finished
    folders[0].keep_rows_up_to(2, [], {})
    assert [r["epoch"] for r in folders[0].rows] == [1, 2]
    again = MemberFolder(fs, str(tmp_path / "m0"), {})
    again.open()
    assert [r["epoch"] for r in again.rows] == [1, 2]                 # rewritten whole
    (tmp_path / "m1" / "checkpoint_000002" / "trial.pt").write_bytes(b"torn")
    epoch, states = common_restart(folders)
    assert epoch == 0 and states[:2] == [None, None] and states[2]["epoch"] == 3


class _FakeTrial:
    """What Tune's logger callbacks read of a trial (the callbacks run on the driver)."""

    def __init__(self, config, trial_id, local_path):
        self.config, self.trial_id, self.local_path = config, trial_id, str(local_path)
        self.last_result, self.evaluated_params = {}, {}


def _pack_result(pack_id: str, epoch: int) -> dict:
    rows = {f"{m}_seed{k}_{pack_id}_m{k}": {
        "epoch": epoch, "trial_id": f"{pack_id}_m{k}", "train_loss": 1.0 + k + epoch,
        "test_top1": 10.0 * (k + 1), "method": "CE" if k == 0 else "ELM + DRW (λ=0.5)"}
        for k, m in enumerate(("CE", "ELM+DRW_lam0.5"))}
    return {"epoch": epoch, "members": 2, "pack_rows": rows}


def test_tensorboard_and_mlflow_get_one_run_per_member(tmp_path, monkeypatch):
    """The driver's loggers expand a pack's rows: one TensorBoard run in each member's folder
    and one MLflow run per member (tagged with its own trial id), none for the pack."""
    pytest.importorskip("mlflow")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from study.loggers import mlflow_callback, tensorboard_callback
    config = {"base": {"dataset": "synthetic", "epochs": 2},
              "pack": [{"seed": 0, "loss": "ce"}, {"seed": 1, "loss": "elm", "drw": True,
                                                    "lam": 0.5}]}
    trial = _FakeTrial(config, "abcde_00000", tmp_path / "pack2_abcde_00000")
    tb = tensorboard_callback()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")   # sqlite's set-up: ~20 s here
    uri = (tmp_path / "mlruns").as_uri()
    ml = mlflow_callback(StudyRecord("s", space="smoke"), str(tmp_path), uri)
    ml.setup()
    for cb in (tb, ml):
        cb.log_trial_start(trial)
        for epoch in (1, 2):
            cb.log_trial_result(epoch, trial, _pack_result("abcde_00000", epoch))
        cb.log_trial_end(trial)
    assert not (tmp_path / "pack2_abcde_00000").exists()          # no run for the pack
    acc = EventAccumulator(str(tmp_path / "ELM+DRW_lam0.5_seed1_abcde_00000_m1"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("train/loss")] == [(1, 3.0), (2, 4.0)]
    import mlflow
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["s"])
    members = runs[runs["tags.kind"] != "study"]
    assert sorted(members["tags.trial_id"]) == ["abcde_00000_m0", "abcde_00000_m1"]
    assert set(members["status"]) == {"FINISHED"}
    assert sorted(members["params.seed"]) == ["0", "1"]
    m1 = members[members["tags.trial_id"] == "abcde_00000_m1"]["run_id"].iloc[0]
    hist = mlflow.MlflowClient().get_metric_history(m1, "train_loss")
    assert sorted((h.step, h.value) for h in hist) == [(1, 3.0), (2, 4.0)]
