"""Change sets: suggestions collected during the run, rendered and written at session end.

Each file is read once when its first site is found (that text is the baseline), rewritten
once, and written once, with its line endings and its encoding kept (PEP 263 cookie or
UTF-8 BOM, see :mod:`~pytest_kdassert.core.pyfile`). A file whose bytes on disk no longer
match the baseline, that is read-only, or that can't hold the new text in its encoding, is
skipped with a reason, never overwritten. Writing goes through
:func:`~pytest_kdassert.core.atomic.replace_file` (symbolic and hard links kept).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

import libcst as cst

from pytest_kdassert.core.atomic import replace_file
from pytest_kdassert.core.errors import UnwritableFileError
from pytest_kdassert.core.pyfile import PythonText, encode_python, read_python
from pytest_kdassert.discovery import PLACEHOLDER_MODE
from pytest_kdassert.rewrite import EditResult, Span, edit_source, source_lines


@dataclass(frozen=True)
class Change:
    """One suggestion accepted for writing."""

    path: Path
    qualname: str
    line: int
    mode: str
    text: str
    nodeid: str


@dataclass
class FileResult:
    """What happened to one file: its diff, or why it was left alone."""

    path: Path
    diff: str = ""
    new_text: str | None = None
    new_data: bytes | None = None
    """``new_text`` encoded as the file is (set by render when there is something to write)."""
    problem: str | None = None
    count: int = 0


class ChangeSet:
    """Baselines and suggested changes, per file."""

    def __init__(self, root: Path | None = None):
        self.root = root
        self.baselines: dict[Path, PythonText] = {}
        self.unreadable: dict[Path, str] = {}
        """Files that could not be read, with the reason (Python can't import them either)."""
        self.changes: dict[Path, list[Change]] = {}
        self._edits: dict[tuple, EditResult] = {}
        """Edits already made, by (path, changes): the diff shown and the file written agree
        and cost one pass."""

    def baseline(self, path: Path) -> str | None:
        """The file's text as first seen this session (None when unreadable)."""
        if path not in self.baselines:
            try:
                self.baselines[path] = read_python(path)
            except (OSError, ValueError) as exc:
                self.unreadable[path] = str(exc)
                return None
        return self.baselines[path].text

    def add(self, change: Change) -> None:
        self.changes.setdefault(change.path, []).append(change)

    def render(self, path: Path, changes: list[Change] | None = None) -> FileResult:
        """The diff for ``changes`` (default: all of the file's), without writing anything."""
        changes = self.changes.get(path, []) if changes is None else changes
        result = FileResult(path)
        problem = self._disk_problem(path)
        if problem:
            result.problem = problem
            return result
        replacements = {c.line: c.text for c in changes if c.mode == PLACEHOLDER_MODE}
        appends = {c.qualname: c.text for c in changes if c.mode != PLACEHOLDER_MODE}
        baseline = self.baselines[path]
        try:
            edited = self._edit(path, tuple(changes), replacements, appends)
            result.new_data = encode_python(edited.code, baseline.encoding)
        except (cst.ParserSyntaxError, SyntaxError) as exc:
            result.problem = f"it cannot be parsed ({str(exc).splitlines()[0]})"
            return result
        except ValueError as exc:  # the file's encoding can't store the new text
            result.problem = str(exc)
            return result
        if edited.duplicates and not edited.applied:
            result.problem = (f"nothing to add: the tests already have the {edited.duplicates} "
                              "suggested assertion(s)")
            return result
        result.new_text, result.count = edited.code, edited.applied
        result.diff = unified_diff(baseline.text, edited.code, self.display_name(path), edited.spans)
        return result

    def _edit(self, path: Path, key: tuple, replacements: dict, appends: dict) -> EditResult:
        if (path, key) not in self._edits:
            self._edits[path, key] = edit_source(self.baselines[path].text, replacements, appends,
                                                    filename=str(path))
        return self._edits[path, key]

    def release(self) -> None:
        """Forget the edits made (rendering again redoes them)."""
        self._edits.clear()

    def write(self, result: FileResult) -> FileResult:
        """Write a rendered file if it is still unchanged on disk and the user may write it."""
        problem = self._disk_problem(result.path)
        if problem:
            result.problem = problem
        elif result.new_data is not None and result.count:
            try:
                replace_file(result.path, result.new_data)
            except (UnwritableFileError, OSError) as exc:
                result.problem = _reason(exc, result.path)
        return result

    def _disk_problem(self, path: Path) -> str | None:
        try:
            with open(path, "rb") as handle:
                current = handle.read()
        except OSError as exc:
            return f"it can no longer be read ({exc.strerror})"
        baseline = self.baselines.get(path)
        if baseline is None or current != baseline.data:
            return "it changed on disk during the run"
        return None

    def display_name(self, path: Path) -> str:
        if self.root is not None:
            try:
                return os.path.relpath(path, self.root)
            except ValueError:
                pass
        return str(path)


def _reason(exc: Exception, path: Path) -> str:
    """An error's message without the path the skip line already names."""
    if isinstance(exc, OSError):
        return f"writing failed ({exc.strerror or exc})"
    return str(exc).removeprefix(f"{path}: ")


def unified_diff(old: str, new: str, name: str, spans: tuple[Span, ...] | None = None,
                 context: int = 3) -> str:
    """A ``diff -u`` style patch of one file (``a/name`` -> ``b/name``). ``spans``: the
    changed line ranges of ``old`` (:class:`~pytest_kdassert.rewrite.Span`); when given, lines
    are matched only inside them (difflib's matching over a whole file of thousands of similar
    tests takes seconds) and the hunks are grouped as difflib groups them."""
    if spans is None:
        return _patch(difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True),
            fromfile=f"a/{name}", tofile=f"b/{name}", n=context))
    before, after = source_lines(old), source_lines(new)
    matcher = _KnownOpcodes(_span_opcodes(before, spans))
    lines = []
    for group in matcher.get_grouped_opcodes(context):
        (_, i1, _, j1, _), (_, _, i2, _, j2) = group[0], group[-1]
        lines.append(f"@@ -{_range(i1, i2)} +{_range(j1, j2)} @@\n")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines += [" " + line for line in before[i1:i2]]
                continue
            lines += ["-" + line for line in before[i1:i2]]
            lines += ["+" + line for line in after[j1:j2]]
    return _patch([f"--- a/{name}\n", f"+++ b/{name}\n", *lines]) if lines else ""


