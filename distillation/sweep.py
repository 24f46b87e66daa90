"""``kdassert sweep``: train and benchmark a grid of students, resumably.

The grid is student preset x teacher signal (``online``, a quantized or a top-k store) x alpha
x temperature; an axis left empty is the base configuration's one value. Training goes through
:func:`distillation.pipeline.run_train`, whose stage cache shares the tokenizer, the teacher and
each logit store across grid points; the stores are filled first, all in one pass of the teacher. Each finished point's benchmark (quality with per-example
correctness, size, latency), its store's size and its training time are written to the results
JSON at once, so an interrupted sweep resumes where it stopped. A point's key is also its
student's run name (``student-topk-k32-int8-a0.5-T2``). Alpha = 0 ignores the temperature and
the teacher signal, so the alpha = 0 points of one student share one training run.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from distillation.models import PRESETS
from distillation.trainer import signal_settings
from pytest_kdassert.core.atomic import write_text_atomic
from pytest_kdassert.core.errors import ConfigError, DataError

if TYPE_CHECKING:
    from distillation.pipeline import TrainConfig, TrainResult

logger = logging.getLogger(__name__)

RESULTS_VERSION = 2
"""2: points keyed by run name, with student, store, signal, train_seconds and correct."""
POINT_AXES = ("alpha", "temperature", "student", "logits_mode", "topk", "topk_dtype", "bits",
              "run_name")
"""Base settings a grid point sets itself (each point records them), so they may differ."""


@dataclass(frozen=True)
class GridPoint:
    """One student to train: preset, teacher signal (a store name or ``online``), alpha, T."""

    student: str
    store: str
    alpha: float
    temperature: float


@dataclass(frozen=True)
class SweepConfig:
    """A student x teacher signal x alpha x temperature grid over one base training configuration."""

    base: TrainConfig
    """The configuration every point starts from; a point sets student, signal, alpha and T."""
    alphas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    temperatures: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    students: tuple[str, ...] = ()
    """Student presets or model directories (default: the base's student)."""
    stores: tuple[str, ...] = ()
    """Teacher signals: ``online``, ``quantized-BITSbit``, ``topk-kK-DTYPE`` (default: the base's)."""
    bench_data: str | None = None
    """Examples each point is scored on (default: test.jsonl, else valid.jsonl of the data dir)."""
    bench_limit: int | None = None
    """Score only the first N examples."""
    bench_exemplar_pool: str | None = None
    """JSONL whose tests give format-v2 exemplars when scoring (default: ``bench_data``): the
    split a sampled ``bench_data`` was drawn from."""
    beams: int = 5
    batch_size: int = 16
    latency_examples: int = 20
    """Examples timed per point (greedy, batch 1, one thread); 0 skips latency."""
    teacher_row: bool = True
    """Benchmark the teacher once, as the plots' reference line."""
    results: str | None = None
    """Results JSON (default: ``<out_dir>/sweep.json``)."""

    def __post_init__(self):
        if not self.alphas or not self.temperatures:
            raise ConfigError("The grid is empty: give at least one --alpha and one --temperature.")
        for student in self.students:
            if student not in PRESETS and not Path(student).is_dir():
                raise ConfigError(f"Unknown student {student!r}: give a preset ({', '.join(PRESETS)}) "
                                  "or a model directory.")
        for point in grid(self):
            train_config = self.train_config(point)  # DistillConfig validates each point
            if train_config.distill.store_name() != point.store:
                raise ConfigError(f"Write the teacher signal {point.store!r} as "
                                  f"{train_config.distill.store_name()!r}, the name of its store.")

    def train_config(self, point: GridPoint) -> TrainConfig:
        """The training configuration of one grid point; its student directory is its key."""
        return replace(self.base.with_distill(alpha=point.alpha, temperature=point.temperature,
                                              **signal_settings(point.store)),
                       student=point.student, run_name=self.key(point))

    def key(self, point: GridPoint) -> str:
        """``student-topk-k32-int8-a0.5-T2``: the point's key in the results and its run name."""
        return point_key(replace(self.base, student=point.student).student_label(), point.store,
                         point.alpha, point.temperature)

    def results_path(self) -> Path:
        return Path(self.results) if self.results else Path(self.base.out_dir) / "sweep.json"

    def bench_path(self) -> Path:
        if self.bench_data:
            return Path(self.bench_data)
        data_dir = Path(self.base.data_dir)
        for name in ("test.jsonl", "valid.jsonl"):
            if (data_dir / name).is_file():
                return data_dir / name
        raise DataError(f"{data_dir} has neither test.jsonl nor valid.jsonl; pass --bench-data.")


def point_key(student: str, store: str, alpha: float, temperature: float) -> str:
    return f"{student}-{store}-a{alpha:g}-T{temperature:g}"


def grid(config: SweepConfig) -> list[GridPoint]:
    """Every point, student by student, then store by store, alpha by alpha, T by T."""
    students = config.students or (config.base.student,)
    stores = config.stores or (config.base.distill.store_name(),)
    return [GridPoint(student, store, a, t) for student in students for store in stores
            for a in config.alphas for t in config.temperatures]


def load_results(path: Path) -> dict:
    """The results written so far (version 1 files upgraded), or an empty skeleton."""
    if not path.is_file():
        return {"version": RESULTS_VERSION, "points": {}, "teacher": None}
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc.msg}); delete it to restart the sweep.") from exc
    if results.get("version") not in (1, RESULTS_VERSION):
        raise DataError(f"{path} was written by another kdassert version; delete it to restart.")
    return upgrade_results(results)


