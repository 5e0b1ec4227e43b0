"""The one forward pass over a checkpoint (analysis/forward.py; issue 39): it reproduces what
the trial reported, and it is the only place in ``analysis`` that builds a trial's model."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from analysis.forward import forward_pass
from trainables.checkpoints import newest_good_in
from trainables.store import StudyFolder

REPO = Path(__file__).resolve().parents[2]


def test_the_pass_over_a_checkpoint_gives_the_top1_the_trial_reported(study):
    trial = next(t for t in StudyFolder(study).trials if t.status == "terminated")
    path, state = newest_good_in(trial.trial_dir)
    run = forward_pass(path, ("val", "test"))
    test = run.splits["test"]
    top1 = 100.0 * (test.logits.argmax(1) == test.labels).double().mean().item()
    row = next(r for r in trial.epochs if r["epoch"] == state["epoch"])
    assert top1 == pytest.approx(row["test_top1"], abs=1e-6)
    assert run.splits["val"].labels.shape[0] > 0 and run.classifier is not None
    assert run.classifier.shape == (len(run.class_counts), test.features.shape[1])
    with pytest.raises(ValueError, match="split 'dev'"):
        forward_pass(state, ("dev",))


def test_only_the_one_pass_builds_a_trials_model_in_analysis():
    builds = []
    for path in sorted((REPO / "analysis").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id in ("Trainer", "load_checkpoint", "create_model"):
                builds.append(f"{path.name}:{node.lineno} {node.func.id}")
    assert builds and all(b.startswith("forward.py:") for b in builds), builds
