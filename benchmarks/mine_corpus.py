"""Mining throughput and corpus size on this machine.

    python benchmarks/mine_corpus.py [--corpus default] [--out /tmp/kdassert-corpus] [--workers 2]
        [--json report.json]

Fetches the corpus first (downloads are cached and not timed), then times the mining itself
(discovery, parsing, focal resolution, splits, writing). Targets: the default corpus mines in
under 10 minutes on 2 cores, and yields at least 100k training examples.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

from distillation.mining.mine import MineConfig, fetch_all, mine, resolve_specs

TARGET_SECONDS = 600
TARGET_TRAIN = 100_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="default")
    parser.add_argument("--out", default="/tmp/kdassert-corpus")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache-dir", default="~/.cache/kdassert/sources")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    config = MineConfig(out_dir=args.out, corpus=args.corpus, workers=args.workers,
                        cache_dir=args.cache_dir)
    fetch_all(resolve_specs(config), config.cache_dir)  # warm the cache: not timed
    started = time.perf_counter()
    stats = mine(config)
    seconds = time.perf_counter() - started
    report = {
        "config": asdict(config),
        "wall_seconds": round(seconds, 1),
        "projects": stats["num_projects"],
        "split_sizes": stats["split_sizes"],
        "focal_found_rate": stats["focal_found_rate"],
        "skipped_files": stats["skipped_files"],
        "targets": {
            "under_10_minutes": seconds < TARGET_SECONDS,
            "train_at_least_100k": stats["split_sizes"].get("train", 0) >= TARGET_TRAIN,
        },
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
