"""The stages of :mod:`distillation.gpu_route`, each a thin call into the pipeline's own code."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_kdassert.core.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass
class RouteData:
    """The opened pack: tokenizer, input format, the training split and the validation sample."""

    pack: object
    tokenizer: object
    fmt: object
    train: object
    valid: object

    @classmethod
    def load(cls, config) -> RouteData:
        from distillation.pack import open_pack
        from distillation.stages import eval_subset

        start = time.perf_counter()
        pack = open_pack(config.pack)
        train = pack.split("train", with_index=True)
        valid = eval_subset(pack.split("valid"), config.eval_examples)
        logger.info("pack %s: %d training examples, %d validation examples for the loss, "
                    "input format v%d, read in %.1fs", config.pack, len(train), len(valid),
                    pack.input_format.version, time.perf_counter() - start)
        return cls(pack, pack.tokenizer(), pack.input_format, train, valid)

    def check_models(self, config) -> dict:
        """Parameter counts of both presets; the full-scale limits are checked before training."""
        from distillation.gpu_route import MIN_TEACHER_PARAMS
        from distillation.models import count_parameters
        from distillation.route_output import WEIGHTS_LIMIT_BYTES
        from distillation.stages import init_model

        counts = {role: count_parameters(init_model(preset, self.tokenizer, config.seed))
                  for role, preset in (("teacher", config.teacher), ("student", config.student))}
        if config.scale == "full" and counts["teacher"] < MIN_TEACHER_PARAMS:
            raise ConfigError(f"The teacher {config.teacher!r} has {counts['teacher']:,} parameters; "
                              f"the route trains one of at least {MIN_TEACHER_PARAMS:,}.")
        if 4 * counts["student"] + 2**16 > WEIGHTS_LIMIT_BYTES:
            raise ConfigError(f"The student {config.student!r} has {counts['student']:,} parameters: "
                              f"its fp32 weights would not fit in {WEIGHTS_LIMIT_BYTES / 2**20:.0f} MiB.")
        logger.info("teacher %s: %s parameters; student %s: %s parameters", config.teacher,
                    f"{counts['teacher']:,}", config.student, f"{counts['student']:,}")
        return {"teacher": {"preset": config.teacher, "parameters": counts["teacher"]},
                "student": {"preset": config.student, "parameters": counts["student"]}}

    def dry_run(self, config) -> dict:
        """Time a training step of each model on its longest batch; no training, no outputs."""
        return {role: _time_steps(self, config, preset, batch)
                for role, preset, batch in (("teacher", config.teacher, config.batch_size),
                                            ("student", config.student, config.student_batch_size))}


def _time_steps(data: RouteData, config, preset: str, batch_size: int, steps: int = 3) -> dict:
    """Forward + backward + AdamW on the ``batch_size`` longest examples; seconds per step
    (the last ``steps - 1``) and peak GPU memory. The longest batch bounds a step's cost."""
    import numpy as np
    import torch

    from distillation.data import Seq2SeqCollator
    from distillation.fast_t5 import use_fast_t5
    from distillation.stages import init_model

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = use_fast_t5(init_model(preset, data.tokenizer, config.seed)).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device == "cuda")
    longest = np.argsort(data.train.lengths)[-batch_size:]
    batch = Seq2SeqCollator(data.tokenizer)([data.train[int(i)] for i in longest])
    batch = {k: v.to(device) for k, v in batch.items()}
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    record = {"batch": list(batch["input_ids"].shape), "loss": float(loss.detach()),
              "seconds_per_step": sum(times[1:]) / max(len(times) - 1, 1), "first_step": times[0],
              "peak_gpu_bytes": torch.cuda.max_memory_allocated() if device == "cuda" else None}
    logger.info("dry run, %s: %s", preset, json.dumps(record))
    return record


