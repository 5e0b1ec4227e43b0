"""TrialConfig: the one object that says everything a trial does.

Every default that changes a number lives here (docs/recipe.md); nothing else holds one: beside
TrialConfig, DecoupleRecipe (the second stage of decoupled learning) and MarginDefaults (the
margin analysis). The rules of a run's resources (RESOURCE_RULES, pack_clash) live here too,
where both a study file's reader and the run options reach them.
The config is frozen, validated on construction, round-trips through plain dicts (JSON/YAML
friendly) and is saved with every checkpoint and result.

Loss hyper-parameters default to ``None``, meaning "the loss's own default" (``LOSSES[name]``);
setting one that the chosen loss does not take is an error, so a typo cannot silently do nothing.
``resolved()`` gives the values actually used, which is what results record.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import re
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any

from trainables.data.imbalance import IMB_TYPES

PRECISIONS = ("fp32", "bf16")
HEADS = ("auto", "linear", "cosine")
WARMUP_UNITS = ("epoch", "step")   # TrialConfig.warmup_unit (docs/recipe.md)
DECOUPLE_METHODS = ("crt", "lws")   # second stages of decoupled learning (trainables.decoupled)
# Fields that were removed, with the one value they could hold: old saved configs (results,
# checkpoints) that carry them stay readable; any other value is an error.
REMOVED_FIELDS = {"optimizer": "sgd"}   # SGD is the only optimizer the engine builds
LOSS_HPARAMS = ("s", "max_m", "lam", "gamma", "reg_lambda", "alpha", "eps", "mu", "ldam",
                "faithful", "ib_start_epoch", "tau")
LARGE_SCALE_DATASETS = ("imagenet_lt", "places_lt", "inat2018")
# docs/recipe.md: ResNet-50, batch 256, 90 epochs, ×0.1 at 50/70/85 (0-based, as MultiStepLR),
# 5 warm-up epochs; DRW from the first decay (the paper does not say).
LARGE_SCALE_RECIPE = {"model": "resnet50", "epochs": 90, "recipe_epochs": 90, "batch_size": 256,
                      "lr_milestones": (50, 70, 85), "lr_factors": (0.1, 0.01, 0.001),
                      "warmup_epochs": 5, "eval_batch_size": 250}
# Where a large-scale dataset's published recipe departs from the paper's ImageNet-LT one
# (docs/recipe.md). iNaturalist 2018, which the paper never ran: Decoupling's iNaturalist18
# config (×0.1 every 30 epochs, weight decay 1e-4), at batch 256 and lr 0.1 as ImageNet-LT.
LARGE_SCALE_DEPARTURES = {"inat2018": {"lr_milestones": (30, 60), "lr_factors": (0.1, 0.01),
                                       "weight_decay": 1e-4}}


@dataclass(frozen=True)
class DecoupleRecipe:
    """The second stage of decoupled learning (trainables.decoupled): the Decoupling paper's
    configs (facebookresearch/classifier-balancing config/ImageNet_LT/cls_crt.yaml,
    cls_lws.yaml). TrialConfig's decouple_epochs / decouple_lr override the epochs and lr."""
    crt_epochs: int = 10            # in recipe epochs of the first stage (scaled like it)
    lws_epochs: int = 5
    paper_lr: float = 0.2           # at paper_batch; a trial's lr is paper_lr·batch/paper_batch
    paper_batch: int = 512
    weight_decay: float = 5e-4
    momentum: float = 0.9
    sampling_stream: int = 424_242  # epoch_seed stream of the class-balanced draw

    def epochs(self, method: str) -> int:
        """The default epochs of ``method`` (crt or lws), in the first stage's recipe epochs."""
        return {"crt": self.crt_epochs, "lws": self.lws_epochs}[method]

    def lr(self, batch_size: int) -> float:
        """The paper's lr scaled linearly to ``batch_size``."""
        return self.paper_lr * batch_size / self.paper_batch


DECOUPLE_RECIPE = DecoupleRecipe()


@dataclass(frozen=True)
class MarginDefaults:
    """analysis.margins: what a checkpoint's effective margins Δ_y − λ·Δ_{c*} use where its loss
    has no such hyper-parameter (and the caller gives none)."""
    lam: float = 0.0                # no λ: the plain LDAM margin Δ_y
    max_m: float = 0.5              # no max_m: LDAM's default largest margin
    sample_seed: int = 0            # forward_split(sample=N): the fixed random subset's seed


MARGIN_DEFAULTS = MarginDefaults()


def recipe_defaults(dataset) -> dict:
    """The fields a config of ``dataset`` takes where it does not set them, instead of the
    CIFAR defaults: the large-scale recipe with the dataset's departures ({} for CIFAR-scale)."""
    if dataset not in LARGE_SCALE_DATASETS:
        return {}
    return {**LARGE_SCALE_RECIPE, **LARGE_SCALE_DEPARTURES.get(dataset, {})}
