"""Find a test's focal function at runtime: the test module is imported, so names resolve.

Preference, as in the miner: the call whose result is assigned to a name and is nearest
before the assertion site; else the last call that resolves to code defined outside test
files. Calls on a local built by ``x = SomeClass(...)`` resolve to ``SomeClass``'s method.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import logging
import sysconfig
import textwrap
from dataclasses import dataclass

from distillation.assertions import dotted_name
from distillation.mining.symbols import MAX_FOCAL_LINES  # the miner's cut: same inputs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Focal:
    """The function under test, as the model sees it."""

    name: str
    source: str


def resolve_focal(test_node: ast.AST, before_line: int, namespace: dict) -> Focal | None:
    """The focal function for the site at ``before_line`` (calls on later lines are ignored)."""
    calls = _calls_before(test_node, before_line)
    local_types = _local_types(test_node, namespace)
    resolved = []
    for call, assigned in calls:
        obj = _resolve(call.func, namespace, local_types)
        if obj is not None:
            resolved.append((obj, assigned, _dotted(call.func)))
    ranked = [r for r in resolved if not _in_test_file(r[0])] or resolved
    preferred = [r for r in ranked if r[1]] or ranked
    for obj, _, name in reversed(preferred):
        source = _source_of(obj)
        if source:
            return Focal(name=name, source=source)
    return None


def _calls_before(test_node: ast.AST, before_line: int) -> list[tuple[ast.Call, bool]]:
    """``(call, result_assigned_to_a_name)`` in source order, nested defs skipped."""
    out: list[tuple[ast.Call, bool]] = []
    for stmt in ast.walk(test_node):
        if not isinstance(stmt, ast.stmt) or stmt is test_node:
            continue
        if getattr(stmt, "lineno", before_line) >= before_line and before_line > 0:
            continue
        assigned_value = stmt.value if isinstance(stmt, (ast.Assign, ast.AnnAssign)) else None
        for child in _own_expressions(stmt):
            for node in ast.walk(child):
                if isinstance(node, ast.Call):
                    out.append((node, node is assigned_value))
    out.sort(key=lambda pair: (pair[0].lineno, pair[0].col_offset))
    return out


def _own_expressions(stmt: ast.stmt) -> list[ast.AST]:
    """The expressions of a statement itself, not of the statements nested in it."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return []
    return [value for name, value in ast.iter_fields(stmt)
            if name not in ("body", "orelse", "finalbody", "handlers", "cases")
            and isinstance(value, ast.AST)] + [
        v for name, values in ast.iter_fields(stmt)
        if name in ("targets", "items") and isinstance(values, list)
        for v in values if isinstance(v, ast.AST)]


def _local_types(test_node: ast.AST, namespace: dict) -> dict[str, type]:
    """Locals assigned from a class call: ``cart = Cart()`` -> ``{"cart": Cart}``."""
    types: dict[str, type] = {}
    for node in ast.walk(test_node):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            obj = _resolve(node.value.func, namespace, {})
            if isinstance(obj, type):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        types[target.id] = obj
    return types


def _resolve(func: ast.expr, namespace: dict, local_types: dict[str, type]):
    """The object a call's func expression names, or None (builtins and unknowns)."""
    parts = _dotted(func).split(".") if _dotted(func) else []
    if not parts:
        return None
    head, rest = parts[0], parts[1:]
    if head in local_types:
        obj = local_types[head]
    elif head in namespace:
        obj = namespace[head]
    else:
        return None  # builtins, locals, fixtures, self
    if obj is getattr(builtins, head, None) and not rest:
        return None
    for attr in rest:
        try:
            obj = inspect.getattr_static(obj, attr)
        except AttributeError:
            return None
        obj = getattr(obj, "__func__", obj)  # staticmethod / classmethod
    if not (inspect.isfunction(obj) or inspect.isclass(obj)) or _is_library(obj):
        return None
    return obj


def _is_library(obj) -> bool:
    """Standard library and installed packages are never the code under test."""
    try:
        path = inspect.getsourcefile(obj) or ""
    except TypeError:
        return True
    stdlib = sysconfig.get_paths()["stdlib"]
    return "site-packages" in path or path.startswith(stdlib)


def _dotted(expr: ast.expr) -> str:
    return dotted_name(expr) or ""


def _in_test_file(obj) -> bool:
    module = getattr(obj, "__module__", "") or ""
    leaf = module.rsplit(".", 1)[-1]
    return leaf.startswith("test_") or leaf.endswith("_test") or leaf == "conftest"


def _source_of(obj) -> str | None:
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):
        return None
    lines = textwrap.dedent(source).splitlines()[:MAX_FOCAL_LINES]
    return "\n".join(lines)
