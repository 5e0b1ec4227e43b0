"""Study files: a whole study on one page of YAML, read into a checked, normalised dict.

    description: imbalance ratio sweep on CIFAR-10-LT
    base: {dataset: cifar10, imb_type: lt, epochs: 200}      # fields every trial shares
    methods: [ce, ldam+drw, elm+drw(lam=0.5), {loss: elm_wo_dy, lam: 1.0}]
    grid: {ratio: [10, 50, 100, 200], seed: 0..2}             # more axes
    resources: {gpus_per_trial: 0.25}
    search: {sampler: tpe, num_samples: 40, metric: val_top1, space: {lam: uniform(0, 1.5)}}
    scheduler: {type: asha, grace_period: 20}

Values: a method is ``LOSS[+drw][(field=value, ...)]`` or a mapping of TrialConfig fields; an
axis is a list, ``a..b`` (integers, both ends included) or ``start:stop:step`` (exact decimals,
both ends included: ``0:1.5:0.1`` is 0.0, 0.1, ..., 1.5). Every problem is a
``StudyFileError`` naming the file and the key (``grid.ratio``, ``methods[2]``...).
"""
from __future__ import annotations

import dataclasses
import re
from decimal import Decimal, DecimalException
from pathlib import Path
from typing import Any

import yaml

from search_spaces.limits import MAX_FILE_BYTES, max_trials, too_many, yaml_nodes
from trainables.config import (LOSS_HPARAMS, RESOURCE_KEYS, RESOURCE_RULES, TrialConfig,
                               coerce_value, field_kinds, parse_value)

TOP_KEYS = ("description", "base", "methods", "grid", "resources", "search", "scheduler")
SEARCH_KEYS = ("sampler", "num_samples", "seed", "metric", "mode", "space")
SAMPLERS = ("tpe", "random")
SCHEDULER_KEYS = ("type", "metric", "mode", "grace_period", "max_t", "reduction_factor")
SCHEDULERS = ("asha",)
DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")
_METHOD_RE = re.compile(r"^(?P<loss>[A-Za-z0-9_]+)(?P<drw>\+drw)?(?:\((?P<args>.*)\))?$")
_DIST_RE = re.compile(r"^(?P<kind>[a-z]+)\((?P<args>.*)\)$")
_INT_RANGE_RE = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*$")


class StudyFileError(ValueError):
    """A study file (or a command-line change to one) that cannot be run: exit 2."""


