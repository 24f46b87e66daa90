"""Focal-test discovery: which collected tests want an assertion, and where.

A *site* is one place a suggestion goes: an ``assert ...`` placeholder line, or the end of a
test that asserts nothing. Parametrized instances of one function share their sites.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pytest_kdassert.core.assertions import (
    PLACEHOLDER,
    assertion_kind,
    dotted_name,
    is_placeholder_assert,
)
from pytest_kdassert.core.source import dedent_lines, first_line, flatten_statements, mask_statement
from pytest_kdassert.loaded_source import parse_text

PLACEHOLDER_MODE = "placeholder"
APPEND_MODE = "append"


@dataclass
class Site:
    """One suggestion slot in one test function."""

    path: Path
    qualname: str
    """``test_x``, ``TestA.test_x`` or ``TestA.Inner.test_x``: how the rewriter finds the def."""
    line: int
    """1-based line of the placeholder, or of the test's last statement (append mode)."""
    mode: str
    """``placeholder`` or ``append``."""
    masked_source: str
    """The dedented test with ``<AssertPlaceHolder>`` at this site: what the model reads."""
    indent: str = "    "
    nodeids: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, int]:
        return (str(self.path), self.qualname, self.line)


@dataclass(frozen=True)
class FunctionInfo:
    """The AST of a collected test function and where it sits."""

    node: ast.FunctionDef | ast.AsyncFunctionDef
    qualname: str
    lines: list[str]


def code_of_test(obj):
    """The code object the test runs as (unwrapped, bound methods resolved), or None."""
    try:
        func = inspect.unwrap(obj)
    except ValueError:
        return None
    func = getattr(func, "__func__", func)
    return getattr(func, "__code__", None)


def find_sites(info: FunctionInfo, path: Path, all_tests: bool = False,
               helper_asserts: Callable[[ast.Call], bool] = lambda call: False) -> list[Site]:
    """The sites of one test function: its placeholders, else its end if it checks nothing.

    A test checks something when it asserts, expects an exception or warning
    (``pytest.raises``, ``self.assertRaises``, ...), fails explicitly, or calls a helper that
    asserts (``helper_asserts`` decides, since only the caller can resolve the name).
    """
    node = info.node
    statements = flatten_statements(node.body)
    placeholders = [s for s in statements if is_placeholder_assert(s)]
    if placeholders:
        return [_site(info, path, s, PLACEHOLDER_MODE) for s in placeholders]
    if not all_tests and checks_something(statements, helper_asserts):
        return []
    if _is_trivial(node):
        return []
    return [_site(info, path, node.body[-1], APPEND_MODE)]


EXPECTING = frozenset({"raises", "warns", "deprecated_call", "fail", "assertRaises",
                       "assertRaisesRegex", "assertWarns", "assertWarnsRegex", "assertLogs",
                       "assertNoLogs"})
"""Calls that check by expecting: an exception, a warning, a log record, or a failure."""


def checks_something(statements: list[ast.stmt],
                     helper_asserts: Callable[[ast.Call], bool]) -> bool:
    """True when the statements assert, expect (:data:`EXPECTING`) or call an asserting helper."""
    for stmt in statements:
        if assertion_kind(stmt) is not None:
            return True
        for call in _own_calls(stmt):
            name = dotted_name(call.func) or ""
            if name.rsplit(".", 1)[-1] in EXPECTING and "." in name:
                return True
            if helper_asserts(call):
                return True
    return False


def _own_calls(stmt: ast.stmt) -> list[ast.Call]:
    """Calls a statement makes itself (a compound's header, not its nested body)."""
    if isinstance(stmt, (ast.With, ast.AsyncWith)):
        roots = [item.context_expr for item in stmt.items]
    elif isinstance(stmt, (ast.For, ast.AsyncFor)):
        roots = [stmt.iter]
    elif isinstance(stmt, (ast.While, ast.If)):
        roots = [stmt.test]
    elif isinstance(stmt, ast.Match):
        roots = [stmt.subject]
    else:
        roots = [stmt]
    return [n for root in roots for n in ast.walk(root) if isinstance(n, ast.Call)]


def body_asserts(func) -> bool:
    """True when a function's own body checks something (asserts, expects, fails).

    For helpers a test calls (``self._check_output(...)``, ``check_results(...)``): such a
    test checks through them and wants no suggestion. Unreadable sources count as no.
    """
    try:
        source = inspect.getsource(inspect.unwrap(func))
        tree = ast.parse(textwrap.dedent(source))
    except (OSError, TypeError, ValueError, SyntaxError, RecursionError):
        return False
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not defs:
        return False
    statements = flatten_statements(defs[0].body)
    return any(_raises_assertion_error(s) for s in statements) \
        or checks_something(statements, lambda call: False)


def _raises_assertion_error(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.Raise) or stmt.exc is None:
        return False
    exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
    return (dotted_name(exc) or "").rsplit(".", 1)[-1] in ("AssertionError", "failureException")


def _is_trivial(node) -> bool:
    """A body of only ``pass``/``...``/a docstring has nothing to check."""
    for stmt in node.body:
        if isinstance(stmt, ast.Pass):
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue
        return False
    return True


def _site(info: FunctionInfo, path: Path, stmt: ast.stmt, mode: str) -> Site:
    """A site, masked the way the miner masks its examples (same function, same dedent)."""
    node = info.node
    start = first_line(node)
    body_indent = _indent_of(info.lines[node.body[0].lineno - 1])
    masked = None
    if mode == PLACEHOLDER_MODE:
        line = stmt.lineno
        masked = mask_statement(info.lines, start, node.end_lineno, stmt, node.col_offset)
    else:
        line = stmt.end_lineno
        lines = [*info.lines[start - 1: line], body_indent + PLACEHOLDER]
        masked = dedent_lines(lines, node.col_offset)
    if masked is None:  # the placeholder shares its line with other code
        lines = list(info.lines[start - 1: node.end_lineno])
        lines[line - start] = _indent_of(lines[line - start]) + PLACEHOLDER
        masked = dedent_lines(lines, node.col_offset)
    return Site(path=path, qualname=info.qualname, line=line, mode=mode,
                masked_source=masked, indent=body_indent)


def _indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


class FileIndex:
    """A test file parsed once: its lines and every function def by name and line span.

    Discovery asks for one function per collected test; looking each up here keeps a file of
    thousands of tests linear in its size (parsing it per test was quadratic).
    """

    def __init__(self, tree: ast.Module, lines: list[str]):
        self.lines = lines
        self._defs: dict[str, list[tuple[ast.AST, str]]] = {}
        stack: list[tuple[ast.AST, str]] = [(tree, "")]
        while stack:
            parent, prefix = stack.pop()
            for node in ast.iter_child_nodes(parent):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self._defs.setdefault(node.name, []).append((node, prefix + node.name))
                elif isinstance(node, ast.ClassDef):
                    stack.append((node, f"{prefix}{node.name}."))

    @classmethod
    def parse(cls, source: str, filename: str = "") -> FileIndex | None:
        """The index of ``source`` (the text of ``filename``), or None when it does not parse."""
        try:
            tree = parse_text(filename, source)
        except (SyntaxError, ValueError, RecursionError):
            return None
        return cls(tree, source.splitlines())

    def function(self, code) -> FunctionInfo | None:
        """The test function whose code object is ``code``, or None."""
        for node, qualname in self._defs.get(code.co_name, ()):
            if first_line(node) <= code.co_firstlineno <= node.end_lineno:
                return FunctionInfo(node=node, qualname=qualname, lines=self.lines)
        return None

