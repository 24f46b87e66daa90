"""Fixed-size byte encodings of teacher signals, one row per target token (pure numpy).

Every row of a mode has the same size, so a shard is a plain (tokens, row_bytes) uint8 array
that numpy can memory-map, and token t of a shard starts at byte ``t * row_bytes``.

``topk`` rows::

    [top-k ids, Elias-Fano coded][k values: fp16 | int8 | int4][lo fp16][hi fp16][leftover fp16]

The ids of a position are distinct, so they are sorted and Elias-Fano coded: about
2 + log2(V / k) bits each (10 bits at V = 8192, k = 32) instead of 16. The values (T=1 teacher
log-probs) are kept in id order; int8/int4 codes are affine between the row's ``lo`` and ``hi``.

``quantized`` rows (the study's method): the full logit vector, affine-quantised to 4, 8 or 16
bits between the row's minimum and maximum, followed by ``lo`` and ``scale`` as float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TOPK_DTYPES = ("fp16", "int8", "int4")
QUANT_BITS = (4, 8, 16)
_VALUE_BITS = {"fp16": 16, "int8": 8, "int4": 4}


# --- bit packing ---------------------------------------------------------------------------

def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """Unsigned integer codes (N, D) below 2**bits -> packed bytes (N, ceil(D * bits / 8))."""
    if bits == 8:
        return codes.astype(np.uint8)
    if bits == 16:
        return codes.astype("<u2").view(np.uint8).reshape(codes.shape[0], -1)
    if bits == 4:
        codes = codes.astype(np.uint8)
        if codes.shape[1] % 2:
            codes = np.concatenate([codes, np.zeros((codes.shape[0], 1), np.uint8)], axis=1)
        return (codes[:, 0::2] << 4) | codes[:, 1::2]
    raise ValueError(f"unsupported bit width {bits}")


def unpack_codes(packed: np.ndarray, bits: int, width: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: (N, bytes) -> (N, width) integer codes."""
    if bits == 8:
        return packed[:, :width]
    if bits == 16:
        return np.ascontiguousarray(packed).view("<u2")[:, :width]
    if bits == 4:
        both = np.stack([packed >> 4, packed & 0x0F], axis=-1).reshape(packed.shape[0], -1)
        return both[:, :width]
    raise ValueError(f"unsupported bit width {bits}")


