"""The update's RMSNorm, its split of q/k/v with RoPE, and SwiGLU, each as one compiled kernel in
the forward and one in the backward (``train.compile_layers``).

Eagerly, PyTorch's autograd runs the layer's pointwise arithmetic as it is written: RoPE is
``x*cos``, ``roll(x)`` and an ``addcmul`` forward, and their three gradients backward; SwiGLU is
``silu(gate)`` and a product forward, and two products, ``silu_backward`` and a ``cat`` of the
two halves backward. Each reads and writes a whole (tokens x width) activation in bf16, and on
the H200 profile of bench/grpo_step.py those passes, not the matmuls, are most of the update's
GPU time (bench/grpo_step.md). Here each is one function written for ``torch.compile`` (one
fused pass, float32 inside and one rounding), wrapped in an autograd ``Function`` whose backward
is its own compiled function. The gradients are written by hand rather than left to
AOTAutograd so that a failed compilation shows itself in the call that compiles, forward or
backward, where ``guarded_compile`` runs the same arithmetic eagerly instead (with a warning),
never in the middle of ``loss.backward()``.

- ``attention_inputs``: the stacked q/k/v projection to q and k with RoPE and v, three tensors
  of their own; backward, their gradients into the projection's in one pass. Eagerly the
  gradients of the slices of q|k each take a zeroed buffer, a strided copy and an add, and
  the split from v a ``cat``. (Qwen3, which normalises q and k per head between the split and
  RoPE, takes ``rope`` alone.)
- ``rms_norm``: CUDA's RMSNorm backward is two kernels, one for x and one summing the
  weight's gradient over every token, together 3-4x the traffic of one pass.
- ``swiglu``.

Memory falls too: RoPE keeps only its tables for the backward (autograd kept the rolled copy
of q and k), SwiGLU only its input (autograd kept ``silu(gate)`` as well).

In float32 the results equal the eager layer's up to rounding order; in bfloat16 they differ by
about one ulp (float32 inside and one rounding, where eager rounds each intermediate).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import llama_layers
from .compiling import guarded_compile

_SILU = ("SiLU", "SiLUActivation")


def _wide(t: torch.Tensor) -> torch.Tensor:
    """float32 for a half-precision tensor (one rounding at the end), else as it is."""
    return t.float() if t.element_size() < 4 else t


def rope_forward(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """``x*cos + roll(x, D/2)*sin_signed`` (``llama_layers.apply_rope``), in float32."""
    half = x.shape[-1] // 2
    wide = _wide(x)
    return (wide * _wide(cos) + wide.roll(half, dims=-1) * _wide(sin_signed)).to(x.dtype)


def rope_backward(grad: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor
                  ) -> torch.Tensor:
    """The gradient of ``rope_forward`` in x: ``grad*cos + roll(grad*sin_signed, D/2)`` (a roll by
    half the width is its own inverse)."""
    half = grad.shape[-1] // 2
    wide = _wide(grad)
    return (wide * _wide(cos) + (wide * _wide(sin_signed)).roll(half, dims=-1)).to(grad.dtype)


def swiglu_forward(gate_up: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up`` from the stacked gate/up projection (..., 2I), in float32."""
    gate, up = _wide(gate_up).chunk(2, dim=-1)
    return (F.silu(gate) * up).to(gate_up.dtype)


def swiglu_backward(grad: torch.Tensor, gate_up: torch.Tensor) -> torch.Tensor:
    """The gradient of ``swiglu_forward`` in its input, both halves in one (..., 2I) tensor:
    d/dgate = grad*up*sigmoid(gate)*(1 + gate*(1 - sigmoid(gate))), d/dup = grad*silu(gate)."""
    gate, up = _wide(gate_up).chunk(2, dim=-1)
    wide = _wide(grad)
    sig = torch.sigmoid(gate)
    grad_gate = wide * up * sig * (1 + gate * (1 - sig))
    grad_up = wide * gate * sig
    return torch.cat([grad_gate, grad_up], dim=-1).to(gate_up.dtype)


