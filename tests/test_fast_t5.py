"""The fused T5 attention and RMS norm against the library's eager T5: same numbers."""

from __future__ import annotations

import copy

import pytest
import torch

from distillation.fast_t5 import ATTENTION, FusedT5LayerNorm, t5_attention, use_fast_t5
from distillation.models import build_model


@pytest.fixture()
def pair(tiny_tokenizer):
    """A tiny T5 without dropout on the library's eager attention, and its fused copy."""
    torch.manual_seed(0)
    eager = build_model("tiny", tiny_tokenizer, dropout_rate=0.0, num_layers=2, num_decoder_layers=2)
    eager.set_attn_implementation("eager")
    return eager, use_fast_t5(copy.deepcopy(eager))


def _batch(vocab: int):
    gen = torch.Generator().manual_seed(1)
    input_ids = torch.randint(5, vocab, (3, 13), generator=gen)
    mask = torch.ones(3, 13, dtype=torch.long)
    mask[1, 9:] = 0
    mask[2, 4:] = 0
    labels = torch.randint(5, vocab, (3, 6), generator=gen)
    labels[2, 4:] = -100
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def test_fused_forward_and_gradients_equal_eager(pair):
    eager, fused = pair
    assert fused.config._attn_implementation == ATTENTION
    assert any(isinstance(m, FusedT5LayerNorm) for m in fused.modules())
    batch = _batch(eager.config.vocab_size)
    out_e, out_f = eager(**batch), fused(**batch)
    torch.testing.assert_close(out_f.logits, out_e.logits, rtol=1e-5, atol=1e-5)
    out_e.loss.backward()
    out_f.loss.backward()
    grads = dict(fused.named_parameters())
    for name, param in eager.named_parameters():
        torch.testing.assert_close(grads[name].grad, param.grad, rtol=1e-4, atol=1e-6, msg=name)
    # the relative position bias is learned through the cached mask: its gradient is not zero
    bias = eager.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight
    assert bias.grad.abs().sum() > 0


def test_fused_generation_equals_eager(pair):
    """Decoding with the key/value cache (one query at a time) takes the same path."""
    eager, fused = pair
    eager.eval(), fused.eval()
    batch = _batch(eager.config.vocab_size)
    kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
              "max_new_tokens": 6, "num_beams": 2, "do_sample": False}
    assert torch.equal(fused.generate(**kwargs), eager.generate(**kwargs))


def test_mask_is_built_once_per_stack(pair, monkeypatch):
    """Every layer of a stack gets the same (bias, mask) pair: the sum is computed once."""
    eager, fused = pair
    calls = []
    def counting(module, query, key, value, attention_mask, **kwargs):
        calls.append(kwargs["position_bias"])
        return t5_attention(module, query, key, value, attention_mask, **kwargs)

    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION, counting)
    try:
        fused(**_batch(eager.config.vocab_size))
    finally:
        AttentionInterface.register(ATTENTION, t5_attention)
    encoder_biases = calls[:2]  # encoder layers come first
    assert encoder_biases[0] is encoder_biases[1]
    assert encoder_biases[0]._kdassert_bias[1].shape == (3, 2, 13, 13)


def test_saved_fused_model_loads_as_plain_t5(pair, tmp_path):
    from transformers import T5ForConditionalGeneration

    eager, fused = pair
    fused.save_pretrained(tmp_path)
    loaded = T5ForConditionalGeneration.from_pretrained(tmp_path)
    assert loaded.config._attn_implementation != ATTENTION
    batch = _batch(eager.config.vocab_size)
    torch.testing.assert_close(loaded.eval()(**batch).logits, eager.eval()(**batch).logits,
                               rtol=1e-5, atol=1e-5)
