"""The token-id cache: ids equal a fresh tokenisation, reused until data, tokenizer or format change."""

from __future__ import annotations

import numpy as np
import pytest

import distillation.token_cache as token_cache
from distillation.data import encode_examples
from distillation.token_cache import TokenizedSplit, load_tokenized
from pytest_kdassert.core.input_format import InputFormatConfig
from pytest_kdassert.core.records import load_examples
from tests.train_data import write_split

FMT = InputFormatConfig()


@pytest.fixture()
def split(tmp_path):
    return write_split(tmp_path, "train", 10)


def _forbid_tokenising(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("tokenised again although the cache is valid")
    monkeypatch.setattr(token_cache, "encode_examples", fail)


def _count_tokenising(monkeypatch) -> list:
    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return encode_examples(*args, **kwargs)
    monkeypatch.setattr(token_cache, "encode_examples", counting)
    return calls


def test_key_is_stable_after_the_tokenizer_was_used(split, tiny_tokenizer):
    from distillation.token_cache import cache_key

    before = cache_key(split, tiny_tokenizer, FMT, None)
    tiny_tokenizer(["assert x == 1"], max_length=5, truncation=True)  # leaves truncation state behind
    assert cache_key(split, tiny_tokenizer, FMT, None) == before


def test_cached_ids_equal_fresh_tokenisation(split, tmp_path, tiny_tokenizer, monkeypatch):
    fresh = encode_examples(load_examples(split), tiny_tokenizer, FMT)
    load_tokenized(split, tiny_tokenizer, FMT, cache_dir=tmp_path / "cache")
    _forbid_tokenising(monkeypatch)
    cached = load_tokenized(split, tiny_tokenizer, FMT, with_index=True, cache_dir=tmp_path / "cache")
    assert isinstance(cached.arrays["source_ids"], np.memmap)
    assert len(cached) == 10 and cached.ids == [e.id for e in load_examples(split)]
    for i, item in enumerate(fresh):
        got = cached[i]
        assert got["input_ids"].tolist() == item["input_ids"]
        assert got["labels"].tolist() == item["labels"]
        assert got["index"] == i
    assert cached.lengths.tolist() == [len(x["input_ids"]) for x in fresh]
    assert cached.target_token_count() == sum(len(x["labels"]) for x in fresh)


def test_data_tokenizer_and_format_changes_rebuild(split, tmp_path, tiny_tokenizer, monkeypatch):
    from distillation.tokenizer import TokenizerConfig, train_tokenizer

    cache = tmp_path / "cache"
    calls = _count_tokenising(monkeypatch)
    load_tokenized(split, tiny_tokenizer, FMT, cache_dir=cache)
    load_tokenized(split, tiny_tokenizer, FMT, cache_dir=cache)
    assert len(calls) == 1
    load_tokenized(split, tiny_tokenizer, InputFormatConfig(max_source_tokens=16), cache_dir=cache)
    assert len(calls) == 2
    texts = ["def add(a, b):\n    return a + b", "assert x == 3", "x = add(1, 2)"] * 20
    other = train_tokenizer(texts, TokenizerConfig(vocab_size=300, min_frequency=1))
    load_tokenized(split, other, FMT, cache_dir=cache)
    assert len(calls) == 3
    write_split(split.parent, "train", 10, seed=5)  # same name, other content
    changed = load_tokenized(split, tiny_tokenizer, FMT, cache_dir=cache)
    assert len(calls) == 4
    assert changed[0]["labels"].tolist() == encode_examples(load_examples(split), tiny_tokenizer,
                                                             FMT)[0]["labels"]


@pytest.mark.parametrize("damage", ["meta", "truncate", "tmp-only"])
def test_half_written_cache_is_rebuilt(split, tmp_path, tiny_tokenizer, monkeypatch, damage):
    cache = tmp_path / "cache"
    first = load_tokenized(split, tiny_tokenizer, FMT, cache_dir=cache)
    directory = next(cache.iterdir())
    expected = [first[i]["input_ids"].tolist() for i in range(len(first))]
    if damage == "meta":
        (directory / "meta.json").unlink()
    elif damage == "truncate":
        ids = np.load(directory / "source_ids.npy")
        np.save(directory / "source_ids.npy", ids[: len(ids) // 2])
    else:  # interrupted before the rename: only the temporary directory exists
        directory.rename(directory.with_name(directory.name + ".tmp-123"))
    calls = _count_tokenising(monkeypatch)
    rebuilt = load_tokenized(split, tiny_tokenizer, FMT, cache_dir=cache)
    assert len(calls) == 1
    assert [rebuilt[i]["input_ids"].tolist() for i in range(len(rebuilt))] == expected
    assert TokenizedSplit.open(directory) is not None


def test_collator_pads_arrays_like_lists(split, tiny_tokenizer, tmp_path):
    from distillation.data import Seq2SeqCollator

    items = encode_examples(load_examples(split), tiny_tokenizer, FMT)[:3]
    cached = load_tokenized(split, tiny_tokenizer, FMT, cache_dir=tmp_path / "c")
    collate = Seq2SeqCollator(tiny_tokenizer)
    from_lists, from_arrays = collate(items), collate([cached[i] for i in range(3)])
    for key in ("input_ids", "attention_mask", "labels"):
        assert from_lists[key].tolist() == from_arrays[key].tolist()
    longest = max(len(x["input_ids"]) for x in items)
    assert from_lists["input_ids"].shape[1] == -(-longest // 8) * 8
    assert from_lists["attention_mask"].sum(1).tolist() == [len(x["input_ids"]) for x in items]
    assert (from_lists["labels"] == -100).sum() == sum(from_lists["labels"].shape[1] - len(x["labels"])
                                                        for x in items)
