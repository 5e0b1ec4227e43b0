"""No import cycle between the modules of a package (issue 19).

Every ``import`` of every project module is read from its AST, function-level imports
included (they are how the code keeps Ray and torch out of light commands, and a cycle
through them still ties two modules together). An edge ``a -> b`` means module ``a`` imports
``b`` (or a name from it) and both belong to the same top-level package; the test fails on
any strongly connected component of more than one module, naming it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("trainables", "search_spaces", "study", "analysis")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}


def imported(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules ``name`` (at ``path``) imports, resolved to the deepest known module."""
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:   # relative import
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = project_modules()
    known = set(mods)
    graph = {}
    for name, path in mods.items():
        pkg = name.split(".")[0]
        # a package's __init__ importing its own submodules is how packages re-export; a
        # submodule importing its package's __init__ is the cycle worth catching, so edges
        # into an __init__ count and edges out of one into its own children do not
        deps = imported(path, name, known)
        if path.name == "__init__.py":
            deps = {d for d in deps if not d.startswith(name + ".")}
        graph[name] = {d for d in deps if d.split(".")[0] == pkg}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_imports():
    """The walker finds real edges (a broken walker would pass the cycle test vacuously)."""
    graph = import_graph()
    assert "trainables.config" in graph["trainables.engine"]
    assert "study.store" in graph["study.cli"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_inside_a_package(package):
    found = [c for c in cycles(import_graph()) if c[0].split(".")[0] == package]
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)
