"""``kdassert logits``: run a teacher over a split, teacher-forced, and fill a logit store."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from distillation.data import Seq2SeqCollator, encode_examples
from distillation.logit_codec import QUANT_BITS, TOPK_DTYPES
from distillation.logit_store import (
    ShardWriter,
    finished_part,
    make_codec,
    sha256_file,
    shard_name,
    shard_range,
    try_finalize,
    write_part,
)
from distillation.signals import topk_signal
from pytest_kdassert.core.errors import ConfigError
from pytest_kdassert.core.loading import load_format_config, load_seq2seq, resolve_model_path
from pytest_kdassert.core.records import load_examples

logger = logging.getLogger(__name__)

STORE_MODES = ("topk", "quantized")


@dataclass(frozen=True)
class LogitsConfig:
    """Settings of ``kdassert logits``."""

    teacher: str
    """Teacher model directory (or hub id)."""
    data: str
    """Mining-schema JSONL split to run the teacher over."""
    out_dir: str
    """Store directory to write."""
    mode: str = "topk"
    """``topk``: k ids + log-probs + leftover mass per token; ``quantized``: full vocabulary."""
    k: int = 32
    """Teacher tokens kept per position (topk mode)."""
    dtype: str = "int8"
    """Storage of the top-k log-probs: fp16, int8 or int4."""
    bits: int = 8
    """Bits per logit in quantized mode: 4, 8 or 16."""
    batch_size: int = 32
    """Examples per teacher forward pass."""
    num_shards: int = 1
    """Shards the split is divided into (one per process when extraction is split); 0: one
    per :data:`SHARD_EXAMPLES` examples. A shard finished by an earlier run with the same
    settings is kept, so an interrupted extraction continues where it stopped."""
    shard_index: int | None = None
    """Write only this shard (for running extraction in several processes); None: all."""
    limit: int | None = None
    """Use only the first N examples of the split."""
    exemplar_pool: str | None = None
    """JSONL whose tests give format-v2 exemplars (default: the split itself), as in training."""
    device: str = "auto"
    """cpu, cuda, or auto (cuda when available)."""

    def __post_init__(self):
        if self.mode not in STORE_MODES:
            raise ConfigError(f"mode must be one of {STORE_MODES}, got {self.mode!r}")
        if self.k < 1:
            raise ConfigError(f"k must be >= 1, got {self.k}")
        if self.dtype not in TOPK_DTYPES:
            raise ConfigError(f"dtype must be one of {TOPK_DTYPES}, got {self.dtype!r}")
        if self.bits not in QUANT_BITS:
            raise ConfigError(f"bits must be one of {QUANT_BITS}, got {self.bits}")
        if self.batch_size < 1 or self.num_shards < 0:
            raise ConfigError("batch_size must be >= 1 and num_shards >= 0 (0: automatic)")
        if self.shard_index is not None and self.num_shards == 0:
            raise ConfigError("shard_index needs an explicit num_shards")
        if self.shard_index is not None and not 0 <= self.shard_index < self.num_shards:
            raise ConfigError(f"shard_index must be in [0, {self.num_shards}), got {self.shard_index}")


SHARD_EXAMPLES = 8192
"""Examples per shard when the shard count is automatic: the work an interruption can lose
(about 10 minutes of a 9.4M teacher on one CPU core)."""


def auto_shards(num_examples: int) -> int:
    """Shards for ``num_examples`` when ``num_shards`` is 0."""
    return max(1, -(-num_examples // SHARD_EXAMPLES))


def teacher_identity(teacher: str) -> dict:
    """What identifies a teacher: its path and the checksums of its config and weights."""
    path = Path(resolve_model_path(teacher))
    identity = {"path": str(path)}
    for name in ("config.json", "model.safetensors"):
        if (path / name).is_file():
            identity[f"{name}_sha256"] = sha256_file(path / name)
    return identity


def _device(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def extract_logits(config: LogitsConfig) -> Path:
    """Write the shard(s) this process owns; ``manifest.json`` once every shard exists."""
    model, tokenizer = load_seq2seq(config.teacher, device=_device(config.device))
    fmt = load_format_config(config.teacher)
    examples = load_examples(config.data, limit=config.limit)
    # exemplars from the whole split (or the given pool), as training sees them, not from the
    # shard alone
    pool = load_examples(config.exemplar_pool) if config.exemplar_pool else examples

    def items(start: int, stop: int, index: int) -> list[dict]:
        return encode_examples(examples[start:stop], tokenizer, fmt, desc=f"tokenising shard {index}",
                               pool=pool)

    return write_logit_store(model, tokenizer, fmt, len(examples), items, config)


def write_logit_store(model, tokenizer, fmt, num_examples: int, items, config: LogitsConfig) -> Path:
    """Fill the store ``config.out_dir`` from ``model`` (in eval mode, on its device).

    ``items(start, stop, shard_index)`` returns the tokenised examples [start, stop) as
    ``{"input_ids", "labels"}`` dicts: tokenised here from ``config.data``
    (:func:`extract_logits`), or read from a pre-tokenised pack (:mod:`distillation.gpu_route`).
    """
    if config.num_shards == 0:
        config = replace(config, num_shards=auto_shards(num_examples))
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = _store_meta(config, model, fmt)
    codec = make_codec(meta)
    collator = Seq2SeqCollator(tokenizer, pad_to_multiple_of=None)
    indices = range(config.num_shards) if config.shard_index is None else [config.shard_index]
    for index in indices:
        start, stop = shard_range(num_examples, index, config.num_shards)
        name = shard_name(index, config.num_shards)
        if finished_part(out, name, meta) is not None:
            logger.info("teacher logits %s: written by an earlier run, kept", name)
            continue
        entry = _write_shard(model, collator, codec, items(start, stop, index), out, name, config)
        write_part(out, name, {**entry, "start": start, "count": stop - start, "meta_sha256": meta["sha256"]})
    if try_finalize(out, meta, config.num_shards):
        logger.info("logit store complete: %s (%d bytes per target token)", out, codec.row_bytes)
    else:
        logger.info("wrote shard(s) %s; the manifest is written when all %d exist",
                    list(indices), config.num_shards)
    return out


def _store_meta(config: LogitsConfig, model, fmt) -> dict:
    # the pool counts by its content (exemplar_pool_sha256 below), not by its path
    settings = {k: v for k, v in asdict(config).items()
                if k not in ("shard_index", "out_dir", "device", "exemplar_pool")}
    meta = {"mode": config.mode, "k": config.k, "dtype": config.dtype, "bits": config.bits,
            "vocab_size": model.config.vocab_size, "teacher": teacher_identity(config.teacher),
            "data_sha256": sha256_file(Path(config.data)), "input_format": asdict(fmt),
            "config": settings}
    if config.exemplar_pool:
        meta["exemplar_pool_sha256"] = sha256_file(Path(config.exemplar_pool))
    if config.mode == "topk" and config.k > meta["vocab_size"]:
        raise ConfigError(f"k={config.k} exceeds the teacher's vocabulary ({meta['vocab_size']}).")
    if config.mode == "quantized":
        meta["k"], meta["dtype"] = None, f"uint{config.bits}"
    meta["row_bytes"] = make_codec(meta).row_bytes
    meta["sha256"] = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()
    return meta


def _write_shard(model, collator, codec, items: list[dict], out: Path, name: str,
                 config: LogitsConfig) -> dict:
    (out / f"{name}.json").unlink(missing_ok=True)  # a shard being rewritten is not finished
    offsets = np.concatenate([[0], np.cumsum([len(item["labels"]) for item in items])])
    writer = ShardWriter(out, name, offsets, codec.row_bytes)
    window = config.batch_size * 16  # sort by length inside a window, write in order
    start = time.perf_counter()
    with tqdm(total=len(items), desc=f"teacher logits {name}", unit="ex", disable=None) as bar:
        for w_start in range(0, len(items), window):
            chunk = items[w_start : w_start + window]
            rows = _encode_window(model, collator, codec, chunk, config)
            for example_rows in rows:
                writer.write(example_rows)
            bar.update(len(chunk))
            if bar.disable:  # no bar (a log, not a terminal): a line per tenth of the shard
                _log_progress(name, w_start + len(chunk), len(items), window, start)
    entry = writer.close()
    return {**entry, "tokens": int(offsets[-1])}


def _log_progress(name: str, done: int, total: int, window: int, start: float) -> None:
    step = max(window, total // 10)
    if done == total or done // step != (done - window) // step:
        rate = done / max(time.perf_counter() - start, 1e-9)
        logger.info("teacher logits %s: %d of %d examples (%.0f/s)", name, done, total, rate)


@torch.inference_mode()
def _encode_window(model, collator, codec, items: list[dict], config: LogitsConfig) -> list[np.ndarray]:
    """Encoded rows of each item, in item order; batches are formed from similar lengths."""
    order = sorted(range(len(items)), key=lambda i: len(items[i]["input_ids"]))
    results: list[np.ndarray] = [None] * len(items)  # type: ignore[list-item]
    for b_start in range(0, len(order), config.batch_size):
        batch_ids = order[b_start : b_start + config.batch_size]
        batch = collator([dict(items[i]) for i in batch_ids]).to(model.device)
        logits = model(**batch).logits.float()
        mask = batch["labels"] != -100
        flat = logits[mask]
        if config.mode == "topk":
            signal = topk_signal(flat, min(config.k, flat.shape[-1]))
            rows = codec.encode(signal.ids.cpu().numpy(), signal.logprobs.cpu().numpy(),
                                signal.leftover_logprob.cpu().numpy())
        else:
            rows = codec.encode(flat.cpu().numpy())
        counts = mask.sum(dim=1).tolist()
        for i, part in zip(batch_ids, np.split(rows, np.cumsum(counts)[:-1]), strict=True):
            results[i] = part
    return results
