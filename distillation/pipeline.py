"""``kdassert train``: tokenizer -> teacher -> teacher logits -> distilled student -> benchmark.

Layout under ``out_dir``::

    tokenizer/                               byte-level BPE (shared)
    teacher/final/, teacher/checkpoints/     teacher trained on hard labels (shared)
    logits/topk-k32-int8/                    logit store of the train split (shared per mode)
    students/student-topk-a0.5-T2/final/     one directory per (preset, mode, alpha, T), or run_name
    students/student-topk-a0.5-T2/bench/     ``kdassert bench`` report on the validation split

Every stage is cached (:class:`distillation.stages.Stage`), so a sweep that calls ``run_train``
with other ``alpha``/``temperature`` values reuses the tokenizer, teacher and logits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pytest_kdassert.core.errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from distillation.models import PRESETS
from distillation.stages import Stage, build_tokenizer, config_hash, init_model, train_model
from distillation.tokenizer import TokenizerConfig
from distillation.trainer import DistillConfig, OptimConfig
from pytest_kdassert.core.input_format import InputFormatConfig
from pytest_kdassert.core.loading import load_seq2seq, load_tokenizer, resolve_model_path
from pytest_kdassert.core.records import load_examples

logger = logging.getLogger(__name__)

MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "kdassert_format.json")


@dataclass(frozen=True)
class TrainConfig:
    """The whole ``kdassert train`` pipeline. Each field is one CLI option / TOML key; the
    fields of ``distill`` are flat keys too (``alpha``, ``temperature``, ...)."""

    data_dir: str = "data"
    """Directory with train.jsonl, valid.jsonl (and test.jsonl) in the mining schema."""
    out_dir: str = "runs"
    """Where every stage writes its output."""
    teacher: str = "teacher"
    """A preset to train, or an existing model directory (then its tokenizer is used)."""
    student: str = "student"
    """A preset, or a model directory to start from (it must share the teacher's vocabulary)."""
    distill: DistillConfig = field(default_factory=DistillConfig)
    """Alpha, temperature and where the teacher signal comes from."""
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
    """Evaluate and checkpoint every N steps."""
    eval_examples: int = 0
    """Evaluate during training on this many validation examples, evenly spaced (0: all)."""
    lr_schedule: str = "linear"
    """linear, or wsd (warmup-stable-decay: extendable with a larger max_steps and --resume)."""
    warmup_steps: int = 0
    """Warm-up steps (0: 5% of the steps)."""
    decay_ratio: float = 0.1
    """wsd: share of the steps spent decaying at the end."""
    sampler: str = "buckets"
    """buckets, group_by_length or random (see OptimConfig.sampler)."""
    attention: str = "fused"
    """fused (fast T5 attention, no attention dropout) or library."""
    fused_adamw: bool = True
    """Fused AdamW kernel."""
    keep_freed_memory: bool = True
    """CPU: malloc keeps freed memory (no page faults per step for the big attention tensors)."""
    resume: bool = False
    """Each training stage that runs must continue its newest checkpoint (an error if none)."""
    stop_after: str = "bench"
    """Last stage to run: tokenizer, teacher, logits, student or bench."""
    vocab_size: int = 8192
    """Tokenizer vocabulary size (when the tokenizer is trained here)."""
    max_source_tokens: int = 320
    max_target_tokens: int = 64
    exemplars: int = 0
    """In-project exemplars per input: 0 = input format v1; k >= 1 = v2 with k exemplars,
    retrieved from the other tests of the example's project in the same split file."""
    exemplar_pool: str | None = None
    """Dataset directory whose splits give the exemplars instead (each split's from the
    same-named file there): for a ``kdassert sample`` subset, the dataset it was drawn from,
    so every example sees its project's full set of tests, as at test time."""
    limit: int | None = None
    """Use only the first N examples of each split (quick runs)."""
    bench_limit: int = 100
    """Validation examples in the final benchmark (``kdassert bench``'s report); 0 disables it."""
    bench_beams: int = 5
    """Beam width of that benchmark."""
    run_name: str | None = None
    """The student's directory under ``students/`` (default: ``student_name()``'s
    preset-mode-aA-TT, e.g. ``student-topk-a0.5-T2``); ``kdassert sweep`` names every store."""

    def __post_init__(self):
        if self.bench_limit < 0:
            raise ConfigError(f"bench_limit must be >= 0, got {self.bench_limit}")
        if self.run_name is not None and (not self.run_name.strip() or "/" in self.run_name
                                          or self.run_name in (".", "..")):
            raise ConfigError(f"run_name must be a plain directory name, got {self.run_name!r}")
        self.input_format()  # validates the token budgets
        self.optim(student=True)
        if self.stop_after not in STAGES:
            raise ConfigError(f"stop_after must be one of {STAGES}, got {self.stop_after!r}")
        if self.eval_examples < 0:
            raise ConfigError(f"eval_examples must be >= 0, got {self.eval_examples}")
        if self.exemplar_pool is not None:
            if not self.exemplars:
                raise ConfigError("exemplar_pool gives exemplars: set exemplars >= 1 as well.")
            if not (Path(self.exemplar_pool) / "train.jsonl").is_file():
                raise ConfigError(f"exemplar_pool {self.exemplar_pool} has no train.jsonl: give "
                                  "the dataset directory a sample was drawn from.")

    def input_format(self) -> InputFormatConfig:
        return InputFormatConfig(self.max_source_tokens, self.max_target_tokens,
                                 version=2 if self.exemplars else 1, exemplars=self.exemplars)

    def optim(self, student: bool) -> OptimConfig:
        return OptimConfig(
            epochs=self.epochs if student else self.teacher_epochs,
            max_steps=self.max_steps if student else self.teacher_max_steps,
            batch_size=self.batch_size, lr=self.lr if student else self.teacher_lr,
            seed=self.seed, bf16=self.bf16, eval_steps=self.eval_steps,
            lr_schedule=self.lr_schedule, warmup_steps=self.warmup_steps, decay_ratio=self.decay_ratio,
            sampler=self.sampler, attention=self.attention, fused_adamw=self.fused_adamw,
            keep_freed_memory=self.keep_freed_memory,
        )

    def data(self, out: Path):
        from distillation.stages import DataConfig

        return DataConfig(limit=self.limit, cache_dir=out / "token-cache", eval_examples=self.eval_examples,
                          exemplar_pool=Path(self.exemplar_pool) if self.exemplar_pool else None)

    def student_label(self) -> str:
        """The student preset, or the name of the model directory it starts from."""
        return self.student if self.student in PRESETS else Path(self.student).name

    def student_name(self) -> str:
        return self.run_name or f"{self.student_label()}-{self.distill.tag()}"

    def with_distill(self, **changes) -> TrainConfig:
        """This config with some distillation settings changed (a sweep's grid point)."""
        return dataclasses.replace(self, distill=dataclasses.replace(self.distill, **changes))


STAGES = ("tokenizer", "teacher", "logits", "student", "bench")


@dataclass(frozen=True)
class TrainResult:
    """Where ``run_train`` left each artifact."""

    tokenizer_dir: Path
    teacher_dir: Path | None = None
    logits_dir: Path | None = None
    student_dir: Path | None = None
    bench_report: Path | None = None


DISTILL_KEYS = tuple(f.name for f in dataclasses.fields(DistillConfig))
TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name != "distill") + DISTILL_KEYS
"""The flat keys of a TrainConfig: TOML keys and ``kdassert train`` options, one per field."""


