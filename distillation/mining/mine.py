"""``kdassert mine``: fetch sources, extract examples in parallel, split, write, count."""

from __future__ import annotations

import functools
import json
import logging
import multiprocessing
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from distillation.mining.discover import find_test_files
from distillation.mining.extract import ExtractConfig, FileResult, extract_file
from distillation.mining.sources import (
    DEFAULT_CACHE_DIR,
    SourceSpec,
    fetch,
    parse_spec,
    read_corpus,
)
from distillation.mining.symbols import ProjectIndex
from distillation.progress import progress
from pytest_kdassert.core.atomic import write_text_atomic
from pytest_kdassert.core.errors import ConfigError, DataError, SourceError
from pytest_kdassert.core.records import write_examples

logger = logging.getLogger(__name__)


@dataclass
class MineConfig:
    """Settings of one mining run (written to ``mine_config.json``)."""

    out_dir: str
    """Directory for the JSONL files, stats.json and mine_config.json."""
    sources: list[str] = field(default_factory=list)
    """Directories or ``pypi:NAME==VERSION`` specs."""
    corpus: str | None = None
    """Corpus file with one spec per line (``default`` = the bundled pinned corpus)."""
    cache_dir: str = str(DEFAULT_CACHE_DIR)
    """Where downloads are kept and unpacked."""
    split: str = "project"
    """``project`` (train/valid/test by project) or ``none`` (one examples.jsonl)."""
    max_per_project: int | None = 5000
    """Cap on examples per project after de-duplication (None = no cap)."""
    valid_fraction: float = 0.05
    """Share of projects (by name hash) in the validation split."""
    test_fraction: float = 0.05
    """Share of projects (by name hash) in the test split, besides held-out projects."""
    workers: int = 2
    """Worker processes (1 = in process)."""
    files_per_task: int = 150
    """Test files per unit of work handed to a worker (big projects are spread out)."""
    max_assertions: int = 3
    """Only tests with 1..max_assertions assertions yield examples."""
    max_file_bytes: int = 1_000_000
    """Larger files are skipped as ``too_large``."""
    focal_strategy: str = "dataflow"
    """``dataflow`` or ``last_call`` (the plain last-call baseline, for comparison)."""

    def __post_init__(self):
        if not self.sources and not self.corpus:
            raise ConfigError("nothing to mine: give SOURCE directories/pypi specs or --corpus")
        if self.split not in ("project", "none"):
            raise ConfigError(f"split must be 'project' or 'none', got {self.split!r}")
        if self.max_per_project is not None and self.max_per_project < 1:
            raise ConfigError("max_per_project must be >= 1 (or None for no cap)")
        if not (0 <= self.valid_fraction < 1 and 0 <= self.test_fraction < 1
                and self.valid_fraction + self.test_fraction < 1):
            raise ConfigError("valid_fraction and test_fraction must be in [0, 1) with sum < 1")
        if self.files_per_task < 1:
            raise ConfigError(f"files_per_task must be >= 1, got {self.files_per_task}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.focal_strategy not in ("dataflow", "last_call"):
            raise ConfigError(f"focal_strategy must be dataflow or last_call, "
                              f"got {self.focal_strategy!r}")
        if self.max_assertions < 1:
            raise ConfigError(f"max_assertions must be >= 1, got {self.max_assertions}")


def resolve_specs(config: MineConfig) -> list[SourceSpec]:
    """Specs from the sources and the corpus, in order; a repeated project is an error."""
    specs = [parse_spec(s, where=f"source {s!r}") for s in config.sources]
    if config.corpus:
        specs += read_corpus(config.corpus)
    seen = Counter(s.project for s in specs)
    repeated = sorted(name for name, n in seen.items() if n > 1)
    if repeated:
        raise SourceError(f"project(s) given twice: {', '.join(repeated)}; "
                          "give each once or set project=NAME on a directory source")
    return specs


@functools.lru_cache(maxsize=2)
def _project_index(root: str, max_file_bytes: int) -> ProjectIndex:
    return ProjectIndex(Path(root), max_file_bytes)


def _run_task(task: tuple) -> list[tuple[str, FileResult]]:
    project, root, rels, extract_config = task
    index = _project_index(root, extract_config.max_file_bytes)
    results = []
    for rel in rels:
        try:
            results.append((rel.as_posix(), extract_file(index, project, rel, extract_config)))
        except (RecursionError, MemoryError, ValueError) as exc:
            logger.debug("%s:%s: %s", project, rel, exc)
            results.append((rel.as_posix(), FileResult(skipped="extract_error")))
    return results


def _tasks(projects: list[tuple[SourceSpec, Path]], config: ExtractConfig,
           size: int) -> list[tuple]:
    tasks = []
    for spec, root in projects:
        files = find_test_files(root)
        for start in range(0, len(files), size):
            tasks.append((spec.project, str(root), files[start:start + size], config))
    return tasks


def extract_all(projects: list[tuple[SourceSpec, Path]], config: MineConfig):
    """``{project: [(test_file, FileResult), ...]}`` in project and file order."""
    extract_config = ExtractConfig(max_assertions=config.max_assertions,
                                   max_file_bytes=config.max_file_bytes,
                                   focal_strategy=config.focal_strategy)
    tasks = _tasks(projects, extract_config, config.files_per_task)
    results: dict[str, list] = {spec.project: [] for spec, _ in projects}
    bar = progress(sum(len(t[2]) for t in tasks), "mining", unit="file")
    if config.workers == 1 or len(tasks) <= 1:
        outputs = map(_run_task, tasks)
        pool = None
    else:
        pool = multiprocessing.get_context("spawn").Pool(config.workers)
        outputs = pool.imap(_run_task, tasks, chunksize=1)  # ordered: deterministic output
    try:
        for task, output in zip(tasks, outputs, strict=True):
            results[task[0]].extend(output)
            bar.update(len(task[2]))
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    return results


def fetch_all(specs: list[SourceSpec], cache_dir: str,
              failures: dict[str, str] | None = None) -> list[tuple[SourceSpec, Path]]:
    """Fetch every source (cached); a failing one is logged, recorded in ``failures`` and
    skipped, unless it is the only source."""
    projects = []
    for spec in tqdm(specs, unit="project", desc="fetching", disable=None, file=sys.stderr):
        try:
            projects.append((spec, fetch(spec, cache_dir)))
        except SourceError as exc:
            if len(specs) == 1:
                raise
            logger.warning("skipping %s: %s", spec.project, exc)
            if failures is not None:
                failures[spec.project] = str(exc)
    return projects


def mine(config: MineConfig) -> dict:
    """Run the whole job; returns the statistics also written to ``stats.json``."""
    from distillation.mining.report import build_outputs

    specs = resolve_specs(config)
    started = time.perf_counter()
    failures: dict[str, str] = {}
    projects = fetch_all(specs, config.cache_dir, failures)
    fetched = time.perf_counter()
    results = extract_all(projects, config)
    outputs, stats = build_outputs(projects, results, config)
    if not stats["examples"]:
        raise DataError(_nothing_mined(stats, failures, config))
    out_dir = Path(config.out_dir)
    for name, examples in outputs.items():
        write_examples(out_dir / f"{name}.jsonl", examples)
    stats["failed_sources"] = failures
    stats["seconds"] = {"fetch": round(fetched - started, 2),
                        "mine": round(time.perf_counter() - fetched, 2)}
    write_text_atomic(out_dir / "stats.json", json.dumps(stats, indent=2) + "\n")
    write_text_atomic(out_dir / "mine_config.json", json.dumps(asdict(config), indent=2) + "\n")
    return stats


def _nothing_mined(stats: dict, failures: dict[str, str], config: MineConfig) -> str:
    """The one-line explanation of an empty mining result: what was seen and skipped."""
    files = sum(p["test_files"] for p in stats["projects"].values())
    tests = sum(p["tests"] for p in stats["projects"].values())
    skipped = ", ".join(f"{k} {n}" for k, n in stats["skipped_files"].items()) or "none"
    failed = f"; sources that failed: {', '.join(sorted(failures))}" if failures else ""
    return (f"no examples mined from {stats['num_projects']} project(s): {files} test file(s), "
            f"{tests} test(s), skipped files: {skipped}{failed}. Point at sources with "
            f"pytest/unittest tests that have 1..{config.max_assertions} assertions; nothing "
            f"was written to {config.out_dir}.")
