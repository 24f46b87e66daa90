"""Length-bucketed batches: each example once per epoch, batches of neighbouring lengths."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from distillation.batching import LengthBucketSampler, padding_share


@pytest.mark.parametrize("n, batch", [(100, 16), (64, 16), (5, 16), (33, 1)])
def test_every_example_once_per_epoch(n, batch):
    rng = random.Random(n)
    lengths = [rng.randint(3, 400) for _ in range(n)]
    sampler = LengthBucketSampler(lengths, batch, seed=3)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(order) == list(range(n)) and len(sampler) == n
        batches = sampler.batches()
        assert all(len(b) == batch for b in batches[:-1]) and 0 < len(batches[-1]) <= batch


def test_batches_are_tight_and_epochs_differ():
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 449, size=2000)
    sampler = LengthBucketSampler(lengths, 16, seed=0)
    tight = padding_share(lengths, sampler.batches())
    shuffled = rng.permutation(2000)
    loose = padding_share(lengths, [shuffled[i:i + 16] for i in range(0, 2000, 16)])
    assert tight < 0.01 < 0.2 < loose
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first  # an epoch is reproducible (a resumed run skips the same batches)


def test_dataloader_cuts_the_sampler_batches():
    rng = random.Random(1)
    lengths = [rng.randint(1, 50) for _ in range(40)]
    sampler = LengthBucketSampler(lengths, 16)
    loader = torch.utils.data.DataLoader(list(range(40)), batch_size=16, sampler=sampler)
    assert [b.tolist() for b in loader] == [b.tolist() for b in sampler.batches()]
