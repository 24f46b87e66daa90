"""``kdassert bench``: aggregation with fake predictors, the retrieval baseline, the report and CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from distillation.bench import (
    METRIC_KEYS,
    BenchConfig,
    Row,
    build_report,
    format_table,
    parse_model_spec,
    run_bench,
    score_predictions,
)
from distillation.bench_speed import measure_latency
from distillation.cli import main
from distillation.retrieval import RetrievalBaseline, RetrievalConfig
from pytest_kdassert.core.errors import ConfigError
from pytest_kdassert.core.generate import Candidate
from pytest_kdassert.core.input_format import example_source
from tests.train_data import make_examples, write_dataset


class PerfectModel:
    """Knows every answer: a test double with the predictor interface."""

    name = "perfect"

    def __init__(self, examples):
        self.answers = {example_source(e): e.assertion for e in examples}

    def predict(self, sources):
        return [[Candidate(self.answers[s], 0.0, 0)] for s in sources]


class ConstantModel:
    name = "constant"

    def predict(self, sources):
        return [[Candidate("assert x == 3", -1.0, 0), Candidate("assert x ==", -2.0, 1)] for _ in sources]


def _rows(examples, *predictors):
    sources = [example_source(e) for e in examples]
    return [Row(p.name, "model", p.predict(sources)) for p in predictors]


def test_perfect_model_scores_one_and_constant_model_scores_its_share():
    examples = make_examples(30, seed=3)
    config = BenchConfig(data="unused.jsonl", train="unused.jsonl", beams=2, out=None)
    report = build_report(config, examples, _rows(examples, PerfectModel(examples), ConstantModel()))
    perfect, constant = (row["metrics"] for row in report["rows"])
    assert all(perfect[k] == pytest.approx(1.0) for k in METRIC_KEYS if k != "agreement_with_teacher")
    share = sum(e.assertion == "assert x == 3" for e in examples) / len(examples)
    assert 0 < share < 1  # the data has both kinds
    assert constant["exact_match"] == pytest.approx(share)
    assert constant["top_k_exact_match"] == pytest.approx(share)  # the 2nd candidate never parses
    assert constant["lenient_match"] == 1.0  # every reference is `assert x == <literal>`
    assert constant["parse_rate"] == 1.0
    assert perfect["agreement_with_teacher"] is None


def test_agreement_with_teacher_row():
    examples = make_examples(10, seed=1)
    rows = _rows(examples, PerfectModel(examples), ConstantModel())
    rows[0].name = "teacher"
    report = build_report(BenchConfig(data="x", teacher="t", out=None), examples, rows)
    teacher, constant = report["rows"]
    assert teacher["metrics"]["agreement_with_teacher"] is None
    assert constant["metrics"]["agreement_with_teacher"] == pytest.approx(constant["metrics"]["exact_match"])


def test_score_predictions_counts_empty_and_unparsable_output_as_misses():
    summary, rows = score_predictions(["assert a", "assert b"], [[], [Candidate("assert (", 0, 0)]], k=1)
    assert summary["exact_match"] == 0.0 and summary["parse_rate"] == 0.0
    assert rows[0]["prediction"] == "" and rows[1]["parses"] is False
    with pytest.raises(ConfigError):
        score_predictions(["assert a"], [], k=1)


def test_retrieval_returns_nearest_training_assertion():
    train = ["def add(a, b): return a + b", "def mul(a, b): return a * b", "class Stack: push pop"]
    baseline = RetrievalBaseline(train, ["assert add(1, 2) == 3", "assert mul(2, 2) == 4", "assert s.pop()"])
    (best,), (other,) = baseline.predict(["def add(x, y): return x + y", "Stack push"])
    assert best.text == "assert add(1, 2) == 3" and other.text == "assert s.pop()"
    # Jaccard over token sets: 8 tokens shared of 12 distinct (add/+ vs mul/*).
    sims = baseline.similarities("def add(a, b): return a + b")
    assert sims[0] == 1.0 and sims[1] == pytest.approx(8 / 12)
    assert baseline.similarities("zzz").tolist() == [0.0, 0.0, 0.0]


def test_retrieval_index_equals_brute_force_jaccard():
    import random

    from distillation.retrieval import token_set

    rng = random.Random(7)
    words = ["def", "x", "(", ")", "y", "z", "assert", "==", "w1", "w2", "w3"]
    docs = [" ".join(rng.choices(words, weights=[9, 8, 8, 8, 3, 3, 2, 2, 1, 1, 1], k=rng.randint(0, 8)))
            for _ in range(60)]
    baseline = RetrievalBaseline(docs, [f"assert {i}" for i in range(len(docs))])
    for query in docs[:10] + ["y w3 (", ""]:
        q = token_set(query)
        expected = [len(q & token_set(d)) / len(q | token_set(d)) if q | token_set(d) else 0.0
                    for d in docs]
        assert baseline.similarities(query).tolist() == pytest.approx(expected)


def test_retrieval_top_k_distinct_and_ties_in_training_order():
    baseline = RetrievalBaseline(["a b", "a b", "a c", "x y"], ["A1", "A1", "A2", "A3"],
                                 RetrievalConfig(num_return=3))
    (cands,) = baseline.predict(["a b"])
    assert [c.text for c in cands] == ["A1", "A2", "A3"]
    assert [c.rank for c in cands] == [0, 1, 2]
    assert RetrievalBaseline(["q", "q"], ["first", "second"]).predict(["q"])[0][0].text == "first"


def test_parse_model_spec_labels():
    assert parse_model_spec("student a=0.5=runs/x") == ("student a=0.5", "runs/x")
    assert parse_model_spec("runs/students/student-topk-a0.5-T2/final") == ("student-topk-a0.5-T2",
                                                                           "runs/students/student-topk-a0.5-T2/final")
    assert parse_model_spec("default") == ("default", "default")
    with pytest.raises(ConfigError, match="named"):
        BenchConfig(data="d", models=("a=x", "a=y"))
    with pytest.raises(ConfigError, match="Nothing"):
        BenchConfig(data="d")


def test_measure_latency_percentiles():
    calls = []
    result = measure_latency(lambda batch: calls.append(batch), ["a", "b", "c"], warmup=1)
    assert len(calls) == 4 and result["n"] == 3
    assert 0 <= result["p50_ms"] <= result["p95_ms"]


@pytest.fixture(scope="module")
def short_model_dir(tmp_path_factory, tiny_tokenizer):
    """A tiny random model whose format allows 8 output tokens, so generation is quick."""
    import torch

    from distillation.models import build_model
    from pytest_kdassert.core.input_format import InputFormatConfig
    from pytest_kdassert.core.loading import save_format_config

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("short-model")
    build_model("tiny", tiny_tokenizer).save_pretrained(directory)
    tiny_tokenizer.save_pretrained(directory)
    save_format_config(directory, InputFormatConfig(max_source_tokens=64, max_target_tokens=8))
    return directory


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory, short_model_dir):
    root = tmp_path_factory.mktemp("bench")
    data = write_dataset(root / "data", train=40, valid=4)
    config = BenchConfig(data=str(data / "valid.jsonl"), models=(f"student a=0={short_model_dir}",),
                         teacher=str(short_model_dir), train=str(data / "train.jsonl"),
                         out=str(root / "out" / "report.json"), beams=2, batch_size=4,
                         latency_examples=2, memory=False)
    return root, run_bench(config)


def test_report_schema(bench_run):
    root, report = bench_run
    assert json.loads((root / "out" / "report.json").read_text()) == json.loads(json.dumps(report))
    assert report["examples"] == 4 and report["top_k"] == 2
    assert set(report["versions"]) >= {"kdassert", "torch", "transformers"}
    assert report["config"]["beams"] == 2
    assert [r["name"] for r in report["rows"]] == ["teacher", "student a=0", "retrieval"]
    for row in report["rows"]:
        assert set(row["metrics"]) == set(METRIC_KEYS)
        assert all(isinstance(v, float) for k, v in row["metrics"].items() if k != "agreement_with_teacher")
        assert row["speed"]["throughput_eps"] > 0
        assert row["speed"]["cpu_latency_1thread"]["n"] == 2
    teacher, student, retrieval = report["rows"]
    assert student["metrics"]["agreement_with_teacher"] == 1.0  # same weights, same outputs
    assert teacher["size"]["parameters"] > 1000 and teacher["size"]["disk_bytes"] > 10_000
    assert retrieval["metrics"]["lenient_match"] == 1.0  # every target is `assert x == <int>`
    lines = (root / "out" / "report.predictions.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert len(lines) == 4 and set(first["predictions"]) == {"teacher", "student a=0", "retrieval"}
    assert len(first["predictions"]["teacher"]["candidates"]) == 2


def test_probe_rss_reports_process_peak(short_model_dir):
    from distillation.bench_speed import probe_rss

    rss = probe_rss(str(short_model_dir), ["def f(): pass"], beams=1, batch_size=1)
    assert rss["peak_rss_bytes"] >= rss["rss_after_imports_bytes"] > 10**7


def test_table_has_one_line_per_row(bench_run):
    _, report = bench_run
    table = format_table(report).splitlines()
    assert len(table) == 2 + 3 and table[0].startswith("| row | params")
    assert table[-1].startswith("| retrieval | - |")


def test_cli_bench_default_model_missing_is_a_clean_error(tmp_path, monkeypatch):
    monkeypatch.setattr("pytest_kdassert.core.loading.default_model_dir", lambda: tmp_path / "no-model")
    data = write_dataset(tmp_path / "data", train=4, valid=2)
    result = CliRunner().invoke(main, ["bench", "--data", str(data / "valid.jsonl"), "--model", "default",
                                       "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 1
    assert "No bundled default model" in result.output and "Traceback" not in result.output


def test_cli_bench_prints_table(tmp_path):
    data = write_dataset(tmp_path / "data", train=20, valid=3)
    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["bench", "--data", str(data / "valid.jsonl"), "--train",
                                       str(data / "train.jsonl"), "--out", str(out), "--beams", "1"])
    assert result.exit_code == 0, result.output
    assert "| retrieval |" in result.output and out.is_file()
    assert json.loads(out.read_text())["rows"][0]["name"] == "retrieval"


def test_add_to_keeps_the_previous_rows_and_scores_agreement_with_their_teacher(bench_run, short_model_dir):
    root, first = bench_run
    out = root / "added" / "report.json"
    config = BenchConfig(data=str(root / "data" / "valid.jsonl"), models=(f"later={short_model_dir}",),
                         out=str(out), beams=2, batch_size=4, latency_examples=0, memory=False,
                         add_to=str(root / "out" / "report.json"))
    report = run_bench(config)
    names = [r["name"] for r in report["rows"]]
    assert names == ["teacher", "student a=0", "retrieval", "later"]
    kept = {r["name"]: r for r in first["rows"]}
    for row in report["rows"][:3]:  # rescored from their predictions: the same numbers
        assert row["metrics"] == kept[row["name"]]["metrics"]
        assert row["speed"] == kept[row["name"]]["speed"]
    assert report["rows"][3]["metrics"]["agreement_with_teacher"] == 1.0  # same weights as the kept teacher
    assert report["rows"][3]["metrics"]["exact_match"] == kept["student a=0"]["metrics"]["exact_match"]
    lines = (root / "added" / "report.predictions.jsonl").read_text().splitlines()
    assert set(json.loads(lines[0])["predictions"]) == set(names)


def test_add_to_replaces_a_row_of_the_same_name(bench_run, short_model_dir):
    root, _ = bench_run
    config = BenchConfig(data=str(root / "data" / "valid.jsonl"), train=str(root / "data" / "train.jsonl"),
                         out=None, beams=2, latency_examples=0, memory=False,
                         add_to=str(root / "out" / "report.json"))
    rows = run_bench(config)["rows"]
    assert [r["name"] for r in rows] == ["teacher", "student a=0", "retrieval"]
    assert "cpu_latency_1thread" not in rows[2]["speed"]  # this run's (no latency), not the kept one


@pytest.mark.parametrize(("change", "message"), [
    ({"limit": 3}, "scored other examples"),
    ({"beams": 3}, "used 2 beams"),
])
def test_add_to_refuses_a_report_on_other_terms(bench_run, change, message):
    root, _ = bench_run
    config = BenchConfig(**{"data": str(root / "data" / "valid.jsonl"), "train": str(root / "data" / "train.jsonl"),
                            "out": None, "beams": 2, "latency_examples": 0, "memory": False,
                            "add_to": str(root / "out" / "report.json"), **change})
    with pytest.raises(ConfigError, match=message):
        run_bench(config)


def test_cli_add_to_a_missing_report_is_a_clean_error(tmp_path):
    data = write_dataset(tmp_path / "data", train=4, valid=2)
    result = CliRunner().invoke(main, ["bench", "--data", str(data / "valid.jsonl"), "--train",
                                       str(data / "train.jsonl"), "--add-to", str(tmp_path / "none.json")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_add_to_a_report_with_damaged_predictions_is_a_clean_error(bench_run, tmp_path):
    root, _ = bench_run
    report = tmp_path / "r.json"
    report.write_text((root / "out" / "report.json").read_text())
    (tmp_path / "r.predictions.jsonl").write_text('{"id": 1, "predictions": {"teacher": ')
    config = BenchConfig(data=str(root / "data" / "valid.jsonl"), train=str(root / "data" / "train.jsonl"),
                         out=None, beams=2, latency_examples=0, memory=False, add_to=str(report))
    with pytest.raises(ConfigError, match="damaged or from another report"):
        run_bench(config)


def test_a_limit_that_drops_projects_is_called_out(tmp_path, caplog):
    import dataclasses
    import logging

    from distillation.bench import warn_if_few_projects
    from pytest_kdassert.core.records import load_examples, write_examples

    examples = [dataclasses.replace(e, project="a" if i < 4 else "b", id=f"x{i}")
                for i, e in enumerate(make_examples(8, seed=2))]
    path = tmp_path / "test.jsonl"
    write_examples(path, examples)
    with caplog.at_level(logging.WARNING, logger="distillation.bench"):
        warn_if_few_projects(BenchConfig(data=str(path), train="t", limit=4), load_examples(path, 4))
    assert "--limit 4 keeps the first 4 examples" in caplog.text and "1 of its 2 projects" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="distillation.bench"):
        warn_if_few_projects(BenchConfig(data=str(path), train="t", limit=5), load_examples(path, 5))
    assert caplog.text == ""
