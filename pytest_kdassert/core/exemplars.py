"""In-project exemplars: the assertions of a project's *other* tests, most similar first.

Training data, ``kdassert bench`` and the plugin all retrieve exemplars through
:class:`ExemplarIndex`, so a model sees the same exemplars in training as in use.

A *site* is a masked test (the test source with ``<AssertPlaceHolder>`` where its assertion
goes); the *pool* holds (test id, masked test, assertion) entries of the same project.
Similarity is lexical, over the word tokens (regex ``\\w+``: names, keywords, numbers and
the words of strings; punctuation left out) of the masked tests, placeholder removed:

* ``jaccard``: |A ∩ B| / |A ∪ B| of the two token *sets*;
* ``bm25``: Okapi BM25 (k1, b) of the site's distinct tokens against each entry's token
  counts, idf ``log(1 + (N - df + 0.5) / (df + 0.5))`` over the pool.

Rules every caller relies on: an entry of the site's own test (same :func:`function_key`) is never
returned; an entry whose assertion is blank or still holds the placeholder is never indexed;
entries sharing no token with the site are never returned; ties go to the entry added first.

Jaccard over words, the default, measured best at top-1 (README, "In-project exemplars") and
is fast (see ``_Jaccard``); BM25 is kept to reproduce that comparison
(``benchmarks/exemplar_retrieval.py``) and is exact but slower.
"""

from __future__ import annotations

import ast
import enum
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from pytest_kdassert.core.assertions import PLACEHOLDER, is_placeholder_assert
from pytest_kdassert.core.errors import ConfigError

_TOKEN_RE = re.compile(r"\w+")
_ASSERTION_NUMBER = re.compile(r"#\d+$")


def code_tokens(masked_test: str) -> list[str]:
    """The tokens similarity is computed over: the words of the test, placeholder removed."""
    return _TOKEN_RE.findall(masked_test.replace(PLACEHOLDER, " "))


def function_key(test_id: str) -> str:
    """The test function an id names: the assertion number (``#k``) and parameters dropped.

    ``proj:tests/t.py::test_a#1`` and ``tests/t.py::test_a[x-1]`` name ``...::test_a``.
    """
    key = _ASSERTION_NUMBER.sub("", test_id)
    bracket = key.find("[")  # parameters may hold "::" themselves: the first bracket starts them
    return key[:bracket] if key.endswith("]") and bracket > key.find("::") >= 0 else key


class Similarity(str, enum.Enum):
    """How a pool entry's masked test is compared with the site's."""

    JACCARD = "jaccard"
    BM25 = "bm25"


@dataclass(frozen=True)
class ExemplarConfig:
    """How many exemplars to retrieve and how to rank them."""

    k: int = 3
    """Exemplars per site."""
    similarity: Similarity = Similarity.JACCARD
    """``jaccard`` or ``bm25`` (see the module docstring)."""
    distinct: bool = True
    """Return one exemplar per distinct assertion text (the most similar one)."""
    bm25_k1: float = 1.2
    """BM25 term-frequency saturation (> 0)."""
    bm25_b: float = 0.75
    """BM25 length normalisation, in [0, 1]."""

    def __post_init__(self):
        if self.k < 1:
            raise ConfigError(f"k must be >= 1, got {self.k}")
        try:
            object.__setattr__(self, "similarity", Similarity(self.similarity))
        except ValueError:
            raise ConfigError(f"similarity must be one of {[s.value for s in Similarity]}, "
                              f"got {self.similarity!r}") from None
        if self.bm25_k1 <= 0 or not 0.0 <= self.bm25_b <= 1.0:
            raise ConfigError(f"need bm25_k1 > 0 and bm25_b in [0, 1], got {self.bm25_k1}, {self.bm25_b}")


@dataclass(frozen=True)
class PoolEntry:
    """One assertion of the project, with the test it was masked in."""

    test_id: str
    """Id of the test it comes from; entries with the site's :func:`function_key` are skipped."""
    masked_test: str
    """The test source with this assertion replaced by the placeholder."""
    assertion: str
    """The assertion statement."""
    focal_name: str | None = None
    """Qualified name of the function under test, when known."""


