"""Pure helpers of benchmarks/grounding_onoff.py: masking, selection, value kinds, tallies."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

from pytest_kdassert.core.records import Example

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "grounding_onoff.py"
_SPEC = importlib.util.spec_from_file_location("grounding_onoff", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
sys.modules.setdefault("grounding_onoff", bench)  # dataclasses look their module up there
_SPEC.loader.exec_module(bench)

SOURCE = '''\
import pytest


def test_a():
    x = 1
    assert x == 1
    assert ...
    with pytest.raises(ValueError):
        int("x")
    assert x > 0, (
        "positive"
    )


class TestB:
    def test_b(self):
        y = [1]
        if y:
            self.assertEqual(len(y),
                             1)  # checked
        z = 2; assert z


def test_c():
    assert 1; x = 2
'''


def _example(test_name: str, k: int, assertion: str = "", project: str = "p",
             test_file: str = "t/test_x.py") -> Example:
    return Example(id=f"{project}:{test_file}::{test_name}#{k}", project=project,
                   test_file=test_file, test_name=test_name, focal_name=None, focal_source="",
                   test_source_masked="", assertion=assertion)


def test_mask_kth_assertion_skips_placeholders_and_keeps_other_lines():
    new, sites, problems = bench.mask_assertions(SOURCE, {"test_a": 1})
    assert problems == {}
    assert sites["test_a"] == bench.MaskedSite("test_a", 10, "assert x > 0, 'positive'")
    lines = new.splitlines()
    assert lines[9] == "    assert ..."
    assert lines[5] == "    assert x == 1"  # k=0 and the user's placeholder are untouched
    assert lines[10] == ""  # the multi-line statement's two other lines are gone
    assert len(lines) == len(SOURCE.splitlines()) - 2
    ast.parse(new)


def test_mask_several_tests_shifts_later_lines():
    new, sites, problems = bench.mask_assertions(SOURCE, {"test_a": 1, "TestB.test_b": 0})
    assert problems == {}
    assert sites["TestB.test_b"].original == "self.assertEqual(len(y), 1)"
    lines = new.splitlines()
    assert lines[sites["TestB.test_b"].line - 1] == "            assert ..."
    assert lines[sites["test_a"].line - 1] == "    assert ..."
    assert "# checked" not in new
    ast.parse(new)


@pytest.mark.parametrize("name, k, why", [
    ("TestB.test_b", 1, "assertion shares a line with other code"),
    ("test_c", 0, "assertion shares a line with other code"),
    ("test_a", 5, "test or assertion not found"),
    ("test_missing", 0, "test or assertion not found"),
])
def test_mask_refuses_unmaskable(name, k, why):
    new, sites, problems = bench.mask_assertions(SOURCE, {name: k})
    assert problems == {name: why}
    assert sites == {}
    assert new == SOURCE


def test_mask_keeps_crlf_endings():
    source = "def test_a():\r\n    x = 1\r\n    assert x == 1\r\n"
    new, sites, _ = bench.mask_assertions(source, {"test_a": 0})
    assert new == "def test_a():\r\n    x = 1\r\n    assert ...\r\n"
    assert sites["test_a"].line == 3


def test_select_prefers_lowest_k_and_is_seeded_per_project():
    examples = [_example(f"test_{i}", k) for i in range(6) for k in (2, 1)]
    examples += [_example("test_q", 0, project="q")]
    first = bench.select_examples(examples, ("p", "q"), 3, seed=1)
    again = bench.select_examples(examples, ("p",), 3, seed=1)
    assert [e.id for e in first["p"]] == [e.id for e in again["p"]]
    assert len(first["p"]) == 3 and all(e.id.endswith("#1") for e in first["p"])
    assert [e.test_name for e in first["q"]] == ["test_q"]
    other = [bench.select_examples(examples, ("p",), 3, seed=s)["p"] for s in range(5)]
    assert len({tuple(e.id for e in chosen) for chosen in other}) > 1


@pytest.mark.parametrize("text, expected", [
    ("assert f(x) == 3", True),
    ("assert 'a' == f(x)", True),
    ("assert y is None", True),
    ("self.assertEqual(f(x), [1, 2])", True),
    ("self.assertIsNone(y)", True),
    ("assert f(x) == g(x)", False),
    ("assert f(x) != 3", False),
    ("assert isinstance(y, int)", False),
    ("assert y", False),
    ("self.assertTrue(y)", False),
])
def test_is_value_assertion(text, expected):
    assert bench.is_value_assertion(text) is expected


def test_score_and_tally():
    example = _example("test_a", 0, "assert f(x) == 3")
    exact = bench.score_site(example, {"status": "suggested", "chosen": "assert f(x)==3",
                                       "chosen_origin": "grounded"})
    wrong = bench.score_site(example, {"status": "suggested", "chosen": "assert f(x) == 4"})
    failed = bench.score_site(example, {"status": "test-failed", "chosen": None})
    missing = bench.score_site(example, None)
    assert (exact["passing"], exact["exact"], exact["origin"]) == (True, True, "grounded")
    assert (wrong["passing"], wrong["exact"]) == (True, False)
    assert failed["ran"] is False and missing["status"] == "not-collected"
    rows = [{"value_assertion": v, "on": s, "off": wrong}
            for v, s in [(True, exact), (False, wrong), (True, failed), (True, missing)]]
    on = bench.tally(rows, "on")
    assert on == {"tests": 4, "not_run": 2, "focal": 2, "passing": 2, "exact": 1,
                  "strong": 1, "value_focal": 1, "value_exact": 1, "passing_pct": 100.0,
                  "exact_pct": 50.0, "strong_pct": 50.0, "value_exact_pct": 100.0}
    assert bench.tally(rows, "off")["exact"] == 0


def test_format_table_shows_every_mode_off_on_templates_exemplars():
    def row(*hits):
        return {"value_assertion": True, **{
            mode: {"ran": True, "passing": hit, "exact": hit, "strong": hit}
            for mode, hit in zip(("off", "on", "templates", "exemplars"), hits, strict=True)}}

    rows = [row(False, True, True, True), row(False, False, True, False)]
    res = {"project": "p", **{mode: bench.tally(rows, mode) for mode, _ in bench.MODES}}
    line = bench.format_table([res], {**res, "project": "**total**"}).splitlines()[2]
    figures = "0.0 / 50.0 / 100.0 / 50.0"
    assert line == (f"| p | 2 | 0/0/0/0 | 2 | {figures} | {figures} | {figures} | 2 "
                    f"| {figures} |")


@pytest.mark.parametrize("chosen, original, strong", [
    ("assert x == 3", "assert x==3", True),                          # exact
    ("assert total == 5", "assert result == 5", True),               # same value, other name
    ("assert total == 5", "assert result == 5.0", False),            # int is not float
    ("self.assertIsNone(y)", "assert out is None", True),
    ("assert len(x) == 3", "assert len(x) > 0", True),               # pins what was bounded
    ("assert x == 'ab'", "assert 'a' in x", True),
    ("assert y == 'ab'", "assert 'a' in x", False),                   # another expression
    ("assert x is not None", "assert x == 2", False),                # weaker
    ("assert len(x) > 0", "assert len(x) > 0 and x[0]", False),       # pins nothing
    (None, "assert x == 1", False),
])
def test_as_strong(chosen, original, strong):
    assert bench.as_strong(chosen, original) is strong
