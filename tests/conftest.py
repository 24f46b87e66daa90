"""Shared fixtures: tiny, locally built models so nothing is ever downloaded.

Torch runs one intra-op thread per test process (``OMP_NUM_THREADS``, unless set): ``-n 2`` on
two cores would otherwise start two threads per core. Set here, before any test imports torch,
so lazy imports and pytester subprocesses get it too; the session fixture below pins torch
when something imported it earlier.
"""

from __future__ import annotations

import os
import sys

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

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def _pin_torch_threads():
    """Torch's intra-op threads follow ``OMP_NUM_THREADS``; torch itself is not imported here."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


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
