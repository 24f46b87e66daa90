"""Model presets, construction, and the checks that keep teacher and student compatible.

Loading a trained model (``default``, a directory) is the core's job:
:mod:`pytest_kdassert.core.loading`.
"""

from __future__ import annotations

from pytest_kdassert.core.errors import ConfigError, VocabMismatchError

# T5 (v1.0, ReLU) shapes. Parameter counts are for an 8k vocabulary with tied embeddings.
PRESETS: dict[str, dict] = {
    # ~46M: 6+6 layers of width 512.
    "teacher": dict(d_model=512, d_ff=2048, d_kv=64, num_heads=8, num_layers=6, num_decoder_layers=6),
    # ~74M, for the GPU route (distillation.gpu_route): 6+6 layers of width 640.
    "teacher-gpu": dict(d_model=640, d_ff=2560, d_kv=64, num_heads=10, num_layers=6, num_decoder_layers=6),
    # ~9.5M, under a quarter of the teacher: 4+4 layers of width 256.
    "student": dict(d_model=256, d_ff=1024, d_kv=32, num_heads=8, num_layers=4, num_decoder_layers=4),
    # ~3M: a smaller student for the size/quality trade-off.
    "student-small": dict(d_model=192, d_ff=768, d_kv=32, num_heads=6, num_layers=3, num_decoder_layers=3),
    # ~2.3M, under a quarter of "student": the CPU pair is student (as teacher) -> student-mini.
    # A shallow 2-layer decoder, since decoding steps dominate per-assertion latency.
    "student-mini": dict(d_model=128, d_ff=448, d_kv=32, num_heads=4, num_layers=4, num_decoder_layers=2),
    # ~3.8M (14.6 MiB of fp32 weights: one file under the GPU route's 15 MiB per file), wider
    # than student-mini with the same shallow 2-layer decoder.
    "student-gpu": dict(d_model=192, d_ff=640, d_kv=32, num_heads=6, num_layers=3, num_decoder_layers=2),
    # A few thousand parameters besides the embeddings: for tests only.
    "tiny": dict(d_model=32, d_ff=64, d_kv=8, num_heads=2, num_layers=1, num_decoder_layers=1),
}


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
