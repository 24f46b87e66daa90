"""``kdassert gpu-route``: teacher -> logits -> student -> benchmark from a pack, in a fixed time.

One command for a lent GPU machine that gets the working tree and a pack (``kdassert pack``)
and returns a few files. Every stage is the pipeline's own code: the teacher and the student
train through :func:`distillation.stages.train_on_splits` (the Trainer, bf16 on a GPU, fused
AdamW, length buckets), the logits go through :func:`distillation.logit_extract.write_logit_store`
and the benchmark is ``kdassert bench``. What differs is that the steps are decided by time:
the budget (``minutes``, from the start of the route) is split between the stages
(``RouteConfig.shares``), the two training stages run a warmup-stable-decay schedule on the
clock (:mod:`distillation.time_budget`), and a stage that finishes early leaves its time to the
next. The student is written to the output folder before the benchmark starts, so a run cut
short still brings it back. ``scale="toy"`` runs the same route with tiny models (CPU tests).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pytest_kdassert.core.atomic import write_text_atomic
from pytest_kdassert.core.errors import ConfigError
from pytest_kdassert.core.loading import no_progress_bars

logger = logging.getLogger(__name__)

MIN_TEACHER_PARAMS = 60_000_000
"""The issue's floor for the full-scale teacher."""
SCALES = ("full", "toy")


@dataclass(frozen=True)
class RouteConfig:
    """Settings of ``kdassert gpu-route``; written into the output's bench.json."""

    pack: str = "data/gpu-pack"
    """Pack directory (``kdassert pack``)."""
    out_dir: str = "out"
    """Output folder: the student, bench.json, route.log and loss.png (must be empty)."""
    work_dir: str | None = None
    """Checkpoints and the logit store (None: a temporary folder, removed at the end)."""
    minutes: float = 8.0
    """Wall-clock budget of the whole route, from its start."""
    scale: str = "full"
    """full (teacher-gpu -> student-gpu) or toy (tiny models; the CPU test of this route)."""
    teacher: str = "teacher-gpu"
    student: str = "student-gpu"
    shares: tuple[float, float, float, float] = (0.55, 0.10, 0.30, 0.05)
    """Shares of the budget for teacher, logits, student and benchmark."""
    batch_size: int = 128
    student_batch_size: int = 256
    teacher_lr: float = 7e-4
    student_lr: float = 2e-3
    warmup_steps: int = 100
    """Each training stage warms up over at least this many steps (and 5% of its time): the
    first step on a GPU carries seconds of CUDA start-up (distillation.time_budget)."""
    alpha: float = 0.5
    temperature: float = 1.0
    topk: int = 32
    """Teacher top-k kept per target token in the logit store (int8 log-probs)."""
    eval_examples: int = 1000
    """Validation examples of the final validation loss of each model."""
    bench_examples: int = 500
    """Examples of the pack's bench.jsonl benchmarked (whole projects of test.jsonl)."""
    beams: int = 5
    bench_batch_size: int = 64
    """Batch size of the benchmark's beam search."""
    latency_examples: int = 10
    """Examples timed one by one (greedy) on the GPU and on one CPU thread."""
    seed: int = 0
    dry_run: bool = False
    """Check the pack, build both models, time a few training steps of each, and stop."""

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ConfigError(f"scale must be one of {SCALES}, got {self.scale!r}")
        if self.minutes <= 0 or len(self.shares) != 4 or min(self.shares) < 0 or not sum(self.shares):
            raise ConfigError("minutes must be > 0 and shares four non-negative numbers")
        if min(self.batch_size, self.student_batch_size, self.eval_examples, self.bench_examples,
               self.beams) < 1 or self.latency_examples < 0:
            raise ConfigError("batch sizes, eval_examples, bench_examples and beams must be >= 1")
        self.distill()  # validates alpha, temperature and topk

    def for_scale(self) -> RouteConfig:
        """``toy``: tiny models and small samples, so the route runs in seconds on a CPU."""
        if self.scale == "full":
            return self
        return dataclasses.replace(self, teacher="tiny", student="tiny", batch_size=8, warmup_steps=2,
                                   student_batch_size=8, topk=8, eval_examples=4,
                                   bench_examples=min(self.bench_examples, 4), beams=2,
                                   bench_batch_size=4,
                                   latency_examples=min(self.latency_examples, 2))

    def distill(self):
        from distillation.trainer import DistillConfig

        return DistillConfig(alpha=self.alpha, temperature=self.temperature, topk=self.topk)

    def optim(self, student: bool, seconds: float):
        from distillation.trainer import OptimConfig

        return OptimConfig(epochs=10_000, batch_size=self.student_batch_size if student else self.batch_size,
                           lr=self.student_lr if student else self.teacher_lr, seed=self.seed,
                           lr_schedule="wsd", max_seconds=max(seconds, 1.0), checkpoints=False,
                           warmup_steps=self.warmup_steps,
                           logging_steps=25 if self.scale == "full" else 5, progress_bar=False)