def qkv_rope_forward(qkv: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor,
                     q_heads: int, kv_heads: int
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(q, k, v), each (N, S, heads, D) and a tensor of its own, from the stacked projection
    (N, S, (Hq + 2 Hkv) D), RoPE on q and k (``llama_layers.attention_inputs``' training path)."""
    n, s, _ = qkv.shape
    heads = qkv.view(n, s, q_heads + 2 * kv_heads, cos.shape[-1])
    roped = rope_forward(heads[:, :, :q_heads + kv_heads], cos, sin_signed)
    return (roped[:, :, :q_heads].contiguous(), roped[:, :, q_heads:].contiguous(),
            heads[:, :, q_heads + kv_heads:].contiguous())


def qkv_rope_backward(grad_q: torch.Tensor, grad_k: torch.Tensor, grad_v: torch.Tensor,
                      cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """The gradient of ``qkv_rope_forward`` in its stacked projection: RoPE's gradient on q's
    and k's, v's as it is, written side by side into one (N, S, (Hq + 2 Hkv) D) tensor."""
    n, s = grad_q.shape[:2]
    grad_qk = rope_backward(torch.cat([grad_q, grad_k], dim=2), cos, sin_signed)
    return torch.cat([grad_qk, grad_v], dim=2).view(n, s, -1)


def rms_norm_forward(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``F.rms_norm(x, (H,), weight, eps)``: float32 inside, the weight applied before the one
    rounding (``llama_layers.rms_norm``)."""
    wide = _wide(x)
    scale = torch.rsqrt(wide.square().mean(dim=-1, keepdim=True) + eps)
    return (wide * scale * _wide(weight)).to(x.dtype)


def rms_norm_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, eps: float
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients of ``rms_norm_forward`` in x and in the weight. With r = rsqrt(mean(x^2)
    + eps), x^ = x r and g = grad * weight: dx = r (g - x^ mean(g x^)) per row; dweight is
    grad x^ summed over every row."""
    wide, wide_grad = _wide(x), _wide(grad)
    scale = torch.rsqrt(wide.square().mean(dim=-1, keepdim=True) + eps)
    normed = wide * scale
    weighted = wide_grad * _wide(weight)
    grad_x = scale * (weighted - normed * (weighted * normed).mean(dim=-1, keepdim=True))
    grad_weight = (wide_grad * normed).reshape(-1, x.shape[-1]).sum(dim=0)
    return grad_x.to(x.dtype), grad_weight.to(weight.dtype)


_COMPILED: dict[str, object] = {}
_FUNCTIONS = {"rope_forward": rope_forward, "rope_backward": rope_backward,
              "swiglu_forward": swiglu_forward, "swiglu_backward": swiglu_backward,
              "qkv_rope_forward": qkv_rope_forward, "qkv_rope_backward": qkv_rope_backward,
              "rms_norm_forward": rms_norm_forward, "rms_norm_backward": rms_norm_backward}


def compiled(name: str):
    """The guarded ``torch.compile`` of one of these functions, made once per process. Its
    calls (``_call``) mark rows and width dynamic and leave the model's sizes (heads, head and
    hidden widths) fixed."""
    if name not in _COMPILED:
        _COMPILED[name] = guarded_compile(_FUNCTIONS[name], what=f"the update's {name}")
    return _COMPILED[name]


def _call(name: str, *args):
    """``compiled(name)`` on ``args``. Each tensor is detached, which drops a view's link to its
    base (no copy): a view and a tensor of its own then meet the same guards (a view as the
    first argument made dynamo guard on its base, and compile again for the next call). Its
    first two dimensions, the micro-batch's rows and width, which change from one micro-batch to
    the next, are compiled as dynamic from the first call; the others are the model's and stay
    fixed (``dynamic=True`` made them symbols too, and a micro-batch of as many rows as the
    model has heads or a head has channels compiled again: dynamo took the equal sizes for
    one). A micro-batch of one row or one column still compiles once more (dynamo fixes sizes
    0 and 1 as constants), after which every size is covered."""
    plain = []
    for arg in args:
        if isinstance(arg, torch.Tensor):
            arg = arg.detach()
            if arg.dim() >= 3:
                torch._dynamo.maybe_mark_dynamic(arg, 0)
                torch._dynamo.maybe_mark_dynamic(arg, 1)
        plain.append(arg)
    return compiled(name)(*plain)


class _Rope(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cos, sin_signed):
        ctx.save_for_backward(cos, sin_signed)
        return _call("rope_forward", x, cos, sin_signed)

    @staticmethod
    def backward(ctx, grad):
        cos, sin_signed = ctx.saved_tensors
        return _call("rope_backward", grad.contiguous(), cos, sin_signed), None, None


class _SwiGLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gate_up):
        ctx.save_for_backward(gate_up)
        return _call("swiglu_forward", gate_up)

    @staticmethod
    def backward(ctx, grad):
        (gate_up,) = ctx.saved_tensors
        return _call("swiglu_backward", grad.contiguous(), gate_up)


class _QkvRope(torch.autograd.Function):
    @staticmethod
    def forward(ctx, qkv, cos, sin_signed, q_heads, kv_heads):
        ctx.save_for_backward(cos, sin_signed)
        return _call("qkv_rope_forward", qkv, cos, sin_signed, q_heads, kv_heads)

    @staticmethod
    def backward(ctx, grad_q, grad_k, grad_v):
        cos, sin_signed = ctx.saved_tensors
        grad = _call("qkv_rope_backward", grad_q.contiguous(), grad_k.contiguous(),
                     grad_v.contiguous(), cos, sin_signed)
        return grad, None, None, None, None


class _RmsNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, eps):
        ctx.save_for_backward(x, weight)
        ctx.eps = eps
        return _call("rms_norm_forward", x, weight, eps)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x, grad_weight = _call("rms_norm_backward", grad.contiguous(), x, weight, ctx.eps)
        return grad_x, grad_weight, None


def rope(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """``llama_layers.apply_rope`` with a compiled forward and backward (the kernel reads x
    once, so it takes no rolled copy). The tables take no gradient."""
    return _Rope.apply(x, cos.detach(), sin_signed.detach())


def fuses_mlp(mlp) -> bool:
    """Whether ``mlp``'s activation is SiLU, the one ``swiglu`` computes."""
    return type(getattr(mlp, "act_fn", None)).__name__ in _SILU


def swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    """``llama_layers.mlp_hidden`` for a SiLU MLP, with a compiled forward and backward."""
    return _SwiGLU.apply(gate_up)


def attention_inputs(attn, qkv: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``llama_layers.attention_inputs`` for training, with the split, RoPE and the layout as
    one compiled kernel forward and one backward: q, k and v come out as tensors of their own,
    and their gradients go back into the projection's in one pass (eagerly, the slices of the
    roped q|k and the split of q|k from v take a zeroed buffer, a copy and an add each, or a
    ``cat``). A model whose q and k are normalised per head (Qwen3) takes the other path, with
    RoPE alone compiled."""
    if hasattr(attn, "q_norm"):
        return llama_layers.attention_inputs(attn, qkv, cos, sin_signed, rope=rope)
    q_size, k_size, _ = llama_layers.qkv_sizes(attn)
    d = attn.head_dim
    return _QkvRope.apply(qkv, cos.detach(), sin_signed.detach(), q_size // d, k_size // d)


def rms_norm(module, x: torch.Tensor) -> torch.Tensor:
    """``llama_layers.rms_norm`` with a compiled forward and backward (the backward's weight
    gradient summed in the same pass as x's); other norms, and a weight in another dtype than
    x, run as ``llama_layers.rms_norm`` runs them."""
    if not llama_layers.is_plain_rms_norm(module, x):
        return llama_layers.rms_norm(module, x)
    return _RmsNorm.apply(x, module.weight, float(module.variance_epsilon))
