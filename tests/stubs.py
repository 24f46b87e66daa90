"""The stub suggester that pytester runs of the plugin use instead of the model.

``fixed_suggester(candidates)`` is the source of a conftest whose
``pytest_kdassert_suggester`` proposes, for each site, the candidates listed under its test's
qualified name (strings or ``(text, score)`` pairs), and nothing for other sites.
"""

from __future__ import annotations

_TEMPLATE = '''
import pytest

CANDIDATES = {candidates!r}


class Stub:
    def suggest(self, requests):
        return [CANDIDATES.get(r.qualname, []) for r in requests]


@pytest.hookimpl(optionalhook=True)  # so the conftest also loads with -p no:kdassert
def pytest_kdassert_suggester(config):
    return Stub()
'''


def fixed_suggester(candidates: dict) -> str:
    """Conftest source of a suggester proposing ``candidates[qualname]`` per site."""
    return _TEMPLATE.format(candidates=candidates)


NO_CANDIDATES = fixed_suggester({})
"""Conftest source of a suggester that proposes nothing (templates and exemplars still run)."""
