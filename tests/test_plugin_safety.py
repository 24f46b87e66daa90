"""Hostile candidates through the public suggester hook (issue 14): nothing they do may reach
the disk, the test, later tests or pytest, and the run goes on.

Each candidate is either refused by the allow-list (``unsafe``) or runs in a forked child
under the audit guard and the time limit (``error``, ``timeout``, ``crashed``). The project
module ``evil.py`` stands for project code that misbehaves: calling project code is allowed,
so those cases reach the child.
"""

from __future__ import annotations

import json

import pytest

from pytest_kdassert import sandbox
from tests.stubs import fixed_suggester

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sandbox.AVAILABLE, reason="isolation needs os.fork")]


EVIL = '''
import builtins
import math
import os
import shutil
import time


def wipe(path):
    os.remove(path)
    return True


def nuke(path):
    shutil.rmtree(path)
    return True


def scribble(path):
    with open(path, "w") as handle:
        handle.write("pwned")
    return True


def spin():
    while True:
        pass


def nap():
    time.sleep(1000)
    return True


def bail():
    os._exit(1)


def interrupt():
    raise KeyboardInterrupt


def leave():
    raise SystemExit(3)


def patch_pi():
    math.pi = 3
    return True


def patch_len():
    builtins.len = lambda obj: 0
    return True
'''


def _run(pytester, candidates: dict, tests: str, *args: str):
    pytester.makepyfile(evil=EVIL, test_hostile=tests)
    pytester.makeconftest(fixed_suggester(candidates))
    report = pytester.path / "report.json"
    result = pytester.runpytest_inprocess("--suggest-asserts", "-v", "-p", "no:cacheprovider",
                                          f"--kdassert-report={report}", "--kdassert-no-templates",
                                          *args)
    sites = {s["function"]: s for s in json.loads(report.read_text())["sites"]}
    return result, {name: [(c["text"], c["outcome"], c["detail"]) for c in site["candidates"]]
                    for name, site in sites.items()}


def test_filesystem_candidates_are_refused_or_contained(pytester):
    canary = pytester.path / "canary.txt"
    canary.write_text("alive")
    (pytester.path / "keep").mkdir()
    (pytester.path / "keep" / "f.txt").write_text("alive")
    tests = f'''
import os
import os as o
import shutil

from evil import nuke, scribble, wipe

CANARY = {str(canary)!r}
KEEP = {str(pytester.path / "keep")!r}


def test_remove():
    x = 1 + 1


def test_rmtree():
    x = 1 + 1


def test_write():
    x = 1 + 1


def test_exec():
    x = 1 + 1
'''
    candidates = {
        "test_remove": ["assert __import__('os').remove(CANARY) is None",
                        "assert os.remove(CANARY) is None", "assert o.remove(CANARY) is None",
                        "assert o.getcwd() != ''", "assert wipe(CANARY)", "assert x == 2"],
        "test_rmtree": ["assert shutil.rmtree(KEEP) is None", "assert nuke(KEEP)"],
        "test_write": ["assert open(CANARY, 'w').write('pwned') == 5",
                       "assert scribble(CANARY)"],
        "test_exec": ["assert exec('import os; os.remove(CANARY)') is None",
                      "assert eval('1') == 1", "assert compile('1', 'f', 'eval')"],
    }
    result, sites = _run(pytester, candidates, tests)
    result.assert_outcomes(passed=4)
    assert canary.read_text() == "alive"
    assert (pytester.path / "keep" / "f.txt").read_text() == "alive"
    remove = sites["test_remove"]
    assert [(o, d) for _, o, d in remove[:4]] == [
        ("unsafe", "uses __import__"), ("unsafe", "uses os"),
        ("unsafe", "uses .remove"), ("unsafe", "o is the module os")]
    assert [o for _, o, _ in remove[4:]] == ["error", "passed"]
    assert remove[4][2] == "SandboxRefusal: kdassert sandbox refused os.remove"
    assert [(o, d[:12]) for _, o, d in sites["test_rmtree"]] == [
        ("unsafe", "uses shutil"), ("error", "SandboxRefus")]
    assert "refused shutil.rmtree" in sites["test_rmtree"][1][2]
    assert [(o, d[:9]) for _, o, d in sites["test_write"]] == [
        ("unsafe", "uses open"), ("error", "SandboxRe")]
    assert "refused open" in sites["test_write"][1][2]
    assert [(o, d) for _, o, d in sites["test_exec"]] == [
        ("unsafe", "uses exec"), ("unsafe", "uses eval"), ("unsafe", "uses compile")]
    result.stdout.fnmatch_lines(["*unsafe*assert os.remove(CANARY) is None (uses os)*",
                                 "*+    assert x == 2*"])


