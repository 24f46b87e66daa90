"""End-to-end tests of ``pytest --suggest-asserts`` through pytester.

A stub suggester (the ``pytest_kdassert_suggester`` hook in a conftest) makes the
candidates fixed; one test runs a real tiny model instead. Every test here is a pytester
run of 2-13 s, so the module is off the fast lane (``-m "not slow"``).
"""

from __future__ import annotations

import json
import sys

import pytest

from tests.stubs import fixed_suggester

pytestmark = pytest.mark.slow

SHOP = '''
def total(prices):
    return sum(prices)


def scale(prices, factor):
    return [p * factor for p in prices]
'''

TESTS = '''
import unittest

import pytest

from shop import scale, total


def test_placeholder():
    t = total([1, 2])
    assert ...  # what should t be?


@pytest.mark.parametrize("n", [1, 2])
def test_param(n):
    doubled = scale([n], 2)


class TestOuter:
    class TestInner:
        def test_nested(self):
            v = total([3])


class TestUnit(unittest.TestCase):
    def test_unit(self):
        t = total([5])


def test_already_asserts():
    assert total([]) == 0
'''


CANDIDATES = {
    "test_placeholder": ["assert t == 4", "assert t == 3", "assert t >= 0"],
    "test_param": ["assert doubled == [2]", "assert doubled == [2 * n]"],
    "TestOuter.TestInner.test_nested": ["assert v ==", "assert v == 3"],
    "TestUnit.test_unit": ["self.assertEqual(t, 5)"],
    "test_already_asserts": ["assert total([]) == 0"],
}


@pytest.fixture
def project(pytester):
    """A small project: focal module, tests of every shape, and the stub suggester."""
    pytester.makepyfile(shop=SHOP, test_shop=TESTS)
    pytester.makeconftest(fixed_suggester(CANDIDATES))
    return pytester


def test_diff_mode_prints_one_diff_and_writes_nothing(project):
    before = (project.path / "test_shop.py").read_text()
    result = project.runpytest_inprocess("--suggest-asserts", "-v")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines([
        "*kdassert: 4 site(s) wanting an assertion, 4 with a suggestion*",
        "*test_shop.py::test_placeholder line 10, focal total:*",
        "*failed * assert t == 4 (AssertionError)*",
        "*[*] passed*assert t == 3*",
        "*syntax * assert v ==*",
        "--- a/test_shop.py",
        "+++ b/test_shop.py",
        "-    assert ...  # what should t be?",
        "+    assert t == 3  # what should t be?",
        "+    assert doubled == [2 * n]",
        "+            assert v == 3",
        "+        self.assertEqual(t, 5)",
        "*nothing was written*",
    ])
    assert result.stdout.str().count("--- a/test_shop.py") == 1
    assert "test_already_asserts line" not in result.stdout.str()
    assert (project.path / "test_shop.py").read_text() == before
    assert sorted(p.name for p in project.path.iterdir() if p.is_file()) == [
        "conftest.py", "shop.py", "test_shop.py"]


def test_apply_mode_writes_files_that_parse_and_pass(project):
    crlf = "from shop import total\r\n\r\ndef test_crlf():\r\n    t = total([2])\r\n"
    (project.path / "test_crlf.py").write_bytes(crlf.encode())
    result = project.runpytest_inprocess("--suggest-asserts=apply", "--kdassert-all",
                                          "--kdassert-no-templates")
    result.stdout.fnmatch_lines(["*wrote 4 assertion(s) to test_shop.py*"])
    text = (project.path / "test_shop.py").read_text()
    assert "assert ..." not in text
    # --kdassert-all: the suggestion for test_already_asserts is the assertion it already has
    assert text.endswith("def test_already_asserts():\n    assert total([]) == 0")
    rerun = project.runpytest_inprocess("-p", "no:kdassert")
    rerun.assert_outcomes(passed=7)
    # the CRLF file got no candidate from the stub (unknown qualname): untouched
    assert (project.path / "test_crlf.py").read_bytes() == crlf.encode()


def test_apply_keeps_crlf_line_endings(pytester):
    pytester.makeconftest(fixed_suggester({"test_crlf": ["assert t == 2"]}))
    source = "def test_crlf():\r\n    t = 1 + 1  # two\r\n"
    (pytester.path / "test_crlf.py").write_bytes(source.encode())
    pytester.runpytest_inprocess("--suggest-asserts=apply").assert_outcomes(passed=1)
    expected = "def test_crlf():\r\n    t = 1 + 1  # two\r\n    assert t == 2\r\n"
    assert (pytester.path / "test_crlf.py").read_bytes() == expected.encode()