class _Loader(yaml.SafeLoader):
    """safe_load without YAML 1.1's base-60 numbers (``1:50:10`` would silently be 6610)."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers
         if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float") or ":" not in
         rx.pattern.replace("(?:", "").replace("[-+]", "")]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _tag, _rx, _first in (
        ("tag:yaml.org,2002:int", r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)"
                                  r"|[-+]?0x[0-9a-fA-F_]+)$", "-+0123456789"),
        ("tag:yaml.org,2002:float", r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?"
                                    r"|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)"
                                    r"|\.(?:nan|NaN|NAN)|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+)$",
         "-+0123456789.")):
    _Loader.add_implicit_resolver(_tag, re.compile(_rx), list(_first))


def _fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(TrialConfig) if f.name != "extra"}


class Context:
    """Where a value came from, for error messages: ``Context(file).at('grid', 'ratio')``;
    ``max_trials`` (``--max-trials``; None: the environment's or the default) bounds every size
    read in that context (:mod:`search_spaces.limits`)."""

    def __init__(self, source: str, path: tuple = (), max_trials: int | None = None):
        self.source, self.path, self.max_trials = source, path, max_trials

    def at(self, *keys) -> Context:
        return Context(self.source, self.path + keys, self.max_trials)

    @property
    def limit(self) -> int:
        return max_trials(self.max_trials)

    def check_size(self, what: str, n: int, unit: str = "values") -> None:
        """Refuse ``n`` values (or trials) past the limit, before they are built."""
        msg = too_many(what, n, self.limit, unit)
        if msg:
            self.fail(msg)

    def where(self) -> str:
        text = ""
        for k in self.path:
            text += f"[{k}]" if isinstance(k, int) else (f".{k}" if text and not
                                                          text.startswith("--") else
                                                          (f" {k}" if text else str(k)))
        return f"{self.source}: {text}" if text else self.source

    def fail(self, msg: str):
        raise StudyFileError(f"{self.where()}: {msg}")

    def mapping(self, value, valid: tuple | None = None) -> dict:
        if not isinstance(value, dict):
            self.fail(f"expects a mapping (key: value), got {type(value).__name__} {value!r}")
        if valid is not None:
            bad = sorted(map(str, set(value) - set(valid)))
            if bad:
                self.fail(f"unknown key(s) {bad}; valid keys: {list(valid)}")
        return value


# =========================================================================================
# values
# =========================================================================================
def field_value(ctx: Context, name: str, value: Any) -> Any:
    """One TrialConfig field's value, typed as the field wants (strings parsed as on the CLI)."""
    fields = _fields()
    if name not in fields:
        ctx.fail(f"'{name}' is not a TrialConfig field; valid fields: {sorted(fields)}")
    try:
        if isinstance(value, str):
            return parse_value(name, value)
        value = coerce_value(fields[name], value)
        return list(value) if isinstance(value, tuple) else value
    except ValueError as e:
        ctx.fail(str(e))


def axis_values(ctx: Context, name: str, value: Any) -> list:
    """An axis: a list, ``a..b`` or ``start:stop:step``; each value typed; non-empty, distinct."""
    if name not in _fields():
        ctx.fail(f"'{name}' is not a TrialConfig field; valid fields: {sorted(_fields())}")
    if isinstance(value, str):
        values = parse_range(ctx, value)
    elif isinstance(value, list):
        ctx.check_size("the list has", len(value))
        values = value
    else:
        values = [value]
    if not values:
        ctx.fail("an axis needs at least one value, got an empty list")
    out = [field_value(ctx.at(i) if isinstance(value, list) else ctx, name, v)
           for i, v in enumerate(values)]
    if len({repr(v) for v in out}) != len(out):
        ctx.fail(f"values repeat: {out}")
    return out


def parse_range(ctx: Context, text: str) -> list:
    """``a..b`` (integers) or ``start:stop:step`` (exact decimals), both ends included, or
    ``v1,v2,...`` (the command line's lists); anything else is one value."""
    if "," in text:      # the command line's v1,v2,... (each may be a range itself)
        out: list = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            ctx.check_size(f"{text[:60]!r} has", len(out) + range_length(ctx, part))
            out += parse_range(ctx, part)
        return out
    n = range_length(ctx, text)
    m = _INT_RANGE_RE.match(text)
    if m:
        lo = int(m.group(1))
        return list(range(lo, lo + n))
    if text.count(":") == 2:
        start, _, step = (Decimal(p.strip()) for p in text.split(":"))
        vals = [start + i * step for i in range(n)]
        return [int(v) if v == v.to_integral_value() and "." not in text else float(v)
                for v in vals]
    if ".." in text or text.count(":") == 1:
        ctx.fail(f"malformed range {text!r}; write a..b (integers) or start:stop:step")
    return [text]


def range_length(ctx: Context, text: str) -> int:
    """How many values the range ``text`` holds (1 for a plain value), counted from its ends
    and step without building it; a malformed range, or one longer than the limit, fails."""
    m = _INT_RANGE_RE.match(text)
    if m:
        try:
            lo, hi = int(m.group(1)), int(m.group(2))
        except ValueError:    # past Python's 4300-digit int parsing limit
            ctx.fail(f"range {text[:60]!r}...: an end has too many digits")
        if lo > hi:
            ctx.fail(f"range {text!r} is empty ({lo} > {hi})")
        n = hi - lo + 1
    elif text.count(":") == 2:
        try:
            start, stop, step = (Decimal(p.strip()) for p in text.split(":"))
            if not (step > 0 and stop >= start) or not all(
                    d.is_finite() for d in (start, stop, step)):
                ctx.fail(f"malformed range {text!r}: needs step > 0 and start <= stop")
            count = (stop - start) / step
            if count != count.to_integral_value():
                ctx.fail(f"range {text!r}: step {step} does not land on {stop}")
        except DecimalException:    # unreadable, or too large/small for exact decimals
            ctx.fail(f"malformed range {text!r}; write start:stop:step, e.g. 0:1.5:0.1")
        # compared as a Decimal first: int() of 1E+999999 would take long
        n = int(count) + 1 if count < 10 ** 30 else 10 ** min(count.adjusted(), 10_000)
    else:
        return 1
    ctx.check_size(f"range {text!r} has", n)
    return n


def parse_method(ctx: Context, item: Any) -> dict:
    """``elm+drw(lam=0.5)`` or ``{loss: elm, drw: true, lam: 0.5}`` -> typed TrialConfig fields."""
    from trainables.losses import LOSSES, takes_hparam
    if isinstance(item, str):
        m = _METHOD_RE.match(item.strip())
        if not m:
            ctx.fail(f"cannot read method {item!r}; write LOSS, LOSS+drw or LOSS+drw(k=v, ...),"
                     f" e.g. elm+drw(lam=0.5)")
        fields = {"loss": m.group("loss"), "drw": bool(m.group("drw"))}
        for part in filter(None, (p.strip() for p in (m.group("args") or "").split(","))):
            key, sep, val = part.partition("=")
            if not sep:
                ctx.fail(f"method {item!r}: expected k=v inside the parentheses, got {part!r}")
            fields[key.strip()] = val.strip()
    elif isinstance(item, dict):
        fields = dict(item)
    else:
        ctx.fail(f"a method is a string like 'elm+drw(lam=0.5)' or a mapping, got {item!r}")
    if "loss" not in fields:
        ctx.fail(f"method {item!r} names no loss")
    out = {k: field_value(ctx, k, v) for k, v in fields.items()}
    if out["loss"] not in LOSSES:
        ctx.fail(f"unknown loss '{out['loss']}'; choose one of {sorted(LOSSES)}")
    out.setdefault("drw", False)
    for k in out:
        if k in LOSS_HPARAMS and not takes_hparam(out["loss"], k):
            ctx.fail(f"{k} does not apply to loss '{out['loss']}'; it takes "
                     f"{sorted(LOSSES[out['loss']].defaults) or 'no hyper-parameters'}")
    return out


def parse_distribution(ctx: Context, name: str, text: Any):
    """``uniform(a, b)``, ``loguniform(a, b)``, ``int(a, b)`` (both ends) or ``choice(x, y)``
    over TrialConfig field ``name`` -> (kind, typed args)."""
    fields = _fields()
    if name not in fields:
        ctx.fail(f"'{name}' is not a TrialConfig field; valid fields: {sorted(fields)}")
    m = _DIST_RE.match(text.strip()) if isinstance(text, str) else None
    if not m or m.group("kind") not in DISTRIBUTIONS:
        ctx.fail(f"expects one of {[d + '(...)' for d in DISTRIBUTIONS]}, got {text!r}")
    kind, args = m.group("kind"), [a.strip() for a in m.group("args").split(",") if a.strip()]
    if kind == "choice":
        if not args:
            ctx.fail("choice(...) needs at least one value")
        return kind, [field_value(ctx, name, a) for a in args]
    numeric = {int, float} & field_kinds(fields[name])
    if not numeric or bool in field_kinds(fields[name]):
        ctx.fail(f"{kind}(...) needs a numeric field; '{name}' is not (use choice(...))")
    if kind == "int" and int not in numeric:
        ctx.fail(f"int(...) needs an integer field; '{name}' is a float (use uniform)")
    try:
        lo, hi = (float(a) for a in args)
    except ValueError:
        ctx.fail(f"{kind}(low, high) needs two numbers, got {text!r}")
    if not lo < hi or (kind == "loguniform" and lo <= 0):
        ctx.fail(f"{text!r}: needs low < high" + (" and low > 0" if kind == "loguniform" else ""))
    return kind, ([int(lo), int(hi)] if kind == "int" else [lo, hi])


# =========================================================================================
# the file
# =========================================================================================
def read_study_file(path: str | Path, max_trials: int | None = None) -> dict:
    """Parse and check a study file -> a normalised dict (methods as mappings, axes as lists,
    distributions as [kind, args]); the name is the file's stem."""
    path = Path(path)
    ctx = Context(str(path), max_trials=max_trials)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            ctx.fail(f"{size:,} bytes: a study file is at most {MAX_FILE_BYTES:,} (write long "
                     f"axes as ranges, a..b or start:stop:step)")
        data = _load_yaml(path.read_text())
    except OSError as e:
        ctx.fail(f"cannot read ({e.strerror or e})")
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        ctx.fail(f"not valid YAML{at}: {getattr(e, 'problem', None) or e}")
    except (ValueError, RecursionError) as e:
        ctx.fail(f"refused: {e if isinstance(e, ValueError) else 'it nests too deeply'}")
    return normalise(ctx, data, path.stem)


def _load_yaml(text: str):
    """yaml.load with _Loader, with the document's size counted (aliases expanded) between
    composing and constructing it: an alias bomb is refused before anything walks it."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        yaml_nodes(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def normalise(ctx: Context, data: Any, name: str) -> dict:
    ctx.mapping(data, TOP_KEYS)
    spec = {"name": name, "description": str(data.get("description") or "")}
    spec["base"] = {k: field_value(ctx.at("base", k), k, v)
                    for k, v in ctx.at("base").mapping(data.get("base") or {}).items()}
    methods = data.get("methods")
    if methods is not None:
        if not isinstance(methods, list) or not methods:
            ctx.at("methods").fail(f"expects a non-empty list of methods, got {methods!r}")
        ctx.at("methods").check_size("the list has", len(methods))
        spec["methods"] = [parse_method(ctx.at("methods", i), m) for i, m in enumerate(methods)]
    spec["grid"] = {k: axis_values(ctx.at("grid", k), k, v)
                    for k, v in ctx.at("grid").mapping(data.get("grid") or {}).items()}
    spec["resources"] = _resources(ctx.at("resources"), data.get("resources") or {})
    if data.get("search") is not None:
        spec["search"] = _search(ctx.at("search"), data["search"])
    if data.get("scheduler") is not None:
        spec["scheduler"] = _scheduler(ctx.at("scheduler"), data["scheduler"])
    check_consistent(ctx, spec)
    return spec


def _resources(ctx: Context, data) -> dict:
    ctx.mapping(data, RESOURCE_KEYS)
    for k, v in data.items():       # trainables.config's rules: RunOptions asks them too
        if not RESOURCE_RULES[k].allows(v):
            ctx.at(k).fail(f"expects {RESOURCE_RULES[k].wants}, got {v!r}")
    return dict(data)


def _search(ctx: Context, data) -> dict:
    ctx.mapping(data, SEARCH_KEYS)
    out = {"sampler": data.get("sampler", "tpe"), "num_samples": data.get("num_samples", 20),
           "seed": data.get("seed", 0), "metric": data.get("metric", "val_top1"),
           "mode": data.get("mode", "max")}
    check_search_settings(ctx, out)
    space = ctx.at("space").mapping(data.get("space") or {})
    if not space:
        ctx.at("space").fail("a search needs at least one field to search over")
    out["space"] = {k: list(parse_distribution(ctx.at("space", k), k, v))
                    for k, v in space.items()}
    return out


def check_search_settings(ctx: Context, out: dict) -> None:
    """sampler, num_samples, seed and mode of a search (also after --option changed them)."""
    if out["sampler"] not in SAMPLERS:
        ctx.at("sampler").fail(f"unknown sampler {out['sampler']!r}; choose one of "
                               f"{list(SAMPLERS)}")
    for k in ("num_samples", "seed"):
        v = out[k]
        if isinstance(v, bool) or not isinstance(v, int) or v < (1 if k == "num_samples" else 0):
            ctx.at(k).fail(f"expects an integer >= {1 if k == 'num_samples' else 0}, got {v!r}")
    ctx.at("num_samples").check_size("asks for", out["num_samples"], "trials")
    if out["mode"] not in ("max", "min"):
        ctx.at("mode").fail(f"expects max or min, got {out['mode']!r}")


def _scheduler(ctx: Context, data) -> dict:
    ctx.mapping(data, SCHEDULER_KEYS)
    out = dict(data)
    out.setdefault("type", "asha")
    if out["type"] not in SCHEDULERS:
        ctx.at("type").fail(f"unknown scheduler {out['type']!r}; choose one of "
                            f"{list(SCHEDULERS)}")
    for k in ("grace_period", "max_t"):
        v = out.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            ctx.at(k).fail(f"expects an integer >= 1, got {v!r}")
    rf = out.get("reduction_factor")
    if rf is not None and (isinstance(rf, bool) or not isinstance(rf, (int, float)) or rf <= 1):
        ctx.at("reduction_factor").fail(f"expects a number > 1, got {rf!r}")
    return out


def check_consistent(ctx: Context, spec: dict) -> None:
    """Rules across keys: a loss hyper-parameter axis needs a method that takes it; a search
    has no grid axes or several methods (Optuna samples every axis itself)."""
    from trainables.losses import losses_taking, takes_hparam
    losses = {m["loss"] for m in spec.get("methods") or [{"loss": spec["base"].get(
        "loss", "ce")}]}
    for k in list(spec["grid"]) + list(spec.get("search", {}).get("space", {})):
        if k in LOSS_HPARAMS and not any(takes_hparam(loss, k) for loss in losses):
            where = ctx.at("grid", k) if k in spec["grid"] else ctx.at("search", "space", k)
            where.fail(f"no method of this study takes {k} (losses here: {sorted(losses)}; "
                       f"losses that take it: {losses_taking(k)})")
    if "search" in spec:
        if spec["grid"]:
            ctx.at("grid").fail("a search study cannot also have grid axes (Optuna samples "
                                "every trial); put fixed values in base, run one study per seed")
        if len(spec.get("methods") or []) > 1:
            ctx.at("methods").fail("a search study takes one method (set loss in base)")
    elif "scheduler" in spec:
        ctx.at("scheduler").fail("a scheduler needs a search: section (grids run every trial "
                                 "to the end)")
