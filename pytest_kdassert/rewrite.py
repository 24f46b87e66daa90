"""libcst transformers that put accepted assertions into test source, formatting intact.

One transformer per change: :class:`ReplacePlaceholder` swaps an ``assert ...`` line for
the suggestion (its comment and blank lines stay), :class:`AppendAssertion` adds the
suggestion after the last statement of a test without assertions. Functions are found by
qualified name (``TestA.Inner.test_x``) and placeholders by their original line.
"""

from __future__ import annotations

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider


class _QualnameTracker(cst.CSTTransformer):
    """Keeps the dotted name of the class/function being visited in ``self.scope``."""

    def __init__(self):
        super().__init__()
        self.scope: list[str] = []

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self.scope.append(node.name.value)
        return True

    def leave_ClassDef(self, original_node, updated_node):
        self.scope.pop()
        return updated_node

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.scope.append(node.name.value)
        return True

    def _leave_function(self) -> str:
        qualname = ".".join(self.scope)
        self.scope.pop()
        return qualname


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
        if text is None or not _is_placeholder_line(original_node):
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
        qualname = self._leave_function()
        text = self.edits.get(qualname)
        if text is None or not isinstance(updated_node.body, cst.IndentedBlock):
            return updated_node
        self.applied.add(qualname)
        new = cst.parse_statement(text.strip() + "\n")
        body = updated_node.body.with_changes(body=[*updated_node.body.body, new])
        return updated_node.with_changes(body=body)


def _is_placeholder_line(node: cst.SimpleStatementLine) -> bool:
    return (
        len(node.body) == 1
        and isinstance(node.body[0], cst.Assert)
        and isinstance(node.body[0].test, cst.Ellipsis)
        and node.body[0].msg is None
    )


def apply_edits(source: str, replacements: dict[int, str], appends: dict[str, str]) -> tuple[str, int]:
    """New source with the edits applied, and how many were applied.

    Raises ``libcst.ParserSyntaxError`` when the source does not parse.
    """
    module = cst.parse_module(source)
    applied = 0
    if replacements:
        transformer = ReplacePlaceholder(replacements)
        module = MetadataWrapper(module).visit(transformer)
        applied += len(transformer.applied)
    if appends:
        transformer = AppendAssertion(appends)
        module = module.visit(transformer)
        applied += len(transformer.applied)
    return module.code, applied
