"""Teacher signals: what the student learns from besides the ground truth.

A signal covers a batch of target positions laid out like the labels: (B, L, ...). Positions
whose label is -100 hold filler that the losses ignore.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class DenseSignal:
    """Full-vocabulary teacher logits (online mode, or the ``quantized`` store dequantised)."""

    logits: torch.Tensor
    """(B, L, V) float."""

    def to(self, device) -> DenseSignal:
        return DenseSignal(self.logits.to(device))


@dataclass
class SparseSignal:
    """The teacher's top-k tokens per position and the probability mass left outside them."""

    ids: torch.Tensor
    """(B, L, K) int64 token ids, distinct per position."""
    logprobs: torch.Tensor
    """(B, L, K) float teacher log-probabilities (temperature 1) of ``ids``."""
    leftover_logprob: torch.Tensor
    """(B, L) float: log(1 - sum(exp(logprobs))); -inf when the top-k hold all the mass."""

    def to(self, device) -> SparseSignal:
        return SparseSignal(self.ids.to(device), self.logprobs.to(device),
                            self.leftover_logprob.to(device))


TeacherSignal = DenseSignal | SparseSignal

SIGNAL_KEYS = ("teacher_logits", "teacher_ids", "teacher_logprobs", "teacher_leftover")
"""Batch keys a collator uses to carry a signal to the trainer."""


def signal_to_batch(signal: TeacherSignal) -> dict[str, torch.Tensor]:
    """The batch entries that carry ``signal``."""
    if isinstance(signal, DenseSignal):
        return {"teacher_logits": signal.logits}
    return {"teacher_ids": signal.ids, "teacher_logprobs": signal.logprobs,
            "teacher_leftover": signal.leftover_logprob}


def pop_signal(batch: dict) -> TeacherSignal | None:
    """Remove the signal entries from a batch and rebuild the signal (None if there are none)."""
    found = {key: batch.pop(key) for key in SIGNAL_KEYS if key in batch}
    if "teacher_logits" in found:
        return DenseSignal(found["teacher_logits"])
    if "teacher_ids" in found:
        return SparseSignal(found["teacher_ids"], found["teacher_logprobs"], found["teacher_leftover"])
    return None


def topk_signal(logits: torch.Tensor, k: int) -> SparseSignal:
    """Top-k of full logits (..., V) as a sparse signal with its leftover mass."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    values, ids = logp.topk(k, dim=-1)
    # Mass outside the top-k, summed directly: log(1 - exp(covered)) would cancel when it is tiny.
    leftover = torch.logsumexp(logp.scatter(-1, ids, float("-inf")), dim=-1)
    return SparseSignal(ids, values, leftover)