def affine_quantize(values: np.ndarray, bits: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Round (N, D) values onto 2**bits levels between each row's lo and hi."""
    levels = (1 << bits) - 1
    scale = np.where(hi > lo, (hi - lo) / levels, 1.0)
    codes = np.rint((values - lo[:, None]) / scale[:, None])
    return np.clip(codes, 0, levels).astype(np.uint16 if bits == 16 else np.uint8)


def affine_dequantize(codes: np.ndarray, bits: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    levels = (1 << bits) - 1
    scale = np.where(hi > lo, (hi - lo) / levels, 1.0)
    return (codes.astype(np.float32) * scale[:, None] + lo[:, None]).astype(np.float32)


# --- Elias-Fano coded id sets -------------------------------------------------------------

@dataclass(frozen=True)
class EliasFano:
    """Layout of k distinct ids below ``vocab_size``: L low bits each plus a unary upper part."""

    k: int
    vocab_size: int

    @property
    def low_bits(self) -> int:
        return max(0, int(math.floor(math.log2(self.vocab_size / self.k)))) if self.vocab_size > self.k else 0

    @property
    def upper_len(self) -> int:
        return self.k + ((self.vocab_size - 1) >> self.low_bits) + 1

    @property
    def nbytes(self) -> int:
        return (self.upper_len + 7) // 8 + (self.k * self.low_bits + 7) // 8

    def encode(self, sorted_ids: np.ndarray) -> np.ndarray:
        """(N, k) ascending distinct ids -> (N, nbytes) uint8."""
        n, low = sorted_ids.shape[0], self.low_bits
        ids = sorted_ids.astype(np.int64)
        upper = np.zeros((n, self.upper_len), np.uint8)
        upper[np.arange(n)[:, None], (ids >> low) + np.arange(self.k)] = 1
        parts = [np.packbits(upper, axis=1)]
        if low:
            shifts = np.arange(low - 1, -1, -1)
            bits = ((ids[:, :, None] >> shifts) & 1).astype(np.uint8).reshape(n, -1)
            parts.append(np.packbits(bits, axis=1))
        return np.concatenate(parts, axis=1)

    def decode(self, data: np.ndarray) -> np.ndarray:
        """(N, nbytes) uint8 -> (N, k) ascending ids; raises ValueError on a malformed row."""
        n, low = data.shape[0], self.low_bits
        upper_bytes = (self.upper_len + 7) // 8
        upper = np.unpackbits(data[:, :upper_bytes], axis=1)[:, : self.upper_len]
        rows, cols = np.nonzero(upper)
        if len(cols) != n * self.k:
            raise ValueError("Elias-Fano upper bits do not hold k ids per row")
        high = cols.reshape(n, self.k) - np.arange(self.k)
        ids = high.astype(np.int64) << low
        if low:
            bits = np.unpackbits(data[:, upper_bytes:], axis=1)[:, : self.k * low]
            weights = (1 << np.arange(low - 1, -1, -1)).astype(np.int64)
            ids |= bits.reshape(n, self.k, low).astype(np.int64) @ weights
        return ids


# --- row codecs -----------------------------------------------------------------------------

@dataclass(frozen=True)
class TopKCodec:
    """Rows of k (id, log-prob) pairs plus the leftover log-mass."""

    k: int
    vocab_size: int
    dtype: str = "int8"

    @property
    def _ids(self) -> EliasFano:
        return EliasFano(self.k, self.vocab_size)

    @property
    def _value_bytes(self) -> int:
        return (self.k * _VALUE_BITS[self.dtype] + 7) // 8

    @property
    def row_bytes(self) -> int:
        return self._ids.nbytes + self._value_bytes + 6

    def encode(self, ids: np.ndarray, logprobs: np.ndarray, leftover: np.ndarray) -> np.ndarray:
        """ids, logprobs (N, k); leftover (N,) -> (N, row_bytes) uint8."""
        order = np.argsort(ids, axis=1)
        ids = np.take_along_axis(ids, order, axis=1)
        values = np.take_along_axis(logprobs.astype(np.float32), order, axis=1)
        values = np.maximum(values, -6e4)  # -inf would not survive fp16 or the affine codes
        lo = values.min(axis=1).astype(np.float16)
        hi = values.max(axis=1).astype(np.float16)
        if self.dtype == "fp16":
            packed = values.astype("<f2").view(np.uint8).reshape(len(values), -1)
        else:
            bits = _VALUE_BITS[self.dtype]
            codes = affine_quantize(values, bits, lo.astype(np.float32), hi.astype(np.float32))
            packed = pack_codes(codes, bits)
        header = np.stack([lo, hi, leftover.astype(np.float16)], axis=1).astype("<f2")
        return np.concatenate([self._ids.encode(ids), packed, header.view(np.uint8)], axis=1)

    def decode(self, rows: np.ndarray):
        """(N, row_bytes) uint8 -> ids (N, k) int64, logprobs (N, k) float32, leftover (N,)."""
        id_bytes = self._ids.nbytes
        ids = self._ids.decode(rows[:, :id_bytes])
        packed = rows[:, id_bytes : id_bytes + self._value_bytes]
        header = np.ascontiguousarray(rows[:, -6:]).view("<f2").astype(np.float32)
        lo, hi, leftover = header[:, 0], header[:, 1], header[:, 2]
        if self.dtype == "fp16":
            values = np.ascontiguousarray(packed).view("<f2").astype(np.float32)
        else:
            bits = _VALUE_BITS[self.dtype]
            values = affine_dequantize(unpack_codes(packed, bits, self.k), bits, lo, hi)
        return ids, values, leftover


@dataclass(frozen=True)
class QuantizedCodec:
    """Rows of the full logit vector quantised to ``bits`` bits."""

    vocab_size: int
    bits: int = 8

    @property
    def row_bytes(self) -> int:
        return (self.vocab_size * self.bits + 7) // 8 + 8

    def encode(self, logits: np.ndarray) -> np.ndarray:
        """(N, V) float -> (N, row_bytes) uint8."""
        logits = logits.astype(np.float32)
        lo, hi = logits.min(axis=1), logits.max(axis=1)
        codes = affine_quantize(logits, self.bits, lo, hi)
        levels = (1 << self.bits) - 1
        scale = np.where(hi > lo, (hi - lo) / levels, 1.0).astype(np.float32)
        header = np.stack([lo, scale], axis=1).astype("<f4").view(np.uint8)
        return np.concatenate([pack_codes(codes, self.bits), header], axis=1)

    def decode(self, rows: np.ndarray) -> np.ndarray:
        """(N, row_bytes) uint8 -> (N, V) float32 logits."""
        header = np.ascontiguousarray(rows[:, -8:]).view("<f4")
        lo, scale = header[:, 0], header[:, 1]
        codes = unpack_codes(rows[:, :-8], self.bits, self.vocab_size)
        return (codes.astype(np.float32) * scale[:, None] + lo[:, None]).astype(np.float32)

    @staticmethod
    def max_error(logits: np.ndarray, bits: int) -> np.ndarray:
        """Per-row bound on the absolute dequantisation error: half a quantisation step."""
        span = logits.max(axis=1) - logits.min(axis=1)
        return span / ((1 << bits) - 1) / 2
