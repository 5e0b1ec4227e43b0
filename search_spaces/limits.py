"""How large a study may be, counted before anything is built.

A grid's size is known from its axes' lengths: a range's length from its ends and step, a
product from its factors. Every size is checked against the limit *before* the values, the
trials or a YAML document's aliases are expanded, so a typo (``seed: 0..99999999``,
``lam: 0:1:1e-9``, a "billion laughs" alias bomb) is one line and exit 2 in milliseconds, not
minutes and gigabytes. The limit is :data:`DEFAULT_MAX_TRIALS` trials, raised with
``--max-trials N`` (``run``, ``show``) or ``ELM_STUDY_MAX_TRIALS=N`` in the environment.
"""
from __future__ import annotations

import os

MAX_TRIALS_ENV = "ELM_STUDY_MAX_TRIALS"
DEFAULT_MAX_TRIALS = 100_000
MAX_FILE_BYTES = 1 << 20          # a study file is a page of YAML; 1 MiB is far more
MAX_YAML_NODES = 1_000_000        # values in the document once its aliases are expanded


def max_trials(given: int | None = None) -> int:
    """The limit: ``given`` (``--max-trials``), else $ELM_STUDY_MAX_TRIALS, else 100,000; a
    bad value is a ValueError naming the flag or the variable (exit 2)."""
    if given is not None:
        if isinstance(given, bool) or not isinstance(given, int) or given < 1:
            raise ValueError(f"--max-trials expects an integer >= 1, got {given!r}")
        return given
    text = os.environ.get(MAX_TRIALS_ENV)
    if not text:
        return DEFAULT_MAX_TRIALS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{MAX_TRIALS_ENV} expects an integer >= 1, got {text!r}")
    return value


def how_to_raise(limit: int) -> str:
    return (f"the limit is {limit:,} trials (raise it with --max-trials N or "
            f"{MAX_TRIALS_ENV}=N)")


def too_many(what: str, n: int, limit: int, unit: str = "values") -> str | None:
    """The refusal's text when ``n`` is past ``limit``, else None."""
    if n <= limit:
        return None
    return f"{what} {_count(n)} {unit}: more than a study may hold; {how_to_raise(limit)}"


def _count(n: int) -> str:
    # a count with thousands of digits is printed by magnitude (str() of it would be slow)
    return f"{n:,}" if n < 10 ** 30 else f"about 10^{round((n.bit_length() - 1) * 0.30103)}"


def grid_text(total: int, parts: list[tuple[str, int]]) -> str:
    """'1,000,000,000 trials (methods 2 × seed 1,000,000,000)': the axes and their lengths."""
    return (f"{_count(total)} trials ("
            + " × ".join(f"{name} {_count(n)}" for name, n in parts) + ")")


def yaml_nodes(node, limit: int = MAX_YAML_NODES) -> int:
    """Values in a composed YAML document with every alias expanded (an alias counts as often
    as it is used), computed without expanding: each node's size is computed once. Raises
    ValueError naming the problem past ``limit`` or for an alias inside itself."""
    import yaml
    sizes: dict[int, int | None] = {}

    def size(n) -> int:
        key = id(n)
        if key in sizes:
            if sizes[key] is None:
                raise ValueError(f"an alias refers to a value that contains it (line "
                                 f"{n.start_mark.line + 1})")
            return sizes[key]
        sizes[key] = None
        if isinstance(n, yaml.SequenceNode):
            total = 1 + sum(size(c) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in n.value)
        else:
            total = 1
        if total > limit:
            raise ValueError(f"the document expands to more than {limit:,} values (aliases "
                             f"repeating aliases, from line {n.start_mark.line + 1})")
        sizes[key] = total
        return total

    try:
        return size(node)
    except RecursionError:
        raise ValueError("the document nests too deeply") from None