def upgrade_results(results: dict) -> dict:
    """Version 1 results (an alpha x T grid of the base's student and store, keyed ``a0.5-T2``)
    as version 2: each point gets its student and store, and its run name as key."""
    if results.get("version") != 1:
        return results
    from distillation.pipeline import train_config_from_keys

    points = results["points"]
    if points:
        base = train_config_from_keys(results["config"]["base"])
        names = {old: point_key(base.student_label(), base.distill.store_name(), p["alpha"],
                                p["temperature"]) for old, p in points.items()}
        for point in points.values():
            point.update(student=base.student, store=base.distill.store_name())
            if "shared_with" in point:
                point["shared_with"] = names.get(point["shared_with"], point["shared_with"])
        points = {names[old]: p for old, p in points.items()}
    return {**results, "version": RESULTS_VERSION, "points": points}


def run_sweep(config: SweepConfig) -> dict:
    """Train and benchmark every missing grid point; returns the results (also on disk)."""
    path = config.results_path()
    results = load_results(path)
    _check_same_settings(path, results, config)
    results["config"] = _config_dict(config)
    bench_data = config.bench_path()
    todo = grid(config)
    from distillation.pipeline import prefill_stores

    missing = [config.train_config(p) for p in todo if config.key(p) not in results["points"]]
    prefill_stores(missing)  # every store the missing points read, in one pass of the teacher
    for index, point in enumerate(todo, start=1):
        key = config.key(point)
        if key in results["points"]:
            logger.info("sweep %d/%d %s: done, skipped", index, len(todo), key)
            continue
        logger.info("sweep %d/%d %s", index, len(todo), key)
        results["points"][key] = (_shared_point(results, point)
                                  or _trained_point(config, results, bench_data, point, key))
        fill_agreement(results)
        _save(path, results)
    return results


def _trained_point(config: SweepConfig, results: dict, bench_data: Path, point: GridPoint,
                   key: str) -> dict:
    """Train (or reuse) the point's student and benchmark it; the teacher too, the first time."""
    from distillation.pipeline import run_train
    from distillation.stages import stage_seconds

    train_config = config.train_config(point)
    trained = run_train(train_config)
    if config.teacher_row and "top1" not in (results.get("teacher") or {}):
        results["teacher"] = _bench_row(config, bench_data, "teacher", trained.teacher_dir)
    row = _bench_row(config, bench_data, key, trained.student_dir)
    return {**asdict(point), **row, "signal": signal_record(train_config, trained),
            "train_seconds": stage_seconds(Path(trained.student_dir).parent)}


def fill_agreement(results: dict) -> None:
    """Each point's top-1 agreement with the teacher's top-1, where both predictions are stored;
    per example too (``correct["agreement_with_teacher"]``), so that how much of the teacher
    two points reproduce is compared by a paired test like their exact match."""
    from distillation.bench import agrees

    teacher = (results.get("teacher") or {}).get("top1")
    if not teacher:
        return
    for point in results["points"].values():
        top1 = point.get("top1")
        if top1 and len(top1) == len(teacher):
            agreed = [agrees(p, t) for p, t in zip(top1, teacher, strict=True)]
            point["metrics"]["agreement_with_teacher"] = sum(agreed) / len(teacher)
            point.setdefault("correct", {})["agreement_with_teacher"] = encode_bits(agreed)


def _shared_point(results: dict, point: GridPoint) -> dict | None:
    """An alpha = 0 point as a copy of an already benchmarked alpha = 0 point of the same
    student: with no soft term, neither T nor the teacher signal changes anything."""
    if point.alpha != 0:
        return None
    key, record = next(((k, p) for k, p in results["points"].items()
                        if p["alpha"] == 0 and p.get("student") == point.student), (None, None))
    if record is None:
        return None
    signal = {"name": point.store, "mode": signal_settings(point.store)["logits_mode"], "used": False}
    return {**record, **asdict(point), "signal": signal, "shared_with": record.get("shared_with") or key}


