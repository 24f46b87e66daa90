"""Unit tests of the plugin's parts: rewriter (before/after), discovery, focal, verification."""

from __future__ import annotations

import ast
import sys
import textwrap

import pytest

from pytest_kdassert.changes import Change, ChangeSet
from pytest_kdassert.discovery import FileIndex, FunctionInfo, find_sites
from pytest_kdassert.focal import resolve_focal
from pytest_kdassert.outcomes import Outcome
from pytest_kdassert.review import review_changes
from pytest_kdassert.rewrite import apply_edits
from pytest_kdassert.verify import FrameTrap, Verifier


def _src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# -- rewriter: before/after -------------------------------------------------------------
def test_replace_placeholder_keeps_comment_and_blank_lines():
    before = _src("""
        def test_a():
            x = f()  # setup

            assert ...  # want one
            return
    """)
    after, count = apply_edits(before, {4: "assert x == 3"}, {})
    assert count == 1
    assert after == before.replace("assert ...  # want one", "assert x == 3  # want one")


def test_append_in_nested_class_keeps_footer_comment_and_crlf():
    before = _src("""
        class TestA:
            class TestB:
                def test_x(self):
                    y = 2
                    # end of test
            def test_x(self):
                y = 1
    """).replace("\n", "\r\n")
    after, count = apply_edits(before, {}, {"TestA.TestB.test_x": "assert y == 2"})
    assert count == 1
    expected = before.replace("y = 2\r\n", "y = 2\r\n            assert y == 2\r\n")
    assert after == expected
    assert "\n" not in after.replace("\r\n", "")


def test_replace_ignores_lines_that_are_not_placeholders():
    before = "def test_a():\n    assert x\n"
    assert apply_edits(before, {2: "assert y"}, {}) == (before, 0)


def test_placeholders_are_matched_by_line_among_untouched_statements():
    # Statements without edits are not visited; the placeholders in them (an inline one, one
    # in an ``if`` suite, one after a ';') still count, so the right line gets the edit.
    before = _src("""
        import pytest; x = 1
        if x: assert ...

        @pytest.mark.skip
        def test_a():
            a = 1; assert ...
            assert ...

        class TestB:
            def test_b(self):
                b = 2
                assert ...  # here

        def test_c():
            c = 3
            assert ...
    """)
    after, count = apply_edits(before, {12: "assert b == 2", 16: "assert c == 3"},
                               {"test_a": "assert a == 1"})
    assert count == 3
    assert after == before.replace("assert ...  # here", "assert b == 2  # here") \
        .replace("    c = 3\n    assert ...", "    c = 3\n    assert c == 3") \
        .replace("    assert ...\n\nclass", "    assert ...\n    assert a == 1\n\nclass")


def test_an_append_to_a_redefined_test_goes_where_it_always_went():
    before = "def test_a():\n    x = 1\n\n\ndef test_a():\n    y = 2\n"
    after, count = apply_edits(before, {}, {"test_a": "assert y == 2"})
    assert (after, count) == (before.replace("x = 1\n", "x = 1\n    assert y == 2\n")
                              .replace("y = 2\n", "y = 2\n    assert y == 2\n"), 2)


def test_a_placeholder_in_a_redefined_test_is_judged_by_its_own_body():
    before = "def test_a():\n    x = 1\n    assert x == 1\n\n\ndef test_a():\n    x = 1\n    assert ...\n"
    after, count = apply_edits(before, {8: "assert x == 1"}, {})
    assert (after, count) == (before.replace("assert ...", "assert x == 1"), 1)


def _many_tests(count: int, newline: str) -> str:
    parts = ["import pytest\n"]
    for i in range(count):
        parts.append([f"\n# {i}\ndef test_p{i}():\n    x = {i}\n    assert ...  # keep\n",
                      f"\n@pytest.mark.slow\ndef test_n{i}():\n    y = [{i}]\n",
                      f"\nclass TestC{i}:\n    def test_m(self):\n        z = {i}\n        assert z == {i}\n"][i % 3])
    return "".join(parts).replace("\n", newline)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("trailing_newline", [True, False])
