"""The teacher logit store: teacher signals for every target token of a split, on disk.

Layout of a store directory::

    manifest.json                     vocab size, mode, k, dtype/bits, teacher, config, shards
    shard-00000-of-00002.npy          (tokens, row_bytes) uint8, memory-mappable
    shard-00000-of-00002.offsets.npy  (examples + 1,) int64: example i owns rows [o[i], o[i+1])
    shard-00000-of-00002.json         that shard's part of the manifest (with its checksums)

Shard s holds a contiguous range of examples, so extraction can be split across processes
(``--num-shards N --shard-index I``); ``manifest.json`` is written once every part exists.
Row encodings are in :mod:`distillation.logit_codec`. Every shard file's size and sha256 are
checked on open: a truncated or altered shard raises :class:`CorruptShardError` naming it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from distillation.logit_codec import QuantizedCodec, TopKCodec
from distillation.signals import DenseSignal, SparseSignal
from pytest_kdassert.core.atomic import write_text_atomic
from pytest_kdassert.core.errors import CorruptShardError, DataError

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def shard_name(index: int, count: int) -> str:
    return f"shard-{index:05d}-of-{count:05d}"


def shard_range(num_examples: int, index: int, count: int) -> tuple[int, int]:
    """Examples [start, stop) that shard ``index`` of ``count`` holds."""
    return num_examples * index // count, num_examples * (index + 1) // count


def make_codec(meta: dict):
    """The row codec a manifest (or store config dict) describes."""
    if meta["mode"] == "topk":
        return TopKCodec(meta["k"], meta["vocab_size"], meta["dtype"])
    return QuantizedCodec(meta["vocab_size"], meta["bits"])


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def store_stats(directory) -> dict:
    """Size of a finished store, from its manifest (no checksums read): bytes per target token
    of a row, bytes on disk (every file of the directory), tokens and examples."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        raise DataError(f"{directory} holds no complete logit store (no {MANIFEST}); run `kdassert logits`.")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    disk = sum(f.stat().st_size for f in directory.iterdir() if f.is_file())
    stats = {"mode": manifest["mode"], "vocab_size": manifest["vocab_size"],
             "bytes_per_token": make_codec(manifest).row_bytes, "disk_bytes": disk,
             "num_tokens": manifest["num_tokens"], "num_examples": manifest["num_examples"]}
    shards = manifest["shards"]
    if all("seconds" in shard for shard in shards):  # stores written before 2026-12 lack them
        # a pass that filled several stores counts whole for each: it is what building any one cost
        stats["extract_seconds"] = sum(shard["seconds"] for shard in shards)
        stats["pass_shared_by"] = max(shard.get("pass_shared_by", 1) for shard in shards)
    return stats


class ShardClaims:
    """Claims on shard ``name`` of several stores, so that processes filling one store share
    its shards instead of writing the same one: ``<name>.claim`` holds the claiming process's
    id, created exclusively. A claim whose process is gone (killed, machine restarted) is
    taken over. ``with ShardClaims(dirs, name) as claimed:`` gives the directories claimed
    here; the claims are dropped on leaving."""

    def __init__(self, directories, name: str):
        self.paths = {Path(d): Path(d) / f"{name}.claim" for d in directories}
        self.held: list[Path] = []

    def __enter__(self) -> set[Path]:
        claimed = set()
        for directory, path in self.paths.items():
            if _claim(path):
                self.held.append(path)
                claimed.add(directory)
        return claimed

    def __exit__(self, *exc) -> None:
        for path in self.held:
            path.unlink(missing_ok=True)


def _claim(path: Path) -> bool:
    """Create ``path`` holding this process's id; False when a live process holds it."""
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if _holder_alive(path):
                return False
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{os.getpid()}\n")
        return True
    return False


def _holder_alive(path: Path) -> bool:
    try:
        text = path.read_text().strip()
        age = time.time() - path.stat().st_mtime
    except OSError:
        return False  # gone meanwhile: free
    if not text:
        return age < 10  # just created, its id not written yet
    try:
        pid = int(text)
    except ValueError:
        return False
    if pid <= 0 or pid == os.getpid():
        return False  # this process holds no claim between shards: left by an earlier one
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A process that exited but was not reaped yet still answers ``kill(pid, 0)``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no procfs (macOS): trust kill()
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


