"""Count before you expand: every way a study can be made huge (a range with a few digits too
many, a tiny step, a product of axes, a search's num_samples, a long list, a YAML alias bomb)
is refused from the axes' lengths alone: exit 2, one line naming the axis (or the axes and
their lengths), no traceback, nothing created, well under a second and a few MB."""
import re
import time
import tracemalloc

import pytest

import trainables.losses  # noqa: F401  (imported once here, so the bound measures the check)
from study.cli import main

BASE = "base: {dataset: synthetic, epochs: 1}\n"
GRID = BASE + "methods: [ce, elm+drw(lam=0.5)]\ngrid:\n"
BOMB = "description: laughs\n" + "".join(
    f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9) if i else ', '.join(['lol'] * 9)}]\n"
    for i in range(9)) + BASE + "grid: {seed: *a8}\n"
HUGE = r"more than a study may hold; the limit is 100,000 trials \(raise it with " \
       r"--max-trials N or ELM_STUDY_MAX_TRIALS=N\)"

CASES = [  # (id, study file or None for smoke, extra argv, what the one line says)
    ("seed range typo", GRID + "  seed: 0..999999999\n", [],
     r"grid\.seed: range '0\.\.999999999' has 1,000,000,000 values: " + HUGE),
    ("tiny step", BASE + "methods: [elm]\ngrid:\n  lam: 0:1:1e-9\n", [],
     r"grid\.lam: range '0:1:1e-9' has 1,000,000,001 values: " + HUGE),
    ("astronomic step", BASE + "grid:\n  lr: 0:1:1e-300\n", [],
     r"grid\.lr: range '0:1:1e-300' has about 10\^300 values"),
    ("product of axes", GRID + "  seed: 0..999\n  ratio: 1..1000\n  lam: 0:1:0.01\n", [],
     r": 102,000,000 trials \(methods 2 × seed 1,000 × ratio 1,000 × lam 101\): " + HUGE),
    ("--seeds", None, ["--seeds", "0..99999999999"],
     r"^elm-study: error: --seeds: range '0\.\.99999999999' has 100,000,000,000 values"),
    ("--grid", None, ["--grid", "lr=0:1:1e-8"],
     r"--grid lr: range '0:1:1e-8' has 100,000,001 values"),
    ("--grid list of ranges", None, ["--grid", "ratio=1..90000,100000..190000"],
     r"--grid ratio: '1\.\.90000,100000\.\.190000' has 180,001 values"),
    ("--grid product", None, ["--grid", "ratio=1..400", "--grid", "lr=0.001:0.5:0.001"],
     r"800,000 trials \(methods 2 × seed 2 × ratio 400 × lr 500\)"),
    ("num_samples", "base: {loss: elm}\nsearch:\n  num_samples: 1000000000000\n"
     "  space:\n    lam: uniform(0, 1)\n", [],
     r"search\.num_samples: asks for 1,000,000,000,000 trials: " + HUGE),
    ("--option num_samples", "base: {loss: elm}\nsearch:\n  space:\n    lam: uniform(0, 1)\n",
     ["--option", "num_samples=100001"], r"--option num_samples: asks for 100,001 trials"),
    ("alias bomb", BOMB, [], r"refused: the document expands to more than 1,000,000 values"),
    ("alias in itself", BASE + "grid: &a {seed: [*a]}\n", [],
     r"refused: an alias refers to a value that contains it"),
    ("long file", BASE + "grid:\n  seed: [" + ", ".join(map(str, range(250_000))) + "]\n", [],
     r"\d{1,3}(,\d{3})+ bytes: a study file is at most 1,048,576"),
    ("huge end", GRID + "  seed: 0.." + "9" * 5000 + "\n", [], r"an end has too many digits"),
    ("limit flag", None, ["--max-trials", "3"],
     r"4 trials \(methods 2 × seed 2\): more than a study may hold; the limit is 3 trials"),
]


@pytest.mark.parametrize("text, extra, match", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_a_huge_study_is_refused_from_its_lengths(capsys, tmp_path, text, extra, match):
    study = "smoke"
    if text is not None:
        study = tmp_path / "big.yaml"
        study.write_text(text)
    store = tmp_path / "store"
    for argv in (["show", study], ["run", study, "--dry-run", "--storage", store],
                 ["run", study, "--storage", store]):
        tracemalloc.start()
        t0 = time.perf_counter()
        rc = main([str(a) for a in argv + extra])
        took = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1, err
        assert re.search(match, lines[0]), lines[0]
        assert "Traceback" not in err
        assert took < 1.0, f"{argv[0]} took {took:.2f} s"
        assert peak < 8 * 2 ** 20, f"{argv[0]} peaked at {peak / 2 ** 20:.1f} MB"
    assert not store.exists(), "a refused study must create nothing"


def test_the_limit_is_raised_by_the_flag_or_the_environment(capsys, monkeypatch):
    assert main(["show", "smoke", "--max-trials", "4"]) == 0
    assert "# 4 trials" in capsys.readouterr().out
    monkeypatch.setenv("ELM_STUDY_MAX_TRIALS", "3")
    assert main(["show", "smoke"]) == 2
    assert "the limit is 3 trials" in capsys.readouterr().err
    assert main(["show", "smoke", "--max-trials", "4"]) == 0    # the flag beats the setting
    monkeypatch.setenv("ELM_STUDY_MAX_TRIALS", "lots")
    assert main(["show", "smoke"]) == 2
    assert "ELM_STUDY_MAX_TRIALS expects an integer >= 1, got 'lots'" in capsys.readouterr().err


def test_the_count_is_the_grid_that_is_built():
    """grid_count (the lengths) agrees with grid_trials (the trials) for methods whose losses
    take different axes."""
    from search_spaces.resolve import grid_count, grid_trials
    from search_spaces.studyfile import normalise, Context
    spec = normalise(Context("t"), {"base": {"dataset": "synthetic"},
                                    "methods": ["ce", "ldam+drw", "elm+drw"],
                                    "grid": {"lam": [0.1, 0.5, 1.0], "max_m": [0.3, 0.5],
                                             "seed": "0..3", "ratio": [10, 100]}}, "t")
    total, parts = grid_count(spec)
    assert total == len(grid_trials(spec)) == (1 + 2 + 3 * 2) * 4 * 2
    assert parts == [("methods", 3), ("lam", 3), ("max_m", 2), ("seed", 4), ("ratio", 2)]
