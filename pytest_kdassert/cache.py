"""Generation results kept in pytest's cache, so an unchanged site is not generated again.

A re-run of an unchanged suite then loads no model at all. Entries are keyed by the model's
fingerprint (its files' names, sizes and modification times, and the beam width) and by the
exact model inputs, so a changed test, focal function or model misses the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

MAX_ENTRIES = 20_000
"""Entries kept per model; the oldest go first (one JSON file under .pytest_cache)."""


def model_fingerprint(path: str | os.PathLike, num_beams: int) -> str:
    """Changes whenever a file of the model directory or the beam width changes."""
    parts = [str(Path(path).resolve()), str(num_beams)]
    for file in sorted(Path(path).iterdir()):
        if file.is_file():
            stat = file.stat()
            parts.append(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _key(*fields: str | None) -> str:
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:32]


class CachedSuggester:
    """A suggester that answers from pytest's cache what it has seen, and asks ``inner`` the rest.

    ``cache`` is pytest's ``config.cache`` (anything with ``get(key, default)`` and
    ``set(key, value)``). Hits and misses are counted for the summary.
    """

    def __init__(self, inner, fingerprint: str, cache):
        self.inner = inner
        self.cache = cache
        self.cache_key = f"kdassert/generations/{fingerprint}"
        self.hits = 0
        self.misses = 0
        self._entries: dict | None = None

    def _load(self) -> dict:
        if self._entries is None:
            stored = self.cache.get(self.cache_key, {})
            self._entries = stored if isinstance(stored, dict) else {}
        return self._entries

    def _save(self) -> None:
        entries = self._load()
        while len(entries) > MAX_ENTRIES:
            entries.pop(next(iter(entries)))
        self.cache.set(self.cache_key, entries)

    def suggest(self, requests: Sequence) -> list[list]:
        keys = [_key("suggest", r.focal_source, r.test_source_masked) for r in requests]
        entries = self._fill(keys, lambda todo: [
            _as_pairs(result) for result in self.inner.suggest([requests[i] for i in todo])])
        return [[tuple(pair) for pair in entries[k]] for k in keys]

    def score(self, requests: Sequence, texts: Sequence[Sequence[str]]) -> list[list[float]]:
        keys = [_key("score", r.focal_source, r.test_source_masked, *site_texts)
                for r, site_texts in zip(requests, texts, strict=True)]
        entries = self._fill(keys, lambda todo: [
            [float(v) for v in row] for row in self.inner.score(
                [requests[i] for i in todo], [texts[i] for i in todo])])
        return [list(entries[k]) for k in keys]

    def _fill(self, keys: list[str], compute) -> dict:
        """The cache entries, with the missing ``keys`` computed (``compute(indices)``) and saved."""
        entries = self._load()
        todo, seen = [], set()
        for index, key in enumerate(keys):
            if key not in entries and key not in seen:
                seen.add(key)
                todo.append(index)
        self.misses += sum(1 for key in keys if key not in entries)
        self.hits += sum(1 for key in keys if key in entries)
        if todo:
            for index, result in zip(todo, compute(todo), strict=True):
                entries[keys[index]] = result
            self._save()
        return entries


def _as_pairs(items) -> list[list]:
    """A suggester's candidates for one site as JSON-ready ``[text, score]`` pairs."""
    from pytest_kdassert.suggester import as_raw_candidates

    return [[c.text, c.score] for c in as_raw_candidates(items)]
