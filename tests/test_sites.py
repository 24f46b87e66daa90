"""The end-of-run decision on plain objects: ranking, unstable values, statuses."""

from __future__ import annotations

import ast
from pathlib import Path

from pytest_kdassert.discovery import APPEND_MODE, PLACEHOLDER_MODE, Site
from pytest_kdassert.outcomes import Origin, Outcome, Status
from pytest_kdassert.sites import (
    SiteState,
    decide,
    drop_unstable,
    last_binding,
    literal_bindings,
    names_bound_by_test,
    pinned_value,
    rank_key,
    reads_test_names,
    use_bound_name,
    why_redundant,
)
from pytest_kdassert.verify import CandidateCheck


def _state(*checks: CandidateCheck, mode: str = PLACEHOLDER_MODE) -> SiteState:
    site = Site(Path("t.py"), "test_a", 3, mode, "def test_a():\n    <AssertPlaceHolder>",
                nodeids=["t.py::test_a"])
    state = SiteState(site, candidates=list(checks))
    state.screened = {i: c.text for i, c in enumerate(checks) if c.outcome != Outcome.SYNTAX}
    return state


def _check(text, score, rank, outcome=Outcome.PASSED, origin=Origin.MODEL):
    return CandidateCheck(text, score, rank, outcome=outcome, origin=origin)


def test_decide_takes_the_best_scored_candidate_that_passed():
    state = _state(_check("assert x == 1", -0.1, 0, Outcome.FAILED),
                   _check("assert x == 2", -0.5, 1),
                   _check("assert x == 3", -0.3, 2))
    decide(state)
    assert state.status == Status.SUGGESTED
    assert state.chosen.text == "assert x == 3"


def test_decide_statuses_when_nothing_is_usable():
    failing = _state(_check("assert x == 1", -0.1, 0, Outcome.FAILED))
    decide(failing)
    assert (failing.status, failing.chosen) == (Status.NO_VERIFIED_CANDIDATE, None)
    unreached = _state(_check("assert x == 1", -0.1, 0, Outcome.NOT_REACHED))
    decide(unreached)
    assert unreached.status == Status.NOT_RUN
    empty = _state()
    decide(empty)
    assert empty.status == Status.NO_CANDIDATES
    broken = _state(_check("assert x == 1", -0.1, 0))
    broken.failed_nodeids.append("t.py::test_a")
    decide(broken)
    assert (broken.status, broken.chosen) == (Status.TEST_FAILED, None)


def test_unverified_mode_uses_unverified_candidates():
    state = _state(_check("assert x == 1", -0.1, 0, Outcome.UNVERIFIED))
    decide(state, verified=False)
    assert state.chosen.text == "assert x == 1"
    decide(state, verified=True)
    assert state.chosen is None


def test_rank_key_puts_unscored_templates_after_model_candidates_and_model_text_first():
    model = _check("assert y == 2", None, 0)
    template = _check("assert x == 1", None, 0, origin=Origin.TEMPLATE)
    assert rank_key(model, set()) < rank_key(template, set())
    grounded = _check("assert y == 2", -0.2, 0, origin=Origin.GROUNDED)
    same_model = _check("assert y == 2", -0.2, 0)
    assert rank_key(same_model, set()) < rank_key(grounded, set())


def test_rank_key_lifts_exemplars_by_their_similarity():
    model = _check("assert y == 2", -1.0, 0)
    close = _check("assert x == 1", -2.0, 0, origin=Origin.RECALLED)
    close.similarity = 0.9  # -2.0 + 8.0 * 0.9 = 5.2: above the model's -1.0
    far = _check("assert x == 3", -8.0, 1, origin=Origin.EXEMPLAR)
    far.similarity = 0.5  # -4.0: below it
    ranked = sorted([far, model, close], key=lambda c: rank_key(c, set()))
    assert ranked == [close, model, far]


