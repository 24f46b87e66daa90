"""The mining schema: one (focal function, masked test, assertion) example per JSONL line.

Other tools and our own benchmarks read these files, so the field set is fixed: a record
with a missing or extra field is rejected with the line number.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from pytest_kdassert.core.atomic import atomic_write
from pytest_kdassert.core.errors import DataError


@dataclass(frozen=True)
class Example:
    """One assertion to predict, with the code it is predicted from."""

    id: str
    """``<project>:<test_file>::<test_name>#<k>``; k counts assertions within the test."""
    project: str
    test_file: str
    test_name: str
    focal_name: str | None
    """Qualified name of the function under test, or None when none was resolved."""
    focal_source: str
    """Source of the focal function (empty when ``focal_name`` is None)."""
    test_source_masked: str
    """Dedented test source with the assertion replaced by ``<AssertPlaceHolder>``."""
    assertion: str
    """The masked assertion statement, normalised with ``ast.unparse``."""


FIELD_NAMES = tuple(f.name for f in fields(Example))


def example_from_dict(data: dict, *, where: str = "record") -> Example:
    """Build an Example from a decoded JSON object, naming the offending field on error."""
    if not isinstance(data, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(data).__name__}")
    keys = set(data)
    missing = [name for name in FIELD_NAMES if name not in keys]
    extra = sorted(keys - set(FIELD_NAMES))
    if missing or extra:
        raise DataError(
            f"{where}: not in the mining schema (missing: {missing or 'none'}, "
            f"unexpected: {extra or 'none'}). Re-create the file with `kdassert mine`."
        )
    return Example(**data)


def read_examples(path: str | os.PathLike) -> Iterator[Example]:
    """Yield the examples of a JSONL file in order; blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file. Build one with `kdassert mine`.")
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from exc
            yield example_from_dict(data, where=f"{path}:{lineno}")


def load_examples(path: str | os.PathLike, limit: int | None = None) -> list[Example]:
    """Read a JSONL file into a list, keeping at most ``limit`` examples."""
    examples = []
    for example in read_examples(path):
        if limit is not None and len(examples) >= limit:
            break
        examples.append(example)
    return examples


def write_examples(path: str | os.PathLike, examples: Iterable[Example]) -> int:
    """Write examples atomically (temp file + rename); returns how many were written."""
    count = 0
    with atomic_write(path) as handle:
        for example in examples:
            handle.write(json.dumps(asdict(example), ensure_ascii=False) + "\n")
            count += 1
    return count
