"""What the summary and the report say about sites left without a suggestion (issue 17)."""

from __future__ import annotations

import json

import pytest

from tests.stubs import fixed_suggester

pytestmark = pytest.mark.slow  # pytester runs


def test_apply_lists_placeholders_left_and_names_parametrized_sites_once(pytester):
    pytester.makeconftest(fixed_suggester({"test_filled": ["assert n == 2"]}))
    pytester.makepyfile(test_sum='''
        import pytest

        def test_filled():
            n = len("ab")
            assert ...

        @pytest.mark.parametrize("k", [1, 2])
        def test_left(k):
            m = k * 2
            assert ...
    ''')
    report = pytester.path / "report.json"
    result = pytester.runpytest_inprocess("--suggest-asserts=apply", f"--kdassert-report={report}")
    result.stdout.fnmatch_lines([
        "*test_sum.py::test_left: no verified candidate: none of them passed here*",
        "*1 placeholder(s) left without a suggestion; `assert ...` always passes*",
        "  test_sum.py:10",
    ])
    assert "test_left[1]" not in result.stdout.str()
    assert json.loads(report.read_text())["unfilled_placeholders"] == ["test_sum.py:10"]


def test_diff_mode_does_not_warn_about_placeholders(pytester):
    pytester.makeconftest(fixed_suggester({}))
    pytester.makepyfile(test_sum="def test_left():\n    m = len('ab')\n    assert ...\n")
    result = pytester.runpytest_inprocess("--suggest-asserts")
    assert "placeholder(s) left" not in result.stdout.str()
