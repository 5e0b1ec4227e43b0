"""Shared fixtures. Ray fixtures start a real local Ray and always shut it down."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

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
# Two pytest-xdist workers (make test: -n 2 --dist loadgroup --no-loadscope-reorder)
# =========================================================================================
# Much of a real-Ray test is waiting (Ray and its workers starting, Tune's loop, polls of a
# study folder), so a second worker uses what the first leaves idle. Tests that share an
# expensive module- or session-scoped fixture (the analysis study, the 2-process data-parallel
# run, the watched study) must run on one worker, or each worker would build it again: they
# get one ``xdist_group`` per place that defines such fixtures. The Ray Train (data-parallel)
# studies are one group ("ray-train", marked in their files): they run one after another, so
# two worker groups never wait on each other's start timeouts. Every other test is scheduled
# alone. The longest work is queued first, so no worker is left with a long test at the end.
CHEAP_SHARED = ("", "tests")   # the root conftest's session fixtures: tiny fabricated files


def _shared_group(item) -> str | None:
    info = getattr(item, "_fixtureinfo", None)
    homes = sorted({defs[-1].baseid for defs in (info.name2fixturedefs.values() if info else ())
                    if defs and defs[-1].scope in ("module", "session")
                    and defs[-1].baseid not in CHEAP_SHARED})
    return homes[0] if homes else None


def _weight(item) -> int:
    mark = item.get_closest_marker("xdist_group")
    if mark and mark.args and mark.args[0] == "ray-train":
        return 0
    if item.get_closest_marker("ray") or item.get_closest_marker("slow"):
        return 1
    return 2 if _shared_group(item) else 3


def pytest_collection_modifyitems(config, items):
    items.sort(key=_weight)                       # stable: file order within each weight
    for item in items:
        group = _shared_group(item)
        if group and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(group))
