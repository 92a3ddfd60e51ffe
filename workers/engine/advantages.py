"""Advantage estimators, registered by name; pure functions of reward tensors.

Every estimator takes per-component rewards ``(n, G, K)`` (n groups of G completions, K reward
components) and component weights ``(K,)`` and returns advantages ``(n, G)``. All but gdpo
first sum the weighted components into one reward per completion.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

EPS = 1e-4  # keeps zero-spread groups at advantage 0 instead of 0/0

Estimator = Callable[..., torch.Tensor]
ADVANTAGE_ESTIMATORS: dict[str, Estimator] = {}


def register(name: str) -> Callable[[Estimator], Estimator]:
    def wrap(fn: Estimator) -> Estimator:
        ADVANTAGE_ESTIMATORS[name] = fn
        return fn
    return wrap


def weighted_total(component_rewards: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(n, G, K), (K,) -> (n, G): the scalar reward of each completion."""
    return (component_rewards * weights).sum(dim=-1)


def _scaled(centred: torch.Tensor, rewards: torch.Tensor, scale: str) -> torch.Tensor:
    """Divide centred (n, G) advantages by the group std, the batch std, or nothing."""
    if scale == "group":
        return centred / (rewards.std(dim=1, keepdim=True) + EPS)
    if scale == "batch":
        return centred / (rewards.std() + EPS)
    if scale == "none":
        return centred
    raise ValueError(f"unknown advantage scale {scale!r}")


def _whiten(x: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit std over all elements (std unbiased, as torch.std)."""
    if x.numel() < 2:
        return x - x.mean()
    return (x - x.mean()) / (x.std() + EPS)


@register("grpo")
def grpo(component_rewards: torch.Tensor, weights: torch.Tensor, *, scale: str = "group"
         ) -> torch.Tensor:
    """GRPO: A_ij = (r_ij - mean_j r_i) / std_i (scale 'group'); 'batch' divides by the std of
    all rewards; 'none' is Dr. GRPO (no division). (n, G, K), (K,) -> (n, G)."""
    rewards = weighted_total(component_rewards, weights)
    return _scaled(rewards - rewards.mean(dim=1, keepdim=True), rewards, scale)


@register("rloo")
def rloo(component_rewards: torch.Tensor, weights: torch.Tensor, *, scale: str = "group"
         ) -> torch.Tensor:
    """RLOO: A_ij = r_ij - mean of the other G - 1 rewards of the group, optionally scaled as
    in grpo. (n, G, K), (K,) -> (n, G)."""
    rewards = weighted_total(component_rewards, weights)
    g = rewards.shape[1]
    baseline = (rewards.sum(dim=1, keepdim=True) - rewards) / (g - 1)
    return _scaled(rewards - baseline, rewards, scale)


@register("reinforce_pp")
def reinforce_pp(component_rewards: torch.Tensor, weights: torch.Tensor, *, scale: str = "group"
                 ) -> torch.Tensor:
    """REINFORCE++ with baseline: subtract the group mean, then whiten over the whole batch
    (``scale`` is not used). (n, G, K), (K,) -> (n, G)."""
    rewards = weighted_total(component_rewards, weights)
    return _whiten(rewards - rewards.mean(dim=1, keepdim=True))


@register("gdpo")
def gdpo(component_rewards: torch.Tensor, weights: torch.Tensor, *, scale: str = "group"
         ) -> torch.Tensor:
    """GDPO: normalise each component within its group, (r_ijk - mu_ik) / (sigma_ik + eps),
    take the weighted sum over k, then whiten over the batch (``scale`` is not used). Summing
    first (GRPO) maps distinct reward combinations to identical advantages; this does not.
    (n, G, K), (K,) -> (n, G)."""
    mean = component_rewards.mean(dim=1, keepdim=True)
    std = component_rewards.std(dim=1, keepdim=True)
    per_component = (component_rewards - mean) / (std + EPS)
    return _whiten(weighted_total(per_component, weights))


def compute_advantages(name: str, component_rewards: torch.Tensor, weights: torch.Tensor, *,
                       scale: str) -> torch.Tensor:
    """Dispatch to the registered estimator. (n, G, K), (K,) -> (n, G) float32."""
    if name not in ADVANTAGE_ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; known: {', '.join(ADVANTAGE_ESTIMATORS)}")
    return ADVANTAGE_ESTIMATORS[name](component_rewards.float(), weights.float(), scale=scale)
