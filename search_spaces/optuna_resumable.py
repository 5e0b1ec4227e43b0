"""OptunaSearch that survives ``study resume`` after a killed driver.

Optuna writes to its sqlite file at once, Tune's experiment state only every few seconds: a
driver killed in between leaves Tune believing a trial still runs that Optuna has already
finished. On resume Tune reruns that trial from its checkpoint, and Ray's OptunaSearch reports
its results to the finished Optuna trial, which raises UpdateFinishedTrialError and stops the
whole study. The finished trial's outcome is already in Optuna, so its later results are
skipped, as Ray's OptunaSearch itself does for trials it knows are complete.
(Imported only when an Optuna study is built: it pulls in Ray Tune and Optuna. Optuna studies'
folders pickle this class by module path: it stays at ``search_spaces.optuna_resumable``.)
"""
from __future__ import annotations

import logging

from optuna.exceptions import UpdateFinishedTrialError
from ray.tune.search.optuna import OptunaSearch

from trainables.ray_layer.private import mark_search_trial_completed

log = logging.getLogger(__name__)


class ResumableOptunaSearch(OptunaSearch):
    def on_trial_result(self, trial_id: str, result: dict) -> None:
        try:
            super().on_trial_result(trial_id, result)
        except UpdateFinishedTrialError:
            log.warning("trial %s is already finished in Optuna's storage (recorded before "
                        "the driver died); its rerun's results are not reported again", trial_id)
            mark_search_trial_completed(self, trial_id)
