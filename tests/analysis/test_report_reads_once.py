"""Building a report reads each file of the study once (issue 39): study.json, every trial's
params.json and result.json, through one StudyFolder."""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_report_reads_each_file_of_the_study_once(tmp_path, monkeypatch):
    from analysis.report import build_report
    study = tmp_path / "s"
    shutil.copytree(REPO / "tests/fixtures/a74942e_study", study)
    reads: Counter = Counter()
    real = Path.read_text, Path.read_bytes

    def counted(kind):
        def read(self, *a, **kw):
            if self.name in ("study.json", "params.json", "result.json"):
                reads[str(self.relative_to(study))] += 1
            return real[kind](self, *a, **kw)
        return read
    monkeypatch.setattr(Path, "read_text", counted(0))
    monkeypatch.setattr(Path, "read_bytes", counted(1))
    build_report(study, tmp_path / "report")
    trials = [p.parent.name for p in study.glob("*/result.json")]
    assert len(trials) == 2 and (tmp_path / "report" / "report.html").exists()
    assert {k: n for k, n in reads.items() if n != 1} == {}, reads
    assert {f"{t}/{f}" for t in trials for f in ("params.json", "result.json")} | {
        "study.json"} <= set(reads)
