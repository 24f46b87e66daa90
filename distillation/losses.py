"""Distillation losses: pure functions on tensors.

Notation: B batch, L target length, V vocabulary, K teacher top-k. ``labels`` is (B, L) with
-100 at padding; every loss ignores those positions and is normalised by the number of target
tokens (or by ``num_tokens`` when the caller counts tokens across a larger batch, as the HF
Trainer does under gradient accumulation).

The total loss is ``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from distillation.signals import DenseSignal, SparseSignal, TeacherSignal

IGNORE_INDEX = -100


def _normaliser(labels: torch.Tensor, num_tokens) -> torch.Tensor | float:
    """Number of target tokens: ``num_tokens`` if given, else the count of labels != -100."""
    if num_tokens is not None:
        return num_tokens
    return (labels != IGNORE_INDEX).sum().clamp(min=1)


def cross_entropy(student_logits: torch.Tensor, labels: torch.Tensor, num_tokens=None) -> torch.Tensor:
    """Hard-label loss. student_logits (B, L, V), labels (B, L) -> scalar.

    With ``num_tokens`` None this is exactly ``F.cross_entropy(..., ignore_index=-100)`` (mean).
    """
    flat_logits = student_logits.reshape(-1, student_logits.shape[-1]).float()
    flat_labels = labels.reshape(-1)
    if num_tokens is None:
        return F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX)
    total = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / num_tokens


def _masked_mean(per_token: torch.Tensor, labels: torch.Tensor, num_tokens) -> torch.Tensor:
    """Sum of per_token (B, L) over positions with a label, divided by the token count."""
    mask = labels != IGNORE_INDEX
    total = torch.where(mask, per_token, torch.zeros_like(per_token)).sum()
    return total / _normaliser(labels, num_tokens)


def _kl_terms(teacher_logp: torch.Tensor, student_logp: torch.Tensor) -> torch.Tensor:
    """sum_j t_j (log t_j - log s_j) over the last axis; classes with t_j = 0 contribute 0."""
    probs = teacher_logp.exp()
    terms = probs * (teacher_logp - student_logp)
    return torch.where(probs > 0, terms, torch.zeros_like(terms)).sum(-1)


def dense_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
             temperature: float = 1.0, num_tokens=None) -> torch.Tensor:
    """T^2 * KL(softmax(teacher/T) || softmax(student/T)) per target token.

    student_logits, teacher_logits (B, L, V); labels (B, L) -> scalar.
    """
    s_logp = F.log_softmax(student_logits.float() / temperature, dim=-1)
    t_logp = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    return temperature**2 * _masked_mean(_kl_terms(t_logp, s_logp), labels, num_tokens)


def tempered_topk(logprobs: torch.Tensor, leftover_logprob: torch.Tensor, vocab_size: int,
                  temperature: float) -> torch.Tensor:
    """Teacher distribution over K top-k classes plus one leftover bucket, at temperature T.

    logprobs (..., K) are the teacher's T=1 log-probabilities of its top-k ids; leftover_logprob
    (...) is log(1 - sum of their probabilities). Tempering needs each leftover token's
    probability, which the store does not keep: we assume the leftover mass is spread evenly
    over the V - K other tokens. That is exact at T = 1 and when the leftover is empty (K = V).
    Returns (..., K + 1) log-probabilities summing to 1.
    """
    k = logprobs.shape[-1]
    others = max(vocab_size - k, 1)
    log_others = math.log(others)
    bucket = log_others + (leftover_logprob.float() - log_others) / temperature
    joint = torch.cat([logprobs.float() / temperature, bucket.unsqueeze(-1)], dim=-1)
    return F.log_softmax(joint, dim=-1)


def student_topk(student_logits: torch.Tensor, ids: torch.Tensor, temperature: float) -> torch.Tensor:
    """Student log-probs at the teacher's top-k ids plus its mass outside them (the bucket).

    student_logits (B, L, V); ids (B, L, K) int64 -> (B, L, K + 1). The bucket is computed by
    masking the top-k logits out, so it is exact even when the student puts almost all its mass
    on those ids (``log(1 - p)`` would cancel catastrophically).
    """
    scaled = student_logits.float() / temperature
    log_z = torch.logsumexp(scaled, dim=-1, keepdim=True)
    picked = scaled.gather(-1, ids) - log_z
    rest = scaled.scatter(-1, ids, float("-inf"))
    bucket = torch.logsumexp(rest, dim=-1, keepdim=True) - log_z
    return torch.cat([picked, bucket], dim=-1)


def topk_kl(student_logits: torch.Tensor, signal: SparseSignal, labels: torch.Tensor,
            temperature: float = 1.0, num_tokens=None) -> torch.Tensor:
    """T^2 * KL over K + 1 classes: the teacher's top-k ids and one leftover bucket.

    student_logits (B, L, V); signal tensors (B, L, K) / (B, L); labels (B, L) -> scalar.
    With K = V (no leftover) this equals :func:`dense_kl` on the teacher's full logits.
    """
    vocab_size = student_logits.shape[-1]
    t_logp = tempered_topk(signal.logprobs, signal.leftover_logprob, vocab_size, temperature)
    s_logp = student_topk(student_logits, signal.ids.long(), temperature)
    return temperature**2 * _masked_mean(_kl_terms(t_logp, s_logp), labels, num_tokens)


def soft_loss(student_logits: torch.Tensor, signal: TeacherSignal, labels: torch.Tensor,
              temperature: float = 1.0, num_tokens=None) -> torch.Tensor:
    """The T^2-scaled KL term for either kind of teacher signal."""
    if isinstance(signal, DenseSignal):
        return dense_kl(student_logits, signal.logits, labels, temperature, num_tokens)
    return topk_kl(student_logits, signal, labels, temperature, num_tokens)


def distillation_loss(student_logits: torch.Tensor, labels: torch.Tensor, signal: TeacherSignal | None,
                      alpha: float, temperature: float = 1.0, num_tokens=None,
                      hard_loss: torch.Tensor | None = None) -> torch.Tensor:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE; shapes as above.

    ``hard_loss`` is the CE when the caller already has it (the trainer passes the model's own
    loss); otherwise it is :func:`cross_entropy` of the logits. alpha = 0 (or no signal) returns
    the CE itself and computes no soft term, so it is exactly plain fine-tuning.
    """
    ce = cross_entropy(student_logits, labels, num_tokens) if hard_loss is None else hard_loss
    if alpha == 0 or signal is None:
        return ce
    soft = soft_loss(student_logits, signal, labels, temperature, num_tokens)
    if alpha == 1:
        return soft
    return alpha * soft + (1 - alpha) * ce