def test_use_bound_name_swaps_the_call_the_test_just_bound():
    statements = ast.parse("cart = Cart()\nn = cart.count()\n").body
    binding = last_binding(statements, before_line=3)
    assert binding == ("cart.count()", "n")
    assert use_bound_name("assert cart.count() == 1", *binding) == "assert n == 1"
    assert use_bound_name("assert cart.total() == 1", *binding) == "assert cart.total() == 1"
    assert last_binding(statements, before_line=2) == ("Cart()", "cart")
    assert last_binding(ast.parse("x = 1\n").body, before_line=2) is None


def test_reads_test_names_ignores_the_unittest_receiver():
    names = frozenset({"self", "total", "cart"})
    assert reads_test_names("assert total == 5", names)
    assert reads_test_names("self.assertEqual(self.cart.items, {})", names)
    assert not reads_test_names("self.assertEqual(format_price(1), '1 EUR')", names)
    assert not reads_test_names("assert Inventory().names() == []", names)
    assert not reads_test_names("assert (", names)


def test_names_bound_by_test_are_parameters_and_assigned_names():
    node = ast.parse("def test_a(self, tmp_path, *args, flag=1, **kw):\n    x = 1\n").body[0]
    assert names_bound_by_test(node, ["x"]) == {"self", "tmp_path", "args", "flag", "kw", "x"}


def test_drop_unstable_marks_values_that_differ_between_runs():
    model = _check("assert x == 0", -0.1, 0, Outcome.FAILED)
    grounded = _check("assert x == 5", -0.1, 0, origin=Origin.GROUNDED)
    state = _state(model, grounded)
    state.grounded_sources = {1: {0}}
    state.ground_seen = {0: {"assert x == 5", "assert x == 6"}}
    drop_unstable(state)
    assert grounded.outcome == Outcome.UNSTABLE
    assert grounded.detail == "the value differs between runs"


def test_drop_unstable_keeps_a_value_seen_the_same_in_every_run():
    grounded = _check("assert x == 5", -0.1, 0, origin=Origin.GROUNDED)
    state = _state(_check("assert x == 0", -0.1, 0, Outcome.FAILED), grounded)
    state.grounded_sources = {1: {0}}
    state.ground_seen = {0: {"assert x == 5"}}
    drop_unstable(state)
    assert grounded.outcome == Outcome.PASSED


def test_a_failed_rerun_voids_grounded_values():
    grounded = _check("assert x == 5", -0.1, 0, origin=Origin.GROUNDED)
    state = _state(_check("assert x == 0", -0.1, 0, Outcome.FAILED), grounded)
    state.grounded_sources = {1: {0}}
    state.ground_seen = {0: {"assert x == 5"}}
    state.rerun_failed = True
    decide(state)
    assert grounded.outcome == Outcome.UNSTABLE and state.chosen is None


def test_ran_mid_test_only_for_placeholders_whose_candidates_ran():
    ran = _check("assert x == 1", -0.1, 0)
    ran.runs = 1
    assert _state(ran).ran_mid_test()
    assert not _state(ran, mode=APPEND_MODE).ran_mid_test()
    assert not _state(_check("assert x == 1", -0.1, 0)).ran_mid_test()


def test_outcomes_serialise_as_plain_words():
    import json

    assert json.dumps({"o": Outcome.NOT_REACHED}) == '{"o": "not-reached"}'
    assert f"{Outcome.PASSED:<8}|" == "passed  |"


def test_why_redundant_catches_repeats_and_restated_literals():
    import ast as _ast

    statements = _ast.parse("tup = ('tuple', 1)\nn = f()\nm = 3\nm = g()\n").body
    bindings = literal_bindings(statements, before_line=99)
    assert bindings == {"tup": "('tuple', 1)"}
    assert why_redundant("assert tup == ('tuple', 1)", frozenset(), bindings) \
        == "restates the literal the test assigned to tup"
    assert why_redundant("self.assertEqual(tup, ('tuple', 1))", frozenset(), bindings)
    assert why_redundant("assert m == 3", frozenset(), bindings) is None  # rebound from g()
    assert why_redundant("assert n == 5", frozenset({"assert n == 5"}), bindings) \
        == "the test already asserts this"
    assert why_redundant("assert n == 6", frozenset({"assert n == 5"}), bindings) is None


