"""Grounding (issue 6) end to end: the stub proposes the shape, the test run fills the value."""

from __future__ import annotations

import ast
import json

import pytest

from pytest_kdassert.grounding import focal_names
from pytest_kdassert.verify import Verifier
from tests.stubs import fixed_suggester

CART = '''
import random

_counter = [0]


class Box:
    pass


def total(cart):
    return sum(cart)


def average(xs):
    return sum(xs) / len(xs)


def make_box():
    return Box()


def tick():
    _counter[0] += 1
    return _counter[0]


def words(text):
    return text.split()


def draw():
    return random.randint(1, 10 ** 9)


def is_empty(xs):
    return not xs
'''

TESTS = '''
import unittest

import pytest

from cart import average, draw, is_empty, make_box, tick, total, words


def test_total():
    cart = [5, 10]
    result = total(cart)


def test_weak():
    result = total([1])


def test_average():
    avg = average([1, 2])


def test_box():
    box = make_box()


def test_tick():
    n = tick()


def test_draw():
    r = draw()


@pytest.mark.parametrize("k", [1, 2])
def test_param(k):
    d = total([k])


def test_words():
    w = words("a b")


def test_in():
    w = words("x y")
    assert ...


def test_is():
    flag = is_empty([])


def test_not_equal():
    t = total([1])


class TestUnit(unittest.TestCase):
    def setUp(self):
        self.items = [2, 2]

    def test_unit(self):
        t = total(self.items)

    def test_unit_tick(self):
        n = tick()
'''

NO_PYTEST = '''
from cart import average


def test_avg_no_import():
    a = average([1, 2])
'''


CANDIDATES = {
    "test_total": ["assert total(cart) == 0", "assert result is not None"],
    "test_average": ["assert avg == 2"],
    "test_weak": ["assert result is not None", "assert result == 0"],
    "test_box": ["assert box == 0"],
    "test_tick": ["assert n == 0"],
    "test_draw": ["assert r == 0"],
    "test_words": ["assert len(w) == 0"],
    "test_param": ["assert d == 0"],
    "test_in": ["assert 'z' in w"],
    "test_is": ["assert flag is False"],
    "test_not_equal": ["assert t != 1"],
    "TestUnit.test_unit": ["self.assertEqual(t, 0)"],
    "TestUnit.test_unit_tick": ["self.assertEqual(n, 0)"],
    "test_avg_no_import": ["assert a == 0"],
}


@pytest.fixture
def project(pytester):
    pytester.makepyfile(cart=CART, test_cart=TESTS, test_noimport=NO_PYTEST)
    pytester.makeconftest(fixed_suggester(CANDIDATES))
    return pytester


def _sites(report) -> dict:
    return {s["function"]: s for s in json.loads(report.read_text())["sites"]}


@pytest.mark.slow
def test_grounding_applies_observed_values(project):
    report = project.path / "report.json"
    result = project.runpytest_inprocess("--suggest-asserts=apply", "--kdassert-no-templates",
                                         f"--kdassert-report={report}")
    result.assert_outcomes(passed=15)
    text = (project.path / "test_cart.py").read_text()
    for line in ["    result = total(cart)\n    assert total(cart) == 15\n",
                 "    avg = average([1, 2])\n    assert avg == pytest.approx(1.5)\n",
                 "    w = words(\"a b\")\n    assert len(w) == 2\n",
                 "    w = words(\"x y\")\n    assert w == ['x', 'y']\n",
                 "    flag = is_empty([])\n    assert flag is True\n",
                 "    t = total([1])\n    assert t == 1\n",
                 "        t = total(self.items)\n        self.assertEqual(t, 4)"]:
        assert line in text
    # no faithful literal for a Box; a random draw differs in the re-run
    assert "    box = make_box()\n\n" in text
    assert "    r = draw()\n\n" in text
    # the re-run starts from the state before the call: a module counter the body bumps
    # reads the same again (and does so in every later run of the suite, in this order)
    assert "    n = tick()\n    assert n == 1\n" in text
    # a module without pytest gets the import its approx needs (libcst's AddImportsVisitor)
    assert (project.path / "test_noimport.py").read_text() == (
        "from cart import average\nimport pytest\n\n\n"
        "def test_avg_no_import():\n    a = average([1, 2])\n    assert a == pytest.approx(1.5)")

    sites = _sites(report)
    total_site = sites["test_total"]
    assert total_site["chosen"] == "assert total(cart) == 15"
    assert total_site["chosen_origin"] == "grounded"
    assert total_site["chosen_grounded_from"] == "assert total(cart) == 0"
    assert [(c["text"], c["outcome"], c["origin"]) for c in total_site["candidates"]] == [
        ("assert total(cart) == 0", "failed", "model"),
        ("assert result is not None", "passed", "model"),
        ("assert total(cart) == 15", "passed", "grounded"),
        ("assert result == 15", "passed", "grounded"),
    ]
    # ranking: a grounded value check on the focal result beats the weak `is not None`
    weak = sites["test_weak"]
    assert (weak["chosen"], weak["chosen_origin"]) == ("assert result == 1", "grounded")
    assert [c["grounded_from"] for c in weak["candidates"]] == [
        None, None, "assert result is not None"]
    tick = sites["test_tick"]
    assert [(c["text"], c["outcome"]) for c in tick["candidates"]] == [
        ("assert n == 0", "failed"), ("assert n == 1", "passed")]
    drawn = sites["test_draw"]
    assert drawn["status"] == "no-verified-candidate"
    assert [(c["outcome"], c["detail"]) for c in drawn["candidates"]] == [
        ("failed", "AssertionError"), ("unstable", "the value differs between runs")]
    assert [c["origin"] for c in sites["test_box"]["candidates"]] == ["model"]
    # parametrized: the value differs between instances, so it is not a grounded constant
    assert [c["outcome"] for c in sites["test_param"]["candidates"]] == [
        "failed", "failed", "unstable"]
    assert sites["test_avg_no_import"]["chosen"] == "assert a == pytest.approx(1.5)"
    # unittest tests are re-run too (a fresh TestCase, setUp and tearDown included)
    unit_tick = sites["TestUnit.test_unit_tick"]
    assert [(c["text"], c["outcome"]) for c in unit_tick["candidates"]] == [
        ("self.assertEqual(n, 0)", "failed"), ("self.assertEqual(n, 2)", "passed")]

    rerun = project.runpytest_inprocess("-p", "no:kdassert")
    rerun.assert_outcomes(passed=15)