@dataclass(frozen=True)
class Site:
    """Where an assertion is wanted."""

    test_id: str
    masked_test: str
    focal_name: str | None = None


@dataclass(frozen=True)
class Exemplar:
    """A retrieved pool entry."""

    entry: PoolEntry
    score: float
    """Similarity to the site (higher is closer)."""
    rank: int
    """0 for the most similar."""


def usable(entry: PoolEntry) -> bool:
    """Whether an entry may ever be shown as an exemplar: not blank, not a placeholder
    (``<AssertPlaceHolder>``, or the ``assert ...`` users write to ask for an assertion)."""
    text = entry.assertion.strip()
    return bool(text) and PLACEHOLDER not in text and not (
        "..." in text and _is_request(text))


def _is_request(text: str) -> bool:
    try:
        body = ast.parse(text).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return len(body) == 1 and is_placeholder_assert(body[0])


def example_entry(example) -> PoolEntry:
    """A mining-schema :class:`~pytest_kdassert.core.records.Example` as a pool entry."""
    return PoolEntry(example.id, example.test_source_masked, example.assertion, example.focal_name)


def example_site(example) -> Site:
    """A mining-schema example as the site of its own assertion."""
    return Site(example.id, example.test_source_masked, example.focal_name)


def project_indexes(examples: Iterable, config: ExemplarConfig = ExemplarConfig()) -> dict[str, ExemplarIndex]:
    """One index per project over mining-schema examples (exemplars never cross projects)."""
    by_project: dict[str, list[PoolEntry]] = {}
    for example in examples:
        by_project.setdefault(example.project, []).append(example_entry(example))
    return {project: ExemplarIndex(entries, config) for project, entries in by_project.items()}


class ExemplarIndex:
    """A project's pool, indexed once; :meth:`query` returns a site's top exemplars."""

    def __init__(self, entries: Iterable[PoolEntry], config: ExemplarConfig = ExemplarConfig()):
        self.config = config
        self.entries: list[PoolEntry] = []
        self.skipped = 0
        """Entries left out by :func:`usable`."""
        self._by_key: dict[str, list[int]] = {}
        tokens: list[list[str]] = []
        for entry in entries:
            if not usable(entry):
                self.skipped += 1
                continue
            self._by_key.setdefault(function_key(entry.test_id), []).append(len(self.entries))
            self.entries.append(entry)
            tokens.append(code_tokens(entry.masked_test))
        self._scorer = (_Bm25(tokens, config) if config.similarity is Similarity.BM25
                        else _Jaccard(tokens))

    def __len__(self) -> int:
        return len(self.entries)

    def query(self, site: Site, k: int | None = None) -> list[Exemplar]:
        """The ``k`` (default ``config.k``) most similar entries of other tests, best first."""
        query, own, k = self._prepare(site, k)
        return self._exemplars(self._scorer.top(query, own, k, self._pick))

    def brute_force(self, site: Site, k: int | None = None) -> list[Exemplar]:
        """:meth:`query` by scoring every entry one by one: the reference for tests."""
        query, own, k = self._prepare(site, k)
        scores = {doc: self._scorer.score(doc, query) for doc in range(len(self)) if doc not in own}
        return self._exemplars(self._pick({d: s for d, s in scores.items() if s > 0}, k))

    def _prepare(self, site: Site, k: int | None) -> tuple[frozenset[str], frozenset[int], int]:
        k = self.config.k if k is None else k
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        own = frozenset(self._by_key.get(function_key(site.test_id), ()))
        return frozenset(code_tokens(site.masked_test)), own, k

    def _exemplars(self, picked: list[tuple[int, float]]) -> list[Exemplar]:
        return [Exemplar(self.entries[doc], score, rank) for rank, (doc, score) in enumerate(picked)]

    def _pick(self, scores: dict[int, float], k: int) -> list[tuple[int, float]]:
        """The best ``k`` (doc, score); ties to the earlier doc; one per assertion if distinct."""
        picked, seen = [], set()
        for doc, score in sorted(scores.items(), key=lambda item: (-item[1], item[0])):
            text = self.entries[doc].assertion
            if self.config.distinct and text in seen:
                continue
            seen.add(text)
            picked.append((doc, score))
            if len(picked) == k:
                break
        return picked


