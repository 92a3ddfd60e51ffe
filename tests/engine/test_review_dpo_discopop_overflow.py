"""The 'discopop' loss where its exponential overflows: a pair the policy ranks far the wrong way
(β·Δ below about −89, float32's exp limit) has a finite loss and gradient, where exp(−β·Δ) was inf
and its modulation σ(β·Δ/τ) 0, so their product, the loss and the step's gradient were NaN."""

import math

import pytest
import torch

from workers.engine.dpo_losses import dpo_loss


def discopop_exact(logits: float, tau: float) -> float:
    """The loss in float64 Python arithmetic, each term computed where it is finite."""
    log_sigmoid = -math.log1p(math.exp(-logits)) if logits > 0 else logits - math.log1p(math.exp(logits))
    scaled = logits / tau
    log_modulation = -math.log1p(math.exp(-scaled)) if scaled > 0 else scaled - math.log1p(math.exp(scaled))
    return -log_sigmoid * (1 - math.exp(log_modulation)) + math.exp(log_modulation - logits)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("margin", [-900.0, -10_000.0, -1e6])
def test_a_pair_ranked_far_the_wrong_way_has_a_finite_loss_and_gradient(dtype, margin):
    chosen = torch.tensor([margin, 0.0], dtype=dtype, requires_grad=True)
    zeros = torch.zeros(2, dtype=dtype)
    out = dpo_loss(chosen, zeros, zeros, zeros, beta=0.1, loss_type="discopop", discopop_tau=0.05)
    out.losses.sum().backward()
    assert torch.isfinite(out.losses).all(), out.losses
    assert torch.isfinite(chosen.grad).all(), chosen.grad
    # the logistic term alone is left: −log σ(β·Δ) ≈ −β·Δ, its gradient −β
    assert out.losses[0].item() == pytest.approx(-0.1 * margin, rel=1e-2)
    assert chosen.grad[0].item() == pytest.approx(-0.1, rel=1e-2)


@pytest.mark.parametrize("logits", [-95.0, -20.0, -0.3, 0.0, 0.01, 0.4, 3.0, 60.0])
@pytest.mark.parametrize("tau", [0.05, 1.0])
def test_the_value_is_discopops_formula_across_the_range(logits, tau):
    chosen = torch.tensor([logits * 10], dtype=torch.float64)
    zeros = torch.zeros(1, dtype=torch.float64)
    out = dpo_loss(chosen, zeros, zeros, zeros, beta=0.1, loss_type="discopop", discopop_tau=tau)
    assert out.losses.item() == pytest.approx(discopop_exact(logits, tau), rel=1e-9, abs=1e-300)