def test_hangs_exits_and_interrupts_are_recorded_and_the_run_goes_on(pytester):
    tests = '''
import time

from evil import bail, interrupt, leave, nap, spin


def test_hang():
    x = 1 + 1


def test_exit():
    x = 1 + 1


def test_after():
    y = 2 + 2
'''
    candidates = {
        "test_hang": ["assert all(True for _ in iter(int, 1))", "assert spin()",
                      "assert time.sleep(1000) is None", "assert nap()", "assert x == 2"],
        "test_exit": ["assert bail()", "assert interrupt()", "assert leave()", "assert x == 2"],
        "test_after": ["assert y == 4"],
    }
    junit = pytester.path / "junit.xml"
    result, sites = _run(pytester, candidates, tests, "--kdassert-timeout=0.3",
                         f"--junitxml={junit}")
    result.assert_outcomes(passed=3)
    assert [(o, d) for _, o, d in sites["test_hang"]] == [
        ("timeout", "ran over the 0.3 s time limit"), ("timeout", "ran over the 0.3 s time limit"),
        ("unsafe", "time is the module time"), ("timeout", "ran over the 0.3 s time limit"),
        ("passed", "")]
    assert [(o, d) for _, o, d in sites["test_exit"]] == [
        ("crashed", "the process exited with status 1"),
        ("crashed", "raised KeyboardInterrupt"), ("crashed", "raised SystemExit"),
        ("passed", "")]
    assert sites["test_after"] == [("assert y == 4", "passed", "")]
    assert 'tests="3"' in junit.read_text()
    result.stdout.fnmatch_lines(["*kdassert: 3 site(s) wanting an assertion, 3 with a suggestion*"])


def test_interpreter_patches_stay_in_the_child(pytester):
    tests = '''
import builtins
import math

from evil import patch_len, patch_pi


def test_patch():
    x = [1, 2]


def test_later():
    assert math.pi > 3.14
    assert len([1, 2, 3]) == 3
'''
    candidates = {"test_patch": ["assert setattr(math, 'pi', 3) is None",
                                 "assert setattr(builtins, 'len', None) is None",
                                 "assert patch_pi()", "assert patch_len()", "assert x == [1, 2]"]}
    result, sites = _run(pytester, candidates, tests)
    result.assert_outcomes(passed=2)
    assert [o for _, o, _ in sites["test_patch"]] == [
        "unsafe", "unsafe", "passed", "passed", "redundant"]


def test_a_candidate_cannot_empty_the_tests_list(pytester):
    tests = '''
def test_pop():
    items = [1, 2, 3]
    assert ...
    assert items == [1, 2, 3]
'''
    result, sites = _run(pytester, {"test_pop": ["assert items.pop() == 3", "assert items[-1] == 3"]},
                         tests)
    result.assert_outcomes(passed=1)
    assert [o for _, o, _ in sites["test_pop"]] == ["error", "passed"]
    assert "changes the test's items" in sites["test_pop"][0][2]


