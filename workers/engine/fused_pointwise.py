"""RoPE and SwiGLU for the update's packed forward, each as one compiled pointwise kernel in the
forward and one in the backward (``train.compile_layers``).

Eagerly, PyTorch's autograd runs the layer's pointwise arithmetic as it is written: RoPE is
``x*cos``, ``roll(x)`` and an ``addcmul`` forward, and their three gradients backward; SwiGLU is
``silu(gate)`` and a product forward, and two products, ``silu_backward`` and a ``cat`` of the
two halves backward. Each reads and writes a whole (tokens x width) activation in bf16, and on
the H200 profile of bench/grpo_step.py those passes, not the matmuls, are most of the update's
GPU time (bench/grpo_step.md). Here each of the four is one function written for
``torch.compile`` (one fused pass, float32 inside and one rounding), wrapped in an autograd
``Function`` whose backward is its own compiled function. The gradients are written by hand
rather than left to AOTAutograd so that a failed compilation shows itself in the call that
compiles, forward or backward, where ``guarded_compile`` runs the same arithmetic eagerly
instead (with a warning), never in the middle of ``loss.backward()``.

Memory falls too: RoPE keeps only its tables for the backward (autograd kept the rolled copy
of q and k), SwiGLU only its input (autograd kept ``silu(gate)`` as well).

In float32 the results equal the eager layer's up to rounding order; in bfloat16 they differ by
about one ulp (float32 inside and one rounding, where eager rounds each intermediate).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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


_COMPILED: dict[str, object] = {}
_FUNCTIONS = {"rope_forward": rope_forward, "rope_backward": rope_backward,
              "swiglu_forward": swiglu_forward, "swiglu_backward": swiglu_backward}


def compiled(name: str):
    """The guarded ``torch.compile`` of one of the four functions, made once per process, with
    dynamic shapes (micro-batches differ in rows and width)."""
    if name not in _COMPILED:
        _COMPILED[name] = guarded_compile(_FUNCTIONS[name], what=f"the update's {name}",
                                          dynamic=True)
    return _COMPILED[name]


class _Rope(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, cos, sin_signed):
        ctx.save_for_backward(cos, sin_signed)
        return compiled("rope_forward")(x, cos, sin_signed)

    @staticmethod
    def backward(ctx, grad):
        cos, sin_signed = ctx.saved_tensors
        return compiled("rope_backward")(grad.contiguous(), cos, sin_signed), None, None


class _SwiGLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gate_up):
        ctx.save_for_backward(gate_up)
        return compiled("swiglu_forward")(gate_up)

    @staticmethod
    def backward(ctx, grad):
        (gate_up,) = ctx.saved_tensors
        return compiled("swiglu_backward")(grad.contiguous(), gate_up)


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
