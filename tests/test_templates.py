"""Template candidates over a test's own variables: which names, and how the plugin ranks them."""

import ast
import json
import os
import textwrap

import pytest

from pytest_kdassert.templates import (
    acted_on_names,
    assigned_names,
    expression_templates,
    final_call,
    observed_objects,
    state_expressions,
    template_candidates,
)


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
                                 "(3 a test variable or object with the value seen in the run)*"])


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


# -- observed state -----------------------------------------------------------------------
def test_acted_on_names_are_the_tests_own_receivers_most_recent_first():
    node = ast.parse(textwrap.dedent("""
        def test_a(self, table):
            cart = Cart()
            cart.add("x")
            os.path.join("a", "b")
            table.add_row(1)
            self.helper()
            later.append(1)
    """)).body[0]
    bound = frozenset({"self", "table", "cart", "later"})
    assert acted_on_names(node, 8, bound) == ["table", "cart"]
    assert acted_on_names(node, 99, bound) == ["later", "table", "cart"]


def test_final_call_is_a_discarded_value_just_before_the_site():
    node = ast.parse("def test_a():\n    t = T()\n    t.total()\n    assert ...\n").body[0]
    assert final_call(node, 4) == "t.total()"
    assert final_call(node, 3) is None  # the assignment is last: a template already covers it
    checked = ast.parse("def test_a():\n    check_output(x)\n").body[0]
    assert final_call(checked, 99) is None


class _Table:
    kind = "plain"  # a class attribute, not the instance's state

    def __init__(self):
        self.rows = [1, 2]
        self.title = "t"
        self._cache = {}
        self.render = lambda: "x"

    @property
    def colcount(self):
        return 3

    def __len__(self):
        return 2


def test_state_expressions_read_data_attributes_properties_and_len():
    assert state_expressions("table", _Table()) == [
        "len(table)", "table.rows", "table.title", "table.colcount"]
    assert state_expressions("items", [1, 2]) == ["len(items)"]
    assert state_expressions("s", "abc") == []
    assert state_expressions("m", os) == [] and state_expressions("f", len) == []
    assert expression_templates(["len(table)"], unittest_style=True) == [
        "self.assertEqual(len(table), 0)"]


class _Touchy:
    """Every way reading it could run its code counts in ``touched``."""

    touched: list = []

    def __init__(self):
        self.size = 2
        self.parent = _Table()  # an object: no literal to write
        setattr(self, "class", 1)  # a keyword: no expression can read it

    def __getattr__(self, name):
        _Touchy.touched.append(("getattr", name))
        raise AttributeError(name)

    def __getattribute__(self, name):
        if not name.startswith("__"):
            _Touchy.touched.append(("getattribute", name))
        return object.__getattribute__(self, name)

    def __len__(self):
        _Touchy.touched.append("len")
        return 2

    @property
    def __class__(self):  # noqa: F811 - what unittest.mock does
        _Touchy.touched.append("__class__")
        return int

    @property
    def total(self):
        _Touchy.touched.append("total")
        return 3


class _Slotted:
    __slots__ = ("x", "_y")


class _OwnDict:
    @property
    def __dict__(self):  # noqa: PLW3201
        raise AssertionError("read")

    @property
    def ok(self):
        return 1


def test_state_expressions_run_nothing_of_the_object():
    assert state_expressions("t", _Touchy()) == ["len(t)", "t.size", "t.total"]
    assert _Touchy.touched == []
    assert state_expressions("s", _Slotted()) == ["s.x"]
    assert state_expressions("o", _OwnDict()) == ["o.ok"]  # its own __dict__ is not read
    assert state_expressions("t", _Table(), limit=1) == ["len(t)", "t.rows"]


def test_observed_objects_put_the_focal_result_first():
    assert observed_objects(["report", "table", "self"], ["table"], {"report", "summarize"}) \
        == ["report", "table"]
    assert observed_objects(["b", "a"], ["c", "d", "e"], set()) == ["c", "d", "e"]
    assert observed_objects(["self"], [], set()) == []
