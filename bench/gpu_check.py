"""GPU check: what the project does on CUDA, measured on a lent GPU machine as it is.

    python3 bench/gpu_check.py --out DIR [--quick] [--budget-s 330]
    python3 bench/gpu_check.py --out DIR --device cpu --tiny      # the CPU rehearsal (tests)

Runs with the machine's own interpreter and torch (>= 2.11), installs nothing and imports
nothing of Ray, Optuna or the analysis stack: the lent machine has no network and none of
them. Every step is a subprocess in its own process group, killed with its whole group at its
limit (a hung CUDA call, a compile worker, a packing bench's children); each step's JSON is
written to DIR/steps/ as soon as the step ends, so a kill keeps what finished; the summary
table is printed last (and written to DIR/summary.md). The whole run stays within
``--budget-s`` (default 330 s: two tries and two machine starts fit 15 minutes of device
time); a step that no longer fits is skipped and says so. In order:

1. right on CUDA: the CUDA tests (modules that import neither Ray nor Optuna), a short trial
   per precision (fp32, bf16 + channels_last, + compile), bench/cuda_correctness.py (a pack of
   3 vs the 3 trials alone in float64 and fp32, bf16 vs fp32 losses, a CUDA checkpoint resumed
   on CUDA and on the CPU);
2. one trial: bench/train_throughput.py (the reference loop vs the engine's variants);
3. launch-bound?: bench/cuda_graph.py (a ResNet32 step and a pack of 4, eager vs CUDA graph);
4. packs: bench/packing.py, K = 1, 4, 16, fp32 NCHW and bf16 NHWC, peak memory per K;
5. Table I on this card: its projected wall time from the best measured rates.

Exits 0 if every step passed, 1 otherwise, 2 with one line when CUDA is asked for and absent.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROG = "bench/gpu_check.py"
# test modules importing any of these cannot run on the lent machine (or need a cluster)
NOT_THERE = {"ray", "optuna", "study", "search_spaces", "analysis", "umap", "sklearn",
             "mlflow", "tensorboardX", "filelock", "yaml_include"}
# Table I: 480 trials (8 settings x 20 methods x 3 seeds), 200 epochs, an evaluation on the
# 10,000 test images every epoch. Training images per epoch of each setting (docs/data.md).
TABLE1_TRIALS_PER_SETTING, TABLE1_EPOCHS, TEST_IMAGES = 60, 200, 10_000
TABLE1_TRAIN_IMAGES = {"CIFAR-10-LT r=10": 20_431, "CIFAR-10-LT r=100": 12_406,
                       "CIFAR-100-LT r=10": 19_573, "CIFAR-100-LT r=100": 10_847,
                       "CIFAR-10-step r=10": 27_500, "CIFAR-10-step r=100": 25_250,
                       "CIFAR-100-step r=10": 27_500, "CIFAR-100-step r=100": 25_250}


@dataclass
class Step:
    name: str
    cmd: list[str]
    limit_s: float
    result: Path | None = None             # the JSON the step writes, read into its record
    env: dict = field(default_factory=dict)


# =========================================================================================
# running one step: its own process group, killed whole at its limit
# =========================================================================================
def kill_group(pgid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        time.sleep(2 if sig == signal.SIGTERM else 0)


def run_step(step: Step, log: Path, limit: float) -> tuple[str, float]:
    """(status, seconds). The step's group is killed at ``limit`` and also after a normal exit
    (a child it left behind would hold the GPU for the next step)."""
    t = time.monotonic()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **step.env}
    with open(log, "w") as fh:
        proc = subprocess.Popen(step.cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=limit)
            status = "ok" if rc == 0 else f"FAIL rc={rc}"
        except subprocess.TimeoutExpired:
            status = f"FAIL killed at {limit:.0f}s"
        kill_group(proc.pid)
        proc.wait()
    return status, time.monotonic() - t


def tail(log: Path, n: int = 1) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return " | ".join(lines[-n:])[:160]


# =========================================================================================
# the steps
# =========================================================================================
def cuda_test_modules() -> list[str]:
    """Test modules with CUDA tests whose imports the lent machine has (AST, not a list that
    goes stale): none of NOT_THERE at any level of the module."""
    found = []
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        text = path.read_text()
        if "cuda" not in text or path.name == "test_gpu_check.py":   # not this check itself
            continue
        roots = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                roots |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                roots.add(node.module.split(".")[0])
        if not roots & NOT_THERE:
            found.append(str(path.relative_to(REPO)))
    return found


def plan(out: Path, device: str, quick: bool, tiny: bool) -> list[Step]:
    py, s = sys.executable, out / "results"
    s.mkdir(parents=True, exist_ok=True)
    steps = [Step("CUDA tests", [py, "-m", "pytest", "-q", "-k", "cuda", "-p",
                                 "no:cacheprovider", *cuda_test_modules()], 120)]
    size = ["--img-max", "20", "--epochs", "1"] if tiny else ["--epochs", "2"]
    trials = {"fp32": ["--precision", "fp32", "--no-channels-last"],
              "bf16+channels_last": ["--precision", "bf16", "--channels-last"],
              "bf16+channels_last+compile": ["--precision", "bf16", "--channels-last",
                                             "--compile"]}
    # the compile trial: a GPU's inductor compiles in seconds, a CPU's C++ build takes minutes
    for name, flags in list(trials.items())[:1 if quick else 2 if tiny else 3]:
        d = s / f"trial_{re.sub(r'[^a-z0-9]+', '_', name)}"
        steps.append(Step(f"trial {name}", [
            py, "-m", "trainables.run", "--dataset", "synthetic", "--ratio", "10", "--loss",
            "elm", "--lam", "0.5", "--drw", "--batch-size", "128", "--device", device,
            "--out", str(d), *size, *flags], 150 if "compile" in name else 60, d / "metrics.jsonl"))
    checks = "pack64,resume" if quick else "pack64,pack32,bf16,resume"
    steps.append(Step("correctness", [py, "bench/cuda_correctness.py", "--device", device,
                                      "--checks", "pack32,bf16,resume" if tiny else checks,
                                      *(["--img-max", "10", "--steps", "1"] if tiny else []),
                                      "--json", str(s / "correctness.json")],
                      90, s / "correctness.json"))
    if not quick:
        steps.append(Step("one trial: throughput", [
            py, "bench/train_throughput.py", "--device", device, "--json",
            str(s / "throughput.json"), *(["--steps", "1", "--reps", "1", "--warmup", "0",
                                           "--eval-images", "100", "--variants", "fp32"]
                                          if tiny else ["--steps", "30", "--reps", "3"])],
            120, s / "throughput.json"))
    steps.append(Step("launch-bound? CUDA graph", [
        py, "bench/cuda_graph.py", "--device", device, "--json", str(s / "cuda_graph.json"),
        *(["--batch-size", "8", "--ks", "1", "--steps", "1", "--warmup", "0"] if tiny else
          ["--ks", "1" if quick else "1,4"])], 60, s / "cuda_graph.json"))
    ks = "1,2" if tiny else "1,4" if quick else "1,4,16"
    for variant in ["fp32"] + ([] if quick or tiny else ["bf16+channels_last"]):
        j = s / f"packing_{variant.replace('+', '_')}.json"
        steps.append(Step(f"packs {variant}", [
            py, "bench/packing.py", "--device", device, "--variant", variant, "--ks", ks,
            "--json", str(j), "--timeout-s", "100",
            *(["--steps", "1", "--warmup", "0", "--batch-size", "16"] if tiny else
              ["--steps", "30", "--warmup", "5"])], 120, j))
    return steps


def read_result(step: Step):
    if step.result is None or not step.result.exists():
        return None
    text = step.result.read_text()
    if step.result.suffix == ".jsonl":
        return [json.loads(ln) for ln in text.splitlines() if ln.strip()][-1]
    return json.loads(text)


def detail(step: Step, result) -> str:
    """One line of what a step found, for the table."""
    if result is None:
        return ""
    if step.name.startswith("trial"):
        return (f"top-1 {result.get('test_top1', float('nan')):.1f}, "
                f"{result.get('train_images_per_s', float('nan')):.0f} train img/s")
    if step.name == "correctness":
        return "; ".join(f"{k} {v['status']}" for k, v in result.items())
    if "variants" in result:
        return "; ".join(f"{k.replace('engine ', '')} " + (
            "FAILED" if "error" in v else f"{v['train_images_per_s']:.0f}")
            for k, v in result["variants"].items())
    if step.name.startswith("launch"):
        return "; ".join(f"K={r['k']} " + ("FAILED" if "error" in r else
                         f"graph/eager {r['graph_vs_eager']:.2f}x" if "graph_vs_eager" in r
                         else f"eager {r['eager_images_per_s']:.0f} img/s")
                         for r in result["rows"])
    if "rows" in result:
        return "; ".join(f"K={k} pack {v['pack']['images_per_s']:.0f} / separate "
                         f"{v['separate']['images_per_s']:.0f} img/s"
                         for k, v in result["rows"].items())
    return ""


# =========================================================================================
# Table I on this card
# =========================================================================================
def projection(records: list[dict]) -> dict | None:
    """Table I's wall time at the best measured aggregate train rate (one trial, K separate
    trials or a pack of K) and the best measured evaluation rate, arithmetic shown."""
    train, evals = [], []
    for r in records:
        res = r.get("result") or {}
        for k, v in (res.get("variants") or {}).items():
            if "error" not in v:
                train.append((v["train_images_per_s"], f"one trial, {k}"))
                evals.append(v["eval_images_per_s"])
        packs = res.get("rows")
        if isinstance(packs, dict):       # bench/packing.py's K -> row (cuda_graph's is a list)
            for k, v in packs.items():
                for how in ("separate", "pack"):
                    train.append((v[how]["images_per_s"], f"{how} K={k}, {res.get('variant')}"))
    if not train or not evals:
        return None
    rate, how = max(train)
    eval_rate = max(evals)
    images = TABLE1_TRIALS_PER_SETTING * TABLE1_EPOCHS * sum(TABLE1_TRAIN_IMAGES.values())
    tested = TABLE1_TRIALS_PER_SETTING * len(TABLE1_TRAIN_IMAGES) * TABLE1_EPOCHS * TEST_IMAGES
    hours = (images / rate + tested / eval_rate) / 3600
    return {"train_images": images, "train_rate": rate, "train_setting": how,
            "eval_images": tested, "eval_rate": eval_rate, "hours": hours,
            "arithmetic": (f"train: 60 trials x 200 epochs x {sum(TABLE1_TRAIN_IMAGES.values()):,}"
                           f" images (8 settings) = {images:,} at {rate:,.0f} img/s ({how}); "
                           f"eval: 480 x 200 x 10,000 = {tested:,} at {eval_rate:,.0f} img/s "
                           f"(one process); total {hours:.1f} h on this card")}


# =========================================================================================
# main
# =========================================================================================
def hang_instead(step: Step, out: Path) -> None:
    """Test hook: the step becomes a parent and a child that both sleep (the child's pid in
    DIR/hang.pid), to show a hung step is killed with its group at its limit."""
    code = ("import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', "
            "'import time; time.sleep(3600)']); open(sys.argv[1], 'w').write(str(c.pid)); "
            "time.sleep(3600)")
    step.cmd, step.limit_s = [sys.executable, "-c", code, str(out / "hang.pid")], 5


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for logs, JSON and the summary")
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (a rehearsal)")
    p.add_argument("--quick", action="store_true", help="a subset for a second try")
    p.add_argument("--tiny", action="store_true", help="tiny sizes (the CPU rehearsal)")
    p.add_argument("--budget-s", type=float, default=330, help="the whole run's time limit")
    p.add_argument("--only", help="comma-separated parts of step names: run just those "
                                  "(e.g. a second try of what failed: --only packs,graph)")
    p.add_argument("--hang-step", help=argparse.SUPPRESS)       # tests only
    args = p.parse_args(argv)
    import torch
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.exit(2, f"{PROG}: error: no CUDA device (torch {torch.__version__}, built for CUDA "
                  f"{torch.version.cuda}: torch.cuda.is_available() is False); use --device "
                  "cpu for a rehearsal\n")
    out = Path(args.out)
    (out / "steps").mkdir(parents=True, exist_ok=True)
    where = (torch.cuda.get_device_name(args.device) if args.device.startswith("cuda")
             else "CPU")
    head = f"# {where}, torch {torch.__version__} (CUDA {torch.version.cuda}), python " \
           f"{sys.version.split()[0]}; budget {args.budget_s:.0f} s; out {out}"
    print(head, flush=True)
    deadline, records = time.monotonic() + args.budget_s, []
    steps = plan(out, args.device, args.quick, args.tiny)
    if args.only:
        wanted = [w.strip().lower() for w in args.only.split(",") if w.strip()]
        steps = [st for st in steps if any(w in st.name.lower() for w in wanted)]
        if not steps:
            p.error(f"argument --only: {args.only!r} names no step")
    for i, step in enumerate(steps):
        if args.hang_step and args.hang_step.lower() in step.name.lower():
            hang_instead(step, out)
        left = deadline - time.monotonic()
        log = out / "steps" / f"{i:02d}.log"
        if left < 15:
            status, secs = "skipped (budget)", 0.0
        else:
            status, secs = run_step(step, log, min(step.limit_s, left))
        try:
            result = read_result(step)
        except (OSError, ValueError) as e:
            result, status = None, f"{status}; unreadable result: {e}"[:60]
        rec = {"name": step.name, "status": status, "seconds": round(secs, 1),
               "limit_s": step.limit_s, "cmd": step.cmd, "log": str(log), "result": result,
               "detail": detail(step, result) or (tail(log) if log.exists() else "")}
        (out / "steps" / f"{i:02d}.json").write_text(json.dumps(rec, indent=1))
        records.append(rec)
        print(f"{step.name}: {status} ({secs:.0f} s)", flush=True)
    proj = projection(records)
    lines = [head, "", "| step | status | time | detail |", "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['status']} | {r['seconds']:.0f} s | {r['detail']} |"
              for r in records]
    if proj:
        lines += ["", f"Table I on this card: {proj['arithmetic']}"]
        (out / "steps" / "projection.json").write_text(json.dumps(proj, indent=1))
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines[1:]), flush=True)
    return 0 if all(r["status"] == "ok" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
