"""``python -m trainables.run``: bad input is refused with one line and exit 2, before anything
heavy is built and without writing into --out; --help lists every dataset, loss and model.

The CLI runs as real subprocesses (what a user types), several at once: each spends its time
importing torch, none trains.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainables.config import TrialConfig
from trainables.data import list_datasets
from trainables.checkpoints import CheckpointError, check_checkpoint
from trainables.losses import list_losses
from trainables.models import list_models

PREFIX = "python -m trainables.run: error: "
SYN = ["--dataset", "synthetic", "--device", "cpu"]


def write_inputs(d: Path) -> None:
    (d / "broken.yaml").write_text("ratio: [1, 2\n")
    (d / "list.yaml").write_text("- ratio\n- 10\n")
    (d / "unknown.yaml").write_text("ratio: 10\nbogus_key: 1\n")
    (d / "corrupt.pt").write_bytes(b"\x80\x02 not a checkpoint at all")
    torch.save({"weights": torch.zeros(3)}, d / "foreign.pt")        # a torch file, no trial
    other = TrialConfig(dataset="synthetic", device="cpu", loss="focal", epochs=3)
    torch.save({"format": 1, "config": other.to_dict(), "model": {}}, d / "other.pt")
    (d / "afile").write_text("x")


# (id, arguments, a fragment the one line must contain); {d} is the test's folder
CASES = [
    ("cifar10-data-root", ["--dataset", "cifar10", "--data-root", "/nonexistent"],
     "cifar-10-batches-py"),
    ("cifar100-data-root", ["--dataset", "cifar100", "--data-root", "/nonexistent"],
     "/nonexistent/cifar-100-python"),
    ("places-data-root", ["--dataset", "places_lt", "--data-root", "/nonexistent"],
     "data_root /nonexistent is not a folder"),
    ("fmnist-data-root", ["--dataset", "fashion_mnist", "--data-root", "/nonexistent"],
     "looked in /nonexistent,"),
    ("out-proc", SYN + ["--out", "/proc/x"], "--out /proc/x"),
    ("out-under-file", SYN + ["--out", "{d}/afile/run"], "is not a folder"),
    ("resume-missing", ["--resume", "/nonexistent/last.pt"], "/nonexistent/last.pt does not"),
    ("resume-corrupt", SYN + ["--resume", "{d}/corrupt.pt"], "corrupt.pt is unreadable"),
    ("resume-foreign", SYN + ["--resume", "{d}/foreign.pt"], "holds no trial state"),
    ("resume-other-config", SYN + ["--resume", "{d}/other.pt"],
     "different trial config: loss='ce' here, 'focal' in the checkpoint; epochs=200"),
    ("unknown-loss", ["--loss", "nope"], "loss='nope' is not valid; choose one of"),
    ("bad-ratio", ["--ratio", "0.5"], "ratio=0.5 is out of range"),
    ("ratio-not-number", ["--ratio", "ten"], "'ratio' expects float"),
    ("lam-with-ce", ["--loss", "ce", "--lam", "0.5"], "lam does not apply to loss 'ce'"),
    ("config-broken-yaml", ["--config", "{d}/broken.yaml"], "is not valid YAML/JSON"),
    ("config-not-mapping", ["--config", "{d}/list.yaml"], "must hold a mapping"),
    ("config-unknown-key", ["--config", "{d}/unknown.yaml"], "unknown key(s) ['bogus_key']"),
    ("config-missing", ["--config", "{d}/none.yaml"], "cannot read it"),
    ("unknown-flag", ["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ("init-weights-missing", SYN + ["--init-weights", "/nonexistent/w.pt"],
     "--init-weights /nonexistent/w.pt does not exist"),
]


# Runs each case in its own forked process of one interpreter that has imported the CLI
# (torch's import is 2-3 s of CPU per process: twenty cold starts took ~110 s on a 2-core VM).
# The child does what ``python -m trainables.run`` does: main(), uncaught errors printed by
# Python's own hook, the exit status from sys.exit; stdout/stderr are its real descriptors.
DRIVER = """
import json, os, sys
from trainables.run import main
for argv, out, err in json.loads(sys.argv[1]):
    pid = os.fork()
    if pid == 0:
        for fd, path in ((1, out), (2, err)):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        sys.argv = ["trainables/run.py", *argv]
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except BaseException:
            sys.excepthook(*sys.exc_info())
            rc = 1
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(rc)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every case run once, each with its own (never created) --out folder."""
    import json
    d = tmp_path_factory.mktemp("cli")
    write_inputs(d)
    jobs = []
    for name, args, _ in CASES:
        argv = [a.replace("{d}", str(d)) for a in args]
        if "--out" not in argv:
            argv += ["--out", str(d / f"out-{name}")]
        jobs.append([argv, str(d / f"{name}.stdout"), str(d / f"{name}.stderr")])
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    p = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(jobs)], capture_output=True,
                       text=True, timeout=300, env=env, cwd=d)
    assert p.returncode == 0, p.stderr
    codes = [int(c) for c in p.stdout.split()]
    return {name: (rc, Path(out).read_text(), Path(err).read_text(), d / f"out-{name}")
            for (name, _, _), rc, (_, out, err) in zip(CASES, codes, jobs)}


@pytest.mark.parametrize("name, fragment", [(c[0], c[2]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_nothing_written(results, name, fragment):
    rc, stdout, stderr, out = results[name]
    lines = stderr.splitlines()
    assert rc == 2, stderr
    assert len(lines) == 1 and lines[0].startswith(PREFIX), stderr
    assert "Traceback" not in stderr + stdout
    assert fragment in lines[0], lines[0]
    assert not out.exists(), f"{name} created {out}"


@pytest.mark.parametrize("args, fragment", [
    (["--resume", "/nonexistent/last.pt", "--out", "/proc/x"], "/nonexistent/last.pt"),
    (["--dataset", "cifar10", "--data-root", "/nonexistent", "--epochs", "1"], "cifar-10")])
def test_as_a_user_types_it(tmp_path, args, fragment):
    """Two cases through a cold ``python -m trainables.run``, the path the driver mirrors.
    The checkpoint is checked first: before --out, before any dataset is looked at."""
    p = subprocess.run([sys.executable, "-m", "trainables.run", *args], capture_output=True,
                       text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and fragment in p.stderr, p.stderr
    assert p.stderr.startswith(PREFIX) and "Traceback" not in p.stderr
    assert list(tmp_path.iterdir()) == []


def test_out_holding_another_run_is_refused_unless_resuming(tmp_path, capsys):
    from trainables.run import main
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"epoch": 1}\n')
    with pytest.raises(SystemExit) as e:
        main(["--dataset", "synthetic", "--out", str(out)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1
    assert f"--out {out} already holds a run (metrics.jsonl); continue it with --resume" in err
    assert [p.name for p in out.iterdir()] == ["metrics.jsonl"]
    assert (out / "metrics.jsonl").read_text() == '{"epoch": 1}\n'


def test_help_lists_every_dataset_loss_and_model_with_groups_and_defaults():
    p = subprocess.run([sys.executable, "-m", "trainables.run", "--help"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    text = p.stdout
    for name in list_datasets() + list_losses() + list_models():
        assert f"  {name} " in text, name               # in the epilog's tables
    for title in ("data:", "loss (", "model:", "schedule and optimisation", "execution:"):
        assert f"\n{title}" in text, title
    flat = " ".join(text.split())
    assert "--ratio X imbalance ratio n_max / n_min; 1 = balanced (default: 100.0)" in flat
    assert "one of: fp32, bf16 (default: fp32)" in flat
    assert "(default: 200; 90 for imagenet_lt, places_lt, inat2018)" in flat
    assert "(default: 160,180; 50,70,85 for imagenet_lt, places_lt; 30,60 for inat2018)" in flat


def test_checkpoint_of_another_config_names_the_fields_that_differ():
    cfg = TrialConfig(dataset="synthetic", loss="ldam", s=20.0, epochs=4)
    other = cfg.replace(s=30.0, ratio=50.0, device="cpu", checkpoint_every=3)
    state = {"format": 1, "config": other.to_dict()}
    with pytest.raises(CheckpointError) as e:
        check_checkpoint(state, cfg)
    msg = str(e.value)
    assert "ratio=100.0 here, 50.0 in the checkpoint" in msg and "s=20.0 here, 30.0" in msg
    assert "device" not in msg and "checkpoint_every" not in msg   # runtime fields may differ
    check_checkpoint({"format": 1, "config": cfg.replace(device="cpu").to_dict()}, cfg)
    old = {**cfg.to_dict(), "optimizer": "sgd"}                     # saved before its removal
    check_checkpoint({"format": 1, "config": old}, cfg)


def test_a_missing_optional_package_is_one_line(monkeypatch, capsys):
    """A dataset whose reader lives in a package that is not installed (a real failed import)."""
    from trainables.data import DATASETS, DatasetInfo
    from trainables.run import main
    info = DatasetInfo("needs_pkg", 10, 100, 3, 32, (0.5,) * 3, (0.25,) * 3,
                       "no_such_package_xyz.reader:read", description="test only")
    monkeypatch.setitem(DATASETS, info.name, info)
    with pytest.raises(SystemExit) as e:
        main(["--dataset", "needs_pkg", "--device", "cpu"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "needs the optional package 'no_such_package_xyz'" in err


def test_a_bug_keeps_its_traceback(monkeypatch):
    """Unexpected errors are not turned into one line: a reader that fails with a TypeError."""
    from trainables.data import DATASETS, DatasetInfo
    from trainables.run import main
    info = DatasetInfo("buggy", 10, 100, 3, 32, (0.5,) * 3, (0.25,) * 3,
                       "trainables.data.registry:get_dataset")   # 1 argument, called with 2
    monkeypatch.setitem(DATASETS, info.name, info)
    with pytest.raises(TypeError):
        main(["--dataset", "buggy", "--device", "cpu"])


def test_the_header_names_every_class_count_up_to_20_classes_then_head_and_tail():
    from trainables.run import _counts_words
    assert _counts_words([100, 59, 35]) == "[100, 59, 35]"
    assert _counts_words(list(range(20, 0, -1))) == str(list(range(20, 0, -1)))
    many = [1000 - i // 10 for i in range(8142)]
    words = _counts_words(many)
    assert words == (f"[1000, 1000, 1000, ... {many[-3]}, {many[-2]}, {many[-1]}] "
                     f"(8,142 classes, 1000 to {min(many)})")
    assert len(words) < 80
