"""Where one demo trial's time goes, without Ray: start-up, data, model, each epoch's training
steps, evaluation passes and checkpoints.

    python bench/demo_profile.py [--threads 1] [trainables.run flags ...]
    python bench/demo_profile.py --threads 1 --loss elm --lam 0.5 --drw     # the demo's ELM trial

With no trainables.run flags it profiles the embedded default study's (``quickstart``) first
ELM + DRW trial: its ``base`` from search_spaces/studies/quickstart.yaml, plus ``--loss elm
--lam 0.5 --drw``; flags given replace those. ``--threads`` is torch's intra-op thread count
(a Tune trial with 1 CPU runs with 1). Checkpoints are written as the trial would (every
``checkpoint_every`` epochs and at the end) to a temporary folder. What it does not see is the
Ray side of a study trial (Ray start, the worker process, reporting): a study's console and
``elm-study status`` give those per trial.
"""
from __future__ import annotations

import sys
import time

T_START = time.perf_counter()

import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _read_proc_start() -> float:
    """Seconds from this process's exec to now (Linux /proc; NaN elsewhere)."""
    try:
        import os
        ticks = os.sysconf("SC_CLK_TCK")
        start = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / ticks
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start
    except (OSError, ValueError, IndexError):
        return float("nan")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    since_exec = _read_proc_start()
    threads = 1
    if "--threads" in argv:
        i = argv.index("--threads")
        threads = int(argv[i + 1])
        del argv[i:i + 2]
    t = time.perf_counter()
    import torch
    torch.set_num_threads(threads)
    t_torch = time.perf_counter() - t

    t = time.perf_counter()
    import yaml

    from trainables.checkpoints import write_epoch
    from trainables.data.build import build_data
    from trainables.engine import Trainer, resolve_device
    from trainables.run import build_parser, config_from_args
    t_imports = time.perf_counter() - t

    if not any(a.startswith("--loss") for a in argv):
        argv = ["--loss", "elm", "--lam", "0.5", "--drw"] + argv
    study = Path(__file__).resolve().parent.parent / "search_spaces/studies/quickstart.yaml"
    base = yaml.safe_load(study.read_text())["base"]
    given = {a[2:].split("=")[0].replace("-", "_") for a in argv if a.startswith("--")}
    flags = [x for k, v in base.items() if k not in given
             for x in (f"--{k.replace('_', '-')}", str(v))]
    cfg = config_from_args(build_parser().parse_args(flags + argv))
    device = resolve_device(cfg.device)

    t = time.perf_counter()
    data = build_data(cfg, device)
    t_data = time.perf_counter() - t
    t = time.perf_counter()
    trainer = Trainer(cfg, device=device, data=data)
    t_model = time.perf_counter() - t

    print(f"# {cfg.dataset}-{cfg.imb_type} r={cfg.ratio:g} img_max={cfg.img_max} "
          f"train={sum(data.class_counts)} loss={cfg.loss} drw={cfg.drw} epochs={cfg.epochs} "
          f"eval_every={cfg.eval_every} checkpoint_every={cfg.checkpoint_every} "
          f"val_fraction={cfg.val_fraction} threads={torch.get_num_threads()} "
          f"eval splits={list(trainer.eval_loaders)}", flush=True)
    train_s = eval_s = ckpt_s = 0.0
    n_eval = n_ckpt = 0
    with tempfile.TemporaryDirectory(prefix="demoprof") as tmp:
        for m in trainer.epochs():
            t = time.perf_counter()
            write_epoch(trainer, m, cfg, lambda row, folder: None, folder=tmp)
            dt_ckpt = time.perf_counter() - t
            wrote = cfg.checkpoint_due(m)
            sizes = {"test": len(data.test_y),
                     "val": 0 if data.val_y is None else len(data.val_y)}
            ev = sum(n / m[f"{s}_images_per_s"] for s, n in sizes.items()
                     if m.get(f"{s}_images_per_s"))
            train_s += m["train_time_s"]
            eval_s += ev
            n_eval += ev > 0
            if wrote:
                ckpt_s += dt_ckpt
                n_ckpt += 1
            line = (f"epoch {m['epoch']:3d}  train {m['train_time_s']:6.1f} s "
                    f"({m['train_images_per_s']:5.0f} img/s)")
            if ev:
                line += f"  eval {ev:5.1f} s  test top-1 {m['test_top1']:5.2f}"
            if wrote:
                line += f"  checkpoint {dt_ckpt:4.2f} s"
            print(line, flush=True)
    total = time.perf_counter() - T_START + since_exec
    rows = [("interpreter start (exec to script)", since_exec),
            ("import torch", t_torch), ("import trainables", t_imports),
            ("build data (load + LT subsample)", t_data), ("model, loss, optimiser", t_model),
            (f"training steps ({cfg.epochs} epochs)", train_s),
            (f"evaluation ({n_eval} passes)", eval_s), (f"checkpoints ({n_ckpt})", ckpt_s)]
    print(f"\n{'phase':<38} {'s':>7} {'share':>6}")
    for name, s in rows:
        print(f"{name:<38} {s:7.1f} {100 * s / total:5.1f}%")
    rest = total - sum(s for _, s in rows)
    print(f"{'other (metrics, bookkeeping)':<38} {rest:7.1f} {100 * rest / total:5.1f}%")
    print(f"{'total':<38} {total:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
