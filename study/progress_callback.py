"""The Tune callback behind a study's console lines (see :mod:`study.progress`).

Tune pickles its callbacks into a study's experiment state by module path: ``StudyProgress``
stays at ``study.progress_callback`` so that studies written earlier still resume (those
pickled its state with a ``meta`` dict: :meth:`StudyProgress.__setstate__` reads it)."""
from __future__ import annotations

import atexit
import math
import os
import sys
import time

from ray.tune import Callback

from study.console import (STUDY_LINE_EVERY_S, WAITING_NOTE_AFTER_S, fmt_minutes, num,
                           progress_line, resume_command, trial_words, waiting_note)
from study.packs import is_pack, member_rows
from trainables.methods import flatten_trial
from trainables.ray_layer.dashboard import actor_name
from trainables.results import PACK_KEY
from trainables.store import StudyRecord, trial_status


class StudyProgress(Callback):
    """Tune callback printing the study's progress (driver side; Ray-free formatting)."""

    def __init__(self, study: StudyRecord, path: str, every_s: float = STUDY_LINE_EVERY_S,
                 run_trials: int | None = None):
        # Tune pickles its callbacks into the experiment state: records and plain data only
        self.study, self.path, self.every_s = study, str(path), every_s
        self.run_trials = run_trials    # this run's trials (an extension adds only some)
        self.setup()

    def __setstate__(self, state: dict) -> None:
        """A callback pickled by an earlier version held ``meta`` (study.json's dict, with the
        run's trial count under ``run_trials``): read into today's record."""
        if "meta" in state:
            meta = state.pop("meta") or {}
            state["study"] = StudyRecord.from_json(meta)
            state["run_trials"] = meta.get("run_trials")
        self.__dict__.update(state)

    @property
    def expected(self) -> int | None:
        """The trials this run launches (None: not known)."""
        return self.run_trials or self.study.expected_trials

    def setup(self, **info):
        """Called by Tune when the experiment (or its resumption) starts."""
        self.epoch_times: dict[str, list[float]] = {}
        self.epochs_done: dict[str, int] = {}
        self.last_rows: dict[str, dict] = {}    # pack id -> member id -> (config, last row)
        self.start = self.last_line = time.time()
        self.epochs_at_start: int | None = None
        self.waiting_since: float | None = None   # since when the study waits for resources
        self.last_copy = 0.0                      # keep_state_copies' clock

    def keep_state_copies(self, every_s: float = 5.0) -> None:
        """A copy of Tune's experiment state whenever it is complete (tune_state.py: a driver
        killed while Tune rewrites it must not lose the run's trial list); at most every
        ``every_s`` seconds. Called in the driver thread that writes the state."""
        if time.time() - getattr(self, "last_copy", 0.0) >= every_s:
            from trainables.ray_layer.tune_state import keep_copies
            keep_copies(self.path)
            self.last_copy = time.time()

    def say(self, text: str) -> None:
        print(text, file=sys.stdout, flush=True)

    # ---- per trial ----------------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info):
        self.say(f"start  {_words(trial)}")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        times = self.epoch_times.setdefault(trial.trial_id, [])
        if isinstance(result.get("time_this_iter_s"), (int, float)):
            times.append(float(result["time_this_iter_s"]))
        recent = times[-5:]
        s_per_epoch = sum(recent) / len(recent) if recent else math.nan
        # a pack reports its members' rows: one line per member, epochs counted per member
        rows = [(c, r) for _, c, r in member_rows(trial.config, result)] if is_pack(
            trial.config) else [(trial.config, result)]
        if is_pack(trial.config):
            last = self.last_rows.setdefault(trial.trial_id, {})
            last.update({r["trial_id"]: (c, r) for c, r in rows})
            self.epochs_done[trial.trial_id] = sum(int(r.get("epoch") or 0)
                                                   for _, r in last.values())
        else:
            self.epochs_done[trial.trial_id] = int(result.get("epoch") or 0)
        for config, row in rows:
            if row.get("test_top1") is not None:   # an evaluation epoch
                self.say(progress_line(config, row, s_per_epoch))

    def on_trial_complete(self, iteration, trials, trial, **info):
        rows = list(self.last_rows.get(trial.trial_id, {}).values()) if is_pack(
            trial.config) else [(trial.config, trial.last_result or {})]
        for config, r in rows:
            who = trial_words(config, r.get("trial_id", trial.trial_id), r.get("method"))
            # Tune calls this for a trial it ends without an error (ASHA's stop included) and
            # marks it TERMINATED just after: the word is the one `elm-study status` reads
            # back from the folder for it (a pack's members share their pack's Tune status)
            status = trial_status(r, "TERMINATED")
            self.say(f"done   {who}  "
                     f"top-1 {num(r.get('test_top1'), '.2f')}  best "
                     f"{num(r.get('best_test_top1'), '.2f')} @{r.get('best_epoch', '?')}  "
                     f"({status}, {r.get('epoch', '?')} epochs)")

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.say(f"retry  {_words(trial)}  failure "
                 f"{trial.num_failures} of at most {self.study.options.max_failures}: "
                 f"{_error_line(trial)}; continuing from its last checkpoint")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.say(f"FAILED {_words(trial)} after "
                 f"{trial.num_failures} failure(s): {_error_line(trial)}")

    # ---- the study ----------------------------------------------------------------------
    def on_step_end(self, iteration, trials, **info):
        self.keep_state_copies()
        if time.time() - self.last_line >= self.every_s:
            self.last_line = time.time()
            self.say(self.study_line(trials))

    def study_line(self, trials) -> str:
        counts = {"TERMINATED": 0, "RUNNING": 0, "PENDING": 0, "ERROR": 0, "PAUSED": 0}
        for t in trials:   # trials, not Tune trials: a pack counts its members
            counts[t.status] = counts.get(t.status, 0) + _members(t)
        created = sum(_members(t) for t in trials)
        expected = self.expected or created
        not_created = max(expected - created, 0)
        per_trial = _epochs_of(trials)
        total = per_trial * expected
        done = sum(self.epochs_done.get(t.trial_id, _last_epoch(t) * _members(t))
                   for t in trials)
        if self.epochs_at_start is None:
            self.epochs_at_start = done
        elapsed = time.time() - self.start
        rate = (done - self.epochs_at_start) / elapsed if elapsed > 0 else 0.0
        left = (total - done) / rate if rate > 0 else math.nan
        end = (time.strftime("%H:%M", time.localtime(time.time() + left))
               if math.isfinite(left) else "?")
        pending = counts["PENDING"] + counts["PAUSED"] + not_created
        return (f"study {self.study.name}: {counts['TERMINATED']} done · "
                f"{counts['RUNNING']} running · {pending} pending · {counts['ERROR']} failed · "
                f"epochs {done}/{total} · "
                f"{fmt_minutes(elapsed)} elapsed · projected end {end} "
                f"(in {fmt_minutes(left)})" + self.waiting(counts["RUNNING"], pending))

    def waiting(self, running: int, pending: int) -> str:
        """The note a study waiting for resources for over a minute adds to its line: every
        trial pending, or (data-parallel trials, whose drivers run while their worker groups
        wait) Ray holding unplaced requests; with Ray's requests and free resources."""
        all_pending = running == 0 and pending > 0
        asked = _unplaced_requests() if all_pending or \
            self.study.options.workers_per_trial > 1 else []
        if not (all_pending or asked):
            self.waiting_since = None
            return ""
        now = time.time()
        if self.waiting_since is None:
            self.waiting_since = now
        if now - self.waiting_since < WAITING_NOTE_AFTER_S:
            return ""
        what = f"all {pending} trial(s) pending" if all_pending else "waiting for resources"
        free, total = _free_and_total()
        return waiting_note(now - self.waiting_since, what, asked, free, total)

    def on_experiment_end(self, trials, **info):
        self.keep_state_copies(every_s=0.0)
        self.say(self.study_line(trials))
        unfinished = sum(_members(t) for t in trials if t.status not in ("TERMINATED",
                                                                          "ERROR"))
        created = sum(_members(t) for t in trials)
        expected = self.expected or created
        if unfinished or created < expected:
            left = unfinished + max(expected - created, 0)
            self.say(f"interrupted: {left} trial(s) unfinished")
            # the launcher prints its summary after this: the command goes last, at exit
            atexit.register(self.say, f"continue with: {resume_command(self.study, self.path)}")


