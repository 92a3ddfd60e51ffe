"""Group filters: which sampled groups a step trains on.

Pure functions returning a keep-mask over groups; the trainer refills dropped groups with new
prompts for at most ``filters.max_refill_rounds`` rounds and reports the kept fraction.
"""

from __future__ import annotations

import torch

from .config import FiltersConfig


def zero_spread_mask(rewards: torch.Tensor, atol: float = 1e-6) -> torch.Tensor:
    """DAPO dynamic sampling: keep groups whose rewards are not all equal.
    (n, G) total rewards -> (n,) bool."""
    return (rewards.max(dim=1).values - rewards.min(dim=1).values) > atol


def difficulty_mask(correct: torch.Tensor, p_low: float, p_high: float) -> torch.Tensor:
    """Balanced online difficulty filtering: keep groups whose accuracy (fraction of 0/1
    successes) lies in [p_low, p_high]. (n, G) -> (n,) bool."""
    accuracy = correct.float().mean(dim=1)
    return (accuracy >= p_low) & (accuracy <= p_high)


def masked_zero_spread_mask(rewards: torch.Tensor, valid: torch.Tensor, atol: float = 1e-6
                            ) -> torch.Tensor:
    """zero_spread_mask of groups padded to (n, Gmax), max and min over each group's valid slots
    only (``valid`` (n, Gmax) bool; Knapsack RL's groups of different sizes)."""
    high = torch.where(valid, rewards, torch.full_like(rewards, -torch.inf)).max(dim=1).values
    low = torch.where(valid, rewards, torch.full_like(rewards, torch.inf)).min(dim=1).values
    return (high - low) > atol


def masked_difficulty_mask(correct: torch.Tensor, valid: torch.Tensor, p_low: float,
                           p_high: float) -> torch.Tensor:
    """difficulty_mask of padded groups: accuracy over each group's valid slots only."""
    accuracy = (correct & valid).float().sum(dim=1) / valid.float().sum(dim=1)
    return (accuracy >= p_low) & (accuracy <= p_high)


def keep_mask(cfg: FiltersConfig, rewards: torch.Tensor, correct: torch.Tensor | None,
              valid: torch.Tensor | None = None) -> torch.Tensor:
    """All enabled filters combined. rewards (n, G), correct (n, G) or None -> (n,) bool.
    ``valid`` (n, G) bool: groups padded to G, counted over their valid slots (None: all are)."""
    keep = torch.ones(rewards.shape[0], dtype=torch.bool)
    if cfg.dynamic_sampling:
        keep &= zero_spread_mask(rewards) if valid is None else masked_zero_spread_mask(rewards, valid)
    if cfg.difficulty.enabled and correct is not None:
        p_low, p_high = cfg.difficulty.p_low, cfg.difficulty.p_high
        keep &= (difficulty_mask(correct, p_low, p_high) if valid is None
                 else masked_difficulty_mask(correct, valid, p_low, p_high))
    return keep


def any_enabled(cfg: FiltersConfig) -> bool:
    return cfg.dynamic_sampling or cfg.difficulty.enabled
