"""libcst transformers that put accepted assertions into test source, formatting intact.

One pass of :class:`AssertionEditor` makes every change of a file: it swaps an
``assert ...`` line for its suggestion (the line's comment and blank lines stay) and adds a
suggestion after the last statement of a test without assertions. Functions are found by
qualified name (``TestA.Inner.test_x``) and placeholders by their original line.

A test never gets a statement it already has: an assertion whose normalised text
(:func:`~pytest_kdassert.core.assertions.normalize_assertion`) equals one of the function's
statements is left out, so ``--kdassert-all`` run again adds nothing twice.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from pytest_kdassert.core.assertions import normalize_assertion

_EMPTY_MODULE = cst.Module(body=[])


class _QualnameTracker(cst.CSTTransformer):
    """Keeps the dotted name of the class/function being visited in ``self.scope``.

    ``self.functions`` holds the enclosing function nodes, for :meth:`already_has`.
    """

    def __init__(self):
        super().__init__()
        self.scope: list[str] = []
        self.functions: list[list] = []
        """[original FunctionDef, its normalised statements (computed when first asked)]."""
        self.duplicates = 0
        """Edits left out because the function already had the statement."""

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self.scope.append(node.name.value)
        return True

    def leave_ClassDef(self, original_node, updated_node):
        self.scope.pop()
        return updated_node

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.scope.append(node.name.value)
        self.functions.append([node, None])
        return True

    def _leave_function(self) -> str:
        qualname = ".".join(self.scope)
        self.scope.pop()
        self.functions.pop()
        return qualname

    def already_has(self, text: str) -> bool:
        """Whether the innermost function has a statement equal to ``text`` once normalised;
        if not, ``text`` counts as present from now on (two edits never add it twice)."""
        entry = self.functions[-1]
        if entry[1] is None:
            entry[1] = statement_texts(entry[0])
        normalized = normalize_assertion(text)
        if normalized is not None and normalized in entry[1]:
            self.duplicates += 1
            return True
        entry[1].add(normalized)
        return False


class AssertionEditor(_QualnameTracker):
    """Replace the ``assert ...`` statement at given lines, and append an assertion after
    the last statement of given test functions, in one pass over the module."""

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, replacements: dict[int, str], appends: dict[str, str]):
        super().__init__()
        self.replacements = dict(replacements)
        """Original 1-based line of the placeholder -> assertion text."""
        self.appends = dict(appends)
        """Qualified function name -> assertion text."""
        self.applied = 0
        self._statements = _parse_statements([*self.replacements.values(), *self.appends.values()])

    def leave_SimpleStatementLine(self, original_node, updated_node):
        if not self.replacements or not self.functions:
            return updated_node
        line = self.get_metadata(PositionProvider, original_node).start.line
        text = self.replacements.get(line)
        if text is None or not _is_placeholder_line(original_node) or self.already_has(text):
            return updated_node
        self.applied += 1
        return updated_node.with_changes(body=self._statements[text].body)

    def leave_FunctionDef(self, original_node, updated_node):
        text = self.appends.get(".".join(self.scope))
        if (text is None or not isinstance(updated_node.body, cst.IndentedBlock)
                or self.already_has(text)):
            self._leave_function()
            return updated_node
        self._leave_function()
        self.applied += 1
        body = updated_node.body.with_changes(
            body=[*updated_node.body.body, self._statements[text]])
        return updated_node.with_changes(body=body)


def _parse_statements(texts: list[str]) -> dict[str, cst.BaseStatement]:
    """Each one-statement text parsed, all in one parse (libcst's parser costs ~2 ms a call)."""
    distinct = list(dict.fromkeys(texts))
    module = cst.parse_module("".join(text.strip() + "\n" for text in distinct))
    if len(module.body) != len(distinct):  # a text that is not exactly one statement
        return {text: cst.parse_statement(text.strip() + "\n") for text in distinct}
    return dict(zip(distinct, module.body, strict=True))


def statement_texts(function: cst.FunctionDef) -> set[str]:
    """Normalised text (``ast.unparse``) of the assertions and expression statements
    (``self.assertEqual(...)``) anywhere in a function's body."""
    tree = ast.parse(_EMPTY_MODULE.code_for_node(function.with_changes(decorators=())).strip())
    return {ast.unparse(node) for node in ast.walk(tree.body[0])
            if isinstance(node, (ast.Assert, ast.Expr))}


def _is_placeholder_line(node: cst.SimpleStatementLine) -> bool:
    return (
        len(node.body) == 1
        and isinstance(node.body[0], cst.Assert)
        and isinstance(node.body[0].test, cst.Ellipsis)
        and node.body[0].msg is None
    )


@dataclass(frozen=True)
class EditResult:
    code: str
    """The new source."""
    applied: int
    """Edits made."""
    duplicates: int
    """Edits left out because their function already had that statement."""


def edit_source(source: str | cst.Module, replacements: dict[int, str],
                appends: dict[str, str]) -> EditResult:
    """Apply placeholder replacements (by line) and appends (by qualified name).

    ``source`` is text, or a module parsed by ``libcst.parse_module`` (which a caller
    rendering one file several times parses once: modules are immutable). Raises
    ``libcst.ParserSyntaxError`` when the text does not parse.
    """
    module = cst.parse_module(source) if isinstance(source, str) else source
    if not replacements and not appends:
        return EditResult(module.code, 0, 0)
    editor = AssertionEditor(replacements, appends)
    # No copy: libcst nodes are immutable, the visit builds a new module.
    module = MetadataWrapper(module, unsafe_skip_copy=True).visit(editor)
    return EditResult(module.code, editor.applied, editor.duplicates)


def apply_edits(source: str, replacements: dict[int, str], appends: dict[str, str]) -> tuple[str, int]:
    """New source with the edits applied, and how many were applied (see :func:`edit_source`)."""
    result = edit_source(source, replacements, appends)
    return result.code, result.applied
