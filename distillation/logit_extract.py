"""``kdassert logits``: run a teacher over a split, teacher-forced, and fill a logit store."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from distillation.data import Seq2SeqCollator, encode_examples
from distillation.logit_codec import QUANT_BITS, TOPK_DTYPES
from distillation.logit_store import (
    ShardClaims,
    ShardWriter,
    finished_part,
    make_codec,
    sha256_file,
    shard_name,
    shard_range,
    try_finalize,
    write_part,
)
from distillation.progress import progress
from distillation.signals import topk_signal
from pytest_kdassert.core.errors import ConfigError, CorruptModelError
from pytest_kdassert.core.loading import load_format_config, load_seq2seq, resolve_model_path
from pytest_kdassert.core.records import load_examples

logger = logging.getLogger(__name__)

STORE_MODES = ("topk", "quantized")
CLAIM_POLL_SECONDS = 10.0
"""How often a whole-store extraction looks again at shards other processes are writing."""


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
    return extract_logit_stores([config])[0]


SHARED_SETTINGS = ("teacher", "data", "limit", "exemplar_pool", "batch_size", "num_shards",
                   "shard_index", "device")
"""What the stores filled in one pass of the teacher must have in common."""


def extract_logit_stores(configs: Sequence[LogitsConfig]) -> list[Path]:
    """Several stores of one teacher over one split (other modes, k or dtypes) from a single
    pass of the teacher: the forward pass is the cost, encoding each store's rows is cheap."""
    if not configs:
        return []
    first = configs[0]
    for config in configs[1:]:
        differ = [k for k in SHARED_SETTINGS if getattr(config, k) != getattr(first, k)]
        if differ:
            raise ConfigError(f"Stores filled in one pass must share {', '.join(differ)}.")
    outs = [Path(c.out_dir).resolve() for c in configs]
    if len(set(outs)) != len(outs):
        raise ConfigError("Stores filled in one pass need one directory each.")
    model, tokenizer = load_seq2seq(first.teacher, device=_device(first.device))
    fmt = load_format_config(first.teacher)
    examples = load_examples(first.data, limit=first.limit)
    # exemplars from the whole split (or the given pool), as training sees them, not from the
    # shard alone
    pool = load_examples(first.exemplar_pool) if first.exemplar_pool else examples

    def items(start: int, stop: int, index: int) -> list[dict]:
        return encode_examples(examples[start:stop], tokenizer, fmt, desc=f"tokenising shard {index}",
                               pool=pool)

    return write_logit_stores(model, tokenizer, fmt, len(examples), items, configs)


def write_logit_store(model, tokenizer, fmt, num_examples: int, items, config: LogitsConfig) -> Path:
    """Fill the store ``config.out_dir`` from ``model`` (in eval mode, on its device).

    ``items(start, stop, shard_index)`` returns the tokenised examples [start, stop) as
    ``{"input_ids", "labels"}`` dicts: tokenised here from ``config.data``
    (:func:`extract_logits`), or read from a pre-tokenised pack (:mod:`distillation.gpu_route`).
    """
    return write_logit_stores(model, tokenizer, fmt, num_examples, items, [config])[0]


@dataclass
class _Target:
    """One store being filled: where, its manifest fields, its row codec."""

    config: LogitsConfig
    out: Path
    meta: dict
    codec: object


def write_logit_stores(model, tokenizer, fmt, num_examples: int, items,
                       configs: Sequence[LogitsConfig]) -> list[Path]:
    """:func:`write_logit_store` for several stores sharing :data:`SHARED_SETTINGS`, with one
    forward pass per batch. A shard every store already holds is skipped (not even tokenised)."""
    configs = [replace(c, num_shards=auto_shards(num_examples)) if c.num_shards == 0 else c
               for c in configs]
    targets = []
    for config in configs:
        Path(config.out_dir).mkdir(parents=True, exist_ok=True)
        meta = _store_meta(config, model, fmt)
        targets.append(_Target(config, Path(config.out_dir), meta, make_codec(meta)))
    first = configs[0]
    collator = Seq2SeqCollator(tokenizer, pad_to_multiple_of=None)
    if first.shard_index is not None:  # one shard (a helper process): skip it if claimed elsewhere
        _fill_shards(model, collator, targets, items, num_examples, [first.shard_index])
    else:  # the whole store: wait for the shards other processes are writing
        waiting, told = _fill_shards(model, collator, targets, items, num_examples,
                                     range(first.num_shards)), None
        while waiting:
            if waiting != told:
                logger.info("waiting for teacher logits shard(s) %s, being written by another "
                            "process", waiting)
                told = waiting
            time.sleep(CLAIM_POLL_SECONDS)
            # finished meanwhile: kept; its process died: claimed and written here
            waiting = _fill_shards(model, collator, targets, items, num_examples, waiting, quiet=True)
    for target in targets:
        if try_finalize(target.out, target.meta, first.num_shards):
            logger.info("logit store complete: %s (%d bytes per target token)", target.out,
                        target.codec.row_bytes)
        else:
            logger.info("shard %s of %s is done; the manifest is written when all %d are",
                        first.shard_index, target.out, first.num_shards)
    return [target.out for target in targets]


