"""The *system* row of ``kdassert bench``: exemplars and the model's beams, ranked together.

What the plugin offers a site is the union of the model's beams and the top in-project
exemplars adapted to the test. One linear ranker orders them:

    rank score = model log-probability (mean per token)
                 + w_similarity * retrieval similarity (0 for beams)
                 + w_exemplar   * (1 if the text came from an exemplar)

The model scores every exemplar text too (:func:`~pytest_kdassert.core.generate.score_targets`),
so it acts as a ranker even where it could not write the assertion itself. The two weights
are fitted on a *validation* file only (grid search on strict exact match, ties to the
smallest weights) and then applied unchanged to the scored data.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from distillation import metrics as m
from pytest_kdassert.core.errors import ConfigError
from pytest_kdassert.core.generate import Candidate

SIMILARITY_GRID = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
EXEMPLAR_GRID = (-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class Pooled:
    """One candidate of the system: a beam or an adapted exemplar, with its features."""

    text: str
    model_score: float
    similarity: float = 0.0
    exemplar: bool = False


@dataclass(frozen=True)
class RankerWeights:
    similarity: float = 0.0
    exemplar: float = 0.0

    def score(self, item: Pooled) -> float:
        return item.model_score + self.similarity * item.similarity + self.exemplar * item.exemplar


def pool_candidates(beams: Sequence[Candidate], exemplars: Sequence[Candidate],
                    exemplar_scores: Sequence[float]) -> list[Pooled]:
    """Beams and exemplars (``Candidate.score`` = similarity) as one list, one item per text.

    A text both proposed keeps the model's beam score and the exemplar's similarity.
    """
    by_text: dict[str, Pooled] = {}
    for beam in beams:
        by_text.setdefault(beam.text, Pooled(beam.text, beam.score))
    for exemplar, score in zip(exemplars, exemplar_scores, strict=True):
        known = by_text.get(exemplar.text)
        model_score = known.model_score if known is not None else score
        by_text[exemplar.text] = Pooled(exemplar.text, model_score, exemplar.score, True)
    return list(by_text.values())


def rank(pooled: Sequence[Pooled], weights: RankerWeights) -> list[Candidate]:
    """Candidates best first under ``weights`` (stable: earlier items win ties)."""
    order = sorted(range(len(pooled)), key=lambda i: -weights.score(pooled[i]))
    return [Candidate(pooled[i].text, weights.score(pooled[i]), r) for r, i in enumerate(order)]


def fit_weights(pooled: Sequence[Sequence[Pooled]], references: Sequence[str],
                similarity_grid: Sequence[float] = SIMILARITY_GRID,
                exemplar_grid: Sequence[float] = EXEMPLAR_GRID) -> tuple[RankerWeights, float]:
    """The grid point with the highest strict exact match on these (validation) examples.

    Ties go to the smallest weights (``|w_similarity| + |w_exemplar|``), then to grid order.
    Returns the weights and their exact match.
    """
    if len(pooled) != len(references) or not references:
        raise ConfigError("fit_weights needs one candidate list per reference, and some references")
    best, best_key = None, None
    for w_sim, w_ex in itertools.product(similarity_grid, exemplar_grid):
        weights = RankerWeights(w_sim, w_ex)
        hits = sum(m.exact_match(rank(items, weights)[0].text, ref)
                   for items, ref in zip(pooled, references, strict=True) if items)
        key = (hits, -(abs(w_sim) + abs(w_ex)))
        if best_key is None or key > best_key:
            best, best_key = weights, key
    return best, best_key[0] / len(references)


@dataclass
class _Scorer:
    """A loaded model that proposes beams and scores given texts, in its input format."""

    model: object
    tokenizer: object
    fmt: object
    generation: object

    @classmethod
    def load(cls, path: str, beams: int, batch_size: int, device: str) -> _Scorer:
        from pytest_kdassert.core.generate import GenerationConfig
        from pytest_kdassert.core.loading import load_format_config, load_seq2seq

        fmt = load_format_config(path)
        model, tokenizer = load_seq2seq(path, device=device)
        generation = GenerationConfig(num_beams=beams, batch_size=batch_size,
                                      max_source_tokens=fmt.max_source_tokens,
                                      max_new_tokens=fmt.max_target_tokens)
        return cls(model, tokenizer, fmt, generation)

    def pooled(self, examples, pool, k: int, beams=None) -> list[list[Pooled]]:
        """Every example's beams (generated unless given) and adapted exemplars, scored."""
        from distillation.retrieval import InProjectRetrieval
        from distillation.sources import example_sources
        from pytest_kdassert.core.generate import generate_candidates, score_targets

        sources = example_sources(examples, self.fmt, pool if self.fmt.version >= 2 else None)
        if beams is None:
            beams = generate_candidates(self.model, self.tokenizer, sources, self.generation)
        exemplars = InProjectRetrieval(pool, k).predict(examples, adapt=True)
        pairs = [(source, c.text) for source, cands in zip(sources, exemplars, strict=True)
                 for c in cands]
        flat = iter(score_targets(self.model, self.tokenizer, pairs, self.generation))
        return [pool_candidates(b, e, [next(flat) for _ in e])
                for b, e in zip(beams, exemplars, strict=True)]


def system_rows(config, rows, examples) -> list:
    """A ``system (<model>)`` row per model row: its beams and exemplars under fitted weights."""
    import time

    from distillation.bench import Row, resolve_device
    from pytest_kdassert.core.records import load_examples

    pool = load_examples(config.exemplar_pool or config.data)
    valid = load_examples(config.system_valid, config.system_valid_limit)
    valid_pool = load_examples(config.system_valid)
    out = []
    for row in rows:
        if row.kind != "model":
            continue
        start = time.perf_counter()
        scorer = _Scorer.load(row.path, config.beams, config.batch_size,
                              resolve_device(config.device))
        weights, valid_exact = fit_weights(scorer.pooled(valid, valid_pool, config.beams),
                                           [e.assertion for e in valid])
        pooled = scorer.pooled(examples, pool, config.beams, beams=row.candidates)
        candidates = [rank(items, weights) for items in pooled]
        speed = {"seconds": time.perf_counter() - start, "ranker": {
            "similarity": weights.similarity, "exemplar": weights.exemplar,
            "fitted_on": config.system_valid, "fitted_examples": len(valid),
            "valid_exact_match": valid_exact}}
        out.append(Row(f"system ({row.name})", "system", candidates, path=row.path, size=row.size,
                       speed=speed))
    return out
