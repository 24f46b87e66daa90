"""A byte-level BPE tokenizer for Python tests, trained with Hugging Face ``tokenizers``.

Byte-level means no input is ever out of vocabulary (any Unicode in a test survives), and
indentation is kept exactly, so decoded assertions can be pasted back into source.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from pytest_kdassert.core.errors import ConfigError
from pytest_kdassert.core.input_format import SPECIAL_TOKENS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenizerConfig:
    """Settings of ``kdassert tokenizer``."""

    vocab_size: int = 8192
    """BPE vocabulary size. 8k keeps a small student's embeddings small (CodeT5 used 32k)."""
    min_frequency: int = 2
    """A merge must occur at least this often in the corpus."""

    def __post_init__(self):
        if self.vocab_size < len(SPECIAL_TOKENS) + 256:
            raise ConfigError(
                f"vocab_size must be at least {len(SPECIAL_TOKENS) + 256} "
                f"(256 bytes plus special tokens), got {self.vocab_size}"
            )
        if self.min_frequency < 1:
            raise ConfigError(f"min_frequency must be >= 1, got {self.min_frequency}")


def train_tokenizer(texts: Iterable[str], config: TokenizerConfig = TokenizerConfig()) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``texts`` and wrap it for ``transformers``."""
    pad, eos, unk, *extra = SPECIAL_TOKENS
    backend = Tokenizer(models.BPE(unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        min_frequency=config.min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=logger.isEnabledFor(logging.INFO),
    )
    backend.train_from_iterator(texts, trainer=trainer)
    # T5-style: every sequence ends with </s>.
    backend.post_processor = processors.TemplateProcessing(
        single=f"$A {eos}", special_tokens=[(eos, backend.token_to_id(eos))]
    )
    return wrap_tokenizer(backend)


def wrap_tokenizer(backend: Tokenizer) -> PreTrainedTokenizerFast:
    """A ``PreTrainedTokenizerFast`` over ``backend`` that keeps code text exact on decode."""
    pad, eos, unk, *extra = SPECIAL_TOKENS
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=pad,
        eos_token=eos,
        unk_token=unk,
        additional_special_tokens=list(extra),
        clean_up_tokenization_spaces=False,
        model_max_length=1024,
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, directory: str | os.PathLike) -> None:
    """Write ``tokenizer.json`` and its config into ``directory``."""
    tokenizer.save_pretrained(str(directory))
