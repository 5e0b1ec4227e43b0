"""What a trial shows to Ray's dashboard: its name, its log prefix and its metrics.

* The trial actor's ``repr`` (Actors page, and the ``(NAME pid=...)`` prefix of its log lines
  on the driver and in the Logs page) is the method label, seed and trial id instead of Tune's
  ``train_trial``. Ray reads the repr once, when the actor starts; an actor reused for the next
  trial re-announces its name through Ray's log-prefix marker, so log lines stay right.
* :class:`TrialGauges` exports per-trial gauges through ``ray.util.metrics``; each node's
  metrics agent serves them in Prometheus format (``/metrics`` on the metrics export port), so
  the dashboard's Metrics view, Prometheus and Grafana plot them per trial and per method.
"""
from __future__ import annotations

import logging
import math
import sys

from trainables.methods import trial_name
from trainables.ray_layer.private import ACTOR_NAME_MARKER, wrap_function

TAG_KEYS = ("study", "trial", "method", "seed", "dataset")
# (gauge name, result key, description); Prometheus shows them with Ray's "ray_" prefix
GAUGES = (("elm_trial_test_top1", "test_top1", "test top-1 accuracy (%) at the last evaluation"),
          ("elm_trial_best_top1", "best_test_top1", "best test top-1 accuracy (%) so far"),
          ("elm_trial_train_loss", "train_loss", "mean training loss of the last epoch"),
          ("elm_trial_epoch", "epoch", "epochs finished"),
          ("elm_trial_images_per_s", "train_images_per_s", "training throughput (images/s)"))


class TrialGauges:
    """The trial's gauges, tagged with study, trial id, method label, seed and dataset."""

    def __init__(self, study: str, trial_id: str, label: str, seed, dataset: str):
        from ray.util.metrics import Gauge
        self.tags = {k: ascii_tag(v) for k, v in (
            ("study", study), ("trial", trial_id), ("method", label), ("seed", seed),
            ("dataset", dataset))}
        self.gauges = [(Gauge(name, description=desc, tag_keys=TAG_KEYS), key)
                       for name, key, desc in GAUGES]
        self.failed = False

    def update(self, metrics: dict) -> None:
        if self.failed:
            return
        try:
            for gauge, key in self.gauges:
                value = metrics.get(key)
                # Prometheus has no "not evaluated this epoch": keep the last value instead
                if isinstance(value, (int, float)) and not math.isnan(value):
                    gauge.set(float(value), tags=self.tags)
        except Exception as e:   # monitoring must never fail a trial
            self.failed = True
            logging.getLogger(__name__).warning("trial metrics disabled: %s", e)


def ascii_tag(value) -> str:
    """Ray's metric tags must be ASCII: 'ELM + DRW (λ=0.5)' -> 'ELM + DRW (lambda=0.5)'."""
    text = str(value).replace("λ", "lambda").replace("Δ", "Delta")
    return text.encode("ascii", "replace").decode()


def trial_gauges(cfg, label: str, trial_id: str | None = None) -> TrialGauges | None:
    """Gauges for the running Tune trial (or, ``trial_id``, a member of the running pack),
    or None outside Tune / when metrics are off."""
    try:
        from ray import tune
        ctx = tune.get_context()
        return TrialGauges(ctx.get_experiment_name() or "", trial_id or ctx.get_trial_id()
                           or "", label, cfg.seed, f"{cfg.dataset}-{cfg.imb_type}")
    except Exception as e:   # never let monitoring break a trial
        logging.getLogger(__name__).warning("trial metrics disabled: %s", e)
        return None


def actor_name(config: dict, trial_id: str = "") -> str:
    """A trial's name (trainables.methods.trial_name), or a pack's: 'pack of 4: CE seed 0,
    ..., ELM + DRW (λ=0.5) seed 1 [3a7c1_00002]'."""
    from trainables.results import PACK_KEY, pack_members
    if not (isinstance(config, dict) and PACK_KEY in config):
        return trial_name(config, trial_id)
    members = [trial_name(m) for m in pack_members(config)]
    shown = members if len(members) <= 2 else [members[0], "...", members[-1]]
    return f"pack of {len(members)}: {', '.join(shown)}" + (f" [{trial_id}]" if trial_id
                                                            else "")


def announce(name: str) -> None:
    """Tell Ray's log monitor the name to prefix this worker's next log lines with."""
    for stream in (sys.stdout, sys.stderr):
        print(f"{ACTOR_NAME_MARKER}{name}", file=stream, flush=True)


def trial_actor(train_fn, quiet: bool = True):
    """Tune trainable class running ``train_fn``, named after its trial. ``quiet`` lowers
    Ray Train/Tune's per-checkpoint INFO chatter in the worker (warnings and errors stay)."""
    base = wrap_function(train_fn)

    class TrialActor(base):
        def setup(self, config):
            if quiet:
                for name in ("ray.train", "ray.tune"):
                    logging.getLogger(name).setLevel(logging.WARNING)
            announce(repr(self))
            return super().setup(config)

        def reset_config(self, new_config):
            ok = super().reset_config(new_config)
            announce(actor_name(new_config, self.trial_id))
            return ok

        def __repr__(self):
            try:
                return actor_name(self.config, self.trial_id)
            except Exception:   # before __init__ finished, or a config of another shape
                return train_fn.__name__

    TrialActor.__name__ = TrialActor.__qualname__ = "TrialActor"
    return TrialActor
