"""Length-bucketed batches: every example once per epoch, batches of (nearly) equal length.

The library's ``group_by_length`` sorts mega-batches of 50 batches; sorting the whole split
leaves almost no padding in the encoder (the cost that grows with the square of the length).
Ties are broken at random and the batches are shuffled, both seeded by ``seed + epoch``.
"""

from __future__ import annotations

import numpy as np
import torch


class LengthBucketSampler(torch.utils.data.Sampler):
    """Indices in batch order: ``batch_size`` examples of neighbouring source length per batch,
    the full batches in random order, the one partial batch (if any) last, so a ``DataLoader``
    with the same batch size cuts exactly these batches."""

    def __init__(self, lengths, batch_size: int, seed: int = 0):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed + self.epoch)
        order = np.lexsort((rng.random(len(self.lengths)), self.lengths))
        full = len(order) // self.batch_size * self.batch_size
        batches = list(order[:full].reshape(-1, self.batch_size)) if full else []
        batches = [batches[i] for i in rng.permutation(len(batches))]
        if full < len(order):
            batches.append(order[full:])
        return batches

    def __iter__(self):
        for batch in self.batches():
            yield from batch.tolist()

    def __len__(self) -> int:
        return len(self.lengths)


def padding_share(lengths, batches) -> float:
    """Share of encoder positions that are padding when ``batches`` are padded to their longest."""
    lengths = np.asarray(lengths)
    padded = sum(len(b) * lengths[b].max() for b in batches)
    return 1.0 - lengths.sum() / padded if padded else 0.0
