"""Decoupled classifier learning (Kang et al., ICLR 2020): cRT and LWS as trials.

A decoupled trial names its first-stage trial (``stage1``: a ``trial.pt`` checkpoint or a
trial folder, whose newest good checkpoint is used) and trains only the classifier:

- cRT: backbone frozen (BatchNorm statistics too), the linear classifier re-initialised and
  re-trained with CE under class-balanced sampling;
- LWS: backbone AND classifier frozen; a per-class scale f_j (init 1) multiplies logit j and
  is trained with CE under class-balanced sampling.

Class-balanced sampling: each sample of an epoch draws a class uniformly, then an image of that
class uniformly (with replacement); an epoch has as many samples as the training split.
Schedule (the paper's configs, facebookresearch/classifier-balancing config/ImageNet_LT/
cls_crt.yaml, cls_lws.yaml): SGD momentum 0.9, weight decay 5e-4, lr 0.2 at batch 512 (here
0.2·batch/512, the linear scaling rule), cosine annealing to 0, 10 epochs for cRT and 5 for
LWS, both counted in the first stage's recipe epochs and scaled like its schedule (the numbers
live in trainables.config.DecoupleRecipe).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from trainables.checkpoints import (CHECKPOINT_FILE, load_checkpoint, newest_good_in,
                                    write_epoch)
from trainables.config import DECOUPLE_METHODS, DECOUPLE_RECIPE, LOSS_HPARAMS, TrialConfig
from trainables.data.loader import epoch_seed
from trainables.engine import Trainer

LABELS = {"crt": "cRT", "lws": "LWS"}
# a decoupled trial must use the first stage's data and network
SAME_AS_STAGE1 = ("dataset", "imb_type", "ratio", "img_max", "data_seed", "val_fraction",
                  "model")


def stage1_state(path: str) -> dict:
    """The first stage's trial state: the checkpoint file ``path`` names, or the newest good
    checkpoint of the trial folder it names."""
    p = Path(path).expanduser()
    if p.is_dir():
        found = newest_good_in(p)
        if found is None:
            raise ValueError(f"stage1={path}: no checkpoint_*/{CHECKPOINT_FILE} that loads in "
                             "that trial folder")
        return found[1]
    if not p.exists():
        raise ValueError(f"stage1={path}: no such checkpoint file or trial folder")
    return load_checkpoint(p)


def stage2_config(cfg: TrialConfig, s1: TrialConfig) -> TrialConfig:
    """The config the engine runs: CE on the first stage's network and data, the decoupled
    schedule (constant lr here; the cosine is applied per epoch by DecoupledTrainer)."""
    for k in SAME_AS_STAGE1:
        if getattr(cfg, k) != getattr(s1, k):
            raise ValueError(f"{k}={getattr(cfg, k)!r} differs from the first stage's "
                             f"{getattr(s1, k)!r} (stage1={cfg.stage1})")
    if s1.resolved_head() != "linear":
        raise ValueError(f"decouple={cfg.decouple} needs a linear-head first stage; stage1 "
                         f"used a {s1.resolved_head()} head (loss {s1.loss})")
    n2 = max(1, s1.scale_epoch(cfg.decouple_epochs if cfg.decouple_epochs is not None
                               else DECOUPLE_RECIPE.epochs(cfg.decouple)))
    lr = cfg.decouple_lr if cfg.decouple_lr is not None else \
        DECOUPLE_RECIPE.lr(cfg.batch_size)
    return cfg.replace(loss="ce", drw=False, head="linear", epochs=n2, recipe_epochs=n2,
                       warmup_epochs=0, lr_milestones=[], lr_factors=[], lr=lr,
                       weight_decay=DECOUPLE_RECIPE.weight_decay,
                       momentum=DECOUPLE_RECIPE.momentum, nesterov=False,
                       **{k: None for k in LOSS_HPARAMS})


def stage1_label(s1: TrialConfig) -> str:
    from trainables.methods import method_label
    return method_label(s1.loss, s1.drw, s1.loss_hparams().get("lam"))


class ClassBalancedLoader:
    """Wraps a non-shuffling DeviceLoader: each epoch it draws a class-balanced sample (class
    uniform, then image uniform within the class) and lets the wrapped loader batch and
    augment it. The draw depends on (seed, epoch) only, so a resumed run draws the same."""

    def __init__(self, base, num_classes: int, seed: int):
        self.base, self.seed, self.epoch = base, seed, 0
        self._x, self._y = base.x, base.y
        self._padded = getattr(base, "padded", None)
        self.by_class = torch.argsort(self._y, stable=True)
        counts = torch.bincount(self._y, minlength=num_classes)
        self.counts, self.starts = counts, torch.cumsum(counts, 0) - counts

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def draw(self) -> torch.Tensor:
        dev = self._y.device
        g = torch.Generator(device=dev).manual_seed(epoch_seed(self.seed, self.epoch,
                                                              DECOUPLE_RECIPE.sampling_stream))
        n = self._y.shape[0]
        present = torch.nonzero(self.counts).flatten()       # classes with images
        cls = present[torch.randint(0, len(present), (n,), generator=g, device=dev)]
        pos = torch.minimum((torch.rand(n, generator=g, device=dev, dtype=torch.float64)
                             * self.counts[cls]).long(), self.counts[cls] - 1)
        return self.by_class[self.starts[cls] + pos]

    def __iter__(self):
        order = self.draw()
        self.base.x, self.base.y = self._x[order], self._y[order]
        if self._padded is not None:
            self.base.padded = self._padded[order]
        yield from self.base


class DecoupledTrainer(Trainer):
    """A Trainer whose model is the first stage's, with only the classifier (cRT) or the
    per-class scales (LWS) trainable, on class-balanced batches."""

    def __init__(self, cfg: TrialConfig, *, device=None, data=None):
        if cfg.decouple not in DECOUPLE_METHODS:
            raise ValueError(f"decouple={cfg.decouple!r} is not valid; choose one of "
                             f"{list(DECOUPLE_METHODS)}")
        state = stage1_state(cfg.stage1)
        s1 = TrialConfig.from_dict(state["config"])
        self.outer_cfg, self.stage1_cfg = cfg, s1
        super().__init__(stage2_config(cfg, s1), device=device, data=data)
        if not hasattr(self.train_loader, "x"):
            raise ValueError(f"decouple={cfg.decouple} supports the in-memory datasets only, "
                             f"not {cfg.dataset}")
        self.model.load_state_dict(state["model"])
        self._freeze(cfg.decouple)
        base = type(self.train_loader)(
            self.data.train_x, self.data.train_y, self.cfg.batch_size, self.data.mean,
            self.data.std, augment=self.cfg.augment, shuffle=False, seed=self.cfg.seed,
            channels_last=self.cfg.channels_last)
        self.train_loader = ClassBalancedLoader(base, self.data.num_classes, self.cfg.seed)
        self.static_fields = {"method": f"{stage1_label(s1)} + {LABELS[cfg.decouple]}",
                              "stage1_loss": s1.loss, "stage1_drw": s1.drw,
                              "stage1": str(cfg.stage1), "decouple_epochs_used": self.cfg.epochs,
                              "decouple_lr_used": self.cfg.lr}

    def _freeze(self, method: str) -> None:
        model = self.model
        for p in model.parameters():
            p.requires_grad_(False)
        # the backbone stays in eval mode: frozen BatchNorm statistics, as the paper's fix
        model.train = lambda mode=True: nn.Module.train(model, False)
        if method == "crt":
            model.linear.reset_parameters()
            params = list(model.linear.parameters())
        else:
            model.lws_scale = nn.Parameter(torch.ones(self.data.num_classes, device=self.device))
            params = [model.lws_scale]

            def forward(x):
                z, h = model(x)
                return z * model.lws_scale, h
            self.forward = forward
        for p in params:
            p.requires_grad_(True)
        self.optimizer = torch.optim.SGD(params, lr=self.cfg.lr, momentum=self.cfg.momentum,
                                         weight_decay=self.cfg.weight_decay)

    def _start_epoch(self, epoch: int) -> float:
        """Cosine annealing to 0 over the decoupled epochs, stepped per epoch."""
        super()._start_epoch(epoch)
        lr = 0.5 * self.cfg.lr * (1 + math.cos(math.pi * epoch / self.cfg.epochs))
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        return lr


# =========================================================================================
# python -m trainables.decoupled STUDY --method crt: stage 2 for every CE trial of a study
# =========================================================================================
def run_for_study(study: str, method: str, losses=("ce",), device: str = "cpu") -> list[Path]:
    """Run the decoupled ``method`` from every finished linear-head trial of ``study`` whose
    loss is in ``losses``, in this process; each writes STUDY/decoupled/<trial>_<method>/
    (result.json, one strict-JSON line per epoch as Tune writes, trial.pt, confusion.json)."""
    from trainables.results import DECOUPLED_DIR
    from trainables.store import StudyFolder
    done = []
    for t in StudyFolder(study).trials_per_key:
        c = t.config
        if t.status != "terminated" or c.get("loss") not in losses or c.get("decouple"):
            continue
        cfg = TrialConfig.from_dict({**c, "device": device, "decouple": method,
                                     "stage1": str(t.trial_dir)})
        out = Path(study) / DECOUPLED_DIR / f"{t.trial_id}_{method}"
        out.mkdir(parents=True, exist_ok=True)
        trainer = DecoupledTrainer(cfg)
        static = {**trainer.static_fields, "seed": cfg.seed,
                  "trial_id": f"{t.trial_id}_{method}"}
        _train_into(trainer, out, static)
        done.append(out)
    return done


def _train_into(trainer: DecoupledTrainer, out: Path, static: dict) -> None:
    """Train to the end through the checkpoint sink: a result.json line per epoch, trial.pt
    when due and at the end, the final confusion.json beside it."""
    from trainables.jsonio import dumps_strict
    with open(out / "result.json", "w") as f:
        def emit(row: dict, _folder) -> None:
            f.write(dumps_strict(row) + "\n")

        for m in trainer.epochs():
            write_epoch(trainer, {**m, **static}, trainer.cfg, emit, folder=out)


def main(argv=None) -> int:
    import argparse
    import sys
    p = argparse.ArgumentParser(prog="python -m trainables.decoupled",
                                description="cRT / LWS from the finished trials of a study")
    p.add_argument("study")
    p.add_argument("--method", default="crt", help=f"one of {list(DECOUPLE_METHODS)}")
    p.add_argument("--losses", default="ce", help="comma-separated first-stage losses (ce)")
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    if a.method not in DECOUPLE_METHODS:
        print(f"--method {a.method!r} is not valid; choose one of {list(DECOUPLE_METHODS)}",
              file=sys.stderr)
        return 2
    if not Path(a.study).is_dir():
        print(f"study: {a.study} is not a folder", file=sys.stderr)
        return 2
    try:
        for d in run_for_study(a.study, a.method, tuple(a.losses.split(",")), a.device):
            print(d)
    except ValueError as e:
        print(f"decoupled: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
