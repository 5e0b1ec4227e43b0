"""The report as a reader gets it: opened in a real browser, figures that keep their text on
the canvas, strict JSON in every file of a study, and one-line errors from the CLI."""
import json
import math
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from analysis import plots, style
from analysis.collect import load_study, trial_dirs
from analysis.report import main
from trainables.jsonio import dumps_strict

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)


class _Page(HTMLParser):
    """Tables (by class) with their row count, and figure images with their attributes."""

    def __init__(self):
        super().__init__()
        self.tables, self.images, self._table = {}, [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("class", "")
            self.tables[self._table] = 0
        elif tag == "tr" and self._table is not None:
            self.tables[self._table] += 1
        elif tag == "img":
            self.images.append(a)

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get "
                    "install chromium): the report cannot be opened in a real browser here")
def test_report_renders_in_headless_chromium(report, tmp_path):
    html = report / "report.html"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([*cmd, "--dump-dom", html.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    page = _Page()
    page.feed(dom)
    verdicts = [n for c, n in page.tables.items() if "verdicts" in c]
    assert verdicts and verdicts[0] >= 2, page.tables            # header + >= 1 comparison
    assert "ELM (λ=1.0) vs LDAM" in dom and "% CI [" in dom
    pngs = sorted(p.name for p in report.glob("*.png"))
    assert len(pngs) >= 4 and len(page.images) == len(pngs)
    for img in page.images:      # embedded (opens offline) and decoded by the browser
        assert img["src"].startswith("data:image/png;base64,")
        assert img.get("data-rendered") == "yes", img.get("alt")
    shot = tmp_path / "top.png"
    subprocess.run([*cmd, "--window-size=1200,900", f"--screenshot={shot}", html.as_uri()],
                   capture_output=True, timeout=120, cwd=tmp_path)
    assert len(Image.open(shot).getcolors(1 << 20)) > 50           # drawn, not a blank page


def test_report_is_self_contained(report):
    html = (report / "report.html").read_text()
    assert not re.search(r"""(src|href)=["'](?!data:|#)[^"']+\.(png|css|js)""", html)
    assert "–" in html and 'class="sortable' in html and "<script>" in html


def test_saved_figures_keep_their_text_on_the_canvas(report, study, tmp_path):
    df = load_study(study)
    long = df.assign(method=df["method"] + " + a long suffix (λ-sweep, seed-paired)")
    pngs = [*report.glob("*.png"), plots.shot_groups(long, tmp_path / "shots_long"),
            plots.per_class_vs_size(long.assign(dataset="fashion_mnist", img_max=None),
                                    tmp_path / "pc_fmnist")]
    for png in pngs:             # the layout check's numbers, stored in the PNG at save time
        meta = Image.open(png).text
        x0, y0, x1, y1 = map(float, meta["elm:tightbbox"].split(","))
        w, h = map(float, meta["elm:figsize"].split(","))
        assert x0 >= -0.01 and y0 >= -0.01 and x1 <= w + 0.01 and y1 <= h + 0.01, png.name


def test_canvas_check_catches_clipped_text(tmp_path):
    fig, ax = style.figure(figsize=(3, 2))
    ax.set_xticks([0, 1], ["ELM + DRW (λ=0.5) " * 3, "LDAM + DRW"], rotation=30)
    fig.set_layout_engine("none")               # as a figure without layout would be
    assert max(style.overflow(fig)) > 0.1       # the check sees the cut labels
    style.fit_canvas(fig)                       # and the figure grows until they fit
    assert max(style.overflow(fig)) <= 0.01
    fig.text(1.3, 0.5, "outside")               # placed off the canvas: cannot be fixed
    with pytest.raises(style.ClippedFigure):
        style.save(fig, tmp_path / "bad")
    assert not (tmp_path / "bad.png").exists()
    # style.figure's figures are not pyplot's: nothing is left open to close


def test_class_names_where_the_dataset_has_them():
    _, ticks = plots.class_axis({"dataset": "fashion_mnist", "imb_type": "lt", "ratio": 100.0})
    assert ticks[0] == "T-shirt/top\n(6000)" and "Shirt\n(278)" in ticks
    _, ticks = plots.class_axis({"dataset": "cifar10", "imb_type": "step", "ratio": 10.0})
    assert {t.split("\n")[0] for t in ticks} >= {"airplane", "truck"}
    _, ticks = plots.class_axis({"dataset": "cifar100", "imb_type": "lt", "ratio": 100.0})
    assert ticks[0] == "0\n(500)" and len(ticks) == 100             # indices otherwise


def test_one_colour_per_method_across_figures(study):
    df = load_study(study)
    colours = plots.study_colours(df)
    methods = list(dict.fromkeys(df["method"]))
    assert len({colours[m] for m in methods}) == len(methods)
    assert all(c in style.OKABE_ITO for c in (colours[m] for m in methods))


def loads_strict(text: str):
    """``json.loads`` that refuses NaN/Infinity/-Infinity, which strict parsers reject."""
    def reject(name):
        raise ValueError(f"not strict JSON: {name}")
    return json.loads(text, parse_constant=reject)


def _strict_lines(path: Path):
    text = path.read_text()
    if path.name == "result.json" or path.suffix == ".jsonl":
        return [loads_strict(line) for line in text.splitlines() if line.strip()]
    return [loads_strict(text)]


def test_every_json_file_of_a_study_is_strict(study, report):
    # Ray's BasicVariantGenerator state is a pickle that Ray names *.json: not ours, not JSON
    files = [p for p in study.rglob("*") if p.suffix in (".json", ".jsonl")
             and not p.name.startswith("basic-variant-state-")]
    assert any(p.name == "result.json" for p in files) and len(files) > 12
    for path in files:
        for doc in _strict_lines(path):
            if path.name.startswith("experiment_state"):     # trials are JSON in strings
                for entry in doc.get("trial_data", []):
                    [loads_strict(e) for e in entry if isinstance(e, str)]


def test_strict_writer_and_readers_of_old_files(study, tmp_path):
    assert dumps_strict({"a": math.nan, "b": [1.0, -math.inf]}) == '{"a": null, "b": [1.0, null]}'
    with pytest.raises(ValueError):
        loads_strict('{"test_few": NaN}')
    copy = tmp_path / "old"
    shutil.copytree(study, copy)
    d = trial_dirs(copy)[0]
    rows = [json.loads(line) for line in (d / "result.json").read_text().splitlines()]
    rows[-1]["test_few"] = math.nan            # an old file: Python's NaN literal
    (d / "result.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert "NaN" in (d / "result.json").read_text()
    df = load_study(copy).set_index("trial_dir")
    assert math.isnan(df.loc[str(d), "test_few"]) and df.loc[str(d), "status"] == "terminated"


def test_trial_cli_writes_strict_metrics_jsonl(tmp_path):
    r = subprocess.run([sys.executable, "-m", "trainables.run", "--dataset", "synthetic",
                        "--epochs", "1", "--batch-size", "64", "--device", "cpu", "--quiet",
                        "--out", str(tmp_path / "run")], capture_output=True, text=True,
                       timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = _strict_lines(tmp_path / "run" / "metrics.jsonl")
    assert rows and rows[-1]["done"]


def _bad_inputs(tmp: Path):
    (tmp / "file.txt").write_text("x")
    (tmp / "notastudy").mkdir()
    (tmp / "notastudy" / "notes.txt").write_text("x")
    (tmp / "empty").mkdir()
    (tmp / "empty" / "study.json").write_text("{}")
    return {
        "no command": ([], "required"),
        "unknown command": (["plot", str(tmp)], "invalid choice"),
        "unknown option": (["report", str(tmp / "empty"), "--colour", "x"], "--colour"),
        "missing study": (["report", str(tmp / "missing")], "study folder not found"),
        "a file": (["report", str(tmp / "file.txt")], "not a folder"),
        "not a study": (["report", str(tmp / "notastudy")], "is not a study folder"),
        "empty study": (["report", str(tmp / "empty")], "holds no trials yet"),
    }


@pytest.mark.parametrize("case", ["no command", "unknown command", "unknown option",
                                  "missing study", "a file", "not a study", "empty study"])
def test_cli_bad_input_is_one_line_exit_2(case, tmp_path, capsys):
    argv, expected = _bad_inputs(tmp_path)[case]
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as e:
        sys.exit(main(argv))
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m analysis: error: "), err
    assert expected in err and "Traceback" not in err
    assert sorted(tmp_path.rglob("*")) == before                       # nothing written


@pytest.mark.parametrize("case", ["unwritable out", "out is a file", "missing package"])
def test_cli_output_and_package_errors(case, study, tmp_path):
    (tmp_path / "taken").write_text("x")
    out = {"unwritable out": "/proc/forbidden/report", "out is a file": str(tmp_path / "taken"),
           "missing package": str(tmp_path / "rep")}[case]
    # a package that is not installed: Python's import system refuses names set to None
    pre = "sys.modules['tabulate'] = None; " if case == "missing package" else ""
    code = (f"import sys; {pre}from analysis.report import main; "
            f"sys.exit(main(['report', {str(study)!r}, '--out', {out!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("python -m analysis: error: ") and "Traceback" not in r.stderr
    assert ("tabulate" in r.stderr) if case == "missing package" else (out in r.stderr)
    assert not (tmp_path / "rep").exists() and not Path("/proc/forbidden").exists()
