"""Token ids of a split, tokenised once and memory-mapped by every stage and epoch.

A split's ids live in ``<cache_dir>/<file stem>-<key>/``: the concatenated source and label ids
(``.npy``, read with ``mmap_mode="r"``), their offsets and the example ids. The key is a hash of
the data file's bytes, the tokenizer (its serialised vocabulary, merges and special tokens), the
input format, the example limit and the exemplar pool's bytes (when one is given), so a change
to any of them tokenises again. The directory is
built under a temporary name and renamed into place, and ``meta.json`` (written last) records
the sizes that :meth:`TokenizedSplit.open` checks: a half-written or damaged cache is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from distillation.data import encode_examples
from distillation.logit_store import sha256_file
from pytest_kdassert.core.input_format import InputFormatConfig
from pytest_kdassert.core.records import load_examples

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
_ARRAYS = ("source_ids", "source_offsets", "label_ids", "label_offsets")


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of everything that decides the ids a tokenizer produces.

    The backend's truncation and padding settings are left out: the fast tokenizer stores
    those of its last call there, so they change with use, not with the vocabulary.
    """
    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    backend.pop("truncation", None)
    backend.pop("padding", None)
    text = json.dumps(backend, sort_keys=True)
    return hashlib.sha256(f"{text}|{len(tokenizer)}".encode()).hexdigest()


def cache_key(data_path: Path, tokenizer, fmt: InputFormatConfig, limit: int | None,
              pool_path: Path | None = None) -> str:
    parts = {"version": CACHE_VERSION, "data": sha256_file(Path(data_path)),
             "tokenizer": tokenizer_fingerprint(tokenizer), "format": asdict(fmt), "limit": limit}
    if pool_path is not None and fmt.version >= 2:  # absent otherwise: older keys stay valid
        parts["exemplar_pool"] = sha256_file(Path(pool_path))
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


class TokenizedSplit(torch.utils.data.Dataset):
    """A tokenised split backed by memory-mapped arrays; items are ``{"input_ids", "labels"}``
    (numpy views), plus ``"index"`` with ``with_index`` (the example's row in the logit store)."""

    def __init__(self, arrays: dict[str, np.ndarray], ids: list[str], with_index: bool = False):
        self.arrays, self.ids, self.with_index = arrays, ids, with_index

    @classmethod
    def open(cls, directory: Path, with_index: bool = False) -> TokenizedSplit | None:
        """The cached split in ``directory``, or None when it is missing, partial or damaged."""
        try:
            meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
            arrays = {name: np.load(directory / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
            ids = json.loads((directory / "ids.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        split = cls(arrays, ids, with_index)
        return split if split.sizes() == meta.get("sizes") else None

    @classmethod
    def from_items(cls, items: list[dict], ids: list[str], with_index: bool = False) -> TokenizedSplit:
        """In-memory arrays from encoded items (what :func:`encode_examples` returns)."""
        arrays = {}
        for key, name in (("input_ids", "source"), ("labels", "label")):
            lengths = np.fromiter((len(item[key]) for item in items), dtype=np.int64, count=len(items))
            arrays[f"{name}_offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            flat = [token for item in items for token in item[key]]
            arrays[f"{name}_ids"] = np.asarray(flat, dtype=np.int32)
        return cls(arrays, ids, with_index)

    def sizes(self) -> dict:
        a = self.arrays
        return {"examples": len(self.ids), "source_offsets": len(a["source_offsets"]),
                "label_offsets": len(a["label_offsets"]), "source_ids": len(a["source_ids"]),
                "label_ids": len(a["label_ids"]),
                "ends": [int(a["source_offsets"][-1]), int(a["label_offsets"][-1])]}

    def save(self, directory: Path) -> None:
        """Write the split under a temporary name, then rename it into ``directory``."""
        tmp = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name in _ARRAYS:
            np.save(tmp / f"{name}.npy", self.arrays[name])
        (tmp / "ids.json").write_text(json.dumps(self.ids), encoding="utf-8")
        (tmp / "meta.json").write_text(json.dumps({"sizes": self.sizes()}), encoding="utf-8")
        shutil.rmtree(directory, ignore_errors=True)
        os.replace(tmp, directory)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        a = self.arrays
        item = {"input_ids": a["source_ids"][a["source_offsets"][index]:a["source_offsets"][index + 1]],
                "labels": a["label_ids"][a["label_offsets"][index]:a["label_offsets"][index + 1]]}
        if self.with_index:
            item["index"] = index
        return item

    @property
    def lengths(self) -> np.ndarray:
        """Source lengths, for length bucketing."""
        return np.diff(self.arrays["source_offsets"])

    @property
    def label_lengths(self) -> np.ndarray:
        return np.diff(self.arrays["label_offsets"])

    def target_token_count(self) -> int:
        return int(self.arrays["label_offsets"][-1])


def load_tokenized(path, tokenizer, fmt: InputFormatConfig, limit: int | None = None,
                   with_index: bool = False, cache_dir: Path | None = None,
                   pool_path: Path | None = None) -> TokenizedSplit:
    """A split's token ids: from ``cache_dir`` when cached for this data, tokenizer and format,
    else tokenised now (and cached when ``cache_dir`` is given). Format v2 draws exemplars
    from ``pool_path`` (a JSONL split) when given, else from the split itself."""
    path = Path(path)
    directory = None
    if cache_dir is not None:
        key = cache_key(path, tokenizer, fmt, limit, pool_path)
        directory = Path(cache_dir) / f"{path.stem}-{key}"
        split = TokenizedSplit.open(directory, with_index)
        if split is not None:
            logger.info("token ids of %s: cached in %s", path, directory)
            return split
    examples = load_examples(path, limit=limit)
    pool = load_examples(pool_path) if pool_path is not None and fmt.version >= 2 else None
    items = encode_examples(examples, tokenizer, fmt, desc=f"tokenising {path}", pool=pool)
    split = TokenizedSplit.from_items(items, [e.id for e in examples], with_index)
    if directory is not None:
        split.save(directory)
        split = TokenizedSplit.open(directory, with_index)
    return split
