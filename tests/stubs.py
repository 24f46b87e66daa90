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


_SCORING = _TEMPLATE.replace("""    def suggest(self, requests):""", """    def score(self, requests, texts):
        return [[SCORES.get(t, {default!r}) for t in site] for site in texts]

    def suggest(self, requests):""").replace("CANDIDATES = {candidates!r}",
                                        "CANDIDATES = {candidates!r}\nSCORES = {scores!r}")


def scoring_suggester(candidates: dict, scores: dict[str, float], default: float = -5.0) -> str:
    """Like :func:`fixed_suggester`, with a ``score`` method: the model's score of a text is
    ``scores[text]`` (``default`` for the rest)."""
    return _SCORING.format(candidates=candidates, scores=scores, default=default)
