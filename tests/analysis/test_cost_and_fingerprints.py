"""Studies written before data fingerprints and costs were recorded still read and report
(both show as unknown, nothing crashes); partly known costs say how many are unknown; a
setting whose trials disagree on their data is flagged with the fields that differ. The real
study with costs and fingerprints: tests/study/test_cost_study.py."""
import shutil
from pathlib import Path

import pandas as pd

from analysis.collect import load_study
from analysis.cost import cost_display, cost_lines
from analysis.fingerprints import disagreements, fingerprint_table
from study.cli import main as study_main

OLD = Path(__file__).resolve().parents[1] / "fixtures" / "pre_move_study"


def test_an_old_study_shows_cost_and_fingerprint_as_unknown(tmp_path, capsys):
    study = tmp_path / "old"
    shutil.copytree(OLD, study)
    df = load_study(study)
    assert len(df) == 2 and df["cost_wall_s"].isna().all() and df["data_fingerprint"].isna().all()
    assert cost_lines(df)[0] == ("cost (device-hours): unknown, the rows of 2 trials were "
                                 "written before costs were recorded")
    shown = cost_display(df)
    assert set(shown["CPU-hours"]) == set(shown["GPU-hours"]) == {"unknown"}
    prints = fingerprint_table(df)
    assert list(prints["Data fingerprint"]) == ["unknown"] and not disagreements(df)
    assert study_main(["status", str(study)]) == 0
    assert "cost (device-hours): unknown" in capsys.readouterr().out


def frame(**cols) -> pd.DataFrame:
    base = {"method": ["CE", "CE", "LDAM"], "status": ["terminated"] * 3,
            "epochs_done": [2, 2, 2], "dataset": ["cifar10"] * 3, "imb_type": ["lt"] * 3,
            "ratio": [100.0] * 3}
    return pd.DataFrame({**base, **cols})


def test_known_and_unknown_costs_are_kept_apart_and_gpu_never_adds_to_cpu():
    df = frame(cost_wall_s=[3600.0, None, 7200.0], cost_gpu_s=[900.0, None, 0.0],
               cost_cpu_s=[0.0, None, 7200.0], cost_attempts=[1, None, 2],
               cost_device=["NVIDIA H100", None, "cpu"])
    lines = cost_lines(df)
    assert lines[0] == ("cost (device-hours, every attempt): 0.25 GPU-h + 2 CPU-h "
                        "over 3 trials on NVIDIA H100, cpu; 1 trial unknown (written before "
                        "costs were recorded)")
    assert lines[1].split() == ["CE", "0.25", "GPU-h", "(+1", "unknown)", "(2", "trials)"]
    shown = cost_display(df).set_index("Method")
    assert shown.loc["LDAM", "GPU-hours"] == "0" and shown.loc["LDAM", "CPU-hours"] == "2"
    assert shown.loc["Study (all methods)", "Attempts"] == "3"


def test_a_setting_whose_trials_trained_on_other_data_is_flagged():
    df = frame(data_fingerprint=["aaaaaaaaaaaa", "aaaaaaaaaaaa", "bbbbbbbbbbbb"],
               data_source_fingerprint=["ssssssssssss"] * 3, img_max=[5000, 5000, 5000],
               data_seed=[0, 0, 1], val_fraction=[0.0, 0.0, 0.0])
    prints = fingerprint_table(df)
    assert list(prints["Data fingerprint"]) == ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]
    assert list(prints["Trials"]) == ["2", "1"]
    assert disagreements(df) == ["CIFAR-10 LT ρ=100: trials of this setting trained on 2 "
                                 "different data sets: data_seed 0 vs 1"]
    same = frame(data_fingerprint=["aaaaaaaaaaaa"] * 3, data_seed=[0, 0, 0])
    assert not disagreements(same) and len(fingerprint_table(same)) == 1
