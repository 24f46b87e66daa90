"""Shared fixtures: tiny, locally built models so nothing is ever downloaded."""

from __future__ import annotations

import pytest

from pytest_kdassert.core.input_format import FOCAL_SEP, PLACEHOLDER

SAMPLE_TEXTS = [
    f"def add(a, b):\n    return a + b\n{FOCAL_SEP}\ndef test_add():\n    x = add(1, 2)\n    {PLACEHOLDER}",
    "assert x == 3",
    "assert add(1, 2) == 3",
    "self.assertEqual(add(1, 2), 3)",
    "assert result is not None",
    "assert len(items) == 2",
    "numpy.testing.assert_allclose(a, b)",
] * 20


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A 320-token byte-level BPE trained in well under a second."""
    from distillation.tokenizer import TokenizerConfig, train_tokenizer

    return train_tokenizer(SAMPLE_TEXTS, TokenizerConfig(vocab_size=320, min_frequency=1))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer):
    """A random-init ``tiny`` T5 saved with its tokenizer, loadable by ``load_seq2seq``."""
    import torch

    from distillation.models import build_model
    from pytest_kdassert.core.input_format import InputFormatConfig
    from pytest_kdassert.core.loading import save_format_config

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny-model")
    model = build_model("tiny", tiny_tokenizer)
    model.save_pretrained(directory)
    tiny_tokenizer.save_pretrained(directory)
    save_format_config(directory, InputFormatConfig())
    return directory
