"""The stages of ``kdassert train`` and the cache that skips a stage whose output is valid.

Each stage writes ``kdassert_stage.json`` beside its output, last: the stage's resolved config
and its hash. A stage is skipped when that file exists with the same hash and its outputs are
present; anything else (no file, other settings, an interrupted run) redoes the stage.
Every stage goes through :meth:`Stage.run`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, fields, is_dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

from distillation.allocator import keep_freed_memory
from distillation.data import Seq2SeqCollator
from distillation.fast_t5 import use_fast_t5
from distillation.models import PRESETS, build_model, check_same_vocabulary
from distillation.resume import StableCheckpoint
from distillation.sources import example_sources
from distillation.time_budget import TimeBudget
from distillation.token_cache import load_tokenized
from distillation.tokenizer import TokenizerConfig, save_tokenizer, train_tokenizer
from distillation.trainer import (
    FINE_TUNE,
    DistillationTrainer,
    DistillConfig,
    OptimConfig,
    run_trainer,
    training_args,
)
from pytest_kdassert.core.atomic import write_text_atomic
from pytest_kdassert.core.errors import ConfigError
from pytest_kdassert.core.input_format import InputFormatConfig, build_target
from pytest_kdassert.core.loading import load_tokenizer, resolve_model_path, save_format_config
from pytest_kdassert.core.records import load_examples

logger = logging.getLogger(__name__)

STAGE_FILE = "kdassert_stage.json"


# --- stage cache ----------------------------------------------------------------------------

def config_hash(resolved: dict) -> str:
    """The hash of a stage's settings. Config dataclasses count by the fields that differ from
    their defaults, so a field added in a later kdassert, at its default, keeps the hashes of
    existing outputs and checkpoints (they stay cached and resumable across an upgrade)."""
    return _hash(_plain(resolved, sparse=True))


def _hash(plain) -> str:
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _plain(value, *, sparse: bool):
    """JSON-able form of settings: a config dataclass becomes a dict of its fields (``sparse``:
    only the fields away from their defaults)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name), sparse=sparse) for f in fields(value)
                if not (sparse and _at_default(value, f))}
    if isinstance(value, dict):
        return {key: _plain(item, sparse=sparse) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item, sparse=sparse) for item in value]
    return value


def _json(value):
    """``value`` as it reads back from JSON (tuples become lists, paths strings)."""
    return json.loads(json.dumps(_plain(value, sparse=False), default=str))


def _at_default(config, field) -> bool:
    if field.default is not MISSING:
        default = field.default
    elif field.default_factory is not MISSING:
        default = field.default_factory()
    else:
        return False
    return _json(getattr(config, field.name)) == _json(default)


def _record_matches(recorded, value) -> bool:
    """Whether a stage record written by an older kdassert (it listed every field of each config,
    and hashed them all) describes these settings: the same values, and each field it lacks
    (added since) at its default."""
    if is_dataclass(value) and not isinstance(value, type):
        names = {f.name for f in fields(value)}
        if not isinstance(recorded, dict) or not set(recorded) <= names:
            return False
        return all(_record_matches(recorded[f.name], getattr(value, f.name)) if f.name in recorded
                   else _at_default(value, f) for f in fields(value))
    if isinstance(value, dict):
        return (isinstance(recorded, dict) and recorded.keys() == value.keys()
                and all(_record_matches(recorded[key], item) for key, item in value.items()))
    return recorded == _json(value)


def recorded_hash(directory: Path, resolved: dict, required: tuple[str, ...]) -> str | None:
    """The hash ``directory``'s output was recorded under, when it holds this stage's output
    for ``resolved`` (None: no valid output). Outputs of an older kdassert keep their hash,
    so the stages that depend on them stay cached too."""
    marker = directory / STAGE_FILE
    if not marker.is_file() or not all((directory / r).exists() for r in required):
        return None
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    if not isinstance(recorded, dict):
        return None
    if recorded.get("hash") == config_hash(resolved) or _record_matches(recorded.get("config"), resolved):
        return recorded["hash"]
    return None


