"""Short schedules train (issue 23): the warm-up floor (TrialConfig.min_warmup_epochs) binds only
when the schedule is short, and leaves the paper's 200-epoch recipe exactly as it is."""
import pytest

from trainables.config import LARGE_SCALE_RECIPE, TrialConfig


def recipe_lr(e: int) -> float:
    """docs/recipe.md, 1-based e: e <= 5 -> 0.1·e/5; 0.1; e >= 161 -> 1e-3; e >= 181 -> 1e-5."""
    if e <= 5:
        return 0.1 * e / 5
    return 1e-5 if e >= 181 else 1e-3 if e >= 161 else 0.1


def test_the_200_epoch_recipe_is_unchanged():
    cfg = TrialConfig()
    assert cfg.min_warmup_epochs == 5
    assert cfg.schedule() == {"warmup_epochs": 5, "lr_milestones": [160, 180],
                              "lr_factors": [0.01, 0.0001], "drw_epoch": 160}
    assert [cfg.lr_at(e - 1) for e in range(1, 201)] == \
        pytest.approx([recipe_lr(e) for e in range(1, 201)], rel=1e-12)
    # the floor is no part of the trial key: the resolved schedule already carries it, so every
    # 200-epoch trial keeps its key (and its finished results) from before the floor
    assert "min_warmup_epochs" not in cfg.key_fields()
    assert cfg.trial_key() == cfg.replace(min_warmup_epochs=0).trial_key()
    large = TrialConfig.from_dict({"dataset": "imagenet_lt"})
    assert large.schedule()["warmup_epochs"] == LARGE_SCALE_RECIPE["warmup_epochs"] == 5


def test_a_short_schedule_warms_up_as_the_recipe_starts():
    short = TrialConfig(epochs=10)
    assert short.schedule()["warmup_epochs"] == 5
    assert [short.lr_at(e) for e in range(10)] == pytest.approx(
        [0.02, 0.04, 0.06, 0.08, 0.1, 0.1, 0.1, 0.1, 0.001, 1e-5])
    # the old, purely proportional warm-up (a quarter of an epoch -> none): full lr at step 1
    old = short.replace(min_warmup_epochs=0)
    assert old.schedule()["warmup_epochs"] == 1 and old.lr_at(0) == pytest.approx(0.1)
    assert short.trial_key() != old.trial_key()
    # never more than half the run, never more than warmup_epochs, never below one epoch
    assert TrialConfig(epochs=4).schedule()["warmup_epochs"] == 2
    assert TrialConfig(epochs=1).schedule()["warmup_epochs"] == 1
    assert TrialConfig(epochs=10, warmup_epochs=2).schedule()["warmup_epochs"] == 2
    assert TrialConfig(epochs=10, warmup_epochs=0).schedule()["warmup_epochs"] == 0
    with pytest.raises(ValueError, match="min_warmup_epochs=-1 is out of range"):
        TrialConfig(min_warmup_epochs=-1)


def first_epoch_losses(cfg: TrialConfig) -> list[float]:
    """The loss of every SGD step of epoch 1, at the learning rate the schedule gives it."""
    from trainables.engine import Trainer
    trainer = Trainer(cfg)
    trainer._start_epoch(0)
    trainer.model.train()
    losses = []
    for x, y in trainer.train_loader:
        logits, feat = trainer.model(x)
        loss = trainer.criterion(logits, y, feat)
        trainer.optimizer.zero_grad()
        loss.backward()
        trainer.optimizer.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_cause_full_lr_from_step_one_throws_logit_adjustment_off(seed):
    """The collapse's cause, in miniature: with the proportional warm-up a 10-epoch run takes its
    first steps at the full lr 0.1, and logit adjustment's loss climbs far above where it
    started (2-3.5x on this data; on Fashion-MNIST-LT 2.2 -> 11.3 within 4 steps, after which
    the network predicts 2-3 classes and stops learning, docs/recipe.md). With the warm-up
    floor the first epoch runs at 0.02, as the 200-epoch recipe's does, and the loss only
    falls below its first value."""
    base = dict(dataset="synthetic", ratio=10.0, epochs=10, batch_size=32, seed=seed,
                device="cpu", loss="logit_adjust")
    old = first_epoch_losses(TrialConfig(**base, min_warmup_epochs=0))
    new = first_epoch_losses(TrialConfig(**base))
    assert old[0] == pytest.approx(new[0])                 # same init, same first batch
    assert max(old[1:]) > 1.2 * old[0], old
    assert max(new[1:]) < new[0], new


# ---- warmup_unit step: the recipe's warm-up share counted in SGD steps (issue 37) ----------
DEMO = dict(dataset="fashion_mnist", imb_type="lt", ratio=100.0, img_max=750, epochs=10,
            batch_size=128)