def _fill_shards(model, collator, targets: list[_Target], items, num_examples: int,
                 indices, quiet: bool = False) -> list[int]:
    """Write shards ``indices`` of every target that lacks them; returns the indices left to
    other processes (claimed by a live one, so neither finished nor written here). ``quiet``:
    no line per shard kept or skipped (a poll while waiting for other processes)."""
    info = logger.debug if quiet else logger.info
    first = targets[0].config
    elsewhere = []
    for index in indices:
        start, stop = shard_range(num_examples, index, first.num_shards)
        name = shard_name(index, first.num_shards)
        unfinished = [t for t in targets if finished_part(t.out, name, t.meta) is None]
        for target in targets:
            if target not in unfinished:
                info("teacher logits %s of %s: written by an earlier run, kept", name, target.out)
        with ShardClaims([t.out for t in unfinished], name) as claimed:
            todo = [t for t in unfinished if t.out in claimed]
            for target in unfinished:
                if target not in todo:
                    info("teacher logits %s of %s: another process is writing it, skipped", name,
                         target.out)
            if len(todo) < len(unfinished):
                elsewhere.append(index)
            if not todo:
                continue
            began = time.perf_counter()
            entries = _write_shard(model, collator, todo, items(start, stop, index), name, first.batch_size)
            seconds = time.perf_counter() - began
            for target, entry in zip(todo, entries, strict=True):
                write_part(target.out, name, {**entry, "start": start, "count": stop - start,
                                              "meta_sha256": target.meta["sha256"], "seconds": seconds,
                                              "pass_shared_by": len(todo)})
    return elsewhere


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


def _write_shard(model, collator, targets: list[_Target], items: list[dict], name: str,
                 batch_size: int) -> list[dict]:
    """Write shard ``name`` of every target; returns their part entries, in order."""
    offsets = np.concatenate([[0], np.cumsum([len(item["labels"]) for item in items])])
    writers = []
    for target in targets:
        (target.out / f"{name}.json").unlink(missing_ok=True)  # a shard being rewritten is not finished
        writers.append(ShardWriter(target.out, name, offsets, target.codec.row_bytes))
    try:
        _fill_shard(model, collator, targets, writers, items, name, batch_size)
    except BaseException:  # Ctrl-C included: leave no half-written shard behind
        for writer in writers:
            writer.abort()
        raise
    return [{**writer.close(), "tokens": int(offsets[-1])} for writer in writers]


def _fill_shard(model, collator, targets: list[_Target], writers: list[ShardWriter],
                items: list[dict], name: str, batch_size: int) -> None:
    window = batch_size * 16  # sort by length inside a window, write in order
    with progress(len(items), f"teacher logits {name}") as bar:
        for w_start in range(0, len(items), window):
            chunk = items[w_start : w_start + window]
            for writer, rows in zip(writers, _encode_window(model, collator, targets, chunk, batch_size),
                                    strict=True):
                for example_rows in rows:
                    writer.write(example_rows)
            bar.update(len(chunk))


@torch.inference_mode()
def _encode_window(model, collator, targets: list[_Target], items: list[dict],
                   batch_size: int) -> list[list[np.ndarray]]:
    """Per target, the encoded rows of each item in item order; batches are formed from
    similar lengths, and each batch's logits are computed once for all targets."""
    order = sorted(range(len(items)), key=lambda i: len(items[i]["input_ids"]))
    results = [[None] * len(items) for _ in targets]
    for b_start in range(0, len(order), batch_size):
        batch_ids = order[b_start : b_start + batch_size]
        batch = collator([dict(items[i]) for i in batch_ids]).to(model.device)
        logits = model(**batch).logits.float()
        mask = batch["labels"] != -100
        flat = logits[mask]
        if not torch.isfinite(flat).all():
            raise CorruptModelError(
                "The teacher's logits are not finite numbers (NaN or inf): its weights are "
                "broken, most likely by a training run that diverged. Train it again (a lower "
                "learning rate or a longer warm-up) before extracting logits.")
        splits = np.cumsum(mask.sum(dim=1).tolist())[:-1]
        for target, result in zip(targets, results, strict=True):
            rows = _encode_rows(target, flat)
            for i, part in zip(batch_ids, np.split(rows, splits), strict=True):
                result[i] = part
    return results


def _encode_rows(target: _Target, flat: torch.Tensor) -> np.ndarray:
    """One store's rows for the teacher's logits at each target position."""
    if target.config.mode == "topk":
        signal = topk_signal(flat, min(target.config.k, flat.shape[-1]))
        return target.codec.encode(signal.ids.cpu().numpy(), signal.logprobs.cpu().numpy(),
                                   signal.leftover_logprob.cpu().numpy())
    return target.codec.encode(flat.cpu().numpy())
