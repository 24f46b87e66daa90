"""Memoised pure functions whose entries are dropped together at the end of a run.

The plugin asks the same questions of the same texts at every site (normalise this
assertion, parse that statement), so those functions keep their answers. Many answers are
trees of objects (parsed statements, name tables): kept after the run they would be walked
by every garbage collection pytest makes at its end, so :func:`clear_run_caches` drops them
all when the run is over.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

_CACHES: list = []


def run_cache(maxsize: int) -> Callable:
    """``functools.lru_cache(maxsize)``, cleared by :func:`clear_run_caches`."""

    def decorate(function):
        cached = functools.lru_cache(maxsize=maxsize)(function)
        _CACHES.append(cached)
        return cached

    return decorate


def clear_run_caches() -> None:
    for cache in _CACHES:
        cache.cache_clear()
