"""Observed-state templates on plain objects: listing them at a site, the run order, the
flakiness re-run's hand-over, and the model's scores."""

from __future__ import annotations

import copy
from pathlib import Path

from pytest_kdassert.discovery import PLACEHOLDER_MODE, Site
from pytest_kdassert.observed import (
    MAX_STATE_TEMPLATES,
    RERUN_KEY,
    adopt,
    rerun_payload,
    run_first,
    score_discovered,
    templates_at_site,
)
from pytest_kdassert.outcomes import Origin, Outcome
from pytest_kdassert.sites import SiteState
from pytest_kdassert.verify import CandidateCheck


def _state(*texts: str) -> SiteState:
    site = Site(Path("t.py"), "test_a", 3, PLACEHOLDER_MODE, "def test_a():\n    <AssertPlaceHolder>",
                nodeids=["t.py::test_a"])
    state = SiteState(site, candidates=[CandidateCheck(t, None, i, origin=Origin.TEMPLATE)
                                        for i, t in enumerate(texts)])
    state.screened = {i: t for i, t in enumerate(texts)}
    return state


class _Cart:
    def __init__(self, n):
        self.items = list(range(n))
        self.owner = "ann"
        self.note = "x"
        self.paid = False
        self.tax = 0.5

    def __len__(self):
        return len(self.items)


def test_templates_at_site_lists_the_objects_state_once_and_bounded():
    state = _state("assert len(cart) == 0")
    state.observed_objects = ["cart", "other", "gone"]
    texts = templates_at_site(state, {"cart": _Cart(2), "other": _Cart(1)})
    assert state.discovered == []  # marked: the next instance does not list again
    assert texts[:4] == ["assert cart.items == 0", "assert cart.owner == 0",
                         "assert cart.note == 0", "assert cart.paid == 0"]
    assert texts[4:] == ["assert len(other) == 0", "assert other.items == 0"]
    assert len(texts) == MAX_STATE_TEMPLATES  # len(cart) is a candidate already


def test_templates_at_site_in_unittest_style():
    state = _state()
    state.observed_objects, state.unittest_style = ["cart"], True
    assert templates_at_site(state, {"cart": _Cart(0)})[0] == "self.assertEqual(len(cart), 0)"


def test_run_first_moves_candidates_to_the_front_of_the_run():
    state = _state("a", "b", "c", "d")
    run_first(state, [2, 3])
    assert list(state.screened) == [2, 3, 0, 1]


def test_the_rerun_child_adopts_the_templates_at_the_parents_indices():
    child = _state("assert x == 0")  # forked before the call
    parent = copy.deepcopy(child)
    parent.candidates += [CandidateCheck("assert x == 1", None, 0, origin=Origin.OBSERVED),
                          CandidateCheck("assert t.n == 0", None, 2, origin=Origin.TEMPLATE),
                          CandidateCheck("assert t.m == 0", None, 3, origin=Origin.TEMPLATE)]
    parent.screened.update({1: "assert x == 1", 2: "assert t.n == 0", 3: "assert t.m == 0"})
    parent.discovered = [2, 3]
    payload = rerun_payload([parent], {"0": [0, 3]})
    assert payload == {RERUN_KEY: {"0": {"3": "assert t.m == 0"}}}  # t.n grounded nothing
    adopt([child], payload[RERUN_KEY])
    assert child.candidates[3].text == "assert t.m == 0"
    assert child.candidates[3].origin == Origin.TEMPLATE
    assert list(child.screened) == [3, 0]  # first, as in the parent; the padding never runs
    assert rerun_payload([child], {"0": [0]}) == {}


def test_scores_reach_useful_templates_and_their_grounded_forms():
    state = _state("assert x == 0", "assert t.n == 0", "assert t.m == 0", "assert t.n == 4")
    state.candidates[3].origin = Origin.OBSERVED
    state.candidates[3].outcome = Outcome.PASSED
    state.candidates[2].outcome = Outcome.FAILED  # grounded to nothing: not worth scoring
    state.grounded_sources = {3: {1}}
    state.discovered = [1, 2]

    class Scorer:
        asked: list = []

        def score(self, requests, texts):
            self.asked.append(texts)
            return [[-0.5] for _ in texts]

    score_discovered([(state, "request")], Scorer())
    assert Scorer.asked == [[["assert t.n == 0"]]]
    assert [c.score for c in state.candidates] == [None, -0.5, None, -0.5]


def test_a_scorer_that_raises_leaves_the_templates_unscored():
    state = _state("assert t.n == 0")
    state.candidates[0].outcome = Outcome.PASSED
    state.discovered = [0]

    class Broken:
        def score(self, requests, texts):
            raise RuntimeError("no")

    score_discovered([(state, "request")], Broken())
    assert state.candidates[0].score is None


def test_only_the_size_of_a_library_object_is_observed(tmp_path):
    import collections

    state = _state()
    state.observed_objects = ["tmp_path", "counts"]
    texts = templates_at_site(state, {"tmp_path": tmp_path,
                                      "counts": collections.Counter("aab")})
    assert texts == ["assert len(counts) == 0"]  # no tmp_path.name, no Path properties
