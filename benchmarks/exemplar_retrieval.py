"""Issue 15, item 1: the exemplar retriever indexes 10k assertions in < 2 s and answers a
query in < 2 ms; and how good each similarity is as the in-project retrieval baseline.

Timing: the ``--size`` entries of the largest projects of ``--pool`` (mined projects hold at
most 5,000 examples, so 10k spans two) go into one index; ``--queries`` of them, drawn at
random, are asked for their top ``--k`` exemplars (their own test excluded, as always).
Wall and CPU (thread) time per query are both reported: on a shared machine the wall p95
counts time slices lost to other processes.

Quality (``--quality FILE``): the in-project baseline of ``kdassert bench --in-project`` for
each similarity, raw and names adapted, on FILE, searching ``--quality-pool`` (default FILE).

    python benchmarks/exemplar_retrieval.py --pool data/corpus/train.jsonl \\
        --quality data/corpus-32k/test.jsonl --quality-pool data/corpus/test.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from pathlib import Path

from distillation import metrics as m
from distillation.retrieval import InProjectRetrieval
from pytest_kdassert.core.exemplars import (
    ExemplarConfig,
    ExemplarIndex,
    Similarity,
    example_entry,
    example_site,
)
from pytest_kdassert.core.records import load_examples


def largest_projects(examples, size: int) -> list:
    """The examples of the largest projects, whole projects first, cut at ``size``."""
    counts = Counter(e.project for e in examples)
    order = {project: rank for rank, (project, _) in enumerate(counts.most_common())}
    return sorted(examples, key=lambda e: order[e.project])[:size]


def time_queries(pool, similarity: str, k: int, queries: int, seed: int) -> dict:
    entries = [example_entry(e) for e in pool]
    start = time.perf_counter()
    index = ExemplarIndex(entries, ExemplarConfig(k=k, similarity=similarity))
    index_seconds = time.perf_counter() - start
    sites = [example_site(e) for e in random.Random(seed).sample(pool, min(queries, len(pool)))]
    walls, cpus = [], []
    for site in sites:
        wall, cpu = time.perf_counter(), time.thread_time()
        index.query(site)
        cpus.append((time.thread_time() - cpu) * 1000)
        walls.append((time.perf_counter() - wall) * 1000)
    return {"similarity": similarity, "entries": len(index), "projects": sorted({e.project for e in pool}),
            "index_seconds": index_seconds, "queries": len(sites),
            "wall_p50_ms": m.percentile(walls, 50), "wall_p95_ms": m.percentile(walls, 95),
            "cpu_p50_ms": m.percentile(cpus, 50), "cpu_p95_ms": m.percentile(cpus, 95)}


def quality(examples, pool, similarity: str, adapt: bool, k: int = 5) -> dict:
    candidates = InProjectRetrieval(pool, k, ExemplarConfig(similarity=similarity)).predict(examples, adapt)
    n = len(examples)

    def share(hit) -> float:
        return sum(bool(cands) and hit(cands, e.assertion) for cands, e in zip(candidates, examples, strict=True)) / n

    return {"similarity": similarity, "adapted": adapt, "examples": n, "pool": len(pool),
            "exact_match": share(lambda c, ref: m.exact_match(c[0].text, ref)),
            "lenient_match": share(lambda c, ref: m.lenient_match(c[0].text, ref)),
            "top3_exact_match": share(lambda c, ref: m.top_k_exact([x.text for x in c], ref, 3)),
            "top5_exact_match": share(lambda c, ref: m.top_k_exact([x.text for x in c], ref, 5))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", required=True, help="Mined JSONL to time on (e.g. data/corpus/train.jsonl).")
    parser.add_argument("--size", type=int, default=10_000, help="Entries in the timed index.")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quality", help="Mined JSONL to score the in-project baseline on.")
    parser.add_argument("--quality-pool", help="JSONL searched for --quality (default: --quality).")
    parser.add_argument("--out", default=str(Path(__file__).with_name("exemplar_retrieval_results.json")))
    args = parser.parse_args()
    pool = largest_projects(load_examples(args.pool), args.size)
    results = {"timing": [time_queries(pool, s.value, args.k, args.queries, args.seed) for s in Similarity]}
    for row in results["timing"]:
        print(f"{row['similarity']:8} index {row['entries']:,} entries ({', '.join(row['projects'])}): "
              f"{row['index_seconds']:.2f} s; query wall p50 {row['wall_p50_ms']:.2f} ms, "
              f"p95 {row['wall_p95_ms']:.2f} ms; CPU p50 {row['cpu_p50_ms']:.2f} ms, p95 {row['cpu_p95_ms']:.2f} ms")
    if args.quality:
        examples = load_examples(args.quality)
        quality_pool = load_examples(args.quality_pool) if args.quality_pool else examples
        results["quality"] = [quality(examples, quality_pool, s.value, adapt)
                              for s in Similarity for adapt in (False, True)]
        for row in results["quality"]:
            print(f"{row['similarity']:8} {'adapted' if row['adapted'] else 'raw':8} strict "
                  f"{row['exact_match']:.2%} lenient {row['lenient_match']:.2%} top-3 "
                  f"{row['top3_exact_match']:.2%} top-5 {row['top5_exact_match']:.2%}")
    results["args"] = vars(args)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
