"""The *system* row of ``kdassert bench``: a site's in-project candidates, ranked by a fitted model.

A site's candidates are its top :data:`EXEMPLARS` exemplars adapted to its test, their raw
texts, and the assertions already in its own test; :mod:`pytest_kdassert.core.ranking`
computes their features (the same code the plugin can call) and scores them with a linear
model. This module fits that model and builds the bench row.

The model is a *conditional logit*: for a site with candidates ``c`` and features ``x_c``,

    p(c | site) = exp(w . x_c) / sum_c' exp(w . x_c')

fitted by maximising the mean over validation sites of ``log sum_{c correct} p(c | site)``
(a candidate is correct when it exactly matches the reference, :func:`metrics.exact_match`)
minus ``l2 * |w|^2``. Sites without a correct candidate carry no signal and are left out.
The weights are fitted on a *validation* file only (exemplars from that file itself, as
the bench searches the test split for test examples) and applied unchanged to the scored
data. No model is needed: the bundled model's beams are almost never right on held-out
projects (0.0% strict on the test sample), and its mean log-probability of each candidate as
one more feature did not pay: 18.2% vs 18.0% strict, mean over four validation projects each
held out of the fit (200 examples each), for 0.34 s of scoring per example on one thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from distillation import metrics as m
from pytest_kdassert.core.errors import ConfigError
from pytest_kdassert.core.exemplars import ExemplarConfig, example_site, project_indexes
from pytest_kdassert.core.generate import Candidate
from pytest_kdassert.core.ranking import FEATURES, PoolStats, Ranked, candidate_features, rank
from pytest_kdassert.core.records import Example

logger = logging.getLogger(__name__)

EXEMPLARS = 10
"""Exemplars per site whose adapted (and raw) texts become candidates."""
L2 = 1e-3
"""L2 penalty of the fit (on weights of features of order 1)."""
ROW_NAME = "system (ranker)"


@dataclass(frozen=True)
class FitResult:
    """Fitted weights and what they were fitted on."""

    weights: dict[str, float]
    sites: int
    """Validation sites in the fit (those with at least one correct candidate)."""
    exact_match: float
    """Strict exact match of the fitted ranker's top-1 on all validation examples."""
    oracle: float
    """Share of validation examples with a correct candidate (the ceiling of any ranker)."""


def site_candidates(examples: Sequence[Example], pool: Sequence[Example],
                    k: int = EXEMPLARS) -> list[list[Ranked]]:
    """Every example's candidates with features; exemplars come from its project in ``pool``."""
    indexes = project_indexes(pool, ExemplarConfig(k=k))
    stats = {project: PoolStats.from_entries(index.entries) for project, index in indexes.items()}
    out = []
    for example in examples:
        index = indexes.get(example.project)
        site = example_site(example)
        found = index.query(site) if index is not None else []
        out.append(candidate_features(site, example.focal_source, found, stats.get(example.project)))
    return out


def fit_ranker(candidates: Sequence[Sequence[Ranked]], references: Sequence[str],
               l2: float = L2, names: Sequence[str] = FEATURES) -> FitResult:
    """The conditional logit of the module docstring, fitted with L-BFGS (see :class:`FitResult`).
    ``names``: the features of the candidates, in order (more than :data:`FEATURES` when a
    caller appends its own, e.g. a model's score)."""
    import torch

    if len(candidates) != len(references) or not references:
        raise ConfigError("fit_ranker needs one candidate list per reference, and some references")
    if l2 < 0:
        raise ConfigError(f"l2 must be >= 0, got {l2}")
    labels = [[m.exact_match(c.text, ref) for c in items]
              for items, ref in zip(candidates, references, strict=True)]
    used = [i for i, y in enumerate(labels) if any(y)]
    weights = dict.fromkeys(names, 0.0)
    if used:
        x = torch.tensor([c.features for i in used for c in candidates[i]], dtype=torch.float64)
        y = torch.tensor([v for i in used for v in labels[i]], dtype=torch.float64)
        site = torch.tensor([n for n, i in enumerate(used) for _ in candidates[i]])
        w = _lbfgs(x, y, site, len(used), l2)
        weights = dict(zip(names, (round(float(v), 4) for v in w), strict=True))
    hits = sum(labels[i][top_index(items, weights, names)] for i, items in enumerate(candidates) if items)
    return FitResult(weights, len(used), hits / len(references),
                     sum(any(y) for y in labels) / len(references))


