"""libcst transformers that put accepted assertions into test source, formatting intact.

One pass of :class:`AssertionEditor` makes every change of a file: it swaps an
``assert ...`` line for its suggestion (the line's comment and blank lines stay) and adds a
suggestion after the last statement of a test without assertions. Functions are found by
qualified name (``TestA.Inner.test_x``) and placeholders by their original line, which
:class:`SourceFacts` reads from the text with :mod:`ast`.

A test never gets a statement it already has: an assertion whose normalised text
(:func:`~pytest_kdassert.core.assertions.normalize_assertion`) equals one of the function's
statements is left out, so ``--kdassert-all`` run again adds nothing twice.
"""

from __future__ import annotations

import ast
import bisect
import io
from dataclasses import dataclass

import libcst as cst

from pytest_kdassert.core.assertions import normalize_assertion
from pytest_kdassert.grounding import needs_pytest_import
from pytest_kdassert.loaded_source import parse_text


class SourceFacts:
    """What the editor needs to know of the original text, read with :mod:`ast` (libcst's
    position metadata, and its code generation per function, cost seconds on a file of
    thousands of tests; the C parser takes milliseconds).

    * ``placeholders``: the line of every ``assert ...`` (no message), in source order. A
      libcst visit meets them in the same order, so the n-th one it meets stands on the
      n-th line.
    * ``top_level``: the line span of each top-level statement as libcst counts them
      (``a = 1; b = 2`` is one), so an edit visits only the statements it changes.
    * :meth:`statements`: the normalised assertions and expression statements of the n-th
      function of a qualified name (in source order), for "the test already has it".
    """

    def __init__(self, text: str, filename: str = ""):
        tree = parse_text(filename, text)
        self.placeholders: list[int] = []
        self.functions: dict[str, list[ast.AST]] = {}
        """Function defs by qualified name, each name's in source order (nested ones too)."""
        self._index(tree, "")
        self.binds_pytest = _binds_pytest(tree)
        """Whether the module imports pytest under that name (outside functions and classes)."""
        self.top_level: list[tuple[int, int]] = []
        for node in tree.body:
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", ())])
            if self.top_level and first == self.top_level[-1][1]:  # after a ';'
                self.top_level[-1] = (self.top_level[-1][0], node.end_lineno)
            else:
                self.top_level.append((first, node.end_lineno))

    def _index(self, parent: ast.AST, prefix: str) -> None:
        for node in ast.iter_child_nodes(parent):  # statements come in source order
            if isinstance(node, ast.Assert):
                if _is_placeholder_ast(node):
                    self.placeholders.append(node.lineno)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions.setdefault(prefix + node.name, []).append(node)
                self._index(node, f"{prefix}{node.name}.")
            elif isinstance(node, ast.ClassDef):
                self._index(node, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.stmt, ast.excepthandler, ast.match_case)):
                self._index(node, prefix)

    def statements(self, qualname: str, occurrence: int) -> set[str]:
        nodes = self.functions.get(qualname, ())
        if occurrence >= len(nodes):
            return set()
        return {ast.unparse(node) for stmt in nodes[occurrence].body for node in ast.walk(stmt)
                if isinstance(node, (ast.Assert, ast.Expr))}

    def lines_to_visit(self, replacements: dict[int, str], appends: dict[str, str]) -> list[int]:
        """Lines an edit touches: its placeholder's, or its function's ``def`` line."""
        lines = list(replacements)
        for qualname in appends:
            lines += [node.lineno for node in self.functions.get(qualname, ())]
        return sorted(lines)


def _binds_pytest(parent: ast.AST) -> bool:
    for node in ast.iter_child_nodes(parent):
        if isinstance(node, ast.Import) and any(
                (alias.asname or alias.name) == "pytest" for alias in node.names):
            return True
        if isinstance(node, ast.stmt) and not isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and _binds_pytest(node):
            return True
    return False


def _is_placeholder_ast(node: ast.Assert) -> bool:
    return node.msg is None and isinstance(node.test, ast.Constant) \
        and node.test.value is Ellipsis


