"""The system ranker: in-project candidates, their features, and weights fitted on validation."""

from __future__ import annotations

import pytest

from distillation.bench import BenchConfig, run_bench
from distillation.system import ROW_NAME, fit_ranker, ranked_candidates, site_candidates
from pytest_kdassert.core.adapt import adapted_siblings
from pytest_kdassert.core.errors import ConfigError
from pytest_kdassert.core.exemplars import Exemplar, PoolEntry, Site
from pytest_kdassert.core.ranking import (
    DEFAULT_WEIGHTS,
    FEATURES,
    PoolStats,
    Ranked,
    candidate_features,
    rank,
    rank_site,
    shape_key,
    statement_kind,
    written_assertions,
)
from pytest_kdassert.core.records import Example, write_examples

SITE = Site("p:tests/t.py::test_total", (
    "def test_total():\n    cart = Cart()\n    cart.add(3)\n    total = cart.total()\n"
    "    assert cart.items\n    <AssertPlaceHolder>\n"), "shop.Cart.total")
FOCAL = "def total(self):\n    return sum(self.items)\n"


def entry(name: str, body: str, assertion: str, focal: str | None = "shop.Cart.total") -> PoolEntry:
    return PoolEntry(f"p:tests/t.py::{name}#0", f"def {name}():\n{body}    <AssertPlaceHolder>\n",
                     assertion, focal)


def features(item: Ranked) -> dict[str, float]:
    return dict(zip(FEATURES, item.features, strict=True))


def test_candidates_come_from_adapted_and_raw_exemplars_and_the_test_itself():
    exemplars = [
        Exemplar(entry("test_a", "    cart = Cart()\n    amount = cart.total()\n",
                       "assert amount == 3"), 0.6, 0),
        Exemplar(entry("test_b", "    cart = Cart()\n    basket = cart.total()\n",
                       "assert basket == 3"), 0.5, 1),
        Exemplar(entry("test_c", "    fill(wallet)\n", "assert wallet.empty"), 0.2, 2),
    ]
    items = {r.text: features(r) for r in candidate_features(SITE, FOCAL, exemplars)}
    assert list(items) == ["assert total == 3", "assert wallet.empty", "assert amount == 3",
                           "assert basket == 3", "assert cart.items"]
    adapted = items["assert total == 3"]  # both exemplars adapt to it: two votes, rank 0
    assert adapted["exemplar"] == 1.0 and adapted["adapted"] == 1.0 and adapted["top"] == 1.0
    assert adapted["similarity"] == 0.6 and adapted["similarity_gap"] == 0.0
    assert adapted["log_votes"] == pytest.approx(1.0986, abs=1e-4)  # log(1 + 2)
    assert adapted["uses_result"] == 1.0 and adapted["unknown_names"] == 0.0
    stranger = items["assert wallet.empty"]  # names a variable this test never mentions
    assert stranger["unknown_names"] == 1.0 and stranger["any_unknown"] == 1.0
    assert stranger["unknown_attributes"] == 1.0 and stranger["similarity_gap"] == pytest.approx(-0.4)
    assert stranger["kind_share"] == 1.0  # `assert x.y`, as the test's own `assert cart.items`
    assert adapted["kind_share"] == 0.0 and adapted["kind_absent"] == 0.0  # an assert, not ``x.y``
    raw = items["assert amount == 3"]
    assert raw["raw"] == 1.0 and raw["exemplar"] == 0.0 and raw["unknown_names"] == 1.0
    sibling = items["assert cart.items"]
    assert sibling["sibling"] == 1.0 and sibling["in_test"] == 1.0 and sibling["kind_share"] == 1.0


def test_shipped_weights_prefer_the_candidate_that_fits_the_test():
    exemplars = [
        Exemplar(entry("test_w", "    wallet = Wallet()\n    cart = Cart()\n", "assert wallet.empty"),
                 0.7, 0),
        Exemplar(entry("test_a", "    cart = Cart()\n    amount = cart.total()\n",
                       "assert amount == 3"), 0.6, 1),
    ]
    site = Site(SITE.test_id, SITE.masked_test.replace("    assert cart.items\n", ""), SITE.focal_name)
    ranked = rank_site(site, FOCAL, exemplars)
    # the less similar exemplar, renamed to the test's result, beats one naming a stranger
    assert [r.text for r in ranked] == ["assert total == 3", "assert wallet.empty", "assert amount == 3"]
    assert ranked[0].score > ranked[1].score + 1.0


def test_pool_counts_leave_the_site_own_test_out():
    pool = [entry("test_total", "", "assert total == 3"), entry("test_x", "", "assert total == 3"),
            entry("test_y", "", "self.assertEqual(a, 1)")]
    stats = PoolStats.from_entries(pool)
    counts = stats.without(SITE.test_id)
    assert counts.text("assert total == 3") == 1 and counts.kinds_total() == 2
    assert counts.kind("assert Eq") == 1 and counts.kind("call assertEqual") == 1
    exemplar = Exemplar(pool[1], 0.5, 0)
    (item, *_) = candidate_features(SITE, FOCAL, [exemplar], stats)
    assert features(item)["log_text_prior"] == pytest.approx(0.6931, abs=1e-4)  # log(1 + 1)


def test_the_test_own_assertions_are_adapted_to_its_result_variable():
    masked = ("def test_twice():\n    first = parse('a')\n    assert first.name == 'a'\n"
              "    assert first\n    second = parse('b')\n    <AssertPlaceHolder>\n")
    assert adapted_siblings(masked) == ["assert second.name == 'a'", "assert second"]
    site = Site("p:t.py::test_twice", masked)
    items = {r.text: features(r) for r in candidate_features(site, "", [])}
    assert items["assert second.name == 'a'"]["sibling_adapted"] == 1.0
    assert items["assert first.name == 'a'"]["sibling"] == 1.0
    assert items["assert second.name == 'a'"]["uses_result"] == 1.0
    # the same variable assigned again: nothing to rename
    assert adapted_siblings(masked.replace("second", "first")) == []