_FIELD_BYTES = 2
"""Shared-token counts are 16-bit fields of one big integer (exact up to 65,535 tokens)."""
_DENSE_MIN_DF = 32
_DENSE_FRACTION = 1 / 128
"""A token in at least max(32, N/128) entries gets a field mask; rarer ones keep a list."""
_BAND_GROWTH = 1.25
"""Entries are grouped in bands of token-set size, each at most 1.25 times its smallest."""
_THRESHOLD_STEP = 0.75
"""Each search round lowers the threshold to 3/4 until k exemplars are found."""
_SLACK = 1e-9


class _Jaccard:
    """Jaccard over token sets, with the counting done by big-integer additions.

    Every common token owns an integer with a 1 in the 16-bit field of each entry that has it,
    so adding the integers of the site's common tokens counts the shared tokens of all entries
    at C speed; rare tokens add their short entry lists. Entries are laid out by token-set size
    in bands, and a regex over the count bytes of a band finds its entries with a count in a
    range. An entry of size >= s sharing c of the site's |A| tokens scores at most
    ``c / (|A| + s - c)``, so for a threshold t only counts ``c >= t (|A| + s) / (1 + t)`` can
    reach t: each round lowers t and scores the entries that newly qualify, until the k-th
    best exact score is at least t (nothing unvisited can beat it) or all were visited.
    Memory: one mask of 2N bytes per common token (about 10 MB for 10k mined entries).
    """

    def __init__(self, tokens: list[list[str]]):
        self.sets = [frozenset(t) for t in tokens]
        self.order = sorted(range(len(self.sets)), key=lambda doc: len(self.sets[doc]))
        self.position = {doc: pos for pos, doc in enumerate(self.order)}
        self.sizes = [len(self.sets[doc]) for doc in self.order]
        self.bands = _size_bands(self.sizes)
        postings: dict[str, list[int]] = {}
        for pos, doc in enumerate(self.order):
            for token in self.sets[doc]:
                postings.setdefault(token, []).append(pos)
        cut = max(_DENSE_MIN_DF, len(self.sets) * _DENSE_FRACTION)
        self.dense = {t: self._field_mask(ps) for t, ps in postings.items() if len(ps) >= cut}
        self.sparse = {t: ps for t, ps in postings.items() if len(ps) < cut}

    def _field_mask(self, positions: list[int]) -> int:
        fields = bytearray(_FIELD_BYTES * len(self.sets))
        for pos in positions:
            fields[_FIELD_BYTES * pos] = 1
        return int.from_bytes(fields, "little")

    def score(self, doc: int, query: frozenset[str]) -> float:
        return _jaccard(len(query & self.sets[doc]), len(query), len(self.sets[doc]))

    def top(self, query: frozenset[str], own: frozenset[int], k: int, pick) -> list[tuple[int, float]]:
        """Exact top ``k`` by rounds of falling thresholds (see the class docstring)."""
        n = len(query)
        shared, counts = self._counts(query, own)
        exact: dict[int, float] = {}
        visited = [256] * len(self.bands)  # per band: counts >= this were visited
        threshold, best = 1.0, []
        while True:
            for band, (start, end) in enumerate(self.bands):
                need = math.ceil(threshold * (n + self.sizes[start]) / (1 + threshold) - _SLACK)
                need = min(255, max(1, need))
                high = min(visited[band] - 1, self.sizes[end - 1], n, 255)
                if need <= high:
                    self._visit(need, high, start, end, counts, shared, n, exact)
                visited[band] = min(visited[band], need)
            best = pick(exact, k)
            if len(best) == k and best[-1][1] >= threshold or all(v <= 1 for v in visited):
                return best
            threshold = best[-1][1] if len(best) == k else threshold * _THRESHOLD_STEP

    def _visit(self, low, high, start, end, counts, shared, n, exact) -> None:
        """Score the entries at positions [start, end) whose count byte is in [low, high]."""
        pattern = re.compile(b"[\\x%02x-\\x%02x]" % (low, high))
        for match in pattern.finditer(counts, start, end):
            pos = match.start()
            exact[self.order[pos]] = _jaccard(shared(pos), n, self.sizes[pos])

    def _counts(self, query: frozenset[str], own: frozenset[int]):
        """(exact shared-token count at a position, count bytes clamped to 255, ``own`` at 0)."""
        size = _FIELD_BYTES * len(self.sets)
        raw = sum((self.dense[t] for t in query if t in self.dense), 0).to_bytes(size, "little")
        rare: Counter = Counter()
        for token in query:
            positions = self.sparse.get(token)
            if positions:
                rare.update(positions)

        def shared(pos: int) -> int:
            at = _FIELD_BYTES * pos
            return raw[at] + (raw[at + 1] << 8) + rare.get(pos, 0)

        counts = bytearray(raw[0::_FIELD_BYTES])
        if len(query) > 255:  # a dense count may not fit its low byte: clamp the slow way
            counts = bytearray(min(255, shared(pos)) for pos in range(len(self.sets)))
        for pos in rare:
            counts[pos] = min(255, shared(pos))
        for doc in own:
            counts[self.position[doc]] = 0
        return shared, counts


