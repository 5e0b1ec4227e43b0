"""Build a session fixture's folder once per test run, shared by every xdist worker."""
import os
import shutil
from contextlib import contextmanager

from filelock import FileLock


@contextmanager
def built_once(tmp_path_factory, name: str):
    """Yields (path, todo): build at ``path`` when ``todo``; the folder is shared by every
    xdist worker of this run (their base temp folders' parent) and built by one of them."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    path, done = root / name, root / f"{name}.built"
    with FileLock(str(root / f"{name}.lock")):
        todo = not done.exists()
        try:
            yield path, todo
        except BaseException:
            # A half-built folder would make the other worker fail on mkdir and hide this
            # error; without it, that worker builds afresh and meets the real error itself.
            if todo:
                shutil.rmtree(path, ignore_errors=True)
            raise
        if todo:
            done.touch()
