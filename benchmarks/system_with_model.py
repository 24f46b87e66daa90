"""Issue 15, the system row with a model: in-project candidates *and* the model's beams, ranked
by one fitted ranker that adds the model's score to the retrieval features.

    python benchmarks/system_with_model.py --model runs/cpu-v2/students/<name>/final \\
        [--valid data/corpus/valid.jsonl --valid-limit 800] \\
        [--test data/corpus-32k/test.jsonl --test-pool data/corpus/test.jsonl --test-limit 2000] \\
        [--threads 2] [--out benchmarks/system_with_model_results.json]

For every example (``--valid-limit`` spread evenly over the project-grouped validation file, and
the first ``--test-limit`` of the test sample) a site's candidates are those of the bench's
``system (ranker)`` row (:func:`distillation.system.site_candidates`: adapted and raw exemplars,
the test's own assertions) plus the model's beams (beam 5, format-v2 input with exemplars from
the same pool). Each candidate gets, beyond the ranking features, the model's mean per-token
log-probability of it (``model_logprob``, teacher-forced), and whether it is one of the beams
(``beam``) or the top beam (``top_beam``). Two conditional-logit rankers are fitted on the
validation examples only: one on the retrieval features alone (the bench's system row, without
the beams) and one on all features with the beams among the candidates. Printed and written for
the test examples: strict and lenient exact match of the model's top beam, the adapted top
exemplar, both rankers and the oracle (any candidate right), with an exact McNemar test of the
two rankers, and the fitted weights of the model features.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from distillation import metrics as m
from distillation.sources import example_sources
from distillation.system import EXEMPLARS, fit_ranker, ranked_candidates
from pytest_kdassert.core.exemplars import ExemplarConfig, example_site, project_indexes
from pytest_kdassert.core.generate import GenerationConfig, generate_candidates, score_targets
from pytest_kdassert.core.loading import load_format_config, load_seq2seq
from pytest_kdassert.core.ranking import FEATURES, PoolStats, Ranked, candidate_features
from pytest_kdassert.core.records import load_examples

MODEL_FEATURES = ("model_logprob", "beam", "top_beam")
NAMES = FEATURES + MODEL_FEATURES


def evenly(examples: list, n: int | None) -> list:
    """``n`` examples spread evenly over the file (which is grouped by project)."""
    if n is None or n >= len(examples):
        return examples
    return [examples[i * len(examples) // n] for i in range(n)]


def sites(model, tokenizer, fmt, examples, pool, beams: int) -> list[dict]:
    """Per example: its reference, the model's beams, and its candidates with every feature."""
    generation = GenerationConfig(num_beams=beams, max_source_tokens=fmt.max_source_tokens,
                                  max_new_tokens=fmt.max_target_tokens)
    sources = example_sources(examples, fmt, pool)
    started = time.perf_counter()
    generated = generate_candidates(model, tokenizer, sources, generation)
    beam_seconds = time.perf_counter() - started
    indexes = project_indexes(pool, ExemplarConfig(k=EXEMPLARS))
    stats = {project: PoolStats.from_entries(index.entries) for project, index in indexes.items()}
    out, score_seconds = [], 0.0
    for example, source, cands in zip(examples, sources, generated, strict=True):
        index = indexes.get(example.project)
        site = example_site(example)
        found = index.query(site) if index is not None else []
        beam_texts = [c.text for c in cands]
        items = candidate_features(site, example.focal_source, found, stats.get(example.project),
                                   extra=beam_texts)
        started = time.perf_counter()
        logprobs = score_targets(model, tokenizer, [(source, item.text) for item in items], generation)
        score_seconds += time.perf_counter() - started
        retrieval_texts = {item.text for item in candidate_features(
            site, example.focal_source, found, stats.get(example.project))}
        out.append({
            "reference": example.assertion, "beams": beam_texts,
            "retrieval": [item for item in items if item.text in retrieval_texts],
            "all": [Ranked(item.text, item.features + (lp, float(item.text in beam_texts),
                                                      float(bool(beam_texts) and item.text == beam_texts[0])))
                    for item, lp in zip(items, logprobs, strict=True)],
        })
    n = max(len(examples), 1)
    print(f"  beams {beam_seconds / n * 1000:.0f} ms/example, candidate scoring "
          f"{score_seconds / n * 1000:.0f} ms/example")
    return out


