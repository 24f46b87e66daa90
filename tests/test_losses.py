"""Distillation losses on tiny tensors, with values checked by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from distillation.losses import (
    cross_entropy,
    dense_kl,
    distillation_loss,
    soft_loss,
    tempered_topk,
    topk_kl,
)
from distillation.signals import DenseSignal, SparseSignal, pop_signal, signal_to_batch, topk_signal


def _batch(seed=0, batch=2, length=5, vocab=11):
    gen = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, length, vocab, generator=gen) * 2
    teacher = torch.randn(batch, length, vocab, generator=gen) * 2
    labels = torch.randint(0, vocab, (batch, length), generator=gen)
    labels[0, 3:] = -100
    return student, teacher, labels


def test_identical_distributions_give_zero():
    student, _, labels = _batch()
    assert dense_kl(student, student.clone(), labels, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    full = topk_signal(student, student.shape[-1])
    assert topk_kl(student, full, labels, 2.0).item() == pytest.approx(0.0, abs=1e-5)


def test_different_distributions_give_positive_kl():
    student, teacher, labels = _batch()
    assert dense_kl(student, teacher, labels).item() > 0.1


def test_temperature_squared_scaling():
    student, teacher, labels = _batch()
    at_t3 = dense_kl(student, teacher, labels, temperature=3.0)
    manual = 9.0 * dense_kl(student / 3.0, teacher / 3.0, labels, temperature=1.0)
    assert at_t3.item() == pytest.approx(manual.item(), rel=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_topk_with_k_equal_vocab_equals_dense(temperature):
    student, teacher, labels = _batch()
    full = topk_signal(teacher, teacher.shape[-1])
    assert full.leftover_logprob.max().item() == float("-inf")
    dense = dense_kl(student, teacher, labels, temperature)
    assert topk_kl(student, full, labels, temperature).item() == pytest.approx(dense.item(), rel=1e-4)


def test_leftover_bucket_by_hand():
    teacher_probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    signal = topk_signal(teacher_probs.log().view(1, 1, 4), k=2)
    assert signal.ids.view(-1).tolist() == [0, 1]
    assert signal.leftover_logprob.exp().item() == pytest.approx(0.2, abs=1e-6)
    student = torch.zeros(1, 1, 4)  # uniform: 0.25 each, bucket 0.5
    labels = torch.zeros(1, 1, dtype=torch.long)
    expected = 0.5 * math.log(0.5 / 0.25) + 0.3 * math.log(0.3 / 0.25) + 0.2 * math.log(0.2 / 0.5)
    assert topk_kl(student, signal, labels).item() == pytest.approx(expected, abs=1e-6)


def test_tempered_leftover_spreads_evenly():
    # Two of four tokens kept; leftover 0.2 assumed as 0.1 + 0.1. At T=2 the tempered masses are
    # sqrt(p): 0.5 -> .7071, 0.3 -> .5477, each 0.1 -> .3162 (twice) -> bucket .6325.
    logprobs = torch.tensor([[math.log(0.5), math.log(0.3)]])
    tempered = tempered_topk(logprobs, torch.tensor([math.log(0.2)]), vocab_size=4, temperature=2.0)
    raw = torch.tensor([0.5**0.5, 0.3**0.5, 2 * 0.1**0.5])
    assert torch.allclose(tempered.exp(), (raw / raw.sum()).view(1, 3), atol=1e-6)


def test_alpha_zero_is_exactly_cross_entropy():
    student, teacher, labels = _batch()
    garbage = DenseSignal(torch.full_like(teacher, float("nan")))
    expected = F.cross_entropy(student.view(-1, student.shape[-1]), labels.view(-1), ignore_index=-100)
    assert torch.equal(distillation_loss(student, labels, garbage, alpha=0.0, temperature=2.0), expected)


def test_mixed_loss_weights_terms():
    student, teacher, labels = _batch()
    signal = DenseSignal(teacher)
    mixed = distillation_loss(student, labels, signal, alpha=0.25, temperature=2.0)
    expected = 0.25 * soft_loss(student, signal, labels, 2.0) + 0.75 * cross_entropy(student, labels)
    assert mixed.item() == pytest.approx(expected.item(), rel=1e-6)
    assert distillation_loss(student, labels, signal, 1.0, 2.0).item() == pytest.approx(
        soft_loss(student, signal, labels, 2.0).item())


def test_ignored_positions_do_not_count_and_normalise_by_tokens():
    student, teacher, labels = _batch()
    changed = student.clone()
    changed[0, 3:] = 100.0  # only positions whose label is -100
    assert dense_kl(changed, teacher, labels).item() == pytest.approx(dense_kl(student, teacher, labels).item())
    one_token = torch.full_like(labels, -100)
    one_token[1, 2] = labels[1, 2]
    single = dense_kl(student[1:2, 2:3], teacher[1:2, 2:3], labels[1:2, 2:3])
    assert dense_kl(student, teacher, one_token).item() == pytest.approx(single.item(), rel=1e-6)
    # an explicit token count (gradient accumulation) replaces the local one
    n = (labels != -100).sum().item()
    assert dense_kl(student, teacher, labels, num_tokens=2 * n).item() == pytest.approx(
        dense_kl(student, teacher, labels).item() / 2, rel=1e-6)


def test_topk_gradients_are_finite_with_empty_leftover_and_padding():
    student, teacher, labels = _batch()
    student.requires_grad_(True)
    signal = topk_signal(teacher, teacher.shape[-1])
    topk_kl(student, signal, labels, 2.0).backward()
    assert torch.isfinite(student.grad).all()
    assert student.grad[0, 3:].abs().sum().item() == 0.0


def test_signal_batch_round_trip():
    sparse = SparseSignal(torch.zeros(1, 2, 3, dtype=torch.long), torch.zeros(1, 2, 3), torch.zeros(1, 2))
    batch = {"labels": torch.zeros(1, 2), **signal_to_batch(sparse)}
    restored = pop_signal(batch)
    assert isinstance(restored, SparseSignal) and set(batch) == {"labels"}
    assert pop_signal({"labels": 1}) is None