def stage_is_valid(directory: Path, resolved: dict, required: tuple[str, ...]) -> bool:
    """True when ``directory`` holds this stage's output for exactly ``resolved``."""
    return recorded_hash(directory, resolved, required) is not None


def mark_stage(directory: Path, resolved: dict, seconds: float | None = None) -> None:
    """Record the resolved config (every field, for people to read) beside the output; written
    last, so it marks completion. ``seconds``: wall time of the work that made the output (of
    the last session, if resumed)."""
    payload = {"hash": config_hash(resolved), "config": _plain(resolved, sparse=False), "seconds": seconds}
    write_text_atomic(directory / STAGE_FILE, json.dumps(payload, indent=2, default=str) + "\n")


def stage_seconds(directory: Path) -> float | None:
    """Wall time recorded when the stage in ``directory`` ran (None: unknown, or never ran)."""
    try:
        return json.loads((directory / STAGE_FILE).read_text(encoding="utf-8")).get("seconds")
    except (OSError, json.JSONDecodeError):
        return None


BUDGET_KEYS = ("max_steps", "epochs")
"""Optimiser settings a run can change and still continue from its checkpoints."""


def resume_settings(resolved: dict, *, sparse: bool = True) -> dict:
    """What checkpoints belong to: the settings less the step budget (a run continued with a
    larger max_steps keeps its checkpoints), as plain JSON-able values."""
    plain = _plain(resolved, sparse=sparse)
    if "optim" not in plain:
        return plain
    return {**plain, "optim": {k: v for k, v in plain["optim"].items() if k not in BUDGET_KEYS}}


def clear_stage(directory: Path, resolved: dict | None = None, resume: bool = False) -> None:
    """Prepare a stage to (re)run: drop its completion marker, so a crash never looks complete,
    and drop checkpoints left by a run with other settings (same settings, whatever the step
    budget: they are continued). ``resume``: refuse instead of dropping them."""
    (directory / STAGE_FILE).unlink(missing_ok=True)
    checkpoints = directory / "checkpoints"
    if resolved is None:
        return
    owner = checkpoints / "kdassert_config_hash"
    mine = config_hash(resume_settings(resolved))
    # owner files of older versions hold the hash of every field (and before that, of the budget too)
    accepted = {mine, _hash(resume_settings(resolved, sparse=False)), _hash(_plain(resolved, sparse=False))}
    if checkpoints.is_dir() and (not owner.is_file() or owner.read_text().strip() not in accepted):
        if resume:
            raise ConfigError(f"Cannot resume: the checkpoints in {checkpoints} were made with other "
                              "settings; --resume continues a run with the same settings (only "
                              "max_steps / epochs may grow). Drop --resume to start afresh.")
        logger.info("discarding checkpoints of other settings in %s", checkpoints)
        shutil.rmtree(checkpoints)
    checkpoints.mkdir(parents=True, exist_ok=True)
    owner.write_text(mine + "\n")


@dataclass(frozen=True)
class Stage:
    """One cached step of ``kdassert train``: its output directory and what that output depends on."""

    name: str
    directory: Path
    settings: dict
    """Everything the output depends on (JSON-able values and config dataclasses); a change
    redoes the stage."""
    outputs: tuple[str, ...] = ()
    """Paths under ``directory`` that must exist for the cached output to count."""
    resumable: bool = False
    """A training stage: keep the checkpoints of an interrupted run with the same settings."""
    resume: bool = False
    """``--resume``: this stage must continue its checkpoints (an error if it would drop them)."""

    @property
    def resolved(self) -> dict:
        """What ``kdassert_stage.json`` records, and what the stage's hash is taken of."""
        return {"stage": self.name, **self.settings}

    @property
    def hash(self) -> str:
        return config_hash(self.resolved)

    def run(self, work: Callable[[], object]) -> str:
        """Call ``work`` unless the output is cached for these settings; returns the stage hash
        (the one the cached output was recorded under, for the stages that depend on it)."""
        cached = recorded_hash(self.directory, self.resolved, self.outputs)
        if cached is not None:
            logger.info("%s: cached in %s", self.name, self.directory)
            return cached
        clear_stage(self.directory, self.resolved if self.resumable else None, self.resume)
        start = time.perf_counter()
        work()
        mark_stage(self.directory, self.resolved, time.perf_counter() - start)
        return self.hash