def _size_bands(sizes: list[int]) -> list[tuple[int, int]]:
    """[start, end) position ranges of ascending ``sizes``, each within a factor of growth."""
    bands, start = [], 0
    while start < len(sizes):
        end = start
        while end < len(sizes) and sizes[end] <= max(sizes[start] * _BAND_GROWTH, sizes[start] + 1):
            end += 1
        bands.append((start, end))
        start = end
    return bands


def _jaccard(shared: int, query_size: int, entry_size: int) -> float:
    return shared / (query_size + entry_size - shared) if shared else 0.0


class _Bm25:
    """Okapi BM25 of the site's distinct tokens, term at a time (exact, no pruning)."""

    def __init__(self, tokens: list[list[str]], config: ExemplarConfig):
        counts = [Counter(t) for t in tokens]
        average = sum(map(len, tokens)) / len(tokens) if tokens else 0.0
        k1, b = config.bm25_k1, config.bm25_b
        df = Counter(token for count in counts for token in count)
        self.by_doc: list[dict[str, float]] = []
        self.postings: dict[str, list[tuple[int, float]]] = {}
        for doc, count in enumerate(counts):
            norm = k1 * (1 - b + b * len(tokens[doc]) / average) if average else k1
            weights = {t: _idf(len(counts), df[t]) * tf * (k1 + 1) / (tf + norm) for t, tf in count.items()}
            self.by_doc.append(weights)
            for token, weight in weights.items():
                self.postings.setdefault(token, []).append((doc, weight))

    def score(self, doc: int, query: frozenset[str]) -> float:
        """Summed in sorted token order, as :meth:`top` does, so both agree to the bit."""
        weights = self.by_doc[doc]
        return sum(weights[t] for t in sorted(query) if t in weights)

    def top(self, query: frozenset[str], own: frozenset[int], k: int, pick) -> list[tuple[int, float]]:
        scores: dict[int, float] = {}
        for token in sorted(query):
            for doc, weight in self.postings.get(token, ()):
                scores[doc] = scores.get(doc, 0.0) + weight
        for doc in own:
            scores.pop(doc, None)
        return pick(scores, k)


def _idf(documents: int, frequency: int) -> float:
    return math.log(1 + (documents - frequency + 0.5) / (frequency + 0.5))
