"""The paper's method rows: label <-> (loss, drw, λ). Shared by the trial labels (results,
dashboard), the study planner and analysis.

A *method* is a small dict of TrialConfig fields (``loss``, ``drw``, hyper-parameters) that a
study grids over as one axis, so λ only varies where it means something.
"""
from __future__ import annotations

_BASE_LABELS = {"ce": "CE", "lmsce": "LMSCE", "focal": "Focal", "eqlv2": "Equalization v2",
                "ib_focal": "IB Focal", "ib": "IB", "ldam": "LDAM", "mm_ldam": "MM-LDAM",
                "elm": "ELM", "elm_wo_dy": "ELM w/o Δy", "logit_adjust": "LA",
                "balanced_softmax": "Balanced Softmax"}
# The ELM family: the losses that take λ, the weight of the hardest negative's margin (a test
# checks it against the loss registry). Labels, the λ-ablation figure and the verdicts use it.
ELM_FAMILY = ("elm", "elm_wo_dy")


def base_label(loss: str, drw: bool = False) -> str:
    """The row label without λ, e.g. ``base_label('elm', True) == 'ELM + DRW'``."""
    return _BASE_LABELS.get(loss, loss) + (" + DRW" if drw else "")


def method_label(loss: str, drw: bool = False, lam: float | None = None) -> str:
    """The paper's row label, e.g. ``method_label('elm', True, 0.5) == 'ELM + DRW (λ=0.5)'``.

    For ELM-family losses ``lam=None`` means the default λ=1.0."""
    label = base_label(loss, drw)
    if loss in ELM_FAMILY:
        lam = 1.0 if lam is None else float(lam)
        label += f" (λ={lam:.1f})" if lam == int(lam) else f" (λ={lam:g})"   # 1.0, 0.5, 0.25
    return label


def method(loss: str, drw: bool = False, **hparams) -> dict:
    """A method dict: TrialConfig fields for one row."""
    return {"loss": loss, "drw": drw, **hparams}


# Table I's 20 rows, in the paper's order. MM-LDAM uses its own defaults (s=19, max_m=1.29,
# γ=1.528, no LDAM margin), which live in the loss registry. These lists are the definition
# (analysis orders the tables by them); the study files search_spaces/studies/table1.yaml,
# table2.yaml and table3.yaml spell the same rows out so that each stays a readable, copyable
# study, and tests/search_spaces/test_paper_methods.py fails when they disagree.
TABLE1_METHODS = (
    [method("ce"), method("lmsce"), method("focal"), method("eqlv2"), method("ib_focal"),
     method("ldam"), method("mm_ldam"), method("ldam", True), method("mm_ldam", True)]
    + [method("elm_wo_dy", lam=v) for v in (1.0, 0.5, 0.1)]
    + [method("elm", lam=v) for v in (1.2, 1.0, 0.5, 0.1)]
    + [method("elm", True, lam=v) for v in (1.2, 1.0, 0.5, 0.1)]
)
# Tables II/III's 15 rows (no ELM w/o Δy, no λ=1.2).
TABLE23_METHODS = (
    TABLE1_METHODS[:9]
    + [method("elm", lam=v) for v in (1.0, 0.5, 0.1)]
    + [method("elm", True, lam=v) for v in (1.0, 0.5, 0.1)]
)


def label_of(m: dict) -> str:
    return method_label(m["loss"], m.get("drw", False), m.get("lam"))


def flatten_trial(config: dict) -> dict:
    """A Tune trial config -> TrialConfig fields: ``base`` first, then top-level axes, then the
    ``method`` dict (so a method's loss hyper-parameters win)."""
    out = dict(config.get("base", {}))
    out.update({k: v for k, v in config.items() if k not in ("base", "method")})
    out.update(config.get("method", {}))
    return out


def trial_name(config: dict, trial_id: str = "") -> str:
    """'ELM + DRW (λ=0.5) seed 1 [3a7c1_00002]': what the dashboard, log prefixes and the
    loggers' run names show for a Tune trial config."""
    seed = flatten_trial(config or {}).get("seed")
    return f"{config_label(config)} seed {seed}" + (f" [{trial_id}]" if trial_id else "")


def config_label(config: dict) -> str:
    """'ELM + DRW (λ=0.5)': the method label of a Tune trial config (trial_name without the
    seed: what callers that want the method alone use, rather than cutting a name apart)."""
    flat = flatten_trial(config or {})
    return method_label(flat.get("loss", "?"), bool(flat.get("drw", False)), flat.get("lam"))
