"""``kdassert pack``: the corpus pre-tokenised into a few files small enough to carry to a GPU.

A GPU machine gets the working tree and a few tens of MB besides, not the 340 MB of JSONL and
not the time to tokenise it. A pack holds what training needs and nothing else::

    manifest.json        format version, input format, vocabulary, counts, sizes and sha256s
    tokenizer/           the tokenizer the ids were made with (tokenizer.json, tokenizer_config.json)
    train.npz.xz         token ids of train.jsonl (uint16) and each example's lengths, lzma'd
    valid.npz.xz         the same for valid.jsonl
    bench.jsonl          test examples evenly spaced over test.jsonl, for ``kdassert bench``
    bench-pool.jsonl.xz  all of test.jsonl: where the benchmark retrieves their exemplars

Token ids come from :func:`distillation.token_cache.load_tokenized`, so they are exactly what
``kdassert train`` feeds the model (format v2: with the in-project exemplars of each split).
The pack is written under a temporary name and renamed into place, ``manifest.json`` last;
:func:`open_pack` checks every file's size and sha256 against it before anything trains.
"""

from __future__ import annotations

import io
import json
import logging
import lzma
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from distillation.logit_store import sha256_file
from pytest_kdassert.core.errors import ConfigError, DataError
from pytest_kdassert.core.input_format import InputFormatConfig
from pytest_kdassert.core.records import Example, load_examples, write_examples

logger = logging.getLogger(__name__)

PACK_VERSION = 1
MANIFEST = "manifest.json"
SPLITS = ("train", "valid")
BENCH_FILE = "bench.jsonl"
POOL_FILE = "bench-pool.jsonl.xz"
TOKENIZER_DIR = "tokenizer"
_ARRAYS = ("source_ids", "source_lengths", "label_ids", "label_lengths")


@dataclass(frozen=True)
class PackConfig:
    """Settings of ``kdassert pack``; recorded in the manifest."""

    data_dir: str
    """Directory with train.jsonl, valid.jsonl and test.jsonl (``kdassert mine``)."""
    out_dir: str = "data/gpu-pack"
    """The pack directory to write (replaced whole)."""
    tokenizer: str | None = None
    """Directory of the tokenizer to use (e.g. runs/cpu-v2/tokenizer); None: train one on train.jsonl."""
    vocab_size: int = 8192
    """Vocabulary of the tokenizer trained when none is given."""
    max_source_tokens: int = 448
    max_target_tokens: int = 64
    exemplars: int = 3
    """In-project exemplars per input: 0 = input format v1, k >= 1 = v2 with k exemplars."""
    bench_examples: int = 500
    """Test examples in bench.jsonl, evenly spaced over test.jsonl (so every project has its
    share); the benchmark retrieves their exemplars from the whole split, as it would locally."""
    limit: int | None = None
    """Use only the first N examples of each split (tests, quick looks)."""
    cache_dir: str | None = None
    """Token-id cache shared with ``kdassert train`` (None: tokenise in memory)."""
    max_mib: float = 48.0
    """Refuse a pack larger than this (the GPU machine takes 64 MiB with the working tree)."""
    preset: int = 6
    """lzma preset of the id files (6: about 7x smaller; 9 gains about 1%)."""

    def __post_init__(self):
        self.input_format()
        if self.bench_examples < 1 or self.max_mib <= 0 or not 0 <= self.preset <= 9:
            raise ConfigError("bench_examples must be >= 1, max_mib > 0 and preset in 0..9")

    def input_format(self) -> InputFormatConfig:
        return InputFormatConfig(self.max_source_tokens, self.max_target_tokens,
                                 version=2 if self.exemplars else 1, exemplars=self.exemplars)


