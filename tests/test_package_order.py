"""The packages import each other in one direction only (issue 38; docs/architecture.md).

The order, lowest first: ``trainables`` (one trial) <- ``search_spaces`` and ``analysis``
(neither imports the other) <- ``study`` (the launcher: it counts and reports through
``analysis``) <- ``bench`` (scripts; nothing imports it). A package may import only those
below it. Edges are read with the import-cycle test's AST walk (tests/test_import_cycles.py),
function-level imports included: a lazy import is how light commands keep heavy packages out,
and it still ties the importer to what it imports. What the walk cannot see: imports built
from strings (``importlib.import_module(name)``, registry entries such as
``"trainables.data.cifar:read_cifar10"``), ``python -m`` subprocesses, and code outside the
five packages (tests, notebooks).
"""
from __future__ import annotations

from pathlib import Path

from test_import_cycles import REPO, imported

ALLOWED = {
    "trainables": set(),
    "search_spaces": {"trainables"},
    "analysis": {"trainables"},
    "study": {"trainables", "search_spaces", "analysis"},
    "bench": {"trainables", "search_spaces", "analysis", "study"},
}


def package_modules(root: Path = REPO) -> dict[str, Path]:
    """Dotted name -> file of every module of the packages under ``root``."""
    out = {}
    for pkg in ALLOWED:
        for path in (root / pkg).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def package_edges(modules: dict[str, Path]) -> dict[tuple[str, str], list[str]]:
    """(importing package, imported package) -> 'module -> module' lines, between packages."""
    known, out = set(modules), {}
    for name, path in sorted(modules.items()):
        for dep in sorted(imported(path, name, known)):
            a, b = name.split(".")[0], dep.split(".")[0]
            if a != b:
                out.setdefault((a, b), []).append(f"{name} -> {dep}")
    return out


def against_order(edges: dict[tuple[str, str], list[str]]) -> list[str]:
    return [line for (a, b), lines in sorted(edges.items()) if b not in ALLOWED[a]
            for line in lines]


def test_the_order_is_an_order_over_every_package():
    """Every top-level package is placed, and the allowed imports hold no cycle."""
    assert {p.parent.name for p in REPO.glob("*/__init__.py")} == set(ALLOWED)
    placed: set[str] = set()
    while placed != set(ALLOWED):
        ready = {p for p, deps in ALLOWED.items() if p not in placed and deps <= placed}
        assert ready, f"the allowed imports form a cycle: {ALLOWED}"
        placed |= ready


def test_no_package_imports_against_the_order():
    edges = package_edges(package_modules())
    # the walk sees the edges the map states, lazy ones included (a blind walk would pass)
    assert "study.summary -> analysis.collect" in edges[("study", "analysis")]   # in a function
    assert ("search_spaces", "trainables") in edges and ("analysis", "trainables") in edges
    bad = against_order(edges)
    assert not bad, "imports against the package order (docs/architecture.md):\n  " + \
        "\n  ".join(bad)


def test_a_lazy_reverse_import_is_caught(tmp_path):
    """A function-level ``from study import cli`` inside trainables, in a copy of the layout:
    the check names it, and only it."""
    for pkg in ALLOWED:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "study" / "cli.py").write_text("import trainables.core\n")
    (tmp_path / "trainables" / "core.py").write_text("def f():\n    from study import cli\n")
    assert against_order(package_edges(package_modules(tmp_path))) == [
        "trainables.core -> study", "trainables.core -> study.cli"]   # the package, its module
