"""One registry shape for losses, models and datasets (timm's ``_registry.py`` is the model).

Each kind keeps a ``Registry``: a dict from name to a spec object with ``.name`` and
``.description``, so existing ``NAME in LOSSES`` / ``LOSSES[name]`` / ``sorted(LOSSES)`` callers
keep working, plus the lookups every kind shares: ``names(filter)`` (sorted, fnmatch wildcards
as timm's ``list_models``), ``get_spec(name)`` (ValueError listing the valid names) and
``describe(name)`` (one line). Each package exposes them as ``list_losses()``,
``describe_loss(name)`` and so on.
"""
from __future__ import annotations

import fnmatch


class Registry(dict):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind            # "loss", "model", "dataset": used in error messages

    def add(self, spec):
        """Register ``spec`` under ``spec.name``; a name registered twice is an error."""
        if spec.name in self:
            raise ValueError(f"{self.kind} '{spec.name}' is registered twice")
        self[spec.name] = spec
        return spec

    def get_spec(self, name: str):
        if name not in self:
            raise ValueError(f"unknown {self.kind} '{name}'; choose one of {sorted(self)}")
        return self[name]

    def names(self, filter: str = "") -> list[str]:
        """Sorted registered names, optionally only those matching a wildcard (``"elm*"``)."""
        return sorted(n for n in self if not filter or fnmatch.fnmatchcase(n, filter))

    def describe(self, name: str, width: int = 110) -> str:
        """The first paragraph of ``name``'s description (its docstring, for losses and
        models) on one line, cut to ``width`` characters."""
        para = (self.get_spec(name).description or "").strip().split("\n\n")[0]
        line = " ".join(para.split())
        return line if len(line) <= width else line[:width - 1] + "…"
