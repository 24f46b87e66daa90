"""The one place that turns (focal source, masked test) into the text the model reads.

Training, the logit store, the benchmark and the pytest plugin all import this module. A
second copy would drift and quietly ruin accuracy, so do not re-implement any of it.

Layout of a model input (format version 1)::

    <focal function source, head first>
    <FocalTestSep>
    <test source with <AssertPlaceHolder>, trimmed around the placeholder>

Version 2 appends in-project exemplars (:mod:`pytest_kdassert.core.exemplars` retrieves
them; :func:`exemplar_text` renders each one), most similar first::

    <ExemplarSep>
    <the lines of the exemplar's test its assertion reads>
    <the exemplar's assertion>
    <ExemplarSep>
    ...

The target is the assertion statement in its ``ast.unparse`` form.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pytest_kdassert.core.assertions import PLACEHOLDER
from pytest_kdassert.core.errors import ConfigError

FOCAL_SEP = "<FocalTestSep>"
"""Separates the focal function from the test; a special token of every kdassert tokenizer."""

FORMAT_VERSIONS = (1, 2)
"""Input formats this kdassert reads; ``kdassert_format.json`` records a model's."""

EXEMPLAR_SEP = "<ExemplarSep>"
"""Opens each exemplar in a version-2 input; a special token of tokenizers made since."""

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>", PLACEHOLDER, FOCAL_SEP, EXEMPLAR_SEP)
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
    version: int = 1
    """1: focal function and masked test; 2: also in-project exemplars (see the module doc)."""
    exemplars: int = 0
    """Exemplars per input (version 2; 0 for version 1)."""
    exemplar_share: float = 0.35
    """Share of the budget the exemplars may take when the whole input is too long."""
    exemplar_context_lines: int = 2
    """Lines of an exemplar's test shown before its assertion (those its assertion reads)."""

    def __post_init__(self):
        if self.version not in FORMAT_VERSIONS:
            raise ConfigError(f"input format version must be one of {FORMAT_VERSIONS}, got "
                              f"{self.version}; a newer kdassert wrote this model")
        if (self.version >= 2) != (self.exemplars >= 1):
            raise ConfigError("exemplars must be >= 1 with input format version 2 and 0 with "
                              f"version 1, got version {self.version} and {self.exemplars}")
        if not 0.0 <= self.exemplar_share < 1.0 or self.exemplar_context_lines < 0:
            raise ConfigError("exemplar_share must be in [0, 1) and exemplar_context_lines >= 0")
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
    exemplars: Sequence[str] = (),
) -> str:
    """Model input text for one example, trimmed to ``config.max_source_tokens``.

    ``exemplars`` are rendered exemplars (:func:`exemplar_text`), most similar first; a
    version-1 format ignores them, version 2 keeps at most ``config.exemplars``.
    """
    budget = config.max_source_tokens
    tail: list[str] = []
    if config.version >= 2:
        tail = _exemplar_block(list(exemplars)[: config.exemplars], config, count_tokens,
                               _fixed_share(focal_source, test_source_masked, config,
                                            count_tokens))
        budget -= sum(count_tokens(line) + 1 for line in tail)
    return "\n".join([*_focal_and_test(focal_source, test_source_masked, config, count_tokens,
                                        budget), *tail])


def _fixed_share(focal_source, test_source_masked, config, count_tokens) -> int:
    """Tokens the exemplars may use: their share, or more when focal and test are short."""
    need = sum(count_tokens(line) + 1 for line in
               [*focal_source.rstrip().splitlines(), *test_source_masked.rstrip().splitlines()]) + 2
    return max(int(config.max_source_tokens * config.exemplar_share),
               config.max_source_tokens - need)


def _exemplar_block(texts: list[str], config: InputFormatConfig, count_tokens,
                    budget: int) -> list[str]:
    """Whole exemplars, most similar first, while they fit ``budget`` tokens."""
    lines, used = [], 0
    for text in texts:
        block = [EXEMPLAR_SEP, *text.splitlines()]
        cost = sum(count_tokens(line) + 1 for line in block)
        if used + cost > budget:
            break
        lines += block
        used += cost
    return lines


def _focal_and_test(focal_source: str, test_source_masked: str, config: InputFormatConfig,
                    count_tokens, budget: int) -> list[str]:
    """Focal lines, the separator and the test lines, trimmed to ``budget`` tokens."""
    focal_lines = focal_source.rstrip().splitlines()
    test_lines = test_source_masked.rstrip().splitlines()
    focal_costs = [count_tokens(line) + 1 for line in focal_lines]  # +1: the newline
    test_costs = [count_tokens(line) + 1 for line in test_lines]
    budget = budget - 2  # the separator and its newline
    focal_need, test_need = sum(focal_costs), sum(test_costs)
    if focal_need + test_need > budget:
        test_budget = min(test_need, max(int(budget * config.test_share), budget - focal_need))
        test_lines = _trim_around_placeholder(test_lines, test_costs, test_budget)
        focal_budget = budget - sum(count_tokens(line) + 1 for line in test_lines)
        focal_lines = _keep_head(focal_lines, focal_costs, focal_budget)
    return [*focal_lines, FOCAL_SEP, *test_lines]


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
                   count_tokens: Callable[[str], int] = approx_token_count,
                   exemplars: Sequence[str] = ()) -> str:
    """``build_source`` for a mining-schema :class:`~pytest_kdassert.core.records.Example`."""
    return build_source(example.focal_source, example.test_source_masked, config, count_tokens,
                        exemplars)


def exemplar_text(masked_test: str, assertion: str, context_lines: int = 2) -> str:
    """An exemplar as the model reads it: the lines of its test that bind the names its
    assertion reads (the last ``context_lines`` of them, dedented), then the assertion.

    ``x = parse("1")`` / ``assert x == 1``: the model sees which call produced the checked
    value and how it was checked, without the rest of the other test.
    """
    lines = masked_test.splitlines()
    anchor = next((i for i, line in enumerate(lines) if PLACEHOLDER in line), len(lines))
    wanted = _names_in(assertion)
    picked = [line.strip() for line in lines[1:anchor]
              if wanted & _bound_in(line.strip())][-context_lines:] if context_lines else []
    return "\n".join([*picked, assertion.strip()])


_NAME_RE = re.compile(r"[A-Za-z_]\w*")
_BINDING_RE = re.compile(r"^([A-Za-z_][\w, ()\[\]*.]*?)\s*(?::[^=]+)?(?<![=!<>])=(?!=)")


def _names_in(text: str) -> set[str]:
    return set(_NAME_RE.findall(text))


def _bound_in(line: str) -> set[str]:
    """Names a line binds (``a, b = ...``, ``x: int = ...``, ``with ... as x``, ``for x in``)."""
    names: set[str] = set()
    match = _BINDING_RE.match(line)
    if match:
        names |= _names_in(match.group(1))
    for keyword in (" as ", "for "):
        if keyword in line:
            names |= _names_in(line.split(keyword, 1)[1].split(":")[0].split(" in ")[0])
    return names
