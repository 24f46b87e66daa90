"""What counts as an assertion, and its normal form.

Shared by the miner (which masks assertions), the benchmark (which compares them) and the
plugin (which finds tests that lack them), so all three agree on one definition.
"""

from __future__ import annotations

import ast
import enum

from pytest_kdassert.core.memo import run_cache

PLACEHOLDER = "<AssertPlaceHolder>"
"""The line that stands where the masked assertion was."""


class AssertionKind(str, enum.Enum):
    """How an assertion is written; ``stats.json`` counts examples per kind."""

    ASSERT = "assert"  # a plain `assert` statement
    UNITTEST = "unittest"  # self.assertEqual(...), self.assertTrue(...), ...
    HELPER = "helper"  # numpy.testing.assert_allclose(...), assert_frame_equal(...), ...


def _call_name(call: ast.Call) -> str | None:
    """The last dotted component of the called name (``np.testing.assert_x`` -> ``assert_x``)."""
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def dotted_name(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None (``f().x``, ``a[0].b``)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *parts])
    return None


def assertion_kind(stmt: ast.stmt) -> AssertionKind | None:
    """Classify a statement, or return None when it is not an assertion.

    ``with pytest.raises(...)`` blocks are not counted: they wrap code rather than check a
    value, so the model could not write them as one statement.
    """
    if isinstance(stmt, ast.Assert):
        return AssertionKind.ASSERT
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
        return None
    call = stmt.value
    name = _call_name(call)
    if name is None:
        return None
    func = call.func
    if (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id == "self"
        and (name.startswith("assert") or name.startswith("fail"))
    ):
        return AssertionKind.UNITTEST
    if name.startswith("assert_") or (name.startswith("assert") and name[6:7].isupper()):
        return AssertionKind.HELPER
    return None


def is_placeholder_assert(stmt: ast.stmt) -> bool:
    """True for the ``assert ...`` statement users write to ask for an assertion."""
    return (
        isinstance(stmt, ast.Assert)
        and isinstance(stmt.test, ast.Constant)
        and stmt.test.value is Ellipsis
        and stmt.msg is None
    )


@run_cache(maxsize=1 << 16)  # the same texts are normalised at every site and stage
def normalize_assertion(source: str) -> str | None:
    """Canonical one-line text of an assertion (``ast.unparse``), or None if it does not parse.

    Only a single statement is accepted: model output such as ``assert x ==`` or two
    statements on one line normalises to None.
    """
    try:
        module = ast.parse(source.strip())
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if len(module.body) != 1:
        return None
    return ast.unparse(module.body[0])
