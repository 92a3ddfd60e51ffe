"""The decoder-layer arithmetic of Llama-family policies (Llama, SmolLM, Qwen2, Qwen3), written
with fewer kernels than Hugging Face's modules and reading the same parameters.

Two callers share it: the static-cache decoder (``static_decoder``, rollouts) and the packed
training forward (``packed_forward``, the update). Per layer, Hugging Face runs RMSNorm as
eight elementwise kernels over a float32 copy, RoPE as five kernels for q and five for k,
q/k/v as three matmuls and gate/up as two, and each residual as its own add. Here:

- RMSNorm is one ``F.rms_norm`` call with the weight (float32 inside, one rounding);
- q/k/v are one matmul and gate/up another (the decoder keeps stacked copies of the weights;
  training stacks them per call, and ``stacked_linear`` stacks them again in the backward
  rather than keep a second copy of the weights alive);
- RoPE runs once over q and k together, as ``x*cos + roll(x)*sin_signed`` (3 kernels), where
  ``sin_signed`` carries rotate_half's sign; when decoding, the roll runs over the whole
  contiguous q/k/v projection, not the strided q|k slice that CUDA's roll would copy first;
- an output projection and its residual add are one ``addmm``.

In float32 the results equal Hugging Face's up to the order of roundings; in bfloat16 they
differ by about one bf16 ulp (one rounding instead of two in the norm and the residuals).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "qwen3")
_RMS_NORMS = ("LlamaRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm")


def supports(model) -> bool:
    """True when ``model`` has the layout this module implements (and nothing it ignores:
    sliding windows, logit soft-capping, partial or length-dependent RoPE)."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) not in SUPPORTED_MODEL_TYPES:
        return False
    if getattr(config, "use_sliding_window", False):
        return False
    if any(t != "full_attention" for t in (getattr(config, "layer_types", None) or [])):
        return False
    if (getattr(config, "final_logit_softcapping", None)
            or getattr(config, "attn_logit_softcapping", None)):
        return False
    base = getattr(model, "model", None)
    needed = ("embed_tokens", "layers", "norm", "rotary_emb")
    if base is None or not all(hasattr(base, name) for name in needed):
        return False
    for layer in base.layers:
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        if not all(hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj", "scaling",
                                              "head_dim")):
            return False
        if not all(hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj", "act_fn")):
            return False
        qkv_bias = {m.bias is None for m in (attn.q_proj, attn.k_proj, attn.v_proj)}
        if len(qkv_bias) > 1 or (mlp.gate_proj.bias is None) != (mlp.up_proj.bias is None):
            return False  # the fused projections need all or none of the biases
    # Tables of cos/sin per position are computed once; dynamic RoPE rescales with length.
    rotary = base.rotary_emb
    if getattr(rotary, "rope_type", "default") in ("dynamic", "longrope"):
        return False
    inv_freq = getattr(rotary, "inv_freq", None)
    if inv_freq is None or 2 * inv_freq.numel() != base.layers[0].self_attn.head_dim:
        return False  # RoPE over part of each head only
    return getattr(model, "lm_head", None) is not None


def trains_like_hf(model) -> bool:
    """``supports(model)`` and no dropout anywhere in a layer, so that the packed training
    forward computes what Hugging Face's forward computes in train mode."""
    config = getattr(model, "config", None)
    return supports(model) and not getattr(config, "attention_dropout", 0.0)


def is_plain_rms_norm(module, x: torch.Tensor) -> bool:
    """Whether ``module`` is these families' RMSNorm with its weight in ``x``'s dtype, which
    ``F.rms_norm`` computes in one call (Hugging Face promotes the result otherwise)."""
    return type(module).__name__ in _RMS_NORMS and module.weight.dtype == x.dtype


def rms_norm(module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` for these families' RMSNorm as one ``F.rms_norm`` call (float32 inside,
    the weight applied before the one rounding); other norms, and a weight kept in another
    dtype than ``x`` (where Hugging Face promotes the result), run as they are."""
    if not is_plain_rms_norm(module, x):
        return module(x)
    return F.rms_norm(x, (x.shape[-1],), module.weight, module.variance_epsilon)


def rope_tables(rotary_emb, positions: torch.Tensor, dtype: torch.dtype
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin_signed), each (B, S, D), for ``positions`` (B, S): the model's own tables, with
    rotate_half's sign moved into sin, so that ``rotate_half(x) * sin == roll(x) * sin_signed``."""
    probe = torch.zeros(1, device=positions.device, dtype=dtype)
    cos, sin = rotary_emb(probe, positions)
    half = sin.shape[-1] // 2
    return cos, torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor,
               rolled: torch.Tensor | None = None) -> torch.Tensor:
    """Rotary embedding of x (..., D) with tables broadcastable to it: three kernels.
    ``rolled`` is x rolled by D/2 along its last dimension, when the caller has it already."""
    if rolled is None:
        rolled = x.roll(x.shape[-1] // 2, dims=-1)
    return torch.addcmul(x * cos, rolled, sin_signed)


def qkv_linears(attn) -> tuple[torch.nn.Linear, ...]:
    return attn.q_proj, attn.k_proj, attn.v_proj


def gate_up_linears(mlp) -> tuple[torch.nn.Linear, ...]:
    return mlp.gate_proj, mlp.up_proj


def stack(linears: tuple[torch.nn.Linear, ...]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The weights (and biases) of ``linears`` stacked into one projection (new tensors)."""
    bias = None if linears[0].bias is None else torch.cat([m.bias for m in linears])
    return torch.cat([m.weight for m in linears]), bias


class _StackedLinear(torch.autograd.Function):
    """``F.linear(x, cat(weights), cat(biases))`` whose backward stacks the weights again
    instead of keeping the stacked copy from the forward: training holds each weight once."""

    @staticmethod
    def forward(ctx, x, count: int, *parts):
        weights, biases = parts[:count], parts[count:]
        ctx.sizes = [w.shape[0] for w in weights]
        ctx.has_bias = bool(biases)
        ctx.save_for_backward(x, *weights)
        return F.linear(x, torch.cat(weights), torch.cat(biases) if biases else None)

    @staticmethod
    def backward(ctx, grad):
        x, *weights = ctx.saved_tensors
        count = len(weights)
        needs = ctx.needs_input_grad
        grad_x = grad @ torch.cat(weights) if needs[0] else None
        flat = grad.reshape(-1, grad.shape[-1])
        grad_w = [None] * count
        if any(needs[2:2 + count]):
            grad_w = list((flat.t() @ x.reshape(-1, x.shape[-1])).split(ctx.sizes))
        grad_b = list(flat.sum(dim=0).split(ctx.sizes)) if ctx.has_bias else []
        return (grad_x, None, *grad_w, *grad_b)


def stacked_linear(x: torch.Tensor, linears: tuple[torch.nn.Linear, ...]) -> torch.Tensor:
    """The outputs of ``linears`` on ``x``, concatenated, from one matmul (differentiable)."""
    weights = [m.weight for m in linears]
    biases = [m.bias for m in linears] if linears[0].bias is not None else []
    return _StackedLinear.apply(x, len(weights), *weights, *biases)


def qkv_sizes(attn) -> tuple[int, int, int]:
    return attn.q_proj.out_features, attn.k_proj.out_features, attn.v_proj.out_features


def attention_inputs(attn, qkv: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor,
                     rope=apply_rope) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The stacked q/k/v projection (N, S, (Hq + 2 Hkv) D) -> q (N, S, Hq, D), k (N, S, Hkv, D)
    with RoPE, v (N, S, Hkv, D); cos, sin_signed broadcast to (N, S, 1, D). ``rope`` computes
    what ``apply_rope`` does (the update's compiled one, ``fused_pointwise.rope``)."""
    n, s, _ = qkv.shape
    d = attn.head_dim
    q_size, k_size, _ = qkv_sizes(attn)
    # split, not slices: its backward writes the parts' gradients into one buffer
    if hasattr(attn, "q_norm"):  # Qwen3 normalises each head of q and k before RoPE
        q, k, v = qkv.split(qkv_sizes(attn), dim=-1)
        qk = torch.cat([rms_norm(attn.q_norm, q.view(n, s, -1, d)),
                        rms_norm(attn.k_norm, k.view(n, s, -1, d))], dim=2)
    elif not (qkv.requires_grad and torch.is_grad_enabled()) and qkv.is_contiguous():
        # Decoding: roll every head, v's too, since q|k alone is a strided slice, which CUDA's
        # roll first copies (4 kernels); the whole projection is contiguous (3 kernels). In
        # training the slice's backward would cost more than the copy saves.
        heads = qkv.view(n, s, -1, d)
        qk_heads = (q_size + k_size) // d
        qk = apply_rope(heads[:, :, :qk_heads], cos, sin_signed,
                        rolled=heads.roll(d // 2, dims=-1)[:, :, :qk_heads])
        q_heads = q_size // d
        return qk[:, :, :q_heads], qk[:, :, q_heads:], heads[:, :, qk_heads:]
    else:
        qk, v = qkv.split((q_size + k_size, qkv.shape[-1] - q_size - k_size), dim=-1)
        qk = qk.view(n, s, -1, d)
    qk = rope(qk, cos, sin_signed)  # q and k heads together
    q_heads = q_size // d
    v = v.view(n, s, -1, d)
    return qk[:, :, :q_heads], qk[:, :, q_heads:], v


def add_linear(residual: torch.Tensor, x: torch.Tensor, linear: torch.nn.Linear,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """``residual + linear(x)``; one ``addmm`` (the add in the matmul's epilogue) when the
    projection has no bias. ``weight`` replaces the projection's weight (the decoder passes a
    copy with its input columns reordered)."""
    weight = linear.weight if weight is None else weight
    if linear.bias is not None:
        return residual + F.linear(x, weight, linear.bias)
    width = residual.shape[-1]
    out = torch.addmm(residual.reshape(-1, width), x.reshape(-1, x.shape[-1]), weight.t())
    return out.view(residual.shape)


def mlp_hidden(mlp, gate_up: torch.Tensor) -> torch.Tensor:
    """``act(gate(x)) * up(x)`` from the stacked gate/up projection of x."""
    gate, up = gate_up.chunk(2, dim=-1)
    return mlp.act_fn(gate) * up
