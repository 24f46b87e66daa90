"""The project's exemplar pool: the assertions its tests already make, indexed once per run.

For each site the plugin retrieves the most similar assertions of *other* tests of the
project (:class:`pytest_kdassert.core.exemplars.ExemplarIndex`): they feed a format-v2 model
and, adapted to the site's names, become candidates of their own. Tests are read and masked
exactly as the miner reads them (:mod:`pytest_kdassert.core.testfuncs`), so the pool looks like
the exemplars the model was trained with.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterable
from pathlib import Path

from pytest_kdassert.core.exemplars import Exemplar, ExemplarConfig, ExemplarIndex, PoolEntry, Site
from pytest_kdassert.core.pyfile import read_python
from pytest_kdassert.core.testfuncs import find_test_functions, is_test_file, masked_assertions

logger = logging.getLogger(__name__)

MAX_ASSERTIONS = 3
"""Tests with more assertions are left out of the pool, as the miner leaves them out."""


def pool_files(collected: Iterable[Path]) -> list[Path]:
    """The collected test files and the other test files beside them, sorted.

    A run of one file (``pytest tests/test_a.py``) still finds exemplars in ``tests/``.
    """
    files = {Path(p).resolve() for p in collected}
    for directory in {f.parent for f in files}:
        files.update(p.resolve() for p in directory.glob("*.py") if is_test_file(p))
    return sorted(files)


def file_entries(path: Path, display: str) -> list[PoolEntry]:
    """Pool entries of one test file (none when it can't be read or parsed)."""
    try:
        text = read_python(path).text
        tree = ast.parse(text)
    except (OSError, ValueError, SyntaxError, RecursionError, MemoryError) as exc:
        logger.debug("kdassert: %s left out of the exemplar pool: %s", display, exc)
        return []
    lines = text.splitlines()
    entries = []
    for test in find_test_functions(tree):
        for k, found in enumerate(masked_assertions(test.node, lines,
                                                    max_assertions=MAX_ASSERTIONS)):
            if found.masked is not None:
                entries.append(PoolEntry(f"{display}::{test.name}#{k}", found.masked, found.text))
    return entries


class ExemplarPool:
    """Every pool entry of a run's test files, indexed; :meth:`query` finds a site's exemplars."""

    def __init__(self, files: Iterable[Path], display_name, k: int = 3):
        entries = [e for f in files for e in file_entries(f, display_name(f))]
        self.index = ExemplarIndex(entries, ExemplarConfig(k=k))

    def __len__(self) -> int:
        return len(self.index)

    def query(self, display_path: str, qualname: str, masked_test: str) -> list[Exemplar]:
        """The site's exemplars, most similar first (never from its own test)."""
        if not len(self.index):
            return []
        return self.index.query(Site(f"{display_path}::{qualname}", masked_test))
