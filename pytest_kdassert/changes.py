"""Change sets: suggestions collected during the run, rendered and written at session end.

Each file is read once when its first site is found (that text is the baseline), rewritten
once, and written once, atomically, with its line endings kept. A file whose text on disk
no longer matches the baseline is skipped with a reason, never overwritten.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

import libcst as cst

from pytest_kdassert.core.atomic import write_text_atomic
from pytest_kdassert.discovery import PLACEHOLDER_MODE
from pytest_kdassert.rewrite import apply_edits


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
    problem: str | None = None
    count: int = 0


def read_text(path: Path) -> str:
    """File text with its line endings untouched."""
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


class ChangeSet:
    """Baselines and suggested changes, per file."""

    def __init__(self, root: Path | None = None):
        self.root = root
        self.baselines: dict[Path, str] = {}
        self.changes: dict[Path, list[Change]] = {}

    def baseline(self, path: Path) -> str | None:
        """The file's text as first seen this session (None when unreadable)."""
        if path not in self.baselines:
            try:
                self.baselines[path] = read_text(path)
            except (OSError, UnicodeDecodeError):
                return None
        return self.baselines[path]

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
        try:
            new_text, result.count = apply_edits(self.baselines[path], replacements, appends)
        except cst.ParserSyntaxError as exc:
            result.problem = f"libcst cannot parse it ({str(exc).splitlines()[0]})"
            return result
        result.new_text = new_text
        result.diff = unified_diff(self.baselines[path], new_text, self.display_name(path))
        return result

    def write(self, result: FileResult) -> FileResult:
        """Write a rendered file if it is still unchanged on disk."""
        problem = self._disk_problem(result.path)
        if problem:
            result.problem = problem
        elif result.new_text is not None and result.count:
            write_text_atomic(result.path, result.new_text)
        return result

    def _disk_problem(self, path: Path) -> str | None:
        try:
            current = read_text(path)
        except (OSError, UnicodeDecodeError):
            return "it can no longer be read"
        if current != self.baselines.get(path):
            return "it changed on disk during the run"
        return None

    def display_name(self, path: Path) -> str:
        if self.root is not None:
            try:
                return os.path.relpath(path, self.root)
            except ValueError:
                pass
        return str(path)


def unified_diff(old: str, new: str, name: str) -> str:
    """A ``diff -u`` style patch of one file (``a/name`` -> ``b/name``)."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True),
        fromfile=f"a/{name}", tofile=f"b/{name}",
    )
    return "".join(line if line.endswith(("\n", "\r")) else line + "\n" for line in lines)