def signal_record(train_config: TrainConfig, trained: TrainResult) -> dict:
    """What the student learnt from: the store's bytes per target token and size on disk (and
    how long it took to build), or for ``online`` the fp32 bytes per token of the full logits
    it read live (nothing stored). ``used`` is False at alpha = 0, which reads no signal."""
    from distillation.logit_store import store_stats
    from distillation.stages import stage_seconds

    distill = train_config.distill
    record = {"name": distill.store_name(), "mode": distill.logits_mode, "used": distill.alpha > 0}
    if trained.logits_dir is not None:
        stats = store_stats(trained.logits_dir)
        record.update(stats, build_seconds=stats.pop("extract_seconds", None)
                      or stage_seconds(trained.logits_dir))
    elif distill.runs_teacher:
        vocab = _vocab_size(trained.teacher_dir)
        record.update(vocab_size=vocab, bytes_per_token=None, disk_bytes=0,
                      dense_fp32_bytes_per_token=4 * vocab if vocab else None)
    return record


def _vocab_size(model_dir) -> int | None:
    try:
        return json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))["vocab_size"]
    except (OSError, KeyError, json.JSONDecodeError):
        return None


def _bench_row(config: SweepConfig, bench_data: Path, label: str, model_dir) -> dict:
    """Benchmark one model: its metrics, size and speed, and its top-1 predictions (``top1``),
    kept so that agreement with the teacher can be scored once the teacher row exists."""
    from distillation.bench import BenchConfig, model_row, score_predictions
    from pytest_kdassert.core.records import load_examples

    bench = BenchConfig(data=str(bench_data), models=(f"{label}={model_dir}",), out=None,
                        limit=config.bench_limit, beams=config.beams, batch_size=config.batch_size,
                        latency_examples=config.latency_examples, memory=False,
                        exemplar_pool=config.bench_exemplar_pool)
    examples = load_examples(bench.data, bench.limit)
    if not examples:
        raise DataError(f"{bench.data} holds no examples to benchmark.")
    row = model_row(bench, label, str(model_dir), examples)
    metrics, per_example = score_predictions([e.assertion for e in examples], row.candidates, bench.beams)
    return {"model_dir": str(model_dir), "examples": len(examples), "metrics": metrics,
            "size": row.size, "speed": row.speed,
            "top1": [c[0].text if c else "" for c in row.candidates],
            "correct": {k: encode_bits(r[k] for r in per_example) for k in CORRECTNESS_KEYS},
            "scores": {k: [round(r[k], 4) for r in per_example] for k in SCORE_KEYS}}


CORRECTNESS_KEYS = ("exact_match", "lenient_match", "top_k_exact_match")
"""Per-example outcomes kept for paired tests (``correct``: one "0"/"1" per example)."""
SCORE_KEYS = ("token_f1",)
"""Per-example scores kept for paired bootstrap tests (``scores``: one number per example)."""


def encode_bits(values) -> str:
    return "".join("1" if v else "0" for v in values)


def decode_bits(text: str) -> list[bool]:
    return [c == "1" for c in text]


def _fingerprint(config_dict: dict) -> dict:
    """Settings that must match for cached points to be comparable (the grid itself may grow)."""
    # a key added in a later kdassert is absent from older results: None counts as absent
    base = {k: v for k, v in config_dict.get("base", {}).items() if k not in POINT_AXES and v is not None} \
        if isinstance(config_dict.get("base"), dict) else config_dict.get("base")
    keep = ("bench_data", "bench_limit", "beams", "bench_exemplar_pool")
    return {"base": base, **{k: config_dict.get(k) for k in keep}}


def _check_same_settings(path: Path, results: dict, config: SweepConfig) -> None:
    if "config" not in results or not results["points"]:
        return
    old, new = _fingerprint(results["config"]), _fingerprint(json.loads(json.dumps(_config_dict(config))))
    if old != new:
        changed = sorted(k for k in set(old["base"] or {}) | set(new["base"] or {})
                         if (old["base"] or {}).get(k) != (new["base"] or {}).get(k))
        changed += [k for k in old if k != "base" and old[k] != new[k]]
        raise ConfigError(f"{path} holds points trained or scored with other settings "
                          f"(changed: {', '.join(changed)}). Pass --results NEW.json or delete it.")


def _config_dict(config: SweepConfig) -> dict:
    """The sweep's settings, the base as its flat TrainConfig keys (as in a TOML file)."""
    from distillation.pipeline import train_config_keys

    data = asdict(config)
    data["base"] = train_config_keys(config.base)
    return data


def _save(path: Path, results: dict) -> None:
    write_text_atomic(path, json.dumps(results, indent=2, sort_keys=True) + "\n")
