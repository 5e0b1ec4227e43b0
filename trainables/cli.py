"""What every command line of the project shares (the trial CLI, `elm-study`, `python -m analysis`,
the bench scripts): argparse errors as one line, and one test that a folder takes files.

Here, in the lowest package, because every other package may import trainables."""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line, ``PROG: error: MESSAGE[HINT]``, exit 2 (argparse
    prints its usage block too); ``hint`` is appended, e.g. " (see PROG --help)";
    ``error_prog`` names the command in the line instead of ``prog`` (a sub-command's errors
    say the command the user typed first)."""

    def __init__(self, *args, hint: str = "", error_prog: str | None = None, **kw):
        super().__init__(*args, **kw)
        self.hint, self.error_prog = hint, error_prog

    def error(self, message):
        self.exit(2, f"{self.error_prog or self.prog}: error: "
                     f"{' '.join(str(message).split())}{self.hint}\n")


def folder_problem(folder: str | Path, *, create: bool = True) -> tuple[Path, str] | None:
    """None when ``folder`` can take files; else (the folder at fault, why: strerror or "not a
    folder"), for the caller's own words. With ``create`` the folder and its parents are
    made; without, nothing is made and the nearest existing ancestor is probed. The probe
    makes and removes a temporary folder: the one reliable test (root passes ``os.access``
    everywhere, and /proc refuses mkdir)."""
    folder = Path(folder).expanduser()
    where = folder
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        else:
            where = next(a for a in (folder, *folder.absolute().parents) if a.exists())
        if not where.is_dir():
            return where, "not a folder"
        os.rmdir(tempfile.mkdtemp(prefix=".write-test-", dir=where))
    except OSError as e:
        return where, str(e.strerror or e)
    return None
