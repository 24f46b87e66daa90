"""Tests that already check something, without an ``assert``, are not sites (issue 17)."""

from __future__ import annotations

import ast
import textwrap

from pytest_kdassert.discovery import FunctionInfo, body_asserts, find_sites
from tests.stubs import fixed_suggester

PROJECT = '''
def parse(text):
    assert isinstance(text, str)  # an internal invariant: not a test helper
    return int(text)
'''

HELPERS = '''
def check_parsed(value, expected):
    if value != expected:
        raise AssertionError(f"{value} != {expected}")
'''

TESTS = '''
import unittest
import warnings

import pytest

from testing.checks import check_parsed
from project import parse


def expect_equal(a, b):
    assert a == b


def test_raises():
    with pytest.raises(ValueError):
        parse("x")


def test_raises_call():
    pytest.raises(ValueError, parse, "x")


def test_warns():
    with pytest.warns(UserWarning):
        warnings.warn("w", UserWarning)


def test_module_helper():
    expect_equal(parse("1"), 1)


def test_imported_helper():
    check_parsed(parse("2"), 2)


def test_wants_one():
    value = parse("3")


class TestCase(unittest.TestCase):
    def _check(self, value):
        self.assertEqual(value, 4)

    def test_assert_raises(self):
        with self.assertRaises(ValueError):
            parse("x")

    def test_method_helper(self):
        self._check(parse("4"))

    def test_wants_one_too(self):
        value = parse("5")
'''


def test_only_tests_that_check_nothing_are_sites(pytester):
    pytester.makepyfile(project=PROJECT, test_checks=TESTS)
    pytester.mkpydir("testing")
    (pytester.path / "testing" / "checks.py").write_text(HELPERS)
    pytester.syspathinsert()
    pytester.makeconftest(fixed_suggester({}))
    result = pytester.runpytest_inprocess("--suggest-asserts", "-v")
    result.assert_outcomes(passed=9)
    out = result.stdout.str()
    assert "kdassert: 2 site(s) wanting an assertion" in out
    assert "test_checks.py::test_wants_one line" in out
    assert "test_checks.py::TestCase::test_wants_one_too line" in out


def _info(source: str) -> FunctionInfo:
    source = textwrap.dedent(source)
    node = ast.parse(source).body[0]
    return FunctionInfo(node=node, qualname=node.name, lines=source.splitlines())


def test_find_sites_asks_about_helpers(tmp_path):
    info = _info("def test_a():\n    helper(1)\n")
    assert len(find_sites(info, tmp_path / "t.py")) == 1
    assert find_sites(info, tmp_path / "t.py", helper_asserts=lambda call: True) == []


def test_body_asserts():
    def asserts(x):
        assert x

    def fails(x):
        if not x:
            pytest_fail = __import__("pytest").fail
            pytest_fail("no")

    def computes(x):
        return x + 1

    def raises_value_error(x):
        raise ValueError(x)

    assert body_asserts(asserts)
    assert not body_asserts(computes)
    assert not body_asserts(raises_value_error)
