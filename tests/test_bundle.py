"""`kdassert bundle`: installing a student as the default model, with a card and a quality gate."""

import json

import pytest
from click.testing import CliRunner

from distillation.bundle import CARD_FILE, MAX_BYTES, BundleConfig, bundle_model
from distillation.cli import main
from pytest_kdassert.core.errors import ConfigError, DataError
from pytest_kdassert.core.loading import load_seq2seq


def _report(path, model_dir, exact, data="test.jsonl", p50_ms=12.5):
    latency = {"cpu_latency_1thread": {"p50_ms": p50_ms}} if p50_ms is not None else {}
    row = {"name": "student", "kind": "model", "path": str(model_dir),
           "metrics": {"exact_match": exact, "lenient_match": exact},
           "size": {"parameters": 1234}, "speed": latency}
    retrieval = {"name": "retrieval", "kind": "retrieval", "path": None,
                 "metrics": {"exact_match": 0.01}, "size": {}, "speed": {}}
    path.write_text(json.dumps({"config": {"data": data, "beams": 5}, "examples": 10,
                                "rows": [row, retrieval]}))
    return path


def test_bundle_writes_a_loadable_model_and_card(tmp_path, tiny_model_dir):
    report = _report(tmp_path / "bench.json", tiny_model_dir, 0.2)
    target = bundle_model(BundleConfig(str(tiny_model_dir), str(report), out_dir=str(tmp_path / "default")))
    card = json.loads((target / CARD_FILE).read_text())
    assert card["benchmark"]["metrics"]["exact_match"] == 0.2
    assert card["benchmark"]["latency_p50_ms_1thread"] == 12.5
    assert card["benchmark"]["others"] == {"retrieval": {"exact_match": 0.01}}
    assert (target / "model.safetensors").stat().st_size < card["size_bytes"] <= MAX_BYTES
    assert (target / "model.safetensors").is_file()
    assert not list(target.glob("*.bin")) and not list(target.glob("*.pt"))  # no training state
    model, tokenizer = load_seq2seq(target)
    assert model.num_parameters() > 0 and tokenizer.vocab_size > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_bundle_replaces_only_a_worse_model(tmp_path, tiny_model_dir):
    out = str(tmp_path / "default")
    bundle_model(BundleConfig(str(tiny_model_dir), str(_report(tmp_path / "a.json", tiny_model_dir, 0.2)),
                              out_dir=out))
    worse = _report(tmp_path / "b.json", tiny_model_dir, 0.1)
    with pytest.raises(ConfigError, match="Not replacing the bundled model"):
        bundle_model(BundleConfig(str(tiny_model_dir), str(worse), out_dir=out))
    other_data = _report(tmp_path / "c.json", tiny_model_dir, 0.9, data="valid.jsonl")
    with pytest.raises(ConfigError, match="same data"):
        bundle_model(BundleConfig(str(tiny_model_dir), str(other_data), out_dir=out))
    bundle_model(BundleConfig(str(tiny_model_dir), str(worse), out_dir=out, force=True))
    card = json.loads((tmp_path / "default" / CARD_FILE).read_text())
    assert card["benchmark"]["metrics"]["exact_match"] == 0.1
    better = _report(tmp_path / "d.json", tiny_model_dir, 0.3)
    bundle_model(BundleConfig(str(tiny_model_dir), str(better), out_dir=out))
    assert json.loads((tmp_path / "default" / CARD_FILE).read_text())["benchmark"]["metrics"]["exact_match"] == 0.3


def test_bundle_errors_are_clear(tmp_path, tiny_model_dir):
    (tmp_path / "bad.json").write_text("{}")
    result = CliRunner().invoke(main, ["bundle", str(tiny_model_dir), "--bench", str(tmp_path / "bad.json"),
                                       "-o", str(tmp_path / "x")])
    assert result.exit_code == 1 and "not a `kdassert bench` report" in result.output
    report = _report(tmp_path / "r.json", tmp_path / "elsewhere", 0.2)
    with pytest.raises(ConfigError, match="no row for"):
        bundle_model(BundleConfig(str(tiny_model_dir), str(report), out_dir=str(tmp_path / "x")))
    with pytest.raises(DataError):
        bundle_model(BundleConfig(str(tiny_model_dir), str(tmp_path / "missing.json"), out_dir=str(tmp_path / "x")))
    assert not (tmp_path / "x").exists()


def test_bundle_keeps_the_plugin_inside_its_latency_budget(tmp_path, tiny_model_dir):
    out = str(tmp_path / "default")
    slow = _report(tmp_path / "slow.json", tiny_model_dir, 0.5, p50_ms=70.9)
    with pytest.raises(ConfigError, match="latency p50 is 70.9 ms, over the plugin's budget of 50 ms"):
        bundle_model(BundleConfig(str(tiny_model_dir), str(slow), out_dir=out))
    unmeasured = _report(tmp_path / "unmeasured.json", tiny_model_dir, 0.5, p50_ms=None)
    with pytest.raises(ConfigError, match="--latency-examples"):
        bundle_model(BundleConfig(str(tiny_model_dir), str(unmeasured), out_dir=out))
    assert not (tmp_path / "default").exists()
    result = CliRunner().invoke(main, ["bundle", str(tiny_model_dir), "--bench", str(slow), "-o", out,
                                       "--max-latency-ms", "80"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "default" / CARD_FILE).read_text())["benchmark"]["latency_p50_ms_1thread"] == 70.9