def build_pack(config: PackConfig) -> dict:
    """Tokenise, compress and write the pack; returns its manifest."""
    data, out = Path(config.data_dir), Path(config.out_dir)
    for name in (*SPLITS, "test"):
        if not (data / f"{name}.jsonl").is_file():
            raise DataError(f"{data} has no {name}.jsonl; build the corpus with `kdassert mine`.")
    staging = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    tokenizer = _tokenizer(config, staging / TOKENIZER_DIR)
    if len(tokenizer) > 2**16:
        raise ConfigError(f"a pack stores ids as uint16; this vocabulary has {len(tokenizer)} tokens")
    splits = {name: _pack_split(config, tokenizer, name, staging) for name in SPLITS}
    bench = _pack_bench(config, staging)
    manifest = {"kdassert_pack": PACK_VERSION, "input_format": asdict(config.input_format()),
                "vocab_size": len(tokenizer), "splits": splits, "bench": bench,
                "data_sha256": {n: sha256_file(data / f"{n}.jsonl") for n in (*SPLITS, "test")},
                "config": asdict(config), "files": _file_table(staging)}
    manifest["bytes"] = sum(f["bytes"] for f in manifest["files"].values())
    if manifest["bytes"] > config.max_mib * 2**20:
        shutil.rmtree(staging)
        raise DataError(f"The pack takes {manifest['bytes'] / 2**20:.1f} MiB, over the "
                        f"{config.max_mib:g} MiB limit: lower --max-source-tokens or --exemplars.")
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(staging, out)
    logger.info("pack written to %s: %.1f MiB", out, manifest["bytes"] / 2**20)
    return manifest


def _tokenizer(config: PackConfig, directory: Path):
    """The given tokenizer, or one trained on train.jsonl, saved into the pack."""
    from transformers import AutoTokenizer

    if config.tokenizer is None:
        from distillation.stages import build_tokenizer
        from distillation.tokenizer import TokenizerConfig

        build_tokenizer(Path(config.data_dir) / "train.jsonl", directory,
                        TokenizerConfig(vocab_size=config.vocab_size), config.input_format(),
                        config.limit)
    else:
        AutoTokenizer.from_pretrained(config.tokenizer).save_pretrained(str(directory))
    for extra in set(os.listdir(directory)) - {"tokenizer.json", "tokenizer_config.json"}:
        (directory / extra).unlink()  # a stage marker or special_tokens_map: not needed to load
    return AutoTokenizer.from_pretrained(str(directory))


def _pack_split(config: PackConfig, tokenizer, name: str, staging: Path) -> dict:
    from distillation.token_cache import load_tokenized

    cache = Path(config.cache_dir) if config.cache_dir else None
    split = load_tokenized(Path(config.data_dir) / f"{name}.jsonl", tokenizer,
                           config.input_format(), config.limit, cache_dir=cache)
    arrays = {"source_ids": split.arrays["source_ids"].astype(np.uint16),
              "source_lengths": split.lengths.astype(np.uint16),
              "label_ids": split.arrays["label_ids"].astype(np.uint16),
              "label_lengths": split.label_lengths.astype(np.uint16)}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path = staging / f"{name}.npz.xz"
    path.write_bytes(lzma.compress(buffer.getvalue(), preset=config.preset))
    logger.info("%s: %d examples, %d source tokens, %.1f MiB -> %.1f MiB", name, len(split),
                len(arrays["source_ids"]), buffer.tell() / 2**20, path.stat().st_size / 2**20)
    return {"file": path.name, "examples": len(split), "source_tokens": len(arrays["source_ids"]),
            "label_tokens": len(arrays["label_ids"]), "raw_bytes": buffer.tell()}


def _pack_bench(config: PackConfig, staging: Path) -> dict:
    test = Path(config.data_dir) / "test.jsonl"
    examples = load_examples(test, limit=config.limit)
    picked = evenly_spaced(examples, config.bench_examples)
    write_examples(staging / BENCH_FILE, picked)
    pool = io.BytesIO()
    write_examples_to(pool, examples)
    (staging / POOL_FILE).write_bytes(lzma.compress(pool.getvalue(), preset=config.preset))
    return {"file": BENCH_FILE, "examples": len(picked), "pool": POOL_FILE,
            "pool_examples": len(examples), "projects": len({e.project for e in picked}),
            "source": "test.jsonl"}