def top_texts(site_list: list[dict], key: str, weights: dict, names) -> list[str]:
    return [(ranked_candidates(s[key], weights, names)[0].text if s[key] else "") for s in site_list]


def rates(predictions: list[str], references: list[str]) -> dict:
    n = max(len(references), 1)
    strict = [m.exact_match(p, r) for p, r in zip(predictions, references, strict=True)]
    lenient = [m.lenient_match(p, r) for p, r in zip(predictions, references, strict=True)]
    return {"exact_match": sum(strict) / n, "lenient_match": sum(lenient) / n, "_strict": strict}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--valid", default="data/corpus/valid.jsonl")
    parser.add_argument("--valid-limit", type=int, default=800)
    parser.add_argument("--test", default="data/corpus-32k/test.jsonl")
    parser.add_argument("--test-pool", default="data/corpus/test.jsonl")
    parser.add_argument("--test-limit", type=int, default=2000)
    parser.add_argument("--beams", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="JSON results (default: print only)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model, tokenizer = load_seq2seq(args.model)
    fmt = load_format_config(args.model)
    valid_pool = load_examples(args.valid)
    valid = evenly(valid_pool, args.valid_limit)
    test = load_examples(args.test, limit=args.test_limit)
    test_pool = load_examples(args.test_pool)
    print(f"validation: {len(valid)} examples")
    valid_sites = sites(model, tokenizer, fmt, valid, valid_pool, args.beams)
    print(f"test: {len(test)} examples")
    test_sites = sites(model, tokenizer, fmt, test, test_pool, args.beams)

    valid_refs = [s["reference"] for s in valid_sites]
    retrieval_fit = fit_ranker([s["retrieval"] for s in valid_sites], valid_refs, names=FEATURES)
    combined_fit = fit_ranker([s["all"] for s in valid_sites], valid_refs, names=NAMES)
    refs = [s["reference"] for s in test_sites]
    rows = {
        "model alone (top beam)": rates([s["beams"][0] if s["beams"] else "" for s in test_sites], refs),
        "system, retrieval only": rates(top_texts(test_sites, "retrieval", retrieval_fit.weights, FEATURES), refs),
        "system, retrieval + model": rates(top_texts(test_sites, "all", combined_fit.weights, NAMES), refs),
    }
    oracle = [any(m.exact_match(c.text, r) for c in s["all"]) for s, r in zip(test_sites, refs, strict=True)]
    p_value = m.mcnemar_exact(rows["system, retrieval + model"]["_strict"],
                              rows["system, retrieval only"]["_strict"])
    print(f"\n{len(test)} test examples, rankers fitted on {len(valid)} validation examples")
    print("| row | strict | lenient |\n|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['exact_match']:.1%} | {row['lenient_match']:.1%} |")
    print(f"| oracle (a candidate is right) | {sum(oracle) / len(refs):.1%} | |")
    print(f"retrieval + model vs retrieval only: exact McNemar p = {p_value:.3g}")
    print("model feature weights:", {k: combined_fit.weights[k] for k in MODEL_FEATURES})
    if args.out:
        result = {"model": args.model, "valid": args.valid, "valid_examples": len(valid),
                  "test": args.test, "test_pool": args.test_pool, "test_examples": len(test),
                  "beams": args.beams,
                  "rows": {k: {x: v for x, v in r.items() if not x.startswith("_")} for k, r in rows.items()},
                  "oracle": sum(oracle) / len(refs), "mcnemar_p": p_value,
                  "weights": {"retrieval": retrieval_fit.weights, "combined": combined_fit.weights}}
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