# --- tokenizer ------------------------------------------------------------------------------

def tokenizer_texts(data_path: Path, fmt: InputFormatConfig, limit: int | None = None,
                    pool_path: Path | None = None):
    """Model input texts and targets of a split: what the tokenizer must encode well."""
    examples = load_examples(data_path, limit=limit)
    pool = load_examples(pool_path) if pool_path is not None and fmt.version >= 2 else None
    for example, source in zip(examples, example_sources(examples, fmt, pool), strict=True):
        yield source
        yield build_target(example.assertion)


def build_tokenizer(data_path: Path, out_dir: Path, config: TokenizerConfig,
                    fmt: InputFormatConfig, limit: int | None = None,
                    pool_path: Path | None = None) -> Path:
    """Train the byte-level BPE on a split and save it to ``out_dir``."""
    tokenizer = train_tokenizer(tokenizer_texts(Path(data_path), fmt, limit, pool_path), config)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_tokenizer(tokenizer, out_dir)
    logger.info("tokenizer with %d tokens written to %s", len(tokenizer), out_dir)
    return out_dir


# --- models ---------------------------------------------------------------------------------

def init_model(spec: str, tokenizer, seed: int):
    """A preset built for ``tokenizer``'s vocabulary, or a model directory loaded for training."""
    from transformers import AutoModelForSeq2SeqLM

    if spec in PRESETS:
        torch.manual_seed(seed)
        return build_model(spec, tokenizer)
    path = resolve_model_path(spec)
    check_same_vocabulary(tokenizer, load_tokenizer(path))
    return AutoModelForSeq2SeqLM.from_pretrained(path)


def save_final(model_dir: Path, tokenizer, fmt: InputFormatConfig) -> None:
    """Make ``model_dir`` loadable by ``load_seq2seq``: tokenizer and input format beside the weights."""
    tokenizer.save_pretrained(str(model_dir))
    save_format_config(model_dir, fmt)


@dataclass(frozen=True)
class DataConfig:
    """Where a training stage's token ids come from."""

    limit: int | None = None
    """Use only the first N examples of each split."""
    cache_dir: Path | None = None
    """Token-id cache (:mod:`distillation.token_cache`); None: tokenise in memory."""
    eval_examples: int = 0
    """Evaluate on this many validation examples, evenly spaced over the split (0: all)."""
    exemplar_pool: Path | None = None
    """Dataset directory whose same-named split gives each split's exemplars (format v2); None:
    the split itself. For a ``kdassert sample`` subset: the dataset it was drawn from."""

    def pool(self, split: str) -> Path | None:
        return None if self.exemplar_pool is None else Path(self.exemplar_pool) / f"{split}.jsonl"


def train_model(model, tokenizer, data_dir: Path, out_dir: Path, optim: OptimConfig,
                fmt: InputFormatConfig, data: DataConfig = DataConfig(), *, store=None,
                distill: DistillConfig = FINE_TUNE, teacher_model=None, resume: bool = False) -> Path:
    """Train ``model`` on ``data_dir``/train.jsonl (evaluating on valid.jsonl); returns final dir.
    ``resume``: continue the newest checkpoint (an error when there is none)."""
    train = load_tokenized(data_dir / "train.jsonl", tokenizer, fmt, data.limit,
                           with_index=store is not None, cache_dir=data.cache_dir,
                           pool_path=data.pool("train"))
    valid = _valid_split(data_dir / "valid.jsonl", tokenizer, fmt, data)
    return train_on_splits(model, tokenizer, train, valid, out_dir, optim, fmt, store=store,
                           distill=distill, teacher_model=teacher_model, resume=resume)