def test_a_diff_of_the_changed_statements_is_the_whole_file_diff(newline, trailing_newline):
    """Edits parse only the statements they touch and the diff matches lines only there:
    the result is the file difflib compares whole, hunk for hunk."""
    import random

    from pytest_kdassert import rewrite
    from pytest_kdassert.changes import unified_diff
    from pytest_kdassert.rewrite import edit_source

    count = 2 * rewrite.PARSE_GROUP + 10  # the touched statements fill more than one parse group
    text = _many_tests(count, newline)
    text = text if trailing_newline else text.rstrip(newline)
    placeholders = [n for n, line in enumerate(text.splitlines(), 1) if "assert ..." in line]
    rng = random.Random(0)
    for _ in range(6):
        replacements = {line: f"assert x == {line}" for line in placeholders if rng.random() < 0.5}
        appends = {f"test_n{i}": f"assert y == [{i}]" for i in range(1, count, 3) if rng.random() < 0.5}
        appends |= {f"TestC{i}.test_m": "assert z > 0" for i in range(2, count, 3) if rng.random() < 0.5}
        edited = edit_source(text, replacements, appends)
        assert edited.applied == len(replacements) + len(appends)
        for line, assertion in replacements.items():  # each placeholder got its own text
            assert edited.code.splitlines()[line - 1 + sum(
                1 for name in appends if _line_of(text, name) < line)].strip() == f"{assertion}  # keep"
        assert unified_diff(text, edited.code, "t.py", edited.spans) == unified_diff(text, edited.code, "t.py")


def _line_of(text: str, qualname: str) -> int:
    name = qualname.split(".")[0]
    return next(n for n, line in enumerate(text.splitlines(), 1)
                if line.startswith((f"def {name}(", f"class {name}:")))


def test_one_line_body_is_left_alone():
    before = "def test_a(): f()\n"
    assert apply_edits(before, {}, {"test_a": "assert f()"}) == (before, 0)


# -- discovery --------------------------------------------------------------------------
def _info(source: str, qualname: str = "test_a") -> FunctionInfo:
    tree = ast.parse(source)
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))
    return FunctionInfo(node=node, qualname=qualname, lines=source.splitlines())


def test_placeholder_sites_mask_each_placeholder(tmp_path):
    source = _src("""
        def test_a():
            x = 1
            assert ...
            y = 2
            assert ...
    """)
    sites = find_sites(_info(source), tmp_path / "t.py")
    assert [(s.line, s.mode) for s in sites] == [(3, "placeholder"), (5, "placeholder")]
    assert sites[0].masked_source.splitlines() == [
        "def test_a():", "    x = 1", "    <AssertPlaceHolder>", "    y = 2", "    assert ..."]


def test_no_assertion_test_gets_an_append_site(tmp_path):
    source = "class T:\n    def test_a(self):\n        with open('f') as h:\n            h.read()\n"
    sites = find_sites(_info(source, "T.test_a"), tmp_path / "t.py")
    assert [(s.line, s.mode) for s in sites] == [(4, "append")]
    assert sites[0].masked_source.endswith("        h.read()\n    <AssertPlaceHolder>")


def test_asserting_tests_are_skipped_unless_all(tmp_path):
    source = "def test_a():\n    x = 1\n    self.assertTrue(x)\n"
    assert find_sites(_info(source), tmp_path / "t.py") == []
    assert [s.line for s in find_sites(_info(source), tmp_path / "t.py", all_tests=True)] == [3]
    assert find_sites(_info("def test_a():\n    pass\n"), tmp_path / "t.py") == []