def evenly_spaced(examples: Sequence[Example], count: int) -> list[Example]:
    """``count`` examples spread evenly over ``examples`` (all of them when there are fewer)."""
    if count >= len(examples):
        return list(examples)
    return [examples[i] for i in np.linspace(0, len(examples) - 1, count).round().astype(int)]


def write_examples_to(handle: io.BytesIO, examples: Sequence[Example]) -> None:
    for example in examples:
        handle.write((json.dumps(asdict(example), ensure_ascii=False) + "\n").encode("utf-8"))


def _file_table(directory: Path) -> dict:
    return {str(f.relative_to(directory)): {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
            for f in sorted(directory.rglob("*")) if f.is_file()}


# --- read side ------------------------------------------------------------------------------

class Pack:
    """An opened, verified pack."""

    def __init__(self, directory: Path, manifest: dict):
        self.directory, self.manifest = directory, manifest

    @property
    def input_format(self) -> InputFormatConfig:
        return InputFormatConfig(**self.manifest["input_format"])

    @property
    def bench_path(self) -> Path:
        return self.directory / self.manifest["bench"]["file"]

    def bench_pool(self, directory: Path) -> Path:
        """The whole test split (the benchmark's exemplar pool), unpacked into ``directory``."""
        path = Path(directory) / "bench-pool.jsonl"
        path.write_bytes(lzma.decompress((self.directory / self.manifest["bench"]["pool"]).read_bytes()))
        return path

    def tokenizer(self):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(self.directory / TOKENIZER_DIR))
        if len(tokenizer) != self.manifest["vocab_size"]:
            raise DataError(f"{self.directory}: the tokenizer has {len(tokenizer)} tokens, the "
                            f"manifest says {self.manifest['vocab_size']}; rebuild it with `kdassert pack`.")
        return tokenizer

    def split(self, name: str, with_index: bool = False):
        """A split's ids as a :class:`~distillation.token_cache.TokenizedSplit` (in memory)."""
        from distillation.token_cache import TokenizedSplit

        entry = self.manifest["splits"][name]
        raw = lzma.decompress((self.directory / entry["file"]).read_bytes())
        with np.load(io.BytesIO(raw)) as npz:
            arrays = {key: npz[key] for key in _ARRAYS}
        out = {"source_ids": arrays["source_ids"], "label_ids": arrays["label_ids"]}
        for side in ("source", "label"):
            lengths = arrays[f"{side}_lengths"].astype(np.int64)
            out[f"{side}_offsets"] = np.concatenate([[0], np.cumsum(lengths)])
        if len(out["source_offsets"]) != entry["examples"] + 1 or out["source_offsets"][-1] != len(
                out["source_ids"]):
            raise DataError(f"{self.directory / entry['file']} does not hold the examples its "
                            "manifest declares; rebuild the pack with `kdassert pack`.")
        return TokenizedSplit(out, [str(i) for i in range(entry["examples"])], with_index)


def open_pack(directory) -> Pack:
    """Open a pack after checking its version and every file's size and sha256; any problem is
    one :class:`DataError` line saying to rebuild it."""
    directory = Path(directory)
    again = "rebuild it with `kdassert pack`"
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{directory} is not a complete pack (no readable {MANIFEST}: "
                        f"{type(exc).__name__}); {again}.") from exc
    if manifest.get("kdassert_pack") != PACK_VERSION:
        raise DataError(f"{directory} is pack format {manifest.get('kdassert_pack')!r}, this "
                        f"kdassert reads {PACK_VERSION}; {again}.")
    for name, entry in manifest["files"].items():
        path = directory / name
        if not path.is_file() or path.stat().st_size != entry["bytes"]:
            raise DataError(f"{path} is missing or truncated (the manifest says {entry['bytes']} "
                            f"bytes); {again}.")
        if sha256_file(path) != entry["sha256"]:
            raise DataError(f"{path} fails its sha256 check: the pack is damaged; {again}.")
    return Pack(directory, manifest)