class _QualnameTracker(cst.CSTTransformer):
    """Keeps the dotted name of the class/function being visited in ``self.scope``, and for
    each enclosing function its statements (:meth:`already_has`). Statement lines are not
    descended into: they hold no def, and visiting every expression node costs most of a
    pass."""

    def __init__(self, facts: SourceFacts):
        super().__init__()
        self.facts = facts
        self.scope: list[str] = []
        self.functions: list[list] = []
        """[qualified name, occurrence, its normalised statements (computed when asked)]."""
        self._occurrences: dict[str, int] = {}
        """Functions of each qualified name met since ``_first_line``."""
        self._first_line = 1
        """The original line where the text being visited starts."""
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
        qualname = ".".join(self.scope)
        seen = self._occurrences.get(qualname, 0)
        self._occurrences[qualname] = seen + 1
        earlier = [n.lineno for n in self.facts.functions.get(qualname, ())]
        occurrence = bisect.bisect_left(earlier, self._first_line) + seen
        self.functions.append([qualname, occurrence, None])
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
        if entry[2] is None:
            entry[2] = self.facts.statements(entry[0], entry[1])
        normalized = normalize_assertion(text)
        if normalized is not None and normalized in entry[2]:
            self.duplicates += 1
            return True
        entry[2].add(normalized)
        return False


class AssertionEditor(_QualnameTracker):
    """Replace the ``assert ...`` statement at given lines, and append an assertion after
    the last statement of given test functions, in one pass over the module."""

    def __init__(self, replacements: dict[int, str], appends: dict[str, str],
                 facts: SourceFacts):
        super().__init__(facts)
        self.replacements = dict(replacements)
        """Original 1-based line of the placeholder -> assertion text."""
        self.appends = dict(appends)
        """Qualified function name -> assertion text."""
        self.applied = 0
        self.needs_pytest = False
        """Whether an applied text uses ``pytest.approx``."""
        self._statements = _parse_statements([*self.replacements.values(), *self.appends.values()])
        self._met = 0
        """Placeholders met so far (set at each top-level statement visited)."""
        self._line_of: dict[int, int] = {}
        """id() of a placeholder statement line met -> its original line."""

    def start_at(self, placeholders_before: int, first_line: int) -> None:
        """The next text visited is a top-level statement starting at ``first_line`` (of the
        original text), after that many placeholders."""
        self._met = placeholders_before
        self._first_line = first_line
        self._occurrences.clear()
        self._line_of.clear()  # ids of the last text's nodes, which may be reused once it is freed

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> bool:
        self._count_placeholders(node.body, node if _is_placeholder_line(node) else None)
        return False

    def visit_SimpleStatementSuite(self, node: cst.SimpleStatementSuite) -> bool:
        self._count_placeholders(node.body, None)  # ``if x: assert ...`` is not replaced
        return False

    def _count_placeholders(self, body, line: cst.SimpleStatementLine | None) -> None:
        for statement in body:
            if isinstance(statement, cst.Assert) and _is_placeholder(statement):
                if line is not None:
                    self._line_of[id(line)] = self.facts.placeholders[self._met]
                self._met += 1

    def leave_SimpleStatementLine(self, original_node, updated_node):
        line = self._line_of.get(id(original_node))
        if line is None or not self.functions:
            return updated_node
        text = self.replacements.get(line)
        if text is None or self.already_has(text):
            return updated_node
        self._applied(text)
        return updated_node.with_changes(body=self._statements[text].body)

    def _applied(self, text: str) -> None:
        self.applied += 1
        self.needs_pytest |= needs_pytest_import(text)

    def leave_FunctionDef(self, original_node, updated_node):
        text = self.appends.get(".".join(self.scope))
        if (text is None or not isinstance(updated_node.body, cst.IndentedBlock)
                or self.already_has(text)):
            self._leave_function()
            return updated_node
        self._leave_function()
        self._applied(text)
        body = updated_node.body.with_changes(
            body=[*updated_node.body.body, self._statements[text]])
        return updated_node.with_changes(body=body)


PARSE_GROUP = 50
"""Statements libcst parses in one call. Each call has a fixed cost, and one module of
thousands of statements parses slower per statement than groups of fifty (measured on 2,000
three-line tests: 0.32 s in groups of 50, 0.48 s in one call, 0.35 s one by one)."""


def _groups(items: list, size: int = PARSE_GROUP) -> list[list]:
    return [items[start:start + size] for start in range(0, len(items), size)]


def _parse_statements(texts: list[str]) -> dict[str, cst.BaseStatement]:
    """Each one-statement text parsed, in groups (see :data:`PARSE_GROUP`)."""
    parsed: dict[str, cst.BaseStatement] = {}
    for group in _groups(list(dict.fromkeys(texts))):
        module = cst.parse_module("".join(text.strip() + "\n" for text in group))
        if len(module.body) != len(group):  # a text that is not exactly one statement
            parsed.update((text, cst.parse_statement(text.strip() + "\n")) for text in group)
        else:
            parsed.update(zip(group, module.body, strict=True))
    return parsed


def _is_placeholder_line(node: cst.SimpleStatementLine) -> bool:
    return len(node.body) == 1 and isinstance(node.body[0], cst.Assert) \
        and _is_placeholder(node.body[0])


