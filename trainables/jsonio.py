"""Strict JSON: what the project writes is RFC 8259 JSON (``jq``, JavaScript and every strict
parser read it), so non-finite floats become ``null``; readers still accept older files that
carry Python's ``NaN``/``Infinity`` literals."""
from __future__ import annotations

import json
import math


def finite_or_none(obj):
    """``obj`` with every NaN/±inf float (also inside dicts, lists, tuples) replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


def dumps_strict(obj, **kwargs) -> str:
    """``json.dumps`` that writes ``null`` for NaN/±inf and refuses to write anything else
    that is not JSON (``allow_nan=False`` catches what the conversion does not reach, e.g.
    a NaN produced by ``default=``)."""
    return json.dumps(finite_or_none(obj), allow_nan=False, **kwargs)
