"""Preference losses for reward-model training: pure functions of reward tensors.

Rewards may carry leading dimensions (an ensemble of K members gives ``(K, P)`` or
``(K, B, M)``); the pair or ranking structure (``tie``, ``margin``, ``tiers``) is shared by
all of them and broadcast.

Ties, in one place:

* Bradley-Terry (``bradley_terry_loss``), ``tie_handling`` picks what a tied pair does:

  - ``"drop"`` (default): nothing. The pair is left out of the loss and of its mean.
  - ``"half"``: a tie is half a win each way, binary cross-entropy with target 1/2:
    ``0.5·softplus(-d) + 0.5·softplus(d)``; smallest (log 2) at ``d = 0``.
  - ``"rao_kupper"``: the Rao-Kupper (1967) model with threshold ``τ = log θ > 0``:
    ``P(i ≻ j) = σ(d − τ)`` and ``P(i ~ j) = 1 − σ(d − τ) − σ(−d − τ)
    = (θ² − 1) / ((1 + θe^{−d})(1 + θe^{d}))``. Decisive pairs then pay
    ``−log σ(d − τ − margin)`` and ties ``−log P(i ~ j)``, which pulls the two rewards
    together. This is a proper likelihood of win / tie / loss; ``"half"`` is not.

* Plackett-Luce (``plackett_luce_loss``) takes rankings as tiers, best first. Items in one
  tier are placed at the same stage against the same risk set, Breslow's approximation
  to the tied partial likelihood: stage ``t`` costs
  ``−Σ_{i∈T_t} r_i + |T_t|·log Σ_{j∈R_t} exp r_j`` where ``R_t`` holds every item not
  placed before stage ``t``. Without ties this is exact Plackett-Luce; a two-item ranking
  gives Bradley-Terry. A tier of k tied items left for the last stage costs at least
  ``k·log k`` and is smallest when the k rewards are equal.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

TIE_HANDLING = ("drop", "half", "rao_kupper")


def bradley_terry_loss(
    chosen_rewards: Tensor,
    rejected_rewards: Tensor,
    *,
    tie: Tensor | None = None,
    margin: Tensor | float = 0.0,
    tie_handling: str = "drop",
    tie_threshold: float = 1.0,
    center_coef: float = 0.0,
    weights: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Bradley-Terry negative log-likelihood of pairs ``chosen ≻ rejected``.

    chosen_rewards, rejected_rewards: ``(..., P)`` rewards of the two sides of P pairs.
    tie: ``(P,)`` bool, True where the pair is a tie (the sides are then interchangeable).
    margin: float or ``(P,)``; a decisive pair pays ``−log σ(r_c − r_r − margin)``.
    tie_handling / tie_threshold: see the module docstring (``tie_threshold`` is ``τ``,
        used by ``"rao_kupper"`` only).
    center_coef: λ of the centering term ``λ·(r_c + r_r)²`` added to every pair that
        contributes (Eisenstein et al., "Helping or Herding?"), which pins the reward's
        free offset near zero.
    weights: ``(..., P)`` or broadcastable, per-pair weights (bootstrap counts).
    reduction: ``"mean"`` (weighted mean over contributing pairs) → scalar, or
        ``"none"`` → ``(..., P)`` with zeros for pairs that contribute nothing.
    """
    if tie_handling not in TIE_HANDLING:
        raise ValueError(f"tie_handling must be one of {TIE_HANDLING}, got {tie_handling!r}")
    if tie_handling == "rao_kupper" and tie_threshold <= 0:
        raise ValueError("tie_threshold must be > 0 for Rao-Kupper ties")
    diff = chosen_rewards - rejected_rewards  # (..., P)
    if tie is None:
        tie = torch.zeros(diff.shape[-1], dtype=torch.bool, device=diff.device)
    tau = tie_threshold if tie_handling == "rao_kupper" else 0.0

    win_loss = F.softplus(tau + margin - diff)  # −log σ(d − τ − margin)
    if tie_handling == "half":
        tie_loss = 0.5 * F.softplus(-diff) + 0.5 * F.softplus(diff)
    elif tie_handling == "rao_kupper":
        log_theta_sq_minus_1 = 2 * tau + math.log(-math.expm1(-2 * tau))
        tie_loss = F.softplus(tau - diff) + F.softplus(tau + diff) - log_theta_sq_minus_1
    else:
        tie_loss = torch.zeros_like(diff)
    losses = torch.where(tie, tie_loss, win_loss)
    if center_coef:
        losses = losses + center_coef * (chosen_rewards + rejected_rewards) ** 2

    active = torch.ones_like(diff) if tie_handling != "drop" else (~tie).to(diff.dtype)
    active = active.expand_as(diff)
    if weights is not None:
        active = active * weights
    losses = losses * active
    if reduction == "none":
        return losses
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    return losses.sum() / active.sum().clamp_min(1e-12)


def plackett_luce_loss(
    rewards: Tensor,
    tiers: Tensor,
    *,
    center_coef: float = 0.0,
    weights: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Plackett-Luce negative log-likelihood of rankings given as tiers (Breslow ties).

    rewards: ``(..., B, M)`` rewards of up to M items in each of B rankings.
    tiers: ``(B, M)`` long, each item's tier, 0 = best; ``-1`` marks padding.
    center_coef: λ of the centering term ``λ·(2·mean_i r_i)²`` per ranking, which for a
        pair is Bradley-Terry's ``λ·(r_c + r_r)²``.
    weights: ``(..., B)`` or broadcastable, per-ranking weights.
    reduction: ``"mean"`` → scalar (weighted mean over rankings, summed over stages),
        ``"none"`` → ``(..., B)``.
    """
    num_stages = int(tiers.max().item()) + 1 if tiers.numel() else 0
    neg_inf = torch.finfo(rewards.dtype).min
    per_ranking = rewards.new_zeros(rewards.shape[:-1])  # (..., B)
    for stage in range(num_stages):
        placed = tiers == stage  # (B, M)
        at_risk = tiers >= stage  # (B, M)
        num_placed = placed.sum(-1)  # (B,)
        log_denominator = torch.logsumexp(rewards.masked_fill(~at_risk, neg_inf), dim=-1)
        placed_sum = (rewards * placed).sum(-1)  # (..., B)
        stage_loss = num_placed * log_denominator - placed_sum
        per_ranking = per_ranking + torch.where(num_placed > 0, stage_loss, 0.0)
    if center_coef:
        present = (tiers >= 0).to(rewards.dtype)  # (B, M)
        mean_reward = (rewards * present).sum(-1) / present.sum(-1).clamp_min(1.0)
        per_ranking = per_ranking + center_coef * (2 * mean_reward) ** 2
    if weights is not None:
        per_ranking = per_ranking * weights
    if reduction == "none":
        return per_ranking
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    if weights is None:
        return per_ranking.mean()
    return per_ranking.sum() / torch.broadcast_to(weights, per_ranking.shape).sum().clamp_min(1e-12)


def pairwise_accuracy(chosen_rewards: Tensor, rejected_rewards: Tensor) -> Tensor:
    """Fraction of pairs ordered correctly; an exact tie of rewards counts one half.

    chosen_rewards, rejected_rewards: ``(P,)`` → scalar (NaN when P = 0).
    """
    diff = chosen_rewards - rejected_rewards
    return ((diff > 0).float() + 0.5 * (diff == 0).float()).mean()
