"""``kdassert bench``: quality, size and speed of models and baselines, side by side.

A *predictor* is anything with ``name`` and ``predict(sources) -> list[list[Candidate]]``:
a Hugging Face model (:class:`Seq2SeqPredictor`), the retrieval baseline, or a test double.
:func:`score_predictions` turns predictions into metrics without knowing which it was.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from distillation import metrics as m
from distillation.bench_speed import cpu_latency, measure_latency, measure_rss
from distillation.progress import progress
from pytest_kdassert.core.atomic import atomic_write, write_text_atomic
from pytest_kdassert.core.errors import ConfigError, DataError
from pytest_kdassert.core.generate import Candidate, GenerationConfig, generate_candidates
from pytest_kdassert.core.records import Example, load_examples

logger = logging.getLogger(__name__)

METRIC_KEYS = ("exact_match", "lenient_match", "top_k_exact_match", "token_precision",
               "token_recall", "token_f1", "char_similarity", "bleu4_corpus", "bleu4_sentence",
               "parse_rate", "agreement_with_teacher")


@dataclass(frozen=True)
class BenchConfig:
    """Settings of ``kdassert bench``; written into every report."""

    data: str
    """Examples to score (mining-schema JSONL)."""
    models: tuple[str, ...] = ()
    """Model directories, ``NAME=DIR`` for a row label, or ``default`` for the bundled student."""
    teacher: str | None = None
    """Teacher directory: adds a "teacher" row and each row's top-1 agreement with it."""
    train: str | None = None
    """Training split (JSONL): adds the "retrieval" baseline row, which searches it."""
    out: str | None = "bench.json"
    """JSON report path; predictions go beside it as ``<stem>.predictions.jsonl``. None: no files."""
    limit: int | None = None
    """Score only the first N examples."""
    beams: int = 5
    """Beam width of the quality pass; top-k exact match uses all ``beams`` candidates."""
    batch_size: int = 16
    """Batch size of the quality pass (throughput is measured on it)."""
    latency_examples: int = 50
    """Examples timed one by one (greedy, batch 1, one CPU thread); 0 skips latency."""
    memory: bool = True
    """Measure each model's peak RSS in a fresh subprocess."""
    device: str = "auto"
    """Device of the quality pass: cpu, cuda or auto."""
    threads: int | None = None
    """CPU threads of the quality pass (torch's default when None); latency always uses one."""
    in_project: bool = False
    """Add the in-project retrieval rows (raw and names adapted): the assertions of the most
    similar other tests of the same project, searched in ``exemplar_pool``."""
    exemplar_pool: str | None = None
    """JSONL whose tests give exemplars (other tests of the same project) to format-v2 models
    and the in-project rows; default ``data``. Scoring a sample, pass the split it was drawn
    from, so each example sees its project's full set of tests."""
    system_valid: str | None = None
    """Validation JSONL: adds the ``system (ranker)`` row (in-project candidates under a ranker
    whose weights are fitted on this file only, exemplars from it too; see distillation.system)."""
    system_valid_limit: int | None = None
    """Validation examples the system ranker is fitted on (the first N; None: all)."""
    add_to: str | None = None
    """A previous report on the same examples: its rows are kept (read back from its
    predictions file, rescored) and this run's rows join them, replacing any of the same
    name. A model trained later joins a table without running the others again, and its
    agreement is with the kept teacher row."""

    def __post_init__(self):
        if self.beams < 1 or self.batch_size < 1:
            raise ConfigError(f"beams and batch_size must be >= 1, got {self.beams}, {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1, got {self.limit}")
        if self.latency_examples < 0:
            raise ConfigError(f"latency_examples must be >= 0, got {self.latency_examples}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be cpu, cuda or auto, got {self.device!r}")
        if not self.models and self.teacher is None and self.train is None and not self.in_project:
            raise ConfigError("Nothing to benchmark: give --model, --teacher, --train or --in-project.")
        if self.add_to is not None and not Path(self.add_to).is_file():
            raise ConfigError(f"--add-to {self.add_to}: no such report.")
        if self.system_valid is not None and not self.in_project:
            raise ConfigError("--system-valid ranks in-project candidates: add --in-project.")
        if self.system_valid_limit is not None and self.system_valid_limit < 1:
            raise ConfigError(f"system_valid_limit must be >= 1, got {self.system_valid_limit}")
        labels = [label for label, _ in model_rows(self)]
        duplicates = sorted({x for x in labels if labels.count(x) > 1})
        if duplicates:
            raise ConfigError(f"Two rows are named {duplicates}; label them with --model NAME=DIR.")