def _members(trial) -> int:
    """How many trials a Tune trial is: a pack's members, else one."""
    return len(trial.config[PACK_KEY]) if is_pack(trial.config) else 1


def _words(trial) -> str:
    if is_pack(trial.config):
        return actor_name(trial.config, trial.trial_id)
    return trial_words(trial.config, trial.trial_id)


def _unplaced_requests() -> list[tuple[dict, str]]:
    """(resources asked, Ray's scheduling state) of each placement group Ray has not placed
    (Tune's per-trial groups and Ray Train's worker groups alike); [] if Ray cannot say."""
    try:
        import ray
        out = []
        for pg in ray.util.placement_group_table().values():
            if pg.get("state") not in ("PENDING", "RESCHEDULING"):
                continue
            asked: dict = {}
            for bundle in (pg.get("bundles") or {}).values():
                for k, v in bundle.items():
                    asked[k] = asked.get(k, 0) + v
            out.append((asked, (pg.get("stats") or {}).get("scheduling_state", "")))
        return out
    except Exception:
        return []


def _free_and_total() -> tuple[dict | None, dict | None]:
    try:
        import ray
        keep = ("CPU", "GPU")
        return ({k: round(v, 2) for k, v in ray.available_resources().items() if k in keep},
                {k: round(v, 2) for k, v in ray.cluster_resources().items() if k in keep})
    except Exception:
        return None, None


def _error_line(trial) -> str:
    """The last line of the trial's error (the exception), not the whole traceback."""
    path = getattr(trial, "error_file", None)
    text = ""
    try:
        if path and os.path.exists(path):
            text = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        pass
    text = text or str(getattr(trial, "error_msg", "") or "")
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "see the trial's error.txt"


def _epochs_of(trials) -> int:
    for t in trials:
        e = flatten_trial(t.config or {}).get("epochs")
        if isinstance(e, int):
            return e
    return 0


def _last_epoch(trial) -> int:
    return int((trial.last_result or {}).get("epoch") or 0)