def test_file_index_finds_each_test_by_its_code_object():
    source = _src("""
        def test_a():
            pass

        class TestB:
            def test_a(self):
                def test_a():
                    pass

            class Inner:
                def test_c(self):
                    pass
    """)
    namespace: dict = {}
    exec(compile(source, "t.py", "exec"), namespace)  # noqa: S102 - the test's own source
    index = FileIndex.parse(source)
    top, method = namespace["test_a"], namespace["TestB"].test_a
    inner = namespace["TestB"].Inner.test_c
    assert index.function(top.__code__).qualname == "test_a"
    assert index.function(method.__code__).qualname == "TestB.test_a"
    assert index.function(inner.__code__).qualname == "TestB.Inner.test_c"
    assert index.function(top.__code__).lines is index.function(inner.__code__).lines
    assert FileIndex.parse("def test_a(:\n") is None


# -- focal resolution -------------------------------------------------------------------
FOCAL_MODULE = """
class Cart:
    def total(self):
        return 0

    def add(self, item):
        return self


def helper_make():
    return 1


def helper_use(value):
    return value
"""


@pytest.fixture
def code_ns(tmp_path, monkeypatch):
    """The namespace of a test module that imported everything from a project module."""
    (tmp_path / "shopcode.py").write_text(FOCAL_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "shopcode", raising=False)
    import shopcode

    return {name: getattr(shopcode, name) for name in ("Cart", "helper_make", "helper_use")}


def test_focal_prefers_the_last_assigned_call(code_ns):
    tree = ast.parse(_src("""
        def test_a():
            value = helper_make()
            helper_use(value)
    """))
    focal = resolve_focal(tree.body[0], 99, code_ns)
    assert focal.name == "helper_make"
    assert focal.source.startswith("def helper_make():")


def test_focal_resolves_methods_of_locally_built_objects_and_ignores_later_lines(code_ns):
    tree = ast.parse(_src("""
        def test_a():
            cart = Cart()
            n = cart.total()
            x = helper_make()
    """))
    focal = resolve_focal(tree.body[0], 4, code_ns)
    assert focal.name == "cart.total"
    assert focal.source == "def total(self):\n    return 0"
    assert resolve_focal(ast.parse("def test_a():\n    x = len([])\n").body[0], 9, code_ns) is None


def test_focal_follows_fluent_methods_to_their_class(code_ns):
    tree = ast.parse(_src("""
        def test_a():
            cart = Cart().add("x")
            n = cart.total()
    """))
    focal = resolve_focal(tree.body[0], 99, code_ns)
    assert focal.name == "cart.total"


def test_focal_ignores_code_defined_in_test_files():
    tree = ast.parse("def test_a():\n    x = helper_in_test_file()\n")
    assert resolve_focal(tree.body[0], 99, {"helper_in_test_file": helper_in_test_file}) is None


def helper_in_test_file():
    return 1


# -- verification -----------------------------------------------------------------------
def test_screen_rejects_garbage_and_constants():
    verifier = Verifier()
    assert verifier.screen("assert x ==")[1].outcome == Outcome.SYNTAX
    assert verifier.screen("assert True")[1].outcome == Outcome.TRIVIAL
    assert verifier.screen("x = 1")[1].outcome == "not-assertion"
    assert verifier.screen("assert ...")[1].outcome == "not-assertion"
    assert verifier.screen("assert  x==1") == ("assert x == 1", None)


def test_check_uses_the_frame_namespace_and_never_mutates_it():
    verifier = Verifier()
    frame_locals = {"items": [1, 2], "n": 1}
    assert verifier.check("assert all(i >= n for i in items)", {}, frame_locals).outcome == Outcome.PASSED
    assert verifier.check("assert len(items) == 3", {}, frame_locals).outcome == Outcome.FAILED
    result = verifier.check("assert missing == 1", {}, frame_locals)
    assert result.outcome == Outcome.ERROR and result.detail.startswith("NameError")
    assert verifier.check("assert (z := 5)", {}, frame_locals).outcome == Outcome.PASSED
    assert "z" not in frame_locals


