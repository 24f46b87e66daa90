"""libcst transformers that put accepted assertions into test source, formatting intact.

One transformer per change: :class:`ReplacePlaceholder` swaps an ``assert ...`` line for
the suggestion (its comment and blank lines stay), :class:`AppendAssertion` adds the
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


class ReplacePlaceholder(_QualnameTracker):
    """Replace the ``assert ...`` statement at each given line with new assertion text."""

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, edits: dict[int, str]):
        super().__init__()
        self.edits = dict(edits)
        """Original 1-based line of the placeholder -> assertion text."""
        self.applied: set[int] = set()

    def leave_FunctionDef(self, original_node, updated_node):
        self._leave_function()
        return updated_node

    def leave_SimpleStatementLine(self, original_node, updated_node):
        line = self.get_metadata(PositionProvider, original_node).start.line
        text = self.edits.get(line)
        if text is None or not _is_placeholder_line(original_node) or not self.functions:
            return updated_node
        if self.already_has(text):
            return updated_node
        self.applied.add(line)
        new = cst.parse_statement(text.strip() + "\n")
        return updated_node.with_changes(body=new.body)


class AppendAssertion(_QualnameTracker):
    """Append an assertion after the last statement of each named test function."""

    def __init__(self, edits: dict[str, str]):
        super().__init__()
        self.edits = dict(edits)
        """Qualified function name -> assertion text."""
        self.applied: set[str] = set()

    def leave_FunctionDef(self, original_node, updated_node):
        text = self.edits.get(".".join(self.scope))
        if (text is None or not isinstance(updated_node.body, cst.IndentedBlock)
                or self.already_has(text)):
            self._leave_function()
            return updated_node
        qualname = self._leave_function()
        self.applied.add(qualname)
        new = cst.parse_statement(text.strip() + "\n")
        body = updated_node.body.with_changes(body=[*updated_node.body.body, new])
        return updated_node.with_changes(body=body)


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


def edit_source(source: str, replacements: dict[int, str], appends: dict[str, str]) -> EditResult:
    """Apply placeholder replacements (by line) and appends (by qualified name).

    Raises ``libcst.ParserSyntaxError`` when the source does not parse.
    """
    module = cst.parse_module(source)
    applied = duplicates = 0
    if replacements:
        transformer = ReplacePlaceholder(replacements)
        module = MetadataWrapper(module).visit(transformer)
        applied += len(transformer.applied)
        duplicates += transformer.duplicates
    if appends:
        transformer = AppendAssertion(appends)
        module = module.visit(transformer)
        applied += len(transformer.applied)
        duplicates += transformer.duplicates
    return EditResult(module.code, applied, duplicates)


def apply_edits(source: str, replacements: dict[int, str], appends: dict[str, str]) -> tuple[str, int]:
    """New source with the edits applied, and how many were applied (see :func:`edit_source`)."""
    result = edit_source(source, replacements, appends)
    return result.code, result.applied