class _KnownOpcodes(difflib.SequenceMatcher):
    """A SequenceMatcher whose opcodes are given: its hunk grouping, for them."""

    def __init__(self, opcodes: list[tuple]):  # no sequences to match
        self._known = opcodes

    def get_opcodes(self) -> list[tuple]:
        return self._known


def _span_opcodes(before: list[str], spans: tuple[Span, ...]) -> list[tuple]:
    """difflib opcodes of the whole file: equal outside the spans, matched inside each."""
    opcodes: list[tuple] = []
    i = j = 0

    def add(tag, i1, i2, j1, j2):
        if i1 == i2 and j1 == j2:
            return
        if tag == "equal" and opcodes and opcodes[-1][0] == "equal":
            tag, i1, _, j1, _ = opcodes.pop()
        opcodes.append((tag, i1, i2, j1, j2))

    for span in spans:
        start = span.first - 1
        add("equal", i, start, j, j + start - i)
        j += start - i
        new = source_lines(span.text)
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(
                None, before[start:span.last], new, autojunk=False).get_opcodes():
            add(tag, start + i1, start + i2, j + j1, j + j2)
        i, j = span.last, j + len(new)
    add("equal", i, len(before), j, j + len(before) - i)
    return opcodes


def _range(start: int, stop: int) -> str:
    """A unified diff's line range (as difflib writes it)."""
    length = stop - start
    if length == 1:
        return str(start + 1)
    return f"{start + 1 if length else start},{length}"


def _patch(lines) -> str:
    return "".join(line if line.endswith(("\n", "\r")) else line + "\n" for line in lines)
