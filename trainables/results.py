"""Reading what studies wrote, and the fields every reported row carries: one module for the
trial writers (the Ray layer, the decoupled stage), ``study`` and ``analysis``.

A study folder is one or more Ray Tune experiments: the first run's trials sit directly in the
folder, each later run (an extension: ``elm-study run ... --into STUDY``) in ``run-<k>/``.
Every trial folder holds ``params.json`` (its Tune config) and ``result.json`` (one JSON line per
reported epoch). Nothing here needs Ray or pandas, so a study can be read while it runs, after
its driver was killed, or on a laptop without Ray.

Damage is named, not fatal: a file a reader cannot read (a torn last line of ``result.json``,
a missing or garbled ``params.json``, an empty trial folder) is one line ``damaged: PATH:
what`` — appended to the ``damage`` list a caller passes, else printed to stderr — and the
reader goes on with what is intact. Nothing here writes, repairs or deletes (what each file's
torn write looks like: docs/study-folder.md).
"""
from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

from trainables.config import TrialConfig
from trainables.methods import flatten_trial, method_label
from trainables.provenance import provenance

RUN_PREFIX = "run-"
STUDY_FILE = "study.json"      # the study's own record of its runs (study.store writes it)
POSTHOC_FILE = "posthoc.json"  # the post-hoc rows of a study (analysis.posthoc writes them)
FINISHED = ("terminated", "stopped", "diverged")   # a trial in these states is not run again
# trial packs (docs/packing.md): a pack's Tune config holds its members under PACK_KEY; its
# Tune trial folder is not a trial (readers skip it), each member writes an ordinary trial
# folder beside it whose rows name the pack's Tune trial (PACK_ID_FIELD)
PACK_KEY = "pack"
PACK_ID_FIELD = "pack_trial_id"
PACK_ROWS_KEY = "pack_rows"   # a pack's report to Tune: {member folder name: member's row}
_MEMBER_ID = re.compile(r"_([0-9a-f]{5}_\d{5})_m(\d+)$")   # '<pack trial id>_m<k>' at the end


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


def is_pack_folder(trial_dir: Path) -> bool:
    """A pack's own Tune trial folder (its params.json holds the members), not a trial."""
    try:
        raw = json.loads((Path(trial_dir) / "params.json").read_text())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(raw, dict) and PACK_KEY in raw


def _pack_of(trial_dir: Path, rows: list[dict]) -> str | None:
    """The Tune trial id of the pack a member folder belongs to (None: not a member)."""
    for r in reversed(rows):
        if r.get(PACK_ID_FIELD):
            return r[PACK_ID_FIELD]
    found = _MEMBER_ID.search(Path(trial_dir).name)
    return found.group(1) if found else None


def experiment_dirs(study: str | Path) -> list[Path]:
    """The Tune experiments of a study, in run order (the folder itself, then run-2, ...)."""
    root = Path(study)
    runs = sorted((p for p in root.glob(f"{RUN_PREFIX}*") if p.is_dir()
                   and p.name[len(RUN_PREFIX):].isdigit()),
                  key=lambda p: int(p.name[len(RUN_PREFIX):]))
    return [root, *runs]


def run_number(experiment: Path) -> int:
    name = experiment.name
    return int(name[len(RUN_PREFIX):]) if name.startswith(RUN_PREFIX) and \
        name[len(RUN_PREFIX):].isdigit() else 1


_TRIAL_ID = re.compile(r"_([0-9a-f]{5})_(\d{5})(?:_|$)")     # Tune's '<experiment>_<index>'


def _launch_order(trial_dir: Path):
    """A trial folder's place in its experiment: Tune's trial index (the study file's order of
    methods and seeds), whatever the folder's name says before it."""
    found = _TRIAL_ID.findall(trial_dir.name)
    return (0, int(found[-1][1]), trial_dir.name) if found else (1, 0, trial_dir.name)


def _trial_folders(experiment: Path) -> list[Path]:
    """Sub-folders of one experiment that are (or were meant to be) trial folders: those with
    a params.json, and those named as Tune names trials (``..._<exp>_<index>``) without one."""
    found = {q.parent for q in experiment.glob("*/params.json")}
    found |= {q for q in experiment.iterdir() if q.is_dir() and _TRIAL_ID.search(q.name)} \
        if experiment.is_dir() else set()
    return sorted(found)


def trial_dirs(study: str | Path) -> list[Path]:
    """Folders of every run of the study that hold a trial (they contain params.json), each
    run's in launch order."""
    return [p for exp in experiment_dirs(study)
            for p in sorted((q.parent for q in exp.glob("*/params.json")), key=_launch_order)
            if not is_pack_folder(p)]


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


DECOUPLED_DIR = "decoupled"   # STUDY/decoupled/<stage-1 trial id>_<method>/ (trainables.decoupled)


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


def tune_statuses(experiment: str | Path) -> dict:
    """trial_id -> Tune's status (TERMINATED, ERROR, RUNNING, PENDING...) from the newest
    experiment state Tune wrote in one experiment folder (plain JSON; {} if there is none)."""
    # newest by the timestamp in the name (Tune's own rule): every driver session writes its
    # own file, and the final sync re-copies older ones, so mtimes do not order them
    states = sorted(Path(experiment).glob("experiment_state-*.json"))
    for path in reversed(states):
        try:
            data = json.loads(path.read_text())
            out = {}
            for entry in data.get("trial_data", []):
                trial = json.loads(entry[0]) if isinstance(entry[0], str) else entry[0]
                out[trial["trial_id"]] = trial.get("status")
            return out
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue   # torn by a killed driver: try the previous one
    return {}


