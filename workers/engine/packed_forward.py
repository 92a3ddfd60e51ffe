"""The update's forward pass for Llama-family policies: each row's real tokens packed to its
front, so attention is plain causal attention with no mask, through the fewer-kernel layer
arithmetic of ``llama_layers``.

Rollout rows are left-padded prompts followed by right-padded completions. Hugging Face's
forward over that layout needs a 4-D attention mask, which rules out FlashAttention on CUDA
(the memory-efficient kernel runs instead, with a slower backward), and it trains on the
padding columns too. Here the real tokens of each row move to its front, in order: positions
are then 0, 1, 2, ... for every row (what ``position_ids_from_mask`` gives the real tokens),
padding only follows a row's end, where causal attention never looks back at it, and the
batch is trimmed to its longest real row. The hidden states of the real tokens equal Hugging
Face's up to rounding (float32: the same operations in another order; bfloat16: about one
ulp, see ``llama_layers``).

A mask with a hole inside a row (a 0 between real tokens) is read as "these tokens are not
there": the token after the hole is predicted from the real token before it, at the next
position. Hugging Face's forward would read that prediction off the hole's own column. Rollouts
never make such rows (prompts are left-padded, completion masks are prefixes).

``supported(model)`` says whether a model qualifies (``llama_layers.trains_like_hf``).
Inside ``with compiled_layers(True)`` (the update with ``train.compile_layers``) each layer's
RMSNorms, its split of q/k/v with RoPE, and its SwiGLU run, forward and backward, as compiled
kernels (``fused_pointwise``).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import fused_pointwise
from .llama_layers import (add_linear, attention_inputs, gate_up_linears, mlp_hidden,
                           qkv_linears, rms_norm, rope_tables, stacked_linear, trains_like_hf)

supported = trains_like_hf

_COMPILED = contextvars.ContextVar("compiled_layers", default=False)


@contextlib.contextmanager
def compiled_layers(on: bool) -> Iterator[None]:
    """Within it, ``packed_hidden_states`` runs RMSNorm, RoPE and SwiGLU through
    ``fused_pointwise`` when ``on`` (a setting of the update, as ``sdpa_kernel`` is of its
    attention)."""
    token = _COMPILED.set(on)
    try:
        yield
    finally:
        _COMPILED.reset(token)


@dataclass
class PackedHidden:
    """hidden (N, W, H): final-norm hidden states of the packed rows (W = longest real row);
    rank (N, L): the packed position of each original column (meaningful where mask is 1)."""

    hidden: torch.Tensor
    rank: torch.Tensor


def pack_rows(input_ids: torch.Tensor, attention_mask: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(packed ids (N, W), rank (N, L)): each row's real tokens moved to its front, in order,
    followed by the row's padding; W is the longest row's count of real tokens."""
    real = attention_mask.bool()
    # at least one column, so a batch of padding alone still runs (its values are unused)
    width = max(int(real.sum(dim=1).max()) if real.numel() else 0, 1)
    # A stable sort on "is padding" puts the real columns first, each group in its order.
    order = torch.argsort((~real).to(torch.int8), dim=1, stable=True)[:, :width]
    rank = real.long().cumsum(dim=1) - 1
    return input_ids.gather(1, order), rank


def packed_hidden_states(model, input_ids: torch.Tensor, attention_mask: torch.Tensor
                         ) -> PackedHidden:
    """The policy's final hidden states over the packed rows (see the module docstring)."""
    ids, rank = pack_rows(input_ids, attention_mask)
    base = model.model
    h = base.embed_tokens(ids)
    n, width = ids.shape
    cos, sin_signed = rope_tables(base.rotary_emb, torch.arange(width, device=ids.device)[None],
                                  h.dtype)
    cos, sin_signed = cos[:, :, None], sin_signed[:, :, None]  # (1, W, 1, D): every row alike
    compiled = _COMPILED.get()
    for layer in base.layers:
        h = _layer(layer, h, cos, sin_signed, compiled)
    norm = fused_pointwise.rms_norm if compiled else rms_norm
    return PackedHidden(norm(base.norm, h), rank)


def _layer(layer, h: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor,
           compiled: bool = False) -> torch.Tensor:
    attn, mlp = layer.self_attn, layer.mlp
    n, s, _ = h.shape
    norm = fused_pointwise.rms_norm if compiled else rms_norm
    inputs = fused_pointwise.attention_inputs if compiled else attention_inputs
    qkv = stacked_linear(norm(layer.input_layernorm, h), qkv_linears(attn))
    q, k, v = inputs(attn, qkv, cos, sin_signed)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (N, heads, S, D)
    out = _causal_attention(q, k, v, attn.scaling)
    h = add_linear(h, out.transpose(1, 2).reshape(n, s, -1), attn.o_proj)
    x = norm(layer.post_attention_layernorm, h)
    gate_up = stacked_linear(x, gate_up_linears(mlp))
    hidden = (fused_pointwise.swiglu(gate_up) if compiled and fused_pointwise.fuses_mlp(mlp)
              else mlp_hidden(mlp, gate_up))
    return add_linear(h, hidden, mlp.down_proj)


def _causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float
                      ) -> torch.Tensor:
    """Causal SDPA with grouped key/value heads. FlashAttention (CUDA, half precision) and the
    CPU kernels take the groups as they are; for float32 on CUDA, where only the
    memory-efficient kernel would run and it takes no groups, keys and values are repeated."""
    group = q.shape[1] // k.shape[1]
    if group > 1 and q.is_cuda and q.dtype == torch.float32:
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale,
                                          enable_gqa=k.shape[1] != q.shape[1])
