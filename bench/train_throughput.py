"""Train throughput: our engine vs. the field's reference loop, side by side in one process.

    python bench/train_throughput.py [--steps 30] [--reps 3] [--device auto] [--json out.json]

Both train ResNet32 + LDAM with DRW weights on CIFAR-10-LT-shaped data (12,406 train images,
class counts of r=100; 10,000 test images; synthetic pixels), batch 128, for the same number
of steps, after warm-up steps that are not timed. Reported: train and eval images/s (median of
``--reps``), the ratio to the baseline, and the projected wall time of a 200-epoch trial with
an evaluation every epoch.

(b) The baseline reproduces LDAM-DRW's ``cifar_train.py``: torchvision PIL transforms
(RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize) in a DataLoader with
workers, fp32 eager, ``loss.item()`` every step, evaluation with batch 100.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import cli  # noqa: E402
from trainables.config import TrialConfig  # noqa: E402
from trainables.data.imbalance import class_counts  # noqa: E402
from trainables.losses import create_loss, drw_weights  # noqa: E402
from trainables.models import create_model  # noqa: E402

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
EPOCHS = 200
VARIANTS = "fp32,fp32+channels_last,bf16+channels_last,bf16+channels_last+compile"


def fake_cifar10_lt(seed: int = 0):
    """uint8 NHWC train/test arrays shaped like CIFAR-10-LT r=100 (12,406 / 10,000)."""
    rng = np.random.default_rng(seed)
    counts = class_counts(10, 5000, "lt", 100)
    y_train = np.concatenate([np.full(n, c) for c, n in enumerate(counts)]).astype(np.int64)
    x_train = rng.integers(0, 256, (len(y_train), 32, 32, 3), dtype=np.uint8)
    y_test = np.repeat(np.arange(10), 1000).astype(np.int64)
    x_test = rng.integers(0, 256, (10_000, 32, 32, 3), dtype=np.uint8)
    return counts, x_train, y_train, x_test, y_test


# =========================================================================================
# (b) the reference loop
# =========================================================================================
class _PILDataset(torch.utils.data.Dataset):
    def __init__(self, x, y, transform):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(self.x[i])), int(self.y[i])


def baseline(data, device, steps, warmup, workers):
    import torchvision.transforms as T
    counts, x_train, y_train, x_test, y_test = data
    train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                          T.Normalize(MEAN, STD)])
    test_tf = T.Compose([T.ToTensor(), T.Normalize(MEAN, STD)])
    kw = dict(num_workers=workers, pin_memory=device.type == "cuda",
              persistent_workers=workers > 0)
    train = torch.utils.data.DataLoader(_PILDataset(x_train, y_train, train_tf), batch_size=128,
                                        shuffle=True, **kw)
    test = torch.utils.data.DataLoader(_PILDataset(x_test, y_test, test_tf), batch_size=100,
                                       shuffle=False, **kw)
    torch.manual_seed(0)
    model = create_model("resnet32", 10, head="cosine").to(device)
    crit = create_loss("ldam", counts).to(device)
    crit.set_weight(drw_weights(counts, 160, 160))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)

    def train_steps(n):
        model.train()
        it, done = iter(train), 0
        while done < n:
            try:
                x, y = next(it)
            except StopIteration:
                it = iter(train)
                continue
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits, _ = model(x)
            loss = crit(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()            # the reference loop's per-step host sync (AverageMeter)
            done += 1

    def evaluate(n_batches):
        model.eval()
        with torch.no_grad():
            for i, (x, y) in enumerate(test):
                if i >= n_batches:
                    break
                logits, _ = model(x.to(device))
                logits.argmax(1).cpu()   # the reference collects predictions on the host

    return train_steps, evaluate, 100


# =========================================================================================
# (a) our engine
# =========================================================================================
def engine(data, device, variant):
    from trainables.data.build import TrialData
    from trainables.data.registry import get_dataset
    from trainables.engine import Trainer
    counts, x_train, y_train, x_test, y_test = data
    cfg = TrialConfig(dataset="cifar10", loss="ldam", drw=True, device=str(device),
                      precision="bf16" if "bf16" in variant else "fp32",
                      channels_last="channels_last" in variant, compile="compile" in variant)
    to = lambda a: torch.from_numpy(a).to(device)   # noqa: E731
    nchw = lambda a: to(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))   # noqa: E731
    td = TrialData(train_x=nchw(x_train), train_y=to(y_train), val_x=None, val_y=None,
                   test_x=nchw(x_test), test_y=to(y_test), class_counts=list(counts),
                   num_classes=10, channels=3, mean=MEAN, std=STD, info=get_dataset("cifar10"))
    trainer = Trainer(cfg, device=device, data=td)
    trainer.epoch = 160                  # DRW weights on, as the baseline

    def train_steps(n):
        trainer.train_epoch(max_steps=n)

    def evaluate(n_batches):
        loader = trainer.eval_loaders["test"]
        saved = loader.x, loader.y
        loader.x, loader.y = saved[0][: n_batches * loader.batch_size], \
            saved[1][: n_batches * loader.batch_size]
        try:
            trainer.evaluate("test")
        finally:
            loader.x, loader.y = saved

    return train_steps, evaluate, trainer.eval_loaders["test"].batch_size


# =========================================================================================
# timing
# =========================================================================================
def sync_device(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(train_steps, evaluate, eval_bs, device, steps, warmup, reps, eval_images):
    train_steps(warmup)                   # warm-up (compile, cudnn autotune, worker start)
    evaluate(1)
    tr, ev = [], []
    eval_batches = max(1, eval_images // eval_bs)
    for _ in range(reps):
        sync_device(device)
        t = time.perf_counter()
        train_steps(steps)
        sync_device(device)
        tr.append(steps * 128 / (time.perf_counter() - t))
        t = time.perf_counter()
        evaluate(eval_batches)
        sync_device(device)
        ev.append(eval_batches * eval_bs / (time.perf_counter() - t))
    return statistics.median(tr), statistics.median(ev)


def projected_trial_s(train_ips, eval_ips, n_train=12_406, n_test=10_000):
    return EPOCHS * (n_train / train_ips + n_test / eval_ips)


def main(argv=None) -> int:
    p = cli.Parser(__file__, description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=cli.int_at_least(1), default=20)
    p.add_argument("--warmup", type=cli.int_at_least(0), default=5)
    p.add_argument("--reps", type=cli.int_at_least(1), default=3)
    p.add_argument("--eval-images", type=cli.int_at_least(100), default=2000)
    cli.engine_options(p, workers=min(4, os.cpu_count() or 1), variants_default=VARIANTS, json_what="results")
    args, device = cli.parse_engine_args(p, argv)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    machine = (f"{platform.node()}: {os.cpu_count()} CPU cores, {gpu or 'no GPU'}, "
               f"torch {torch.__version__}, device {device}")
    print(f"# {machine}\n# {args.steps} steps x {args.reps} reps (median), batch 128, "
          f"warm-up {args.warmup} steps; eval {args.eval_images} images", flush=True)
    data = fake_cifar10_lt()
    rows, base = {}, None
    out = {"machine": machine, "steps": args.steps, "reps": args.reps, "variants": rows}
    print(f"\n{'variant':40s} {'train img/s':>12s} {'eval img/s':>11s} {'ratio':>6s} "
          f"{'200-ep trial':>13s}", flush=True)
    # Each row printed and saved as soon as it is measured, and a failing variant is one row:
    # a run killed at its time limit or broken by one variant keeps every other number.
    todo = [("baseline", lambda: baseline(data, device, args.steps, args.warmup, args.workers))]
    todo += [(f"engine {v}", lambda v=v: engine(data, device, v)) for v in args.variants]
    for name, build in todo:
        try:
            t, e = measure(*build(), device, args.steps, args.warmup, args.reps,
                           args.eval_images)
        except Exception as err:          # noqa: BLE001 -- reported as the row, run goes on
            rows[name] = {"error": f"{type(err).__name__}: {err}"[:300]}
            print(f"{name:40s} FAILED {rows[name]['error']}", flush=True)
        else:
            base = t if name == "baseline" else base
            ratio = t / base if base else float("nan")     # nan: the baseline failed
            rows[name] = {"train_images_per_s": t, "eval_images_per_s": e,
                          "train_ratio_vs_baseline": ratio,
                          "projected_200_epoch_trial_s": projected_trial_s(t, e)}
            print(f"{name:40s} {t:12.0f} {e:11.0f} {ratio:5.2f}x "
                  f"{rows[name]['projected_200_epoch_trial_s'] / 60:10.1f} min", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1))
    print("\n" + json.dumps(out))
    return 0 if all("error" not in r for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
