"""The rows a trial reports and the names its writers share: the fields every reported row
carries (:func:`trial_static_fields`), the JSON-lines format of ``result.json``, a pack's
config and member ids, a trial's cost from its rows. The trial writers (the Ray layer, the
decoupled stage) and the study store (:mod:`trainables.store`, which reads study folders)
import it; nothing here needs Ray or pandas.
"""
from __future__ import annotations

import json
import math
import sys

from trainables.config import TrialConfig
from trainables.methods import method_label
from trainables.provenance import provenance

POSTHOC_FILE = "posthoc.json"  # the post-hoc rows of a study (analysis.posthoc writes them)
# trial packs (docs/packing.md): a pack's Tune config holds its members under PACK_KEY; its
# Tune trial folder is not a trial (readers skip it), each member writes an ordinary trial
# folder beside it whose rows name the pack's Tune trial (PACK_ID_FIELD) and the member's
# place in it (PACK_MEMBER_FIELD)
PACK_KEY = "pack"
PACK_ID_FIELD = "pack_trial_id"
PACK_MEMBER_FIELD = "pack_member"
PACK_ROWS_KEY = "pack_rows"   # a pack's report to Tune: {member folder name: member's row}


def _lenient_constant(name: str) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]


def parse_json_lines(text: str, bad: list | None = None) -> list[dict]:
    """JSON lines; a torn line (a writer killed mid-line) is skipped, and its number (from 1)
    appended to ``bad`` when given. Old files may carry NaN."""
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, parse_constant=_lenient_constant)
        except (json.JSONDecodeError, RecursionError):
            row = None
        if isinstance(row, dict):
            rows.append(row)
        elif bad is not None:
            bad.append(number)
    return rows


def note_damage(damage: list | None, path, what: str) -> None:
    """One line naming a damaged file and what is wrong with it: into ``damage``, or stderr."""
    line = f"damaged: {path}: {what}"
    if damage is None:
        print(line, file=sys.stderr, flush=True)
    else:
        damage.append(line)


def trial_static_fields(cfg: TrialConfig) -> dict:
    """Fields every reported row carries, so results are self-describing without params.json
    (the trial's label and key, its resolved hyper-parameters, head and DRW epoch, and the
    package version and git commit that computed it)."""
    hp = cfg.loss_hparams()
    return {"method": method_label(cfg.loss, cfg.drw, hp.get("lam")),
            "trial_key": cfg.trial_key(),   # what studies de-duplicate and extend by
            **{f"hp_{k}": v for k, v in hp.items()}, "head_used": cfg.resolved_head(),
            "drw_epoch_used": cfg.schedule()["drw_epoch"], **provenance()}


def pack_members(config: dict) -> list[dict]:
    """A pack's Tune config -> its members' configs in the form of an unpacked trial's Tune
    config (``{"base": ..., "method": ...}``: what its params.json holds)."""
    base = config.get("base", {})
    return [{"base": dict(base), "method": dict(m)} for m in config.get(PACK_KEY) or []]


def member_trial_id(pack_trial_id: str, k: int) -> str:
    """Member k's own trial id: '<pack trial id>_m<k>'."""
    return f"{pack_trial_id}_m{k}"


DECOUPLED_DIR = "decoupled"   # STUDY/decoupled/<stage-1 trial id>_<method>/ (trainables.decoupled)


def epoch_rows(results: list[dict]) -> list[dict]:
    """One row per epoch, in epoch order: an epoch retrained after a retry from an older
    checkpoint is reported twice, and the later row is the one the final model went through."""
    by_epoch, other = {}, []
    for r in results:
        if isinstance(r.get("epoch"), int):
            by_epoch[r["epoch"]] = r
        else:
            other.append(r)
    return [by_epoch[e] for e in sorted(by_epoch)] + other


# what a trial cost (trainables.cost): cumulative in its rows, over every attempt
COST_TOTAL_FIELDS = ("cost_wall_s", "cost_cpu_s", "cost_gpu_s", "cost_attempts")


def cost_totals(rows: list[dict]) -> dict:
    """A trial's cost so far from its rows: the largest of each cumulative cost field (the
    rows of a retried epoch appear twice; a later attempt's rows include the earlier ones').
    Each field is None when no row has it (written before costs were recorded), and
    ``cost_device``/``cost_kind`` are the last row's that has them."""
    out: dict = {k: None for k in COST_TOTAL_FIELDS}
    for r in rows or []:
        for k in COST_TOTAL_FIELDS:
            v = r.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                out[k] = v if out[k] is None else max(out[k], v)
    last = next((r for r in reversed(rows or []) if r.get("cost_kind")), {})
    out["cost_kind"], out["cost_device"] = last.get("cost_kind"), last.get("cost_device")
    return out
