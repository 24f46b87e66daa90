"""The retrieval baselines: answer with the assertion of the most similar other example.

*Cross-project* (:class:`RetrievalBaseline`): the nearest example of the training split.
*In-project* (:func:`in_project_candidates`): the nearest other tests of the example's own
project, through the exemplar retriever the plugin and the training data use.

Cross-project retrieval:

In the style of IR-based assertion generation (Yu et al. 2022, "IR"): similarity is the
Jaccard index of the *sets* of tokens (regex ``\\w+|[^\\w\\s]``) of the model input texts
(:func:`pytest_kdassert.core.input_format.example_source`), so the baseline sees exactly what the
model sees. An inverted index (token -> ids of the training examples containing it, one flat
numpy array) gives every training example's intersection size with one ``bincount``; a
token found in over half the examples stores the examples that lack it instead, so no list
is longer than half the corpus. 1k queries against 100k examples take seconds, not hours.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from pytest_kdassert.core.adapt import adapt_assertion
from pytest_kdassert.core.errors import ConfigError
from pytest_kdassert.core.exemplars import Exemplar, ExemplarConfig, example_site, project_indexes
from pytest_kdassert.core.generate import Candidate
from pytest_kdassert.core.records import Example

logger = logging.getLogger(__name__)

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def token_set(text: str) -> set[str]:
    """The distinct tokens of a model input text."""
    return set(_TOKEN_RE.findall(text))


@dataclass(frozen=True)
class RetrievalConfig:
    """Settings of the retrieval baseline."""

    num_return: int = 1
    """Candidates per query: the assertions of the nearest distinct neighbours."""

    def __post_init__(self):
        if self.num_return < 1:
            raise ConfigError(f"num_return must be >= 1, got {self.num_return}")


class RetrievalBaseline:
    """Nearest-neighbour assertion lookup; ``predict`` has the same shape as a model's."""

    name = "retrieval"

    def __init__(self, sources: Sequence[str], assertions: Sequence[str],
                 config: RetrievalConfig = RetrievalConfig()):
        if len(sources) != len(assertions):
            raise ConfigError("sources and assertions must have the same length")
        if not sources:
            raise ConfigError("The retrieval corpus is empty: pass a non-empty --train file.")
        self.assertions = list(assertions)
        self.config = config
        self._vocab: dict[str, int] = {}
        postings: list[list[int]] = []
        sizes = np.empty(len(sources), dtype=np.int32)
        for doc, text in enumerate(sources):
            tokens = token_set(text)
            sizes[doc] = len(tokens)
            for token in tokens:
                tid = self._vocab.setdefault(token, len(postings))
                if tid == len(postings):
                    postings.append([])
                postings[tid].append(doc)
        self._sizes = sizes
        # A token in more than half the examples stores the examples that LACK it instead.
        self._negated = np.array([2 * len(p) > len(sources) for p in postings], dtype=bool)
        everyone = np.arange(len(sources), dtype=np.int32)
        lists = [np.setdiff1d(everyone, p, assume_unique=True) if neg else np.asarray(p, np.int32)
                 for p, neg in zip(postings, self._negated, strict=True)]
        lengths = np.fromiter((len(p) for p in lists), dtype=np.int64, count=len(lists))
        self._offsets = np.concatenate([[0], np.cumsum(lengths)])
        self._docs = np.concatenate(lists).astype(np.int32) if lists else np.empty(0, np.int32)
        logger.info("retrieval index: %d examples, %d distinct tokens", len(sources), len(postings))

    def similarities(self, text: str) -> np.ndarray:
        """Jaccard similarity of ``text`` to every training example."""
        tokens = token_set(text)
        ids = [self._vocab[t] for t in tokens if t in self._vocab]
        plain = [i for i in ids if not self._negated[i]]
        negated = [i for i in ids if self._negated[i]]
        inter = self._count(plain) + len(negated) - self._count(negated)
        union = self._sizes + len(tokens) - inter
        return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)

    def _count(self, ids: list[int]) -> np.ndarray:
        """For every example, how many of the token lists ``ids`` contain it."""
        if not ids:
            return np.zeros(len(self._sizes))
        hits = np.concatenate([self._docs[self._offsets[i]:self._offsets[i + 1]] for i in ids])
        return np.bincount(hits, minlength=len(self._sizes)).astype(np.float64)

    def predict(self, sources: Sequence[str]) -> list[list[Candidate]]:
        """Ranked candidates per query: nearest first, ties broken by training order."""
        return [self._query(text) for text in sources]

    def _query(self, text: str) -> list[Candidate]:
        sims = self.similarities(text)
        want = self.config.num_return
        if want == 1:  # argmax returns the earliest of equally similar examples
            best = int(np.argmax(sims))
            return [Candidate(self.assertions[best], float(sims[best]), 0)]
        # Stable sort on -similarity keeps the earliest example first among equals.
        pool = min(len(sims), max(4 * want, want + 8))
        top = np.argpartition(-sims, pool - 1)[:pool] if pool < len(sims) else np.arange(len(sims))
        top = top[np.lexsort((top, -sims[top]))]
        candidates, seen = [], set()
        for doc in top:
            text_out = self.assertions[doc]
            if text_out in seen:
                continue
            seen.add(text_out)
            candidates.append(Candidate(text_out, float(sims[doc]), len(candidates)))
            if len(candidates) == want:
                break
        return candidates


class InProjectRetrieval:
    """The in-project baseline: the assertions of the ``k`` most similar other tests of the
    example's own project in ``pool`` (:mod:`pytest_kdassert.core.exemplars`), as they are or
    with names adapted to the example's test (:func:`~pytest_kdassert.core.adapt.adapt_assertion`)."""

    def __init__(self, pool: Sequence[Example], k: int, config: ExemplarConfig | None = None):
        self.indexes = project_indexes(pool, replace(config or ExemplarConfig(), k=k))

    def predict(self, examples: Sequence[Example], adapt: bool = False) -> list[list[Candidate]]:
        """Ranked candidates per example; none for a project the pool lacks."""
        out = []
        for example in examples:
            index = self.indexes.get(example.project)
            found = index.query(example_site(example)) if index is not None else []
            texts = [_adapted(x, example) if adapt else x.entry.assertion for x in found]
            out.append(_ranked(texts, [x.score for x in found]))
        return out


def _adapted(exemplar: Exemplar, example: Example) -> str:
    entry = exemplar.entry
    return adapt_assertion(entry.assertion, entry.masked_test, example.test_source_masked,
                           entry.focal_name, example.focal_name)


def _ranked(texts: list[str], scores: list[float]) -> list[Candidate]:
    """Candidates in order, a text that adaptation made equal to an earlier one dropped."""
    out, seen = [], set()
    for text, score in zip(texts, scores, strict=True):
        if text not in seen:
            seen.add(text)
            out.append(Candidate(text, score, len(out)))
    return out
