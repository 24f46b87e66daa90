"""Ranking a site's candidate assertions from in-project evidence: one linear model.

The candidates of a site are the texts of its top exemplars (:mod:`.exemplars`) with names
adapted to the site (:mod:`.adapt`), the raw text of an exemplar that adaptation changed, the
assertions already written in the site's own test ("siblings": a test often checks the same
thing twice), and those siblings with their result variable renamed to the site's
(:func:`~.adapt.adapted_siblings`). Each candidate gets the features of :data:`FEATURES`, computed from the
masked test, the focal function's source, the exemplars and the project's pool only (no
model), and the rank score is their weighted sum:

    score = sum(weights[name] * feature[name] for name in FEATURES)

so the plugin and ``kdassert bench`` rank the same way. The weights are a conditional logit
(softmax over a site's candidates, L2) fitted on a validation split by
:func:`distillation.system.fit_ranker`; :data:`DEFAULT_WEIGHTS` holds the shipped fit.

Features (names only mean something to the weights; all are 0 where they do not apply):

* ``exemplar``, ``raw``, ``sibling``, ``sibling_adapted``: where the text came from (an
  adapted exemplar; only the unadapted text of one; only the site's own test; only a sibling
  renamed to the site's result variable);
* ``similarity``, ``similarity_gap``, ``log_rank``, ``top``: the best exemplar that proposed
  it: its similarity, that minus the top exemplar's, ``log(1 + rank)``, rank 0;
* ``log_votes``, ``log_lenient_votes``, ``log_shape_votes``: ``log(1 + n)`` of the exemplars
  that adapt to this very text, to it up to literals, and to its *shape* (names, attributes
  and literals masked): consensus;
* ``adapted``: adaptation renamed something in it;
* ``in_test``: the text is already one of the test's assertions;
* ``unknown_names``, ``any_unknown``, ``unknown_attributes``: share of its variable names
  (builtins left out) the masked test and focal source never mention, whether there is one,
  and the share of attribute names never mentioned: an exemplar naming what this test lacks
  is likely about another test;
* ``uses_result``: it names the variable assigned last before the placeholder;
* ``kind_share``, ``kind_absent``: share of the test's other assertions of the same kind
  (``assert ==``, ``self.assertEqual``, ...), and whether none has its family (assert,
  unittest or helper call) while some assertion is there;
* ``log_kind_prior``, ``log_text_prior``: how common its kind is in the project's pool, and
  ``log(1 + n)`` of the pool's assertions with this very text (the site's own test left out);
* ``log_length``: ``log(1 + characters)``;
* ``literal_coverage``, ``has_literal``: share of its literals found in the test or focal
  source, and whether it has any.
"""

from __future__ import annotations

import ast
import builtins
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pytest_kdassert.core.adapt import adapt_assertion, adapted_siblings, result_variable
from pytest_kdassert.core.assertions import PLACEHOLDER, assertion_kind
from pytest_kdassert.core.exemplars import Exemplar, PoolEntry, Site, code_tokens, function_key
from pytest_kdassert.core.memo import run_cache

FEATURES = ("exemplar", "raw", "sibling", "sibling_adapted", "similarity", "similarity_gap",
            "log_rank", "top", "log_votes", "log_lenient_votes", "log_shape_votes", "adapted",
            "in_test", "unknown_names", "any_unknown", "unknown_attributes", "uses_result",
            "kind_share", "kind_absent", "log_kind_prior", "log_text_prior", "log_length",
            "literal_coverage", "has_literal")

