"""Model presets, loading, and the checks that keep teacher and student compatible.

Code that loads a model takes a local directory. A hub id (``Salesforce/codet5-base``) is
passed through for users who are online; ``default`` is the student bundled in the package.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

from distillation.errors import (
    ConfigError,
    CorruptModelError,
    ModelNotFoundError,
    VocabMismatchError,
)
from distillation.input_format import InputFormatConfig

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "default"
FORMAT_FILE = "kdassert_format.json"
"""Written beside every model kdassert trains: the InputFormatConfig it was trained with."""

# T5 (v1.0, ReLU) shapes. Parameter counts are for an 8k vocabulary with tied embeddings.
PRESETS: dict[str, dict] = {
    # ~46M: 6+6 layers of width 512.
    "teacher": dict(d_model=512, d_ff=2048, d_kv=64, num_heads=8, num_layers=6, num_decoder_layers=6),
    # ~9.5M, under a quarter of the teacher: 4+4 layers of width 256.
    "student": dict(d_model=256, d_ff=1024, d_kv=32, num_heads=8, num_layers=4, num_decoder_layers=4),
    # ~3M: a smaller student for the size/quality trade-off.
    "student-small": dict(d_model=192, d_ff=768, d_kv=32, num_heads=6, num_layers=3, num_decoder_layers=3),
    # ~2.3M, under a quarter of "student": the CPU pair is student (as teacher) -> student-mini.
    # A shallow 2-layer decoder, since decoding steps dominate per-assertion latency.
    "student-mini": dict(d_model=128, d_ff=448, d_kv=32, num_heads=4, num_layers=4, num_decoder_layers=2),
    # A few thousand parameters besides the embeddings: for tests only.
    "tiny": dict(d_model=32, d_ff=64, d_kv=8, num_heads=2, num_layers=1, num_decoder_layers=1),
}


def default_model_dir() -> Path:
    """Where the bundled default student lives inside the installed package."""
    import pytest_kdassert

    return Path(pytest_kdassert.__file__).parent / "default_model"


def resolve_model_path(spec: str | os.PathLike) -> str:
    """Turn ``default``, a directory or a hub id into something ``from_pretrained`` loads.

    Raises ModelNotFoundError with the next step when nothing usable is there.
    """
    spec = str(spec)
    if spec == DEFAULT_MODEL:
        directory = default_model_dir()
        if not (directory / "config.json").is_file():
            raise ModelNotFoundError(
                f"No bundled default model is installed (looked in {directory}). Train one with "
                "`kdassert train` and pass its directory, e.g. --kdassert-model runs/cpu/students/student-topk-a0.5-T2/final."
            )
        return str(directory)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"{path} is not a model directory: it has no config.json. Point at the "
                "directory that `kdassert train` wrote (it holds config.json and model.safetensors)."
            )
        return str(path)
    if _looks_like_hub_id(spec) and not path.exists():
        return spec  # for users who are online; from_pretrained will fetch it
    raise ModelNotFoundError(f"Model {spec!r} not found: no such directory.")


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "/", "~"))


def load_tokenizer(spec: str | os.PathLike):
    """Load the tokenizer stored with a model (``default``, a directory or a hub id)."""
    from transformers import AutoTokenizer

    path = resolve_model_path(spec)
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise CorruptModelError(f"Cannot load the tokenizer from {path}: {exc}") from exc


def load_seq2seq(spec: str | os.PathLike, *, device: str = "cpu", dtype=None):
    """Load ``(model, tokenizer)`` for inference; the model is in eval mode on ``device``."""
    from transformers import AutoModelForSeq2SeqLM

    path = resolve_model_path(spec)
    tokenizer = load_tokenizer(path)
    try:
        with _no_progress_bar():  # a few MB load instantly; the bar would only clutter pytest output
            model = AutoModelForSeq2SeqLM.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
        raise CorruptModelError(
            f"Cannot load the model in {path}: {exc}. Retrain it or reinstall the package."
        ) from exc
    if model.config.vocab_size < len(tokenizer):
        raise CorruptModelError(
            f"{path}: the model's vocabulary ({model.config.vocab_size}) is smaller than its "
            f"tokenizer's ({len(tokenizer)}); the directory mixes files from different runs."
        )
    return model.to(device).eval(), tokenizer


@contextlib.contextmanager
def _no_progress_bar():
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def build_model(preset: str, tokenizer, **overrides):
    """A randomly initialised T5 of a preset's shape, sized for ``tokenizer``'s vocabulary."""
    from transformers import T5Config, T5ForConditionalGeneration

    if preset not in PRESETS:
        raise ConfigError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    settings = dict(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        dropout_rate=0.1,
        feed_forward_proj="relu",
        tie_word_embeddings=True,
    )
    config = T5Config(**{**settings, **PRESETS[preset], **overrides})
    return T5ForConditionalGeneration(config)


def count_parameters(model) -> int:
    """Number of distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())


def check_same_vocabulary(teacher_tokenizer, student_tokenizer) -> None:
    """Refuse a teacher/student pair whose token ids mean different things."""
    teacher_vocab, student_vocab = teacher_tokenizer.get_vocab(), student_tokenizer.get_vocab()
    if teacher_vocab != student_vocab:
        only_teacher = len(set(teacher_vocab) - set(student_vocab))
        only_student = len(set(student_vocab) - set(teacher_vocab))
        raise VocabMismatchError(
            f"Teacher and student vocabularies differ (teacher {len(teacher_vocab)} tokens, "
            f"student {len(student_vocab)}; {only_teacher} only in the teacher, {only_student} "
            "only in the student). Distillation compares logits token by token, so both must use "
            "the same tokenizer: build the student with the teacher's tokenizer."
        )


def save_format_config(directory: str | os.PathLike, config: InputFormatConfig) -> None:
    """Record the input format a model was trained with, beside its weights."""
    from distillation.atomic import write_text_atomic

    write_text_atomic(Path(directory) / FORMAT_FILE, json.dumps(asdict(config), indent=2) + "\n")


def load_format_config(spec: str | os.PathLike) -> InputFormatConfig:
    """The InputFormatConfig saved with a model, or the default for foreign models."""
    path = Path(resolve_model_path(spec)) / FORMAT_FILE
    if not path.is_file():
        return InputFormatConfig()
    try:
        return InputFormatConfig(**json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as exc:
        raise CorruptModelError(f"{path} is not a valid input-format file: {exc}") from exc
