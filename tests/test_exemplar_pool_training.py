"""Training on a sample with exemplars from the dataset it was drawn from (``exemplar_pool``)."""

from __future__ import annotations

import json

import pytest

from distillation.data import encode_examples
from distillation.logit_extract import LogitsConfig, extract_logits
from distillation.pipeline import load_train_config, logits_config_for
from distillation.sample import SampleConfig, sample_dataset
from distillation.token_cache import load_tokenized
from pytest_kdassert.core.errors import ConfigError
from pytest_kdassert.core.input_format import InputFormatConfig
from pytest_kdassert.core.records import load_examples
from tests.train_data import write_dataset

V2 = InputFormatConfig(max_source_tokens=128, version=2, exemplars=2)


@pytest.fixture
def sampled(tmp_path):
    """A 40-example dataset and a 10-example sample of it."""
    full = write_dataset(tmp_path / "full", train=40, valid=12)
    sample = tmp_path / "sample"
    sample_dataset(SampleConfig(str(full), str(sample), {"train": 10, "valid": 4, "test": 4}, seed=1))
    return full, sample


def test_sample_inputs_draw_exemplars_from_the_pool(sampled, tiny_tokenizer, tmp_path):
    full, sample = sampled
    examples, pool = load_examples(sample / "train.jsonl"), load_examples(full / "train.jsonl")
    expected = encode_examples(examples, tiny_tokenizer, V2, pool=pool)
    assert expected != encode_examples(examples, tiny_tokenizer, V2)  # a bigger pool, other exemplars
    cache = tmp_path / "cache"
    pooled = load_tokenized(sample / "train.jsonl", tiny_tokenizer, V2, cache_dir=cache,
                            pool_path=full / "train.jsonl")
    assert [list(pooled[i]["input_ids"]) for i in range(len(pooled))] == [e["input_ids"] for e in expected]
    own = load_tokenized(sample / "train.jsonl", tiny_tokenizer, V2, cache_dir=cache)
    assert len(list(cache.iterdir())) == 2  # the pool is part of the cache key
    assert [list(own[i]["input_ids"]) for i in range(len(own))] != [e["input_ids"] for e in expected]


def test_the_logit_store_uses_the_pool_and_records_it(sampled, tiny_model_dir, tmp_path):
    import shutil

    from pytest_kdassert.core.loading import save_format_config

    full, sample = sampled
    model = tmp_path / "v2"
    shutil.copytree(tiny_model_dir, model)
    save_format_config(model, V2)
    config = dict(teacher=str(model), data=str(sample / "train.jsonl"), k=4, batch_size=4)
    pooled = extract_logits(LogitsConfig(out_dir=str(tmp_path / "pooled"),
                                         exemplar_pool=str(full / "train.jsonl"), **config))
    own = extract_logits(LogitsConfig(out_dir=str(tmp_path / "own"), **config))
    pooled_meta = json.loads((pooled / "manifest.json").read_text())
    assert "exemplar_pool_sha256" in pooled_meta
    assert "exemplar_pool_sha256" not in json.loads((own / "manifest.json").read_text())
    assert pooled_meta["sha256"] != json.loads((own / "manifest.json").read_text())["sha256"]


def test_train_config_passes_the_pool_to_every_stage(sampled, tmp_path):
    full, sample = sampled
    config = load_train_config(None, data_dir=str(sample), out_dir=str(tmp_path / "runs"),
                               exemplars=2, exemplar_pool=str(full))
    assert config.data(tmp_path).pool("train") == full / "train.jsonl"
    assert config.data(tmp_path).pool("valid") == full / "valid.jsonl"
    assert logits_config_for(config, tmp_path / "teacher").exemplar_pool == str(full / "train.jsonl")
    plain = load_train_config(None, data_dir=str(sample), exemplars=2)
    assert plain.data(tmp_path).pool("train") is None
    assert logits_config_for(plain, tmp_path / "teacher").exemplar_pool is None


def test_a_pool_needs_exemplars_and_a_dataset(sampled):
    full, sample = sampled
    with pytest.raises(ConfigError, match="exemplars >= 1"):
        load_train_config(None, data_dir=str(sample), exemplar_pool=str(full))
    with pytest.raises(ConfigError, match="no train.jsonl"):
        load_train_config(None, data_dir=str(sample), exemplars=2, exemplar_pool=str(full / "nowhere"))