def _traced(x):
    y = x * 2
    assert ...
    return y


def test_frame_trap_fires_on_the_placeholder_and_restores_the_previous_tracer():
    seen = []
    calls = []

    def previous(frame, event, arg):
        calls.append(event)
        return None

    old = sys.gettrace()
    sys.settrace(previous)
    try:
        line = _traced.__code__.co_firstlineno + 2
        with FrameTrap(_traced.__code__, {line: lambda f: seen.append(dict(f.f_locals))},
                       on_return=lambda f: seen.append("return")):
            _traced(3)
        restored = sys.gettrace()
    finally:
        sys.settrace(old)
    assert seen == [{"x": 3, "y": 6}, "return"]
    assert restored is previous
    assert "call" in calls  # the previous tracer kept receiving events


# -- change sets and review -------------------------------------------------------------
def _changeset(tmp_path):
    path = tmp_path / "test_x.py"
    path.write_text("def test_a():\n    x = 1\n    assert ...\n\n\ndef test_b():\n    y = 2\n")
    changes = ChangeSet(tmp_path)
    changes.baseline(path)
    first = Change(path, "test_a", 3, "placeholder", "assert x == 1", "test_x.py::test_a")
    second = Change(path, "test_b", 7, "append", "assert y == 2", "test_x.py::test_b")
    changes.add(first)
    changes.add(second)
    return path, changes, [first, second]


def test_changeset_skips_a_file_changed_on_disk(tmp_path):
    path, changes, _ = _changeset(tmp_path)
    result = changes.render(path)
    assert result.count == 2 and "+    assert x == 1" in result.diff
    path.write_text(path.read_text() + "# edited\n")
    assert changes.write(result).problem == "it changed on disk during the run"
    assert path.read_text().endswith("# edited\n")


def test_changeset_renders_a_file_once_per_set_of_changes(tmp_path, monkeypatch):
    import pytest_kdassert.changes as changes_module

    calls = []
    real = changes_module.edit_source
    monkeypatch.setattr(changes_module, "edit_source",
                        lambda *args, **kwargs: calls.append(args[1:]) or real(*args, **kwargs))
    path, changes, pending = _changeset(tmp_path)
    first, again = changes.render(path), changes.render(path)
    assert (first.diff, first.count) == (again.diff, again.count) and first.count == 2
    assert first is not again  # results are the caller's to mark; only the edit is shared
    assert changes.render(path, pending[:1]).count == 1
    assert len(calls) == 2


@pytest.mark.parametrize("answers, expected", [
    (["y", ""], [0]), (["n", "y"], [1]), (["a"], [0, 1]), (["q"], []), ([], []),
])
def test_review_answers(tmp_path, answers, expected):
    _, changes, pending = _changeset(tmp_path)
    replies = iter(answers)

    def ask(prompt):
        try:
            return next(replies)
        except StopIteration:
            raise EOFError from None

    shown = []
    accepted = review_changes(pending, changes, ask, shown.append)
    assert accepted == [pending[i] for i in expected]
    assert "[1/2] test_x.py::test_a" in shown[0]


def test_the_whole_module_edit_gives_the_same_text_when_statements_cannot_be_split(monkeypatch):
    """The fallback for a file whose top-level statements libcst and ast count differently."""
    import pytest_kdassert.rewrite as rewrite

    text = _many_tests(9, "\n")
    replacements, appends = {6: "assert x == 0"}, {"test_n1": "assert y == [1]"}
    split = rewrite.edit_source(text, replacements, appends)
    monkeypatch.setattr(rewrite, "_edit_statements", lambda *args: None)
    whole = rewrite.edit_source(text, replacements, appends)
    assert (whole.code, whole.applied, whole.spans) == (split.code, 2, None)
    assert "    assert x == 0  # keep\n" in whole.code and "    assert y == [1]\n" in whole.code
