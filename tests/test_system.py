"""The system ranker: beams and exemplars in one list, weights fitted on validation only."""

from __future__ import annotations

import pytest

from distillation.system import Pooled, RankerWeights, fit_weights, pool_candidates, rank
from pytest_kdassert.core.errors import ConfigError
from pytest_kdassert.core.generate import Candidate


def test_pool_merges_a_text_both_proposed():
    beams = [Candidate("assert x == 1", -0.5, 0), Candidate("assert x", -1.0, 1)]
    exemplars = [Candidate("assert x == 1", 0.8, 0), Candidate("assert y == 2", 0.6, 1)]
    pooled = pool_candidates(beams, exemplars, [-2.0, -3.0])
    assert pooled == [Pooled("assert x == 1", -0.5, 0.8, True), Pooled("assert x", -1.0),
                      Pooled("assert y == 2", -3.0, 0.6, True)]


def test_rank_orders_by_the_weighted_score():
    pooled = [Pooled("assert a", -0.5), Pooled("assert b", -1.5, 0.9, True)]
    assert rank(pooled, RankerWeights())[0].text == "assert a"
    assert rank(pooled, RankerWeights(similarity=2.0))[0].text == "assert b"


def test_fit_finds_weights_that_prefer_exemplars_when_they_are_right():
    pooled = [[Pooled("assert m1", -0.2), Pooled(f"assert e{i}", -2.0, 0.7, True)]
              for i in range(4)]
    references = ["assert e0", "assert e1", "assert e2", "assert m1"]
    weights, exact = fit_weights(pooled, references)
    assert exact == 0.75
    assert weights.similarity * 0.7 + weights.exemplar > 1.8  # the exemplar now wins
    # ties go to the smallest weights: with nothing to gain, no weight at all
    none, _ = fit_weights([[Pooled("assert a", 0.0)]], ["assert a"])
    assert none == RankerWeights(0.0, 0.0)


def test_fit_needs_references():
    with pytest.raises(ConfigError):
        fit_weights([], [])