def linear_scores(items: Sequence[Ranked], weights: Mapping[str, float],
                  names: Sequence[str] = FEATURES) -> list[float]:
    """Each item's weighted feature sum (missing weights count 0)."""
    return [sum(weights.get(n, 0.0) * v for n, v in zip(names, item.features, strict=True))
            for item in items]


def top_index(items: Sequence[Ranked], weights: Mapping[str, float],
              names: Sequence[str] = FEATURES) -> int:
    """Index in ``items`` of the best candidate under ``weights`` (the first on ties, as
    :func:`~pytest_kdassert.core.ranking.rank`)."""
    scores = linear_scores(items, weights, names)
    return max(range(len(items)), key=lambda i: (scores[i], -i))


def _lbfgs(x, y, site, sites: int, l2: float):
    """Weights maximising the mean log-probability of the correct candidates (shapes: x
    [candidates, features], y [candidates] 0/1, site [candidates] site index)."""
    import torch

    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w], max_iter=500, tolerance_grad=1e-9,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        logits = x @ w
        shift = torch.zeros(sites, dtype=x.dtype).scatter_reduce(0, site, logits, "amax",
                                                                 include_self=False)
        e = torch.exp(logits - shift[site])
        total = torch.zeros(sites, dtype=x.dtype).index_add_(0, site, e)
        right = torch.zeros(sites, dtype=x.dtype).index_add_(0, site, e * y)
        loss = -(right.log() - total.log()).mean() + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return w.detach()


def ranked_candidates(items: Sequence[Ranked], weights: Mapping[str, float],
                      names: Sequence[str] = FEATURES) -> list[Candidate]:
    """A site's candidates best first, as the bench scores them."""
    if tuple(names) == FEATURES:
        return [Candidate(r.text, r.score, i) for i, r in enumerate(rank(items, weights))]
    scores = linear_scores(items, weights, names)
    order = sorted(range(len(items)), key=lambda i: -scores[i])  # stable: earlier wins ties
    return [Candidate(items[i].text, scores[i], rank_) for rank_, i in enumerate(order)]


def system_rows(config, examples: Sequence[Example]) -> list:
    """The ``system (ranker)`` row: weights fitted on ``config.system_valid``, then applied."""
    from distillation.bench import Row
    from pytest_kdassert.core.records import load_examples

    start = time.perf_counter()
    valid_pool = load_examples(config.system_valid)
    valid = valid_pool[: config.system_valid_limit] if config.system_valid_limit else valid_pool
    fit = fit_ranker(site_candidates(valid, valid_pool), [e.assertion for e in valid])
    fit_seconds = time.perf_counter() - start
    logger.info("system ranker: valid exact %.3f (oracle %.3f) on %d examples", fit.exact_match,
                fit.oracle, len(valid))
    start = time.perf_counter()
    pool = load_examples(config.exemplar_pool or config.data)
    candidates = [ranked_candidates(items, fit.weights) for items in site_candidates(examples, pool)]
    seconds = time.perf_counter() - start
    speed = {"device": "cpu", "seconds": seconds, "throughput_eps": len(examples) / seconds,
             "fit_seconds": fit_seconds,
             "ranker": {"weights": fit.weights, "exemplars": EXEMPLARS, "l2": L2,
                        "fitted_on": config.system_valid, "fitted_examples": len(valid),
                        "fitted_sites": fit.sites, "valid_exact_match": fit.exact_match,
                        "valid_oracle": fit.oracle}}
    size = {"parameters": len(FEATURES), "disk_bytes": None}
    return [Row(ROW_NAME, "system", candidates, path=config.exemplar_pool or config.data,
                size=size, speed=speed)]
