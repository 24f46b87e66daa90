"""The definitions in the source files of loaded modules, each file parsed once.

Focal resolution and the purity check both look up the ``def`` of a function object. Asking
:mod:`inspect` for it (``getsource``, ``getsourcelines``) re-reads the lines and tokenizes the
block at every call, and walking a module's tree for it costs a visit of every node: on a
file of 3,000 tests both grew with the file at every test. Here a file is parsed once, its
definitions indexed by (name, line), and looked up by the code object's first line.

Files are read through :mod:`linecache`, as :mod:`inspect` reads them. A file whose lines
linecache reloads (it changed on disk) is parsed again.
"""

from __future__ import annotations

import ast
import linecache
import types
from dataclasses import dataclass

from pytest_kdassert.core.source import first_line

MAX_FILES = 64
"""Parsed files kept; the least recently parsed goes first."""

_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass(frozen=True)
class ParsedFile:
    lines: list[str]
    """linecache's list for the file (the same object until linecache reloads it)."""
    tree: ast.Module | None
    """None when the text does not parse."""
    definitions: dict[tuple[str, int], ast.AST]
    """(name, line) -> def or class node, under both its first decorator's line and its
    ``def`` line (a code object's first line is the decorator's)."""
    text: str
    """The lines joined."""


_files: dict[str, ParsedFile] = {}


def parsed_file(filename: str) -> ParsedFile | None:
    """The parsed source of ``filename``, or None when linecache has no lines for it."""
    lines = linecache.getlines(filename)
    if not lines:
        return None
    entry = _files.get(filename)
    if entry is None or entry.lines is not lines:
        if len(_files) >= MAX_FILES:
            del _files[next(iter(_files))]
        entry = _files[filename] = _parse(lines)
    return entry


def definition_at(filename: str, name: str, line: int) -> ast.AST | None:
    """The def or class named ``name`` starting (decorators or ``def``) at ``line``."""
    entry = parsed_file(filename)
    return None if entry is None else entry.definitions.get((name, line))


def function_definition(code: types.CodeType) -> ast.FunctionDef | None:
    """The plain (not async) ``def`` that compiled to ``code``, or None."""
    node = definition_at(code.co_filename, code.co_name, code.co_firstlineno)
    return node if isinstance(node, ast.FunctionDef) else None


def parse_text(filename: str, text: str) -> ast.Module:
    """``text`` (of ``filename``) parsed: the parsed file's own tree when ``text`` is what
    linecache holds for it (discovery, the purity check and the rewriter all read the same
    test file; a file of 3,000 tests takes 0.1 s to parse). Never mutate the tree. Raises
    what :func:`ast.parse` raises."""
    entry = parsed_file(filename)
    if entry is not None and entry.tree is not None and entry.text == text:
        return entry.tree
    return ast.parse(text)


def forget() -> None:
    """Drop every parsed file (at the end of a run: their trees would stay alive through
    every later garbage collection)."""
    _files.clear()


def _parse(lines: list[str]) -> ParsedFile:
    text = "".join(lines)
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return ParsedFile(lines, None, {}, text)
    definitions: dict[tuple[str, int], ast.AST] = {}
    for node in ast.walk(tree):
        if isinstance(node, _DEFINITIONS):
            definitions.setdefault((node.name, first_line(node)), node)
            definitions.setdefault((node.name, node.lineno), node)
    return ParsedFile(lines, tree, definitions, text)