@dataclass
class Clock:
    """Seconds since the route started, and what is left of its budget."""

    budget: float
    start: float = dataclasses.field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget - self.elapsed()


def run_route(config: RouteConfig) -> dict:
    """Run the route; returns the summary written into bench.json (and logged)."""
    import torch

    from distillation.route_output import LOG_FILE, prepare_out_dir, tee_output

    config = config.for_scale()
    clock = Clock(config.minutes * 60)
    if torch.cuda.is_available():  # TF32 for what runs outside bf16 autocast (the benchmark)
        torch.set_float32_matmul_precision("high")
    out = prepare_out_dir(Path(config.out_dir))
    with tee_output(out / LOG_FILE), no_progress_bars(), _work_dir(config) as work:
        logger.info("gpu-route: %s", json.dumps(asdict(config)))
        return _stages(config, clock, out, work)


class _work_dir:  # noqa: N801 - a context manager
    def __init__(self, config: RouteConfig):
        self.given = config.work_dir

    def __enter__(self) -> Path:
        self.path = Path(self.given or tempfile.mkdtemp(prefix="kdassert-route-"))
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path

    def __exit__(self, *exc):
        if self.given is None:
            shutil.rmtree(self.path, ignore_errors=True)


def _stages(config: RouteConfig, clock: Clock, out: Path, work: Path) -> dict:
    from distillation.route_output import BENCH_FILE
    from distillation.route_stages import RouteData, bench_stage, logits_stage, train_stage

    data = RouteData.load(config)
    summary = {"config": asdict(config), "device": device_summary(), "stages": {},
               "pack": {k: data.pack.manifest[k] for k in ("input_format", "splits", "bench")}}
    summary["models"] = data.check_models(config)
    if config.scale == "full" and not config.dry_run and not summary["device"]["cuda"]:
        raise ConfigError("The full-scale route needs a CUDA GPU and none is visible: on a CPU "
                          "its minutes would train a 74M teacher for a few dozen steps. Use "
                          "--scale toy to try the route here, or --dry-run to check the pack.")
    plan = _plan(config, clock.left())
    summary["plan_seconds"] = plan
    if config.dry_run:
        summary["stages"]["dry_run"] = steps = data.dry_run(config)
        for role in ("teacher", "student"):  # the longest batch's step: a floor on the count
            steps[role]["steps_in_plan_at_least"] = int(plan[role] / steps[role]["seconds_per_step"])
        _log_summary(summary)
        return summary
    teacher = train_stage(config, data, work, "teacher", plan["teacher"], summary)
    logits = logits_stage(config, data, work, teacher, summary)
    student_seconds = clock.left() - plan["bench"]
    student = train_stage(config, data, work, "student", student_seconds, summary, teacher, logits)
    _finish_student(student, out, summary)
    report = bench_stage(config, data, work, out, teacher, summary)
    summary["seconds"] = clock.elapsed()
    _log_summary(summary)
    write_text_atomic(out / BENCH_FILE, json.dumps({**report, "gpu_route": summary}, indent=2,
                                                   default=str) + "\n")
    return summary


def _plan(config: RouteConfig, seconds: float) -> dict:
    """Seconds per stage: the budget left, split by the shares."""
    total = sum(config.shares)
    return {name: seconds * share / total for name, share
            in zip(("teacher", "logits", "student", "bench"), config.shares, strict=True)}


def _finish_student(final: Path, out: Path, summary: dict) -> None:
    from distillation.route_output import copy_student

    target = copy_student(final, out)
    summary["student_dir"] = str(target)
    logger.info("student written to %s (%d bytes of weights)", target,
                (target / "model.safetensors").stat().st_size)


def _log_summary(summary: dict) -> None:
    logger.info("gpu-route summary: %s", json.dumps(summary, default=str))


def device_summary() -> dict:
    import torch

    cuda = torch.cuda.is_available()
    return {"cuda": cuda, "name": torch.cuda.get_device_name(0) if cuda else platform.processor(),
            "torch": torch.__version__, "python": platform.python_version(),
            "bf16": cuda and torch.cuda.is_bf16_supported()}
