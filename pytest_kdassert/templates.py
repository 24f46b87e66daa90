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