@pytest.mark.slow
def test_no_ground_keeps_model_literals(project):
    report = project.path / "report.json"
    result = project.runpytest_inprocess("--suggest-asserts", "--kdassert-no-ground",
                                         f"--kdassert-report={report}")
    result.assert_outcomes(passed=15)
    sites = _sites(report)
    assert all(c["origin"] == "model" for s in sites.values() for c in s["candidates"])
    assert sites["test_total"]["chosen"] == "assert result is not None"
    assert sites["test_total"]["chosen_origin"] == "model"
    assert sites["test_weak"]["chosen"] == "assert result is not None"
    assert sites["test_words"]["status"] == "no-verified-candidate"
    assert json.loads(report.read_text())["settings"]["ground"] is False


def test_verifier_ground_uses_the_frame_namespace():
    verifier = Verifier()
    import pytest as pytest_module

    assert verifier.ground("assert x == 0", {}, {"x": 7}) == "assert x == 7"
    # a module without pytest: approx all the same (the rewriter adds the import), and the
    # check of such a text sees pytest; a module whose `pytest` is something else: no approx
    assert verifier.ground("assert x == 0", {}, {"x": 0.5}) == "assert x == pytest.approx(0.5)"
    assert verifier.check("assert x == pytest.approx(0.5)", {}, {"x": 0.5}).outcome.value == "passed"
    assert verifier.ground("assert x == 0", {"pytest": object()}, {"x": 0.5}) is None
    assert (verifier.ground("assert x == 0", {"pytest": pytest_module}, {"x": 0.5})
            == "assert x == pytest.approx(0.5)")
    assert verifier.ground("assert x == 0", {}, {"x": object()}) is None
    assert verifier.ground("assert missing == 0", {}, {}) is None
    assert verifier.ground("assert pytest.fail() == 0", {"pytest": pytest_module}, {}) is None


def test_focal_names_collects_assigned_targets():
    node = ast.parse("def test():\n    a, b = cart.total(x)\n    c = other()\n"
                     "    late = cart.total(y)\n").body[0]
    assert focal_names(node, "cart.total", before_line=4) == {"total", "a", "b"}
    assert focal_names(node, None) == set()


PURE_FOCAL = '''
def scale(values, factor):
    return [v * factor for v in values]
'''

PURE_TESTS = '''
import random

import pytest

from shapes import scale


def test_pure():
    result = scale([1, 2], 3)


@pytest.mark.parametrize("k", [1, 2])
def test_pure_param(k):
    result = scale([k], 2)


def test_drawn():
    result = scale([random.randint(0, 1000)], 1)
'''


@pytest.mark.slow
def test_a_call_that_must_repeat_its_values_forks_no_rerun(pytester, monkeypatch):
    """The flakiness re-run is skipped where it could tell nothing (:mod:`.repeatable`): the
    pure tests keep their grounded values without a standby child; the one that draws a
    random number is still re-run, and its value found unstable."""
    import pytest_kdassert.flakiness as flakiness

    forked = []
    real = flakiness.Standby
    monkeypatch.setattr(flakiness, "Standby", lambda *a, **k: forked.append(1) or real(*a, **k))
    pytester.makepyfile(shapes=PURE_FOCAL, test_shapes_pure=PURE_TESTS)
    pytester.makeconftest(fixed_suggester({}))
    report = pytester.path / "report.json"
    result = pytester.runpytest_inprocess("--suggest-asserts", f"--kdassert-report={report}",
                                          "-p", "no:randomly")
    result.assert_outcomes(passed=4)
    sites = _sites(report)
    assert sites["test_pure"]["chosen"] == "assert result == [3, 6]"
    assert sites["test_pure_param"]["status"] == "suggested"
    drawn = {c["outcome"] for c in sites["test_drawn"]["candidates"] if c["text"].startswith("assert result == [")}
    assert drawn == {"unstable"} and sites["test_drawn"]["chosen"] == "assert len(result) == 1"
    assert [sites[name]["rerun"] for name in ("test_pure", "test_pure_param", "test_drawn")] == [
        "skipped: repeatable", "skipped: repeatable", "done"]
    assert len(forked) == 1  # test_drawn's