def test_an_attribute_the_test_set_to_a_literal_is_not_checked_again():
    import ast as _ast

    statements = _ast.parse("t = T()\nt.title = 'x'\nt.size = n()\nu = U()\nu.a = 1\n"
                            "u = U()\n").body
    bindings = literal_bindings(statements, before_line=99)
    assert bindings == {"t.title": "'x'"}  # u was rebound: its attribute's literal is gone
    assert why_redundant("assert t.title == 'x'", frozenset(), bindings) \
        == "restates the literal the test assigned to t.title"
    assert why_redundant("self.assertEqual(t.title, 'x')", frozenset(), bindings)
    assert why_redundant("assert t.title == 'y'", frozenset(), bindings) is None
    assert why_redundant("assert u.a == 1", frozenset(), bindings) is None


def test_a_grounded_form_that_reads_differently_wins():
    model = _check("assert flag == 0", -0.1, 0)
    grounded = _check("assert flag is False", -0.1, 0, origin=Origin.GROUNDED)
    state = _state(model, grounded)
    state.ground_seen = {0: {"assert flag is False"}}
    state.grounded_sources = {1: {0}}
    decide(state)
    assert state.chosen is grounded


def test_checking_only_the_inputs_ranks_below_checking_the_output():
    on_input = _check("assert data == [1]", -0.2, 0)
    on_output = _check("assert out == 'x'", -0.6, 1)
    state = _state(on_input, on_output)
    state.focal_names = {"render"}  # `out` not known as its result: only the penalty decides
    state.input_names = frozenset({"data"})
    decide(state)
    assert state.chosen is on_output


def test_pinned_value_reads_the_expression_and_its_literal():
    assert pinned_value("assert len(x) == 2") == ("len(x)", "2")
    assert pinned_value("assert [1] == f(y)") == ("f(y)", "[1]")
    assert pinned_value("self.assertIsNone(t.key)") == ("t.key", "None")
    assert pinned_value("self.assertEqual(t.key, 'a')") == ("t.key", "'a'")
    assert pinned_value("assert x > 2") is None and pinned_value("assert a == b") is None


def test_a_size_is_not_suggested_where_the_whole_value_passes():
    state = _state(_check("assert len(o) == 1", -0.1, 0, origin=Origin.OBSERVED),
                   _check("assert o == {'a': [1, 2]}", -2.0, 1, origin=Origin.OBSERVED))
    decide(state)
    assert state.chosen.text == "assert o == {'a': [1, 2]}"
    alone = _state(_check("assert len(o) == 1", -0.1, 0, origin=Origin.OBSERVED))
    decide(alone)
    assert alone.chosen.text == "assert len(o) == 1"


def test_an_observed_attribute_left_none_is_not_suggested():
    state = _state(_check("assert field.data_key is None", -0.1, 0, origin=Origin.OBSERVED),
                   _check("self.assertIsNone(field.other)", -0.1, 1, origin=Origin.OBSERVED))
    decide(state)
    assert state.chosen is None and state.status == Status.NO_VERIFIED_CANDIDATE
    assert {c.outcome for c in state.candidates} == {Outcome.REDUNDANT}
    model = _state(_check("assert result.error is None", -0.1, 0))  # the model's own check
    decide(model)
    assert model.chosen is not None


def test_an_observed_attribute_at_an_empty_value_ranks_below_one_with_a_value():
    state = _state(_check("assert t.title == ''", -1.0, 0, origin=Origin.OBSERVED),
                   _check("assert t.colcount == 2", -1.5, 1, origin=Origin.OBSERVED))
    decide(state)
    assert state.chosen.text == "assert t.colcount == 2"
    variable = _state(_check("assert title == ''", -1.0, 0, origin=Origin.OBSERVED),
                      _check("assert t.colcount == 2", -1.5, 1, origin=Origin.OBSERVED))
    decide(variable)
    assert variable.chosen.text == "assert title == ''"  # a variable's value is no default