def parse_model_spec(spec: str) -> tuple[str, str]:
    """``NAME=DIR`` -> (NAME, DIR), split at the last ``=`` (so "student a=0=runs/x" works).

    An existing path or ``default`` is taken whole and labelled by its run's name.
    """
    name, sep, path = spec.rpartition("=")
    if spec == "default":
        return "default", spec
    if sep and name.strip() and path and not Path(spec).exists():
        return name.strip(), path
    path = Path(spec)
    return (path.parent.name if path.name == "final" and path.parent.name else path.name), spec


def model_rows(config: BenchConfig) -> list[tuple[str, str]]:
    """(label, model spec) of every neural row, the teacher first."""
    rows = [("teacher", config.teacher)] if config.teacher else []
    return rows + [parse_model_spec(s) for s in config.models]


class Seq2SeqPredictor:
    """A loaded Hugging Face seq2seq model behind the predictor interface."""

    def __init__(self, name: str, model, tokenizer, generation: GenerationConfig, progress=None):
        self.name, self.model, self.tokenizer = name, model, tokenizer
        self.generation, self.progress = generation, progress

    def predict(self, sources: Sequence[str]) -> list[list[Candidate]]:
        return generate_candidates(self.model, self.tokenizer, sources, self.generation, self.progress)


def score_predictions(references: Sequence[str], candidates: Sequence[Sequence[Candidate]],
                      k: int, teacher_top1: Sequence[str] | None = None) -> tuple[dict, list[dict]]:
    """Aggregate metrics (means over examples) and one row of per-example scores each."""
    if len(references) != len(candidates):
        raise ConfigError(f"{len(candidates)} predictions for {len(references)} references")
    rows = []
    for i, (ref, cands) in enumerate(zip(references, candidates, strict=True)):
        top1 = cands[0].text if cands else ""
        p, r, f = m.token_prf(top1, ref)
        rows.append({
            "prediction": top1, "exact_match": m.exact_match(top1, ref),
            "lenient_match": m.lenient_match(top1, ref),
            "top_k_exact_match": m.top_k_exact([c.text for c in cands], ref, k),
            "token_precision": p, "token_recall": r, "token_f1": f,
            "char_similarity": m.char_similarity(top1, ref),
            "bleu4_sentence": m.sentence_bleu(top1, ref), "parses": m.parses(top1),
            "agrees_with_teacher": None if teacher_top1 is None else agrees(top1, teacher_top1[i]),
        })
    n = max(len(rows), 1)

    def mean(key):
        return sum(float(row[key]) for row in rows) / n

    summary = {key: mean(key) for key in METRIC_KEYS[:7]}
    summary["bleu4_corpus"] = m.corpus_bleu([row["prediction"] for row in rows], references)
    summary["bleu4_sentence"] = mean("bleu4_sentence")
    summary["parse_rate"] = mean("parses")
    summary["agreement_with_teacher"] = None if teacher_top1 is None else mean("agrees_with_teacher")
    return summary, rows


def agrees(prediction: str, teacher: str) -> bool:
    """Same AST as the teacher's top-1, or the very same text when neither parses."""
    return m.exact_match(prediction, teacher) or (
        prediction.strip() == teacher.strip() and not m.parses(teacher))


