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


# --- groups of different sizes (rollout.budget_allocation "knapsack") ----------------------
#
# Ragged groups travel padded to (n, Gmax, K) with a ``valid`` (n, Gmax) bool mask: group i's
# completions fill its first sizes[i] slots. The masked estimators below are the ones above
# with every mean, std and sum over a group taken over its valid slots only (the batch-wide
# whitening and the 'batch' scale over all valid slots), so a padded slot never enters a
# statistic; padded slots get advantage 0. With every slot valid they equal the unmasked ones
# (within float rounding: sums are taken differently); the uniform path never calls them.

MASKED_ESTIMATORS: dict[str, Estimator] = {}


def _register_masked(name: str) -> Callable[[Estimator], Estimator]:
    def wrap(fn: Estimator) -> Estimator:
        MASKED_ESTIMATORS[name] = fn
        return fn
    return wrap


def _slot_mask(valid: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """valid (n, G) as ``like``'s dtype, broadcastable to it ((n, G) or (n, G, K))."""
    v = valid.to(like.dtype)
    return v.unsqueeze(-1) if like.dim() == 3 else v


def masked_group_mean(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over each group's valid slots, keepdim: (n, G[, K]) -> (n, 1[, K])."""
    v = _slot_mask(valid, x)
    return (x * v).sum(dim=1, keepdim=True) / v.sum(dim=1, keepdim=True)


def masked_group_std(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Unbiased std over each group's valid slots (as torch.std), keepdim; a group of one
    valid slot (never trained: min_generations is at least 2) gets 0 rather than NaN."""
    v = _slot_mask(valid, x)
    count = v.sum(dim=1, keepdim=True)
    centred = (x - masked_group_mean(x, valid)) * v
    return ((centred ** 2).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)).sqrt()


def _masked_whiten(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """_whiten over the valid slots only; padded slots 0."""
    values = x[valid]
    if values.numel() < 2:
        return (x - values.mean()) * valid
    return (x - values.mean()) / (values.std() + EPS) * valid


def _masked_scaled(centred: torch.Tensor, rewards: torch.Tensor, valid: torch.Tensor,
                   scale: str) -> torch.Tensor:
    if scale == "group":
        return centred / (masked_group_std(rewards, valid) + EPS)
    if scale == "batch":
        return centred / (rewards[valid].std() + EPS)
    if scale == "none":
        return centred
    raise ValueError(f"unknown advantage scale {scale!r}")


@_register_masked("grpo")
def masked_grpo(component_rewards: torch.Tensor, weights: torch.Tensor, valid: torch.Tensor, *,
                scale: str = "group") -> torch.Tensor:
    rewards = weighted_total(component_rewards, weights) * valid
    centred = (rewards - masked_group_mean(rewards, valid)) * valid
    return _masked_scaled(centred, rewards, valid, scale)


@_register_masked("rloo")
def masked_rloo(component_rewards: torch.Tensor, weights: torch.Tensor, valid: torch.Tensor, *,
                scale: str = "group") -> torch.Tensor:
    rewards = weighted_total(component_rewards, weights) * valid
    count = valid.sum(dim=1, keepdim=True).to(rewards.dtype)
    baseline = (rewards.sum(dim=1, keepdim=True) - rewards) / (count - 1)
    return _masked_scaled((rewards - baseline) * valid, rewards, valid, scale)


@_register_masked("reinforce_pp")
def masked_reinforce_pp(component_rewards: torch.Tensor, weights: torch.Tensor,
                        valid: torch.Tensor, *, scale: str = "group") -> torch.Tensor:
    rewards = weighted_total(component_rewards, weights) * valid
    return _masked_whiten(rewards - masked_group_mean(rewards, valid), valid)


@_register_masked("gdpo")
def masked_gdpo(component_rewards: torch.Tensor, weights: torch.Tensor, valid: torch.Tensor, *,
                scale: str = "group") -> torch.Tensor:
    components = component_rewards * _slot_mask(valid, component_rewards)
    mean = masked_group_mean(components, valid)
    std = masked_group_std(components, valid)
    per_component = (components - mean) / (std + EPS)
    return _masked_whiten(weighted_total(per_component, weights), valid)


def compute_masked_advantages(name: str, component_rewards: torch.Tensor, weights: torch.Tensor,
                              valid: torch.Tensor, *, scale: str) -> torch.Tensor:
    """compute_advantages for padded ragged groups: (n, Gmax, K), (K,), valid (n, Gmax) ->
    (n, Gmax) float32, 0 in padded slots."""
    if name not in MASKED_ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; known: {', '.join(MASKED_ESTIMATORS)}")
    return MASKED_ESTIMATORS[name](component_rewards.float(), weights.float(), valid.bool(),
                                   scale=scale)


def pad_groups(rows: torch.Tensor, sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Group-major rows (N, ...) of groups of ``sizes`` (summing to N) -> zero-padded
    (n, max(sizes), ...) and its ``valid`` (n, max(sizes)) bool mask (group i in its first
    sizes[i] slots). ``padded[valid]`` gives the rows back in their order."""
    if sum(sizes) != rows.shape[0]:
        raise ValueError(f"{rows.shape[0]} rows do not form groups of sizes summing to {sum(sizes)}")
    width = max(sizes, default=0)
    valid = torch.arange(width)[None, :] < torch.tensor(sizes, dtype=torch.long)[:, None]
    padded = rows.new_zeros((len(sizes), width, *rows.shape[1:]))
    padded[valid] = rows
    return padded, valid
