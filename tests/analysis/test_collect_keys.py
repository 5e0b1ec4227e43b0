"""Reading an extended study: one row per trial key, unambiguous hyper-parameter columns."""
import json

from analysis.collect import hparam_columns, load_study
from trainables.config import TrialConfig
from trainables.store import experiment_dirs, one_per_key, study_trials


def fake_trial(exp, name, config, rows):
    """A trial folder as Tune lays it out: params.json and result.json (one line per epoch)."""
    d = exp / name
    d.mkdir(parents=True)
    (d / "params.json").write_text(json.dumps({"base": config}))
    (d / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def test_a_key_launched_in_two_runs_counts_once_with_its_finished_trial(tmp_path):
    study = tmp_path / "s"
    cfg = {"dataset": "synthetic", "loss": "focal", "epochs": 2, "seed": 0}
    other = {**cfg, "seed": 1}
    done = [{"epoch": 1, "status": "running"},
            {"epoch": 2, "status": "finished", "test_top1": 50.0, "hp_gamma": 1.0}]
    fake_trial(study, "t_a", cfg, done[:1])                       # run 1: killed after 1 epoch
    fake_trial(study, "t_b", other, done)
    fake_trial(study / "run-2", "t_c", cfg, done)                 # run 2: the same key, finished
    fake_trial(study / "run-10", "t_d", {**cfg, "seed": 2}, done[:1])
    assert [p.name for p in experiment_dirs(study)] == ["s", "run-2", "run-10"]
    every = study_trials(study)
    assert [(t.trial_dir.name, t.run, t.status) for t in every] == [
        ("t_a", 1, "running"), ("t_b", 1, "terminated"), ("t_c", 2, "terminated"),
        ("t_d", 10, "running")]
    assert every[0].trial_key == every[2].trial_key == TrialConfig.from_dict(
        cfg).trial_key()
    kept = one_per_key(every)
    assert [t.trial_dir.name for t in kept] == ["t_b", "t_c", "t_d"]
    df = load_study(study)
    assert list(df["trial_dir"].map(lambda p: p.rsplit("/", 1)[-1])) == ["t_b", "t_c", "t_d"]
    assert len(load_study(study, every_run=True)) == 4
    assert df.loc[df["status"] == "terminated", "focal.gamma"].eq(1.0).all()
    assert "gamma" not in df.columns


def test_hyperparameters_with_per_loss_meanings_get_per_loss_columns():
    assert hparam_columns("focal", {"gamma": 1.0}) == {"focal.gamma": 1.0}
    assert hparam_columns("eqlv2", {"gamma": 12.0, "mu": 0.8, "alpha": 4.0}) == {
        "eqlv2.gamma": 12.0, "eqlv2.mu": 0.8, "eqlv2.alpha": 4.0}
    assert hparam_columns("elm", {"s": 30.0, "max_m": 0.5, "lam": 1.0}) == {
        "s": 30.0, "max_m": 0.5, "lam": 1.0}
