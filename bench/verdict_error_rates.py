"""How often the report's verdicts are wrong, and how often they find a real difference: Markdown
tables for docs/statistics.md, by simulation.

    python bench/verdict_error_rates.py [--studies 2000] [--seed 0]

A simulated study has 5 methods and n seeds, top-1 = 70 + a per-seed effect every method
shares (sd 3 points) + per-trial noise (sd 2 points), and is compared as the report compares
one setting: 3 ELM-family methods each against LDAM and against CE, a family of 6
comparisons sharing two baselines. Null studies (all methods identically distributed) give the
false-verdict rates of the old rule (percentile bootstrap per comparison, 10,000 resamples, a
winner where the 95 % interval excludes 0, from 3 seeds on) and of the new one
(analysis/verdicts.py: paired t-test, Holm within the family), under three noise models;
studies where one method is better than the other four by 0.5-3 noise sds give the new rule's
power; the last table is exact: the smallest difference each (seeds, comparisons) can call.
Counted per comparison (the share of comparisons that got a verdict) and per family
(the share of studies with at least one). The last digit moves with --seed.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.verdicts import decide, min_called  # noqa: E402
from bench import cli  # noqa: E402

SEEDS = (3, 5, 10)
NOISE_SD = 2.0
NOISES = {"normal": "normal", "t3": "t, 3 degrees of freedom",
          "collapsed": "normal + one collapsed seed (−30 points)"}
EFFECTS = (0.5, 1.0, 2.0, 3.0)                # true differences, in noise sds
FAMILIES = (1, 2, 6, 22)     # one comparison; ELM vs LDAM and CE; 3 ELMs; Table I's 11 ELMs
A, B = np.array([2, 2, 3, 3, 4, 4]), np.array([0, 1, 0, 1, 0, 1])   # methods 0: LDAM, 1: CE


def scores(rng, studies: int, n: int, noise: str, effect: float = 0.0) -> np.ndarray:
    """Top-1 [study, method, seed]; method 2 is ``effect`` noise sds better than the rest."""
    shape = (studies, 5, n)
    e = NOISE_SD * (rng.standard_t(3, shape) if noise == "t3" else rng.normal(0, 1, shape))
    if noise == "collapsed":         # one diverged trial per study: a random (method, seed)
        e[np.arange(studies), rng.integers(5, size=studies), rng.integers(n, size=studies)] -= 30
    e[:, 2] += effect * NOISE_SD
    return 70 + rng.normal(0, 3, (studies, 1, n)) + e


def old_rule(d: np.ndarray, n_boot: int = 10_000, level: float = 0.95,
             chunk: int = 100) -> np.ndarray:
    """The verdict sign of the replaced rule. As in the old code, every comparison reuses one
    set of resamples (a fixed-seed rng); a resample's mean is the pairs weighted by counts."""
    n = d.shape[-1]
    idx = np.random.default_rng(0).integers(n, size=(n_boot, n))
    weights = (np.stack([np.bincount(i, minlength=n) for i in idx]) / n).T     # [n, n_boot]
    q = [(1 - level) / 2, (1 + level) / 2]
    lo, hi = np.concatenate([np.quantile(d[i:i + chunk] @ weights, q, axis=-1)
                             for i in range(0, len(d), chunk)], axis=1)     # memory: chunks
    return np.where(n >= 3, np.sign(lo) * (np.sign(lo) == np.sign(hi)), 0)


def rates(sign: np.ndarray) -> tuple[float, float]:
    """Verdicts (either direction) per comparison and per family."""
    return float((sign != 0).mean()), float((sign != 0).any(-1).mean())


def false_verdicts(rng, studies: int) -> str:
    lines = ["| noise | seeds | old rule: per comparison | old rule: per family "
             "| new rule: per comparison | new rule: per family |", "|---|---|---|---|---|---|"]
    for noise, words in NOISES.items():
        for n in SEEDS:
            y = scores(rng, studies, n, noise)
            d = y[:, A] - y[:, B]
            cells = [f"{r:.3f}" for r in (*rates(old_rule(d)), *rates(decide(d).sign))]
            lines.append(f"| {words} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def power(rng, studies: int) -> str:
    lines = ["| true difference (noise sds) | in sds of the paired differences | "
             + " | ".join(f"{n} seeds" for n in SEEDS) + " |", "|---|---|" + "---|" * len(SEEDS)]
    for effect in EFFECTS:
        cells = []
        for n in SEEDS:
            y = scores(rng, studies, n, "normal", effect)
            sign = decide(y[:, A] - y[:, B]).sign
            cells.append(f"{(sign[:, :2] == 1).mean():.3f}")  # method 2 vs LDAM, vs CE: found
        lines.append(f"| {effect:g} | {effect / np.sqrt(2):.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reach() -> str:
    """No simulation: the smallest |mean difference| the rule can call (Holm's first step)."""
    lines = ["| seeds | " + " | ".join(f"{m} comparison{'s' * (m > 1)}" for m in FAMILIES)
             + " |", "|---|" + "---|" * len(FAMILIES)]
    lines += [f"| {n} | " + " | ".join(f"{min_called(n, m):.2f}" for m in FAMILIES) + " |"
              for n in (2, *SEEDS)]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = cli.Parser(__file__, description=__doc__.split("\n\n")[0])
    p.add_argument("--studies", type=cli.int_at_least(100), default=2000,
                   help="simulated studies per cell")
    p.add_argument("--seed", type=cli.int_at_least(0), default=0, help="numpy random seed")
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    se = np.sqrt(0.05 * 0.95 / args.studies)
    print(f"{args.studies} simulated studies per cell (numpy seed {args.seed}); a family is "
          "3 methods each vs LDAM and vs CE (6 comparisons); per-trial noise sd "
          f"{NOISE_SD:g} points (t: scale {NOISE_SD:g}). A true rate of 0.05 reads "
          f"0.05 ± {se:.3f} (one standard error).\n")
    print("False verdicts among identically distributed methods:\n")
    print(false_verdicts(rng, args.studies))
    print("\nPower of the new rule, normal noise: the share of the better method's two "
          "comparisons (vs LDAM, vs CE) called for it, in a family of 6:\n")
    print(power(rng, args.studies))
    print("\nThe smallest difference a family can call, in sds of the seed-paired differences "
          "(t_{1-0.05/(2m), n-1} / sqrt(n); exact, no simulation):\n")
    print(reach())
    return 0


if __name__ == "__main__":
    sys.exit(main())
