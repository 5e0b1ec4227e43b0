"""The core of ``trainables`` knows no Ray (issue 19).

(a) The pure core imports in a fresh interpreter where ``import ray`` fails, so a laptop
without Ray can train one trial, read a study and run the analysis. (b) Every module of
``trainables`` that imports ``ray`` (at module level or inside a function: a lazy import
is still a dependency) sits in ``trainables/ray_layer/``, read from the AST.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORE = ("trainables.config", "trainables.engine", "trainables.run", "trainables.checkpoints",
        "trainables.decoupled", "trainables.results", "trainables.metrics", "trainables.losses",
        "trainables.models", "trainables.data", "trainables.methods", "trainables.dist",
        "trainables.faults")
RAY_LAYER = "trainables.ray_layer"


def test_the_core_imports_with_ray_blocked():
    # sys.modules[name] = None makes every `import ray` (and `import ray.x`) raise ImportError
    code = "import sys; sys.modules['ray'] = None; " + "; ".join(f"import {m}" for m in CORE)
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports_ray(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            if any(a.name == "ray" or a.name.startswith("ray.") for a in node.names):
                return True
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                node.module == "ray" or node.module.startswith("ray.")):
            return True
    return False


def test_only_the_ray_layer_imports_ray():
    importing = {_module_name(p) for p in (REPO / "trainables").rglob("*.py")
                 if _imports_ray(ast.parse(p.read_text(), filename=str(p)))}
    outside = sorted(m for m in importing
                     if m != RAY_LAYER and not m.startswith(RAY_LAYER + "."))
    assert not outside, f"modules outside {RAY_LAYER} import ray: {outside}"
    # the walk sees the Ray layer's imports (a walk that found nothing would pass above)
    assert f"{RAY_LAYER}.trainable" in importing and f"{RAY_LAYER}.private" in importing


def test_the_ray_layer_imports_no_package_above_trainables():
    """The Ray layer sits on the core, never under study/ or search_spaces/ or analysis/."""
    bad = []
    for p in (REPO / "trainables" / "ray_layer").rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            mod = node.module if isinstance(node, ast.ImportFrom) else None
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [mod or ""]
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                bad += [f"{_module_name(p)} -> {n}" for n in names
                        if n.split(".")[0] in ("study", "search_spaces", "analysis")]
    assert not bad, bad
