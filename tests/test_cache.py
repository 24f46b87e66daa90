"""Generation results are reused from pytest's cache for unchanged models and inputs."""

from __future__ import annotations

import pytest

from pytest_kdassert.cache import CachedSuggester, model_fingerprint
from pytest_kdassert.suggester import SuggestRequest


class DictCache:
    """pytest's cache interface over a dict, JSON round-tripped like the real one."""

    def __init__(self):
        self.data = {}

    def get(self, key, default):
        import json

        return json.loads(self.data[key]) if key in self.data else default

    def set(self, key, value):
        import json

        self.data[key] = json.dumps(value)


class Counting:
    def __init__(self):
        self.suggested, self.scored = [], []

    def suggest(self, requests):
        self.suggested += [r.qualname for r in requests]
        return [[(f"assert {r.qualname} == 1", -0.5), "assert y"] for r in requests]

    def score(self, requests, texts):
        self.scored += [r.qualname for r in requests]
        return [[-1.0 * len(t) for t in site] for site in texts]


def _request(name, test=None):
    return SuggestRequest(f"t.py::{name}", name, "f", "def f(): ...", test or f"{name} = f()")


def test_second_call_is_answered_from_the_cache():
    cache, inner = DictCache(), Counting()
    first = CachedSuggester(inner, "m1", cache).suggest([_request("a"), _request("b")])
    again = CachedSuggester(inner, "m1", cache)
    second = again.suggest([_request("a"), _request("b")])
    assert second == first == [[("assert a == 1", -0.5), ("assert y", None)],
                               [("assert b == 1", -0.5), ("assert y", None)]]
    assert inner.suggested == ["a", "b"]
    assert (again.hits, again.misses) == (2, 0)


def test_changed_input_or_model_misses():
    cache, inner = DictCache(), Counting()
    CachedSuggester(inner, "m1", cache).suggest([_request("a")])
    CachedSuggester(inner, "m1", cache).suggest([_request("a", test="a = f(2)")])
    CachedSuggester(inner, "m2", cache).suggest([_request("a")])
    assert inner.suggested == ["a", "a", "a"]


def test_scores_are_cached_per_text_list():
    cache, inner = DictCache(), Counting()
    cached = CachedSuggester(inner, "m1", cache)
    assert cached.score([_request("a")], [["assert x", "assert xy"]]) == [[-8.0, -9.0]]
    assert cached.score([_request("a")], [["assert x", "assert xy"]]) == [[-8.0, -9.0]]
    assert cached.score([_request("a")], [["assert z"]]) == [[-8.0]]
    assert inner.scored == ["a", "a"]


def test_fingerprint_follows_the_model_files(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"1234")
    first = model_fingerprint(tmp_path, 5)
    assert model_fingerprint(tmp_path, 5) == first
    assert model_fingerprint(tmp_path, 3) != first
    (tmp_path / "model.safetensors").write_bytes(b"12345")
    assert model_fingerprint(tmp_path, 5) != first


@pytest.mark.slow
def test_a_warm_rerun_loads_no_model(pytester, tiny_model_dir):
    pytester.makepyfile(test_it="def test_a():\n    x = 0 + 1\n")
    args = ("--suggest-asserts", "--kdassert-model", str(tiny_model_dir))
    cold = pytester.runpytest_subprocess(*args)
    assert "from pytest's cache" not in cold.stdout.str()
    warm = pytester.runpytest_subprocess(*args)
    warm.stdout.fnmatch_lines(["*2 of 2 model result(s) came from pytest's cache*"])