def _is_placeholder(node: cst.Assert) -> bool:
    return isinstance(node.test, cst.Ellipsis) and node.msg is None


@dataclass(frozen=True)
class Span:
    """Original lines ``first``..``last`` (1-based, inclusive) and the text that replaces them."""

    first: int
    last: int
    text: str


@dataclass(frozen=True)
class EditResult:
    code: str
    """The new source."""
    applied: int
    """Edits made."""
    duplicates: int
    """Edits left out because their function already had that statement."""
    spans: tuple[Span, ...] | None = ()
    """The changed line ranges, in order (a diff needs to look only there); None when the
    edit was made on the whole module (a new import) and any line may have changed."""


def edit_source(text: str, replacements: dict[int, str], appends: dict[str, str], *,
                filename: str = "") -> EditResult:
    """Apply placeholder replacements (by line) and appends (by qualified name).

    ``filename``: the file ``text`` was read from, whose parsed tree is reused when it is
    still the same text (:func:`~.loaded_source.parse_text`).

    Only the top-level statements that hold an edit are parsed with libcst and generated
    again; the rest of the text is kept as it is (on a file of thousands of tests, parsing
    and regenerating it all took seconds). Raises ``SyntaxError`` or
    ``libcst.ParserSyntaxError`` when the text does not parse.
    """
    if not replacements and not appends:
        return EditResult(text, 0, 0)
    facts = SourceFacts(text, filename)
    editor = AssertionEditor(replacements, appends, facts)
    spans = _edit_statements(text, editor, facts)
    # spans None (never seen): libcst and ast disagree on a statement, so the editor, which
    # has visited nothing yet, edits the whole module
    code = _splice(text, spans) if spans is not None else cst.parse_module(text).visit(editor).code
    if editor.needs_pytest and not facts.binds_pytest:
        code, spans = _add_import(cst.parse_module(code), "pytest").code, None
    return EditResult(code, editor.applied, editor.duplicates, None if spans is None else tuple(spans))


def _add_import(module: cst.Module, name: str) -> cst.Module:
    """``import name`` where libcst's codemods put a new import: after the docstring,
    ``__future__`` imports and the module's other imports."""
    # imported here: libcst.codemod (its matchers) takes 0.2 s to import, and most runs
    # add no import
    from libcst.codemod import CodemodContext
    from libcst.codemod.visitors import AddImportsVisitor

    context = CodemodContext()
    AddImportsVisitor.add_needed_import(context, name)
    return AddImportsVisitor(context).transform_module(module)


def source_lines(text: str) -> list[str]:
    """``text``'s lines with their endings, split where Python's tokenizer counts a new line
    (``str.splitlines`` also splits at form feeds and other separators)."""
    return io.StringIO(text, newline="").readlines()


def _edit_statements(text: str, editor: AssertionEditor, facts: SourceFacts) -> list[Span] | None:
    """The editor's changes, made on the touched top-level statements alone: their lines are
    parsed in groups (see :data:`PARSE_GROUP`) and each is visited and generated on its own.
    None when libcst does not count them as ast does."""
    lines = source_lines(text)
    touched = facts.lines_to_visit(editor.replacements, editor.appends)
    statements = [(first, last) for first, last in facts.top_level
                  if (start := bisect.bisect_left(touched, first)) < len(touched) and touched[start] <= last]
    chunks = ["".join(lines[first - 1:last]) for first, last in statements]
    if chunks and not chunks[-1].endswith(("\n", "\r")):  # the file's last line
        chunks[-1] += "\n"
    groups = _groups(list(zip(statements, chunks, strict=True)))
    modules = [cst.parse_module("".join(chunk for _, chunk in group)) for group in groups]
    if any(len(module.body) != len(group) for module, group in zip(modules, groups, strict=True)):
        return None  # before the editor visits anything
    spans = []
    for group, module in zip(groups, modules, strict=True):
        for ((first, last), chunk), node in zip(group, module.body, strict=True):
            editor.start_at(bisect.bisect_left(facts.placeholders, first), first)
            code = module.code_for_node(node.visit(editor))
            if code != chunk:
                ending = lines[last - 1].endswith(("\n", "\r"))
                spans.append(Span(first, last, code if ending else code.rstrip("\r\n")))
    return spans


def _splice(text: str, spans: list[Span]) -> str:
    lines = source_lines(text)
    for span in reversed(spans):
        lines[span.first - 1:span.last] = [span.text]
    return "".join(lines)


def apply_edits(source: str, replacements: dict[int, str], appends: dict[str, str]) -> tuple[str, int]:
    """New source with the edits applied, and how many were applied (see :func:`edit_source`)."""
    result = edit_source(source, replacements, appends)
    return result.code, result.applied