def test_review_accepts_and_rejects(project):
    # a real subprocess with real stdin: the plugin must suspend pytest's capture to read it
    result = project.run(sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                         "--suggest-asserts=review", stdin=b"y\nn\n\ny\n")
    result.stdout.fnmatch_lines(["*[[]1/4[]] test_shop.py::test_placeholder*",
                                 "*wrote 2 assertion(s) to test_shop.py*",
                                 "*accepted 2 of 4 suggestion(s)*"])
    text = (project.path / "test_shop.py").read_text()
    assert "    assert t == 3  # what should t be?\n" in text  # 1: yes
    assert "assert doubled" not in text  # 2: no
    assert "assert v == 3" not in text  # 3: empty line = default no
    assert "        self.assertEqual(t, 5)\n" in text  # 4: yes


def test_failing_tests_and_failing_candidates_get_no_suggestion(pytester):
    pytester.makeconftest(fixed_suggester({
        "test_fails": ["assert x == 1"], "test_ok": ["assert x == 2", "assert x == 1 + 1"]}))
    pytester.makepyfile(test_mixed='''
        def test_fails():
            x = 0 + 1
            assert ...
            raise RuntimeError("broken")

        def test_ok():
            x = 0 + 1
    ''')
    report = pytester.path / "out" / "report.json"
    # grounding would turn `assert x == 2` into `assert x == 1`: this test is about failing
    # candidates, so it is off here (tests/test_plugin_grounding.py covers it)
    result = pytester.runpytest_inprocess("--suggest-asserts", f"--kdassert-report={report}",
                                          "--kdassert-no-ground")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*2 site(s) wanting an assertion, 0 with a suggestion*",
                                 "*test_mixed.py::test_fails: the test failed after kdassert ran "
                                 "candidates at line 3, no suggestion;*",
                                 "*test_mixed.py::test_ok: no verified candidate: none of them passed here*"])
    data = json.loads(report.read_text())
    assert data["version"] == 1 and data["settings"]["mode"] == "diff"
    fails, ok = data["sites"]
    assert fails == {
        "nodeid": "test_mixed.py::test_fails", "nodeids": ["test_mixed.py::test_fails"],
        "file": "test_mixed.py", "line": 3, "function": "test_fails", "mode": "placeholder",
        "focal": None, "status": "test-failed", "chosen": None, "chosen_origin": None,
        "chosen_grounded_from": None, "rerun": None, "exemplars": [],
        "candidates": [{"text": "assert x == 1", "score": None, "rank": 0,
                        "outcome": "passed", "detail": "", "origin": "model",
                        "grounded_from": None, "similarity": None}],
    }
    assert ok["status"] == "no-verified-candidate" and ok["mode"] == "append"
    assert [c["outcome"] for c in ok["candidates"]] == ["failed", "failed"]


def test_a_failure_after_candidates_ran_mid_test_is_explained(pytester):
    # without isolation the candidate consumes the list the rest of the test checks
    pytester.makeconftest(fixed_suggester({"test_side": ["assert items.pop() == 3"],
                                                  "test_broken": ["assert x == 1"]}))
    pytester.makepyfile(test_side='''
        def test_side():
            items = [1, 2, 3]
            assert ...
            assert len(items) == 3

        def test_broken():
            raise RuntimeError("broken")
            x = 0 + 1
    ''')
    result = pytester.runpytest_inprocess("--suggest-asserts", "--kdassert-no-ground",
                                          "--kdassert-no-isolation")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*test_side.py::test_side: the test failed after kdassert ran candidates at line 3, "
        "no suggestion; a candidate with a side effect can cause that: check with -p no:kdassert*",
        "*test_side.py::test_broken: the test fails on its own, no suggestion*"])
    pytester.runpytest_inprocess("-p", "no:kdassert").assert_outcomes(passed=1, failed=1)
    # isolated (the default), the pop happens in a child: the test passes, and the check
    # that mutated the list is not suggested (it would break the test once written)
    isolated = pytester.runpytest_inprocess("--suggest-asserts", "--kdassert-no-ground", "-v")
    isolated.assert_outcomes(passed=1, failed=1)
    isolated.stdout.fnmatch_lines([
        "*error*assert items.pop() == 3 (changes the test's items: a check must leave them*"])
    assert "+    assert items.pop()" not in isolated.stdout.str()


def test_a_path_after_the_flag_is_a_path_not_a_mode(project):
    result = project.runpytest_inprocess("--suggest-asserts", "test_shop.py")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*kdassert: 4 site(s) wanting an assertion, 4 with a suggestion*",
                                 "*nothing was written*"])
    bogus = project.runpytest_inprocess("--suggest-asserts=bogus")
    bogus.stderr.fnmatch_lines(["*--suggest-asserts must be one of diff, apply, review, got 'bogus'*"])


def test_no_verify_keeps_the_top_candidate(pytester):
    pytester.makeconftest(fixed_suggester({"test_ok": ["assert x == 2"]}))
    pytester.makepyfile(test_nv="def test_ok():\n    x = 0 + 1\n")
    result = pytester.runpytest_inprocess("--suggest-asserts", "--kdassert-no-verify")
    result.stdout.fnmatch_lines(["+    assert x == 2"])


