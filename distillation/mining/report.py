"""From per-file results to split files and ``stats.json``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from distillation.mining.sources import SourceSpec
from distillation.mining.splits import SPLITS, assign_split, cap_examples, dedupe


def build_outputs(projects: list[tuple[SourceSpec, Path]], results: dict, config) -> tuple:
    """``({file stem: [Example]}, stats)`` for the mined projects, in project order."""
    specs = [spec for spec, _ in projects]
    splits = {s.project: assign_split(s.project, config.valid_fraction, config.test_fraction,
                                      s.split) for s in specs}
    raw = {s.project: [item for _, fr in results[s.project] for item in fr.examples]
           for s in specs}
    kept, duplicates = dedupe(((splits[s.project], raw[s.project]) for s in specs),
                              key=lambda item: item[0])
    final = {s.project: cap_examples(kept[str(i)], config.max_per_project,
                                     key=lambda item: item[0].id)
             for i, s in enumerate(specs)}
    if config.split == "none":
        outputs = {"examples": [ex for s in specs for ex, _ in final[s.project]]}
    else:
        outputs = {name: [ex for s in specs if splits[s.project] == name
                          for ex, _ in final[s.project]] for name in SPLITS}
    stats = _stats(specs, splits, raw, kept, final, results, duplicates, outputs)
    return outputs, stats


def _stats(specs, splits, raw, kept, final, results, duplicates, outputs) -> dict:
    kinds: Counter = Counter()
    skipped: Counter = Counter()
    per_project = {}
    focal_found = total = 0
    for i, spec in enumerate(specs):
        file_results = results[spec.project]
        project_skips = Counter(fr.skipped for _, fr in file_results if fr.skipped)
        skipped.update(project_skips)
        items = final[spec.project]
        kinds.update(kind for _, kind in items)
        found = sum(ex.focal_name is not None for ex, _ in items)
        focal_found += found
        total += len(items)
        per_project[spec.project] = {
            "version": spec.version, "license": spec.license, "dist": spec.dist,
            "split": splits[spec.project], "test_files": len(file_results),
            "tests": sum(fr.tests for _, fr in file_results),
            "raw_examples": len(raw[spec.project]), "after_dedupe": len(kept[str(i)]),
            "examples": len(items), "focal_found": found,
            "skipped_files": dict(sorted(project_skips.items())),
        }
    return {
        "projects": per_project,
        "num_projects": len(specs),
        "examples": total,
        "assertion_kinds": dict(sorted(kinds.items())),
        "skipped_files": dict(sorted(skipped.items())),
        "skipped_assertions": sum(fr.skipped_assertions for rs in results.values()
                                  for _, fr in rs),
        "duplicates_removed": duplicates,
        "capped_removed": sum(len(kept[str(i)]) - len(final[s.project])
                              for i, s in enumerate(specs)),
        "focal_found_rate": round(focal_found / total, 4) if total else 0.0,
        "split_sizes": {name: len(items) for name, items in outputs.items()},
    }
