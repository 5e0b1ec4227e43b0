"""Shared fixtures. Ray fixtures start a real local Ray and always shut it down."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

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
    import shutil
    import tempfile

    from raycluster import start_head, stop
    tmp, sids = tempfile.mkdtemp(prefix="rs", dir="/tmp"), set()
    try:
        head = start_head(tmp, sids, num_cpus=2)
        yield {**head, "args": ["--address", head["address"]]}
    finally:
        stop(sids)
        shutil.rmtree(tmp, ignore_errors=True)
