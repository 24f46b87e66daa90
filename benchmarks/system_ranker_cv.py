"""Issue 15, system row: does the ranker generalise to projects it was not fitted on?

On a validation file (exemplars searched in the same file, as ``kdassert bench`` does), each
project with at least ``--min-examples`` examples is held out in turn: the ranker of
:mod:`distillation.system` is fitted on the other projects and scored on it, next to the
adapted top exemplar (the "in-project retrieval, adapted" row). Then one fit on all of it.

    python benchmarks/system_ranker_cv.py --data data/corpus/valid.jsonl \\
        --out benchmarks/system_ranker_cv_results.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from distillation import metrics as m
from distillation.system import EXEMPLARS, L2, fit_ranker, ranked_candidates, site_candidates
from pytest_kdassert.core.ranking import FEATURES
from pytest_kdassert.core.records import load_examples


def top_scores(candidates, references, weights) -> dict:
    """Strict and lenient exact match of the top candidate under ``weights``."""
    tops = [(ranked_candidates(c, weights)[0].text if c else "") for c in candidates]
    n = max(len(references), 1)
    return {"exact_match": sum(map(m.exact_match, tops, references)) / n,
            "lenient_match": sum(map(m.lenient_match, tops, references)) / n}


def adapted_top(candidates) -> list[list]:
    """Only the top exemplar's adapted text: the adapted in-project baseline."""
    top = FEATURES.index("top")
    return [[c for c in items if c.features[top] == 1.0][:1] for items in candidates]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="data/corpus/valid.jsonl")
    parser.add_argument("--min-examples", type=int, default=50)
    parser.add_argument("--out", default=None, help="JSON results (default: print only).")
    args = parser.parse_args()
    examples = load_examples(args.data)
    candidates = site_candidates(examples, examples)
    references = [e.assertion for e in examples]
    projects = sorted({e.project for e in examples})
    held_out = {}
    for project in projects:
        test = [i for i, e in enumerate(examples) if e.project == project]
        if len(test) < args.min_examples:
            continue
        train = [i for i, e in enumerate(examples) if e.project != project]
        fit = fit_ranker([candidates[i] for i in train], [references[i] for i in train])
        held = [candidates[i] for i in test]
        refs = [references[i] for i in test]
        held_out[project] = {"examples": len(test),
                             "system": top_scores(held, refs, fit.weights),
                             "adapted_top_exemplar": top_scores(adapted_top(held), refs, {})}
        print(project, json.dumps(held_out[project]))
    fit = fit_ranker(candidates, references)
    result = {"data": args.data, "exemplars": EXEMPLARS, "l2": L2, "held_out": held_out,
              "mean_held_out_exact": sum(r["system"]["exact_match"] for r in held_out.values())
              / max(len(held_out), 1),
              "mean_held_out_adapted_exact": sum(r["adapted_top_exemplar"]["exact_match"]
                                                 for r in held_out.values()) / max(len(held_out), 1),
              "all": {"examples": len(examples), "oracle": fit.oracle,
                      "system_in_sample": top_scores(candidates, references, fit.weights),
                      "adapted_top_exemplar": top_scores(adapted_top(candidates), references, {}),
                      "weights": fit.weights}}
    print(json.dumps({k: v for k, v in result.items() if k != "held_out"}, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
