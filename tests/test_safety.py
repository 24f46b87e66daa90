"""The allow-list (static and at the site) and the forked sandbox, on plain objects."""

from __future__ import annotations

import ast
import math
import os
import os as o
import shutil
import signal
import threading
import time
import warnings
from pathlib import Path

import pytest

from pytest_kdassert import sandbox
from pytest_kdassert.safety import (
    is_plain_data,
    is_project_code,
    runs_only_plain_data,
    site_refusal,
    static_refusal,
)
from pytest_kdassert.verify import Verifier

ROOT = Path(__file__).resolve().parent.parent


def _static(text: str) -> str | None:
    return static_refusal(ast.parse(text).body[0])


@pytest.mark.parametrize("text", [
    "assert len(items) == 3", "assert sorted(d.keys()) == ['a', 'b']",
    "assert isinstance(x, dict)", "assert all(v > 0 for v in xs)",
    "assert {k: v for k, v in d.items()} == {}", "assert f'{x!r}' == '1'",
    "assert result[1:3] == [2, 3]", "assert not cart.items", "assert x == pytest.approx(0.5)",
    "self.assertEqual(t, 4)", "assert math.isclose(a, 0.1)", "assert getattr(obj, 'name') == 'a'",
    "assert a ** 2 == 4", "assert x if y else z", "assert -x == +y",
    "np.testing.assert_allclose(a, b)", "self.assertEqual(output, input)",
])
def test_plain_checks_pass_the_static_list(text):
    assert _static(text) is None


@pytest.mark.parametrize(("text", "reason"), [
    ("assert __import__('os').remove(p) is None", "uses __import__"),
    ("assert exec('x') is None", "uses exec"),
    ("assert open(p, 'w').write('x')", "uses open"),
    ("assert setattr(math, 'pi', 3) is None", "uses setattr"),
    ("assert os.getcwd()", "uses os"),
    ("assert sys.modules", "uses sys"),
    ("assert (lambda: 1)()", "a lambda"),
    ("assert (y := 2)", "an assignment expression (:=)"),
    ("assert x.__class__ is int", "uses the dunder attribute .__class__"),
    ("assert p.write_text('x')", "uses .write_text"),
    ("assert p.unlink() is None", "uses .unlink"),
    ("assert getattr(x, name)", "getattr with an attribute name that is not a plain literal"),
    ("assert getattr(x, '__dict__')", "getattr with an attribute name that is not a plain literal"),
    ("assert 10 ** 10 ** 10", "a power or shift whose right side is not a small literal"),
    ("assert '{0.__class__}'.format(x)", "str.format with a dunder field"),
    ("assert frame.f_back", "uses .f_back"),
])
def test_hostile_forms_are_refused_statically(text, reason):
    assert _static(text) == reason


def test_the_verifier_screens_unsafe_candidates_out():
    text, problem = Verifier().screen("assert open('x', 'w')")
    assert text is None
    assert (problem.outcome, problem.detail) == ("unsafe", "uses open")


def _here(name):  # project code: this file is under the repository root
    return name


def test_site_part_resolves_names_in_the_namespace():
    namespace = {"o": o, "shutil": shutil, "math": math, "rm": os.remove, "helper": _here,
                 "items": [1], "Path": Path, "stamp": time.time, "pytest": pytest}

    def refusal(text):
        return site_refusal(ast.parse(text).body[0], namespace, ROOT)

    assert refusal("assert o.getcwd()") == "o is the module os"
    assert refusal("assert rm(p) is None").startswith("rm is not on the allow-list")
    assert refusal("assert stamp() > 0").startswith("stamp is not on the allow-list")
    assert refusal("assert print(1) is None").startswith("print is not on the allow-list")
    assert refusal("assert list(map(eval, items))").startswith("eval is not on the allow-list")
    assert site_refusal(ast.parse("assert input == [1]").body[0], {"input": [1]}, ROOT) is None
    assert refusal("assert math.isclose(1, 1)") is None
    assert refusal("assert helper(1) == 1") is None  # project code
    assert refusal("assert len(items) == 1 and sorted(items)") is None
    assert refusal("assert items.count(1) == 1") is None  # a method of the test's value
    assert refusal("assert Path('a').name == 'a'") is None  # a class
    assert refusal("assert x == pytest.approx(1.0)") is None
    assert refusal("assert pytest.main([]) == 0").startswith("pytest.main is not on")
    assert refusal("assert all(o for o in items)") is None  # comprehension target shadows o


def test_project_code_is_code_under_the_rootdir_outside_packages():
    assert is_project_code(_here, ROOT)
    assert not is_project_code(_here, ROOT / "docs")
    assert not is_project_code(pytest.approx, ROOT)
    assert not is_project_code(os.remove, ROOT)


# -- the sandbox --------------------------------------------------------------------------
needs_fork = pytest.mark.skipif(not sandbox.AVAILABLE or not Path("/proc/self/task").is_dir(),
                                reason="needs os.fork and /proc")


def _children() -> set[int]:
    """This process's children, zombies included (other tests may leave some of their own)."""
    found = set()
    for task in Path("/proc/self/task").iterdir():
        with open(task / "children") as listing:
            found.update(int(pid) for pid in listing.read().split())
    return found


