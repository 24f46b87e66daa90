"""Template candidates over a test's own variables: which names, and how the plugin ranks them."""

import ast
import json
import textwrap

import pytest

from pytest_kdassert.templates import assigned_names, template_candidates


def _names(source: str, before_line: int = 10_000) -> list[str]:
    return assigned_names(ast.parse(textwrap.dedent(source)).body[0], before_line)


def test_assigned_names_most_recent_first_without_repeats():
    source = """
        def test_x(tmp_path):
            a, (b, c) = 1, (2, 3)
            total: int = a + b
            a += 1
            with open(tmp_path) as handle:
                pass
            _ignored = 0
            if (m := 5):
                pass
    """
    assert _names(source) == ["m", "handle", "a", "total", "c", "b"]


def test_assigned_names_stop_at_the_site_and_skip_nested_scopes():
    source = """
        def test_x():
            x = 1
            def helper():
                inner = 2
            k = lambda: (y := 3)
            z = 4
    """
    assert _names(source) == ["z", "k", "x"]
    assert _names(source, before_line=7) == ["k", "x"]  # line 7 holds `z = 4`


def test_template_candidates_follow_the_test_style():
    assert template_candidates(["n", "cart"], unittest_style=False) == [
        "assert n == 0", "assert cart == 0"]
    assert template_candidates(["n"], unittest_style=True) == ["self.assertEqual(n, 0)"]
    assert template_candidates(list("abcdef"), unittest_style=False, limit=2) == [
        "assert a == 0", "assert b == 0"]


TESTS = '''
import unittest


class Cart:
    def __init__(self):
        self.items = []

    def add(self, item):
        self.items.append(item)
        return self

    def count(self):
        return len(self.items)


def test_count():
    cart = Cart().add("a").add("b")
    n = cart.count()


def test_model_wins():
    cart = Cart().add("a")
    n = cart.count()


class TestUnit(unittest.TestCase):
    def test_items(self):
        cart = Cart().add("x")
        items = cart.items
'''

STUB = '''
CANDIDATES = {{
    "test_count": [("assert_equal(result, expected)", -0.5)],
    "test_model_wins": [("assert len(cart.items) == 1", -3.0)],
    "TestUnit.test_items": [("self.assertTrue(cart)", -0.1)],
}}
SCORES = {{"assert n == 0": -1.0, "assert cart == 0": -2.0,
           "self.assertEqual(items, 0)": -0.4, "self.assertEqual(cart, 0)": -2.0}}


class Stub:
    def suggest(self, requests):
        return [CANDIDATES.get(r.qualname, []) for r in requests]
{score_method}

def pytest_kdassert_suggester(config):
    return Stub()
'''

SCORE_METHOD = '''
    def score(self, requests, texts):
        return [[SCORES[t] for t in site] for site in texts]
'''


def _run(pytester, *args, score=True):
    pytester.makepyfile(test_cart=TESTS)
    pytester.makeconftest(STUB.format(score_method=SCORE_METHOD if score else ""))
    report = pytester.path / "report.json"
    result = pytester.runpytest_inprocess("--suggest-asserts", f"--kdassert-report={report}", *args)
    result.assert_outcomes(passed=3)
    sites = {s["function"]: s for s in json.loads(report.read_text())["sites"]}
    return result, sites


@pytest.mark.slow
def test_templates_are_grounded_verified_and_ranked_by_the_model(pytester):
    result, sites = _run(pytester)
    count = sites["test_count"]
    assert (count["chosen"], count["chosen_origin"]) == ("assert n == 2", "observed")
    assert count["chosen_grounded_from"] == "assert n == 0"
    assert [(c["text"], c["origin"], c["score"]) for c in count["candidates"]] == [
        ("assert_equal(result, expected)", "model", -0.5),
        ("assert n == 0", "template", -1.0),
        ("assert cart == 0", "template", -2.0),
        ("assert n == 2", "observed", -1.0),
    ]
    # a passing model candidate and a passing template compete on the model's score
    assert sites["test_model_wins"]["chosen"] == "assert n == 1"
    # unittest style; assertTrue is a weak check, so the observed value wins
    assert sites["TestUnit.test_items"]["chosen"] == "self.assertEqual(items, ['x'])"
    result.stdout.fnmatch_lines(["*3 site(s) wanting an assertion, 3 with a suggestion "
                                 "(3 a test variable with the value seen in the run)*"])


@pytest.mark.slow
def test_unscored_templates_rank_after_the_models_candidates(pytester):
    _, sites = _run(pytester, score=False)
    assert sites["test_model_wins"]["chosen"] == "assert len(cart.items) == 1"
    assert sites["test_count"]["chosen"] == "assert n == 2"  # nothing else passed
    assert sites["test_count"]["candidates"][1]["score"] is None


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--kdassert-no-templates", "--kdassert-no-ground"])
def test_templates_can_be_turned_off(pytester, flag):
    _, sites = _run(pytester, flag)
    assert all(c["origin"] == "model" for s in sites.values() for c in s["candidates"])
    assert sites["test_count"]["status"] == "no-verified-candidate"
