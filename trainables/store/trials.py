"""Reading a study's trial folders into :class:`~trainables.store.records.TrialRecord`.

A study folder is one or more Ray Tune experiments: the first run's trials sit directly in the
folder, each later run (an extension: ``elm-study run ... --into STUDY``) in ``run-<k>/``.
Every trial folder holds ``params.json`` (its Tune config) and ``result.json`` (one JSON line
per reported epoch); a pack's own Tune trial folder holds its members' configs and is not a
trial: each member has an ordinary trial folder beside it. What Tune's names and experiment
state say is read through :mod:`trainables.ray_layer.tune_files` (Ray-free).

Damage is named, not fatal: a file a reader cannot read (a torn last line of ``result.json``,
a missing or garbled ``params.json``, an empty trial folder) is one line ``damaged: PATH:
what`` (appended to the ``damage`` list a caller passes, else printed to stderr) and the
reader goes on with what is intact. Nothing here writes, repairs or deletes (what each file's
torn write looks like: docs/study-folder.md).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from trainables.config import TrialConfig
from trainables.methods import flatten_trial
from trainables.ray_layer import tune_files
from trainables.results import (DECOUPLED_DIR, PACK_ID_FIELD, PACK_KEY, PACK_MEMBER_FIELD,
                                epoch_rows, member_trial_id, note_damage, parse_json_lines)
from trainables.store.records import (FINISHED, RUN_PREFIX, PackMembership, TrialRecord,
                                      trial_status)

# a member's trial id is '<pack trial id>_m<k>' (results.member_trial_id); rows written before
# they carried PACK_MEMBER_FIELD are placed by it
_MEMBER_ID = re.compile(r"_?([0-9a-f]{5}_\d{5})_m(\d+)$")


# =========================================================================================
# folders
# =========================================================================================
def experiment_dirs(study: str | Path) -> list[Path]:
    """The Tune experiments of a study, in run order (the folder itself, then run-2, ...)."""
    root = Path(study)
    runs = sorted((p for p in root.glob(f"{RUN_PREFIX}*") if p.is_dir()
                   and p.name[len(RUN_PREFIX):].isdigit()),
                  key=lambda p: int(p.name[len(RUN_PREFIX):]))
    return [root, *runs]


def run_number(experiment: Path) -> int:
    rest = experiment.name[len(RUN_PREFIX):]
    return int(rest) if experiment.name.startswith(RUN_PREFIX) and rest.isdigit() else 1


def is_pack_folder(trial_dir: Path) -> bool:
    """A pack's own Tune trial folder (its params.json holds the members), not a trial."""
    try:
        raw = json.loads((Path(trial_dir) / "params.json").read_text())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(raw, dict) and PACK_KEY in raw


def _trial_folders(experiment: Path) -> list[Path]:
    """Sub-folders of one experiment that are (or were meant to be) trial folders: those with
    a params.json, and those named as Tune names trials without one."""
    found = {q.parent for q in experiment.glob("*/params.json")}
    if experiment.is_dir():
        found |= {q for q in experiment.iterdir() if tune_files.looks_like_trial_folder(q)}
    return sorted(found)


def trial_dirs(study: str | Path) -> list[Path]:
    """Folders of every run of the study that hold a trial (they contain params.json), each
    run's in launch order."""
    return [p for exp in experiment_dirs(study)
            for p in sorted((q.parent for q in exp.glob("*/params.json")),
                            key=tune_files.launch_order)
            if not is_pack_folder(p)]


# =========================================================================================
# files
# =========================================================================================
def read_results(trial_dir: Path, damage: list | None = None) -> list[dict]:
    """Every reported epoch of one trial, as written (retried epochs appear twice). Lines
    that are not JSON (a torn last line: a writer killed mid-write) are skipped and named."""
    path = Path(trial_dir) / "result.json"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as e:
        note_damage(damage, path, f"cannot be read ({e.strerror or e}); no epochs read")
        return []
    bad: list[int] = []
    rows = parse_json_lines(data.decode("utf-8", errors="replace"), bad)
    if bad:
        last = data.rstrip(b"\n").count(b"\n") + 1
        what = (f"its last line (line {last}) is not whole JSON (a write cut short?)"
                if bad == [last]
                else f"line(s) {', '.join(map(str, bad[:5]))}{' ...' if len(bad) > 5 else ''}"
                     f" of {last} are not JSON")
        note_damage(damage, path, f"{what}; read the {len(rows)} intact line(s)")
    return rows


def read_params(trial_dir: Path) -> dict:
    """A trial folder's params.json (its Tune config); OSError or ValueError if unreadable."""
    raw = json.loads((Path(trial_dir) / "params.json").read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"holds a {type(raw).__name__}, not a trial's config")
    return raw


def trial_config(raw: dict) -> tuple[dict, str | None]:
    """(the trial's fields with TrialConfig's defaults filled in, its key) from its Tune
    config (params.json); (raw fields, None) when they no longer make a valid config."""
    flat = flatten_trial(raw)
    try:
        cfg = TrialConfig.from_dict(flat)
    except ValueError:
        return flat, None
    return cfg.to_dict(), cfg.trial_key()