class ShardWriter:
    """Streams fixed-size rows into one ``.npy`` shard whose shape is known up front."""

    def __init__(self, directory: Path, name: str, offsets: np.ndarray, row_bytes: int):
        self.path = directory / f"{name}.npy"
        self.offsets_path = directory / f"{name}.offsets.npy"
        self.total = int(offsets[-1])
        self.row_bytes = row_bytes
        self.written = 0
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._handle = self._tmp.open("wb")
        header = {"descr": "|u1", "fortran_order": False, "shape": (self.total, row_bytes)}
        np.lib.format.write_array_header_1_0(self._handle, header)
        np.save(self.offsets_path, offsets.astype(np.int64))

    def write(self, rows: np.ndarray) -> None:
        if rows.shape[1] != self.row_bytes or self.written + len(rows) > self.total:
            raise ValueError("rows do not fit the shard's declared shape")
        self._handle.write(np.ascontiguousarray(rows, dtype=np.uint8).tobytes())
        self.written += len(rows)

    def abort(self) -> None:
        """Drop the unfinished shard (an error or Ctrl-C midway): no partial file is left."""
        self._handle.close()
        self._tmp.unlink(missing_ok=True)
        self.offsets_path.unlink(missing_ok=True)

    def close(self) -> dict:
        """Finish the shard; returns its manifest entry (sizes and checksums)."""
        self._handle.close()
        if self.written != self.total:
            self._tmp.unlink()
            raise ValueError(f"shard got {self.written} rows, expected {self.total}")
        self._tmp.replace(self.path)
        return {"file": self.path.name, "offsets": self.offsets_path.name,
                "bytes": self.path.stat().st_size, "sha256": sha256_file(self.path),
                "offsets_sha256": sha256_file(self.offsets_path)}


def write_part(directory: Path, name: str, entry: dict) -> None:
    write_text_atomic(directory / f"{name}.json", json.dumps(entry, indent=2) + "\n")


