"""``kdassert sample``: a seeded random subset of a mined dataset, for runs that can't use it all.

Mined splits are grouped by project, so "the first N examples" (``limit``) covers only a few
projects. A CPU-sized run that can afford 30k of 108k training examples wants them drawn from
every project instead; this writes such a subset as a new dataset directory that every other
command accepts unchanged.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

from pytest_kdassert.core.errors import ConfigError, DataError
from pytest_kdassert.core.records import load_examples, write_examples

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class SampleConfig:
    """Settings of ``kdassert sample``."""

    data_dir: str
    """Dataset directory with train/valid/test.jsonl (from ``kdassert mine``)."""
    out_dir: str
    """Directory for the subset (must differ from ``data_dir``)."""
    sizes: dict[str, int | None]
    """Examples per split; None copies the split whole."""
    seed: int = 0

    def __post_init__(self):
        if Path(self.data_dir).resolve() == Path(self.out_dir).resolve():
            raise ConfigError("The subset must go to a new directory, not over the dataset itself.")
        bad = {split: n for split, n in self.sizes.items() if split not in SPLITS or (n is not None and n < 1)}
        if bad:
            raise ConfigError(f"Sizes must be >= 1 for splits {SPLITS}, got {bad}")


def sample_dataset(config: SampleConfig) -> dict[str, int]:
    """Write the subset; returns how many examples each split got. Splits missing from
    ``data_dir`` are skipped, so a dataset mined with ``--split none`` works too."""
    written = {}
    for split in SPLITS:
        source = Path(config.data_dir) / f"{split}.jsonl"
        if not source.is_file():
            continue
        examples = sample_examples(load_examples(source), config.sizes.get(split), config.seed)
        written[split] = write_examples(Path(config.out_dir) / f"{split}.jsonl", examples)
        logger.info("%s: %d examples", split, written[split])
    if not written:
        raise DataError(f"{config.data_dir} has no train/valid/test.jsonl. Build it with `kdassert mine`.")
    return written


def sample_examples(examples: list, n: int | None, seed: int) -> list:
    """``n`` examples drawn without replacement, kept in their original order (so projects stay
    grouped and the subset diffs cleanly against its source); all of them when ``n`` is None."""
    if n is None or n >= len(examples):
        return list(examples)
    chosen = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in chosen]