def train_on_splits(model, tokenizer, train, valid, out_dir: Path, optim: OptimConfig,
                    fmt: InputFormatConfig, *, store=None, distill: DistillConfig = FINE_TUNE,
                    teacher_model=None, resume: bool = False) -> Path:
    """Train ``model`` on tokenised splits (``valid`` may be None); returns ``out_dir/final``,
    saved with ``tokenizer`` and ``fmt`` so :func:`load_seq2seq` loads it."""
    if store is not None and store.num_examples != len(train):
        raise_store_mismatch(store, len(train))
    optim = optim.for_split(len(train))
    if optim.keep_freed_memory and not torch.cuda.is_available():
        keep_freed_memory()
    if optim.attention == "fused":
        use_fast_t5(model)
    trainer = DistillationTrainer(
        model=model, args=training_args(optim, out_dir / "checkpoints", valid is not None),
        data_collator=Seq2SeqCollator(tokenizer, store=store), train_dataset=train,
        eval_dataset=valid, processing_class=tokenizer, distill=distill, teacher_model=teacher_model,
        length_buckets=optim.sampler == "buckets", callbacks=_callbacks(optim, fmt),
        time_budget=_time_budget(optim),
    )
    final = out_dir / "final"
    if final.exists() and trainer.is_world_process_zero():
        shutil.rmtree(final)
    run_trainer(trainer, final, optim, resume=resume)
    if trainer.is_world_process_zero():
        save_final(final, tokenizer, fmt)
    return final


def _callbacks(optim: OptimConfig, fmt: InputFormatConfig) -> list:
    callbacks = [FormatRecorder(fmt)]
    if optim.lr_schedule == "wsd" and optim.checkpoints and not optim.max_seconds:
        callbacks.append(StableCheckpoint(optim.decay_start()))
    return callbacks


class FormatRecorder(TrainerCallback):
    """Writes ``kdassert_format.json`` into every checkpoint (the Trainer saves the tokenizer
    there already), so a checkpoint loads and is benchmarked like a final model: a learning
    curve (``benchmarks/learning_curve.py``) scores checkpoints while the run goes on."""

    def __init__(self, fmt: InputFormatConfig):
        self.fmt = fmt

    def on_save(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and checkpoint.is_dir():
            save_format_config(checkpoint, self.fmt)


def _time_budget(optim: OptimConfig) -> TimeBudget | None:
    if not optim.max_seconds:
        return None
    return TimeBudget(optim.max_seconds, optim.warmup_ratio, optim.decay_ratio,
                      warmup_steps=optim.warmup_steps)


def eval_subset(split, examples: int):
    """``examples`` evenly spaced items of ``split`` (all of it for 0 or more than it holds)."""
    if not examples or examples >= len(split):
        return split
    picks = np.linspace(0, len(split) - 1, examples).round().astype(int)
    return torch.utils.data.Subset(split, picks.tolist())


def _valid_split(path: Path, tokenizer, fmt: InputFormatConfig, data: DataConfig):
    if not path.is_file():
        return None
    split = load_tokenized(path, tokenizer, fmt, data.limit, cache_dir=data.cache_dir,
                           pool_path=data.pool(path.stem))
    return eval_subset(split, data.eval_examples)


def raise_store_mismatch(store, num_train: int):
    from pytest_kdassert.core.errors import DataError

    raise DataError(f"The logit store in {store.directory} holds {store.num_examples} examples but the "
                    f"training split has {num_train}; rebuild it with `kdassert logits`.")


def asdict_all(*configs) -> dict:
    return {type(c).__name__: asdict(c) for c in configs}
