"""Tokenised datasets and the batch collator used by teacher training, distillation and logits.

Examples become ``{"input_ids", "labels"}`` through :mod:`pytest_kdassert.core.input_format` only.
Batches are padded dynamically (to the longest item); the training sampler
(:mod:`distillation.batching`) puts examples of equal length together so little padding is left.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from transformers import BatchEncoding

from distillation.progress import progress
from distillation.signals import signal_to_batch
from distillation.sources import example_sources
from pytest_kdassert.core.input_format import InputFormatConfig, build_target
from pytest_kdassert.core.records import Example, load_examples

logger = logging.getLogger(__name__)

_CHUNK = 512


def encode_examples(examples: Sequence[Example], tokenizer, fmt: InputFormatConfig,
                    desc: str = "tokenising", pool: Sequence[Example] | None = None) -> list[dict]:
    """``[{"input_ids": [...], "labels": [...]}]`` for each example, in order. Format v2 draws
    exemplars from ``pool`` (default: ``examples``); a part of a split passes the whole split,
    so its inputs are the ones the split gets when encoded whole."""
    encoded = []
    texts = example_sources(examples, fmt, pool)
    with progress(len(examples), desc) as bar:
        for start in range(0, len(examples), _CHUNK):
            chunk = examples[start : start + _CHUNK]
            sources = tokenizer(texts[start : start + _CHUNK],
                                max_length=fmt.max_source_tokens, truncation=True)["input_ids"]
            targets = tokenizer([build_target(e.assertion) for e in chunk],
                                max_length=fmt.max_target_tokens, truncation=True)["input_ids"]
            encoded.extend({"input_ids": s, "labels": t} for s, t in zip(sources, targets, strict=True))
            bar.update(len(chunk))
    return encoded


class EncodedDataset(torch.utils.data.Dataset):
    """Tokenised examples; with ``with_index`` each item also carries its position (for the store)."""

    def __init__(self, items: list[dict], ids: list[str] | None = None, with_index: bool = False):
        self.items = items
        self.ids = ids or [str(i) for i in range(len(items))]
        self.with_index = with_index

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.items[index])
        if self.with_index:
            item["index"] = index
        return item

    @property
    def lengths(self) -> list[int]:
        """Source lengths, for length bucketing."""
        return [len(item["input_ids"]) for item in self.items]

    def target_token_count(self) -> int:
        return sum(len(item["labels"]) for item in self.items)


def load_dataset(path, tokenizer, fmt: InputFormatConfig, limit: int | None = None,
                 with_index: bool = False) -> EncodedDataset:
    """Read a mining-schema JSONL file and tokenise it."""
    examples = load_examples(path, limit=limit)
    items = encode_examples(examples, tokenizer, fmt, desc=f"tokenising {path}")
    return EncodedDataset(items, [e.id for e in examples], with_index=with_index)


class Seq2SeqCollator:
    """Dynamic padding (to the longest item, rounded up to ``pad_to_multiple_of``; or to
    ``pad_to_length``), plus the teacher signal for each batch when a logit store is given.
    Items hold lists or numpy arrays; padding is done in numpy, once per batch."""

    def __init__(self, tokenizer, store=None, pad_to_multiple_of: int | None = 8,
                 pad_to_length: int | None = None):
        self.pad_id = tokenizer.pad_token_id
        self.multiple = pad_to_multiple_of or 1
        self.pad_to_length = pad_to_length
        self.store = store

    def __call__(self, features: list[dict]) -> dict:
        indices = [f["index"] for f in features if "index" in f]
        input_ids = self._pad([f["input_ids"] for f in features], self.pad_id, self.pad_to_length)
        batch = {"input_ids": input_ids, "attention_mask": _mask(features, input_ids.shape[1])}
        if "labels" in features[0]:
            batch["labels"] = self._pad([f["labels"] for f in features], -100)
        if self.store is not None and indices:
            batch.update(signal_to_batch(self.store.batch_signal(indices, batch["labels"])))
        return BatchEncoding(batch)

    def _pad(self, rows, value: int, length: int | None = None) -> torch.Tensor:
        longest = max(len(r) for r in rows)
        width = max(length or 0, -(-longest // self.multiple) * self.multiple)
        out = np.full((len(rows), width), value, dtype=np.int64)
        for i, row in enumerate(rows):
            out[i, :len(row)] = row
        return torch.from_numpy(out)


def _mask(features, width: int) -> torch.Tensor:
    """1 over each item's own tokens, 0 over its padding."""
    lengths = torch.tensor([len(f["input_ids"]) for f in features])
    return (torch.arange(width)[None, :] < lengths[:, None]).long()
