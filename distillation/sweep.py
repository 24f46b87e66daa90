"""``kdassert sweep``: train and benchmark an alpha x temperature grid, resumably.

Training goes through :func:`distillation.pipeline.run_train`, whose stage cache shares the
tokenizer, teacher and teacher logits across grid points. Each finished point's benchmark is
written to the results JSON at once, so an interrupted sweep resumes where it stopped.
Alpha = 0 ignores the temperature, so its points share one training run.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_kdassert.core.atomic import write_text_atomic
from pytest_kdassert.core.errors import ConfigError, DataError

if TYPE_CHECKING:
    from distillation.pipeline import TrainConfig

logger = logging.getLogger(__name__)

RESULTS_VERSION = 1


@dataclass(frozen=True)
class SweepConfig:
    """An alpha x temperature grid over one base training configuration."""

    base: TrainConfig
    """The configuration every point starts from; a point changes its alpha and temperature."""
    alphas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    temperatures: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    bench_data: str | None = None
    """Examples each point is scored on (default: test.jsonl, else valid.jsonl of the data dir)."""
    bench_limit: int | None = None
    """Score only the first N examples."""
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
        for alpha, temperature in grid(self):
            self.point(alpha, temperature)  # DistillConfig validates each point

    def point(self, alpha: float, temperature: float) -> TrainConfig:
        """The training configuration of one grid point."""
        return self.base.with_distill(alpha=alpha, temperature=temperature)

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


def point_key(alpha: float, temperature: float) -> str:
    return f"a{alpha:g}-T{temperature:g}"


def grid(config: SweepConfig) -> list[tuple[float, float]]:
    return [(a, t) for a in config.alphas for t in config.temperatures]


def load_results(path: Path) -> dict:
    """The results written so far, or an empty skeleton."""
    if not path.is_file():
        return {"version": RESULTS_VERSION, "points": {}, "teacher": None}
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc.msg}); delete it to restart the sweep.") from exc
    if results.get("version") != RESULTS_VERSION:
        raise DataError(f"{path} was written by another kdassert version; delete it to restart.")
    return results


def run_sweep(config: SweepConfig) -> dict:
    """Train and benchmark every missing grid point; returns the results (also on disk)."""
    from distillation.pipeline import run_train

    path = config.results_path()
    results = load_results(path)
    _check_same_settings(path, results, config)
    results["config"] = _config_dict(config)
    bench_data = config.bench_path()
    todo = grid(config)
    for index, (alpha, temperature) in enumerate(todo, start=1):
        key = point_key(alpha, temperature)
        if key in results["points"]:
            logger.info("sweep %d/%d %s: done, skipped", index, len(todo), key)
            continue
        shared = _shared_alpha_zero(results, alpha)
        if shared is not None:
            results["points"][key] = {**shared, "alpha": alpha, "temperature": temperature,
                                      "shared_with": shared.get("shared_with") or _key_of(shared)}
        else:
            logger.info("sweep %d/%d %s: training", index, len(todo), key)
            trained = run_train(config.point(alpha, temperature))
            results["points"][key] = _point(config, bench_data, alpha, temperature, trained.student_dir)
            if config.teacher_row and "top1" not in (results.get("teacher") or {}):
                results["teacher"] = _bench_row(config, bench_data, "teacher", trained.teacher_dir)
        fill_agreement(results)
        _save(path, results)
    return results


def fill_agreement(results: dict) -> None:
    """Each point's top-1 agreement with the teacher's top-1, where both predictions are stored."""
    from distillation.bench import agrees

    teacher = (results.get("teacher") or {}).get("top1")
    if not teacher:
        return
    for point in results["points"].values():
        top1 = point.get("top1")
        if top1 and len(top1) == len(teacher):
            agreed = sum(agrees(p, t) for p, t in zip(top1, teacher, strict=True))
            point["metrics"]["agreement_with_teacher"] = agreed / len(teacher)


def _shared_alpha_zero(results: dict, alpha: float) -> dict | None:
    """An already benchmarked alpha = 0 point: with no soft term, T changes nothing."""
    if alpha != 0:
        return None
    return next((p for p in results["points"].values() if p["alpha"] == 0), None)


def _key_of(point: dict) -> str:
    return point_key(point["alpha"], point["temperature"])


def _point(config: SweepConfig, bench_data: Path, alpha: float, temperature: float, student_dir) -> dict:
    row = _bench_row(config, bench_data, point_key(alpha, temperature), student_dir)
    return {"alpha": alpha, "temperature": temperature, **row}


def _bench_row(config: SweepConfig, bench_data: Path, label: str, model_dir) -> dict:
    """Benchmark one model: its metrics, size and speed, and its top-1 predictions (``top1``),
    kept so that agreement with the teacher can be scored once the teacher row exists."""
    from distillation.bench import BenchConfig, model_row, score_predictions
    from pytest_kdassert.core.records import load_examples

    bench = BenchConfig(data=str(bench_data), models=(f"{label}={model_dir}",), out=None,
                        limit=config.bench_limit, beams=config.beams, batch_size=config.batch_size,
                        latency_examples=config.latency_examples, memory=False)
    examples = load_examples(bench.data, bench.limit)
    if not examples:
        raise DataError(f"{bench.data} holds no examples to benchmark.")
    row = model_row(bench, label, str(model_dir), examples)
    metrics, _ = score_predictions([e.assertion for e in examples], row.candidates, bench.beams)
    return {"model_dir": str(model_dir), "examples": len(examples), "metrics": metrics,
            "size": row.size, "speed": row.speed,
            "top1": [c[0].text if c else "" for c in row.candidates]}


def _fingerprint(config_dict: dict) -> dict:
    """Settings that must match for cached points to be comparable (the grid itself may grow)."""
    base = {k: v for k, v in config_dict.get("base", {}).items() if k not in ("alpha", "temperature")} \
        if isinstance(config_dict.get("base"), dict) else config_dict.get("base")
    keep = ("bench_data", "bench_limit", "beams")
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