@dataclass(eq=False)
class Row:
    """One line of the report: a model or baseline with its predictions and measurements."""

    name: str
    kind: str
    candidates: list[list[Candidate]]
    path: str | None = None
    size: dict = field(default_factory=dict)
    speed: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    per_example: list = field(default_factory=list)


def warn_if_few_projects(config: BenchConfig, kept: list) -> None:
    """``--limit`` keeps a file's first examples, and mined files are grouped by project: a
    limit can silently turn a benchmark of 15 projects into one of 2. Say so."""
    from pytest_kdassert.core.records import read_examples

    kept_projects = {e.project for e in kept}
    all_projects = {e.project for e in read_examples(config.data)}
    if len(kept_projects) < len(all_projects):
        logger.warning("--limit %d keeps the first %d examples of %s: %d of its %d projects. For a "
                       "sample of every project: kdassert sample DATA_DIR -o OUT --test N.",
                       config.limit, len(kept), config.data, len(kept_projects), len(all_projects))


def run_bench(config: BenchConfig) -> dict:
    """Benchmark every row of ``config``; writes the report and predictions unless ``out`` is None."""
    import torch

    examples = load_examples(config.data, config.limit)
    if not examples:
        raise DataError(f"{config.data} holds no examples to benchmark.")
    if config.limit is not None:
        warn_if_few_projects(config, examples)
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        rows = [model_row(config, label, spec, examples) for label, spec in model_rows(config)]
    finally:
        torch.set_num_threads(threads)
    if config.train:
        rows.append(retrieval_row(config, examples))
    if config.in_project:
        rows.extend(in_project_rows(config, examples))
    if config.system_valid:
        from distillation.system import system_rows

        rows.extend(system_rows(config, examples))
    if config.add_to:
        rows = merge_rows(kept_rows(config, examples), rows)
    report = build_report(config, examples, rows)
    if config.out:
        write_outputs(config, report, examples, rows)
    return report


def build_report(config: BenchConfig, examples: Sequence[Example], rows: list[Row]) -> dict:
    """Score every row and assemble the JSON report."""
    references = [e.assertion for e in examples]
    teacher = next((r for r in rows if r.name == "teacher"), None)
    teacher_top1 = None if teacher is None else [c[0].text if c else "" for c in teacher.candidates]
    for row in rows:
        row.metrics, row.per_example = score_predictions(
            references, row.candidates, config.beams,
            None if row is teacher else teacher_top1)
    return {
        "kdassert_bench": 1, "examples": len(examples), "top_k": config.beams,
        "config": asdict(config), "versions": versions(),
        "rows": [{"name": r.name, "kind": r.kind, "path": r.path, "metrics": r.metrics,
                  "size": r.size, "speed": r.speed} for r in rows],
    }


def versions() -> dict:
    """Versions of everything that changes the numbers."""
    import torch
    import transformers

    from distillation import __version__

    return {"kdassert": __version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version(),
            "cuda": torch.version.cuda if torch.cuda.is_available() else None}


def predictions_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}.predictions.jsonl")


def write_outputs(config: BenchConfig, report: dict, examples, rows: list[Row]) -> None:
    """The JSON report and a per-example predictions JSONL beside it."""
    write_text_atomic(config.out, json.dumps(report, indent=2) + "\n")
    with atomic_write(predictions_path(config.out)) as handle:
        for i, example in enumerate(examples):
            line = {"id": example.id, "reference": example.assertion, "predictions": {
                row.name: {**row.per_example[i], "candidates": [c.text for c in row.candidates[i]]}
                for row in rows}}
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")