# Fields that say WHERE or HOW FAST a trial runs, not WHAT it computes: left out of the trial key
# (the data folder differs between machines; checkpoint cadence, eval batch size, channels_last
# and compile do not change the trained model beyond float rounding). Everything else, split
# lists and initial weights included, is part of the key: when in doubt, a trial runs again.
RUNTIME_FIELDS = frozenset({"data_root", "download", "num_workers", "gpu_decode", "device",
                            "eval_batch_size", "channels_last", "compile", "checkpoint_every",
                            "extra", "workers_per_trial"})
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")
# Trial packs (trainables/pack.py): the fields in which the members of one pack may differ.
# Each member has its own initialisation and batch order (seed), its own loss module and
# hyper-parameters, DRW and its epoch and beta, its own head (heads are not fused), its own
# checkpoint cadence and notes. Every other field shapes the shared step loop or the shared
# data (dataset, imbalance, img_max, model, batch size, epochs and LR schedule, optimizer,
# precision, device...) and must be equal: pack_key() hashes exactly those.
PACK_VARYING = frozenset({"seed", "loss", *LOSS_HPARAMS, "drw", "drw_epoch", "drw_beta",
                          "head", "checkpoint_every", "extra"})


@dataclass(frozen=True)
class TrialConfig:
    # Each field's metadata carries its --help text and its group in `python -m trainables.run
    # --help` (data, loss, model, schedule, execution): the help is generated from here.
    # ---- data --------------------------------------------------------------------------
    dataset: str = field(default="cifar10", metadata={
        "help": "dataset to train on", "group": "data"})
    imb_type: str = field(default="lt", metadata={
        "help": "imbalance profile: lt = exponential long tail, step = two class sizes",
        "group": "data"})
    ratio: float = field(default=100.0, metadata={
        "help": "imbalance ratio n_max / n_min; 1 = balanced", "group": "data"})
    img_max: int | None = field(default=None, metadata={
        "help": "images of the head class; None = the dataset's (5000 for CIFAR-10)",
        "group": "data"})
    data_seed: int = field(default=0, metadata={
        "help": "which images are kept; never varied by repeated runs", "group": "data"})
    val_fraction: float = field(default=0.0, metadata={
        "help": "fraction held out per class from TRAIN, for model selection (rows then "
                "carry the validation-selected epoch, val_selected_test_top1); 0 = off. The "
                "trial trains on fewer images, so it is another trial (key and data "
                "fingerprint differ), and costs an evaluation pass over the held-out images "
                "at each eval_every",
        "group": "data"})
    data_root: str = field(default="./data", metadata={
        "help": "folder holding the dataset; a path you give is used or refused, never "
                "replaced by a copy found elsewhere (the default also finds Debian's "
                "Fashion-MNIST)", "group": "data"})
    download: bool = field(default=False, metadata={
        "help": "let torchvision fetch a missing dataset", "group": "data"})
    augment: bool = field(default=True, metadata={
        "help": "pad-4 random crop + horizontal flip (32x32 datasets)", "group": "data"})
    train_list: str | None = field(default=None, metadata={
        "help": "file datasets: train split list; None = the dataset's under data_root",
        "group": "data"})
    val_list: str | None = field(default=None, metadata={
        "help": "file datasets: validation split list; None = the dataset's under data_root",
        "group": "data"})
    test_list: str | None = field(default=None, metadata={
        "help": "file datasets: test split list; None = the dataset's under data_root",
        "group": "data"})
    image_size: int | None = field(default=None, metadata={
        "help": "file datasets: crop size in pixels (None = the dataset's, 224)",
        "group": "data"})
    num_workers: int = field(default=8, metadata={
        "help": "file datasets: DataLoader worker processes", "group": "data"})
    gpu_decode: bool = field(default=False, metadata={
        "help": "file datasets: decode JPEGs on the device", "group": "data"})
    # ---- trial -------------------------------------------------------------------------
    seed: int = field(default=0, metadata={
        "help": "seed of init, batch order and augmentation", "group": "schedule"})
    # ---- loss (None = the loss's own default, see trainables.losses.LOSSES) -------------
    loss: str = field(default="ce", metadata={
        "help": "loss function", "group": "loss"})
    s: float | None = field(default=None, metadata={
        "help": "logit scale (margin losses); None = the loss's default", "group": "loss"})
    max_m: float | None = field(default=None, metadata={
        "help": "largest class margin (LDAM/ELM); None = the loss's default", "group": "loss"})
    lam: float | None = field(default=None, metadata={
        "help": "ELM: weight of the embedding margin term; None = the loss's default",
        "group": "loss"})
    gamma: float | None = field(default=None, metadata={
        "help": "focal gamma / EQLv2 gamma / MM-LDAM gamma (meaning depends on --loss); None "
                "= the loss's default", "group": "loss"})
    reg_lambda: float | None = field(default=None, metadata={
        "help": "regulariser weight (losses that take one); None = the loss's default",
        "group": "loss"})
    alpha: float | None = field(default=None, metadata={
        "help": "EQLv2 alpha / IB alpha (meaning depends on --loss); None = the loss's "
                "default", "group": "loss"})
    eps: float | None = field(default=None, metadata={
        "help": "numerical epsilon of the loss; None = the loss's default", "group": "loss"})
    mu: float | None = field(default=None, metadata={
        "help": "EQLv2 sigmoid centre mu; None = the loss's default", "group": "loss"})
    ldam: bool | None = field(default=None, metadata={
        "help": "add LDAM class margins (losses that offer it); None = the loss's default",
        "group": "loss"})
    faithful: bool | None = field(default=None, metadata={
        "help": "follow the reference code where it differs from the paper; None = the "
                "loss's default", "group": "loss"})
    ib_start_epoch: int | None = field(default=None, metadata={
        "help": "IB: 0-based epoch the IB term starts, in recipe epochs (scaled like "
                "milestones)", "group": "loss"})
    tau: float | None = field(default=None, metadata={
        "help": "logit_adjust: τ of CE(z + τ·log π, y), π the training prior (1.0 = Balanced "
                "Softmax)", "group": "loss"})
    drw: bool = field(default=False, metadata={
        "help": "deferred re-weighting by class-balanced weights", "group": "loss"})
    drw_epoch: int | None = field(default=None, metadata={
        "help": "0-based DRW start, in recipe epochs; None = the first LR milestone",
        "group": "loss"})
    drw_beta: float = field(default=0.9999, metadata={
        "help": "DRW class-balanced beta (effective number of samples)", "group": "loss"})
    # ---- model -------------------------------------------------------------------------
    model: str = field(default="resnet32", metadata={
        "help": "network architecture", "group": "model"})
    head: str = field(default="auto", metadata={
        "help": "classifier head; auto = cosine for margin losses, linear otherwise",
        "group": "model"})
    init_weights: str | None = field(default=None, metadata={
        "help": "a local state_dict file to start from (resnet50); None = random init",
        "group": "model"})
    decouple: str | None = field(default=None, metadata={
        "help": "second stage of decoupled learning: crt (re-train the classifier) or lws "
                "(learn per-class logit scales), from the stage1 trial; None = one stage",
        "group": "model"})
    stage1: str | None = field(default=None, metadata={
        "help": "decouple: the first-stage trial, a trial.pt checkpoint or a trial folder",
        "group": "model"})
    decouple_epochs: int | None = field(default=None, metadata={
        "help": "decouple: epochs, in the first stage's recipe epochs (scaled like its "
                "schedule); None = the Decoupling paper's 10 (cRT) / 5 (LWS)",
        "group": "schedule"})
    decouple_lr: float | None = field(default=None, metadata={
        "help": "decouple: initial lr, cosine-annealed to 0; None = 0.2·batch_size/512 (the "
                "paper's 0.2 at batch 512)", "group": "schedule"})
    # ---- optimisation (LDAM-DRW's CIFAR recipe) ----------------------------------------
    epochs: int = field(default=200, metadata={
        "help": "epochs to train", "group": "schedule"})
    recipe_epochs: int = field(default=200, metadata={
        "help": "the length milestones/DRW/IB epochs are written for (they scale to "
                "--epochs)", "group": "schedule"})
    batch_size: int = field(default=128, metadata={
        "help": "training batch size (images)", "group": "schedule"})
    eval_batch_size: int | None = field(default=None, metadata={
        "help": "evaluation batch size; None = 1000 on a GPU, 100 on CPU (2x faster there)",
        "group": "schedule"})
    lr: float = field(default=0.1, metadata={
        "help": "base learning rate (SGD, the only optimizer)", "group": "schedule"})
    momentum: float = field(default=0.9, metadata={
        "help": "SGD momentum", "group": "schedule"})
    weight_decay: float = field(default=2e-4, metadata={
        "help": "L2 weight decay", "group": "schedule"})
    nesterov: bool = field(default=False, metadata={
        "help": "Nesterov momentum", "group": "schedule"})
    warmup_epochs: int = field(default=5, metadata={
        "help": "linear warm-up epochs: lr * e / warmup for 1-based e <= warmup",
        "group": "schedule"})
    min_warmup_epochs: int = field(default=5, metadata={
        "help": "the warm-up is never shorter than this many epochs (nor than warmup_epochs, "
                "nor than half the run) when the schedule is scaled down: a proportional "
                "warm-up of a short run starts at the full lr, and LA / Balanced Softmax "
                "collapse there (docs/recipe.md); 0 = purely proportional. The 200-epoch "
                "recipe is unchanged", "group": "schedule"})
    warmup_unit: str = field(default="epoch", metadata={
        "help": "epoch: the recipe's warm-up, the LR set once per epoch (LDAM-DRW's "
                "adjust_learning_rate), scaled with min_warmup_epochs as its floor; step: the "
                "same share of the run (warmup_epochs / recipe_epochs) counted in SGD steps, "
                "the LR set before every step, never fewer than min_warmup_steps: a faithful "
                "miniature when one epoch is a large share of a short run (docs/recipe.md)",
        "group": "schedule"})
    min_warmup_steps: int = field(default=16, metadata={
        "help": "warmup_unit step: the warm-up is never shorter than this many SGD steps (nor "
                "longer than half the run): LA / Balanced Softmax need their first steps at a "
                "low LR however short the run (docs/recipe.md)", "group": "schedule"})
    lr_milestones: tuple[int, ...] = field(default=(160, 180), metadata={
        "help": "0-based epochs from which a factor applies (comma separated)",
        "group": "schedule"})
    lr_factors: tuple[float, ...] = field(default=(0.01, 0.0001), metadata={
        "help": "absolute multipliers of lr, one per milestone, not cumulative",
        "group": "schedule"})
    # ---- execution ---------------------------------------------------------------------
    device: str = field(default="auto", metadata={
        "help": "auto, cpu, cuda, cuda:N or mps", "group": "execution"})
    precision: str = field(default="fp32", metadata={
        "help": "numeric precision of the forward pass", "group": "execution"})
    channels_last: bool | None = field(default=None, metadata={
        "help": "NHWC memory format (same numbers up to float rounding); None = auto: on for "
                "cpu and cuda (measured faster), off elsewhere; results record "
                "channels_last_used", "group": "execution"})
    compile: bool = field(default=False, metadata={
        "help": "torch.compile the model", "group": "execution"})
    eval_every: int = field(default=1, metadata={
        "help": "evaluate every N epochs", "group": "execution"})
    checkpoint_every: int = field(default=10, metadata={
        "help": "save a checkpoint every N epochs", "group": "execution"})
    workers_per_trial: int = field(default=1, metadata={
        "help": "data-parallel workers of one trial (Ray Train, one GPU each where GPUs "
                "exist, gloo on CPU); batch_size stays the global batch", "group": "execution"})
    sync_bn: bool = field(default=False, metadata={
        "help": "SyncBatchNorm across the trial's workers (default: per-worker BN)",
        "group": "execution"})
    extra: dict = field(default_factory=dict, compare=False, hash=False, metadata={
        "help": "free-form user notes", "group": "execution"})

    def __post_init__(self):
        _validate(self)

    # ---- conversions -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialConfig:
        """Build from a plain dict; unknown keys and wrong types raise ValueError.

        For a large-scale dataset, recipe fields the dict does not set take the large-scale values
        (recipe_defaults) instead of the CIFAR defaults."""
        if not isinstance(d, dict):
            raise ValueError(f"TrialConfig.from_dict expects a dict, got {type(d).__name__}")
        d = {**recipe_defaults(d.get("dataset")), **d}
        d = _drop_removed(d)
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; valid keys: {sorted(known)}")
        return cls(**{k: coerce_value(known[k], v) for k, v in d.items()})

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable dict (tuples become lists); from_dict inverts it."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else (dict(v) if isinstance(v, dict) else v)
        return out

    def replace(self, **changes) -> TrialConfig:
        return TrialConfig.from_dict({**self.to_dict(), **changes})

    # ---- resolved values ---------------------------------------------------------------
    def loss_hparams(self) -> dict[str, Any]:
        """The loss's hyper-parameters as used: its defaults overridden by the set fields."""
        from trainables.losses import LOSSES
        spec = LOSSES[self.loss]
        hp = dict(spec.defaults)
        for name in spec.defaults:
            if getattr(self, name) is not None:
                hp[name] = getattr(self, name)
        if "ib_start_epoch" in hp:
            hp["ib_start_epoch"] = self.scale_epoch(hp["ib_start_epoch"])
        return hp

    def resolved_head(self) -> str:
        from trainables.losses import LOSSES
        return LOSSES[self.loss].head if self.head == "auto" else self.head

    def scale_epoch(self, recipe_epoch: int) -> int:
        """Map a 0-based epoch of the recipe onto this run's length (round half up)."""
        return int(math.floor(recipe_epoch * self.epochs / self.recipe_epochs + 0.5))

    def schedule(self) -> dict[str, Any]:
        """Warm-up, LR milestones and DRW epoch, scaled to ``epochs`` (all 0-based epochs).
        With ``warmup_unit`` step, ``warmup_epochs`` is 0 and ``warmup_steps`` (and the
        ``steps_per_epoch`` it is counted in) say the warm-up; with epoch neither key exists,
        so the trial keys of per-epoch schedules stay as they were."""
        milestones = [self.scale_epoch(m) for m in self.lr_milestones]
        drw_epoch = self.drw_epoch if self.drw_epoch is not None else (
            self.lr_milestones[0] if self.lr_milestones else self.recipe_epochs)
        out = {"warmup_epochs": self._warmup_epochs(), "lr_milestones": milestones,
               "lr_factors": list(self.lr_factors), "drw_epoch": self.scale_epoch(drw_epoch)}
        if self.warmup_unit == "step":
            out.update(self._warmup_steps())
        return out

    def _warmup_epochs(self) -> int:
        if self.warmup_unit == "step" or not self.warmup_epochs:
            return 0
        warmup = self.scale_epoch(self.warmup_epochs)
        # a floor that binds only when the scaled warm-up is short
        return max(warmup, 1, min(self.min_warmup_epochs, self.warmup_epochs, self.epochs // 2))

    def steps_per_epoch(self) -> int | None:
        """SGD steps of one epoch (the last batch may be partial), from the training set's size
        the config knows (training_counts); None for split-list datasets."""
        from trainables.data.registry import training_counts
        counts = training_counts(self)
        return math.ceil(sum(counts) / self.batch_size) if counts else None

    def _warmup_steps(self) -> dict[str, int]:
        """The recipe's warm-up share of this run's SGD steps (rounded half up), at least
        min_warmup_steps, at most half the run; 0 where warmup_epochs is 0."""
        per_epoch = self.steps_per_epoch()
        total = per_epoch * self.epochs
        steps = 0
        if self.warmup_epochs:
            share = int(math.floor(total * self.warmup_epochs / self.recipe_epochs + 0.5))
            steps = max(1, min(max(share, self.min_warmup_steps), total // 2))
        return {"warmup_steps": steps, "steps_per_epoch": per_epoch}

    def lr_at(self, epoch: int, step: int = 0) -> float:
        """Learning rate of 0-based ``epoch`` (LDAM-DRW's adjust_learning_rate, 1-based e),
        at its 0-based SGD ``step`` (which matters only inside a step warm-up)."""
        sch = self.schedule()
        e = epoch + 1
        if e <= sch["warmup_epochs"]:
            return self.lr * e / sch["warmup_epochs"]
        s = epoch * sch.get("steps_per_epoch", 0) + step + 1     # 1-based step of the run
        if s <= sch.get("warmup_steps", 0):
            return self.lr * s / sch["warmup_steps"]
        factor = 1.0
        for m, f in zip(sch["lr_milestones"], sch["lr_factors"]):
            if epoch >= m:
                factor = f
        return self.lr * factor

    def schedule_phases(self) -> dict[str, Any]:
        """The run cut into the recipe's phases, in SGD steps where the training set's size is
        known from the config (else in epochs): warm-up, full LR (to the first milestone),
        decayed (from it), and DRW (from its epoch, if ``drw``), with their shares of the run.
        How a short run is compared with the 200-epoch recipe (``elm-study show``)."""
        sch, known = self.schedule(), self.steps_per_epoch()
        per_epoch = known or 1
        total = per_epoch * self.epochs
        warm = sch.get("warmup_steps", sch["warmup_epochs"] * per_epoch)
        decay = min(sch["lr_milestones"][0], self.epochs) * per_epoch \
            if sch["lr_milestones"] else total
        drw = (self.epochs - min(sch["drw_epoch"], self.epochs)) * per_epoch if self.drw else 0
        steps = {"warm-up": min(warm, decay), "full LR": max(decay - warm, 0),
                 "decayed LR": total - decay, "DRW": drw}
        return {"unit": "SGD steps" if known else "epochs", "total": total, "steps": steps,
                "shares": {k: v / total for k, v in steps.items()}}

    def warms_up_by_step(self, epoch: int) -> bool:
        """Whether 0-based ``epoch`` holds steps of a step warm-up (its LR is then set before
        every step, not once)."""
        sch = self.schedule()
        return epoch * sch.get("steps_per_epoch", 0) < sch.get("warmup_steps", 0)

    def resolved(self) -> dict[str, Any]:
        """Everything a result row records: the config plus the values actually used."""
        return {**self.to_dict(), **{f"loss.{k}": v for k, v in self.loss_hparams().items()},
                "head_used": self.resolved_head(), **{f"schedule.{k}": v for k, v in
                                                      self.schedule().items()}}

    def checkpoint_due(self, metrics: dict) -> bool:
        """Whether the epoch just reported gets a checkpoint: every ``checkpoint_every``
        epochs and the last one (the one rule of trainables.checkpoints.write_epoch, which
        every writer calls)."""
        return bool(metrics["done"]) or metrics["epoch"] % self.checkpoint_every == 0

    # ---- identity ----------------------------------------------------------------------
    def key_fields(self) -> dict[str, Any]:
        """What decides this trial's numbers: the resolved values (loss hyper-parameters as
        used, head, scaled schedule) without RUNTIME_FIELDS. ``None`` (unset, "not applicable")
        is left out, so a new optional field does not change the keys of earlier trials."""
        out = {k: v for k, v in self.resolved().items()
               if k not in RUNTIME_FIELDS and k not in LOSS_HPARAMS and k not in (
                   "head", "drw_epoch", "min_warmup_epochs", "warmup_unit",
                   "min_warmup_steps")}   # schedule.* carries them
        return {k: v for k, v in sorted(out.items()) if v is not None}

    def trial_key(self) -> str:
        """A stable 12-hex-digit hash of ``key_fields()``: two configs share a key exactly when
        they train the same model on the same data. Studies use it to skip finished trials."""
        import hashlib
        import json
        text = json.dumps(self.key_fields(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def pack_fields(self) -> dict[str, Any]:
        """The fields every member of a trial pack shares: all but PACK_VARYING, as set."""
        return {k: v for k, v in sorted(self.to_dict().items()) if k not in PACK_VARYING}

    def pack_key(self) -> str:
        """A stable 12-hex-digit hash of ``pack_fields()``: trials with equal pack keys may
        train as one pack (trainables/pack.py); ``pack_split_fields`` says why two do not."""
        import hashlib
        import json
        text = json.dumps(self.pack_fields(), sort_keys=True, separators=(",", ":"),
                          default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def pack_split_fields(a: TrialConfig, b: TrialConfig) -> list[str]:
    """The shared fields (not PACK_VARYING) in which ``a`` and ``b`` differ, as
    ``"name: a_value vs b_value"``; empty exactly when their pack keys are equal."""
    fa, fb = a.pack_fields(), b.pack_fields()
    return [f"{k}: {fa[k]!r} vs {fb[k]!r}" for k in fa if fa[k] != fb[k]]


# =========================================================================================
# parsing (CLI flags, --set key=value) and validation
# =========================================================================================
def parse_value(key: str, text: str) -> Any:
    """Turn the string ``text`` into the type of field ``key`` (for CLIs); errors name the key."""
    known = {f.name: f for f in fields(TrialConfig)}
    if key not in known:
        raise ValueError(f"unknown config key '{key}'; valid keys: {sorted(known)}")
    kinds = field_kinds(known[key])
    t = text.strip()
    if type(None) in kinds and t.lower() in ("none", "null", ""):
        return None
    if bool in kinds:
        if t.lower() in ("1", "true", "yes", "on"):
            return True
        if t.lower() in ("0", "false", "no", "off"):
            return False
    for kind in (int, float):
        if kind in kinds:
            try:
                return kind(t)
            except ValueError:
                pass
    if tuple in kinds:
        parts = [p for p in t.strip("()[]").split(",") if p.strip()]
        try:
            return tuple(float(p) if any(c in p for c in ".eE") else int(p) for p in parts)
        except ValueError:
            pass
    if str in kinds:
        return t
    raise ValueError(f"config key '{key}' expects {_kind_names(kinds)}, got {text!r}")


@functools.cache
def _hints() -> dict:
    """Resolved field annotations; cached (resolving them costs ~27 ms per config)."""
    return typing.get_type_hints(TrialConfig)


def field_kinds(f: dataclasses.Field) -> set:
    """The types a TrialConfig field holds (``{float, NoneType}`` for ``float | None``)."""
    tp = _hints()[f.name]
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return {typing.get_origin(a) or a for a in typing.get_args(tp)}
    return {origin or tp}


def _kind_names(kinds: set) -> str:
    return " or ".join(sorted("None" if k is type(None) else k.__name__ for k in kinds))


def coerce_value(f: dataclasses.Field, v: Any) -> Any:
    """``v`` as TrialConfig field ``f`` holds it (numpy integers -> int, a list -> tuple...);
    a value of another type is a ValueError naming the field and the types it takes."""
    kinds = field_kinds(f)
    if v is None and type(None) in kinds:
        return None
    if isinstance(v, numbers.Integral) and not isinstance(v, bool) and type(v) is not int:
        v = int(v)                       # numpy / pandas integers (e.g. from a DataFrame)
    if isinstance(v, bool):
        if bool in kinds:
            return v
    elif isinstance(v, int) and (int in kinds or float in kinds):
        return v if int in kinds else float(v)
    elif isinstance(v, float) and float in kinds:
        return v
    elif isinstance(v, float) and int in kinds and v.is_integer():
        return int(v)
    elif isinstance(v, str) and str in kinds:
        return v
    elif isinstance(v, (list, tuple)) and tuple in kinds:
        return tuple(v)
    elif isinstance(v, dict) and dict in kinds:
        return dict(v)
    raise ValueError(f"config key '{f.name}' expects {_kind_names(kinds)}, "
                     f"got {type(v).__name__} {v!r}")


def _drop_removed(d: dict) -> dict:
    """``d`` without removed fields that hold their only possible value (old saved configs)."""
    for name, only in REMOVED_FIELDS.items():
        if name in d and d[name] != only:
            raise ValueError(f"{name}={d[name]!r} is not supported: {name} is always {only!r} "
                             f"(the field was removed)")
    return {k: v for k, v in d.items() if k not in REMOVED_FIELDS}


def _choice(name: str, value: Any, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not valid; choose one of {sorted(choices)}")


def _check(ok: bool, name: str, value: Any, rule: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is out of range: {rule}")


def _validate(c: TrialConfig) -> None:
    for f in fields(c):   # direct construction skips from_dict: check types here too
        coerce_value(f, getattr(c, f.name))
    from trainables.data import DATASETS
    from trainables.losses import LOSSES, takes_hparam
    from trainables.models import MODELS
    _choice("dataset", c.dataset, DATASETS)
    _choice("imb_type", c.imb_type, IMB_TYPES)
    _choice("loss", c.loss, LOSSES)
    _choice("model", c.model, MODELS)
    _choice("head", c.head, HEADS)
    _choice("precision", c.precision, PRECISIONS)
    if not _DEVICE_RE.match(c.device):
        raise ValueError(f"device={c.device!r} is not valid; use auto, cpu, cuda, cuda:N or mps")
    _check(c.ratio >= 1 and math.isfinite(c.ratio), "ratio", c.ratio, "must be >= 1")
    _check(c.img_max is None or c.img_max >= 1, "img_max", c.img_max, "must be >= 1")
    _check(0 <= c.val_fraction < 1, "val_fraction", c.val_fraction, "must be in [0, 1)")
    _check(c.data_seed >= 0, "data_seed", c.data_seed, "must be >= 0")
    _check(c.seed >= 0, "seed", c.seed, "must be >= 0")
    # loss hyper-parameters: only those the loss takes, each in its range
    spec = LOSSES[c.loss]
    for name in LOSS_HPARAMS:
        v = getattr(c, name)
        if v is not None and not takes_hparam(c.loss, name):
            raise ValueError(f"{name} does not apply to loss '{c.loss}'; it takes "
                             f"{sorted(spec.defaults) or 'no hyper-parameters'}")
    for name, ok, rule in (("s", lambda v: v > 0, "must be > 0"),
                           ("max_m", lambda v: v >= 0, "must be >= 0"),
                           ("lam", lambda v: v >= 0, "must be >= 0"),
                           ("gamma", lambda v: v >= 0, "must be >= 0"),
                           ("reg_lambda", lambda v: v >= 0, "must be >= 0"),
                           ("alpha", lambda v: v > 0, "must be > 0"),
                           ("eps", lambda v: v > 0, "must be > 0"),
                           ("mu", lambda v: True, ""),
                           ("ib_start_epoch", lambda v: v >= 0, "must be >= 0"),
                           ("tau", lambda v: v >= 0, "must be >= 0")):
        v = getattr(c, name)
        if v is not None:
            _check(math.isfinite(v) and ok(v), name, v, rule)
    if c.drw and not spec.takes_weight:
        raise ValueError(f"drw does not apply to loss '{c.loss}' (it re-weights on its own); "
                         f"losses that take DRW: {sorted(n for n, s in LOSSES.items() if s.takes_weight)}")
    _check(c.drw_epoch is None or c.drw_epoch >= 0, "drw_epoch", c.drw_epoch, "must be >= 0")
    if c.decouple is not None:
        _choice("decouple", c.decouple, DECOUPLE_METHODS)
    _check((c.decouple is None) == (c.stage1 is None), "stage1", c.stage1,
           f"set it exactly when decouple is set ({'/'.join(DECOUPLE_METHODS)})")
    _check(c.decouple_epochs is None or c.decouple_epochs >= 1, "decouple_epochs",
           c.decouple_epochs, "must be >= 1")
    _check(c.decouple_lr is None or (c.decouple_lr > 0 and math.isfinite(c.decouple_lr)),
           "decouple_lr", c.decouple_lr, "must be > 0")
    _check(0 <= c.drw_beta < 1, "drw_beta", c.drw_beta, "must be in [0, 1)")
    # optimisation
    _check(c.epochs >= 1, "epochs", c.epochs, "must be >= 1")
    _check(c.recipe_epochs >= 1, "recipe_epochs", c.recipe_epochs, "must be >= 1")
    _check(c.batch_size >= 1, "batch_size", c.batch_size, "must be >= 1")
    _check(c.eval_batch_size is None or c.eval_batch_size >= 1, "eval_batch_size",
           c.eval_batch_size, "must be >= 1")
    _check(c.lr > 0 and math.isfinite(c.lr), "lr", c.lr, "must be > 0")
    _check(0 <= c.momentum < 1, "momentum", c.momentum, "must be in [0, 1)")
    _check(c.weight_decay >= 0, "weight_decay", c.weight_decay, "must be >= 0")
    _check(c.warmup_epochs >= 0, "warmup_epochs", c.warmup_epochs, "must be >= 0")
    _check(c.min_warmup_epochs >= 0, "min_warmup_epochs", c.min_warmup_epochs, "must be >= 0")
    _choice("warmup_unit", c.warmup_unit, WARMUP_UNITS)
    _check(c.min_warmup_steps >= 0, "min_warmup_steps", c.min_warmup_steps, "must be >= 0")
    _check(len(c.lr_milestones) == len(c.lr_factors), "lr_factors", c.lr_factors,
           f"needs one factor per milestone ({len(c.lr_milestones)})")
    _check(list(c.lr_milestones) == sorted(c.lr_milestones) and all(m >= 0 for m in
           c.lr_milestones), "lr_milestones", c.lr_milestones, "must be ascending and >= 0")
    _check(all(f > 0 for f in c.lr_factors), "lr_factors", c.lr_factors, "must be > 0")
    _check(c.image_size is None or c.image_size >= 16, "image_size", c.image_size,
           "must be >= 16")
    _check(c.num_workers >= 0, "num_workers", c.num_workers, "must be >= 0")
    _check(c.eval_every >= 1, "eval_every", c.eval_every, "must be >= 1")
    _check(c.checkpoint_every >= 1, "checkpoint_every", c.checkpoint_every, "must be >= 1")
    _check(c.workers_per_trial >= 1, "workers_per_trial", c.workers_per_trial, "must be >= 1")
    # fields fine alone, impossible together: the training data the trial asks for must
    # exist (every class at least one image, none asked beyond what the source holds)
    from trainables.data.registry import training_counts
    if training_counts(c) is None and c.warmup_unit == "step":
        raise ValueError(f"warmup_unit='step' counts the run's SGD steps from the training set's "
                         f"size, which {c.dataset} only knows once its train list is read; "
                         "use warmup_unit='epoch' (its epochs are thousands of steps long)")
    _check(c.batch_size % c.workers_per_trial == 0, "batch_size", c.batch_size,
           f"the global batch must divide among workers_per_trial={c.workers_per_trial} "
           "workers (batch_size / workers_per_trial per worker)")


# =========================================================================================
# a run's resources: the rules of a study file's ``resources:`` keys and of the flags that
# override them (``--cpus-per-trial`` ...), once. The study file's reader names the key
# (``resources.pack``), RunOptions.validated the flag (``--pack``); both ask these.
# =========================================================================================
@dataclass(frozen=True)
class ResourceRule:
    integral: bool      # an integer; else any number (int or float)
    low: int            # the smallest value that can run

    @property
    def wants(self) -> str:
        """``an integer >= 1`` / ``a number >= 0``."""
        return f"{'an integer' if self.integral else 'a number'} >= {self.low}"

    def typed(self, value) -> bool:
        """The value has the type (a bool is not a number here)."""
        return not isinstance(value, bool) and isinstance(
            value, int if self.integral else (int, float))

    def allows(self, value) -> bool:
        return self.typed(value) and value >= self.low


# field -> rule, in RunOptions' field order (tests check the names against RunOptions)
RESOURCE_RULES = {
    "cpus_per_trial": ResourceRule(integral=False, low=0),
    "gpus_per_trial": ResourceRule(integral=False, low=0),
    "max_concurrent": ResourceRule(integral=True, low=1),
    "max_failures": ResourceRule(integral=True, low=0),
    "workers_per_trial": ResourceRule(integral=True, low=1),
    "pack": ResourceRule(integral=True, low=1),
}
RESOURCE_KEYS = tuple(RESOURCE_RULES)


def pack_clash(values: dict, name=str) -> str | None:
    """The exclusion: a pack (``pack`` > 1) is one process, so it cannot also spread a trial over
    ``workers_per_trial`` > 1 workers. The refusal, naming both fields with ``name`` (a flag's
    or a key's spelling), or None."""
    pack, workers = values.get("pack") or 1, values.get("workers_per_trial") or 1
    if pack > 1 and workers > 1:
        return (f"{name('pack')} {pack} cannot be combined with {name('workers_per_trial')} "
                f"{workers}: a pack is one process (choose one)")
    return None