def test_a_test_that_appends_to_a_file_appends_once(pytester):
    log = pytester.path / "log.txt"
    tests = f'''
def test_append():
    with open({str(log)!r}, "a") as handle:
        handle.write("x")
    n = 1 + 1
'''
    result, sites = _run(pytester, {"test_append": ["assert n == 0"]}, tests)
    result.assert_outcomes(passed=1)
    assert log.read_text() == "x"  # the flakiness re-run could not write it again
    assert [(t, o) for t, o, _ in sites["test_append"]] == [
        ("assert n == 0", "failed"), ("assert n == 2", "passed")]


def test_fixture_side_effects_do_not_make_a_value_unstable(pytester):
    tests = '''
import pytest

CALLS = []


@pytest.fixture
def bag():
    CALLS.append(1)
    return []


def test_bag(bag):
    bag.append(1)
    n = len(bag)
    seen = len(CALLS)
'''
    result, sites = _run(pytester, {"test_bag": ["assert n == 0", "assert seen == 0"]}, tests)
    result.assert_outcomes(passed=1)
    assert [(t, o) for t, o, _ in sites["test_bag"]] == [
        ("assert n == 0", "failed"), ("assert seen == 0", "failed"),
        ("assert n == 1", "passed"), ("assert seen == 1", "passed")]


def test_without_fork_only_allow_listed_candidates_run_and_a_notice_says_so(pytester,
                                                                           monkeypatch):
    monkeypatch.setattr(sandbox, "AVAILABLE", False)
    tests = '''
import os


def test_x():
    items = [1, 2]
'''
    result, sites = _run(pytester, {"test_x": ["assert os.getcwd() != ''",
                                               "assert len(items) == 0"]}, tests)
    result.assert_outcomes(passed=1)
    assert result.stdout.str().count("no process isolation here (os.fork is missing)") == 2
    assert [(t, o) for t, o, _ in sites["test_x"]] == [
        ("assert os.getcwd() != ''", "unsafe"), ("assert len(items) == 0", "failed"),
        ("assert len(items) == 2", "passed")]


def test_two_candidates_grounding_to_an_assertion_the_test_has_leave_the_test_alone(pytester):
    tests = '''
def test_twice():
    oid = tuple([0, 0])
    assert ...
    assert oid == (0, 0)
'''
    result, sites = _run(pytester, {"test_twice": ["assert oid == 0", "assert oid == 1"]}, tests)
    result.assert_outcomes(passed=1)
    assert [(t, o) for t, o, _ in sites["test_twice"]] == [
        ("assert oid == 0", "failed"), ("assert oid == 1", "failed"),
        ("assert oid == (0, 0)", "redundant")]


def test_a_test_that_fakes_os_and_the_clock_cannot_redirect_the_sandbox(pytester):
    """pyfakefs swaps the ``os`` that modules imported for a fake one (its ``pipe`` makes fake
    descriptors), freezegun stops the clocks, monkeypatch sets attributes: the sandbox's
    pipes, forks and deadlines keep to the calls they had when kdassert loaded."""
    tests = '''
import os
import select
import sys
import time
import types


class Box:
    def __init__(self, size):
        self.size = size


def _broken(*args, **kwargs):
    raise OSError("faked by the test")


def test_faked(monkeypatch):
    monkeypatch.setattr(os, "pipe", _broken)
    monkeypatch.setattr(os, "read", _broken)
    monkeypatch.setattr(select, "select", _broken)
    monkeypatch.setattr(time, "monotonic", lambda: 0.0)
    monkeypatch.setattr(sys.modules["pytest_kdassert.sandbox"], "os", types.SimpleNamespace())
    box = Box(3)
'''
    result, sites = _run(pytester, {"test_faked": ["assert box.size == 0"]}, tests)
    result.assert_outcomes(passed=1)
    assert [(t, o) for t, o, _ in sites["test_faked"]] == [
        ("assert box.size == 0", "failed"), ("assert box.size == 3", "passed")]