DEFAULT_WEIGHTS: Mapping[str, float] = {
    "exemplar": -0.6856, "raw": -2.369, "sibling": 2.6294, "sibling_adapted": 0.4253,
    "similarity": 2.7368, "similarity_gap": 1.0569, "log_rank": -1.0889, "top": -0.0556,
    "log_votes": 1.7786, "log_lenient_votes": -0.227, "log_shape_votes": 0.1928, "adapted": -1.2384,
    "in_test": -1.7149, "unknown_names": -2.0898, "any_unknown": -0.4895, "unknown_attributes": -0.4726,
    "uses_result": 1.5529, "kind_share": 0.0323, "kind_absent": 0.1173, "log_kind_prior": -0.0047,
    "log_text_prior": 0.5942, "log_length": -0.3772, "literal_coverage": 0.8497, "has_literal": -1.4786,
}
"""Fitted on all 6,565 examples of ``data/corpus/valid.jsonl`` (astropy, babel, werkzeug, lark,
nltk; exemplars from that file; 10 exemplars a site; L2 1e-3): 16.0% strict exact on it
(adapted top exemplar: 12.9%); 16.0% vs 13.0%, mean over its four projects each held out of
the fit (``benchmarks/system_ranker_cv.py``). ``kdassert bench --system-valid`` refits them."""

_KNOWN_NAMES = frozenset(dir(builtins)) | {"self", "cls"}
_SITE_CALL = "__kdassert_site__"
_KIND_PRIOR_SMOOTHING = 10


@dataclass(frozen=True)
class Ranked:
    """A candidate with its features and rank score."""

    text: str
    features: tuple[float, ...]
    """In :data:`FEATURES` order."""
    score: float = 0.0


@dataclass
class PoolStats:
    """How often each assertion kind and text occurs in a project's pool, per test function,
    so a site's own test can be left out of the counts."""

    kinds: Counter = field(default_factory=Counter)
    texts: Counter = field(default_factory=Counter)
    by_test: dict[str, tuple[Counter, Counter]] = field(default_factory=dict)

    @classmethod
    def from_entries(cls, entries: Iterable[PoolEntry]) -> PoolStats:
        stats = cls()
        for entry in entries:
            kind = statement_kind(entry.assertion)
            own_kinds, own_texts = stats.by_test.setdefault(function_key(entry.test_id),
                                                            (Counter(), Counter()))
            for kinds, texts in ((stats.kinds, stats.texts), (own_kinds, own_texts)):
                kinds[kind] += 1
                texts[entry.assertion] += 1
        return stats

    def without(self, test_id: str) -> _Counts:
        """The counts of the pool less the entries of ``test_id``'s function."""
        return _Counts(self, *self.by_test.get(function_key(test_id), (Counter(), Counter())))


@dataclass(frozen=True)
class _Counts:
    """Pool counts with one test function's entries left out (without copying the pool's)."""

    stats: PoolStats
    own_kinds: Counter
    own_texts: Counter

    def kind(self, kind: str) -> int:
        return self.stats.kinds[kind] - self.own_kinds[kind]

    def kinds_total(self) -> int:
        return self.stats.kinds.total() - self.own_kinds.total()

    def text(self, text: str) -> int:
        return self.stats.texts[text] - self.own_texts[text]


@run_cache(maxsize=65536)
def _parse_statement(text: str) -> ast.stmt | None:
    try:
        body = ast.parse(text).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return body[0] if len(body) == 1 else None


def statement_kind(text: str) -> str:
    """``assert ==``, ``assert isinstance``, ``call assertEqual``, ...; ``other`` when unclear."""
    stmt = _parse_statement(text)
    if isinstance(stmt, ast.Assert):
        test = stmt.test
        if isinstance(test, ast.Compare):
            return f"assert {type(test.ops[0]).__name__}"
        if isinstance(test, ast.Call) and isinstance(test.func, ast.Name) and test.func.id in (
                "isinstance", "all", "any", "len", "callable", "hasattr"):
            return f"assert {test.func.id}"
        return f"assert {type(test).__name__}"
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        func = stmt.value.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "?")
        return f"call {name}"
    return "other"


def _is_singleton(value) -> bool:
    """None, True, False or ``...``: constants that choose the check, not expected values."""
    return any(value is s for s in (None, True, False, Ellipsis))


def _family(kind: str) -> str:
    return kind.split(" ", 1)[0]


