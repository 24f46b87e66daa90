"""The one place that turns (focal source, masked test) into the text the model reads.

Training, the logit store, the benchmark and the pytest plugin all import this module. A
second copy would drift and quietly ruin accuracy, so do not re-implement any of it.

Layout of a model input::

    <focal function source, head first>
    <FocalTestSep>
    <test source with <AssertPlaceHolder>, trimmed around the placeholder>

The target is the assertion statement in its ``ast.unparse`` form.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from pytest_kdassert.core.assertions import PLACEHOLDER
from pytest_kdassert.core.errors import ConfigError

FOCAL_SEP = "<FocalTestSep>"
"""Separates the focal function from the test; a special token of every kdassert tokenizer."""

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>", PLACEHOLDER, FOCAL_SEP)
"""Special tokens, in id order: pad=0, eos=1, unk=2 as T5 expects."""

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def approx_token_count(text: str) -> int:
    """Words plus punctuation: close to a code BPE's count, and independent of any tokenizer."""
    return len(_TOKEN_RE.findall(text))


@dataclass(frozen=True)
class InputFormatConfig:
    """How much of the focal function and of the test the model sees."""

    max_source_tokens: int = 320
    """Token budget of the whole input; longer inputs are trimmed line by line."""
    max_target_tokens: int = 64
    """Longest assertion the model is trained to produce, in tokens."""
    test_share: float = 0.6
    """Share of the budget the test may keep when focal and test together are too long."""

    def __post_init__(self):
        if self.max_source_tokens < 16:
            raise ConfigError(f"max_source_tokens must be >= 16, got {self.max_source_tokens}")
        if self.max_target_tokens < 4:
            raise ConfigError(f"max_target_tokens must be >= 4, got {self.max_target_tokens}")
        if not 0.0 < self.test_share <= 1.0:
            raise ConfigError(f"test_share must be in (0, 1], got {self.test_share}")


def build_source(
    focal_source: str,
    test_source_masked: str,
    config: InputFormatConfig = InputFormatConfig(),
    count_tokens: Callable[[str], int] = approx_token_count,
) -> str:
    """Model input text for one example, trimmed to ``config.max_source_tokens``."""
    focal_lines = focal_source.rstrip().splitlines()
    test_lines = test_source_masked.rstrip().splitlines()
    focal_costs = [count_tokens(line) + 1 for line in focal_lines]  # +1: the newline
    test_costs = [count_tokens(line) + 1 for line in test_lines]
    budget = config.max_source_tokens - 2  # the separator and its newline
    focal_need, test_need = sum(focal_costs), sum(test_costs)
    if focal_need + test_need > budget:
        test_budget = min(test_need, max(int(budget * config.test_share), budget - focal_need))
        test_lines = _trim_around_placeholder(test_lines, test_costs, test_budget)
        focal_budget = budget - sum(count_tokens(line) + 1 for line in test_lines)
        focal_lines = _keep_head(focal_lines, focal_costs, focal_budget)
    return "\n".join([*focal_lines, FOCAL_SEP, *test_lines])


def _keep_head(lines: list[str], costs: list[int], budget: int) -> list[str]:
    """The longest prefix of ``lines`` that fits: signature and docstring come first."""
    kept, used = [], 0
    for line, cost in zip(lines, costs, strict=False):
        if used + cost > budget:
            break
        kept.append(line)
        used += cost
    return kept


def _trim_around_placeholder(lines: list[str], costs: list[int], budget: int) -> list[str]:
    """Keep the ``def`` line, the placeholder, and as many neighbours as fit.

    Lines above the placeholder (the setup whose values the assertion checks) are preferred
    two to one over lines below it.
    """
    anchor = next((i for i, line in enumerate(lines) if PLACEHOLDER in line), len(lines) - 1)
    if anchor < 0:
        return []
    keep = {anchor}
    used = costs[anchor]
    if anchor != 0 and used + costs[0] <= budget:
        keep.add(0)
        used += costs[0]
    above, below = anchor - 1, anchor + 1
    step = 0
    while above > 0 or below < len(lines):
        take_above = above > 0 and (step % 3 != 2 or below >= len(lines))
        index = above if take_above else below
        if index in keep or used + costs[index] > budget:
            break
        keep.add(index)
        used += costs[index]
        if take_above:
            above -= 1
        else:
            below += 1
        step += 1
    return [lines[i] for i in sorted(keep)]


def build_target(assertion: str) -> str:
    """Model target text for an assertion (already normalised by the miner)."""
    return assertion.strip()


def example_source(example, config: InputFormatConfig = InputFormatConfig(),
                   count_tokens: Callable[[str], int] = approx_token_count) -> str:
    """``build_source`` for a mining-schema :class:`~pytest_kdassert.core.records.Example`."""
    return build_source(example.focal_source, example.test_source_masked, config, count_tokens)
