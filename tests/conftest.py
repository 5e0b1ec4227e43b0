"""Shared fixtures. Ray fixtures start a real local Ray and always shut it down."""
from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

# =========================================================================================
# Nothing outside the clone and this run's temp folder
# =========================================================================================
# A test run brings its own state and writes none into the user's home or a fixed shared
# path, so it passes on a machine that never ran the project and leaves no trace on one that
# did. Set before anything imports Ray, torch or matplotlib; every subprocess (CLI studies,
# `ray start`, notebooks, chromium) inherits it. One folder per pytest process (xdist
# workers included: each starts its own clusters), removed at exit. Short: Ray's socket
# paths under RAY_TMPDIR must stay under 107 bytes.
RUN_STATE = tempfile.mkdtemp(prefix="elmt", dir="/tmp")
atexit.register(shutil.rmtree, RUN_STATE, True)
os.environ["ELM_TEST_RUN_STATE"] = RUN_STATE       # tests/test_run_state.py checks it


def _run_state(name: str) -> str:
    path = os.path.join(RUN_STATE, name)
    os.makedirs(path, exist_ok=True)
    return path


# Ray's token auth (on by default in 2.60): every cluster of this run, local `ray.init` or
# `ray start`, and every client reads this token; without it `ray start --head` on a fresh
# machine refuses ("no authentication token was found") and `ray.init` writes one into
# ~/.ray/auth_token. Made the way `ray get-auth-token --generate` makes one.
_TOKEN = os.path.join(_run_state("ray"), "auth_token")
with open(os.open(_TOKEN, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
    f.write(secrets.token_hex(32))
os.environ["RAY_AUTH_TOKEN_PATH"] = _TOKEN
os.environ.pop("RAY_AUTH_TOKEN", None)            # a user's exported token would win over it
os.environ["RAY_TMPDIR"] = _run_state("r")                # not /tmp/ray
# Caches and configs that default to the home folder or a fixed /tmp path: matplotlib's font
# cache, torch.compile's inductor and Triton caches, Jupyter's runtime and IPython's profile,
# npm's cache and logs (JupyterLab's language-server extension runs `npm prefix -g` when the
# notebook server starts: seen as ~/.npm/_logs in a fresh HOME), and what honours XDG
# (chromium's profile and cache, pip, fontconfig).
for var, name in [("MPLCONFIGDIR", "matplotlib"), ("TORCHINDUCTOR_CACHE_DIR", "inductor"),
                  ("TRITON_CACHE_DIR", "triton"), ("JUPYTER_CONFIG_DIR", "jupyter/config"),
                  ("JUPYTER_DATA_DIR", "jupyter/data"), ("JUPYTER_RUNTIME_DIR", "jupyter/run"),
                  ("IPYTHONDIR", "ipython"), ("npm_config_cache", "npm"),
                  ("XDG_CACHE_HOME", "xdg/cache"),
                  ("XDG_CONFIG_HOME", "xdg/config"), ("XDG_DATA_HOME", "xdg/data"),
                  ("XDG_STATE_HOME", "xdg/state")]:
    os.environ[var] = _run_state(name)

# Torch threads per core, not per process. Under xdist (make test's second phase: -n 2 on 2
# cores) each worker's torch would otherwise start one OpenMP thread per core, and the
# spinning threads of two workers fight over the cores: two copies of test_engine's resume
# test side by side took 72 s each at 2 threads, 12.6 s each at 1. Set before torch is
# imported (xdist sets the count before it loads this file); subprocesses inherit it; Ray's
# workers set their own (OMP_NUM_THREADS = the trial's CPUs).
_xdist_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _xdist_workers > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _xdist_workers)))

from fabricate import fabricate_cifar, fabricate_places_tree  # noqa: E402,F401


@pytest.fixture(scope="session")
def places_tree(tmp_path_factory):
    return fabricate_places_tree(tmp_path_factory.mktemp("places"))


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory):
    """A data_root holding CIFAR-10 and CIFAR-100 in their real on-disk layout (tiny files):
    what a dry run of the CIFAR studies checks for."""
    root = tmp_path_factory.mktemp("cifar")
    fabricate_cifar(root, 10)
    fabricate_cifar(root, 100)
    return root


# =========================================================================================
# Order: the real-Ray and slow tests first
# =========================================================================================
# A long test is then never the last thing a run waits for, and under pytest-xdist (make
# test-fast: -n 2 --dist loadfile --no-loadscope-reorder, a file per worker) the files with
# long tests are queued first.


def _weight(item) -> int:
    return 0 if item.get_closest_marker("ray") or item.get_closest_marker("slow") else 1


def pytest_collection_modifyitems(config, items):
    items.sort(key=_weight)                       # stable: file order within each weight


# =========================================================================================
# One Ray cluster for the session
# =========================================================================================
@pytest.fixture(scope="session")
def shared_ray():
    """A 2-CPU Ray cluster (`ray start --head` on loopback, token auth as Ray sets it, this
    machine's real size) that the CLI studies which neither kill nor break their cluster join
    with ``--address``: each of them then skips a local Ray's start-up. Killing a study's
    driver or a trial's worker leaves the cluster as it was (the job's actors go with their
    driver). Tests of what a local start does (loopback, the console, the dashboard) and
    tests that need the cluster to themselves start their own. Stopped by PID at the end."""
    from raycluster import start_head, stop
    tmp, sids = tempfile.mkdtemp(prefix="rs", dir="/tmp"), set()
    try:
        head = start_head(tmp, sids, num_cpus=2)
        yield {**head, "args": ["--address", head["address"]]}
    finally:
        stop(sids)
        shutil.rmtree(tmp, ignore_errors=True)
