"""``kdassert train``: tokenizer -> teacher -> teacher logits -> distilled student -> benchmark.

Layout under ``out_dir``::

    tokenizer/                               byte-level BPE (shared)
    teacher/final/, teacher/checkpoints/     teacher trained on hard labels (shared)
    logits/topk-k32-int8/                    logit store of the train split (shared per mode)
    students/student-topk-a0.5-T2/final/     one directory per (preset, mode, alpha, T)
    students/student-topk-a0.5-T2/bench.json short exact-match benchmark

Every stage is cached (see :mod:`distillation.stages`), so a sweep that calls ``run_train``
with other ``alpha``/``temperature`` values reuses the tokenizer, teacher and logits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from pytest_kdassert.core.errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from distillation.logit_codec import QUANT_BITS, TOPK_DTYPES
from distillation.models import PRESETS
from distillation.stages import (
    build_tokenizer,
    clear_stage,
    config_hash,
    init_model,
    mark_stage,
    stage_is_valid,
    train_model,
)
from distillation.tokenizer import TokenizerConfig
from distillation.trainer import OptimConfig
from pytest_kdassert.core.input_format import InputFormatConfig
from pytest_kdassert.core.loading import load_seq2seq, load_tokenizer, resolve_model_path
from pytest_kdassert.core.records import load_examples

logger = logging.getLogger(__name__)

LOGITS_MODES = ("topk", "quantized", "online")
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "kdassert_format.json")


@dataclass(frozen=True)
class TrainConfig:
    """The whole ``kdassert train`` pipeline. Each field is one CLI option / TOML key."""

    data_dir: str = "data"
    """Directory with train.jsonl, valid.jsonl (and test.jsonl) in the mining schema."""
    out_dir: str = "runs"
    """Where every stage writes its output."""
    teacher: str = "teacher"
    """A preset to train, or an existing model directory (then its tokenizer is used)."""
    student: str = "student"
    """A preset, or a model directory to start from (it must share the teacher's vocabulary)."""
    alpha: float = 0.5
    """Weight of the soft (teacher) term; 0 is plain fine-tuning."""
    temperature: float = 2.0
    """Softmax temperature T of the soft term (scaled by T^2)."""
    logits_mode: str = "topk"
    """topk or quantized (from the logit store), or online (live teacher, full logits)."""
    topk: int = 32
    topk_dtype: str = "int8"
    """Storage of top-k log-probs: fp16, int8 or int4."""
    bits: int = 8
    """Bits per logit in quantized mode: 4, 8 or 16."""
    epochs: float = 3.0
    max_steps: int = -1
    teacher_epochs: float = 3.0
    teacher_max_steps: int = -1
    batch_size: int = 16
    lr: float = 1e-3
    teacher_lr: float = 5e-4
    seed: int = 0
    bf16: str = "auto"
    """auto, on or off."""
    eval_steps: int = 500
    vocab_size: int = 8192
    """Tokenizer vocabulary size (when the tokenizer is trained here)."""
    max_source_tokens: int = 320
    max_target_tokens: int = 64
    limit: int | None = None
    """Use only the first N examples of each split (quick runs)."""
    bench_limit: int = 100
    """Validation examples in the final exact-match benchmark; 0 disables it."""
    bench_beams: int = 5

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.logits_mode not in LOGITS_MODES:
            raise ConfigError(f"logits_mode must be one of {LOGITS_MODES}, got {self.logits_mode!r}")
        if self.topk < 1:
            raise ConfigError(f"topk must be >= 1, got {self.topk}")
        if self.topk_dtype not in TOPK_DTYPES:
            raise ConfigError(f"topk_dtype must be one of {TOPK_DTYPES}, got {self.topk_dtype!r}")
        if self.bits not in QUANT_BITS:
            raise ConfigError(f"bits must be one of {QUANT_BITS}, got {self.bits}")
        if self.bench_limit < 0:
            raise ConfigError(f"bench_limit must be >= 0, got {self.bench_limit}")
        self.input_format()  # validates the token budgets
        self.optim(student=True)

    def input_format(self) -> InputFormatConfig:
        return InputFormatConfig(self.max_source_tokens, self.max_target_tokens)

    def optim(self, student: bool) -> OptimConfig:
        return OptimConfig(
            epochs=self.epochs if student else self.teacher_epochs,
            max_steps=self.max_steps if student else self.teacher_max_steps,
            batch_size=self.batch_size, lr=self.lr if student else self.teacher_lr,
            seed=self.seed, bf16=self.bf16, eval_steps=self.eval_steps,
        )

    def student_name(self) -> str:
        base = self.student if self.student in PRESETS else Path(self.student).name
        return f"{base}-{self.logits_mode}-a{self.alpha:g}-T{self.temperature:g}"

    def store_name(self) -> str:
        if self.logits_mode == "topk":
            return f"topk-k{self.topk}-{self.topk_dtype}"
        return f"quantized-{self.bits}bit"


@dataclass(frozen=True)
class TrainResult:
    """Where ``run_train`` left each artifact."""

    tokenizer_dir: Path
    teacher_dir: Path
    logits_dir: Path | None
    student_dir: Path
    bench_report: Path | None


def load_train_config(path=None, **overrides) -> TrainConfig:
    """A TrainConfig from a TOML file (flat keys or a ``[train]`` table), then ``overrides``.

    Overrides that are None are ignored, so unset CLI options keep the file's values.
    """
    data = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"Cannot read the config file {path}: {exc}") from exc
        data = data.get("train", data)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {unknown}; valid keys are {sorted(known)}")
    return TrainConfig(**{**data, **{k: v for k, v in overrides.items() if v is not None}})


