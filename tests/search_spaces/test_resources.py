"""A run's resources have one set of rules (issue 39): a study file's ``resources:`` section
and RunOptions (the flags, or the file's values once resolved) refuse the same values, for
the same reason, each naming the value its own way (the file's key, the flag)."""
from __future__ import annotations

import pytest

from search_spaces.studyfile import Context, StudyFileError, normalise
from study.options import RunOptions
from study.store import StudyError
from trainables.config import RESOURCE_KEYS, RESOURCE_RULES, pack_clash

# every field: values that can run, values refused for their value, values of a wrong type
GOOD = {"cpus_per_trial": (0, 0.5, 2), "gpus_per_trial": (0, 0.25, 1),
        "max_concurrent": (1, 8), "max_failures": (0, 3), "workers_per_trial": (1, 2),
        "pack": (1, 4)}
LOW = {"cpus_per_trial": (-1, -0.5), "gpus_per_trial": (-0.25,), "max_concurrent": (0, -3),
       "max_failures": (-1,), "workers_per_trial": (0,), "pack": (0, -1)}
TYPE = {"cpus_per_trial": (True, "two"), "gpus_per_trial": (False, "1"),
        "max_concurrent": (1.5, True, "4"), "max_failures": (2.0, False),
        "workers_per_trial": (2.0, True), "pack": (1.5, "2")}


def file_refusal(name, value) -> str | None:
    try:
        normalise(Context("f.yaml"), {"resources": {name: value}}, "f")
    except StudyFileError as e:
        return str(e)
    return None


def options_refusal(**values) -> str | None:
    try:
        RunOptions(**values).validated()
    except StudyError as e:
        return str(e)
    return None


def test_the_rules_cover_exactly_the_run_options():
    assert RESOURCE_KEYS == RunOptions.fields() == tuple(GOOD) == tuple(LOW) == tuple(TYPE)


@pytest.mark.parametrize("name", RESOURCE_KEYS)
def test_the_file_and_the_options_refuse_the_same_values(name):
    rule = RESOURCE_RULES[name]
    for v in GOOD[name]:
        assert rule.allows(v)
        assert file_refusal(name, v) is None and options_refusal(**{name: v}) is None, v
    flag = RunOptions.flag(name)
    for v in LOW[name]:
        assert not rule.allows(v) and rule.typed(v)
        assert file_refusal(name, v) == f"f.yaml: resources.{name}: expects {rule.wants}, " \
                                         f"got {v!r}"
        assert options_refusal(**{name: v}) == f"{flag} must be >= {rule.low}, got {v}"
    for v in TYPE[name]:
        assert not rule.typed(v)
        assert file_refusal(name, v) == f"f.yaml: resources.{name}: expects {rule.wants}, " \
                                         f"got {v!r}"
        assert options_refusal(**{name: v}) == f"{flag} expects {rule.wants}, got {v!r}"


def test_the_wording_of_each_rule_is_unchanged():
    assert [RESOURCE_RULES[k].wants for k in RESOURCE_KEYS] == [
        "a number >= 0", "a number >= 0", "an integer >= 1", "an integer >= 0",
        "an integer >= 1", "an integer >= 1"]
    assert options_refusal(pack=0) == "--pack must be >= 1, got 0"
    assert options_refusal(cpus_per_trial=-1.0) == "--cpus-per-trial must be >= 0, got -1.0"
    assert options_refusal(gpus_per_trial=None) is None     # not set: the launcher chooses


def test_a_pack_of_several_workers_is_one_rule_named_by_each_caller():
    assert pack_clash({"pack": 2, "workers_per_trial": 1}) is None
    assert pack_clash({"pack": 1, "workers_per_trial": 4}) is None
    assert pack_clash({}) is None
    assert pack_clash({"pack": 2, "workers_per_trial": 3}) == (
        "pack 2 cannot be combined with workers_per_trial 3: a pack is one process (choose one)")
    assert options_refusal(pack=2, workers_per_trial=3) == (
        "--pack 2 cannot be combined with --workers-per-trial 3: a pack is one process "
        "(choose one)")
    # a file may hold both: a flag can still override one of them when the run resolves
    assert file_refusal("pack", 2) is None
    with pytest.raises(StudyError, match="--pack 2 cannot be combined"):
        RunOptions.resolve({}, {"pack": 2, "workers_per_trial": 2})
    assert RunOptions.resolve({"pack": 1}, {"pack": 2, "workers_per_trial": 2}).pack == 1
