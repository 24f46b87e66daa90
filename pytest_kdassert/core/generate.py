"""Batched assertion generation with scores, shared by the benchmark and the pytest plugin."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Candidate:
    """One generated assertion."""

    text: str
    """Decoded model output, special tokens removed."""
    score: float
    """Mean per-token log-probability (beam search's length-normalised score)."""
    rank: int
    """0 for the model's best guess."""


@dataclass(frozen=True)
class GenerationConfig:
    """How candidates are generated."""

    num_beams: int = 5
    num_return: int | None = None
    """Candidates per input; defaults to ``num_beams``."""
    batch_size: int = 16
    max_source_tokens: int = 320
    max_new_tokens: int = 64

    def __post_init__(self):
        from pytest_kdassert.core.errors import ConfigError

        if self.num_beams < 1:
            raise ConfigError(f"num_beams must be >= 1, got {self.num_beams}")
        if self.num_return is not None and not 1 <= self.num_return <= self.num_beams:
            raise ConfigError(f"num_return must be in [1, num_beams], got {self.num_return}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")


@torch.inference_mode()
def generate_candidates(model, tokenizer, sources: Sequence[str],
                        config: GenerationConfig = GenerationConfig(), progress=None) -> list[list[Candidate]]:
    """Ranked candidates for each source, in input order.

    Inputs are sorted by length before batching so each batch pads little; ``progress`` is an
    optional callable invoked with the number of inputs finished after each batch.
    """
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    results: list[list[Candidate]] = [[] for _ in sources]
    for start in range(0, len(order), config.batch_size):
        batch_ids = order[start : start + config.batch_size]
        batch = [sources[i] for i in batch_ids]
        for index, candidates in zip(batch_ids, _generate_batch(model, tokenizer, batch, config), strict=False):
            results[index] = candidates
        if progress is not None:
            progress(len(batch_ids))
    return results


def _generate_batch(model, tokenizer, sources: list[str], config: GenerationConfig) -> list[list[Candidate]]:
    num_return = config.num_return or config.num_beams
    encoded = tokenizer(sources, max_length=config.max_source_tokens, truncation=True,
                        padding=True, return_tensors="pt").to(model.device)
    output = model.generate(
        **encoded,
        num_beams=config.num_beams,
        num_return_sequences=num_return,
        max_new_tokens=config.max_new_tokens,
        do_sample=False,
        early_stopping=config.num_beams > 1,
        return_dict_in_generate=True,
        output_scores=True,
    )
    scores = _sequence_scores(model, output, config.num_beams, tokenizer.eos_token_id)
    texts = tokenizer.batch_decode(output.sequences, skip_special_tokens=True,
                                   clean_up_tokenization_spaces=False)
    grouped = []
    for i in range(len(sources)):
        rows = range(i * num_return, (i + 1) * num_return)
        grouped.append([Candidate(texts[r].strip(), float(scores[r]), rank) for rank, r in enumerate(rows)])
    return grouped


def _sequence_scores(model, output, num_beams: int, eos_id: int) -> torch.Tensor:
    """Length-normalised log-probability of each returned sequence."""
    if num_beams > 1 and getattr(output, "sequences_scores", None) is not None:
        return output.sequences_scores
    steps = model.compute_transition_scores(output.sequences, output.scores, normalize_logits=True)
    generated = output.sequences[:, 1 : steps.shape[1] + 1]  # drop the decoder start token
    # Count every step up to and including the first </s>; later steps are padding.
    finished_before = (generated == eos_id).int().cumsum(dim=1) - (generated == eos_id).int()
    mask = finished_before == 0
    steps = steps.masked_fill(~mask, 0.0)
    return steps.sum(dim=1) / mask.sum(dim=1).clamp(min=1)


@torch.inference_mode()
def score_targets(model, tokenizer, pairs: Sequence[tuple[str, str]],
                  config: GenerationConfig = GenerationConfig()) -> list[float]:
    """Mean per-token log-probability of each ``(source, target)`` pair under the model.

    The same scale as a beam candidate's score, so given texts (templates, say) can be
    ranked against what the model generated. Each distinct source is encoded once, however
    many targets it comes with (a site's templates share its input); sources are batched
    by length, and their targets decoded in batches against the stored encoder states.
    """
    from transformers.modeling_outputs import BaseModelOutput

    by_source: dict[str, list[int]] = {}
    for index, (source, _) in enumerate(pairs):
        by_source.setdefault(source, []).append(index)
    sources = sorted(by_source, key=len)
    scores = [0.0] * len(pairs)
    encoder = model.get_encoder()
    for start in range(0, len(sources), config.batch_size):
        batch = sources[start : start + config.batch_size]
        encoded = tokenizer(batch, max_length=config.max_source_tokens, truncation=True,
                            padding=True, return_tensors="pt").to(model.device)
        states = encoder(**encoded).last_hidden_state
        rows = [(row, index) for row, source in enumerate(batch) for index in by_source[source]]
        for chunk_start in range(0, len(rows), config.batch_size):
            chunk = rows[chunk_start : chunk_start + config.batch_size]
            which = torch.tensor([row for row, _ in chunk], device=model.device)
            labels = tokenizer(text_target=[pairs[index][1] for _, index in chunk],
                               max_length=config.max_new_tokens, truncation=True, padding=True,
                               return_tensors="pt").input_ids.to(model.device)
            mask = labels != tokenizer.pad_token_id
            logits = model(encoder_outputs=BaseModelOutput(last_hidden_state=states[which]),
                           attention_mask=encoded.attention_mask[which],
                           labels=labels.masked_fill(~mask, -100)).logits
            token_logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
            means = (token_logp * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
            for (_, index), value in zip(chunk, means.tolist(), strict=True):
                scores[index] = value
    return scores