def finished_part(directory: Path, name: str, meta: dict) -> dict | None:
    """The part record of shard ``name`` if an earlier run finished it with these settings
    (its record names this store's meta and its rows file has the recorded size), else None.

    A shard's record is written only after its files are closed, so an interrupted shard
    never counts as finished and is written again."""
    part = directory / f"{name}.json"
    try:
        entry = json.loads(part.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    rows, offsets = directory / entry.get("file", ""), directory / entry.get("offsets", "")
    if (entry.get("meta_sha256") != meta["sha256"] or not rows.is_file() or not offsets.is_file()
            or rows.stat().st_size != entry.get("bytes")):
        return None
    return entry


def try_finalize(directory: Path, meta: dict, num_shards: int) -> bool:
    """Write ``manifest.json`` if every shard's part exists; returns whether it did."""
    parts = []
    for index in range(num_shards):
        part = directory / f"{shard_name(index, num_shards)}.json"
        if not part.is_file():
            return False
        entry = json.loads(part.read_text(encoding="utf-8"))
        if entry.get("meta_sha256") != meta["sha256"]:
            return False  # left over from a run with other settings; it will be rewritten
        parts.append(entry)
    manifest = {**meta, "format_version": FORMAT_VERSION, "shards": parts,
                "num_examples": sum(p["count"] for p in parts),
                "num_tokens": sum(p["tokens"] for p in parts)}
    write_text_atomic(directory / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return True


@dataclass
class _Shard:
    start: int
    rows: np.ndarray
    offsets: np.ndarray


class LogitStore:
    """Read side: memory-maps the shards and turns rows back into teacher signals."""

    def __init__(self, directory: Path, manifest: dict, shards: list[_Shard]):
        self.directory = directory
        self.manifest = manifest
        self.shards = shards
        self.codec = make_codec(manifest)
        self._starts = np.array([s.start for s in shards])

    @classmethod
    def open(cls, directory, verify: bool = True) -> LogitStore:
        """Open a store; ``verify`` checks every shard's size and sha256 first."""
        directory = Path(directory)
        path = directory / MANIFEST
        if not path.is_file():
            raise DataError(f"{directory} holds no complete logit store (no {MANIFEST}). Run "
                            "`kdassert logits` (with every --shard-index when it was split).")
        manifest = json.loads(path.read_text(encoding="utf-8"))
        shards = [_open_shard(directory, entry, manifest, verify) for entry in manifest["shards"]]
        return cls(directory, manifest, shards)

    @property
    def vocab_size(self) -> int:
        return self.manifest["vocab_size"]

    @property
    def num_examples(self) -> int:
        return self.manifest["num_examples"]

    def bytes_per_token(self) -> float:
        return self.codec.row_bytes

    def example_rows(self, index: int) -> np.ndarray:
        """(tokens, row_bytes) uint8 rows of example ``index`` (a view into the memory map)."""
        if not 0 <= index < self.num_examples:
            raise IndexError(f"example {index} is outside the store (0..{self.num_examples - 1})")
        shard = self.shards[int(np.searchsorted(self._starts, index, side="right")) - 1]
        local = index - shard.start
        return shard.rows[shard.offsets[local] : shard.offsets[local + 1]]

    def batch_signal(self, indices: list[int], labels: torch.Tensor):
        """The signal for a batch, laid out like ``labels`` (B, L) (targets first, then -100)."""
        chunks = [self.example_rows(i) for i in indices]
        counts = (labels != -100).sum(dim=1).tolist()
        if [len(c) for c in chunks] != counts:
            raise DataError(
                f"The logit store in {self.directory} does not match this data: examples {indices} "
                f"have {[len(c) for c in chunks]} stored target tokens but {counts} labels. It was "
                "built from another split or tokenizer; rebuild it with `kdassert logits`."
            )
        rows = np.concatenate(chunks) if chunks else np.zeros((0, self.codec.row_bytes), np.uint8)
        mask = labels != -100
        if isinstance(self.codec, QuantizedCodec):
            dense = torch.zeros(*labels.shape, self.vocab_size)
            dense[mask] = torch.from_numpy(self.codec.decode(rows))
            return DenseSignal(dense)
        return self._sparse(rows, mask)

    def _sparse(self, rows: np.ndarray, mask: torch.Tensor) -> SparseSignal:
        k = self.codec.k
        shape = tuple(mask.shape)
        ids = torch.arange(k).expand(*shape, k).clone()  # filler where labels are -100
        logprobs = torch.full((*shape, k), -float(np.log(k)))
        leftover = torch.full(shape, float("-inf"))
        got_ids, got_values, got_leftover = self.codec.decode(rows)
        ids[mask] = torch.from_numpy(got_ids)
        logprobs[mask] = torch.from_numpy(got_values)
        leftover[mask] = torch.from_numpy(got_leftover)
        return SparseSignal(ids, logprobs, leftover)


def _open_shard(directory: Path, entry: dict, manifest: dict, verify: bool) -> _Shard:
    path, offsets_path = directory / entry["file"], directory / entry["offsets"]
    for file, key in ((path, "sha256"), (offsets_path, "offsets_sha256")):
        if not file.is_file():
            raise CorruptShardError(f"Logit shard {file} is missing. Rebuild the store with `kdassert logits`.")
        if key == "sha256" and file.stat().st_size != entry["bytes"]:
            raise CorruptShardError(
                f"Logit shard {file} is {file.stat().st_size} bytes, the manifest says "
                f"{entry['bytes']}: it is truncated or altered. Rebuild it with `kdassert logits`."
            )
        if verify and sha256_file(file) != entry[key]:
            raise CorruptShardError(
                f"Logit shard {file} fails its checksum: it was altered or corrupted. Rebuild it "
                "with `kdassert logits` (add --shard-index to redo only this shard)."
            )
    try:
        rows = np.load(path, mmap_mode="r")
        offsets = np.load(offsets_path)
    except (ValueError, OSError) as exc:
        raise CorruptShardError(f"Logit shard {path} cannot be read: {exc}") from exc
    row_bytes = make_codec(manifest).row_bytes
    if rows.ndim != 2 or rows.shape != (entry["tokens"], row_bytes) or len(offsets) != entry["count"] + 1:
        raise CorruptShardError(f"Logit shard {path} does not have the shape its manifest declares.")
    return _Shard(entry["start"], rows, offsets)
