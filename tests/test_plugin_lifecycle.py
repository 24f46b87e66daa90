"""When the plugin does what: generation, writing and capture across pytest's phases."""

from __future__ import annotations

import sys

from tests.stubs import fixed_suggester

COUNTING_STUB = '''
import pytest

class Stub:
    def suggest(self, requests):
        with open("suggest-called", "a") as handle:
            handle.write("x")
        return [["assert x == 1"] for _ in requests]


@pytest.hookimpl(optionalhook=True)
def pytest_kdassert_suggester(config):
    return Stub()
'''


def test_apply_writes_without_the_terminal_plugin(pytester):
    pytester.makeconftest(fixed_suggester({"test_a": ["assert x == 1"]}))
    pytester.makepyfile(test_it="def test_a():\n    x = 0 + 1\n")
    result = pytester.runpytest_inprocess("--suggest-asserts=apply", "-p", "no:terminal")
    assert result.ret == 0
    text = (pytester.path / "test_it.py").read_text()
    assert text.splitlines() == ["def test_a():", "    x = 0 + 1", "    assert x == 1"]


def test_collect_only_generates_nothing(pytester):
    pytester.makeconftest(COUNTING_STUB)
    pytester.makepyfile(test_it="def test_a():\n    x = 0 + 1\n")
    result = pytester.runpytest_inprocess("--suggest-asserts=apply", "--co")
    assert result.ret == 0
    assert not (pytester.path / "suggest-called").exists()
    assert "kdassert suggestions" not in result.stdout.str()
    assert (pytester.path / "test_it.py").read_text().splitlines() == ["def test_a():", "    x = 0 + 1"]


def test_collect_only_loads_no_model(pytester):
    pytester.makepyfile(test_it="def test_a():\n    x = 0 + 1\n")
    result = pytester.runpytest_inprocess("--suggest-asserts", "--co",
                                          "--kdassert-model", str(pytester.path / "missing"))
    assert result.ret == 0
    assert "no suggestions" not in result.stdout.str()


def test_review_resumes_capture_afterwards(pytester):
    pytester.makeconftest(fixed_suggester({"test_a": ["assert x == 1"]}) + '''

def pytest_unconfigure(config):
    capman = config.pluginmanager.get_plugin("capturemanager")
    with open("capturing-after", "w") as handle:
        handle.write(str(capman.is_globally_capturing()))
''')
    pytester.makepyfile(test_it="def test_a():\n    x = 0 + 1\n")
    result = pytester.run(sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                          "--suggest-asserts=review", stdin=b"y\n")
    result.stdout.fnmatch_lines(["*accepted 1 of 1 suggestion(s)*"])
    assert (pytester.path / "capturing-after").read_text() == "True"
