"""One small real study shared by the analysis tests (Ray, synthetic data, 1 epoch), and its
report, each built once per test run: under ``make test``'s two xdist workers the first
worker to need one builds it under a file lock and the other reuses it (the readers only
read; a test that changes files copies the study first)."""
from pathlib import Path

import pytest

from build_once import built_once
from search_spaces.base import StudySpace, grid
from trainables.methods import method

# CE, LDAM and ELM at two λ × 3 seeds: enough for verdicts (ELM vs LDAM, vs CE), a λ
# ablation, mean ± std and per-class plots.
METHODS = [method("ce"), method("ldam"), method("elm", lam=0.1), method("elm", lam=1.0)]
SEEDS = [0, 1, 2]


@pytest.fixture(scope="session")
def study(tmp_path_factory) -> Path:
    """12 real trials written by Tune, read back from the folder as users do (a validation
    split held out, so post-hoc τ can be chosen on it)."""
    from study.launcher import fit_study
    from trainables.store import RunOptions, RunRecord, StudyRecord
    with built_once(tmp_path_factory, "analysis-studies") as (root, todo):
        if todo:
            root.mkdir()
            space = StudySpace("mini", "analysis fixture", {
                "base": {"dataset": "synthetic", "ratio": 10.0, "epochs": 1, "batch_size": 64,
                         "eval_batch_size": 200, "device": "cpu", "val_fraction": 0.2},
                "method": grid(METHODS), "seed": grid(SEEDS)}, len(METHODS) * len(SEEDS))
            options = RunOptions(cpus_per_trial=1.0, gpus_per_trial=0, max_failures=0)
            record = StudyRecord("mini", space="mini", storage=str(root), options=options,
                                 expected_trials=len(METHODS) * len(SEEDS),
                                 runs=(RunRecord(1, options, launched=len(METHODS) * len(SEEDS)),))
            rc = fit_study(space, str(root / "mini"), record, address="local", dashboard=False,
                           dashboard_host="127.0.0.1")
            assert rc == 0
    return root / "mini"


@pytest.fixture(scope="session")
def report(study, tmp_path_factory) -> Path:
    """The study's report folder (report.html, report.md, LaTeX, figures)."""
    from analysis.report import build_report
    with built_once(tmp_path_factory, "analysis-report") as (root, todo):
        if todo:
            root.mkdir()
            build_report(study, root / "rep")
    return root / "rep"