def run_train(config: TrainConfig) -> TrainResult:
    """Run (or reuse) every stage; returns the artifacts' locations."""
    out = Path(config.out_dir)
    data_dir = Path(config.data_dir)
    if not (data_dir / "train.jsonl").is_file():
        raise ConfigError(f"{data_dir} has no train.jsonl. Build the dataset with `kdassert mine`.")
    fingerprint = {"data": _data_fingerprint(data_dir), "format": asdict(config.input_format()),
                   "limit": config.limit}
    # Under accelerate/torchrun every process runs this; the single-process stages run on the
    # main process first and the others then find them cached. Training stages use all processes.
    with main_process_first():
        tokenizer_dir, tok_hash = _tokenizer_stage(config, out, fingerprint)
    teacher_dir, teacher_hash = _teacher_stage(config, out, tokenizer_dir, tok_hash, fingerprint)
    with main_process_first():
        logits_dir, logits_hash = _logits_stage(config, out, teacher_dir, teacher_hash)
    student_dir = _student_stage(config, out, teacher_dir, logits_dir, logits_hash or teacher_hash)
    with main_process_first():
        bench = _bench_stage(config, student_dir)
    return TrainResult(tokenizer_dir, teacher_dir, logits_dir, student_dir, bench)


def main_process_first():
    """Run a block on the main process before the others (a no-op in a single process)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return contextlib.nullcontext()
    from accelerate import PartialState

    return PartialState().main_process_first()


def _data_fingerprint(data_dir: Path) -> dict:
    from distillation.logit_store import sha256_file

    return {name: sha256_file(data_dir / name) for name in ("train.jsonl", "valid.jsonl")
            if (data_dir / name).is_file()}


def _tokenizer_stage(config: TrainConfig, out: Path, fingerprint: dict) -> tuple[Path, str]:
    if config.teacher not in PRESETS:  # an existing teacher brings its own tokenizer
        path = Path(resolve_model_path(config.teacher))
        return path, config_hash({"teacher": str(path)})
    directory = out / "tokenizer"
    tok_config = TokenizerConfig(vocab_size=config.vocab_size)
    resolved = {"stage": "tokenizer", **fingerprint, "tokenizer": asdict(tok_config)}
    if stage_is_valid(directory, resolved, ("tokenizer.json",)):
        logger.info("tokenizer: cached in %s", directory)
    else:
        clear_stage(directory)
        build_tokenizer(Path(config.data_dir) / "train.jsonl", directory, tok_config,
                        config.input_format(), config.limit)
        mark_stage(directory, resolved)
    return directory, config_hash(resolved)


def _teacher_stage(config, out, tokenizer_dir, tok_hash, fingerprint) -> tuple[Path, str]:
    from transformers import AutoTokenizer

    if config.teacher not in PRESETS:
        path = Path(resolve_model_path(config.teacher))
        return path, config_hash({"teacher": str(path)})
    directory = out / "teacher"
    resolved = {"stage": "teacher", "preset": config.teacher, "tokenizer": tok_hash, **fingerprint,
                "optim": asdict(config.optim(student=False))}
    if stage_is_valid(directory, resolved, tuple(f"final/{f}" for f in MODEL_FILES)):
        logger.info("teacher: cached in %s", directory / "final")
    else:
        clear_stage(directory, resolved)
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        model = init_model(config.teacher, tokenizer, config.seed)
        train_model(model, tokenizer, Path(config.data_dir), directory, config.optim(student=False),
                    config.input_format(), config.limit)
        mark_stage(directory, resolved)
    return directory / "final", config_hash(resolved)


def _logits_stage(config: TrainConfig, out: Path, teacher_dir: Path, teacher_hash: str):
    if config.logits_mode == "online" or config.alpha == 0:  # alpha = 0 never reads the store
        return None, None
    from distillation.logit_extract import LogitsConfig, extract_logits

    directory = out / "logits" / config.store_name()
    logits_config = LogitsConfig(
        teacher=str(teacher_dir), data=str(Path(config.data_dir) / "train.jsonl"),
        out_dir=str(directory), mode=config.logits_mode, k=config.topk, dtype=config.topk_dtype,
        bits=config.bits, batch_size=config.batch_size, limit=config.limit,
    )
    resolved = {"stage": "logits", "teacher": teacher_hash, "logits": asdict(logits_config)}
    if stage_is_valid(directory, resolved, ("manifest.json",)):
        logger.info("logits: cached in %s", directory)
    else:
        clear_stage(directory)
        extract_logits(logits_config)
        mark_stage(directory, resolved)
    return directory, config_hash(resolved)


def _student_stage(config: TrainConfig, out: Path, teacher_dir: Path, logits_dir, upstream: str) -> Path:
    from distillation.logit_store import LogitStore

    directory = out / "students" / config.student_name()
    resolved = {"stage": "student", "upstream": upstream, "student": config.student,
                "alpha": config.alpha, "temperature": config.temperature, "mode": config.logits_mode,
                "format": asdict(config.input_format()), "limit": config.limit,
                "optim": asdict(config.optim(student=True))}
    if stage_is_valid(directory, resolved, tuple(f"final/{f}" for f in MODEL_FILES)):
        logger.info("student: cached in %s", directory / "final")
        return directory / "final"
    clear_stage(directory, resolved)
    tokenizer = load_tokenizer(teacher_dir)
    model = init_model(config.student, tokenizer, config.seed)
    store = LogitStore.open(logits_dir) if logits_dir is not None and config.alpha > 0 else None
    teacher = None
    if config.logits_mode == "online" and config.alpha > 0:
        teacher, _ = load_seq2seq(teacher_dir)
    final = train_model(model, tokenizer, Path(config.data_dir), directory, config.optim(student=True),
                        config.input_format(), config.limit, store=store, alpha=config.alpha,
                        temperature=config.temperature, teacher_model=teacher)
    mark_stage(directory, resolved)
    return final


def _bench_stage(config: TrainConfig, student_dir: Path) -> Path | None:
    """Exact match of the student's top candidate on the first validation examples."""
    valid = Path(config.data_dir) / "valid.jsonl"
    if config.bench_limit == 0 or not valid.is_file():
        return None
    from pytest_kdassert.core.assertions import normalize_assertion
    from pytest_kdassert.core.generate import GenerationConfig, generate_candidates
    from pytest_kdassert.core.input_format import example_source

    report = student_dir.parent / "bench.json"
    resolved = {"stage": "bench", "model": config_hash({"student": str(student_dir),
                "mtime": (student_dir / "model.safetensors").stat().st_mtime}),
                "limit": config.bench_limit, "beams": config.bench_beams}
    if report.is_file() and json.loads(report.read_text()).get("hash") == config_hash(resolved):
        return report
    model, tokenizer = load_seq2seq(student_dir)
    examples = load_examples(valid, limit=config.bench_limit)
    fmt = config.input_format()
    gen = GenerationConfig(num_beams=config.bench_beams, num_return=1,
                           max_source_tokens=fmt.max_source_tokens, max_new_tokens=fmt.max_target_tokens)
    candidates = generate_candidates(model, tokenizer, [example_source(e, fmt) for e in examples], gen)
    hits = sum(bool(c) and normalize_assertion(c[0].text) == normalize_assertion(e.assertion)
               for e, c in zip(examples, candidates, strict=True))
    payload = {"hash": config_hash(resolved), "config": resolved, "examples": len(examples),
               "exact_match": hits / max(len(examples), 1), "student": str(student_dir)}
    from pytest_kdassert.core.atomic import write_text_atomic

    write_text_atomic(report, json.dumps(payload, indent=2) + "\n")
    logger.info("benchmark: exact match %.3f on %d validation examples", payload["exact_match"], len(examples))
    return report