def test_a_step_warm_up_is_the_recipes_share_of_the_runs_steps_with_a_floor():
    from trainables.data.registry import training_counts
    cfg = TrialConfig(**DEMO, warmup_unit="step", min_warmup_steps=0)
    per_epoch = -(-sum(training_counts(cfg)) // 128)          # ceil: the last batch is partial
    total = 10 * per_epoch
    sch = cfg.schedule()
    assert sch["steps_per_epoch"] == per_epoch and sch["warmup_epochs"] == 0
    assert sch["warmup_steps"] == round(total * 5 / 200)       # 2.5 % of the run, >= 1
    # the floor binds when the share is shorter, and never beyond half the run
    assert cfg.replace(min_warmup_steps=40).schedule()["warmup_steps"] == 40
    assert cfg.replace(min_warmup_steps=10_000).schedule()["warmup_steps"] == total // 2
    # a long run keeps its proportional share: the floor is a floor, not a length
    long = cfg.replace(epochs=400, recipe_epochs=200, min_warmup_steps=40)
    assert long.schedule()["warmup_steps"] == round(400 * per_epoch * 5 / 200)
    # milestones and DRW scale as with the epoch warm-up
    epoch = TrialConfig(**DEMO)
    assert {k: sch[k] for k in ("lr_milestones", "lr_factors", "drw_epoch")} == \
        {k: epoch.schedule()[k] for k in ("lr_milestones", "lr_factors", "drw_epoch")}


def test_a_step_warm_up_ramps_the_lr_step_by_step_then_follows_the_recipe():
    cfg = TrialConfig(**DEMO, warmup_unit="step", min_warmup_steps=40)
    per_epoch, w = cfg.schedule()["steps_per_epoch"], cfg.schedule()["warmup_steps"]
    lrs = [cfg.lr_at(s // per_epoch, s % per_epoch) for s in range(10 * per_epoch)]
    assert lrs[:w] == pytest.approx([0.1 * (s + 1) / w for s in range(w)])
    assert lrs[w] == 0.1 and max(lrs) == 0.1
    assert lrs[8 * per_epoch] == pytest.approx(0.001) and lrs[-1] == pytest.approx(1e-5)
    assert [cfg.warms_up_by_step(e) for e in range(4)] == \
        [e * per_epoch < w for e in range(4)]
    assert not TrialConfig(**DEMO).warms_up_by_step(0)       # epoch warm-up: set per epoch


def test_the_step_warm_up_is_in_the_key_and_leaves_epoch_keys_alone():
    epoch = TrialConfig(**DEMO)
    step = epoch.replace(warmup_unit="step")
    assert "schedule.warmup_steps" in step.key_fields()
    assert "schedule.warmup_steps" not in epoch.key_fields()
    assert step.trial_key() != epoch.trial_key()
    assert step.trial_key() != step.replace(min_warmup_steps=10).trial_key()
    # the step fields themselves do not enter a per-epoch trial's key
    assert epoch.trial_key() == epoch.replace(min_warmup_steps=7).trial_key()


def test_bad_step_warm_up_settings_are_refused_by_name():
    with pytest.raises(ValueError, match=r"warmup_unit='steps' is not valid; choose one of "
                                         r"\['epoch', 'step'\]"):
        TrialConfig(warmup_unit="steps")
    with pytest.raises(ValueError, match="min_warmup_steps=-1 is out of range"):
        TrialConfig(min_warmup_steps=-1)
    with pytest.raises(ValueError, match="warmup_unit='step' counts the run's SGD steps"):
        TrialConfig.from_dict({"dataset": "imagenet_lt", "warmup_unit": "step"})


def test_the_trainer_sets_each_warm_up_steps_lr_before_the_step():
    """Observed on the optimizer as it steps (a post-step hook reads the LR the step used)."""
    from trainables.engine import Trainer
    cfg = TrialConfig(dataset="synthetic", img_max=40, ratio=10.0, epochs=4, batch_size=64,
                      recipe_epochs=20, device="cpu", warmup_unit="step", min_warmup_steps=5)
    trainer = Trainer(cfg)
    used = []
    trainer.optimizer.register_step_post_hook(
        lambda opt, *_: used.append(opt.param_groups[0]["lr"]))
    trainer.fit()
    per_epoch = cfg.schedule()["steps_per_epoch"]
    assert cfg.schedule()["warmup_steps"] == 5 and per_epoch < 5   # it crosses an epoch
    assert used == pytest.approx([cfg.lr_at(s // per_epoch, s % per_epoch)
                                  for s in range(4 * per_epoch)])
    assert used[:5] == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1])