def test_kinds_shapes_and_the_test_assertions():
    assert statement_kind("assert x == 1") == "assert Eq"
    assert statement_kind("assert isinstance(x, int)") == "assert isinstance"
    assert statement_kind("self.assertEqual(x, 1)") == "call assertEqual"
    assert statement_kind("x = 1") == "other" and statement_kind("assert (") == "other"
    assert shape_key("assert a.b == 1") == shape_key("assert c.d == 'x'") != shape_key("assert a == 1")
    assert shape_key("assert (") is None
    masked = "def test():\n    assert a\n    if b:\n        self.assertTrue(b)\n    <AssertPlaceHolder>\n"
    assert written_assertions(masked) == ["assert a", "self.assertTrue(b)"]
    assert written_assertions("def broken(:\n") == []


def test_rank_is_the_weighted_sum_and_stable():
    items = [Ranked("assert a", (0.0,) * len(FEATURES)), Ranked("assert b", (1.0,) * len(FEATURES))]
    assert [r.text for r in rank(items, {})] == ["assert a", "assert b"]  # ties keep the order
    ranked = rank(items, {"similarity": 2.0, "exemplar": 1.0})
    assert [r.text for r in ranked] == ["assert b", "assert a"] and ranked[0].score == 3.0
    assert [c.rank for c in ranked_candidates(items, {"top": 1.0})] == [0, 1]


def _site(right: int, features_right: dict, features_wrong: dict) -> list[Ranked]:
    def vec(values):
        return tuple(values.get(name, 0.0) for name in FEATURES)
    items = [Ranked("assert wrong", vec(features_wrong)), Ranked("assert right", vec(features_right))]
    return items if right else items[::-1]


def test_fit_learns_that_the_result_variable_beats_similarity():
    # the right answer names the result variable but its exemplar is less similar
    sites = [_site(i % 2, {"uses_result": 1.0, "similarity": 0.3},
                   {"similarity": 0.6, "top": 1.0}) for i in range(20)]
    references = ["assert right"] * 19 + ["assert neither"]
    fit = fit_ranker(sites, references)
    assert fit.sites == 19 and fit.oracle == 0.95 and fit.exact_match == 0.95
    assert fit.weights["uses_result"] > 0.5 and set(fit.weights) == set(FEATURES)
    assert fit.weights["raw"] == 0.0  # constant features get no weight


def test_fit_needs_references():
    with pytest.raises(ConfigError):
        fit_ranker([], [])
    with pytest.raises(ConfigError, match="l2"):
        fit_ranker([[]], ["assert x"], l2=-1.0)


def test_default_weights_cover_every_feature():
    assert set(DEFAULT_WEIGHTS) == set(FEATURES)


def _project(n: int, seed: int) -> list[Example]:
    """Tests whose most similar neighbour checks a variable they lack; the right answer is a
    less similar test's assertion on its result variable, renamed."""
    out = []
    for i in range(n):
        name = f"test_s{seed}_{i}"
        out.append(Example(f"p:tests/t.py::{name}#0", "p", "tests/t.py", name, "shop.total",
                           "def total(c):\n    return 1\n",
                           f"def {name}():\n    c = make({i})\n    res{i} = total(c)\n"
                           "    <AssertPlaceHolder>\n", f"assert res{i} == 1"))
        noise = f"test_n{seed}_{i}"
        out.append(Example(f"p:tests/t.py::{noise}#0", "p", "tests/t.py", noise, "shop.other",
                           "", f"def {noise}():\n    c = make({i})\n    res{i} = total(c)\n"
                           f"    other = spare(c)\n    <AssertPlaceHolder>\n", "assert other.ok"))
    return out


def test_system_row_is_fitted_on_validation_and_beats_raw_retrieval(tmp_path):
    write_examples(tmp_path / "valid.jsonl", _project(6, 0))
    write_examples(tmp_path / "test.jsonl", _project(6, 1))
    config = BenchConfig(data=str(tmp_path / "test.jsonl"), out=None, beams=2, in_project=True,
                         system_valid=str(tmp_path / "valid.jsonl"), latency_examples=0, memory=False)
    rows = {row["name"]: row for row in run_bench(config)["rows"]}
    ranker = rows[ROW_NAME]["speed"]["ranker"]
    assert ranker["fitted_examples"] == 12 and ranker["fitted_on"].endswith("valid.jsonl")
    assert ranker["valid_exact_match"] > 0.5
    raw = rows["in-project retrieval"]["metrics"]["exact_match"]
    assert rows[ROW_NAME]["metrics"]["exact_match"] > raw


def test_site_candidates_search_the_example_own_project():
    examples = _project(2, 0)
    other = [Example(**{**e.__dict__, "project": "q"}) for e in _project(2, 5)]
    items = site_candidates(examples[:1], examples + other)
    texts = [r.text for r in items[0]]
    assert "assert res0 == 1" in texts  # adapted from test_s0_1's res1
    assert not any("s5" in t for t in texts)


def test_system_valid_needs_in_project():
    with pytest.raises(ConfigError, match="--in-project"):
        BenchConfig(data="x.jsonl", models=("m",), system_valid="v.jsonl")
    with pytest.raises(ConfigError, match="system_valid_limit"):
        BenchConfig(data="x.jsonl", in_project=True, system_valid="v.jsonl", system_valid_limit=0)
