"""Where models live and how they load: shared by the plugin, the benchmark and training.

Code that loads a model takes a local directory. A hub id (``Salesforce/codet5-base``) is
passed through for users who are online; ``default`` is the student bundled with the core
(``pytest_kdassert/core/default_model/``), found through ``importlib.resources``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import asdict
from importlib import resources
from pathlib import Path

from pytest_kdassert.core.atomic import write_text_atomic
from pytest_kdassert.core.errors import CorruptModelError, KdassertError, ModelNotFoundError
from pytest_kdassert.core.input_format import InputFormatConfig

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "default"
FORMAT_FILE = "kdassert_format.json"
"""Written beside every model kdassert trains: the InputFormatConfig it was trained with."""


def default_model_dir() -> Path:
    """Where the bundled default student lives inside the installed package."""
    return Path(str(resources.files(__package__) / "default_model"))


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
    with _unreadable_as_corrupt(f"Cannot load the tokenizer from {path}"):
        return AutoTokenizer.from_pretrained(path)


def load_seq2seq(spec: str | os.PathLike, *, device: str = "cpu", dtype=None):
    """Load ``(model, tokenizer)`` for inference; the model is in eval mode on ``device``."""
    from transformers import AutoModelForSeq2SeqLM

    path = resolve_model_path(spec)
    tokenizer = load_tokenizer(path)
    with _unreadable_as_corrupt(f"Cannot load the model in {path}"), no_progress_bars():
        # a few MB load instantly; the bar would only clutter pytest output
        model = AutoModelForSeq2SeqLM.from_pretrained(path, dtype=dtype)
    if model.config.vocab_size < len(tokenizer):
        raise CorruptModelError(
            f"{path}: the model's vocabulary ({model.config.vocab_size}) is smaller than its "
            f"tokenizer's ({len(tokenizer)}); the directory mixes files from different runs."
        )
    return model.to(device).eval(), tokenizer


@contextlib.contextmanager
def _unreadable_as_corrupt(what: str):
    """Turn whatever a damaged model file raises into one-line :class:`CorruptModelError`.

    transformers, safetensors (``SafetensorError``) and tokenizers (a bare ``Exception``)
    raise many unrelated types for a truncated or altered file, so everything but our own
    errors and interrupts is caught here, at the one place model files are read.
    """
    try:
        yield
    except KdassertError:
        raise
    except Exception as exc:  # noqa: BLE001 - see the docstring
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise CorruptModelError(
            f"{what}: {detail[:300]}. A file is damaged or from another model: retrain it, "
            "copy it again or reinstall the package."
        ) from exc


@contextlib.contextmanager
def no_progress_bars():
    """Hide the library's progress bars (loading, saving) for the block."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def save_format_config(directory: str | os.PathLike, config: InputFormatConfig) -> None:
    """Record the input format a model was trained with, beside its weights."""
    write_text_atomic(Path(directory) / FORMAT_FILE, json.dumps(asdict(config), indent=2) + "\n")


def load_format_config(spec: str | os.PathLike) -> InputFormatConfig:
    """The InputFormatConfig saved with a model, or the default for foreign models."""
    path = Path(resolve_model_path(spec)) / FORMAT_FILE
    if not path.is_file():
        return InputFormatConfig()
    try:
        return InputFormatConfig(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:  # JSON and UTF-8 errors are ValueErrors
        raise CorruptModelError(f"{path} is not a valid input-format file ({exc}); copy the "
                                "model directory again or retrain it.") from exc
