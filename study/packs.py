"""Trial packs in a study (``elm-study run STUDY --pack K``; docs/packing.md).

A grid's trials are grouped by ``TrialConfig.pack_key()`` (the fields that shape the shared
step loop and data) into packs of at most K, the grid's order kept within each group; each
pack is ONE Tune trial (trainables.ray_layer.pack_trainable) whose members are written as
ordinary trial folders. The space keeps counting and listing members: ``trial_dicts()``,
``configs()``, ``trial_keys()`` and ``expected_trials`` are the trials, and only
``param_space`` is a grid over packs:

    {"base": {fields every trial shares}, "pack": grid([[member fields, ...], ...])}

so that extensions (``--into``, by member key) and the counts are unchanged. Nothing here
imports Ray.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from search_spaces.base import grid, grid_param_space
from study.store import StudyError
from trainables.config import pack_split_fields
from trainables.results import PACK_KEY, PACK_ROWS_KEY, pack_members
from trainables.store.trials import pack_membership


def group_packs(configs: list, k: int) -> list[list[int]]:
    """Indices of ``configs`` in packs of at most ``k`` equal pack keys: groups in the order
    their first trial appears, each group's trials in grid order, then cut into chunks."""
    groups: dict[str, list[int]] = {}
    for i, cfg in enumerate(configs):
        groups.setdefault(cfg.pack_key(), []).append(i)
    return [idx[j:j + k] for idx in groups.values() for j in range(0, len(idx), k)]


def check_pack_options(space, options) -> None:
    """--pack K > 1 is refused before Ray starts for a search (its trials are adaptive) and
    for trials the pack trainer cannot take (the StudyError names the trial)."""
    if options.pack <= 1:
        return
    if space.is_search or space.make_scheduler is not None:
        raise StudyError(f"--pack {options.pack}: '{space.name}' is a search (Optuna/ASHA "
                         "choose or stop each trial from its own results); packs need a grid")
    from trainables.pack import check_packable
    for i, cfg in enumerate(space.configs()):
        try:
            check_packable([cfg])
        except ValueError as e:
            what = f"loss={cfg.loss}, drw={cfg.drw}, seed={cfg.seed}"
            raise StudyError(f"--pack {options.pack}: {space.source or space.name}: trial "
                             f"{i} ({what}): {e}") from None


def packed(space, k: int):
    """``space`` with its param space a grid over packs of at most ``k`` (module docstring);
    ``space`` itself when k == 1. Members stay listed (``sample_dicts``) in pack order."""
    if k <= 1:
        return space
    dicts = space.trial_dicts()
    packs = group_packs(space.configs(), k)
    members = [dicts[i] for p in packs for i in p]
    base = grid_param_space(members)["base"] if members else {}
    value = [[{f: v for f, v in dicts[i].items() if f not in base} for i in p]
             for p in packs]
    return dataclasses.replace(space, param_space={"base": base, PACK_KEY: grid(value)},
                               sample_dicts=members)


def pack_lines(space, k: int) -> list[str]:
    """What a dry run says about packing: how many packs of which sizes, and the fields that
    split the grid into separate packs (between the first trials of each group)."""
    if k <= 1:
        return []
    configs = space.configs()
    packs = group_packs(configs, k)
    sizes: dict[int, int] = {}
    for p in packs:
        sizes[len(p)] = sizes.get(len(p), 0) + 1
    sizes_text = ", ".join(f"{n} of {size}" for size, n in sorted(sizes.items(), reverse=True))
    lines = [f"# packs: {len(configs)} trials in {len(packs)} packs of at most {k} "
             f"({sizes_text}); one Tune trial per pack"]
    firsts = list({c.pack_key(): c for c in reversed(configs)}.values())[::-1]
    split: dict[str, set] = {}
    for other in firsts[1:]:
        for text in pack_split_fields(firsts[0], other):
            name, _, values = text.partition(": ")
            split.setdefault(name, set()).add(values)
    if split:
        lines.append(f"# {len(firsts)} pack keys; the fields that split them: "
                     + "; ".join(f"{n} ({', '.join(sorted(v))})" for n, v in split.items()))
    else:
        lines.append("# one pack key: every trial may share a pack")
    return lines


def is_pack(config) -> bool:
    """Is this Tune config a pack's (its members under PACK_KEY)?"""
    return isinstance(config, dict) and PACK_KEY in config


def member_rows(config: dict, result: dict) -> list[tuple[str, dict, dict]]:
    """(member folder name, member's Tune-form config, its row) for each member row a pack's
    result carries (driver-side callbacks: progress lines, TensorBoard)."""
    configs = pack_members(config)
    out = []
    for name, row in (result.get(PACK_ROWS_KEY) or {}).items():
        member = pack_membership(Path(name), [row])   # the row says which member it is
        if member is not None and 0 <= member.member < len(configs):
            out.append((name, configs[member.member], row))
    return out
