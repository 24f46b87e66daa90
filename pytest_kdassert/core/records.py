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
NULLABLE_FIELDS = frozenset({"focal_name"})
"""Fields that may be JSON null; every field is otherwise a string."""


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
    for name in FIELD_NAMES:
        _check_field_type(name, data[name], where)
    return Example(**data)


def _check_field_type(name: str, value, where: str) -> None:
    if isinstance(value, str) or (value is None and name in NULLABLE_FIELDS):
        return
    wanted = "a string or null" if name in NULLABLE_FIELDS else "a string"
    raise DataError(f"{where}: field {name!r} must be {wanted}, got {type(value).__name__} "
                    f"{json.dumps(value)[:40]}. Re-create the file with `kdassert mine`.")


def read_examples(path: str | os.PathLike) -> Iterator[Example]:
    """Yield the examples of a JSONL file in order; blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file. Build one with `kdassert mine`.")
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            line = _decode_line(raw, path, lineno)
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from exc
            yield example_from_dict(data, where=f"{path}:{lineno}")


def _decode_line(raw: bytes, path: Path, lineno: int) -> str:
    """One JSONL line as text; JSON Lines files are UTF-8 (a BOM on line 1 is tolerated)."""
    try:
        return raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}:{lineno}: not UTF-8 (byte {raw[exc.start]:#04x} at column "
                        f"{exc.start + 1}); JSON Lines files must be UTF-8: re-encode it, "
                        "e.g. with `iconv -t UTF-8`.") from exc


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