def _work(task):
    kind, value = task
    if kind == "value":
        return value
    if kind == "hang":
        while True:
            pass
    if kind == "exit":
        os._exit(value)
    if kind == "raise":
        raise value()
    if kind == "write":
        with open(value, "w") as handle:
            handle.write("x")
    if kind == "remove":
        os.remove(value)
    if kind == "dirty":
        return sandbox.Dirty(value)
    return None


@needs_fork
def test_run_forked_yields_results_failures_and_goes_on():
    tasks = [("value", 1), ("hang", None), ("value", 2), ("exit", 3), ("raise", KeyboardInterrupt),
             ("raise", SystemExit), ("dirty", 4), ("value", 5)]
    started = time.monotonic()
    results = list(sandbox.run_forked(tasks, _work, timeout=0.3))
    assert time.monotonic() - started < 5
    assert [r for _, r in results] == [
        1, sandbox.Failure("timeout", "ran over the 0.3 s time limit"), 2,
        sandbox.Failure("crashed", "the process exited with status 3"),
        sandbox.Failure("crashed", "raised KeyboardInterrupt"),
        sandbox.Failure("crashed", "raised SystemExit"), 4, 5]


@needs_fork
def test_the_guard_refuses_writes_and_removes_in_the_child(tmp_path):
    canary = tmp_path / "canary"
    canary.write_text("alive")
    results = list(sandbox.run_forked([("write", str(tmp_path / "new")), ("remove", str(canary)),
                                       ("value", "after")], _guarded, timeout=5))
    assert [r for _, r in results] == ["SandboxRefusal", "SandboxRefusal", "after"]
    assert canary.read_text() == "alive"
    assert not (tmp_path / "new").exists()


def _guarded(task):
    try:
        return _work(task)
    except PermissionError as exc:
        return type(exc).__name__


@needs_fork
def test_a_real_ctrl_c_stops_the_parent_and_reaps_the_child():
    before = _children()
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        list(sandbox.run_forked([("hang", None)], _work, timeout=30))
    timer.join()
    assert _children() <= before  # no child left behind


@needs_fork
def test_standby_runs_the_job_on_the_state_it_was_forked_with():
    before = _children()
    state = {"n": 1}
    standby = sandbox.Standby(lambda payload, guard: state["n"] + payload)
    state["n"] = 100  # the parent moves on; the child keeps what it had
    assert standby.go(10, timeout=5) == 11
    dismissed = sandbox.Standby(lambda payload, guard: 0)
    dismissed.dismiss()
    assert _children() <= before


@needs_fork
def test_a_reaper_waits_for_killed_children_later():
    before = _children()
    reaper = sandbox.Reaper()
    results = list(sandbox.run_forked([("value", 1), ("hang", None), ("value", 2)], _work,
                                      timeout=0.3, reaper=reaper))
    assert [r for _, r in results][::2] == [1, 2]
    standby = sandbox.Standby(lambda payload, guard: payload, reaper=reaper)
    assert standby.go(3, timeout=5) == 3
    reaper.close()
    assert reaper.pids == []
    assert _children() <= before  # every child reaped


@needs_fork
def test_forking_beside_a_thread_warns_nothing():
    # Python 3.12+ warns (DeprecationWarning) when a process with threads forks
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert [r for _, r in sandbox.run_forked([("value", 1)], _work, timeout=5)] == [1]
    finally:
        stop.set()
        thread.join()
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]


# -- plain data: evaluated in the test's process ----------------------------------------------
class _LoudStr(str):
    def __eq__(self, other):  # what a forked child exists for
        raise RuntimeError("ran the test's code")

    __hash__ = str.__hash__


@pytest.mark.parametrize(("text", "plain"), [
    ("assert result == [1, 2]", True),
    ("assert len(result) == 3 and result[0] >= 1", True),
    ("assert sorted(d) == ['a'] and isinstance(n, int)", True),
    ("assert d['a'][1:] == (2,)", True),
    ("assert len(d) + 1 == 2", True),
    ("assert result.count(1) == 1", False),  # a method: attribute access is code
    ("assert s * n == ''", False),  # multiplication can allocate gigabytes
    ("assert obj == 1", False),  # any object's __eq__ is its own code
    ("assert loud == 'x'", False),  # a str subclass may override __eq__
    ("assert [loud] == ['x']", False),
    ("assert missing == 1", False),  # unbound: the child reports the NameError
    ("assert len(big) == 20000", False),  # too big to compare without a time limit
    ("assert len == 1", True),  # the builtin, as a value
    ("assert [x for x in result] == []", False),
])
def test_runs_only_plain_data(text, plain):
    namespace = {"result": [1, 2, 3], "d": {"a": (1, 2)}, "n": 5, "s": "x",
                 "obj": object(), "loud": _LoudStr("x"), "big": list(range(20_000))}
    assert runs_only_plain_data(ast.parse(text).body[0], namespace) is plain


def test_a_shadowed_builtin_is_not_plain():
    def len(value):  # noqa: A001 - the test's own len
        return 0
    assert not runs_only_plain_data(ast.parse("assert len([]) == 0").body[0], {"len": len})


def test_plain_data_counts_nested_items():
    assert is_plain_data({"k": [1, (2.0, None, b"x")], 3: frozenset({"a"})})
    assert not is_plain_data([[0] * 6_000, [0] * 6_000])
    assert not is_plain_data([1, 2, _LoudStr("x")])
