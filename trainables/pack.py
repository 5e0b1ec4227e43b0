"""Trial packs: K trials of a grid trained as one fused network in one process (issue 21).

    pack = PackTrainer([cfg_a, cfg_b, cfg_c])    # equal pack keys (TrialConfig.pack_key)
    for rows in pack.epochs():                   # one list per epoch, one entry per member
        for member, m in zip(pack.members, rows):
            if m is not None:                    # None: that member had already stopped
                write_epoch(member, m, member.cfg, emit)   # a member looks like a Trainer

Why it equals K separate trials (docs/packing.md):
- The backbones are one grouped-convolution network (trainables.models.fused_cifar): member
  k owns channel block k of every activation, so its forward and backward are exactly its
  own ResNet's. The heads are not fused: each member keeps the head module of its own
  ordinary model. One SGD steps all parameters: momentum and weight decay are element-wise,
  and the summed loss gives each member exactly its own gradient (d(Σ L_j)/dθ_k = dL_k/dθ_k).
- Each member is built as ``Trainer`` builds a trial (seed_everything(seed), its loader,
  model, loss), so its initial weights, batch order and augmentation ((seed, epoch) stream)
  are the single trial's. Its loss module (DRW weights, EQLv2 and IB state) is its own.
- Nothing in training draws from the global RNGs (the loaders own their generators; ResNet32
  has no dropout; no loss samples), so a member's global-RNG state is what a single trial
  holds right after its model's initialisation: captured then, carried in its checkpoint.
- A member whose epoch loss is not finite is ``diverged``: it stops, its state is kept as at
  that epoch's end (as a single trial's), and the pack is re-fused from the others.

A member is a TrialState (trainables.trial_state), as a Trainer is: built, bookkept and
checkpointed by the same code. Its ordinary model and optimizer are its checkpoint format:
``sync()`` copies the fused network's values into them (state_dict does it), and loading a
member tells the pack (``mark_members_changed``) to re-fuse before it trains again.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterator

import torch

from trainables.config import TrialConfig, pack_split_fields
from trainables.cost import CostMeter, default_hold
from trainables.data.build import FileData, build_data
from trainables.engine import (open_device, precision_context, resolve_channels_last,
                               rng_state, seed_everything)
from trainables.metrics import DiagnosticAccumulator, TopKAccumulator
from trainables.models.fused_cifar import HEAD_PREFIX, fuse, member_chunk
from trainables.trial_state import TrialState, set_lr

PACKABLE_MODELS = ("resnet32",)   # CIFAR-scale ResNets with a linear or cosine head


# =========================================================================================
# what may be packed
# =========================================================================================
def check_packable(cfgs: list[TrialConfig]) -> None:
    """ValueError unless ``cfgs`` can train as one pack: equal pack keys (the message names
    the fields that split them) and a set-up the fused trainer covers."""
    if not cfgs:
        raise ValueError("a pack needs at least one trial config")
    for i, c in enumerate(cfgs[1:], 1):
        split = pack_split_fields(cfgs[0], c)
        if split:
            raise ValueError(f"trials 0 and {i} cannot share a pack; the fields that split "
                             f"them: {'; '.join(split)}")
    c = cfgs[0]
    if c.model not in PACKABLE_MODELS:
        raise ValueError(f"model {c.model!r} cannot be packed: trial packs cover "
                         f"{list(PACKABLE_MODELS)}")
    from trainables.data.registry import get_dataset
    if get_dataset(c.dataset).kind == "files":
        raise ValueError(f"dataset {c.dataset!r} is read from files: packs cover the "
                         "in-memory (CIFAR-scale) datasets")
    for bad, why in ((c.workers_per_trial > 1, f"workers_per_trial={c.workers_per_trial} "
                      "(a pack is one process; data-parallel trials are not packed)"),
                     (c.decouple is not None, f"decouple={c.decouple!r} (a second stage "
                      "trains alone: trainables.decoupled)"),
                     (c.compile, "compile=True (the fused network is not compiled)")):
        if bad:
            raise ValueError(f"trials cannot be packed with {why}")


# =========================================================================================
# one member: a trial inside the pack, shaped like a Trainer
# =========================================================================================
class Member(TrialState):
    """One trial of a pack: a TrialState as a Trainer is, so to ``write_epoch`` and to
    checkpoint readers it is one (cfg, epoch, status, best, last_metrics, history, confusion,
    dist None; state_dict / load_state_dict / save / load in exactly Trainer's format). The
    pack trains and evaluates it."""

    def __init__(self, pack: PackTrainer, cfg: TrialConfig, data, device, channels_last: bool,
                 started: float):
        self._pack, self.cfg, self.data, self.device, self.dist = pack, cfg, data, device, None
        self.channels_last = channels_last
        self.meter = CostMeter(device, start=started)   # from the pack's construction
        seed_everything(cfg.seed)       # then built as Trainer builds the trial
        self.build()
        # self.optimizer never steps: it holds this member's share of the pack's optimizer
        # state, in the format (parameter order, param_groups) of the single trial's
        self.rng = rng_state()          # the single trial's global RNGs (nothing draws later)

    @property
    def head(self) -> torch.nn.Module:
        return self.model.linear

    # ---- checkpoints (TrialState's format): the fused network's values ----------------
    def rng_state(self) -> dict:
        return self.rng

    def load_rng_state(self, rng: dict) -> None:
        self.rng = rng

    def state_dict(self) -> dict:
        self._pack.sync()
        return super().state_dict()

    def load_state_dict(self, state: dict) -> None:
        self._pack.sync()               # the other members' values, before the pack re-fuses
        super().load_state_dict(state)
        self._pack.mark_members_changed()


# =========================================================================================
# the pack
# =========================================================================================
class PackTrainer:
    """K trials with equal pack keys, trained as one fused network (module docstring)."""

    def __init__(self, cfgs: list[TrialConfig], *, device=None, data=None):
        """``data`` (a TrialData) replaces the dataset the configs name (benchmarks, tests)."""
        check_packable(list(cfgs))
        cfg = self.cfg = cfgs[0]        # the shared fields are read from member 0's config
        self.device = open_device(device, cfg)
        started = time.monotonic()      # the members' cost meters start here (cost.py)
        self.holding = default_hold(self.device)   # the pack's; the Ray layer sets it (hold)
        if data is None:
            seed_everything(cfg.seed)   # as Trainer: build_data draws under this seed
            data = build_data(cfg, self.device)
        if isinstance(data, FileData):
            raise ValueError(f"dataset {cfg.dataset!r} is read from files: packs cover the "
                             "in-memory (CIFAR-scale) datasets")
        self.data = data
        self.channels_last = resolve_channels_last(cfg.channels_last, self.device)
        self.members = [Member(self, c, data, self.device, self.channels_last, started)
                        for c in cfgs]
        # every member's eval loader is the same (no shuffling, no augmentation): member 0's
        self.eval_loaders = self.members[0].eval_loaders
        for m in self.members[1:]:      # the padded training images are the same too
            if hasattr(m.train_loader, "padded"):
                m.train_loader.padded = self.members[0].train_loader.padded
        self._members_stale = False     # the fused network holds newer values than members
        self._refuse_needed = True      # the members hold newer values than the network
        self._refuse()

    def hold(self, kind: str, amount: float) -> None:
        """What the whole pack holds ('cpu'/'gpu', how much): each epoch, its running members
        share it evenly in their cost (trainables.cost)."""
        self.holding = (kind, float(amount))

    def mark_members_changed(self) -> None:
        """A member's values were replaced (its checkpoint loaded) or one stopped: re-fuse
        from the members before training again."""
        self._refuse_needed = True

    # ---- fusing and un-fusing -------------------------------------------------------
    def _refuse(self) -> None:
        """(Re)build the fused network and its optimizer from the running members."""
        self.running = [m for m in self.members if m.status == "running"]
        self._refuse_needed = False
        if not self.running:
            self.net = self.optimizer = None
            return
        epochs = sorted({m.epoch for m in self.running})
        if len(epochs) > 1:
            raise ValueError(f"running members of a pack must be at the same epoch; got "
                             f"{[(m.cfg.seed, m.cfg.loss, m.epoch) for m in self.running]} "
                             "(seed, loss, epoch)")
        self.net = fuse([m.model for m in self.running])
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        c = self.cfg
        heads = [p for m in self.running for p in m.head.parameters()]
        self.optimizer = torch.optim.SGD([*self.net.parameters(), *heads], lr=c.lr,
                                         momentum=c.momentum, weight_decay=c.weight_decay,
                                         nesterov=c.nesterov)
        params = [dict(m.model.named_parameters()) for m in self.running]
        for name, fp in self.net.named_parameters():
            states = [m.optimizer.state.get(p[name]) for m, p in zip(self.running, params)]
            if any(states):   # momentum buffers: concatenated as the parameters are
                self.optimizer.state[fp] = {k: torch.cat([s[k] for s in states]) if
                                            torch.is_tensor(v) and v.dim() else v
                                            for k, v in states[0].items()}
        for m in self.running:          # heads are the members' own parameters
            for p in m.head.parameters():
                if m.optimizer.state.get(p):
                    self.optimizer.state[p] = {k: v.clone() if torch.is_tensor(v) else v
                                               for k, v in m.optimizer.state[p].items()}

    @torch.no_grad()
    def sync(self) -> None:
        """Copy the fused network's values (weights, BatchNorm statistics, momentum buffers)
        into the running members' ordinary models and optimizers; a no-op when they hold
        them already."""
        if not self._members_stale:
            return
        k = len(self.running)
        fused_state = self.net.state_dict()
        fused_params = dict(self.net.named_parameters())
        for j, m in enumerate(self.running):
            own = m.model.state_dict()
            for name, t in fused_state.items():
                own[name].copy_(member_chunk(t, j, k))
            for name, p in m.model.named_parameters():
                src = p if name.startswith(HEAD_PREFIX) else fused_params[name]
                st = self.optimizer.state.get(src)
                if st:
                    m.optimizer.state[p] = {
                        n: (v.clone() if src is p else member_chunk(v, j, k).clone())
                        if torch.is_tensor(v) else v for n, v in st.items()}
        self._members_stale = False

    # ---- one epoch ------------------------------------------------------------------
    def _stack(self, xs: list[torch.Tensor]) -> torch.Tensor:
        """K batches (N, C, H, W) -> one (N, K·C, H, W): member k in channel block k."""
        x = torch.cat(xs, dim=1)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def train_epoch(self, max_steps: int | None = None) -> list[dict]:
        """One epoch of every running member (or its first ``max_steps`` steps, for
        benchmarks); each member's metrics as Trainer.train_epoch returns them."""
        if self._refuse_needed:
            self._refuse()
        if not self.running:
            return []
        run, epoch = self.running, self.running[0].epoch
        lr = self.cfg.lr_at(epoch)
        set_lr(self.optimizer, lr)
        by_step = self.cfg.warms_up_by_step(epoch)
        for m in run:
            m.start_epoch(epoch)
            m.model.train()
            m.criterion.train()
        self.net.train()
        loss_sum = torch.zeros(len(run), device=self.device, dtype=torch.float64)
        correct = torch.zeros(len(run), device=self.device, dtype=torch.long)
        seen = 0
        t0 = time.perf_counter()
        for step, batches in enumerate(zip(*(m.train_loader for m in run))):
            if max_steps is not None and step >= max_steps:
                break
            if by_step:   # a step warm-up: this step's LR
                set_lr(self.optimizer, self.cfg.lr_at(epoch, step))
            y = [b[1] for b in batches]
            with precision_context(self.cfg, self.device):
                feat = self.net(self._stack([b[0] for b in batches]))
                logits = [m.head(feat[:, j]) for j, m in enumerate(run)]
                losses = [m.criterion(z, t, feat[:, j])
                          for j, (m, z, t) in enumerate(zip(run, logits, y))]
            self.optimizer.zero_grad(set_to_none=True)
            loss = torch.stack(losses)
            loss.sum().backward()       # each member's parameters get exactly its gradient
            self._members_stale = True  # before the step: its post-hooks may sync()
            self.optimizer.step()
            loss_sum += loss.detach().double() * y[0].shape[0]
            correct += torch.stack([(z.detach().argmax(1) == t).sum() for z, t in zip(logits, y)])
            seen += y[0].shape[0]
        losses_h, correct_h = loss_sum.tolist(), correct.tolist()   # the epoch's host read
        dt = time.perf_counter() - t0
        return [m.train_row(epoch, lr, ls, c, seen, dt)
                for m, ls, c in zip(run, losses_h, correct_h)]

    @torch.inference_mode()
    def evaluate(self, split: str = "test") -> list[dict]:
        """Trainer.evaluate for every running member, in one pass over ``split``; each
        member's confusion matrix goes to its ``confusion``."""
        run, k = self.running, len(self.running)
        self.net.eval()
        for m in run:
            m.model.eval()
        nc = self.data.num_classes
        accs = [TopKAccumulator(nc, self.device) for _ in run]
        diags = [DiagnosticAccumulator(nc, self.device) for _ in run]
        scales = [float(getattr(m.criterion, "s", 1.0)) for m in run]
        t0, n = time.perf_counter(), 0
        for x, y in self.eval_loaders[split]:
            with precision_context(self.cfg, self.device):
                feat = self.net(self._stack([x] * k))
                logits = [m.head(feat[:, j]) for j, m in enumerate(run)]
            for z, acc, diag, s in zip(logits, accs, diags, scales):
                acc.update(z.float(), y)
                diag.update(z.float() * s, y)
            n += y.shape[0]
        dt = time.perf_counter() - t0
        out = []
        for m, acc, diag in zip(run, accs, diags):
            o = acc.summary(self.data.class_counts, prefix=f"{split}_")
            o.update(diag.summary(prefix=f"{split}_"))
            if m.status == "running":   # a diverged member keeps its last one, as a trial
                m.confusion[split] = diag.confusion_matrix()
            o[f"{split}_images_per_s"] = n / dt if dt > 0 else math.nan
            out.append(o)
        return out

    def epochs(self) -> Iterator[list[dict | None]]:
        """Run the remaining epochs. Each yields one entry per member: its metrics exactly
        as Trainer.epochs() yields them, or None for a member that had already stopped.
        Stops when every member has stopped (finished or diverged)."""
        while True:
            if self._refuse_needed:
                self._refuse()
            run = self.running
            if not run or run[0].epoch >= self.cfg.epochs:
                return
            trained = self.train_epoch()
            for m in run:
                m.epoch += 1
            evals: list[dict] = [{} for _ in run]
            if any(m.eval_due() for m in run):   # the same epoch for all: diverged ones aside
                for split in self.eval_loaders:
                    for j, o in enumerate(self.evaluate(split)):
                        evals[j][split] = o
            rows: list[dict | None] = [None] * len(self.members)
            for j, (m, tm) in enumerate(zip(run, trained)):
                m.meter.hold(self.holding[0], self.holding[1] / len(run))   # an even share
                rows[self.members.index(m)] = m.finish_epoch(tm, evals[j] or None)
            if any(m.status != "running" for m in run):
                self.sync()             # stopped members keep their state as of now
                self.mark_members_changed()
            yield rows

    def fit(self) -> list[dict]:
        """Run to the end; returns each member's last metrics."""
        for _ in self.epochs():
            pass
        return [m.last_metrics for m in self.members]
