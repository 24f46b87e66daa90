"""Test functions in a module and the assertions they make: one reading for miner and plugin.

The miner turns each assertion into a training example; the plugin turns the same assertions
of a project's tests into its exemplar pool. Both find tests and mask assertions here.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from pytest_kdassert.core.assertions import assertion_kind, is_placeholder_assert
from pytest_kdassert.core.source import first_line, flatten_statements, mask_statement


@dataclass(frozen=True)
class TestFunction:
    """A test function or unittest/pytest class method found in a test module."""

    __test__ = False  # not a pytest test class, despite the name

    name: str
    """``test_x`` or ``Class.test_x``."""
    node: ast.FunctionDef | ast.AsyncFunctionDef
    class_node: ast.ClassDef | None = None


@dataclass(frozen=True)
class MaskedAssertion:
    """One assertion of a test, and the test with it masked."""

    position: int
    """Index of the assertion in the test's flattened statements."""
    statement: ast.stmt
    masked: str | None
    """The dedented test with the placeholder here; None when it shares a line with code."""

    @property
    def text(self) -> str:
        return ast.unparse(self.statement)


def is_test_file(path: Path) -> bool:
    """pytest's default patterns: ``test_*.py`` and ``*_test.py`` (plus ``tests.py``)."""
    name = path.name
    return name.endswith(".py") and (
        name.startswith("test_") or name.endswith("_test.py") or name == "tests.py"
    )


def is_test_def(node: ast.stmt) -> bool:
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test")


def _is_test_class(node: ast.ClassDef, local_test_classes: set[str]) -> bool:
    if node.name.startswith("Test"):
        return True
    for base in node.bases:
        text = ast.unparse(base)
        if text in local_test_classes or text.endswith(("TestCase", "Test", "Tests")):
            return True
    return False


def find_test_functions(tree: ast.Module) -> list[TestFunction]:
    """Module-level ``test*`` functions and ``test*`` methods of test classes, in file order.

    When a name is defined twice, only the last definition (the one Python keeps) counts.
    """
    found = []
    test_classes: set[str] = set()
    for node in tree.body:
        if is_test_def(node):
            found.append(TestFunction(node.name, node))
        elif isinstance(node, ast.ClassDef) and _is_test_class(node, test_classes):
            test_classes.add(node.name)
            for item in node.body:
                if is_test_def(item):
                    found.append(TestFunction(f"{node.name}.{item.name}", item, node))
    last = {test.name: i for i, test in enumerate(found)}  # a redefinition shadows the first
    return [test for i, test in enumerate(found) if last[test.name] == i]


def masked_assertions(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str],
                      statements: list[ast.stmt] | None = None,
                      max_assertions: int | None = None) -> list[MaskedAssertion]:
    """The test's assertions (placeholders excluded), each with the test masked at it.

    Empty when the test has more than ``max_assertions`` of them (long tests check many
    things; one masked assertion says little about what the rest of them test).
    """
    statements = flatten_statements(node.body) if statements is None else statements
    positions = [pos for pos, stmt in enumerate(statements)
                 if assertion_kind(stmt) is not None and not is_placeholder_assert(stmt)]
    if max_assertions is not None and len(positions) > max_assertions:
        return []
    start = first_line(node)
    return [MaskedAssertion(pos, statements[pos],
                            mask_statement(lines, start, node.end_lineno, statements[pos],
                                           node.col_offset))
            for pos in positions]