def train_config_from_keys(keys: dict) -> TrainConfig:
    """A TrainConfig from flat keys; the distillation ones go to its :class:`DistillConfig`."""
    distill = {k: v for k, v in keys.items() if k in DISTILL_KEYS}
    rest = {k: v for k, v in keys.items() if k not in DISTILL_KEYS}
    return TrainConfig(**rest, distill=DistillConfig(**distill))


def train_config_keys(config: TrainConfig) -> dict:
    """The flat keys of ``config`` (what :func:`train_config_from_keys` reads back)."""
    data = asdict(config)
    return {**data.pop("distill"), **data}


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
    unknown = sorted(set(data) - set(TRAIN_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown keys {unknown}; valid keys are {sorted(TRAIN_KEYS)}")
    return train_config_from_keys({**data, **{k: v for k, v in overrides.items() if v is not None}})


def run_train(config: TrainConfig) -> TrainResult:
    """Run (or reuse) every stage; returns the artifacts' locations."""
    out = Path(config.out_dir)
    last = STAGES.index(config.stop_after)
    if config.resume:
        _check_resumable(config, out)
    if last < 1:
        return TrainResult(_tokenizer(config)[0])
    tokenizer_dir, teacher_dir, teacher_hash = _teacher(config)
    if last < 2:
        return TrainResult(tokenizer_dir, teacher_dir)
    with main_process_first():
        logits_dir, logits_hash = _logits_stage(config, out, teacher_dir, teacher_hash)
    if last < 3:
        return TrainResult(tokenizer_dir, teacher_dir, logits_dir)
    student_dir = _student_stage(config, out, teacher_dir, logits_dir, logits_hash or teacher_hash)
    with main_process_first():
        bench = _bench_stage(config, student_dir) if last >= 4 else None
    return TrainResult(tokenizer_dir, teacher_dir, logits_dir, student_dir, bench)


def _fingerprint(config: TrainConfig) -> dict:
    """What the tokenizer and the teacher depend on in the data."""
    data_dir = Path(config.data_dir)
    if not (data_dir / "train.jsonl").is_file():
        raise ConfigError(f"{data_dir} has no train.jsonl. Build the dataset with `kdassert mine`.")
    fingerprint = {"data": _data_fingerprint(data_dir), "format": config.input_format(),
                   "limit": config.limit}
    if config.exemplar_pool:  # absent otherwise: the stages of earlier runs stay cached
        fingerprint["exemplar_pool"] = _data_fingerprint(Path(config.exemplar_pool))
    return fingerprint


def _tokenizer(config: TrainConfig) -> tuple[Path, str, dict]:
    """The tokenizer stage (run or reused): its directory, its hash, the data fingerprint."""
    fingerprint = _fingerprint(config)
    # Under accelerate/torchrun every process runs this; the single-process stages run on the
    # main process first and the others then find them cached. Training stages use all processes.
    with main_process_first():
        tokenizer_dir, tok_hash = _tokenizer_stage(config, Path(config.out_dir), fingerprint)
    return tokenizer_dir, tok_hash, fingerprint


def _teacher(config: TrainConfig) -> tuple[Path, Path, str]:
    """The tokenizer and teacher stages (run or reused): tokenizer dir, teacher dir, teacher hash."""
    tokenizer_dir, tok_hash, fingerprint = _tokenizer(config)
    teacher_dir, teacher_hash = _teacher_stage(config, Path(config.out_dir), tokenizer_dir, tok_hash,
                                               fingerprint)
    return tokenizer_dir, teacher_dir, teacher_hash


def _check_resumable(config: TrainConfig, out: Path) -> None:
    """``--resume`` with no checkpoint of any training stage: stop before any work is done."""
    dirs = [out / "teacher"] if config.teacher in PRESETS else []
    if STAGES.index(config.stop_after) >= STAGES.index("student"):
        dirs.append(out / "students" / config.student_name())
    if not any(d.glob("checkpoints/checkpoint-*") for d in dirs):
        where = " or ".join(str(d / "checkpoints") for d in dirs) or str(out)
        raise ConfigError(f"Nothing to resume: no checkpoint under {where}. Start the run without "
                          "--resume (or check --out and the stage's settings).")


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
    tok_config = TokenizerConfig(vocab_size=config.vocab_size)
    stage = Stage("tokenizer", out / "tokenizer", {**fingerprint, "tokenizer": tok_config},
                  ("tokenizer.json",))
    return stage.directory, stage.run(lambda: build_tokenizer(
        Path(config.data_dir) / "train.jsonl", stage.directory, tok_config, config.input_format(),
        config.limit, config.data(out).pool("train")))


def _teacher_stage(config, out, tokenizer_dir, tok_hash, fingerprint) -> tuple[Path, str]:
    if config.teacher not in PRESETS:
        path = Path(resolve_model_path(config.teacher))
        return path, config_hash({"teacher": str(path)})
    optim = config.optim(student=False)
    stage = Stage("teacher", out / "teacher", {"preset": config.teacher, "tokenizer": tok_hash,
                  **fingerprint, "optim": optim}, _model_files(), resumable=True,
                  resume=config.resume)

    def train_teacher():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        model = init_model(config.teacher, tokenizer, config.seed)
        train_model(model, tokenizer, Path(config.data_dir), stage.directory, optim,
                    config.input_format(), config.data(out), resume=config.resume)

    return stage.directory / "final", stage.run(train_teacher)


def logits_config_for(config: TrainConfig, teacher_dir: Path, shard_index: int | None = None):
    """The ``kdassert logits`` settings of ``config``'s logits stage. Processes started with
    these and a ``shard_index`` each (any order) fill the store the stage then finds done."""
    from distillation.logit_extract import LogitsConfig, auto_shards

    distill = config.distill
    data = Path(config.data_dir) / "train.jsonl"
    num_shards = 0  # one shard per 8,192 examples: an interrupted extraction keeps its shards
    if shard_index is not None:
        num_shards = auto_shards(len(load_examples(data, limit=config.limit)))
    return LogitsConfig(
        teacher=str(teacher_dir), data=str(data),
        out_dir=str(Path(config.out_dir) / "logits" / distill.store_name()), mode=distill.logits_mode,
        k=distill.topk, dtype=distill.topk_dtype, bits=distill.bits, batch_size=config.batch_size,
        limit=config.limit, num_shards=num_shards, shard_index=shard_index,
        exemplar_pool=str(Path(config.exemplar_pool) / "train.jsonl") if config.exemplar_pool else None,
    )


def prefill_stores(configs: list[TrainConfig]) -> list[Path]:
    """Fill the logit stores that these runs read and that are not complete yet, one pass of
    the teacher per teacher and split (a sweep over store modes pays for one forward pass, not
    one per store); their logits stages then find the shards written. Trains (or reuses) the
    teachers first. Returns the stores filled."""
    from distillation.logit_extract import SHARED_SETTINGS, extract_logit_stores

    groups: dict[tuple, dict[str, object]] = {}
    for config in configs:
        if not config.distill.reads_store:
            continue
        teacher_dir = _teacher(config)[1]
        logits = logits_config_for(config, teacher_dir)
        if (Path(logits.out_dir) / "manifest.json").is_file():
            continue
        group = groups.setdefault(tuple(getattr(logits, k) for k in SHARED_SETTINGS), {})
        group[logits.out_dir] = logits
    filled = []
    for group in groups.values():
        logger.info("teacher logits for %d stores in one pass: %s", len(group), ", ".join(group))
        filled += extract_logit_stores(list(group.values()))
    return filled


def _logits_stage(config: TrainConfig, out: Path, teacher_dir: Path, teacher_hash: str):
    distill = config.distill
    if not distill.reads_store:  # online mode, or alpha = 0
        return None, None
    from distillation.logit_extract import extract_logits

    logits_config = logits_config_for(config, teacher_dir)
    directory = Path(logits_config.out_dir)
    stage = Stage("logits", directory, {"teacher": teacher_hash, "logits": logits_config},
                  ("manifest.json",))
    return directory, stage.run(lambda: extract_logits(logits_config))


def _student_stage(config: TrainConfig, out: Path, teacher_dir: Path, logits_dir, upstream: str) -> Path:
    distill, optim = config.distill, config.optim(student=True)
    stage = Stage("student", out / "students" / config.student_name(), {
        "upstream": upstream, "student": config.student, "alpha": distill.alpha,
        "temperature": distill.temperature, "mode": distill.logits_mode,
        "format": config.input_format(), "limit": config.limit, "optim": optim,
    }, _model_files(), resumable=True, resume=config.resume)

    def train_student():
        from distillation.logit_store import LogitStore

        tokenizer = load_tokenizer(teacher_dir)
        model = init_model(config.student, tokenizer, config.seed)
        store = LogitStore.open(logits_dir) if logits_dir is not None else None
        teacher = load_seq2seq(teacher_dir)[0] if distill.runs_teacher else None
        train_model(model, tokenizer, Path(config.data_dir), stage.directory, optim,
                    config.input_format(), config.data(out), store=store, distill=distill,
                    teacher_model=teacher, resume=config.resume)

    stage.run(train_student)
    return stage.directory / "final"


def _model_files() -> tuple[str, ...]:
    return tuple(f"final/{name}" for name in MODEL_FILES)


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _bench_stage(config: TrainConfig, student_dir: Path) -> Path | None:
    """``kdassert bench`` of the student on the first validation examples (exact match and the rest)."""
    from distillation.bench import BenchConfig, run_bench

    valid = Path(config.data_dir) / "valid.jsonl"
    if config.bench_limit == 0 or not valid.is_file():
        return None
    directory = student_dir.parent / "bench"
    bench = BenchConfig(data=str(valid), models=(str(student_dir),), out=str(directory / "bench.json"),
                        limit=config.bench_limit, beams=config.bench_beams, latency_examples=0,
                        memory=False, exemplar_pool=_str(config.data(directory).pool("valid")))
    weights = {"student": str(student_dir), "mtime": (student_dir / "model.safetensors").stat().st_mtime}
    stage = Stage("bench", directory, {"model": config_hash(weights), "bench": bench},
                  ("bench.json",))

    def benchmark():
        report = run_bench(bench)
        logger.info("benchmark: exact match %.3f on %d validation examples",
                    report["rows"][0]["metrics"]["exact_match"], report["examples"])

    stage.run(benchmark)
    return directory / "bench.json"