def trial_status(last_row: dict | None, tune_status: str | None, errored: bool = False) -> str:
    """THE rule for a trial's status, which every reader applies (``elm-study status``, the
    report, ``status --watch``, the console's ``done`` line): terminated / diverged / stopped /
    errored / running (running also covers pending and killed).

    ``last_row``: the trial's last reported row (its ``status`` is the trainer's own word:
    running, finished, diverged); ``tune_status``: what Tune says of the trial (TERMINATED,
    ERROR, RUNNING, PENDING...; None when unknown); ``errored``: the trial folder holds Tune's
    error file. ``stopped``: Tune ended it before its last epoch (an ASHA early stop), which the
    trainer cannot know, so its last row still says running."""
    row_status = (last_row or {}).get("status")
    if row_status == "diverged":
        return "diverged"
    if row_status == "finished":
        return "terminated"
    if errored or tune_status == "ERROR":
        return "errored"
    if tune_status == "TERMINATED" and last_row:
        return "stopped"
    return "running"


def _has_error_file(trial_dir: Path) -> bool:
    return (trial_dir / "error.txt").exists() or (trial_dir / "error.pkl").exists()


def trial_id_of(d: Path, results: list[dict]) -> str:
    if results and results[-1].get("trial_id"):
        return results[-1]["trial_id"]
    member = _MEMBER_ID.search(d.name)
    if member:
        return member_trial_id(member.group(1), int(member.group(2)))
    parts = d.name.split("_")          # <trainable>_<exp>_<index>_<n>_...: Tune's naming
    for i in range(len(parts) - 1):
        if (len(parts[i]) == 5 and all(c in "0123456789abcdef" for c in parts[i])
                and len(parts[i + 1]) == 5 and parts[i + 1].isdigit()):
            return f"{parts[i]}_{parts[i + 1]}"
    return d.name


def trial_config(trial_dir: Path) -> tuple[dict, str | None]:
    """(the trial's fields with TrialConfig's defaults filled in, its key) from params.json;
    (raw fields, None) when they no longer make a valid config. An unreadable params.json
    raises OSError or ValueError (see :func:`study_trials`)."""
    raw = json.loads((Path(trial_dir) / "params.json").read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"holds a {type(raw).__name__}, not a trial's config")
    flat = flatten_trial(raw)
    try:
        cfg = TrialConfig.from_dict(flat)
    except ValueError:
        return flat, None
    return cfg.to_dict(), cfg.trial_key()


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


def study_trials(study: str | Path, damage: list | None = None) -> list[dict]:
    """One record per trial folder of every run: where it is, its run, key, Tune id, state,
    full config and its per-epoch rows (``epochs``, retried epochs de-duplicated; ``raw``).
    A trial folder without a readable params.json is skipped, and every damaged file named
    (``damage``: a list to append the lines to; None prints them to stderr)."""
    records = []
    for exp in experiment_dirs(study):
        statuses = tune_statuses(exp)
        for d in _trial_folders(exp):
            params = d / "params.json"
            if not params.exists():
                what = _unreadable_trial(d, statuses.get(_pack_of(d, []) or trial_id_of(d, [])))
                if what:
                    note_damage(damage, d, what)
                continue
            if is_pack_folder(d):
                continue   # a pack's Tune trial: its members are the trials
            try:
                config, key = trial_config(d)
            except (OSError, ValueError, TypeError, AttributeError, RecursionError) as e:
                why = e.strerror if isinstance(e, OSError) else e
                note_damage(damage, params, f"cannot be read as the trial's config ({why}); "
                            "trial skipped")
                continue
            raw = read_results(d, damage)
            rows = epoch_rows(raw)
            trial_id = trial_id_of(d, raw)
            # a pack's member has no Tune status of its own: its pack's stands for it
            tune_id = _pack_of(d, raw) or trial_id
            if not raw and statuses.get(tune_id) == "TERMINATED" and not _has_bytes(
                    d / "result.json"):
                note_damage(damage, d / "result.json",
                            "missing or empty, but Tune recorded the trial as TERMINATED: its "
                            "reported epochs are lost")
            # the key recorded when the trial ran wins: it names what was really computed,
            # even if a default changed in the code since
            recorded = next((r["trial_key"] for r in reversed(raw) if r.get("trial_key")), None)
            records.append({"trial_dir": d, "run": run_number(exp), "trial_id": trial_id,
                            "trial_key": recorded or key, "config": config, "raw": raw,
                            "epochs": rows,
                            "status": trial_status(rows[-1] if rows else None,
                                                   statuses.get(tune_id), _has_error_file(d))})
    return records


def one_per_key(records: list[dict]) -> list[dict]:
    """A retried or duplicated key counts once: its finished trial (the latest run's if several
    finished), else its latest trial. Records without a key are all kept."""
    best: dict[str, dict] = {}
    for t in records:
        k = t.get("trial_key")
        if not k:
            continue
        old = best.get(k)
        rank = (t["status"] in FINISHED, t["run"])
        if old is None or rank >= (old["status"] in FINISHED, old["run"]):
            best[k] = t
    keep = {id(t) for t in best.values()}
    return [t for t in records if not t.get("trial_key") or id(t) in keep]


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
