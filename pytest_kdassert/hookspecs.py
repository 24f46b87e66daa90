"""Hooks kdassert adds to pytest; implement them in a ``conftest.py`` or a plugin."""

from __future__ import annotations

import pytest


@pytest.hookspec(firstresult=True)
def pytest_kdassert_suggester(config):
    """Return a suggester to use instead of the model, or None for the model.

    The object needs one method, ``suggest(requests)``: it receives a list of
    :class:`pytest_kdassert.suggester.SuggestRequest` and returns, for each, a ranked list of
    candidates (strings, ``(text, score)`` pairs, or objects with ``.text`` and ``.score``).
    Used by kdassert's own tests to make runs deterministic; also a way to plug in another
    generator. Mark the implementation ``@pytest.hookimpl(optionalhook=True)`` so that its
    conftest also loads when the plugin is switched off (``-p no:kdassert``).
    """
