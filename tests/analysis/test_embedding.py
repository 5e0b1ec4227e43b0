"""The paper's Figure 3 (UMAP of penultimate features, one panel per method) from the real
small study's checkpoints (tests/analysis/conftest.py), and in the report."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis import embedding
from analysis.collect import load_study

REPO = Path(__file__).resolve().parents[2]


def test_panels_come_from_each_methods_lowest_seed_checkpoint(study):
    df = load_study(study)
    trials = embedding.panel_trials(df)
    assert [m for m, _, _ in trials] == list(dict.fromkeys(df["method"]))
    assert all(seed == 0 and ckpt.exists() for _, seed, ckpt in trials)
    panels = embedding.embedding_panels(df, points=150)
    for p in panels.values():
        assert p["features"].shape == (150, 64) and p["labels"].shape == (150,)
        assert len(set(p["labels"].tolist())) >= 5       # a random subset, not the head class
    # every method sees the same images
    first = next(iter(panels.values()))["labels"]
    assert all((p["labels"] == first).all() for p in panels.values())


def test_projection_is_umap_and_never_a_silent_fallback(tmp_path, monkeypatch):
    x = np.random.default_rng(0).normal(size=(80, 16))
    xy = embedding.project_2d(x)
    assert xy.shape == (80, 2) and np.isfinite(xy).all()
    monkeypatch.setitem(sys.modules, "umap", None)          # as if umap-learn were missing
    with pytest.raises(embedding.MissingPackage, match="umap-learn"):
        embedding.project_2d(x)
    assert embedding.project_2d(x, "pca").shape == (80, 2)   # only when asked for
    with pytest.raises(ValueError, match="projection='tsne'"):
        embedding.project_2d(x, "tsne")


def test_feature_embedding_draws_one_panel_per_method(study, tmp_path):
    panels = embedding.embedding_panels(load_study(study), points=120)
    png = embedding.feature_embedding(panels, tmp_path / "emb", class_names=list("abcdefghij"))
    assert png.read_bytes()[:4] == b"\x89PNG" and png.with_suffix(".pdf").exists()


def test_report_has_the_umap_embedding_with_its_caption(report):
    md = (report / "report.md").read_text()
    assert "## Feature embedding (UMAP)" in md and "![Feature embedding (UMAP)](embedding.png)" in md
    assert "UMAP (umap-learn" in md and "penultimate-layer" in md
    assert (report / "embedding.png").exists()
    assert "Feature embedding (UMAP)" in (report / "report.html").read_text()


def test_report_without_umap_is_one_line_naming_the_package(study, tmp_path):
    code = ("import sys; sys.modules['umap'] = None; from analysis.report import main; "
            f"sys.exit(main(['report', {str(study)!r}, '--out', {str(tmp_path / 'rep')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "umap-learn" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "rep" / "verdicts.csv").exists()