def written_assertions(masked_test: str) -> list[str]:
    """The assertions already in a masked test (``ast.unparse`` text), in source order."""
    try:
        module = ast.parse(masked_test.replace(PLACEHOLDER, f"{_SITE_CALL}()"))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    stmts = [n for n in ast.walk(module) if isinstance(n, ast.stmt) and assertion_kind(n)]
    return [ast.unparse(s) for s in sorted(stmts, key=lambda s: (s.lineno, s.col_offset))]


class _Literals(ast.NodeTransformer):
    def visit_Constant(self, node):  # noqa: N802 - ast API
        return node if _is_singleton(node.value) else ast.Constant("_")


class _Shape(_Literals):
    def visit_Name(self, node):  # noqa: N802 - ast API
        return ast.Name("_", node.ctx)

    def visit_Attribute(self, node):  # noqa: N802 - ast API
        self.generic_visit(node)
        return ast.Attribute(node.value, "_", node.ctx)


@run_cache(maxsize=65536)
def shape_key(text: str, names: bool = True) -> str | None:
    """The text with literals (and names and attributes, if ``names``) masked; None when it
    does not parse."""
    try:
        module = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return ast.dump((_Shape() if names else _Literals()).visit(module))


@dataclass
class _Origin:
    """Where one candidate text came from."""

    ranks: list[int] = field(default_factory=list)
    similarities: list[float] = field(default_factory=list)
    adapted: bool = False
    raw: bool = False
    sibling: bool = False
    sibling_adapted: bool = False


def _origins(site: Site, exemplars: Sequence[Exemplar],
             siblings: Sequence[str]) -> tuple[dict[str, _Origin], list[str]]:
    """Candidate texts (first seen first) with their origins, and each exemplar's adapted text."""
    origins: dict[str, _Origin] = {}
    adapted_texts = []
    for exemplar in exemplars:
        entry = exemplar.entry
        text = adapt_assertion(entry.assertion, entry.masked_test, site.masked_test,
                               entry.focal_name, site.focal_name)
        adapted_texts.append(text)
        origin = origins.setdefault(text, _Origin())
        origin.ranks.append(exemplar.rank)
        origin.similarities.append(exemplar.score)
        origin.adapted |= text != entry.assertion
    for exemplar in exemplars:
        if exemplar.entry.assertion not in origins:
            origins[exemplar.entry.assertion] = _Origin(raw=True)
    for text in siblings:
        origins.setdefault(text, _Origin()).sibling = True
    for text in adapted_siblings(site.masked_test):
        origins.setdefault(text, _Origin()).sibling_adapted = True
    return origins, adapted_texts


def candidate_features(site: Site, focal_source: str, exemplars: Sequence[Exemplar],
                       stats: PoolStats | None = None, extra: Sequence[str] = ()) -> list[Ranked]:
    """Every candidate of a site (see the module docstring) with its features, unscored.
    ``extra``: texts from elsewhere (a model's beams) that join the candidates not already
    there, measured against the same site (their exemplar features are 0)."""
    siblings = written_assertions(site.masked_test)
    origins, adapted_texts = _origins(site, exemplars, siblings)
    for text in extra:
        origins.setdefault(text, _Origin())
    context = _Context.of(site, focal_source, exemplars, siblings, adapted_texts, stats)
    return [Ranked(text, context.features(text, origin)) for text, origin in origins.items()]