def decoupled_runs(study: str | Path, damage: list | None = None
                   ) -> list[tuple[Path, list[dict]]]:
    """The finished decoupled (cRT/LWS) runs of a study: (folder, every reported row), in
    folder order; a run whose last evaluation is not ``done`` is left out."""
    out = []
    for d in sorted((Path(study) / DECOUPLED_DIR).glob("*/")):
        rows = read_results(d, damage)
        evals = [r for r in rows if "test_top1" in r]
        if evals and evals[-1].get("done"):
            out.append((d, rows))
    return out


# =========================================================================================
# trials
# =========================================================================================
def pack_membership(trial_dir: Path, rows: list[dict]) -> PackMembership | None:
    """The pack a member folder belongs to and its place there (None: not a member), from
    its rows, else (no row yet) from its folder's name."""
    for r in reversed(rows):
        if r.get(PACK_ID_FIELD):
            k = r.get(PACK_MEMBER_FIELD)
            if k is None:   # rows written before they said it
                found = _MEMBER_ID.search(str(r.get("trial_id", "")))
                k = found.group(2) if found else -1
            return PackMembership(r[PACK_ID_FIELD], int(k))
    found = _MEMBER_ID.search(Path(trial_dir).name)
    return PackMembership(found.group(1), int(found.group(2))) if found else None


def trial_id_of(trial_dir: Path, rows: list[dict], pack: PackMembership | None) -> str:
    """Its own rows' id, else the member's id, else the Tune id in its folder's name."""
    if rows and rows[-1].get("trial_id"):
        return rows[-1]["trial_id"]
    if pack is not None:
        return member_trial_id(pack.pack_trial_id, pack.member)
    return tune_files.trial_id_in(trial_dir.name) or trial_dir.name


def tune_trial_id(trial_dir: Path, rows: list[dict], pack: PackMembership | None) -> str:
    """The Tune trial whose status stands for this trial: its pack's for a member (a member
    has no Tune status of its own), else its own."""
    return pack.pack_trial_id if pack is not None else trial_id_of(trial_dir, rows, None)


def _has_bytes(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _unreadable_trial(d: Path, status: str | None) -> str | None:
    """What is wrong with a trial folder that has no readable config, or None when that is
    only a trial that Tune has not finished starting (its folder made, its params.json not
    yet written)."""
    if status in ("PENDING", "RUNNING"):
        return None
    if not any(d.iterdir()):
        return "an empty trial folder (the trial wrote nothing: killed as it started?); skipped"
    return "no params.json (the trial's config); trial skipped"


def study_trials(study: str | Path, damage: list | None = None) -> list[TrialRecord]:
    """One record per trial folder of every run (a pack's members each; the pack's own folder
    none). A trial folder without a readable params.json is skipped, and every damaged file
    named (``damage``: a list to append the lines to; None prints them to stderr)."""
    records = []
    for exp in experiment_dirs(study):
        statuses = tune_files.statuses(exp)
        for d in _trial_folders(exp):
            params = d / "params.json"
            if not params.exists():
                tune_id = tune_trial_id(d, [], pack_membership(d, []))
                what = _unreadable_trial(d, statuses.get(tune_id))
                if what:
                    note_damage(damage, d, what)
                continue
            try:
                raw = read_params(d)
                if PACK_KEY in raw:
                    continue   # a pack's Tune trial: its members are the trials
                config, key = trial_config(raw)
            except (OSError, ValueError, TypeError, AttributeError, RecursionError) as e:
                why = e.strerror if isinstance(e, OSError) else e
                note_damage(damage, params, f"cannot be read as the trial's config ({why}); "
                            "trial skipped")
                continue
            rows = read_results(d, damage)
            epochs = epoch_rows(rows)
            pack = pack_membership(d, rows)
            trial_id = trial_id_of(d, rows, pack)
            tune_status = statuses.get(tune_trial_id(d, rows, pack))
            if not rows and tune_status == "TERMINATED" and not _has_bytes(d / "result.json"):
                note_damage(damage, d / "result.json",
                            "missing or empty, but Tune recorded the trial as TERMINATED: its "
                            "reported epochs are lost")
            # the key recorded when the trial ran wins: it names what was really computed,
            # even if a default changed in the code since
            recorded = next((r["trial_key"] for r in reversed(rows) if r.get("trial_key")),
                            None)
            records.append(TrialRecord(
                trial_dir=d, run=run_number(exp), trial_id=trial_id, trial_key=recorded or key,
                config=config, rows=tuple(rows), epochs=tuple(epochs), pack=pack,
                status=trial_status(epochs[-1] if epochs else None, tune_status,
                                    tune_files.has_error_file(d))))
    return records


def one_per_key(records: list[TrialRecord]) -> list[TrialRecord]:
    """A retried or duplicated key counts once: its finished trial (the latest run's if several
    finished), else its latest trial. Records without a key are all kept."""
    best: dict[str, TrialRecord] = {}
    for t in records:
        if not t.trial_key:
            continue
        old = best.get(t.trial_key)
        if old is None or (t.finished, t.run) >= (old.finished, old.run):
            best[t.trial_key] = t
    keep = {id(t) for t in best.values()}
    return [t for t in records if not t.trial_key or id(t) in keep]


__all__ = ["FINISHED", "experiment_dirs", "run_number", "is_pack_folder", "trial_dirs",
           "read_results", "read_params", "trial_config", "decoupled_runs", "pack_membership", "study_trials",
           "one_per_key"]
