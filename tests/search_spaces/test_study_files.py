"""Study files from a user's point of view: an own file dry-runs; bad files are refused with
one line naming the file and the key, exit 2, and no study folder created."""
import re

import pytest

from study.cli import main

OWN = """\
description: 4 ratios × 3 methods × 3 seeds
base: {dataset: cifar10, imb_type: lt, epochs: 200}
methods: [ce, ldam+drw, elm+drw(lam=0.5)]
grid:
  ratio: [10, 50, 100, 200]
  seed: 0..2
"""


def run_cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_an_own_study_file_dry_runs_as_36_trials(capsys, tmp_path, cifar_root):
    f = tmp_path / "ratios.yaml"
    f.write_text(OWN)
    rc, out, err = run_cli(capsys, "run", f, "--dry-run", "--storage", tmp_path / "store",
                           "--set", f"data_root={cifar_root}")
    assert rc == 0, err
    assert "# 36 trials: 3 methods × 4 ratio × 3 seed" in out
    assert not (tmp_path / "store").exists()


BAD = [
    ("colour: red\n" + OWN, r"colour.*valid keys"),                                 # unknown key
    (OWN.replace("epochs: 200", "epochs: two"), r"base\.epochs: .*expects int"),    # wrong type
    (OWN.replace("ldam+drw", "ldamm+drw"), r"methods\[1\]: unknown loss 'ldamm'.*'ldam'"),
    (OWN + "  colour: [1, 2]\n", r"grid\.colour: 'colour' is not a TrialConfig field"),
    (OWN + "  gamma: [1, 2]\n", r"grid\.gamma: no method of this study takes gamma"),
    (OWN + "  lr: []\n", r"grid\.lr: an axis needs at least one value"),           # empty axis
    (OWN.replace("0..2", "0..x"), r"grid\.seed: malformed range '0\.\.x'"),
    (OWN.replace("0..2", "0:1:0.3"), r"grid\.seed: range '0:1:0\.3'"),
    (OWN.replace("grid:", "grid: ["), r"not valid YAML at line \d+"),              # syntax
    ("- ce\n- ldam\n", r"expects a mapping"),                                       # not a map
    (OWN.replace("methods: [ce, ldam+drw, elm+drw(lam=0.5)]", "methods: [ce(lam=1)]"),
     r"methods\[0\]: lam does not apply to loss 'ce'"),
    ("base: {loss: elm}\nsearch:\n  space:\n    dataset: uniform(0, 1)\n",
     r"search\.space\.dataset: uniform\(\.\.\.\) needs a numeric field"),          # non-numeric
    ("base: {loss: elm}\nsearch:\n  space:\n    lam: normal(0, 1)\n",
     r"search\.space\.lam: expects one of"),
    ("base: {loss: elm}\nsearch:\n  sampler: grid\n  space:\n    lam: uniform(0, 1)\n",
     r"search\.sampler: unknown sampler 'grid'; choose one of \['tpe', 'random'\]"),
    (OWN + "resources: {gpus_per_trial: lots}\n", r"resources\.gpus_per_trial: expects"),
    (OWN.replace("ratio: [10, 50, 100, 200]", "ratio: [10, 0.5]"), r"ratio=0\.5 is out of range"),
]


@pytest.mark.parametrize("text, match", BAD, ids=[m[:28] for _, m in BAD])
def test_bad_study_file_exits_2_naming_file_and_key(capsys, tmp_path, text, match):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    store = tmp_path / "store"
    for argv in (["run", f, "--storage", store], ["run", f, "--dry-run", "--storage", store],
                 ["show", f]):
        rc, _, err = run_cli(capsys, *argv)
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1, err
        assert lines[0].startswith(f"elm-study: error: {f}"), lines[0]
        assert re.search(match, lines[0]), lines[0]
        assert "Traceback" not in err
    assert not store.exists(), "a refused study must create nothing"


def test_extending_a_study_with_a_bad_file_changes_nothing(capsys, tmp_path):
    study = tmp_path / "mine"
    study.mkdir()
    (study / "study.json").write_text('{"space": "smoke", "name": "mine"}')
    before = sorted(p.name for p in study.iterdir())
    f = tmp_path / "bad.yaml"
    f.write_text(OWN.replace("0..2", "2..0"))
    rc, _, err = run_cli(capsys, "run", f, "--into", study)
    assert rc == 2 and "grid.seed: range '2..0' is empty" in err
    assert sorted(p.name for p in study.iterdir()) == before


def test_searches_are_not_extended_by_key(capsys, tmp_path):
    grid = tmp_path / "grid"
    grid.mkdir()
    (grid / "study.json").write_text('{"space": "smoke", "name": "grid"}')
    rc, _, err = run_cli(capsys, "run", "optuna_elm", "--into", grid, "--download")
    assert rc == 2 and "is a search; a search continues with 'elm-study resume" in err
    search = tmp_path / "search"
    search.mkdir()
    (search / "study.json").write_text('{"space": "optuna_elm", "name": "search"}')
    (search / "optuna.db").write_bytes(b"")
    rc, _, err = run_cli(capsys, "run", "smoke", "--into", search)
    assert rc == 2 and "is a search; it cannot take grid trials" in err
