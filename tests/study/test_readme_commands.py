"""Every `.venv/bin/elm-study list|show|run` line of README.md runs as shown on a machine
without CIFAR, ImageNet or Places (issue 23): `run` lines as dry runs (they plan the study and
name missing data instead of launching it), in a fresh storage folder, exit 0."""
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from study.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"
LINE = re.compile(r"^\s*\.venv/bin/elm-study ((?:list|show|run)\b[^#\n]*)(#.*)?$", re.M)
COMMANDS = [m.group(1).strip() for m in LINE.finditer(README.read_text())]
# lines that say beside them what they need ("# where wandb is installed")
NEEDS = {m.group(1).strip(): re.search(r"where (\w+) is installed", m.group(2) or "")
         for m in LINE.finditer(README.read_text())}


def test_the_readme_has_such_commands():
    assert sum(c.startswith("run ") for c in COMMANDS) >= 4 and any(
        c.startswith("show ") for c in COMMANDS), COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs_as_shown(command, tmp_path, capsys):
    need = NEEDS.get(command)
    argv = shlex.split(command)
    if argv[0] == "run":
        argv += ["--dry-run", "--storage", str(tmp_path)]
    rc = main(argv)
    out = capsys.readouterr()
    if need and importlib.util.find_spec(need.group(1)) is None:
        # what the line says it needs is absent: one line naming it, exit 2, nothing made
        assert rc == 2 and f"pip install {need.group(1)}" in out.err, out.err
        assert len(out.err.strip().splitlines()) == 1 and not any(tmp_path.iterdir())
        return
    assert rc == 0, out.err
    assert "Traceback" not in out.err
    if argv[0] == "run":
        assert re.search(r"# \d+ trials", out.out), out.out
        assert not any(tmp_path.iterdir()), "a dry run creates nothing"
