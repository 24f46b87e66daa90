"""Cutting test and focal source into what the model reads: one copy for miner and plugin.

The miner builds training examples and the plugin builds model inputs with these same
functions, so a test masked at inference looks exactly like a test masked in training.
"""

from __future__ import annotations

import ast

from pytest_kdassert.core.assertions import PLACEHOLDER
from pytest_kdassert.core.memo import run_cache

MAX_FOCAL_LINES = 120
"""Longer definitions are cut: the model reads the head of the focal function only."""

_NESTED_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def dedent_lines(lines: list[str], indent: int) -> str:
    """Remove ``indent`` leading whitespace characters from each line that has them.

    Unlike ``textwrap.dedent`` this keeps the relative indentation of lines that start left
    of the block (the body of a multi-line string), so both sides cut the same text.
    """
    out = []
    for line in lines:
        stripped = len(line) - len(line.lstrip())
        out.append(line[min(indent, stripped):])
    return "\n".join(out)


@run_cache(maxsize=4096)  # a test's function is walked by several questions per site
def all_nodes(node: ast.AST) -> tuple[ast.AST, ...]:
    """``tuple(ast.walk(node))``, in the same order, kept for the run (never mutate the tree)."""
    return tuple(ast.walk(node))


def first_line(node: ast.AST) -> int:
    """1-based first line of a definition, decorators included."""
    return min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])


def definition_source(lines: list[str], node: ast.AST) -> str:
    """Dedented source of a def or class (decorators included), cut to MAX_FOCAL_LINES.

    ``lines`` are the lines of the file that holds ``node``.
    """
    start = first_line(node) - 1
    end = min(node.end_lineno, start + MAX_FOCAL_LINES)
    return dedent_lines(lines[start:end], node.col_offset)


def mask_statement(lines: list[str], start: int, end: int, stmt: ast.stmt,
                   indent: int) -> str | None:
    """Lines ``start..end`` (1-based) with ``stmt`` replaced by one placeholder line, dedented.

    None when the statement shares a line with other code (``x = 1; assert x``).
    """
    first, last = lines[stmt.lineno - 1], lines[stmt.end_lineno - 1]
    after = last.encode("utf-8")[stmt.end_col_offset:].decode("utf-8", errors="ignore")
    if first[: stmt.col_offset].strip() or _code_after(after):
        return None
    placeholder = first[: stmt.col_offset] + PLACEHOLDER
    body = [*lines[start - 1: stmt.lineno - 1], placeholder, *lines[stmt.end_lineno: end]]
    return dedent_lines(body, indent)


def _code_after(rest: str) -> bool:
    rest = rest.strip()
    return bool(rest) and not rest.startswith("#")


def flatten_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Simple statements in source order, descending into compound statements.

    ``with``/``for``/``while``/``if``/``match`` stay in the list (their headers are evaluated
    there and may bind names) followed by their bodies; ``try`` contributes its blocks only;
    nested defs and classes are skipped (their bodies run elsewhere).
    """
    out: list[ast.stmt] = []
    for stmt in body:
        if isinstance(stmt, _NESTED_SCOPES):
            continue
        if isinstance(stmt, (ast.With, ast.AsyncWith)):
            out.append(stmt)
            out.extend(flatten_statements(stmt.body))
        elif isinstance(stmt, (ast.For, ast.AsyncFor, ast.While, ast.If)):
            out.append(stmt)
            out.extend(flatten_statements(stmt.body))
            out.extend(flatten_statements(stmt.orelse))
        elif isinstance(stmt, ast.Match):
            out.append(stmt)
            for case in stmt.cases:
                out.extend(flatten_statements(case.body))
        elif isinstance(stmt, _TRY_NODES):
            out.extend(flatten_statements(stmt.body))
            for handler in stmt.handlers:
                out.extend(flatten_statements(handler.body))
            out.extend(flatten_statements(stmt.orelse))
            out.extend(flatten_statements(stmt.finalbody))
        else:
            out.append(stmt)
    return out


_TRY_NODES = (ast.Try, *((ast.TryStar,) if hasattr(ast, "TryStar") else ()))
