"""Split by project, remove duplicates, cap each project: all deterministic.

Held-out projects are forced into ``test``. Duplicates (same whitespace-normalised masked
test and assertion) are removed across all splits, keeping the copy in the split that is
processed first (test, then valid, then train), so no test example leaks into training.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from pytest_kdassert.core.records import Example

SPLITS = ("train", "valid", "test")
_PRIORITY = ("test", "valid", "train")


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def assign_split(project: str, valid_fraction: float, test_fraction: float,
                 forced: str | None = None) -> str:
    """``forced`` if given, else a stable choice from the hash of the project name."""
    if forced is not None:
        return forced
    point = (_hash(project) % 10_000) / 10_000
    if point < valid_fraction:
        return "valid"
    if point < valid_fraction + test_fraction:
        return "test"
    return "train"


def dedupe_key(example: Example) -> tuple[str, str]:
    return " ".join(example.test_source_masked.split()), example.assertion


def cap_examples(examples: list, limit: int | None, key=lambda e: e.id) -> list:
    """At most ``limit`` items, chosen by hash of ``key`` (stable), in their original order."""
    if limit is None or len(examples) <= limit:
        return list(examples)
    chosen = set(sorted(range(len(examples)), key=lambda i: _hash(key(examples[i])))[:limit])
    return [item for i, item in enumerate(examples) if i in chosen]


def dedupe(groups: Iterable[tuple[str, list]], key=lambda e: e) -> tuple[dict[str, list], int]:
    """Drop repeated items across ``(split, items)`` groups, test split first.

    Returns the kept items per group index (as ``{str(i): items}``) and how many were dropped.
    """
    groups = list(groups)
    order = sorted(range(len(groups)), key=lambda i: (_PRIORITY.index(groups[i][0]), i))
    seen: set = set()
    kept: dict[str, list] = {}
    dropped = 0
    for i in order:
        items = []
        for item in groups[i][1]:
            k = dedupe_key(key(item))
            if k in seen:
                dropped += 1
                continue
            seen.add(k)
            items.append(item)
        kept[str(i)] = items
    return kept, dropped
