"""Template candidates: ``assert <variable> == <observed value>`` for the test's own variables.

A small model often picks the wrong names (it has seen ``result`` and ``expected`` far more
often than this test's ``n``), yet the test already holds the values worth pinning down: the
variables it assigned just before the site. For each of the last few, we offer a template
whose literal is a stand-in; grounding (:mod:`.grounding`) replaces it with the value the run
observes, verification keeps only what passes, and the model's own likelihood of each
template decides between them and its beam candidates. Pure: no pytest, no torch.
"""

from __future__ import annotations

import ast

MAX_TEMPLATES = 4
"""Variables offered per site, most recently assigned first."""

STAND_IN = "0"
"""The literal a template starts with; grounding swaps in the observed value."""


def assigned_names(test_node: ast.AST, before_line: int) -> list[str]:
    """Names the test binds before ``before_line``, most recent binding first, no repeats.

    Covers ``x = ...``, ``x: T = ...``, ``x += ...``, tuple unpacking and ``with ... as x``;
    names bound in nested functions or classes, and ``_``-prefixed names, are left out.
    """
    bindings: list[tuple[int, int, str]] = []
    for node in _walk_own_body(test_node):
        for target in _targets(node):
            for name in ast.walk(target):
                if (isinstance(name, ast.Name) and name.lineno < before_line
                        and not name.id.startswith("_")):
                    bindings.append((name.lineno, name.col_offset, name.id))
    ordered, seen = [], set()
    for _, _, name in sorted(bindings, reverse=True):
        if name not in seen:
            seen.add(name)
            ordered.append(name)
    return ordered


def _walk_own_body(test_node: ast.AST):
    """Every node of the test's body, without descending into nested defs, lambdas or classes."""
    nested_scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
    stack = list(getattr(test_node, "body", []))
    while stack:
        node = stack.pop()
        if isinstance(node, nested_scopes):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return list(node.targets)
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value is not None:
        return [node.target]
    if isinstance(node, ast.withitem) and node.optional_vars is not None:
        return [node.optional_vars]
    if isinstance(node, ast.NamedExpr):
        return [node.target]
    return []


def template_candidates(names: list[str], unittest_style: bool, limit: int = MAX_TEMPLATES) -> list[str]:
    """One groundable assertion per name, in the test's own style."""
    if unittest_style:
        return [f"self.assertEqual({name}, {STAND_IN})" for name in names[:limit]]
    return [f"assert {name} == {STAND_IN}" for name in names[:limit]]


# -- observed state: what the test acted on, not only what it assigned ---------------------
MAX_ATTRIBUTES = 4
"""Public data attributes offered per object."""


def acted_on_names(test_node: ast.AST, before_line: int, bound: frozenset[str]) -> list[str]:
    """Names of the test's own objects that it acted on before the site, most recent first:
    a method call as a statement, its result discarded (``cart.add(...)`` gives ``cart``;
    ``n = cart.count()`` is a query). ``self`` and names the test did not bind (modules,
    classes, functions of the module) are left out."""
    calls: list[tuple[int, int, str]] = []
    for stmt in _walk_own_body(test_node):
        node = stmt.value if isinstance(stmt, ast.Expr) else None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name) and node.lineno < before_line:
            name = node.func.value.id
            if name in bound and name != "self" and not name.startswith("_"):
                calls.append((node.lineno, node.col_offset, name))
    return list(dict.fromkeys(name for _, _, name in sorted(calls, reverse=True)))


def final_call(test_node: ast.AST, before_line: int) -> str | None:
    """Source of the call statement just before the site when its value is discarded
    (``cart.total()`` as a statement): checking that value is what the test left out."""
    statements = [s for s in getattr(test_node, "body", []) if s.lineno < before_line]
    if not statements:
        return None
    last = statements[-1]
    if isinstance(last, ast.Expr) and isinstance(last.value, (ast.Call, ast.Await)):
        call = last.value.value if isinstance(last.value, ast.Await) else last.value
        if isinstance(call, ast.Call) and not _is_check_call(call):
            return ast.unparse(last.value)
    return None


def _is_check_call(call: ast.Call) -> bool:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name.startswith(("assert", "check", "verify", "expect"))


def state_expressions(obj_name: str, obj) -> list[str]:
    """Expressions over one of the test's objects worth pinning: ``len(x)`` of a sized
    container, and up to :data:`MAX_ATTRIBUTES` public data attributes and properties of an
    instance (no callables, no ``_names``). Reads ``vars()`` and the class only: nothing of
    the object runs here."""
    if isinstance(obj, (type, ast.AST)) or callable(obj) or _is_module(obj):
        return []
    found = []
    if hasattr(type(obj), "__len__") and not isinstance(obj, (str, bytes)):
        found.append(f"len({obj_name})")
    attributes = []
    instance_vars = getattr(obj, "__dict__", None)
    if isinstance(instance_vars, dict):
        attributes += [k for k, v in instance_vars.items()
                       if isinstance(k, str) and k.isidentifier() and not k.startswith("_")
                       and not callable(v)]
    for klass in type(obj).__mro__[:-1]:
        attributes += [k for k, v in vars(klass).items()
                       if isinstance(v, property) and not k.startswith("_")]
    found += [f"{obj_name}.{a}" for a in list(dict.fromkeys(attributes))[:MAX_ATTRIBUTES]]
    return found


def _is_module(obj) -> bool:
    import types

    return isinstance(obj, types.ModuleType)


def expression_templates(expressions: list[str], unittest_style: bool) -> list[str]:
    """A groundable assertion per expression, in the test's own style."""
    return template_candidates(expressions, unittest_style, limit=len(expressions))
