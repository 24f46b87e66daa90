"""Grounding: candidate forms, faithful literals, unstable values and ranking."""

from __future__ import annotations

import ast

import pytest

from pytest_kdassert.grounding import (
    faithful_literal,
    ground,
    grounding_site,
    is_unstable_expression,
    is_weak,
    rank_score,
)

CONTEXT = {"items": [1, 2, 3], "total": 15.5, "name": "cart", "obj": object(), "tags": {"b", "a"},
           "empty": None, "flag": True, "counts": {"y": 2, "x": 1}}


def evaluate(expr: str):
    return eval(expr, {}, dict(CONTEXT))  # the plugin evaluates in the test's own frame


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        ("assert items == [9]", "assert items == [1, 2, 3]"),
        ("assert len(items) == 0", "assert len(items) == 3"),
        ("assert name != 'x'", "assert name == 'cart'"),
        ("assert empty is not None", "assert empty is None"),
        ("assert 'z' in name", "assert name == 'cart'"),
        ("assert total == pytest.approx(1.0)", "assert total == pytest.approx(15.5)"),
        ("assert flag == False", "assert flag is True"),
        ("assert isinstance(tags, list)", "assert tags == {'a', 'b'}"),
        ("assert counts == {}", "assert counts == {'x': 1, 'y': 2}"),
        ("self.assertEqual(items, [])", "self.assertEqual(items, [1, 2, 3])"),
        ("self.assertEqual(3, len(items))", "self.assertEqual(len(items), 3)"),
        ("self.assertIsNotNone(empty)", "self.assertIsNone(empty)"),
        ("self.assertAlmostEqual(total, 2.0)", "self.assertAlmostEqual(total, 15.5)"),
        ("self.assertTrue(name)", "self.assertEqual(name, 'cart')"),
    ],
)
def test_ground_each_form(candidate, expected):
    grounded = ground(candidate, evaluate)
    assert grounded is not None
    assert grounded.text == expected


@pytest.mark.parametrize(
    "candidate",
    ["assert items", "assert a == b", "x = 1", "assert items ==", "self.fail('x')", "foo(items)"],
)
def test_no_groundable_form(candidate):
    assert grounding_site(candidate) is None


def test_unfaithful_values_are_refused():
    assert faithful_literal(object()) is None  # repr has an address
    assert faithful_literal(float("nan")) is None
    assert faithful_literal("created at 2024-05-01 12:30:00") is None  # a timestamp
    assert faithful_literal("<Foo object at 0x7f3a2b1c9d00>") is None
    assert faithful_literal("x" * 1000) is None  # too long to read
    assert faithful_literal([1, object()]) is None

    class MyInt(int):
        pass

    assert faithful_literal(MyInt(3)) is None  # literal_eval gives int, not MyInt
    assert faithful_literal([1.0, float("inf")]) is None
    assert faithful_literal(complex(1, float("nan"))) is None
    assert faithful_literal({"a": -float("inf")}) is None  # not a float sequence: no approx
    looped: list = [1]
    looped.append(looped)
    assert faithful_literal(looped) is None
    assert ground("assert obj == 1", evaluate) is None


def test_faithful_values_round_trip():
    assert faithful_literal(3) == "3"
    assert faithful_literal(0.1 + 0.2) == "pytest.approx(0.30000000000000004)"
    assert faithful_literal([1.5, 2]) == "pytest.approx([1.5, 2])"
    assert faithful_literal({3, 1, 2}) == "{1, 2, 3}"
    assert faithful_literal(set()) == "set()"
    assert faithful_literal((1,)) == "(1,)"
    assert faithful_literal({"b": [1], "a": None}) == "{'a': None, 'b': [1]}"
    assert faithful_literal(b"\x00ab") == "b'\\x00ab'"


@pytest.mark.parametrize("value", [
    0, -7, 2**70, True, None, "é\n'\"", b"\xff", 1e-300, -0.0, 5e20, complex(1, -2), 1j,
    [1, [2, (3,)]], (), ((),), {1.5: "x", "y": (None, False)}, {frozenset()} - {frozenset()},
    {(1, "a"), (0, "b")}, {"k": {"n": [0.25]}},
])
def test_literals_are_exact_by_construction(value):
    """No evaluation checks the text any more: each one must read back equal, same type."""
    text = faithful_literal(value)
    text = text.removeprefix("pytest.approx(").removesuffix(")") if text.startswith("pytest.approx(") else text
    again = ast.literal_eval(text)
    assert type(again) is type(value)
    assert again == value


def test_unstable_expressions_are_never_grounded():
    assert is_unstable_expression("id(obj)")
    assert is_unstable_expression("time.time() - start")
    assert is_unstable_expression("datetime.now().year")
    assert not is_unstable_expression("len(items)")
    calls = []
    assert ground("assert id(obj) == 1", lambda e: calls.append(e) or 1) is None
    assert calls == []  # not even evaluated


def test_failing_evaluation_grounds_nothing():
    def boom(expr):
        raise NameError(expr)

    assert ground("assert missing == 1", boom) is None


def test_weak_assertions():
    assert is_weak("assert result is not None")
    assert is_weak("assert isinstance(result, list)")
    assert is_weak("assert result")
    assert is_weak("self.assertTrue(result)")
    assert not is_weak("assert result == 3")
    assert not is_weak("assert result is None")


def test_ranking_prefers_focal_and_specific():
    focal = {"total_price", "price"}
    on_focal = rank_score("assert price == 3", -0.5, focal)
    on_setup = rank_score("assert cart == []", -0.5, focal)
    weak_on_focal = rank_score("assert price is not None", -0.1, focal)
    assert on_focal == pytest.approx(0.5)
    assert on_setup == pytest.approx(-0.5)
    assert weak_on_focal == pytest.approx(-0.1)
    assert on_focal > weak_on_focal > on_setup


@pytest.mark.parametrize(("candidate", "names", "grounded"), [
    ("assert (x or y) == 3", {"x": 0, "y": 5}, "assert (x or y) == 5"),
    ("assert (a < b) is False", {"a": 1, "b": 2}, "assert (a < b) is True"),
    ("assert (not x) == 1", {"x": 0}, "assert (not x) is True"),
    ("assert (p if q else r) == 0", {"p": 1, "q": True, "r": 2}, "assert (p if q else r) == 1"),
    ("assert -x == 1", {"x": 2}, "assert -x == -2"),
    ("assert a + b == 1", {"a": 1, "b": 2}, "assert a + b == 3"),
    ("self.assertEqual((x or y), 3)", {"x": 0, "y": 5}, "self.assertEqual(x or y, 5)"),
])
def test_a_grounded_assertion_tests_the_same_expression(candidate, names, grounded):
    """The observed side keeps its parentheses where a comparison would bind tighter:
    ``assert x or y == 5`` passes whenever ``x`` is truthy."""
    result = ground(candidate, lambda expr: eval(expr, dict(names)))  # noqa: S307 - test values
    assert result.text == grounded
    assert ast.unparse(ast.parse(result.text)) == grounded  # normalising keeps it as it is
    if grounded.startswith("assert "):
        exec(result.text, dict(names))  # noqa: S102 - passes on the values it was grounded on
