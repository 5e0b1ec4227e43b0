"""Finding Ray-private names in Python source, from its AST (used by tests/test_ray_private.py).

A Ray-private name is an attribute or module of ``ray`` whose name starts with ``_`` (dunders
such as ``__init__`` are Python's, not Ray's). What one module's AST shows of them:

* imports: ``import ray._private.x``, ``from ray.train._internal import y``,
  ``from ray.tune import _z``: any part of the module path, or a name imported, that starts
  with ``_``;
* in a module that touches Ray (imports ``ray`` or anything of ``trainables.ray_layer``,
  function-level imports included): every ``x._name`` read or written on anything but
  ``self``/``cls``/``super()`` of a class of the project's own (a project object's private
  attribute too: the scan cannot tell it from a Ray object's, so such modules keep none);
  every ``getattr``/``setattr``/``hasattr``/``delattr`` with a literal ``"_name"``; every
  keyword argument ``_name=`` in a call;
* in a subclass of a Ray class (a base whose name comes from an import from ``ray`` or from
  ``trainables.ray_layer``, which hands out Ray classes, directly or through assignments such
  as ``base = wrap_function(fn)``): every ``self._name``/``cls._name`` and every method or class
  attribute named ``_name``. The project's own members of such a class cannot be told apart
  from the base's private ones, so they take names without ``_``.

What it cannot see: a Ray object handed to a module that touches no Ray (its ``obj._x`` looks
like any project object's); names built at run time (``getattr(obj, "_" + n)``, ``vars(obj)``,
``obj.__dict__["_x"]``); private keyword arguments passed as ``**{"_x": ...}``; public-looking
attributes of Ray's private classes (``MLflowLoggerCallback.mlflow_util`` is a
``_MLflowLoggerUtil``); Ray classes reached through a chain it does not follow (a Ray class
returned by a project function outside ``trainables.ray_layer`` and subclassed elsewhere);
code outside the files it is given (tests, notebooks, strings run by ``python -c``).
"""
from __future__ import annotations

import ast
from pathlib import Path

RAY_ROOTS = ("ray",)
RAY_LAYER = "trainables.ray_layer"
ATTR_FUNCS = ("getattr", "setattr", "hasattr", "delattr")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _from_ray(module: str) -> bool:
    return module.split(".")[0] in RAY_ROOTS


def _ray_derived(tree: ast.AST) -> set[str]:
    """Names a module binds to Ray things: imported from ``ray`` or the Ray layer, or assigned
    from an expression built on such a name (to a fixed point; scopes are not told apart)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names
                      if _from_ray(a.name) or a.name.startswith(RAY_LAYER)}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                _from_ray(node.module) or node.module.startswith(RAY_LAYER)):
            names |= {a.asname or a.name for a in node.names}
    assigns = [n for n in ast.walk(tree) if isinstance(n, ast.Assign)]
    while True:
        grown = {t.id for n in assigns for t in n.targets if isinstance(t, ast.Name)
                 and {m.id for m in ast.walk(n.value) if isinstance(m, ast.Name)} & names}
        if grown <= names:
            return names
        names |= grown


def _root(expr: ast.AST) -> str | None:
    while isinstance(expr, (ast.Attribute, ast.Call, ast.Subscript)):
        expr = expr.func if isinstance(expr, ast.Call) else expr.value
    return expr.id if isinstance(expr, ast.Name) else None


def _touches_ray(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
                _from_ray(a.name) or a.name.startswith(RAY_LAYER) for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                _from_ray(node.module) or node.module.startswith(RAY_LAYER)):
            return True
    return False


def _import_reads(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names
                if _from_ray(a.name) and any(_private(p) for p in a.name.split("."))]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
            _from_ray(node.module):
        return [f"{node.module}.{a.name}" for a in node.names
                if any(_private(p) for p in node.module.split(".")) or _private(a.name)]
    return []


def _ray_classes(tree: ast.AST, derived: set[str]) -> list[ast.ClassDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)
            and any(_root(b) in derived for b in n.bases)]


def _own_receiver(expr: ast.AST) -> bool:
    """``self``, ``cls`` or ``super()``: the receiver inside a method of its own class."""
    return (isinstance(expr, ast.Name) and expr.id in ("self", "cls")) or (
        isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name)
        and expr.func.id == "super")


def _member_reads(cls: ast.ClassDef) -> list[tuple[int, str]]:
    """Private names a subclass of a Ray class uses as its members (see the module doc)."""
    out = []
    for node in ast.walk(cls):
        if isinstance(node, ast.Attribute) and _private(node.attr) and _own_receiver(
                node.value):
            out.append((node.lineno, f"{ast.unparse(node.value)}.{node.attr}"))
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _private(node.name):
            out.append((node.lineno, f"{cls.name}.{node.name} (a method)"))
        targets = node.targets if isinstance(node, ast.Assign) else [
            node.target] if isinstance(node, ast.AnnAssign) else []
        out += [(node.lineno, f"{cls.name}.{t.id} (a class attribute)") for t in targets
                if isinstance(t, ast.Name) and _private(t.id)]
    return out


def _other_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """In a module that touches Ray: private attributes on anything but a project class's own
    ``self``/``cls``/``super()``, literal private names given to getattr & co., private
    keyword arguments (see the module doc)."""
    out = []
    for node in ast.walk(tree):
        # self._x in a Ray subclass is _member_reads' (in a project class: its own member)
        if isinstance(node, ast.Attribute) and _private(node.attr) and not _own_receiver(
                node.value):
            out.append((node.lineno, f"{ast.unparse(node.value)}.{node.attr}"))
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id in ATTR_FUNCS and \
                    len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and \
                    isinstance(node.args[1].value, str) and _private(node.args[1].value):
                out.append((node.lineno, f"{node.func.id}(..., {node.args[1].value!r})"))
            out += [(node.lineno, f"{ast.unparse(node.func)}({k.arg}=...)")
                    for k in node.keywords if k.arg and _private(k.arg)]
    return out


def private_reads(path: Path) -> list[tuple[int, str]]:
    """(line, what) of every Ray-private name the module at ``path`` is seen to use."""
    tree = ast.parse(path.read_text(), str(path))
    found = [(n.lineno, f"import {name}") for n in ast.walk(tree) for name in _import_reads(n)]
    if _touches_ray(tree):
        classes = _ray_classes(tree, _ray_derived(tree))
        for cls in classes:
            found += _member_reads(cls)
        found += _other_reads(tree)
    return sorted(set(found))