@dataclass
class _Context:
    """What every candidate of one site is measured against."""

    mentioned: frozenset[str]
    source: str
    result: str | None
    top_similarity: float
    lenient_votes: Counter
    shape_votes: Counter
    test_kinds: Counter
    counts: _Counts

    @classmethod
    def of(cls, site, focal_source, exemplars, siblings, adapted_texts, stats) -> _Context:
        mentioned = set(code_tokens(site.masked_test)) | set(code_tokens(focal_source or ""))
        mentioned |= set((site.focal_name or "").split("."))
        counts = (stats or PoolStats()).without(site.test_id)
        return cls(frozenset(mentioned), site.masked_test + "\n" + (focal_source or ""),
                   result_variable(site.masked_test),
                   exemplars[0].score if exemplars else 0.0,
                   Counter(shape_key(t, names=False) for t in adapted_texts),
                   Counter(shape_key(t) for t in adapted_texts),
                   Counter(statement_kind(t) for t in siblings), counts)

    def features(self, text: str, origin: _Origin) -> tuple[float, ...]:
        f = dict.fromkeys(FEATURES, 0.0)
        if origin.ranks:
            best = min(origin.ranks)
            f.update(exemplar=1.0, similarity=max(origin.similarities), log_rank=math.log1p(best),
                     top=float(best == 0), log_votes=math.log1p(len(origin.ranks)),
                     adapted=float(origin.adapted))
            f["similarity_gap"] = f["similarity"] - self.top_similarity
        f["raw"] = float(origin.raw and not origin.ranks)
        f["sibling"] = float(origin.sibling and not origin.ranks and not origin.raw)
        f["sibling_adapted"] = float(origin.sibling_adapted and not (
            origin.ranks or origin.raw or origin.sibling))
        f["in_test"] = float(origin.sibling)
        f["log_lenient_votes"] = math.log1p(self.lenient_votes.get(shape_key(text, False), 0))
        f["log_shape_votes"] = math.log1p(self.shape_votes.get(shape_key(text), 0))
        f["log_length"] = math.log1p(len(text))
        stmt = _parse_statement(text)
        if stmt is not None:
            f.update(self._statement_features(text, stmt))
        return tuple(f[name] for name in FEATURES)

    def _statement_features(self, text: str, stmt: ast.stmt) -> dict[str, float]:
        names = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)} - _KNOWN_NAMES
        attributes = {n.attr for n in ast.walk(stmt) if isinstance(n, ast.Attribute)}
        literals = [str(n.value) for n in ast.walk(stmt)
                    if isinstance(n, ast.Constant) and not _is_singleton(n.value)]
        unknown = sum(n not in self.mentioned for n in names)
        kind = statement_kind(text)
        out = {"unknown_names": unknown / len(names) if names else 0.0,
               "any_unknown": float(unknown > 0),
               "unknown_attributes": (sum(a not in self.mentioned for a in attributes)
                                      / len(attributes) if attributes else 0.0),
               "uses_result": float(self.result is not None and self.result in names),
               "log_kind_prior": math.log((self.counts.kind(kind) + 1)
                                          / (self.counts.kinds_total() + _KIND_PRIOR_SMOOTHING)),
               "log_text_prior": math.log1p(self.counts.text(text)),
               "has_literal": float(bool(literals))}
        if self.test_kinds:
            out["kind_share"] = self.test_kinds[kind] / sum(self.test_kinds.values())
            out["kind_absent"] = float(not any(_family(k) == _family(kind) for k in self.test_kinds))
        if literals:
            out["literal_coverage"] = sum(x in self.source for x in literals) / len(literals)
        return out


def score(features: Sequence[float], weights: Mapping[str, float] = DEFAULT_WEIGHTS) -> float:
    """The rank score: the weighted sum of the features (missing weights count 0)."""
    return sum(weights.get(name, 0.0) * value for name, value in zip(FEATURES, features, strict=True))


def rank(items: Sequence[Ranked], weights: Mapping[str, float] = DEFAULT_WEIGHTS) -> list[Ranked]:
    """``items`` scored and sorted best first (stable: earlier items win ties)."""
    scored = [Ranked(i.text, i.features, score(i.features, weights)) for i in items]
    return sorted(scored, key=lambda item: -item.score)


def rank_site(site: Site, focal_source: str, exemplars: Sequence[Exemplar],
              stats: PoolStats | None = None,
              weights: Mapping[str, float] = DEFAULT_WEIGHTS) -> list[Ranked]:
    """A site's candidates from its exemplars and its own test, best first."""
    return rank(candidate_features(site, focal_source, exemplars, stats), weights)