def kept_rows(config: BenchConfig, examples: Sequence[Example]) -> list[Row]:
    """The rows of the report ``config.add_to``, from its predictions file (texts only: every
    metric is computed from them), after checking it scored these very examples."""
    report = json.loads(Path(config.add_to).read_text(encoding="utf-8"))
    predictions = predictions_path(config.add_to)
    if not predictions.is_file():
        raise ConfigError(f"--add-to {config.add_to}: its predictions ({predictions}) are missing, "
                          "and the kept rows are rescored from them.")
    lines = predictions.read_text(encoding="utf-8").splitlines()
    try:
        previous = [json.loads(line) for line in lines if line.strip()]
        texts = {row["name"]: [p["predictions"][row["name"]]["candidates"] for p in previous]
                 for row in report["rows"]}
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"--add-to {config.add_to}: its predictions file {predictions} is "
                          f"damaged or from another report ({exc!r}); rerun that bench.") from exc
    if [p["id"] for p in previous] != [e.id for e in examples]:
        raise ConfigError(f"--add-to {config.add_to} scored other examples ({len(previous)}) than "
                          f"--data {config.data} with --limit {config.limit} ({len(examples)}); "
                          "give the same --data and --limit.")
    if report["top_k"] != config.beams:
        raise ConfigError(f"--add-to {config.add_to} used {report['top_k']} beams, this run "
                          f"{config.beams}: top-k exact match would not compare; pass --beams "
                          f"{report['top_k']}.")
    return [Row(row["name"], row["kind"],
                [[Candidate(text, float("nan"), rank) for rank, text in enumerate(cands)]
                 for cands in texts[row["name"]]],
                path=row["path"], size=row["size"], speed=row["speed"])
            for row in report["rows"]]


def merge_rows(kept: list[Row], new: list[Row]) -> list[Row]:
    """``kept`` in order, a new row of the same name in its place, then the other new rows."""
    by_name = {row.name: row for row in new}
    merged = [by_name.pop(row.name, row) for row in kept]
    return merged + [row for row in new if row.name in by_name]


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was given but no CUDA device is available; use cpu or auto.")
    return device


def model_row(config: BenchConfig, label: str, spec: str, examples: Sequence[Example]) -> Row:
    """Load one model, predict every example, and measure its size and speed."""
    import torch

    from distillation.models import count_parameters
    from distillation.sources import example_sources
    from pytest_kdassert.core.loading import load_format_config, load_seq2seq, resolve_model_path

    path = resolve_model_path(spec)
    device = resolve_device(config.device)
    fmt = load_format_config(path)
    pool = load_examples(config.exemplar_pool) if config.exemplar_pool and fmt.version >= 2 else None
    sources = example_sources(examples, fmt, pool)
    model, tokenizer = load_seq2seq(path, device=device)
    generation = GenerationConfig(num_beams=config.beams, batch_size=config.batch_size,
                                  max_source_tokens=fmt.max_source_tokens,
                                  max_new_tokens=fmt.max_target_tokens)
    with progress(len(sources), label, leave=False) as bar:
        predictor = Seq2SeqPredictor(label, model, tokenizer, generation, bar.update)
        start = time.perf_counter()
        candidates = predictor.predict(sources)
        seconds = time.perf_counter() - start
    speed = {"device": device, "seconds": seconds, "throughput_eps": len(sources) / seconds,
             "beams": config.beams, "batch_size": config.batch_size,
             "threads": torch.get_num_threads() if device == "cpu" else None}
    speed.update(_latencies(config, model, tokenizer, generation, sources, device))
    size = {"parameters": count_parameters(model), "disk_bytes": _dir_bytes(Path(path))}
    if config.memory:
        size.update(measure_rss(path, sources[:32], config.beams, config.batch_size))
    logger.info("%s: %d examples in %.1fs", label, len(sources), seconds)
    return Row(label, "model", candidates, path=path, size=size, speed=speed)


def _latencies(config, model, tokenizer, generation, sources, device) -> dict:
    """Greedy batch-1 latency on one CPU thread (and on the GPU when the model is there)."""
    from dataclasses import replace

    if not config.latency_examples:
        return {}
    greedy = replace(generation, num_beams=1, num_return=1, batch_size=1)
    sample = list(sources[: config.latency_examples])
    out = {}
    if device == "cuda":
        out["gpu_latency"] = measure_latency(Seq2SeqPredictor("gpu", model, tokenizer, greedy).predict, sample)
        model = model.to("cpu")
    out["cpu_latency_1thread"] = cpu_latency(Seq2SeqPredictor("cpu", model, tokenizer, greedy).predict, sample)
    return out


