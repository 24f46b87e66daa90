"""Where candidate assertions come from: the model (loaded lazily, once) or a stub.

Tests and other tools can supply their own suggester by implementing the
``pytest_kdassert_suggester(config)`` hook (see :mod:`pytest_kdassert.hookspecs`) in a
``conftest.py``: it returns an object with ``suggest(requests) -> list[list[candidate]]``
where a candidate is a string, a ``(text, score)`` pair, or anything with ``.text`` and
``.score``. A suggester may also offer ``score(requests, texts)`` (see
:meth:`ModelSuggester.score`) to rank template candidates; without it they rank last.
torch and transformers are imported only by :class:`ModelSuggester`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SuggestRequest:
    """What a suggester knows about one site."""

    nodeid: str
    qualname: str
    focal_name: str | None
    focal_source: str
    """Source of the focal function, or ``""`` when none was found."""
    test_source_masked: str
    """The dedented test with ``<AssertPlaceHolder>`` where the assertion goes."""
    exemplars: tuple[tuple[str, str], ...] = ()
    """(masked test, assertion) of the project's most similar other tests, closest first:
    what a format-v2 model reads after the test (:func:`~.core.input_format.exemplar_text`)."""


@dataclass(frozen=True)
class RawCandidate:
    """A suggester's output, before verification."""

    text: str
    score: float | None
    rank: int


class Suggester(Protocol):
    def suggest(self, requests: Sequence[SuggestRequest]) -> list[list]: ...

    # optional: def score(self, requests, texts) -> list[list[float]]


class ModelSuggester:
    """Generates candidates with a seq2seq model using beam search, batched across tests."""

    def __init__(self, model_spec: str, num_beams: int = 5, batch_size: int = 16,
                 threads: int = 0):
        from pytest_kdassert.core.loading import resolve_model_path

        self.path = resolve_model_path(model_spec)  # fails fast, before torch is imported
        self.num_beams = num_beams
        self.batch_size = batch_size
        self.threads = threads
        self._loaded = None

    def _load(self):
        if self._loaded is None:
            from pytest_kdassert.core.loading import load_format_config, load_seq2seq

            model, tokenizer = load_seq2seq(self.path)
            self._loaded = (model, tokenizer, load_format_config(self.path))
            logger.info("kdassert: loaded model from %s", self.path)
        return self._loaded

    def suggest(self, requests: Sequence[SuggestRequest]) -> list[list]:
        if not requests:
            return []
        from pytest_kdassert.core.generate import generate_candidates

        with _torch_threads(self.threads):
            model, tokenizer, sources, config = self._prepare(requests)
            return generate_candidates(model, tokenizer, sources, config)

    def score(self, requests: Sequence[SuggestRequest], texts: Sequence[Sequence[str]]) -> list[list[float]]:
        """The model's mean log-probability of each given text, on the scale of ``suggest``'s scores."""
        from pytest_kdassert.core.generate import score_targets

        with _torch_threads(self.threads):
            model, tokenizer, sources, config = self._prepare(requests)
            pairs = [(source, text) for source, site_texts in zip(sources, texts, strict=True)
                     for text in site_texts]
            flat = iter(score_targets(model, tokenizer, pairs, config))
            return [[next(flat) for _ in site_texts] for site_texts in texts]

    def _prepare(self, requests: Sequence[SuggestRequest]):
        """The loaded model and tokenizer, one model input per request, and the generation settings."""
        from pytest_kdassert.core.generate import GenerationConfig
        from pytest_kdassert.core.input_format import build_source, exemplar_text

        model, tokenizer, fmt = self._load()
        sources = [build_source(r.focal_source, r.test_source_masked, fmt, exemplars=[
            exemplar_text(test, assertion, fmt.exemplar_context_lines)
            for test, assertion in r.exemplars]) for r in requests]
        config = GenerationConfig(num_beams=self.num_beams, batch_size=self.batch_size,
                                  max_source_tokens=fmt.max_source_tokens,
                                  max_new_tokens=fmt.max_target_tokens)
        return model, tokenizer, sources, config


@contextlib.contextmanager
def _torch_threads(threads: int):
    """Use ``threads`` intra-op threads inside the block (0: leave torch alone)."""
    import torch

    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def as_raw_candidates(items: Sequence) -> list[RawCandidate]:
    """Normalise whatever a suggester returned for one site, keeping its order as rank."""
    out = []
    for rank, item in enumerate(items or []):
        if isinstance(item, str):
            text, score = item, None
        elif isinstance(item, tuple):
            text, score = item[0], (item[1] if len(item) > 1 else None)
        else:
            text, score = getattr(item, "text", ""), getattr(item, "score", None)
        out.append(RawCandidate(str(text), None if score is None else float(score), rank))
    return out
