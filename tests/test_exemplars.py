"""The exemplar retriever (core/exemplars.py), name adaptation (core/adapt.py) and the
in-project retrieval baseline (distillation/retrieval.py, ``kdassert bench --in-project``)."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from distillation.bench import IN_PROJECT_ROWS, BenchConfig, run_bench
from distillation.cli import main
from distillation.retrieval import InProjectRetrieval
from pytest_kdassert.core.adapt import adapt_assertion
from pytest_kdassert.core.errors import ConfigError
from pytest_kdassert.core.exemplars import (
    ExemplarConfig,
    ExemplarIndex,
    PoolEntry,
    Site,
    code_tokens,
    function_key,
    usable,
)
from pytest_kdassert.core.records import Example, write_examples


def _test(name: str, body: str) -> str:
    """A test function whose body lines are ``body`` split at "; "."""
    return f"def {name}():\n" + "".join(f"    {line}\n" for line in body.split("; "))


def _entry(test_id: str, body: str, assertion: str, focal: str | None = None) -> PoolEntry:
    return PoolEntry(test_id, _test(test_id.split("::")[-1].split("#")[0], body), assertion, focal)


# --- keys, config, what may be an exemplar --------------------------------------------------

@pytest.mark.parametrize(("test_id", "key"), [
    ("proj:tests/t.py::test_a#1", "proj:tests/t.py::test_a"),
    ("tests/t.py::test_a[x-1]", "tests/t.py::test_a"),
    ("tests/t.py::TestC::test_a[a::b]", "tests/t.py::TestC::test_a"),
    ("tests/t.py::test_a[1]#12", "tests/t.py::test_a"),
    ("tests/t.py::test_b", "tests/t.py::test_b"),
])
def test_function_key_drops_assertion_number_and_parameters(test_id, key):
    assert function_key(test_id) == key


def test_config_is_validated():
    assert ExemplarConfig(similarity="bm25").similarity.value == "bm25"
    for bad in ({"k": 0}, {"similarity": "cosine"}, {"bm25_k1": 0}, {"bm25_b": 1.5}):
        with pytest.raises(ConfigError):
            ExemplarConfig(**bad)
    with pytest.raises(ConfigError, match="k must be"):
        ExemplarIndex([]).query(Site("t", "x"), k=0)


def test_placeholders_and_blanks_are_never_indexed():
    entries = [_entry("t::test_a", "x = 1", "assert ..."), _entry("t::test_b", "x = 1", "  "),
               _entry("t::test_c", "x = 1", "<AssertPlaceHolder>"),
               _entry("t::test_d", "x = 1", "assert x == ...")]
    assert [usable(e) for e in entries] == [False, False, False, True]
    index = ExemplarIndex(entries)
    assert len(index) == 1 and index.skipped == 3


def test_tokens_are_words_without_the_placeholder():
    assert code_tokens("def t():\n    y = f(x)\n    <AssertPlaceHolder>") == ["def", "t", "y", "f", "x"]


# --- ranking ---------------------------------------------------------------------------------

def test_query_ranks_by_jaccard_and_skips_the_sites_own_test():
    pool = [
        _entry("p:t.py::test_site#0", "r = parse(s); <AssertPlaceHolder>; r.ok", "assert r.value == 1"),
        _entry("p:t.py::test_one#0", "r = parse(s); <AssertPlaceHolder>", "assert r.ok"),
        _entry("p:t.py::test_two#0", "r = parse(s, strict); w = 5; <AssertPlaceHolder>", "assert r.w == 5"),
        _entry("p:t.py::test_far#0", "z = other(); <AssertPlaceHolder>", "assert z"),
    ]
    index = ExemplarIndex(pool, ExemplarConfig(k=5))
    site = Site("p:t.py::test_site#1", _test("test_site", "r = parse(s); <AssertPlaceHolder>"))
    found = index.query(site)
    # site words {def test_site r parse s}: test_one shares 4 of 6, test_two 4 of 9, test_far 1 of 8
    assert [x.entry.test_id for x in found] == ["p:t.py::test_one#0", "p:t.py::test_two#0", "p:t.py::test_far#0"]
    assert [x.score for x in found] == pytest.approx([4 / 6, 4 / 9, 1 / 8])
    assert [x.rank for x in found] == [0, 1, 2]


def test_ties_go_to_the_earlier_entry_and_assertions_are_distinct():
    pool = [_entry(f"p::test_{i}", "x = f()", text) for i, text in enumerate(["A", "A", "B", "C"])]
    site = Site("p::test_site", _test("test_site", "x = f()"))
    found = ExemplarIndex(pool, ExemplarConfig(k=3)).query(site)
    assert [x.entry.test_id for x in found] == ["p::test_0", "p::test_2", "p::test_3"]
    both = ExemplarIndex(pool, ExemplarConfig(k=2, distinct=False)).query(site)
    assert [x.entry.test_id for x in both] == ["p::test_0", "p::test_1"]


def test_entries_sharing_nothing_are_not_returned():
    index = ExemplarIndex([_entry("p::test_a", "x = 1", "assert x")])
    assert index.query(Site("p::test_b", "zzz qqq")) == []
    assert index.query(Site("p::test_b", "")) == []


def test_bm25_prefers_the_rare_shared_token():
    pool = [_entry(f"p::test_{i}", "common = 1; filler", "assert common") for i in range(6)]
    pool.append(_entry("p::test_rare", "rare = 1", "assert rare"))
    site = Site("p::test_site", "common rare")
    top = ExemplarIndex(pool, ExemplarConfig(k=1, similarity="bm25")).query(site)
    assert top[0].entry.test_id == "p::test_rare"


def _random_pool(rng: random.Random, size: int, vocab: int, length: int) -> list[PoolEntry]:
    words = [f"w{i}" for i in range(vocab)]
    weights = [1 / (i + 1) for i in range(vocab)]  # Zipf-like: a few tokens in most entries
    return [PoolEntry(f"p:t.py::test_{i // 3}#{i % 3}",
                      " ".join(rng.choices(words, weights, k=rng.randint(0, length))),
                      f"assert a{rng.randint(0, size // 4)}") for i in range(size)]


@pytest.mark.parametrize("similarity", ["jaccard", "bm25"])
@pytest.mark.parametrize(("size", "vocab", "length"), [(40, 8, 6), (400, 60, 30), (300, 2000, 900)])
def test_index_equals_scoring_every_entry(similarity, size, vocab, length):
    """Small vocabularies make many ties; 400 entries make dense masks (df >= 32); the last
    case has queries of over 255 distinct tokens (counts wider than a byte); k = 60 asks for
    more than some pools hold."""
    rng = random.Random(size)
    pool = _random_pool(rng, size, vocab, length)
    for distinct, k in ((True, 4), (False, 4), (True, 1), (True, 60)):
        index = ExemplarIndex(pool, ExemplarConfig(k=k, similarity=similarity, distinct=distinct))
        sites = [Site(e.test_id, e.masked_test) for e in rng.sample(pool, 15)] + [Site("new", "w0 w1")]
        for site in sites:
            fast, slow = index.query(site), index.brute_force(site)
            assert [(x.entry.test_id, x.score) for x in fast] == [(x.entry.test_id, x.score) for x in slow]
            assert all(function_key(x.entry.test_id) != function_key(site.test_id) for x in fast)


def test_long_queries_really_exceed_a_byte():
    pool = _random_pool(random.Random(300), 300, 2000, 900)
    assert max(len(set(e.masked_test.split())) for e in pool) > 255


# --- adaptation ------------------------------------------------------------------------------

EXEMPLAR = _test("test_a", "res = compute(x); <AssertPlaceHolder>")
SITE = _test("test_b", "out = calc(y); <AssertPlaceHolder>")


@pytest.mark.parametrize(("assertion", "adapted"), [
    ("assert res == 3", "assert out == 3"),
    ("assert compute(res) == 3", "assert calc(out) == 3"),
    ("assert m.compute(res).x == 3", "assert m.calc(out).x == 3"),
    ("self.assertEqual(res.compute, 'res')", "self.assertEqual(out.calc, 'res')"),
    ("assert other == 3", "assert other == 3"),  # nothing to rename
])
def test_adapt_renames_result_variable_and_focal(assertion, adapted):
    assert adapt_assertion(assertion, EXEMPLAR, SITE, "m.compute", "pkg.m.calc") == adapted


def test_adapt_is_conservative():
    # The site mentions `res` too: it keeps its meaning there.
    site_with_res = _test("test_b", "res = 1; out = calc(y); <AssertPlaceHolder>")
    assert adapt_assertion("assert res == 3", EXEMPLAR, site_with_res) == "assert res == 3"
    # The new name is in the assertion already: renaming would merge two names.
    assert adapt_assertion("assert res == out", EXEMPLAR, SITE) == "assert res == out"
    # The site's last statement before the placeholder binds no single name.
    tuple_site = _test("test_b", "a, b = calc(y); <AssertPlaceHolder>")
    assert adapt_assertion("assert res == 3", EXEMPLAR, tuple_site) == "assert res == 3"
    # Unparsable input changes nothing.
    assert adapt_assertion("assert res ==", EXEMPLAR, SITE) == "assert res =="
    assert adapt_assertion("assert res == 3", "def broken(:\n", SITE) == "assert res == 3"
    # No focal names: only the result variable moves.
    assert adapt_assertion("assert compute(res)", EXEMPLAR, SITE) == "assert compute(out)"


def test_adapt_uses_the_assignment_nearest_above_the_placeholder():
    exemplar = _test("test_a", "first = make(); with open(p) as handle:;     data = handle.read(); "
                     "<AssertPlaceHolder>; later = 2")
    site = _test("test_b", "thing = make(); <AssertPlaceHolder>")
    assert adapt_assertion("assert data == b''", exemplar, site) == "assert thing == b''"


# --- the in-project baseline -----------------------------------------------------------------

def _example(project: str, name: str, k: int, body: str, assertion: str, focal: str | None) -> Example:
    return Example(id=f"{project}:t.py::{name}#{k}", project=project, test_file="t.py", test_name=name,
                   focal_name=focal, focal_source="", test_source_masked=_test(name, body),
                   assertion=assertion)


EXAMPLES = [
    _example("p", "test_add", 0, "total = add(1, 2); <AssertPlaceHolder>", "assert total == 3", "m.add"),
    _example("p", "test_add", 1, "total = add(1, 2); <AssertPlaceHolder>", "assert total > 0", "m.add"),
    _example("p", "test_add_more", 0, "result = add(2, 2); <AssertPlaceHolder>", "assert result == 4", "m.add"),
    _example("q", "test_add_q", 0, "total = add(1, 2); <AssertPlaceHolder>", "assert total == 99", "m.add"),
]


def test_in_project_retrieval_stays_in_the_project_and_out_of_the_test():
    retrieval = InProjectRetrieval(EXAMPLES, k=3)
    raw = retrieval.predict(EXAMPLES)
    assert [c.text for c in raw[0]] == ["assert result == 4"]  # not test_add#1, not project q
    assert [c.text for c in raw[2]] == ["assert total == 3", "assert total > 0"]
    assert raw[3] == []  # q has no other test
    adapted = retrieval.predict(EXAMPLES, adapt=True)
    assert [c.text for c in adapted[0]] == ["assert total == 4"]
    assert [c.text for c in adapted[2]] == ["assert result == 3", "assert result > 0"]
    assert [c.rank for c in adapted[2]] == [0, 1]


def test_bench_in_project_rows(tmp_path):
    data = tmp_path / "test.jsonl"
    write_examples(data, EXAMPLES)
    report = run_bench(BenchConfig(data=str(data), in_project=True, out=None, beams=2, latency_examples=2))
    rows = {row["name"]: row for row in report["rows"]}
    assert list(rows) == list(IN_PROJECT_ROWS)
    raw, adapted = (rows[name]["metrics"] for name in IN_PROJECT_ROWS)
    assert raw["exact_match"] == 0.0 and adapted["exact_match"] == 0.0
    assert raw["lenient_match"] == 0.0  # the names are the other test's
    assert adapted["lenient_match"] == pytest.approx(2 / 4)  # test_add#0 and test_add_more
    assert rows[IN_PROJECT_ROWS[0]]["size"]["pool_examples"] == 4
    assert rows[IN_PROJECT_ROWS[1]]["speed"]["cpu_latency_1thread"]["n"] == 2


def test_bench_cli_in_project_with_a_pool(tmp_path):
    data, pool = tmp_path / "sample.jsonl", tmp_path / "pool.jsonl"
    write_examples(data, EXAMPLES[:1])
    write_examples(pool, EXAMPLES)
    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["bench", "--data", str(data), "--in-project", "--exemplar-pool",
                                       str(pool), "--out", str(out), "--beams", "1"])
    assert result.exit_code == 0, result.output
    assert "| in-project retrieval, adapted |" in result.output
    rows = json.loads(out.read_text())["rows"]
    assert [r["metrics"]["lenient_match"] for r in rows] == [0.0, 1.0]
    assert rows[1]["metrics"]["exact_match"] == 0.0  # `assert total == 4` against `total == 3`
    # the pool also gives format-v2 model rows their exemplars: it no longer needs --in-project
    assert BenchConfig(data=str(data), exemplar_pool=str(pool), train=str(pool)).exemplar_pool == str(pool)
