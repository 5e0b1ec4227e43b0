"""Watching without Ray: refused --log choices, the progress line's wording, trial names."""
import importlib.util

import pytest

from study.console import progress_line, trial_words
from study.loggers import parse_log_flags, run_name
from study.store import StudyError
from trainables.methods import trial_name
from trainables.ray_layer.dashboard import ascii_tag

ELM = {"base": {"dataset": "cifar10", "imb_type": "lt", "ratio": 100.0, "epochs": 200},
       "method": {"loss": "elm", "drw": True, "lam": 0.5}, "seed": 1}


def _run(tmp_path, capsys, *args):
    from study.cli import main
    rc = main(["run", "smoke", "--storage", str(tmp_path / "s"), *args])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("flag", ["nonsense", "wandb=x", "tensorboard"])
def test_unknown_log_target_exits_2_with_one_line_and_creates_nothing(tmp_path, capsys, flag):
    rc, err = _run(tmp_path, capsys, "--log", flag)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--log" in lines[0] and "mlflow[=URI], wandb" in lines[0], err
    assert not (tmp_path / "s").exists()


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb installed")
def test_wandb_is_refused_where_it_is_not_installed(tmp_path, capsys):
    rc, err = _run(tmp_path, capsys, "--log", "wandb")
    assert rc == 2 and "pip install wandb" in err, err
    assert not (tmp_path / "s").exists()


def test_parse_log_flags_keeps_the_uri():
    assert parse_log_flags(["mlflow=sqlite:////x/m.db", "mlflow"]) == [
        ("mlflow", "sqlite:////x/m.db"), ("mlflow", None)]
    with pytest.raises(StudyError):
        parse_log_flags(["mlflow2"])


def test_trial_names_in_the_methods_words():
    assert trial_name(ELM, "3a7c1_00002") == "ELM + DRW (λ=0.5) seed 1 [3a7c1_00002]"
    assert trial_words(ELM) == "ELM + DRW (λ=0.5) CIFAR-10 LT ρ=100 seed 1"
    assert run_name(ELM) == "ELM+DRW_lam0.5_seed1"
    assert ascii_tag("ELM w/o Δy (λ=1.0)") == "ELM w/o Deltay (lambda=1.0)"


def test_progress_line_reads_the_result_row():
    result = {"method": "ELM + DRW (λ=0.5)", "epoch": 120, "test_top1": 71.2449,
              "best_test_top1": 71.9, "best_epoch": 115, "test_many": 88.06,
              "test_medium": 70.2, "test_few": 52.31}
    line = progress_line(ELM, result, s_per_epoch=2.9)
    eta_min = round((200 - 120) * 2.9 / 60)
    assert line == ("ELM + DRW (λ=0.5) CIFAR-10 LT ρ=100 seed 1  ep 120/200  top-1 71.24 "
                    "(best 71.90 @115)  many 88.1  med 70.2  few 52.3  2.9 s/ep  "
                    f"eta {eta_min} min")


def test_progress_line_without_shot_groups_or_timing():
    line = progress_line(ELM, {"method": "CE", "epoch": 1, "test_top1": 10.0,
                               "best_test_top1": 10.0, "best_epoch": 1,
                               "test_many": float("nan")}, s_per_epoch=float("nan"))
    assert "many –" in line and "– s/ep" in line and "eta ?" in line


def test_optuna_dashboard_finds_the_study_database_or_says_why_not(tmp_path, capsys):
    import optuna

    from study.cli import main
    from study.watch import optuna_db
    study = tmp_path / "grid"
    study.mkdir()
    (study / "study.json").write_text('{"name": "grid", "space": "smoke"}')
    assert main(["optuna-dashboard", str(study)]) == 2
    assert "no Optuna database" in capsys.readouterr().err
    db = study / "optuna" / "optuna_elm.db"
    db.parent.mkdir()
    optuna.create_study(storage=f"sqlite:///{db}", study_name="s")
    assert optuna_db(study) == db