def train_stage(config, data: RouteData, work: Path, role: str, seconds: float, summary: dict,
                teacher: Path | None = None, logits: Path | None = None) -> Path:
    """Train the teacher (hard labels) or the student (distilled from ``logits``) for ``seconds``."""
    from distillation.logit_store import LogitStore
    from distillation.stages import init_model, train_on_splits
    from distillation.trainer import FINE_TUNE

    student = role == "student"
    preset = config.student if student else config.teacher
    optim = config.optim(student, seconds)
    logger.info("%s (%s): training for %.0fs", role, preset, optim.max_seconds)
    start = time.perf_counter()
    model = init_model(preset, data.tokenizer, config.seed)
    store = LogitStore.open(logits) if student and logits is not None else None
    final = train_on_splits(model, data.tokenizer, data.train, data.valid, work / role, optim,
                            data.fmt, store=store, distill=config.distill() if student else FINE_TUNE)
    record = _training_record(final, time.perf_counter() - start, optim)
    if record["examples_per_second"]:
        record["source_tokens_per_second"] = record["examples_per_second"] * float(data.train.lengths.mean())
    summary["stages"][role] = record
    logger.info("%s done: %s", role, json.dumps(summary["stages"][role]))
    return final


def _training_record(final: Path, seconds: float, optim) -> dict:
    state = json.loads((final / "trainer_state.json").read_text(encoding="utf-8"))
    history = state.get("log_history", [])
    steps = state.get("global_step", 0)
    return {"seconds": seconds, "budget_seconds": optim.max_seconds, "steps": steps,
            "epochs": state.get("epoch"), "batch_size": optim.batch_size,
            "examples_per_second": steps * optim.batch_size / seconds if seconds else None,
            "train_loss": _last(history, "loss"), "valid_loss": _last(history, "eval_loss")}


def _last(history: list[dict], key: str):
    return next((entry[key] for entry in reversed(history) if key in entry), None)


def logits_stage(config, data: RouteData, work: Path, teacher: Path, summary: dict) -> Path:
    """The teacher's top-k logits of every training example (bf16 forward on a GPU)."""
    import torch

    from distillation.logit_extract import LogitsConfig, write_logit_store
    from pytest_kdassert.core.loading import load_seq2seq

    start = time.perf_counter()
    cuda = torch.cuda.is_available()
    model, tokenizer = load_seq2seq(teacher, device="cuda" if cuda else "cpu",
                                    dtype=torch.bfloat16 if cuda else None)
    train_file = data.pack.directory / data.pack.manifest["splits"]["train"]["file"]
    logits = LogitsConfig(teacher=str(teacher), data=str(train_file), out_dir=str(work / "logits"),
                          k=config.topk, dtype="int8", batch_size=2 * config.batch_size)

    def items(begin: int, stop: int, index: int) -> list[dict]:
        return [data.train[i] for i in range(begin, stop)]

    directory = write_logit_store(model, tokenizer, data.fmt, len(data.train), items, logits)
    summary["stages"]["logits"] = {"seconds": time.perf_counter() - start, "k": config.topk,
                                   "examples": len(data.train)}
    logger.info("logits done: %s", json.dumps(summary["stages"]["logits"]))
    return directory


def bench_stage(config, data: RouteData, work: Path, out: Path, teacher: Path, summary: dict) -> dict:
    """``kdassert bench`` of the teacher and of the student in ``out`` (as it comes back) on the
    pack's test sample, with the in-project retrieval baselines (``--in-project``, exemplars
    from the whole test split); returns the report and draws loss.png into ``out``."""
    from distillation.bench import BenchConfig, run_bench
    from distillation.route_output import STUDENT_DIR

    start = time.perf_counter()
    bench = BenchConfig(data=str(data.pack.bench_path), models=(f"student={out / STUDENT_DIR}",),
                        teacher=str(teacher), out=str(work / "bench" / "bench.json"),
                        limit=config.bench_examples, beams=config.beams,
                        batch_size=config.bench_batch_size, latency_examples=config.latency_examples,
                        memory=False, in_project=True, exemplar_pool=str(data.pack.bench_pool(work)))
    report = run_bench(bench)
    summary["stages"]["bench"] = {"seconds": time.perf_counter() - start, "examples": report["examples"]}
    for row in report["rows"]:
        logger.info("bench %s: exact %.4f, lenient %.4f", row["name"], row["metrics"]["exact_match"],
                    row["metrics"]["lenient_match"])
    _plot(work, out)
    return report


def _plot(work: Path, out: Path) -> None:
    """loss.png: training loss against step of both models (skipped if it cannot be drawn)."""
    from distillation.loss_curve import plot_loss_curve
    from distillation.route_output import PLOT_FILE

    try:
        plot_loss_curve([work / "teacher", work / "student"], out / PLOT_FILE)
    except Exception as exc:  # noqa: BLE001 - a missing plot must not lose the run
        logger.warning("no loss plot: %s", exc)