def _dir_bytes(path: Path) -> int | None:
    if not path.is_dir():
        return None
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def retrieval_row(config: BenchConfig, examples: Sequence[Example]) -> Row:
    """The IR baseline: nearest training example's assertion (Jaccard over input tokens)."""
    from distillation.retrieval import RetrievalBaseline, RetrievalConfig
    from pytest_kdassert.core.input_format import example_source

    corpus = load_examples(config.train)
    start = time.perf_counter()
    baseline = RetrievalBaseline([example_source(e) for e in corpus], [e.assertion for e in corpus],
                                 RetrievalConfig(num_return=config.beams))
    index_seconds = time.perf_counter() - start
    sources = [example_source(e) for e in examples]
    start = time.perf_counter()
    candidates = baseline.predict(sources)
    seconds = time.perf_counter() - start
    speed = {"device": "cpu", "seconds": seconds, "throughput_eps": len(sources) / seconds,
             "index_seconds": index_seconds}
    if config.latency_examples:
        speed["cpu_latency_1thread"] = measure_latency(baseline.predict, sources[: config.latency_examples])
    size = {"parameters": None, "disk_bytes": Path(config.train).stat().st_size,
            "train_examples": len(corpus)}
    return Row("retrieval", "retrieval", candidates, path=config.train, size=size, speed=speed)


IN_PROJECT_ROWS = ("in-project retrieval", "in-project retrieval, adapted")


def in_project_rows(config: BenchConfig, examples: Sequence[Example]) -> list[Row]:
    """The in-project baselines: the nearest other tests' assertions, raw and names adapted."""
    from distillation.retrieval import InProjectRetrieval

    pool_path = config.exemplar_pool or config.data
    pool = load_examples(pool_path)
    start = time.perf_counter()
    retrieval = InProjectRetrieval(pool, config.beams)
    index_seconds = time.perf_counter() - start
    rows = []
    for name, adapt in zip(IN_PROJECT_ROWS, (False, True), strict=True):
        start = time.perf_counter()
        candidates = retrieval.predict(examples, adapt)
        seconds = time.perf_counter() - start
        speed = {"device": "cpu", "seconds": seconds, "throughput_eps": len(examples) / seconds,
                 "index_seconds": index_seconds}
        if config.latency_examples:
            speed["cpu_latency_1thread"] = measure_latency(
                lambda batch, adapt=adapt: retrieval.predict(batch, adapt), examples[: config.latency_examples])
        size = {"parameters": None, "disk_bytes": Path(pool_path).stat().st_size, "pool_examples": len(pool)}
        rows.append(Row(name, "retrieval", candidates, path=pool_path, size=size, speed=speed))
    return rows


def format_table(report: dict) -> str:
    """A Markdown table with one row per model or baseline."""
    head = ["row", "params", "disk MB", "exact", "lenient", f"top-{report['top_k']}", "tok F1",
            "char sim", "BLEU-4", "parses", "agree T", "p50 ms", "p95 ms", "ex/s", "peak RSS MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["rows"]:
        mt, sz, sp = row["metrics"], row["size"], row["speed"]
        lat = sp.get("cpu_latency_1thread", {})
        cells = [row["name"], _fmt(sz.get("parameters"), "{:,}"), _mb(sz.get("disk_bytes")),
                 *(_fmt(mt.get(k), "{:.3f}") for k in ("exact_match", "lenient_match",
                   "top_k_exact_match", "token_f1", "char_similarity", "bleu4_corpus", "parse_rate",
                   "agreement_with_teacher")),
                 _fmt(lat.get("p50_ms"), "{:.1f}"), _fmt(lat.get("p95_ms"), "{:.1f}"),
                 _fmt(sp.get("throughput_eps"), "{:.1f}"), _mb(sz.get("peak_rss_bytes"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def _mb(value) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"
