"""A faster T5 attention and layer norm for CPU training, numerically equal to the library's.

The library's T5 attention (``sdpa``) rebuilds the ``(B, H, Lq, Lk)`` additive mask (relative
position bias + padding) in every layer, drops out attention probabilities (a Bernoulli draw over
``B*H*Lq*Lk`` elements per layer) and, because that mask needs a gradient, runs SDPA's unfused
"math" path with its safe-softmax checks. :func:`t5_attention` builds the mask once per stack and
forward pass (every layer of a T5 stack shares one position bias), does no attention dropout, and
runs plain matmul -> softmax -> matmul. :class:`FusedT5LayerNorm` computes T5's RMS norm with
``torch.nn.functional.rms_norm``.

Nothing here changes the weights or their names: a model trained this way saves and loads as a
plain T5 (the attention implementation is not written to ``config.json``).
"""

from __future__ import annotations

import torch

ATTENTION = "kdassert_t5"
"""Name under which :func:`t5_attention` is registered with transformers."""
LIBRARY_ATTENTION = "sdpa"


def t5_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                 position_bias=None, **kwargs):
    """T5 attention without attention dropout. query (B, H, Lq, D), key/value (B, H, Lk, D),
    attention_mask additive float (B, 1, Lq, Lk) or None, position_bias (1 or B, H, Lq, Lk).
    Returns ((B, Lq, H, D), None) like the library's attention functions."""
    if scaling is not None and scaling != 1.0:
        query = query * scaling
    scores = torch.matmul(query, key.transpose(-1, -2))
    bias = _combined_bias(position_bias, attention_mask)
    if bias is not None:
        scores = scores + bias
    probs = torch.softmax(scores, dim=-1)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


def _combined_bias(position_bias, attention_mask):
    """position_bias + attention_mask, computed once per (bias, mask) pair: the layers of a stack
    pass the same two tensors, so the sum is cached on the bias tensor for the forward pass."""
    if attention_mask is not None and attention_mask.dtype == torch.bool:
        attention_mask = torch.zeros(attention_mask.shape, dtype=position_bias.dtype,
                                     device=attention_mask.device).masked_fill(
            ~attention_mask, torch.finfo(position_bias.dtype).min)
    if position_bias is None or attention_mask is None:
        return position_bias if attention_mask is None else attention_mask
    cached = getattr(position_bias, "_kdassert_bias", None)
    if cached is not None and cached[0] is attention_mask:
        return cached[1]
    combined = position_bias + attention_mask
    position_bias._kdassert_bias = (attention_mask, combined)
    return combined


def register() -> None:
    """Make ``ATTENTION`` known to transformers (attention and its additive float mask)."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import eager_mask

    AttentionInterface.register(ATTENTION, t5_attention)
    AttentionMaskInterface.register(ATTENTION, eager_mask)


class FusedT5LayerNorm(torch.nn.Module):
    """T5's layer norm (RMS norm, no bias, no mean) in one fused op; same ``weight`` parameter."""

    def __init__(self, weight: torch.nn.Parameter, eps: float):
        super().__init__()
        self.weight = weight
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        return torch.nn.functional.rms_norm(hidden_states, self.weight.shape, self.weight,
                                            self.variance_epsilon)


def use_fast_t5(model, layer_norm: bool = True):
    """Switch a T5 model to :func:`t5_attention` (and :class:`FusedT5LayerNorm`) in place."""
    register()
    model.set_attn_implementation(ATTENTION)
    if layer_norm:
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if type(child).__name__ == "T5LayerNorm":
                    setattr(parent, name, FusedT5LayerNorm(child.weight, child.variance_epsilon))
    return model


def use_library_t5(model):
    """Back to the library's attention (for saving or inference); fused layer norms stay (same math)."""
    model.set_attn_implementation(LIBRARY_ATTENTION)
    return model
