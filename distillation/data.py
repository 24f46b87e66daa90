"""Tokenised datasets and the batch collator used by teacher training, distillation and logits.

Examples become ``{"input_ids", "labels"}`` through :mod:`pytest_kdassert.core.input_format` only.
Batches are padded dynamically (to the longest item, via ``DataCollatorForSeq2Seq``); the
Trainer's ``group_by_length`` sorts similar lengths together so little padding is left.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from distillation.signals import signal_to_batch
from distillation.sources import example_sources
from pytest_kdassert.core.input_format import InputFormatConfig, build_target
from pytest_kdassert.core.records import Example, load_examples

logger = logging.getLogger(__name__)

_CHUNK = 512


def encode_examples(examples: Sequence[Example], tokenizer, fmt: InputFormatConfig,
                    desc: str = "tokenising") -> list[dict]:
    """``[{"input_ids": [...], "labels": [...]}]`` for each example, in order."""
    encoded = []
    texts = example_sources(examples, fmt)  # format v2: exemplars from the same file's projects
    with tqdm(total=len(examples), desc=desc, unit="ex", disable=None) as bar:
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
    """Dynamic padding, plus the teacher signal for each batch when a logit store is given."""

    def __init__(self, tokenizer, store=None, pad_to_multiple_of: int | None = 8):
        from transformers import DataCollatorForSeq2Seq

        self.base = DataCollatorForSeq2Seq(tokenizer, model=None, label_pad_token_id=-100,
                                           pad_to_multiple_of=pad_to_multiple_of, return_tensors="pt")
        self.store = store

    def __call__(self, features: list[dict]) -> dict:
        indices = [f.pop("index") for f in features if "index" in f]
        batch = self.base(features)
        if self.store is not None and indices:
            batch.update(signal_to_batch(self.store.batch_signal(indices, batch["labels"])))
        return batch