def test_syntax_error_elsewhere_and_file_modified_mid_run(project):
    project.makepyfile(test_broken="def test_x(:\n    pass\n")
    project.makepyfile(test_zz_editor='''
        from pathlib import Path

        def test_edit_other_file():
            path = Path(__file__).with_name("test_shop.py")
            path.write_text(path.read_text() + "# edited by a test\\n")
            assert True
    ''')
    result = project.runpytest_inprocess("--suggest-asserts=apply",
                                         "--continue-on-collection-errors")
    result.assert_outcomes(passed=7, errors=1)
    result.stdout.fnmatch_lines(["*skipped test_shop.py: it changed on disk during the run*"])
    assert "INTERNALERROR" not in result.stdout.str()
    assert (project.path / "test_shop.py").read_text().endswith("# edited by a test\n")
    assert "assert ..." in (project.path / "test_shop.py").read_text()


def test_bad_options_and_missing_model(pytester):
    pytester.makepyfile(test_one="def test_one():\n    x = 0 + 1\n")
    bad = pytester.runpytest_inprocess("--suggest-asserts", "--kdassert-beams=0")
    bad.stderr.fnmatch_lines(["*kdassert: --kdassert-beams must be >= 1, got 0*"])
    missing = pytester.runpytest_inprocess("--suggest-asserts",
                                           f"--kdassert-model={pytester.path / 'nope'}")
    missing.assert_outcomes(passed=1)
    missing.stdout.fnmatch_lines(["*kdassert: no suggestions: Model * not found*"])


def test_plain_run_imports_no_torch_and_switch_off(pytester):
    pytester.makeconftest('''
        import sys

        def pytest_sessionfinish(session):
            heavy = sorted(m for m in ("torch", "transformers", "libcst") if m in sys.modules)
            print("HEAVY:", heavy)
    ''')
    pytester.makepyfile(test_one="def test_one():\n    x = 0 + 1\n")
    plain = pytester.runpytest_subprocess("-s")
    plain.assert_outcomes(passed=1)
    assert "HEAVY: []" in plain.stdout.str()
    off = pytester.runpytest_subprocess("-p", "no:kdassert", "--suggest-asserts")
    off.stderr.fnmatch_lines(["*unrecognized arguments: --suggest-asserts*"])


def test_xdist_turns_the_plugin_off_with_one_line(project):
    result = project.runpytest_subprocess("-n", "2", "--suggest-asserts=apply")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["kdassert: --suggest-asserts is off under pytest-xdist (-n)*"])
    assert "assert ..." in (project.path / "test_shop.py").read_text()


@pytest.mark.slow
def test_real_tiny_model_end_to_end(pytester, tiny_model_dir):
    pytester.makepyfile(shop=SHOP, test_shop=TESTS)
    report = pytester.path / "report.json"
    result = pytester.runpytest_inprocess(
        "--suggest-asserts", f"--kdassert-model={tiny_model_dir}", "--kdassert-beams=2", "--kdassert-threads=1",
        f"--kdassert-report={report}")
    result.assert_outcomes(passed=6)
    sites = json.loads(report.read_text())["sites"]
    assert [s["function"] for s in sites] == [
        "test_placeholder", "test_param", "TestOuter.TestInner.test_nested", "TestUnit.test_unit"]
    assert sites[0]["focal"] == "total" and sites[1]["focal"] == "scale"
    for site in sites:
        assert [c["rank"] for c in site["candidates"] if c["origin"] == "model"] == [0, 1]
        # the model scores the templates over the test's variables too
        assert all(isinstance(c["score"], float) for c in site["candidates"])
        assert all(c["outcome"] != "not-reached" or c["text"] for c in site["candidates"])
    assert "assert ..." in (pytester.path / "test_shop.py").read_text()


def test_interrupted_run_writes_nothing(pytester):
    pytester.makeconftest(fixed_suggester({"test_a": ["assert x == 1"]}))
    pytester.makepyfile(test_int='''
        def test_a():
            x = 0 + 1

        def test_b():
            raise KeyboardInterrupt
    ''')
    before = (pytester.path / "test_int.py").read_text()
    result = pytester.runpytest_inprocess("--suggest-asserts=apply", no_reraise_ctrlc=True)
    result.stdout.fnmatch_lines(["*the run was interrupted; showing diffs, writing nothing*",
                                 "+    assert x == 1"])
    assert (pytester.path / "test_int.py").read_text() == before


@pytest.mark.slow
def test_a_suggester_that_raises_gives_a_notice_and_the_tests_run(pytester):
    pytester.makeconftest(
        "import pytest\n\n\nclass Broken:\n    def suggest(self, requests):\n"
        "        raise KeyError('oops')\n\n\n@pytest.hookimpl(optionalhook=True)\n"
        "def pytest_kdassert_suggester(config):\n    return Broken()\n")
    pytester.makepyfile(test_a="def test_a():\n    x = 0 + 1\n")
    result = pytester.runpytest_inprocess("--suggest-asserts", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*no suggestions: the suggester raised KeyError: 'oops'*"])
    assert result.ret == 0
