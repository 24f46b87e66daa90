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
from pytest_kdassert.rewrite import EditResult, edit_source


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
        self._modules: dict[Path, cst.Module] = {}
        """Each baseline parsed once by libcst (a file of thousands of tests takes seconds)."""
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
        except cst.ParserSyntaxError as exc:
            result.problem = f"libcst cannot parse it ({str(exc).splitlines()[0]})"
            return result
        except ValueError as exc:  # the file's encoding can't store the new text
            result.problem = str(exc)
            return result
        if edited.duplicates and not edited.applied:
            result.problem = (f"nothing to add: the tests already have the {edited.duplicates} "
                              "suggested assertion(s)")
            return result
        result.new_text, result.count = edited.code, edited.applied
        result.diff = unified_diff(baseline.text, edited.code, self.display_name(path))
        return result

    def _edit(self, path: Path, key: tuple, replacements: dict, appends: dict) -> EditResult:
        if (path, key) not in self._edits:
            if path not in self._modules:
                self._modules[path] = cst.parse_module(self.baselines[path].text)
            self._edits[path, key] = edit_source(self._modules[path], replacements, appends,
                                                  self.baselines[path].text)
        return self._edits[path, key]

    def release(self) -> None:
        """Forget parsed modules and edits (rendering again re-parses)."""
        self._modules.clear()
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


def unified_diff(old: str, new: str, name: str) -> str:
    """A ``diff -u`` style patch of one file (``a/name`` -> ``b/name``)."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True),
        fromfile=f"a/{name}", tofile=f"b/{name}",
    )
    return "".join(line if line.endswith(("\n", "\r")) else line + "\n" for line in lines)
